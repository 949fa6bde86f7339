"""Temporal hands a small campaign's dials to workers beside a large campaign's backlog.

The store's fair share of lines only helps a dial a worker has received. Without fairness keys a
task queue is first in, first out: a 10-recipient campaign started behind a 10,000-recipient
one waits until every task queued before it has run (the lines bench saw no call in 90 s). With
fairness keys per campaign (workflows/ids.py) and the server's fairness on (starter/server.py),
its dial is handed out next. Without either, this test's small campaign came after all 24.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import pytest
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from redialer.campaign import CampaignSpec
from redialer.dialers.simulated import DialLedger, SimulatedDialer
from redialer.outcomes import Outcome
from redialer.settings import Settings
from redialer.store.store import Store
from starter import campaigns
from worker import build_worker
from workflows.ids import recipient_workflow_id

pytestmark = pytest.mark.devserver


async def dials_scheduled(env: WorkflowEnvironment, campaign_id: str, phones: list[str]) -> int:
    """Recipients whose dial has been scheduled (started or waiting for a worker)."""
    scheduled = 0
    for phone in phones:
        handle = env.client.get_workflow_handle(recipient_workflow_id(campaign_id, phone))
        with contextlib.suppress(RPCError):  # not started yet
            description = await handle.describe()
            scheduled += bool(description.raw_description.pending_activities)
    return scheduled


def spec(campaign_id: str, phones: list[str]) -> CampaignSpec:
    return CampaignSpec.model_validate(
        {
            "campaign_id": campaign_id,
            "timezone": "UTC",
            "retry": {"strategy": {"type": "fixed_delay", "delay": 60, "max_retries": 0}},
            "recipients": [{"phone": p} for p in phones],
        }
    )


async def test_a_small_campaign_is_not_queued_behind_a_large_ones_backlog(
    dev_env: WorkflowEnvironment, store: Store
):
    """A worker that runs two dials at a time, 24 dials of a large campaign queued in Temporal:
    a 2-recipient campaign started after them is dialed long before the backlog is through."""
    big = [f"+1415555{n:04d}" for n in range(700, 724)]
    small = [f"+1415555{n:04d}" for n in range(800, 802)]
    ledger = DialLedger(store)
    script = {p: [Outcome.NO_ANSWER] for p in big + small}
    dialer = SimulatedDialer(ledger=ledger, script=script, speed=30)  # calls of ~1 s
    queue = f"fair-{uuid.uuid4().hex[:8]}"
    settings = Settings(task_queue=queue, max_concurrent_activities=2)
    run = uuid.uuid4().hex[:6]
    async with build_worker(
        dev_env.client, settings=settings, store=store, dialer=dialer, task_queue=queue
    ):
        first = await campaigns.start_campaign(
            dev_env.client, spec(f"big-{run}", big), task_queue=queue
        )
        async with asyncio.timeout(60):  # every large-campaign dial is in Temporal's queue
            while await dials_scheduled(dev_env, f"big-{run}", big) < len(big):
                await asyncio.sleep(0.1)
        second = await campaigns.start_campaign(
            dev_env.client, spec(f"small-{run}", small), task_queue=queue
        )
        await asyncio.wait_for(asyncio.gather(first.result(), second.result()), 120)
    big_dials = [d for p in big for d in ledger.dials_for(p)]
    small_dials = [d for p in small for d in ledger.dials_for(p)]
    assert len(big_dials) == len(big) and len(small_dials) == len(small)
    small_first = min(d.claimed_at for d in small_dials)
    before = [d for d in big_dials if d.claimed_at < small_first]
    assert len(before) < len(big) // 2, (
        f"the small campaign's first dial came after {len(before)} of the large one's"
        f" {len(big)}: queued behind its backlog"
    )
