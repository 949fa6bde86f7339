"""Campaign-wide caps across worker processes, and campaigns beyond Temporal's per-run limits."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from sqlmodel import Session, select
from temporalio import activity, workflow
from temporalio.api.enums.v1 import WorkflowTaskFailedCause
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from bench.run import most_at_once
from redialer.campaign import CampaignSpec
from redialer.dialers.simulated import DialLedger
from redialer.payloads import CampaignResult
from redialer.store.call_caps import ACCOUNT, LINE, dial_rate_windows
from redialer.store.store import Store
from starter import campaigns
from tests.conftest import start_dev_server

pytestmark = pytest.mark.devserver

ROOT = Path(__file__).resolve().parent.parent


def test_overlap_counter():
    """The sweep counts overlaps exactly, treating touching intervals as sequential."""
    t = [datetime(2026, 1, 1, 0, 0, s) for s in range(10)]
    assert most_at_once([(t[0], t[3]), (t[1], t[4]), (t[2], t[5]), (t[5], t[6])]) == 3
    assert most_at_once([(t[0], t[1]), (t[1], t[2])]) == 1


async def run_on_two_workers(
    dev_env: WorkflowEnvironment,
    tmp_path: Path,
    spec: CampaignSpec,
    script: dict,
    speed: str,
    *,
    more: Sequence[CampaignSpec] = (),
    extra_env: dict[str, str] | None = None,
    before_more: Callable[[Store], Awaitable[object]] | None = None,
) -> tuple[CampaignResult, Store]:
    """Run the campaign (and `more`, side by side, once `before_more` returns) on two worker
    processes sharing one store; returns the first campaign's result (the others must complete
    too) and the store."""
    url = f"sqlite:///{tmp_path / 'calls.db'}"
    (tmp_path / "script.json").write_text(json.dumps(script))
    queue = f"cap-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
        "REDIALER_TASK_QUEUE": queue,
        "REDIALER_DATABASE_URL": url,
        "REDIALER_SIMULATOR_SCRIPT": str(tmp_path / "script.json"),
        "REDIALER_SIMULATOR_SPEED": speed,
        **(extra_env or {}),
    }
    Store.open(url).close()  # tables exist before two processes race to create them
    workers = [
        subprocess.Popen(
            [sys.executable, str(ROOT / "worker.py")],
            env=env,
            cwd=ROOT,
            stdout=(tmp_path / f"w{i}.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        for i in range(2)
    ]
    try:
        handles = [await campaigns.start_campaign(dev_env.client, spec, task_queue=queue)]
        if before_more is not None:
            watching = Store(url)
            try:
                await asyncio.wait_for(before_more(watching), 120)
            finally:
                watching.close()
        handles += [
            await campaigns.start_campaign(dev_env.client, s, task_queue=queue) for s in more
        ]
        results = await asyncio.wait_for(asyncio.gather(*(h.result() for h in handles)), 240)
        result = results[0]
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            w.wait(timeout=60)
    assert all(w.returncode == 0 for w in workers)
    return result, Store.open(url)


async def test_concurrency_cap_holds_across_two_worker_processes(
    dev_env: WorkflowEnvironment, tmp_path: Path
):
    """With two workers and slow calls, calls in progress never exceed max_concurrent_calls."""
    phones = [f"+1415555{n:04d}" for n in range(400, 414)]
    spec = CampaignSpec.model_validate(
        {
            "campaign_id": f"cap-{uuid.uuid4().hex[:6]}",
            "max_concurrent_calls": 3,
            "retry": {"strategy": {"type": "fixed_delay", "delay": 1, "max_retries": 1}},
            "recipients": [{"phone": p} for p in phones],
        }
    )
    script = {p: ["no_answer", "completed"] for p in phones}
    result, store = await run_on_two_workers(dev_env, tmp_path, spec, script, speed="60")
    try:
        assert result.by_status == {"completed": len(phones)}
        dials = [d for p in phones for d in DialLedger(store).dials_for(p)]
        assert len(dials) == 2 * len(phones)
        peak = most_at_once([(d.claimed_at, d.finished_at) for d in dials])  # type: ignore[misc]
        assert peak <= 3, f"{peak} calls were up at once"
        assert peak == 3  # the cap is used, not just respected
    finally:
        store.close()


async def test_account_lines_hold_across_campaigns_and_two_worker_processes(
    dev_env: WorkflowEnvironment, tmp_path: Path
):
    """REDIALER_MAX_CONCURRENT_CALLS=3 on two workers: two campaigns with no caps of their own
    never have more than three calls up between them, and use all three. A small campaign
    started while a large one fills every line and has a backlog gets its share at once: it is
    done long before the large one, not behind its whole backlog."""
    big = [f"+1415555{n:04d}" for n in range(600, 621)]
    small = [f"+1415555{n:04d}" for n in range(621, 623)]
    specs = [
        CampaignSpec.model_validate(
            {
                "campaign_id": f"lines-{name}-{uuid.uuid4().hex[:6]}",
                "recipients": [{"phone": p} for p in phones],
            }
        )
        for name, phones in (("big", big), ("small", small))
    ]

    async def lines_full(store: Store) -> None:
        while store.caps.usage(ACCOUNT).in_use < 3:
            await asyncio.sleep(0.05)

    script = {p: ["completed"] for p in big + small}
    result, store = await run_on_two_workers(
        dev_env,
        tmp_path,
        specs[0],
        script,
        speed="120",
        more=specs[1:],
        extra_env={"REDIALER_MAX_CONCURRENT_CALLS": "3"},
        before_more=lines_full,
    )
    try:
        assert result.by_status == {"completed": len(big)}
        ledger = DialLedger(store)
        big_dials = [d for p in big for d in ledger.dials_for(p)]
        small_dials = [d for p in small for d in ledger.dials_for(p)]
        assert len(big_dials) == len(big) and len(small_dials) == len(small)
        dials = big_dials + small_dials
        peak = most_at_once([(d.claimed_at, d.finished_at) for d in dials])  # type: ignore[misc]
        assert peak <= 3, f"{peak} calls were up at once across the account"
        assert peak == 3
        small_done = max(d.finished_at for d in small_dials if d.finished_at is not None)
        not_started = [d for d in big_dials if d.claimed_at > small_done]
        assert len(not_started) >= 5, (
            f"the small campaign finished with only {len(not_started)} of the large one's"
            " calls still to go: it waited behind the backlog"
        )
    finally:
        store.close()


async def test_dial_rate_holds_across_two_worker_processes(
    dev_env: WorkflowEnvironment, tmp_path: Path
):
    """With two workers and instant calls, max_calls_per_second holds: no second lets through
    more than the rate plus one window's worth, and the calls take as long as the rate says."""
    phones = [f"+1415555{n:04d}" for n in range(500, 516)]
    rate = 4
    spec = CampaignSpec.model_validate(
        {
            "campaign_id": f"rate-{uuid.uuid4().hex[:6]}",
            "max_calls_per_second": rate,
            "recipients": [{"phone": p} for p in phones],
        }
    )
    script = {p: ["completed"] for p in phones}
    result, store = await run_on_two_workers(dev_env, tmp_path, spec, script, speed="1000000")
    try:
        assert result.by_status == {"completed": len(phones)}
        dialed = {d.idempotency_key for p in phones for d in DialLedger(store).dials_for(p)}
        # When each call was let through, as the store decided it (the clock reading that picked
        # its window): how long a busy machine then takes to place the call does not blur it.
        with Session(store.engine) as session:
            admitted = dict(
                session.exec(  # type: ignore[call-overload]
                    select(LINE.holder, LINE.admitted_at).where(
                        LINE.campaign_id == spec.campaign_id
                    )
                ).all()
            )
    finally:
        store.close()
    assert len(dialed) == len(phones) and set(admitted) == dialed  # every call was let through
    starts = sorted(admitted.values())
    tickets, seconds = dial_rate_windows(rate)
    busiest = max(sum(1 for t in starts if s <= t < s + timedelta(seconds=1)) for s in starts)
    assert busiest <= rate + tickets, f"{busiest} calls were let through within one second"
    # One window's worth per window: the first and last call are whole windows apart.
    span = (starts[-1] - starts[0]).total_seconds()
    assert span >= (len(phones) / tickets - 2) * seconds, span


