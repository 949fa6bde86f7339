"""RecipientWorkflow on the time-skipping server: real timers, hours and days in milliseconds."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from zoneinfo import ZoneInfo

from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from redialer.campaign import CampaignPolicy
from redialer.outcomes import FinalStatus, Outcome
from redialer.payloads import RecipientHistory, RecipientResult
from redialer.recipients import Recipient
from starter.campaigns import start_single_call
from tests.dialers import HeldDialer
from workflows.recipient import RecipientWorkflow

ADA = "+16505550199"  # maps to America/Los_Angeles
LA = ZoneInfo("America/Los_Angeles")

B, N, C, V, F = (
    Outcome.BUSY,
    Outcome.NO_ANSWER,
    Outcome.COMPLETED,
    Outcome.VOICEMAIL,
    Outcome.FAILED,
)


def policy(**fields: object) -> CampaignPolicy:
    return CampaignPolicy.model_validate(fields)


async def run_call(
    env: WorkflowEnvironment,
    harness_for,
    script: list[Outcome],
    pol: CampaignPolicy,  # type: ignore[no-untyped-def]
) -> tuple[RecipientResult, RecipientHistory, object]:
    h = harness_for(env, {ADA: script})
    async with h.worker():
        handle = await start_single_call(
            env.client,
            Recipient(phone=ADA, variables={"name": "Ada"}),
            pol,
            task_queue=h.task_queue,
        )
        result = await handle.result()
        history = await handle.query(RecipientWorkflow.history)
    return result, history, h


def gaps(history: RecipientHistory) -> list[float]:
    a = history.attempts
    return [(a[i + 1].started_at - a[i].ended_at).total_seconds() for i in range(len(a) - 1)]


async def test_seed_attempt_delays_are_slept_durably(time_skipping_env, harness_for):
    """300 / 3,600 / 10,800 s delays: four attempts, each no earlier than its delay."""
    pol = policy(retry={"strategy": {"type": "attempts", "delays": [300, 3600, 10800]}})
    result, history, _ = await run_call(time_skipping_env, harness_for, [B, N, B, C], pol)
    assert result.status is FinalStatus.COMPLETED
    assert [a.outcome for a in history.attempts] == [B, N, B, C]
    for gap, delay in zip(gaps(history), [300, 3600, 10800], strict=True):
        assert delay <= gap < delay + 60
    assert history.retry_group_id.startswith("call/+16505550199/")


async def test_max_retries_three_gives_four_attempts(time_skipping_env, harness_for):
    """fixed_delay with max_retries 3 places exactly 4 calls, then all_retries_exhausted."""
    pol = policy(retry={"strategy": {"type": "fixed_delay", "delay": 1800, "max_retries": 3}})
    result, history, h = await run_call(time_skipping_env, harness_for, [N], pol)
    assert result.status is FinalStatus.ALL_RETRIES_EXHAUSTED
    assert len(history.attempts) == 4
    assert all(1800 <= g < 1860 for g in gaps(history))
    assert len(h.ledger.dials_for(ADA)) == 4


async def test_voicemail_final_and_failed_retried_once(time_skipping_env, harness_for):
    """Voicemail ends voicemail_final by default; failed is retried once, then final `failed`."""
    pol = policy(retry={"strategy": {"type": "fixed_delay", "delay": 600, "max_retries": 5}})
    result, history, _ = await run_call(time_skipping_env, harness_for, [V], pol)
    assert (result.status, len(history.attempts)) == (FinalStatus.VOICEMAIL_FINAL, 1)
    result, history, _ = await run_call(time_skipping_env, harness_for, [F, F, C], pol)
    assert (result.status, len(history.attempts)) == (FinalStatus.FAILED, 2)


async def test_a_retried_call_costs_at_most_twelve_history_events_per_attempt(
    time_skipping_env, harness_for
):
    """Busy, no answer, completed: the final status is recorded with the last call, so three
    attempts cost 36 events (timer, dial activity, two workflow tasks and an AttemptCount
    upsert per retry), keeping long campaigns far from Temporal's history limits."""
    pol = policy(retry={"strategy": {"type": "attempts", "delays": [60, 60]}})
    h = harness_for(time_skipping_env, {ADA: [B, N, C]})
    async with h.worker():
        handle = await start_single_call(
            time_skipping_env.client, Recipient(phone=ADA), pol, task_queue=h.task_queue
        )
        result = await handle.result()
        events = (await handle.fetch_history()).events
    assert (result.status, result.attempts) == (FinalStatus.COMPLETED, 3)
    assert len(events) <= 3 * 12, [e.event_type for e in events]


