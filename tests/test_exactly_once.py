"""Exactly one call per (number, attempt), proven by what reaches the dialer, not by our own
bookkeeping: the simulated dialer, like a provider, counts every place-call request per key."""

from __future__ import annotations

from redialer.campaign import CampaignPolicy
from redialer.outcomes import FinalStatus, Outcome
from redialer.recipients import Recipient
from redialer.store.dial_intents import DialIntents
from starter import campaigns
from starter.campaigns import start_single_call
from tests.dialers import DiesAfterPlacing, DuplicatingDialer
from tests.test_campaign_workflow import spec

ADA = "+16505550199"
B, C = Outcome.BUSY, Outcome.COMPLETED


def policy() -> CampaignPolicy:
    return CampaignPolicy.model_validate(
        {"retry": {"strategy": {"type": "fixed_delay", "delay": 600, "max_retries": 2}}}
    )


async def test_a_dial_whose_worker_died_after_placing_the_call_adopts_it(
    time_skipping_env, harness_for
):
    """The provider placed the call, then the dial died before recording it (as a SIGKILL
    would): the retried dial finds its intent, adopts that call, and places no second one."""
    h = harness_for(time_skipping_env, {ADA: [B, C]})
    h.dialer = dying = DiesAfterPlacing(h.dialer)
    async with h.worker():
        handle = await start_single_call(
            time_skipping_env.client, Recipient(phone=ADA), policy(), task_queue=h.task_queue
        )
        result = await handle.result()
    assert dying.died
    assert (result.status, result.attempts) == (FinalStatus.COMPLETED, 2)
    keys = h.ledger.placements()
    assert len(keys) == 2 and all(n == 1 for n in keys.values()), keys
    assert DialIntents(h.store).adoptions() == 1


async def test_a_duplicate_request_to_the_dialer_is_reported(time_skipping_env, harness_for):
    """The double-dial check can fail: a dialer that sends each request twice is caught, per key,
    by the same check the end-to-end tests and the bench use."""
    phones = ["+16505550181", "+16505550182"]
    h = harness_for(time_skipping_env, {p: [C] for p in phones})
    h.dialer = DuplicatingDialer(h.dialer)
    s = spec(phones)
    async with h.worker():
        handle = await campaigns.start_campaign(
            time_skipping_env.client, s, task_queue=h.task_queue
        )
        await handle.result()
    assert h.ledger.dialed_twice(f"{s.campaign_id}:") == {
        f"{s.campaign_id}:{p}:1": 2 for p in phones
    }
