"""Verified status callbacks per second through the real `redialer api`, and where it saturates.

One store at a time (a WAL SQLite file as the product makes it; PostgreSQL in a scratch
database it creates and drops): the api runs as `redialer api` does (uvicorn, one process),
M provider calls are placed first (`ProviderCalls.placed`, as the dialer does), then
`bench.callback_sender`, its own process, posts each call's callbacks (initiated, ringing,
in-progress, completed, as the fake Twilio scripts them, signed with `RequestValidator` for the
api's public URL) at each concurrency level. Around each level it samples CPU from /proc: the
api process and its main thread (the event loop), the sender, PostgreSQL's processes, and the
whole machine (what is left is other people's work).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from sqlalchemy import func
from sqlmodel import Session, col, select

from bench.proc_cpu import cpu_percent, cpu_sample
from bench.signed_callbacks import component_costs, signed_calls
from redialer.store.provider_calls import ProviderCalls
from redialer.store.store import Store
from redialer.store.tables import ProviderCallbackRow, ProviderCallRow
from starter.server import free_port
from tests.fake_twilio import ACCOUNT_SID, AUTH_TOKEN

ROOT = Path(__file__).resolve().parent.parent
WARM_UP_CALLS = 25
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"


# ---- the api and its store ----------------------------------------------------------------------


@contextlib.contextmanager
def scratch_postgres(base: str) -> Iterator[str]:
    """A new, empty database on the server of `base`, dropped after: the tests empty `test`
    between themselves, and the bench must neither disturb them nor be disturbed."""
    import psycopg

    name = f"redialer_bench_{uuid.uuid4().hex[:8]}"
    parts = urlsplit(base.replace("postgresql+psycopg://", "postgresql://"))
    admin = urlunsplit(parts)
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def api_process(
    database_url: str, tmp: Path, *, profile: Path | None = None, what_if: str = ""
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """`redialer api` as an operator runs it, on a free loopback port; (process, public URL).
    With `profile` or `what_if`, the same app under `bench.api_profile` (see there)."""
    port = free_port()
    command = [sys.executable, "-c", "from starter.cli import main; main()", "api"]
    if profile is not None or what_if:
        command = [sys.executable, "-m", "bench.api_profile", "--what-if", what_if]
        command += ["--out", str(profile)] if profile is not None else []
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "REDIALER_DATABASE_URL": database_url,
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "REDIALER_PUBLIC_URL": url,
    }
    with (tmp / "api.log").open("ab") as log:
        api = subprocess.Popen(
            [*command, "--port", str(port)],
            env=env,
            stdout=log,
            stderr=log,
            cwd=ROOT,
        )
    try:
        for _ in range(600):
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            assert api.poll() is None, (tmp / "api.log").read_text()
            time.sleep(0.1)
        yield api, url
    finally:
        api.terminate()
        api.wait(timeout=30)


def recorded(store: Store) -> tuple[int, int]:
    """(callbacks recorded, calls ended) in the store."""
    with Session(store.engine) as session:
        callbacks = session.exec(select(func.count()).select_from(ProviderCallbackRow)).one()
        ended = session.exec(
            select(func.count()).where(col(ProviderCallRow.outcome).is_not(None))
        ).one()
    return int(callbacks), int(ended)


# ---- one store, every level ---------------------------------------------------------------------


def run_store(
    name: str,
    database_url: str,
    *,
    levels: list[int],
    callbacks: int,
    seconds: float,
    profile: bool = False,
    what_if: str = "",
) -> dict[str, Any]:
    per_level = max(callbacks // 4, 1)
    tmp = Path(tempfile.mkdtemp(prefix=f"redialer-bench-callbacks-{name}-"))
    report = tmp / "profile.json"
    store = Store.open(database_url)
    try:
        with api_process(
            database_url, tmp, profile=report if profile else None, what_if=what_if
        ) as (api, url):
            ids, requests = signed_calls(url, WARM_UP_CALLS + per_level * len(levels))
            calls = ProviderCalls(store)
            t0 = time.perf_counter()
            for sid, key in ids:
                calls.placed(call_sid=sid, key=key, status="queued", created_at=datetime.now(UTC))
            placing = time.perf_counter() - t0
            (tmp / "requests.json").write_text(json.dumps(requests))
            warm_up_ok, rows = _drive(api.pid, tmp / "requests.json", levels, per_level, seconds)
            taken, ended = recorded(store)
        log = (tmp / "api.log").read_text(errors="replace")
        components = component_costs(store, url)
        profiled = json.loads(report.read_text()) if profile else None
    except BaseException:
        print(f"  api log kept in {tmp}", flush=True)
        raise
    finally:
        store.close()
    ok = sum(r["ok"] for r in rows) + warm_up_ok
    for row in rows:  # the api's CPU per callback, from /proc, beside its parts measured alone
        cpu = row["cpu_percent_of_one_core"]
        row["api_cpu_ms_per_callback"] = round(
            10 * cpu["api"] * row["elapsed_s"] / max(row["ok"], 1), 3
        )
        row["api_loop_cpu_ms_per_callback"] = round(
            10 * cpu["api_main_thread"] * row["elapsed_s"] / max(row["ok"], 1), 3
        )
    if profile:
        print(f"  profiles (pstats) kept in {tmp}", flush=True)
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "store": name,
        "api": f"what-if {what_if}" if what_if else "redialer api",
        "provider_calls_placed": len(ids),
        "placed_per_s": len(ids) / placing,
        "levels": rows,
        "callbacks_204": ok,
        "callbacks_recorded": taken,
        "calls_ended": ended,
        "api_log_errors": sum(
            1 for line in log.splitlines() if "Traceback" in line or "error" in line.lower()
        ),
        "api_log_lines": len(log.splitlines()),
        "api_log_sample": log.splitlines()[:3],
        "parts_cpu_ms_per_callback": components,
        **({"profile": profiled, "profile_files": str(tmp)} if profiled else {}),
    }


def _drive(
    api: int, requests: Path, levels: list[int], per_level: int, seconds: float
) -> tuple[int, list[dict[str, Any]]]:
    """The sender process through a warm-up and each level, CPU sampled around each; the
    warm-up's 204s and a row per level."""
    sender = subprocess.Popen(
        [sys.executable, "-m", "bench.callback_sender", str(requests)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert sender.stdin is not None and sender.stdout is not None
    json.loads(sender.stdout.readline())  # loaded

    def ask(concurrency: int, first: int, last: int) -> dict[str, Any]:
        ask = {"concurrency": concurrency, "first": first, "last": last, "seconds": seconds}
        sender.stdin.write(json.dumps(ask) + "\n")  # type: ignore[union-attr]
        sender.stdin.flush()  # type: ignore[union-attr]
        return json.loads(sender.stdout.readline())  # type: ignore[union-attr]

    rows = []
    try:
        warm_up_ok = int(ask(4, 0, WARM_UP_CALLS)["codes"].get("204", 0))
        for i, concurrency in enumerate(levels):
            first = WARM_UP_CALLS + i * per_level
            before = cpu_sample(api, sender.pid)
            result = ask(concurrency, first, first + per_level)
            cpu = cpu_percent(before, cpu_sample(api, sender.pid))
            rows.append(_row(concurrency, result, cpu))
            print(f"    c={concurrency:<3} {rows[-1]['callbacks_per_s']:7.1f}/s", flush=True)
    finally:
        sender.stdin.close()
        sender.wait(timeout=30)
    return warm_up_ok, rows


def _row(concurrency: int, result: dict[str, Any], cpu: dict[str, float]) -> dict[str, Any]:
    latencies = sorted(result["latencies_ms"])
    ok = int(result["codes"].get("204", 0))
    cuts = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else latencies * 99
    return {
        "concurrency": concurrency,
        "sent": result["sent"],
        "ok": ok,
        "errors": result["sent"] - ok,
        "codes": result["codes"],
        "elapsed_s": round(result["elapsed_s"], 2),
        "callbacks_per_s": round(ok / result["elapsed_s"], 1),
        "p50_ms": round(cuts[49], 2),
        "p99_ms": round(cuts[98], 2),
        "max_ms": round(latencies[-1], 2),
        "cpu_percent_of_one_core": cpu,
    }


def saturation(levels: list[dict[str, Any]]) -> dict[str, Any]:
    """The level past which more concurrency adds under 10%, and who is busy there."""
    best = max(levels, key=lambda r: r["callbacks_per_s"])
    knee = next(
        (
            a
            for a, b in zip(levels, levels[1:], strict=False)
            if b["callbacks_per_s"] < 1.1 * a["callbacks_per_s"]
        ),
        levels[-1],
    )
    cpu = knee["cpu_percent_of_one_core"]
    cores = 100 * len(os.sched_getaffinity(0))
    if cpu["machine"] >= 0.9 * cores:
        limited_by = (
            f"the machine's CPU ({cpu['machine']:.0f}% of {cores}%: api {cpu['api']:.0f},"
            f" sender {cpu['sender']:.0f}, postgres {cpu['postgres']:.0f},"
            f" others {cpu['others']:.0f})"
        )
    elif cpu["api"] >= 90:
        limited_by = f"the api process ({cpu['api']:.0f}%: one process, one GIL)"
    elif cpu["sender"] >= 90:
        limited_by = f"the load generator ({cpu['sender']:.0f}%)"
    elif cpu["postgres"] >= 90:
        limited_by = f"PostgreSQL ({cpu['postgres']:.0f}%)"
    else:
        limited_by = "waiting, not CPU (the store's write lock or round trips)"
    return {
        "best_callbacks_per_s": best["callbacks_per_s"],
        "best_concurrency": best["concurrency"],
        "saturates_at_concurrency": knee["concurrency"],
        "cpu_there": cpu,
        "limited_by": limited_by,
    }


def callback_rows(
    *,
    levels: list[int],
    callbacks: int,
    seconds: float,
    postgres: str | None,
    profile: bool = False,
    what_if: str = "",
) -> list[dict[str, Any]]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="redialer-bench-store-") as tmp:
        print("  callbacks into a WAL SQLite store ...", flush=True)
        rows.append(
            run_store(
                "sqlite",
                f"sqlite:///{tmp}/calls.db",
                levels=levels,
                callbacks=callbacks,
                seconds=seconds,
                profile=profile,
                what_if=what_if,
            )
        )
    if postgres is not None:
        print("  callbacks into PostgreSQL (a scratch database) ...", flush=True)
        try:
            with scratch_postgres(postgres) as url:
                rows.append(
                    run_store(
                        "postgresql",
                        url,
                        levels=levels,
                        callbacks=callbacks,
                        seconds=seconds,
                        profile=profile,
                        what_if=what_if,
                    )
                )
        except Exception as exc:  # no server, no rights: the SQLite row still stands
            print(f"  PostgreSQL skipped: {exc}", flush=True)
            rows.append({"store": "postgresql", "skipped": str(exc)})
    for row in rows:
        if "levels" in row:
            row["saturation"] = saturation(row["levels"])
    return rows
