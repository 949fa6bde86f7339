"""`redialer report|export|watch`: insight from the call records, and a live view.

Reports and exports read the store (`REDIALER_DATABASE_URL`, or `--database`), which holds every
attempt; `watch` adds the campaign's live progress from Temporal.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from redialer.settings import get_settings
from starter.exports import DEFAULT_STATUSES, FORMATS, export_chunks, unknown_statuses
from starter.output import EXIT_INVALID, console, fail, print_json

if TYPE_CHECKING:
    from redialer.report import CampaignReport
    from redialer.store.store import Store

Database = Annotated[
    str | None, typer.Option("--database", help="Store URL (default: REDIALER_DATABASE_URL).")
]


def _store(database: str | None) -> Store:
    from redialer.store.store import Store

    return Store.open(database or get_settings().database_url)


def campaign_report(store: Store, campaign_id: str) -> CampaignReport:
    from redialer.report import AttemptRow, DeferralCount, RecipientRow, build_report

    recipients, records = store.report_rows(campaign_id)
    if not recipients and not records:
        fail(f"campaign {campaign_id!r}: no recipients or call records in this store")
    return build_report(
        campaign_id,
        (RecipientRow(*r) for r in recipients),
        (AttemptRow(*a) for a in records),
        (DeferralCount(*d) for d in store.deferral_counts(campaign_id)),
    )


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.1%}"


def _ratio(x: float | None) -> str:
    return "-" if x is None else f"{x:.4f}"


def _print_report(r: CampaignReport) -> None:
    console.print(
        f"[bold]{r.campaign_id}[/bold]: {r.recipients} recipients, {r.final} final,"
        f" {r.calls_placed} calls placed"
    )
    console.print(f"  connection rate        {_pct(r.connection_rate)}")
    console.print(f"  avg attempts to connect {r.average_attempts_to_connect or '-'}")
    console.print(
        f"  retry conversion rate  {_pct(r.retry_conversion_rate)}"
        f" ({r.completed_after_retry} of {r.recipients_retried} retried)"
    )
    console.print(f"  unreachable rate       {_pct(r.unreachable_rate)}")
    console.print("  attempt  calls  connected  rate     cumulative  gain")
    for a in r.attempts:
        console.print(
            f"  {a.attempt:>7}  {a.calls:>5}  {a.connected:>9}  {_pct(a.connection_rate):>7}"
            f"  {_pct(a.cumulative_rate):>10}  +{a.incremental_gain:.1%}"
        )
    console.print("  by status: " + ", ".join(f"{k} {v}" for k, v in r.by_status.items()))
    console.print("  outcomes:  " + ", ".join(f"{k} {v}" for k, v in r.outcomes.items()))
    if r.answer_rate_by_hour:
        console.print(
            "  answer rate by local hour: "
            + ", ".join(f"{h:02}h {_pct(b.rate)}" for h, b in r.answer_rate_by_hour.items())
        )
    if r.answer_rate_by_weekday:
        console.print(
            "  answer rate by weekday:    "
            + ", ".join(f"{d[:3]} {_pct(b.rate)}" for d, b in r.answer_rate_by_weekday.items())
        )
    if r.answer_rate_by_hour_of_week:
        from starter.plots import answer_rate_heatmap

        console.print(answer_rate_heatmap(r.answer_rate_by_hour_of_week))
    if r.deferrals:
        console.print("  deferrals by rule (attempts moved, recipients):")
        for d in r.deferrals:
            console.print(
                f"    {d.attempts:>6}  {d.recipients:>6}  {d.reason}: {d.rule}", markup=False
            )


def _print_comparison(reports: list[CampaignReport]) -> None:
    rows = [
        ("recipients", lambda r: str(r.recipients)),
        ("connection rate", lambda r: _pct(r.connection_rate)),
        ("avg attempts to connect", lambda r: str(r.average_attempts_to_connect or "-")),
        ("calls placed", lambda r: str(r.calls_placed)),
        ("calls per connection", lambda r: str(r.calls_per_connection or "-")),
        ("connections per call placed", lambda r: _ratio(r.connections_per_call)),
        ("retry conversion rate", lambda r: _pct(r.retry_conversion_rate)),
        ("unreachable rate", lambda r: _pct(r.unreachable_rate)),
    ]
    label_width = max(len(label) for label, _ in rows) + 2
    width = max(len(r.campaign_id) for r in reports) + 2
    console.print(
        " " * label_width + "".join(f"{r.campaign_id:>{width}}" for r in reports), markup=False
    )
    for label, value in rows:
        console.print(
            f"{label:<{label_width}}" + "".join(f"{value(r):>{width}}" for r in reports),
            markup=False,
        )


def report(
    campaigns: Annotated[list[str], typer.Argument(help="A campaign id, or two to compare (A/B).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    plot: Annotated[
        Path | None, typer.Option(help="Also draw the charts to this PNG file.")
    ] = None,
    database: Database = None,
) -> None:
    """Connection rates per attempt, retry conversion, outcomes, answer rate by hour, day and
    hour of the week (a 7 x 24 heat-map), and the deferrals by rule (calling hours, windows,
    caps, laws)."""
    if len(campaigns) > 2:
        fail("campaigns: give one campaign, or two to compare", code=EXIT_INVALID)
    store = _store(database)
    try:
        reports = [campaign_report(store, c) for c in campaigns]
    finally:
        store.close()
    if as_json:
        data = [r.model_dump(mode="json") for r in reports]
        print_json(data[0] if len(data) == 1 else {"campaigns": data})
    elif len(reports) == 2:
        _print_comparison(reports)
    else:
        _print_report(reports[0])
    if plot is not None:
        try:
            import matplotlib  # noqa: F401  - only to check it is installed
        except ImportError:
            fail("--plot needs matplotlib: pip install 'redialer[plot]'")
        from starter.plots import draw_report

        draw_report(reports, plot)
        if not as_json:
            console.print(f"charts written to {plot}")


def export(
    campaign_id: Annotated[str, typer.Argument(help="The campaign id.")],
    status: Annotated[str, typer.Option(help="Final statuses to export, comma-separated.")] = (
        ",".join(DEFAULT_STATUSES)
    ),
    fmt: Annotated[str, typer.Option("--format", help="csv or jsonl.")] = "csv",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File (default: stdout).")
    ] = None,
    database: Database = None,
) -> None:
    """The recipients to follow up: number, status, attempts, last outcome and variables."""
    from redialer.outcomes import FinalStatus

    statuses = [s.strip() for s in status.split(",") if s.strip()]
    for i, s in unknown_statuses(statuses):
        fail(
            f"--status[{i}]: {s!r}: not a final status; use "
            + ", ".join(sorted(f.value for f in FinalStatus)),
            code=EXIT_INVALID,
        )
    if fmt not in FORMATS:
        fail(f"--format: {fmt!r}: use csv or jsonl", code=EXIT_INVALID)
    store = _store(database)
    out = output.open("w", newline="") if output else sys.stdout
    try:
        for chunk in export_chunks(store, campaign_id, statuses, fmt):
            out.write(chunk)
    finally:
        store.close()
        if output:
            out.close()


def watch(
    campaign_id: Annotated[str, typer.Argument(help="The campaign id.")],
    address: Annotated[str | None, typer.Option("--address", envvar="TEMPORAL_ADDRESS")] = None,
    database: Database = None,
    every: Annotated[float, typer.Option(help="Seconds between refreshes.", min=0.2)] = 1.0,
) -> None:
    """A live view until the campaign ends (or Ctrl-C): progress, calls up, next retries due."""
    from starter.watch import run_watch

    run_watch(
        campaign_id,
        address=address or get_settings().temporal_address,
        store=_store(database),
        every=every,
    )
