"""The frequency cap end to end: two workers (each its own dial activities and its own store on one
database) and two campaigns calling the same numbers, on the local dev server, in real time.

The evidence is the simulated provider's own ledger: every call it placed, per number, with the
moment it was requested. No window of the cap's length may hold more calls than the cap, and
every recipient still ends final: a call the window refused was deferred, never dropped.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from redialer.allowed_time import DeferralReason
from redialer.campaign import CampaignSpec
from redialer.dialers.simulated import DialLedger, SimulatedDialer
from redialer.outcomes import Outcome
from redialer.settings import Settings
from redialer.store.store import Store, aware
from starter import campaigns
from worker import build_worker
from workflows.ids import recipient_workflow_id
from workflows.recipient import RecipientWorkflow

pytestmark = pytest.mark.devserver

#: One call per number in any 6 s: the retries below come after 1 s, so nearly every call after
#: a number's first has to wait for the window.
CAP = "1/6s"
WINDOW = timedelta(seconds=6)
#: The provider's clock (the wall) and the activity's (Temporal's) are read a moment apart: a
#: call's ledger time may trail its claim by this much. A cap that did not hold lets calls
#: through about a second apart (the retry delay) or at once (the two campaigns).
SLACK = timedelta(seconds=1.0)
PHONES = [f"+1312555{n:04d}" for n in range(610, 613)]


def spec(campaign_id: str) -> CampaignSpec:
    return CampaignSpec.model_validate(
        {
            "campaign_id": campaign_id,
            "timezone": "UTC",
            "retry": {"strategy": {"type": "fixed_delay", "delay": 1, "max_retries": 2}},
            "recipients": [{"phone": p} for p in PHONES],
        }
    )


def calls_in_a_window(times: list[datetime]) -> int:
    """The most calls any window of WINDOW (less the slack) holds."""
    times = sorted(times)
    return max(sum(1 for u in times if t <= u < t + WINDOW - SLACK) for t in times)


async def test_two_workers_and_two_campaigns_keep_one_call_per_number_per_window(
    dev_env: WorkflowEnvironment, sqlite_url: str
):
    """Each number: busy, then answered, in both campaigns (4 calls). Never two calls to one
    number within 6 s, whichever worker or campaign placed them; all six recipients complete;
    their histories and the store name the frequency cap as what moved their calls."""
    script = {p: [Outcome.BUSY, Outcome.COMPLETED] for p in PHONES}
    queue = f"freqcap-{uuid.uuid4().hex[:8]}"
    settings = Settings(task_queue=queue, max_calls_per_number=CAP)  # type: ignore[arg-type]
    stores = [Store.open(sqlite_url) for _ in range(2)]
    run = uuid.uuid4().hex[:6]
    ids = [f"freq-a-{run}", f"freq-b-{run}"]
    # Two connections, as two worker processes have (one client may not run two workers on one
    # task queue).
    other = await Client.connect(
        dev_env.client.service_client.config.target_host,
        namespace=dev_env.client.namespace,
        data_converter=pydantic_data_converter,
    )
    try:
        workers = [
            build_worker(
                client,
                settings=settings,
                store=store,
                dialer=SimulatedDialer(
                    ledger=DialLedger(store),
                    script=script,
                    instant=True,
                    clock=lambda: datetime.now(UTC),  # when the request really reached it
                ),
                task_queue=queue,
            )
            for client, store in zip([dev_env.client, other], stores, strict=True)
        ]
        async with workers[0], workers[1]:
            handles = [
                await campaigns.start_campaign(dev_env.client, spec(c), task_queue=queue)
                for c in ids
            ]
            results = await asyncio.wait_for(asyncio.gather(*(h.result() for h in handles)), 90)
            histories = [
                await dev_env.client.get_workflow_handle_for(
                    RecipientWorkflow.run, recipient_workflow_id(c, p)
                ).query(RecipientWorkflow.history)
                for c in ids
                for p in PHONES
            ]
        ledger = DialLedger(stores[0])
        for result in results:
            assert result.by_status == {"completed": len(PHONES)}, result
        for phone in PHONES:
            dials = ledger.dials_for(phone)
            assert len(dials) == 4 and all(d.placements == 1 for d in dials), dials
            times = [aware(d.started_at) for d in dials]
            assert calls_in_a_window(times) == 1, sorted(times)
        moved = {  # (campaign, number, attempt) whose history names the cap as a move
            (h.campaign_id, h.phone, a.attempt)
            for h in histories
            for a in h.attempts
            if any(d.reason is DeferralReason.FREQUENCY_CAP for d in a.deferred)
        }
        for phone in PHONES:  # a number's second call came 1 s after its first: it waited
            assert any(p == phone for _, p, _ in moved), (phone, moved)
        for c in ids:  # the report's evidence: the same attempts, once each
            counted = {(reason, rule): n for reason, rule, n, _ in stores[0].deferral_counts(c)}
            assert counted == {
                ("frequency_cap", "at most 1 calls to a number in 6s"): sum(
                    1 for m in moved if m[0] == c
                )
            }
    finally:
        for store in stores:
            store.close()