async def test_calling_hours_and_pause_window_hold_real_timers(time_skipping_env, harness_for):
    """Retries wait out a Monday pause window and calling hours in the recipient's zone."""
    pol = policy(
        timezone="America/New_York",
        retry={"strategy": {"type": "fixed_delay", "delay": 3600, "max_retries": 6}},
        pause_windows={
            "monday": [{"start": "12:00", "end": "14:00"}, {"start": "18:00", "end": "23:59"}]
        },
        calling_hours={"start": "09:00", "end": "21:00"},
    )
    result, history, _ = await run_call(time_skipping_env, harness_for, [B] * 7, pol)
    assert result.status is FinalStatus.ALL_RETRIES_EXHAUSTED
    assert len(history.attempts) == 7
    for a in history.attempts:
        local = a.started_at.astimezone(LA)  # the number's own zone wins over the campaign's
        assert 9 * 60 <= local.hour * 60 + local.minute < 21 * 60, local
        if local.weekday() == 0:
            minute = local.hour * 60 + local.minute
            assert not (12 * 60 <= minute < 14 * 60 or minute >= 18 * 60), local


async def start_waiting(env, harness_for, script, pol):  # type: ignore[no-untyped-def]
    h = harness_for(env, {ADA: script})
    worker = h.worker()
    await worker.__aenter__()
    handle = await start_single_call(env.client, Recipient(phone=ADA), pol, task_queue=h.task_queue)
    return h, worker, handle


async def wait_for(handle: WorkflowHandle, predicate, timeout: float = 60.0) -> RecipientHistory:  # type: ignore[no-untyped-def,type-arg]
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        history = await handle.query(RecipientWorkflow.history)
        if predicate(history):
            return history
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met; last history: {history}")
        await asyncio.sleep(0.05)


async def test_opt_out_while_waiting_ends_and_suppresses(time_skipping_env, harness_for):
    """opt_out during a long wait ends the recipient at once; the number is suppressed for later."""
    pol = policy(retry={"strategy": {"type": "fixed_delay", "delay": 10800, "max_retries": 5}})
    with time_skipping_env.auto_time_skipping_disabled():
        h, worker, handle = await start_waiting(time_skipping_env, harness_for, [B], pol)
        try:
            history = await wait_for(
                handle, lambda x: x.next_attempt and x.next_attempt.attempt == 2
            )
            assert history.status == "scheduled"
            await handle.signal(RecipientWorkflow.opt_out)
            result = await handle.result()
        finally:
            await worker.__aexit__(None, None, None)
    assert result.status is FinalStatus.OPTED_OUT
    assert result.attempts == 1
    assert h.store.suppression_reason(ADA) == "opted_out"
    # A later call to the same number ends `opted_out` without dialing.
    result, history, h2 = await run_call(time_skipping_env, harness_for, [C], pol)
    assert result.status is FinalStatus.OPTED_OUT
    assert h2.ledger.dials_for(ADA) == h.ledger.dials_for(ADA)