#: Temporal's per-run limits (2,000 pending children, activities and signals by default),
#: lowered on a server of the test's own so that a campaign past them takes seconds, not minutes.
LOW_LIMIT = 100
OVER_THE_LIMIT = (
    WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_PENDING_ACTIVITIES_LIMIT_EXCEEDED
)
LOWERED = [
    arg
    for key in ("numPendingChildExecutions", "numPendingActivities", "numPendingSignals")
    for arg in ("--dynamic-config-value", f"limit.{key}.error={LOW_LIMIT}")
]


@workflow.defn(sandboxed=False)
class PendingActivitiesProbe:
    """Schedules one more activity at once than the lowered limit allows."""

    @workflow.run
    async def run(self) -> None:
        await asyncio.gather(
            *(
                workflow.execute_activity(
                    probe_activity, start_to_close_timeout=timedelta(seconds=30)
                )
                for _ in range(LOW_LIMIT + 1)
            )
        )


@activity.defn
async def probe_activity() -> None:
    await asyncio.sleep(0.5)


@pytest_asyncio.fixture(scope="module")
async def limited_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await start_dev_server(*LOWERED)
    yield env
    await env.shutdown()


async def test_the_lowered_limit_is_in_force(limited_env: WorkflowEnvironment):
    """The check below can fail: on this server a run with more pending activities than the
    limit is refused (its workflow task fails, and it makes no progress)."""
    queue = f"probe-{uuid.uuid4().hex[:6]}"
    async with Worker(
        limited_env.client,
        task_queue=queue,
        workflows=[PendingActivitiesProbe],
        activities=[probe_activity],
    ):
        handle = await limited_env.client.start_workflow(
            PendingActivitiesProbe.run, id=queue, task_queue=queue
        )

        async def refused() -> bool:
            events = (await handle.fetch_history()).events
            return any(
                e.workflow_task_failed_event_attributes.cause == OVER_THE_LIMIT
                for e in events
                if e.HasField("workflow_task_failed_event_attributes")
            )

        deadline = asyncio.get_running_loop().time() + 60
        while not await refused():
            assert asyncio.get_running_loop().time() < deadline, "the limit was not enforced"
            await asyncio.sleep(0.2)
        await handle.terminate()


async def test_campaign_larger_than_temporals_per_run_limits_completes(
    limited_env: WorkflowEnvironment, harness_for
):
    """More recipients than a run may have pending children, activities or signals (the
    server's limits lowered to 100): all start and finish, and the campaign's history stays
    short (recipients are top-level workflows, started in bounded pages)."""
    h = harness_for(limited_env)  # unscripted numbers: the seeded random mix, instant calls
    n = 3 * LOW_LIMIT + 50
    phones = [f"+1312555{i:04d}" for i in range(n)]
    spec = CampaignSpec.model_validate(
        {
            "campaign_id": f"big-{uuid.uuid4().hex[:6]}",
            "recipients": [{"phone": p} for p in phones],
        }
    )
    async with h.worker():
        handle = await campaigns.start_campaign(limited_env.client, spec, task_queue=h.task_queue)
        result = await asyncio.wait_for(handle.result(), 400)
    assert result.total == n
    assert sum(result.by_status.values()) == n
    assert len(h.ledger.placements()) == n
    history = await handle.fetch_history()
    assert len(history.events) < 2 * n
