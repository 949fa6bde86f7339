"""A do-not-call registry into the suppression list: a million numbers in seconds, idempotent.

The file is streamed (a CSV line at a time, never whole in memory) and written in batches of
`BATCH` numbers, each one statement and one commit, so an interrupted import keeps what it
wrote and importing the file again completes it:

- SQLite: an executemany of INSERT ... ON CONFLICT DO NOTHING, the batch sorted (the key's
  B-tree is filled in order);
- PostgreSQL: COPY into a temporary table, then INSERT ... SELECT ... ON CONFLICT DO NOTHING
  (a round trip per batch, not per number).

ON CONFLICT DO NOTHING is the idempotency: a number already on the list, for any reason, keeps
its row (its reason, source and time are the evidence of why it is not called), and a second
import of the same file adds nothing and changes nothing. A line that is not a number is counted
and the first `LISTED_INVALID` are listed with their line numbers; it never stops the import.

Numbers are checked by phonenumbers, as every number redialer dials is. Registries often give
national numbers ("6505550199"): those are read in `region`. Checking the numbers is most of
an import's time (9 of 15 s for a million, bench/dnc_import.py), so the shapes a registry uses
(NANP digits only) skip the parser, half of that cost, and go straight to its validity check,
with the same result (tests compare both paths).
"""

from __future__ import annotations

import csv
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import phonenumbers
from sqlalchemy import select

from redialer.store.tables import SuppressionRow, utcnow

if TYPE_CHECKING:
    from redialer.store.store import Store

#: Numbers written per statement and commit: large enough that round trips do not count, small
#: enough that an interruption loses little and memory stays flat.
BATCH = 50_000
#: Invalid lines listed in the report (all are counted).
LISTED_INVALID = 20
#: The longest value quoted back in a report (a stray binary line should not flood the screen).
QUOTED = 40
DEFAULT_REGION = "US"

#: Digits only, optionally after "+": the shapes that may skip phonenumbers' parser.
_DIGITS = re.compile(r"\+?\d{7,15}")
#: NANP (country code 1): a national number [2-9]XX XXX XXXX, after "+1", "1" or nothing.
_NANP = re.compile(r"(\+1|1)?([2-9]\d{9})")


class ImportRefused(ValueError):
    """The file cannot be imported at all (no such column, not readable): nothing was written."""


def check_region(region: str) -> str:
    """The region code, upper-cased; refused unless phonenumbers knows it."""
    code = region.strip().upper()
    if code not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(
            f"--region {region!r}: not a region phonenumbers knows (two letters, e.g. US, GB, DE)"
        )
    return code


def normalise_number(text: str, region: str | None = DEFAULT_REGION) -> str:
    """E.164 for a number as a registry or an operator writes it; ValueError says why not.

    With "+" (or "00") it is international; without, it is read in `region` (None: refused)."""
    value = text.strip()
    if value.startswith("00"):
        value = "+" + value[2:]
    if not value:
        raise ValueError("empty: no number on this line")
    if value[0] != "+" and region is None:
        raise ValueError("has no country code (+...) and no --region to read it in")
    fast = _nanp_fast(value, region)
    if fast is not None:
        return fast
    try:
        number = phonenumbers.parse(value, None if value[0] == "+" else region)
    except phonenumbers.NumberParseException as exc:
        raise ValueError(f"is not a phone number ({exc._msg})") from exc
    if not phonenumbers.is_valid_number(number):
        raise ValueError("is not a valid number for its country (wrong length or prefix)")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _nanp_fast(value: str, region: str | None) -> str | None:
    """A NANP number in digits only, checked without the parser (which, for these shapes, gives
    country code 1 and these ten digits): E.164, or None to go the general way."""
    if _DIGITS.fullmatch(value) is None:
        return None
    match = _NANP.fullmatch(value)
    if match is None:
        return None
    prefix, national = match.groups()
    if prefix != "+1" and (region is None or _country_code(region) != 1):
        return None
    number = phonenumbers.PhoneNumber(country_code=1, national_number=int(national))
    if not phonenumbers.is_valid_number(number):
        raise ValueError("is not a valid number for its country (wrong length or prefix)")
    return "+1" + national