async def test_cancel_while_waiting_ends_canceled(time_skipping_env, harness_for):
    """cancel during a wait ends the recipient canceled without another call."""
    pol = policy(retry={"strategy": {"type": "fixed_delay", "delay": 3600, "max_retries": 5}})
    with time_skipping_env.auto_time_skipping_disabled():
        h, worker, handle = await start_waiting(time_skipping_env, harness_for, [N], pol)
        try:
            await wait_for(handle, lambda x: x.next_attempt and x.next_attempt.attempt == 2)
            await handle.signal(RecipientWorkflow.cancel)
            result = await handle.result()
        finally:
            await worker.__aexit__(None, None, None)
    assert (result.status, result.attempts) == (FinalStatus.CANCELED, 1)


async def test_retry_now_skips_the_delay(time_skipping_env, harness_for):
    """retry_now dials without waiting out a three-hour delay."""
    pol = policy(retry={"strategy": {"type": "fixed_delay", "delay": 10800, "max_retries": 2}})
    with time_skipping_env.auto_time_skipping_disabled():
        h, worker, handle = await start_waiting(time_skipping_env, harness_for, [B, C], pol)
        try:
            await wait_for(handle, lambda x: x.next_attempt and x.next_attempt.attempt == 2)
            await handle.signal(RecipientWorkflow.retry_now)
            result = await handle.result()
            history = await handle.query(RecipientWorkflow.history)
        finally:
            await worker.__aexit__(None, None, None)
    assert result.status is FinalStatus.COMPLETED
    assert gaps(history)[0] < 600  # real seconds at most, not three hours


async def test_history_query_shows_next_attempt_and_deferral(time_skipping_env, harness_for):
    """Started outside calling hours, the query shows the first attempt's time and why it waits."""
    now_la = (await time_skipping_env.get_current_time()).astimezone(LA)
    opens = (now_la + timedelta(hours=2)).replace(second=0, microsecond=0)
    closes = opens + timedelta(minutes=30)
    pol = policy(calling_hours={"start": f"{opens:%H:%M}", "end": f"{closes:%H:%M}"})
    with time_skipping_env.auto_time_skipping_disabled():
        h, worker, handle = await start_waiting(time_skipping_env, harness_for, [C], pol)
        try:
            history = await wait_for(handle, lambda x: x.next_attempt is not None)
            await handle.signal(RecipientWorkflow.cancel)
            result = await handle.result()
        finally:
            await worker.__aexit__(None, None, None)
    nxt = history.next_attempt
    assert nxt is not None and nxt.attempt == 1
    assert nxt.at.astimezone(LA).strftime("%H:%M") == f"{opens:%H:%M}"
    assert [d.reason.value for d in nxt.deferred] == ["calling_hours"]
    assert (result.status, result.attempts) == (FinalStatus.CANCELED, 0)
    assert h.ledger.dials_for(ADA) == []


async def test_variables_reach_every_attempt(time_skipping_env, harness_for):
    """A recipient's variables are recorded unchanged on every attempt's call record."""
    pol = policy(retry={"strategy": {"type": "fixed_delay", "delay": 60, "max_retries": 2}})
    _, history, h = await run_call(time_skipping_env, harness_for, [B, B, C], pol)
    records = h.store.call_records_for(history.retry_group_id)
    assert [r.attempt for r in records] == [1, 2, 3]
    assert all(r.variables == {"name": "Ada"} for r in records)
    assert len({r.retry_group_id for r in records}) == 1


class RefusingDialer:
    """A provider that will never dial this number (a permanent error, not a busy line)."""

    async def dial(self, request):  # type: ignore[no-untyped-def]
        from redialer.dialers.base import PermanentDialError

        raise PermanentDialError(f"provider refuses {request.phone}: number on its block list")


