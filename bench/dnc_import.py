"""A national do-not-call registry into the suppression list: a million numbers, twice, on
SQLite and PostgreSQL (target: under a minute each).

    python -m bench.dnc_import [--numbers 1000000] [--server postgresql://postgres@127.0.0.1:5432]
                               [--no-postgres]

Writes a CSV of distinct valid US numbers as a registry gives them (a header, ten digits
without +1, read with --region US) to a temporary directory, then times `import_numbers` on a
fresh SQLite file and on a PostgreSQL database made for the run and dropped after it (never the
`test` database, which the test suite may be using). The second import of each is the
idempotent re-import: it must add nothing and leave every row as it was (count and times
compared). Also times reading and checking the numbers alone (no database), the part no
database choice changes. Writes bench/results/<time>-dnc-import.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import phonenumbers
from sqlalchemy import create_engine, text

from bench.run import RESULTS, machine
from redialer.store.store import Store
from redialer.store.suppression_import import ImportReport, import_numbers, normalise_number

#: Area codes in service (each checked with phonenumbers before use); local numbers
#: 200-0000 to 999-9999 under each.
AREAS = [201, 212, 213, 310, 312, 415, 617, 650, 702, 713, 718, 805, 818, 917, 919]
LOCAL = 8_000_000


def write_registry(path: Path, n: int, seed: int = 7) -> None:
    """n distinct valid US numbers, shuffled, as a registry file: header, ten digits a line."""
    for area in AREAS:
        assert phonenumbers.is_valid_number(phonenumbers.parse(f"{area}2000000", "US")), area
    picks = random.Random(seed).sample(range(len(AREAS) * LOCAL), n)
    with path.open("w") as out:
        out.write("phone_number\n")
        for start in range(0, n, 100_000):
            out.write(
                "".join(
                    f"{AREAS[i // LOCAL]}{2_000_000 + i % LOCAL}\n"
                    for i in picks[start : start + 100_000]
                )
            )


def fingerprint(store: Store) -> dict[str, Any]:
    """What a re-import must not change, read in one pass: count, times, sources, reasons."""
    with store.engine.connect() as connection:
        row = connection.execute(
            text(
                "SELECT count(*), min(created_at), max(created_at), count(DISTINCT source),"
                " count(DISTINCT reason) FROM suppression"
            )
        ).one()
    return {
        "rows": row[0],
        "first": str(row[1]),
        "last": str(row[2]),
        "sources": row[3],
        "reasons": row[4],
    }


def timed_imports(store: Store, path: Path, n: int) -> list[dict[str, Any]]:
    runs = []
    for run in (1, 2):
        before = fingerprint(store)
        report = import_numbers(store, path, source="bench registry")
        after = fingerprint(store)
        row = summary(report)
        row["run"] = run
        row["rows_after"] = after["rows"]
        if run == 1:
            assert (report.added, report.invalid) == (n, 0), row
        else:
            assert (report.added, report.already) == (0, n), row
            assert after == before, (before, after)
            row["rows_unchanged"] = True
        print(
            f"    run {run}: {report.seconds:6.2f} s  ({n / report.seconds:9,.0f} numbers/s)"
            f"  added {report.added:,}  already {report.already:,}  invalid {report.invalid}"
        )
        runs.append(row)
    return runs


def summary(report: ImportReport) -> dict[str, Any]:
    return {
        "seconds": round(report.seconds, 3),
        "numbers_per_s": round(report.numbers / report.seconds),
        "added": report.added,
        "already": report.already,
        "invalid": report.invalid,
    }


def parse_only(path: Path) -> float:
    """Reading the file and checking each number, without a database."""
    started = time.perf_counter()
    with path.open() as lines:
        next(lines)
        for line in lines:
            normalise_number(line.rstrip("\n"), "US")
    return time.perf_counter() - started


@contextmanager
def scratch_postgres(server: str) -> Iterator[str]:
    """A database of its own for the run, dropped after it."""
    name = f"redialer_bench_dnc_{os.getpid()}"
    admin = create_engine(
        f"{server.replace('postgresql://', 'postgresql+psycopg://', 1)}/postgres",
        isolation_level="AUTOCOMMIT",
    )
    try:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        yield f"{server}/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--numbers", type=int, default=1_000_000)
    parser.add_argument("--server", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    started = datetime.now(UTC)
    result: dict[str, Any] = {"load_average_before": os.getloadavg()}
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "registry.csv"
        t0 = time.perf_counter()
        write_registry(path, args.numbers)
        print(
            f"  wrote {args.numbers:,} numbers ({path.stat().st_size / 1e6:.1f} MB)"
            f" in {time.perf_counter() - t0:.1f} s"
        )
        result["parse_only_s"] = round(parse_only(path), 3)
        print(f"  reading and checking the numbers alone: {result['parse_only_s']:.2f} s")

        print("  SQLite (a fresh file):")
        store = Store.open(f"sqlite:///{Path(scratch) / 'store.db'}")
        try:
            result["sqlite"] = timed_imports(store, path, args.numbers)
        finally:
            store.close()

        if not args.no_postgres:
            print("  PostgreSQL (a database of its own):")
            with scratch_postgres(args.server) as url:
                store = Store.open(url)
                try:
                    result["postgres"] = timed_imports(store, path, args.numbers)
                finally:
                    store.close()

    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{started:%Y%m%d-%H%M%S}-dnc-import.json"
    out.write_text(
        json.dumps(
            {
                "bench": "dnc_import",
                "date": started.isoformat(timespec="seconds"),
                "machine": machine(),
                "options": vars(args),
                "load_average_after": os.getloadavg(),
                **result,
            },
            indent=1,
        )
    )
    print(f"  ({out})")


if __name__ == "__main__":
    main()