_COUNTRY_CODES: dict[str, int] = {}


def _country_code(region: str) -> int:
    code = _COUNTRY_CODES.get(region)
    if code is None:
        code = _COUNTRY_CODES[region] = phonenumbers.country_code_for_region(region)
    return code


@dataclass(frozen=True)
class InvalidLine:
    line: int  # the file's line number, from 1 (the header is line 1 when there is one)
    value: str  # as it was (cut to QUOTED characters)
    why: str


@dataclass
class ImportReport:
    """What an import did. `already` counts valid numbers not added: on the list before (for
    any reason, kept as they were), or repeated in the file."""

    file: str
    reason: str
    source: str
    region: str | None
    column: str  # the column read: its header name, or "1" (the first)
    header: bool = False
    numbers: int = 0  # lines with something to read (not the header, not blank lines)
    added: int = 0
    already: int = 0
    invalid: int = 0
    regional: int = 0  # valid numbers without a country code, read in `region`
    invalid_lines: list[InvalidLine] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def valid(self) -> int:
        return self.added + self.already


def import_numbers(
    store: Store,
    path: Path,
    *,
    reason: str = "dnc",
    source: str | None = None,
    column: str | None = None,
    region: str | None = DEFAULT_REGION,
    batch: int = BATCH,
    progress: Callable[[ImportReport], None] | None = None,
) -> ImportReport:
    """Put every valid number of the CSV `path` on the suppression list (see the module's
    docstring). `source` names the list in each row's source ("import:<source>", default the
    file's name); every row gets the import's start time. `column` picks a column by its header
    name; else the first column is read, and a first line whose first column has no digit is a
    header. `ImportRefused` before anything is written when the file cannot be read so."""
    started = time.perf_counter()
    region = check_region(region) if region is not None else None
    report = ImportReport(
        file=str(path),
        reason=reason,
        source=f"import:{source or path.name}",
        region=region,
        column=column or "1",
    )
    write = _writer(store, reason=reason, source=report.source, created_at=utcnow())
    skip = _forgotten(store)
    pending: list[str] = []
    for line, value in _cells(path, column, report):
        report.numbers += 1
        try:
            if value is None:
                raise ValueError(f"has no column {report.column}")
            number = normalise_number(value, region)
        except ValueError as exc:
            _invalid(report, line, value or "", str(exc))
            continue
        if value.lstrip()[:1] != "+" and not value.lstrip().startswith("00"):
            report.regional += 1
        if skip is not None and skip(number):
            report.already += 1
            continue
        pending.append(number)
        if len(pending) >= batch:
            _flush(write, pending, report, progress)
    _flush(write, pending, report, progress)
    report.seconds = time.perf_counter() - started
    return report


def _invalid(report: ImportReport, line: int, value: str, why: str) -> None:
    report.invalid += 1
    if len(report.invalid_lines) < LISTED_INVALID:
        quoted = value if len(value) <= QUOTED else value[: QUOTED - 3] + "..."
        report.invalid_lines.append(InvalidLine(line, quoted, why))


def _flush(
    write: Callable[[list[str]], int],
    pending: list[str],
    report: ImportReport,
    progress: Callable[[ImportReport], None] | None,
) -> None:
    if not pending:
        return
    unique = sorted(set(pending))
    added = write(unique)
    report.added += added
    report.already += len(pending) - added
    pending.clear()
    if progress is not None:
        progress(report)


def _cells(
    path: Path, column: str | None, report: ImportReport
) -> Iterator[tuple[int, str | None]]:
    """(line number, the cell to read, None if the line is too short to have it) for each
    non-blank line after the header.

    Line by line, each line its own CSV record: a stray quote spoils its own line only, where
    a CSV reader would swallow every line after it into one field. Bytes that are not UTF-8
    become U+FFFD: that line is then invalid, the others still count."""
    try:
        handle = path.open(encoding="utf-8-sig", errors="replace")
    except OSError as exc:
        raise ImportRefused(f"{path}: cannot be read ({exc.strerror})") from exc
    with handle:
        index: int | None = None
        for number, line in enumerate(handle, start=1):
            text = line.rstrip("\n")
            if not text.strip():
                continue
            if '"' not in text:
                row = text.split(",")
            else:
                try:
                    row = next(csv.reader([text]))
                except csv.Error as exc:  # e.g. a field over the size limit
                    report.numbers += 1
                    _invalid(report, number, text, f"is not readable as CSV ({exc})")
                    continue
            if index is None:
                index = _header(row, column, path)
                if index is not None:
                    report.header = True
                    continue
                index = 0
            yield number, row[index] if index < len(row) else None


