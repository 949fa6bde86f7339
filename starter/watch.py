"""`redialer watch`: the campaign as it runs, refreshed in place until it ends."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from rich.console import Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from redialer.payloads import CampaignProgress, CampaignState, RecipientHistory
from redialer.settings import get_settings
from redialer.store.call_caps import ACCOUNT, LineUsage
from redialer.store.store import Store
from starter import campaigns
from starter.client import connect
from starter.output import console

#: Recipients whose next attempt is looked up per refresh (a query each): a sample, not all.
NEXT_RETRY_SAMPLE = 40


async def _next_retries(client, store: Store, campaign_id: str) -> list[RecipientHistory]:  # type: ignore[no-untyped-def]
    ids = await asyncio.to_thread(store.active_workflow_ids, campaign_id, limit=NEXT_RETRY_SAMPLE)
    handles = [client.get_workflow_handle(i) for i in ids]
    results = await asyncio.gather(
        *(h.query("history", result_type=RecipientHistory) for h in handles),
        return_exceptions=True,
    )
    waiting = [r for r in results if isinstance(r, RecipientHistory) and r.next_attempt]
    return sorted(waiting, key=lambda r: r.next_attempt.at)[:5]  # type: ignore[union-attr]


def _lines(store: Store, campaign_id: str) -> tuple[LineUsage, LineUsage]:
    """The campaign's lines and the account's (in use, waiting for one)."""
    return store.caps.usage(campaign_id), store.caps.usage(ACCOUNT)


def _view(
    p: CampaignProgress,
    calls_up: int,
    upcoming: list[RecipientHistory],
    lines: tuple[LineUsage, LineUsage],
) -> Group:
    bar = Progress(
        TextColumn(f"[bold]{p.campaign_id}[/bold] {p.state.value}"),
        BarColumn(),
        MofNCompleteColumn(),
    )
    bar.add_task("", total=max(p.total, 1), completed=p.final)
    counts = Table(box=None, show_header=True, header_style="bold")
    counts.add_column("status")
    counts.add_column("recipients", justify="right")
    counts.add_row("calls in progress", str(calls_up))
    counts.add_row("waiting / queued", f"{p.active - calls_up} / {p.queued}")
    mine, account = lines
    if mine.in_use or mine.waiting:
        counts.add_row("lines in use / waiting for one", f"{mine.in_use} / {mine.waiting}")
    cap = get_settings().max_concurrent_calls
    if cap or account.in_use or account.waiting:
        counts.add_row(
            "account lines in use / waiting",
            f"{account.in_use}{f'/{cap}' if cap else ''} / {account.waiting}",
        )
    for status, n in sorted(p.by_status.items(), key=lambda kv: -kv[1]):
        counts.add_row(status, str(n))
    due = Table(box=None, show_header=True, header_style="bold", title="next retries due")
    for column in ("recipient", "attempt", "at", "deferred by"):
        due.add_column(column)
    now = datetime.now(UTC)
    for h in upcoming:
        next_attempt = h.next_attempt
        assert next_attempt is not None
        wait = max(0, int((next_attempt.at - now).total_seconds()))
        due.add_row(
            h.phone,
            str(next_attempt.attempt),
            f"in {wait // 60}m{wait % 60:02}s",
            ", ".join(d.reason.value for d in next_attempt.deferred) or "-",
        )
    return Group(bar, counts, due)


async def _watch(campaign_id: str, address: str, store: Store, every: float) -> CampaignProgress:
    client = await connect(get_settings(), address=address)
    with Live(console=console, refresh_per_second=4) as live:
        while True:
            p = await campaigns.progress(client, campaign_id)
            calls_up = await asyncio.to_thread(store.calls_in_progress, campaign_id)
            lines = await asyncio.to_thread(_lines, store, campaign_id)
            upcoming = await _next_retries(client, store, campaign_id)
            live.update(_view(p, calls_up, upcoming, lines))
            ended = p.state in (CampaignState.COMPLETED, CampaignState.STOPPED)
            if ended and p.final >= p.total:
                return p
            await asyncio.sleep(every)


def run_watch(campaign_id: str, *, address: str, store: Store, every: float) -> None:
    try:
        p = asyncio.run(_watch(campaign_id, address, store, every))
        console.print(f"campaign {campaign_id} {p.state.value}: {p.final}/{p.total} final")
    except KeyboardInterrupt:
        pass
    finally:
        store.close()
