"""The redialer worker: runs the recipient and campaign workflows and their activities.

`python worker.py` or `redialer worker`. Settings are validated once at start (a bad setting
exits before anything connects); SIGTERM and SIGINT shut down cleanly: both workers stop polling
at once (no new dial), and calls in progress finish within REDIALER_GRACEFUL_SHUTDOWN seconds
(a call cut off after that is resumed, not re-placed, by the next worker).
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import structlog
from temporalio import activity
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
    Worker,
)

from activities.campaign_ops import CampaignActivities
from activities.dialing import DialActivities
from redialer.answer_profile import AnswerProfile
from redialer.dialers.base import Dialer
from redialer.dialers.simulated import DialLedger, SimulatedDialer, load_script
from redialer.logs import configure_logging, secrets_of
from redialer.process_exit import exit_now
from redialer.pseudonyms import Pseudonyms
from redialer.settings import DialerKind, Settings, SettingsError, get_settings
from redialer.store.migrations import SchemaOutOfDate
from redialer.store.store import Store
from starter.client import connect
from workflows import search_attributes as sa
from workflows.campaign import CampaignWorkflow
from workflows.ids import campaign_task_queue
from workflows.recipient import RecipientWorkflow
from workflows.sandbox import WORKFLOW_RUNNER

log = structlog.get_logger("redialer.worker")

WORKFLOWS = [RecipientWorkflow, CampaignWorkflow]
#: Campaign activities at once per process (each pages through starts or signals, bounded inside).
CAMPAIGN_ACTIVITIES = 16
#: Threads for the store's calls (activities reach it through `asyncio.to_thread`). Python's
#: default, cores + 4, is 6 on a small machine for up to 200 activities in flight, and a store
#: call waiting its turn can hold up a call's slot renewal.
STORE_THREADS = 32


def use_store_threads() -> None:
    asyncio.get_running_loop().set_default_executor(
        ThreadPoolExecutor(max_workers=STORE_THREADS, thread_name_prefix="store")
    )


def build_dialer(settings: Settings, store: Store) -> Dialer:
    """The dialer `REDIALER_DIALER` names: the simulator, or a real provider."""
    if settings.dialer is DialerKind.TWILIO:
        from redialer.dialers.twilio import TwilioDialer

        return TwilioDialer(settings=settings, store=store)
    script = load_script(settings.simulator_script) if settings.simulator_script else None
    profile = AnswerProfile.load(settings.simulator_profile) if settings.simulator_profile else None
    return SimulatedDialer(
        ledger=DialLedger(store),
        script=script,
        seed=settings.simulator_seed,
        speed=settings.simulator_speed,
        profile=profile,
    )


class InFlight(Interceptor):
    """Activities running in this process, by name: a shutdown says how many calls it awaits."""

    def __init__(self) -> None:
        self.running: Counter[str] = Counter()

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _Counted(next, self.running)


class _Counted(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, running: Counter[str]) -> None:
        super().__init__(next)
        self._running = running

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        name = activity.info().activity_type
        self._running[name] += 1
        try:
            return await super().execute_activity(input)
        finally:
            self._running[name] -= 1


class Workers:
    """One process's workers: recipients on the task queue, campaigns on their own queue.

    Both register every workflow and activity (a campaign started before the split still runs);
    the split only decides where new work waits, so campaign pages never queue behind calls.
    """

    def __init__(
        self, recipients: Worker, campaigns: Worker, *, in_flight: InFlight | None = None
    ) -> None:
        self.recipients = recipients
        self.campaigns = campaigns
        self.task_queue = recipients.task_queue
        self.in_flight = in_flight or InFlight()

    async def __aenter__(self) -> Workers:
        await self.recipients.__aenter__()
        try:
            await self.campaigns.__aenter__()
        except BaseException:
            await self.recipients.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Both stop polling at once, then wait for their activities: one after the other, the
        recipients' worker would keep taking new dials while the campaigns' drained."""
        results = await asyncio.gather(
            self.campaigns.__aexit__(*exc),  # type: ignore[arg-type]
            self.recipients.__aexit__(*exc),  # type: ignore[arg-type]
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result


def build_worker(
    client: Client,
    *,
    settings: Settings,
    store: Store,
    dialer: Dialer,
    task_queue: str | None = None,
) -> Workers:
    """The workers with every workflow and activity; tests call this with their own pieces."""
    queue = task_queue or settings.task_queue
    dialing = DialActivities(
        store=store,
        dialer=dialer,
        account=settings.account_caps,
        line_waiters=min(settings.line_waiters, settings.max_concurrent_activities // 4),
        max_calls_per_number=settings.max_calls_per_number,
        rates_cache_seconds=settings.smart_rates_cache_seconds,
    )
    in_flight = InFlight()
    campaign = CampaignActivities(
        store=store,
        client=client,
        task_queue=queue,
        pseudonyms=Pseudonyms.from_settings(settings),
    )
    activities: list[Callable[..., Any]] = [
        dialing.dial,
        dialing.record_final,
        campaign.enqueue_recipients,
        campaign.start_recipients,
        campaign.count_recipients,
        campaign.control_campaign,
        campaign.opt_out_recipient,
    ]

    def worker(on: str, max_activities: int) -> Worker:
        return Worker(
            client,
            task_queue=on,
            workflows=WORKFLOWS,
            workflow_runner=WORKFLOW_RUNNER,
            activities=activities,
            max_concurrent_activities=max_activities,
            graceful_shutdown_timeout=timedelta(seconds=settings.graceful_shutdown),
            # A dial waiting at the front of a line heartbeats often: send it within 2 s, so a
            # cancel (stop, opt-out) reaches it at once. A call up heartbeats every 5 s anyway.
            max_heartbeat_throttle_interval=timedelta(seconds=2),
            interceptors=[in_flight],
        )

    return Workers(
        worker(queue, settings.max_concurrent_activities),
        worker(campaign_task_queue(queue), CAMPAIGN_ACTIVITIES),
        in_flight=in_flight,
    )


async def check_search_attributes(client: Client) -> None:
    """Refuse to start where the search attributes are missing: upserts would stall workflows."""
    try:
        response = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=client.namespace)
        )
    except Exception as exc:  # e.g. no operator permission on a hosted namespace: warn only
        log.warning("could not check search attributes", error=str(exc))
        return
    missing = [k.name for k in sa.ALL if k.name not in response.custom_attributes]
    if missing:
        raise SystemExit(
            f"search attributes missing on namespace {client.namespace!r}: {', '.join(missing)}."
            " Start the server with `redialer server`, or register them with"
            " `temporal operator search-attribute create --name CampaignId --type Keyword` (etc.)"
        )


