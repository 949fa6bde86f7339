"""`redialer suppress add|remove|list|import`: the do-not-call list, kept in the store.

Every dial reads the list just before calling, so a number added here is never called again, in
any campaign, running ones included (it ends `dnd`, an opt-out ends `opted_out`). Each entry
keeps who or what added it and when: `cli:<user>` here, `import:<file>` for a registry file,
`opt_out:campaign <id>` for an opt-out, `call:dnd ...` for a call that ended so.

The store and phonenumbers are imported inside the commands: `redialer --help` stays fast.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from redialer.settings import get_settings
from starter.output import EXIT_FAILED, EXIT_INVALID, console, errors, fail, print_json

if TYPE_CHECKING:
    from redialer.store.store import Store
    from redialer.store.suppression_import import ImportReport
    from redialer.store.tables import SuppressionRow

app = typer.Typer(
    name="suppress",
    no_args_is_help=True,
    help=(
        "The do-not-call list: numbers never dialed, in any campaign (running ones included:"
        " every dial reads it). Add, remove, list, import a registry file."
    ),
)


class Reason(StrEnum):
    """Why a number is on the list (`dnd` is written by calls that ended so, not added here)."""

    DNC = "dnc"  # a do-not-call registry
    MANUAL = "manual"  # an operator's decision
    OPTED_OUT = "opted_out"  # the person asked: `remove` needs --force


class ListedReason(StrEnum):
    DNC = "dnc"
    DND = "dnd"
    MANUAL = "manual"
    OPTED_OUT = "opted_out"


Phone = Annotated[
    str,
    typer.Argument(
        help="The number: E.164 (+16505550199), or national (6505550199) read in --region."
    ),
]
Region = Annotated[
    str,
    typer.Option(
        "--region",
        help=(
            "Where numbers without a country code (no leading +) are from: a national registry"
            " gives US numbers as 10 digits without +1, read as US numbers by default."
        ),
    ),
]
Database = Annotated[
    str | None,
    typer.Option("--database", help="Store URL (default: REDIALER_DATABASE_URL)."),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]


@app.command()
def add(
    phone: Phone,
    reason: Annotated[Reason, typer.Option("--reason", help="Why it is on the list.")] = (
        Reason.MANUAL
    ),
    note: Annotated[
        str | None, typer.Option("--note", help="Your words, kept with the entry (e.g. a ticket).")
    ] = None,
    region: Region = "US",
    database: Database = None,
) -> None:
    """Never call a number again, in any campaign; records who added it (cli:<user>) and when.

    A number already on the list keeps its entry (first reason, source and time): nothing changes.
    """
    e164 = _e164_or_exit(phone, region)
    source = f"cli:{_user()}"
    store, where = _open(database)
    try:
        row, added = store.add_suppression(e164, reason.value, source=source, note=note)
    finally:
        store.close()
    if added:
        console.print(f"added {e164} ({_described(row)}) to the suppression list of {where}")
    else:
        console.print(
            f"{e164} is already on the suppression list of {where} ({_described(row)}):"
            " kept as it was",
            markup=False,
        )


@app.command()
def remove(
    phone: Phone,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Remove an opt-out too (only on the person's own new consent)."
        ),
    ] = False,
    region: Region = "US",
    database: Database = None,
) -> None:
    """Take a number off the list: campaigns that have it may call it again.

    An opt-out (`opted_out`) is the person's own request: refused without --force.
    """
    from redialer.store.store import SuppressionKept

    e164 = _e164_or_exit(phone, region)
    store, where = _open(database)
    try:
        row = store.remove_suppression(e164, force=force)
    except SuppressionKept as exc:
        fail(str(exc), code=EXIT_INVALID)
    finally:
        store.close()
    if row is None:
        fail(f"{e164} is not on the suppression list of {where}: nothing removed")
    console.print(
        f"removed {e164} ({_described(row)}) from the suppression list of {where}:"
        " campaigns that have it may call it again",
        markup=False,
    )


@app.command("list")
def list_entries(
    reason: Annotated[
        ListedReason | None, typer.Option("--reason", help="Only entries with this reason.")
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", min=1, help="At most this many, newest first.")
    ] = (100),
    as_json: AsJson = False,
    database: Database = None,
) -> None:
    """The list, newest entries first: number, reason, when, who or what added it, note."""
    store, where = _open(database)
    wanted = reason.value if reason is not None else None
    try:
        rows = store.suppression_list(reason=wanted, limit=limit)
        total = store.suppression_count(reason=wanted) if len(rows) == limit else len(rows)
    finally:
        store.close()
    if as_json:
        print_json([_entry(r) for r in rows])
        return
    kind = f" with reason {wanted}" if wanted else ""
    if not rows:
        console.print(f"no number on the suppression list of {where}{kind}", markup=False)
        return
    for r in rows:
        console.print(
            f"{r.phone}  {r.reason:<9}  {r.created_at:%Y-%m-%d %H:%M:%S} UTC"
            f"  {_source(r)}"
            + (f"  campaign {r.campaign_id}" if r.campaign_id else "")
            + (f"  note: {r.note}" if r.note else ""),
            markup=False,
        )
    more = f" (--limit {limit}; {total - len(rows)} more)" if total > len(rows) else ""
    console.print(f"{len(rows)} of {total} number(s){kind} in {where}{more}", markup=False)


@app.command("import")
def import_file(
    file: Annotated[
        Path,
        typer.Argument(
            help="CSV: one number per line (e.g. a national do-not-call registry), optionally"
            " with a header and more columns (the first is read, or --column)."
        ),
    ],
    reason: Annotated[Reason, typer.Option("--reason", help="Why they are on the list.")] = (
        Reason.DNC
    ),
    source: Annotated[
        str | None,
        typer.Option(
            "--source",
            help="Name of the list, recorded as import:<NAME> (default: the file's name).",
        ),
    ] = None,
    column: Annotated[
        str | None, typer.Option("--column", help="Read the column with this header name.")
    ] = None,
    region: Region = "US",
    as_json: AsJson = False,
    database: Database = None,
) -> None:
    """Add every number of a file, in batches; a number already on the list keeps its entry.

    Importing the same file again adds nothing and changes nothing. A line that is not a number
    is counted and listed (the first 20, by line number) and never stops the import.
    """
    from redialer.store.suppression_import import ImportRefused, check_region, import_numbers

    try:
        region = check_region(region)
    except ValueError as exc:
        fail(str(exc), code=EXIT_INVALID)
    if not file.is_file():
        fail(f"FILE: {file}: no such file", code=EXIT_INVALID)
    store, where = _open(database)
    try:
        report = import_numbers(
            store,
            file,
            reason=reason.value,
            source=source,
            column=column,
            region=region,
            progress=_progress if sys.stderr.isatty() and not as_json else None,
        )
    except ImportRefused as exc:
        fail(f"{exc}; nothing was imported", code=EXIT_INVALID)
    finally:
        store.close()
    if as_json:
        print_json(_report(report, where))
    else:
        _print_report(report, where)
    if report.numbers and not report.valid:
        fail(f"no valid number in {file}: check --column and --region ({region})", code=EXIT_FAILED)


def _print_report(report: ImportReport, where: str) -> None:
    lines = [
        f"imported {report.file} into {where} in {report.seconds:.1f} s, as {report.reason}"
        f" (source {report.source})",
        f"  added:          {report.added}",
        f"  already there:  {report.already} (on the list before, kept as they were; or"
        " repeated in the file)",
        f"  invalid lines:  {report.invalid}",
    ]
    lines += [f"    line {i.line}: {i.value!r}: {i.why}" for i in report.invalid_lines]
    if report.invalid > len(report.invalid_lines):
        lines.append(f"    ... and {report.invalid - len(report.invalid_lines)} more")
    lines.append(
        f"  read column {report.column}"
        + (", after a header line" if report.header else " (no header line)")
    )
    if report.regional:
        lines.append(
            f"  {report.regional} number(s) without a country code read as {report.region}"
            " numbers (--region)"
        )
    for line in lines:
        console.print(line, markup=False)


def _report(report: ImportReport, where: str) -> dict[str, Any]:
    return {
        "file": report.file,
        "store": where,
        "reason": report.reason,
        "source": report.source,
        "added": report.added,
        "already": report.already,
        "invalid": report.invalid,
        "invalid_lines": [
            {"line": i.line, "value": i.value, "why": i.why} for i in report.invalid_lines
        ],
        "header": report.header,
        "column": report.column,
        "region": report.region,
        "regional": report.regional,
        "seconds": round(report.seconds, 3),
    }


def _progress(report: ImportReport) -> None:
    errors.print(f"  ... {report.numbers} lines read, {report.added} added", markup=False, end="\r")


def _entry(row: SuppressionRow) -> dict[str, Any]:
    return {
        "phone": row.phone,
        "reason": row.reason,
        "created_at": row.created_at.isoformat(),
        "source": row.source,
        "campaign_id": row.campaign_id,
        "note": row.note,
    }


def _source(row: SuppressionRow) -> str:
    return row.source or "source not recorded (added before revision 0005)"


def _described(row: SuppressionRow) -> str:
    return f"{row.reason}, by {_source(row)}, since {row.created_at:%Y-%m-%d %H:%M:%S} UTC" + (
        f", note: {row.note}" if row.note else ""
    )


def _e164_or_exit(phone: str, region: str) -> str:
    from redialer.store.suppression_import import check_region, normalise_number

    try:
        code = check_region(region)
    except ValueError as exc:
        fail(str(exc), code=EXIT_INVALID)
    try:
        return normalise_number(phone, code)
    except ValueError as exc:
        fail(f"PHONE {phone!r}: {exc}", code=EXIT_INVALID)


def _user() -> str:
    """Who ran the command, as the system names them (no login name in some containers)."""
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _open(database: str | None) -> tuple[Store, str]:
    """The store (made if new: a registry may be imported before any campaign) and its URL
    as shown (no password)."""
    from redialer.store.store import Store

    url = database or get_settings().database_url
    store = Store.open(url)
    shown = store.engine.url.render_as_string(hide_password=True)
    return store, shown.replace("postgresql+psycopg://", "postgresql://", 1)