def _header(row: list[str], column: str | None, path: Path) -> int | None:
    """The column's index if `row` is a header, None if it is a number already (no --column and
    a digit in its first cell)."""
    names = [cell.strip() for cell in row]
    if column is None:
        return None if any(c.isdigit() for c in names[0]) else 0
    for wanted in (column.strip(), column.strip().casefold()):
        for i, name in enumerate(names):
            if name == wanted or name.casefold() == wanted:
                return i
    raise ImportRefused(
        f"--column {column!r}: no such column in the header (line 1) of {path}: it has"
        f" {', '.join(repr(n) for n in names)}"
    )


def _forgotten(store: Store) -> Callable[[str], bool] | None:
    """Numbers `forget` erased keep their opt-out under a pseudonym: an import must not bring
    the number back in clear beside it. None (nothing to check) when there is no such entry."""
    suppression = SuppressionRow.__table__.c  # type: ignore[attr-defined]
    with store.engine.connect() as connection:
        kept = set(
            connection.execute(
                select(suppression.phone).where(suppression.phone.like("p-%"))
            ).scalars()
        )
    if not kept or not store.pseudonyms.has_key:
        return None
    pseudonym = store.pseudonyms.pseudonym
    return lambda number: pseudonym(number) in kept


def _writer(
    store: Store, *, reason: str, source: str, created_at: datetime
) -> Callable[[list[str]], int]:
    """A function writing one batch of distinct numbers in one transaction; returns how many
    were new."""
    if store.engine.dialect.name == "postgresql":
        return _postgres_writer(store, reason=reason, source=source, created_at=created_at)
    return _sqlite_writer(store, reason=reason, source=source, created_at=created_at)


def _sqlite_writer(
    store: Store, *, reason: str, source: str, created_at: datetime
) -> Callable[[list[str]], int]:
    column = SuppressionRow.__table__.c.created_at  # type: ignore[attr-defined]
    bind = column.type.bind_processor(store.engine.dialect)
    stamp = bind(created_at) if bind is not None else created_at  # as the ORM would store it
    statement = (
        "INSERT INTO suppression (phone, reason, campaign_id, created_at, source, note)"
        " VALUES (?, ?, NULL, ?, ?, NULL) ON CONFLICT (phone) DO NOTHING"
    )

    def write(numbers: list[str]) -> int:
        with store.engine.begin() as connection:
            raw = connection.connection.driver_connection
            before = raw.total_changes  # type: ignore[union-attr]
            connection.exec_driver_sql(statement, [(n, reason, stamp, source) for n in numbers])
            return int(raw.total_changes - before)  # type: ignore[union-attr]

    return write


def _postgres_writer(
    store: Store, *, reason: str, source: str, created_at: datetime
) -> Callable[[list[str]], int]:
    create = (
        "CREATE TEMPORARY TABLE redialer_suppression_import (phone text NOT NULL) ON COMMIT DROP"
    )
    insert = (
        "INSERT INTO suppression (phone, reason, campaign_id, created_at, source, note)"
        " SELECT phone, %s, NULL, %s, %s, NULL FROM redialer_suppression_import"
        " ON CONFLICT (phone) DO NOTHING"
    )

    def write(numbers: list[str]) -> int:
        with store.engine.begin() as connection:
            raw = connection.connection.driver_connection
            with raw.cursor() as cursor:  # type: ignore[union-attr]
                cursor.execute(create)
                # E.164 numbers need no escaping in COPY's text format.
                with cursor.copy("COPY redialer_suppression_import (phone) FROM STDIN") as copy:
                    copy.write("\n".join(numbers) + "\n")
                cursor.execute(insert, (reason, created_at, source))
                return int(cursor.rowcount)

    return write