async def run_worker(settings: Settings) -> None:
    configure_logging(
        fmt=settings.log_format,
        level=settings.log_level,
        log_pii=settings.log_pii,
        secrets=secrets_of(settings),
    )
    log.info("worker starting", **settings.safe_summary())
    use_store_threads()
    store = Store.open(settings.database_url, pseudonyms=Pseudonyms.from_settings(settings))
    client = await connect(settings)
    await check_search_attributes(client)
    worker = build_worker(
        client, settings=settings, store=store, dialer=build_dialer(settings, store)
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with worker:
        log.info(
            "worker polling",
            task_queue=worker.task_queue,
            campaign_task_queue=worker.campaigns.task_queue,
        )
        await stop.wait()
        running = worker.in_flight.running
        calls = running["dial"]
        grace = settings.graceful_shutdown
        log.info(
            f"shutting down: waiting up to {grace:g} s for {calls} calls in progress",
            grace_seconds=grace,
            calls_in_progress=calls,
            other_activities=sum(running.values()) - calls,
        )
    store.close()
    log.info("worker stopped")


def main() -> None:
    try:
        settings = get_settings()
    except SettingsError as exc:
        print("\n".join(exc.lines), file=sys.stderr)
        exit_now(2)
    try:
        asyncio.run(run_worker(settings))
    except SchemaOutOfDate as exc:  # the store needs `redialer db upgrade` first
        print(exc, file=sys.stderr)
        exit_now(2)
    except SystemExit as exc:
        exit_now(exc.code)
    exit_now(0)


if __name__ == "__main__":
    main()