async def test_a_permanent_dial_error_ends_the_recipient_failed(time_skipping_env, harness_for):
    """A non-retryable provider error ends the recipient `failed` (with the reason), not stuck."""
    h = harness_for(time_skipping_env)
    h.dialer = RefusingDialer()
    pol = policy(retry={"strategy": {"type": "fixed_delay", "delay": 60, "max_retries": 3}})
    async with h.worker():
        handle = await start_single_call(
            time_skipping_env.client, Recipient(phone=ADA), pol, task_queue=h.task_queue
        )
        result = await handle.result()
        history = await handle.query(RecipientWorkflow.history)
    assert (result.status, result.attempts) == (FinalStatus.FAILED, 0)
    assert history.final_reason is not None and "block list" in history.final_reason


async def _signal_during_last_call(env, harness_for, signal):  # type: ignore[no-untyped-def]
    """One call (no retries) reaches a live person; `signal` arrives while it is up."""
    h = harness_for(env, {ADA: [C]})
    h.dialer = held = HeldDialer(h.dialer)
    with env.auto_time_skipping_disabled():
        async with h.worker():
            handle = await start_single_call(
                env.client, Recipient(phone=ADA), policy(), task_queue=h.task_queue
            )
            await asyncio.wait_for(held.up.wait(), timeout=20)
            await handle.signal(signal)
            await _until_handled_signal(handle)  # the workflow acts on it while the call is up
            held.hang_up.set()
            result = await handle.result()
    return result, h


async def _until_handled_signal(handle: WorkflowHandle, timeout: float = 60.0) -> None:  # type: ignore[type-arg]
    """Until the signal is in the workflow's history and a workflow task after it completed."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        kinds = [e.event_type for e in (await handle.fetch_history()).events]
        if EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED in kinds:
            signaled = kinds.index(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED)
            if EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED in kinds[signaled:]:
                return
        assert asyncio.get_running_loop().time() < deadline, f"signal never handled: {kinds}"
        await asyncio.sleep(0.05)


async def test_a_cancel_during_the_last_call_leaves_its_status(time_skipping_env, harness_for):
    """The last call reached a person: a cancel that arrives during it does not make it canceled."""
    result, h = await _signal_during_last_call(
        time_skipping_env, harness_for, RecipientWorkflow.cancel
    )
    assert (result.status, result.attempts) == (FinalStatus.COMPLETED, 1)
    assert len(h.ledger.dials_for(ADA)) == 1


async def test_an_opt_out_during_the_last_call_still_suppresses(time_skipping_env, harness_for):
    """An opt-out during the last call keeps the call's status and still suppresses the number."""
    result, h = await _signal_during_last_call(
        time_skipping_env, harness_for, RecipientWorkflow.opt_out
    )
    assert (result.status, result.attempts) == (FinalStatus.COMPLETED, 1)
    assert h.store.suppression_reason(ADA) == "opted_out"


async def test_a_bad_policy_or_zone_from_another_client_ends_failed_without_a_dial(
    time_skipping_env: WorkflowEnvironment, harness_for
):
    """A client other than redialer's starter may send a policy or zone no rule accepts: the
    recipient ends `failed` saying why, instead of retrying its dial forever, and nobody is
    called."""
    h = harness_for(time_skipping_env, {ADA: [C]})
    bad_inputs = [
        {"phone": ADA, "zone": "UTC", "policy": {"retry": {"strategy": {"type": "sometimes"}}}},
        {"phone": ADA, "zone": "Mars/Olympus", "policy": {}},
    ]
    async with h.worker():
        for i, raw in enumerate(bad_inputs):
            result = await time_skipping_env.client.execute_workflow(
                "RecipientWorkflow",
                raw,  # hand-written JSON, as another SDK sends it (no campaign_id at all)
                id=f"call/bad-{i}-{h.task_queue}",
                task_queue=h.task_queue,
                result_type=RecipientResult,
                execution_timeout=timedelta(minutes=5),
            )
            assert result.status is FinalStatus.FAILED
            history = await time_skipping_env.client.get_workflow_handle(
                f"call/bad-{i}-{h.task_queue}"
            ).query(RecipientWorkflow.history)
            assert "invalid" in (history.final_reason or ""), history.final_reason
    assert h.ledger.placements() == {}
