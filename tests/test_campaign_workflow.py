"""CampaignWorkflow on the time-skipping server: fan-out, add, pause, resume, stop, long-living."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlmodel import Session
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle, WorkflowHistory
from temporalio.testing import WorkflowEnvironment

from redialer.campaign import CampaignSpec
from redialer.outcomes import FinalStatus, Outcome
from redialer.payloads import (
    CampaignInput,
    CampaignProgress,
    CampaignState,
    QueuedRecipient,
)
from redialer.recipients import Recipient
from redialer.store.dial_intents import DialIntents
from redialer.store.store import Store
from redialer.store.tables import CallLineRow
from starter import campaigns
from tests.dialers import HeldDialer
from workflows import search_attributes as sa
from workflows.campaign import CampaignWorkflow
from workflows.ids import campaign_task_queue, recipient_workflow_id
from workflows.recipient import RecipientWorkflow

B, N, C, V = Outcome.BUSY, Outcome.NO_ANSWER, Outcome.COMPLETED, Outcome.VOICEMAIL
PHONES = [f"+1650555{n:04d}" for n in range(100, 130)]
_ids = iter(range(10_000))


def spec(
    phones: list[str], *, delay: float = 3600, retries: int = 3, **extra: object
) -> CampaignSpec:
    return CampaignSpec.model_validate(
        {
            "campaign_id": f"c{next(_ids)}-{id(extra)}",
            "timezone": "America/Los_Angeles",
            "retry": {"strategy": {"type": "fixed_delay", "delay": delay, "max_retries": retries}},
            "recipients": [{"phone": p, "variables": {"i": i}} for i, p in enumerate(phones)],
            **extra,
        }
    )


async def wait_progress(
    handle: WorkflowHandle,  # type: ignore[type-arg]
    check: Callable[[CampaignProgress], bool],
    *,
    skip: WorkflowEnvironment | None = None,
    timeout: float = 60.0,
) -> CampaignProgress:
    """Poll the progress query; with `skip`, let simulated time run 5 minutes per poll."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        p = await handle.query(CampaignWorkflow.progress)
        if check(p):
            return p
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"progress never matched: {p}")
        if skip is not None:
            await skip.sleep(300)
        else:
            await asyncio.sleep(0.05)


async def test_fixed_campaign_completes_with_every_status_counted(time_skipping_env, harness_for):
    """A fixed campaign dials everyone through their retries and completes with exact counts."""
    phones = PHONES[:6]
    script = {
        phones[0]: [C],
        phones[1]: [B, C],
        phones[2]: [N, N, N, N],
        phones[3]: [V],
        phones[4]: [Outcome.INVALID_NUMBER],
        phones[5]: [B, N, C],
    }
    h = harness_for(time_skipping_env, script)
    s = spec(phones)
    async with h.worker():
        handle = await campaigns.start_campaign(
            time_skipping_env.client, s, task_queue=h.task_queue
        )
        result = await handle.result()
        progress = await handle.query(CampaignWorkflow.progress)
        # The campaign runs on its own queue: its pages never wait behind recipients' calls.
        assert (await handle.describe()).task_queue == campaign_task_queue(h.task_queue)
        recipient = time_skipping_env.client.get_workflow_handle(
            recipient_workflow_id(s.campaign_id, phones[0])
        )
        assert (await recipient.describe()).task_queue == h.task_queue
    assert result.state is CampaignState.COMPLETED
    assert result.by_status == {
        "completed": 3,
        "all_retries_exhausted": 1,
        "voicemail_final": 1,
        "invalid_number": 1,
    }
    assert (progress.total, progress.final, progress.active) == (6, 6, 0)
    # Every attempt is a call record of its own, grouped by the recipient workflow id.
    assert sorted(len(h.ledger.dials_for(p)) for p in phones) == [1, 1, 1, 2, 3, 4]
    assert all(n == 1 for n in h.ledger.placements().values())
    # The last dial recorded each final status with its call: the store, the Web UI's search
    # attributes and the workflow agree, and no extra round trip was made to record it.
    expected = {
        phones[0]: ("completed", 1),
        phones[1]: ("completed", 2),
        phones[2]: ("all_retries_exhausted", 4),
        phones[3]: ("voicemail_final", 1),
        phones[4]: ("invalid_number", 1),
        phones[5]: ("completed", 3),
    }
    assert await final_records(time_skipping_env, h.store, s.campaign_id, phones) == {
        phone: (status, n, n, False) for phone, (status, n) in expected.items()
    }


async def final_records(
    env: WorkflowEnvironment, store: Store, campaign_id: str, phones: list[str]
) -> dict[str, tuple[str | None, int, int | None, bool]]:
    """Per phone: (store status, store attempts, AttemptCount, whether record_final ran)."""
    rows = {r.phone: r for r in store.recipients_for_export(campaign_id)}
    found = {}
    for phone in phones:
        handle = env.client.get_workflow_handle(recipient_workflow_id(campaign_id, phone))
        attributes = (await handle.describe()).typed_search_attributes
        assert attributes.get(sa.CALL_STATUS) == rows[phone].status
        history = await handle.fetch_history()
        extra_round_trip = any(
            e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
            and e.marker_recorded_event_attributes.marker_name == "core_local_activity"
            for e in history.events
        )
        # The activity that recorded the final status told the campaign: the recipient sends
        # no signal of its own, which would cost it two events and a whole workflow task.
        assert not any(
            e.event_type == EventType.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED
            for e in history.events
        )
        found[phone] = (
            rows[phone].status,
            rows[phone].attempts,
            attributes.get(sa.ATTEMPT_COUNT),
            extra_round_trip,
        )
    return found


async def test_duplicate_numbers_are_called_once(time_skipping_env, harness_for):
    """A number listed twice, or added again later, is called once."""
    phones = PHONES[6:9]
    h = harness_for(time_skipping_env, {p: [C] for p in phones})
    s = spec(phones + [phones[0]], long_living=True)
    async with h.worker():
        handle = await campaigns.start_campaign(
            time_skipping_env.client, s, task_queue=h.task_queue
        )
        await wait_progress(handle, lambda p: p.final == 3, skip=time_skipping_env)
        await campaigns.add_recipients(
            time_skipping_env.client, s.campaign_id, [Recipient(phone=phones[1])]
        )
        await handle.signal(CampaignWorkflow.stop)
        result = await handle.result()
    assert result.total == 3
    assert [len(h.ledger.dials_for(p)) for p in phones] == [1, 1, 1]


async def test_long_living_campaign_stays_open_and_takes_new_recipients(
    time_skipping_env, harness_for
):
    """A long-living campaign stays open when everyone is final and calls recipients added later."""
    first, later = PHONES[9:11], PHONES[11:13]
    h = harness_for(time_skipping_env, {p: [B, C] for p in first + later})
    s = spec(first, long_living=True)
    async with h.worker():
        handle = await campaigns.start_campaign(
            time_skipping_env.client, s, task_queue=h.task_queue
        )
        await wait_progress(handle, lambda p: p.final == 2, skip=time_skipping_env)
        await time_skipping_env.sleep(7 * 24 * 3600)  # a week later it is still open
        desc = await handle.describe()
        assert desc.status is not None and desc.status.name == "RUNNING"
        await campaigns.add_recipients(
            time_skipping_env.client, s.campaign_id, [Recipient(phone=p) for p in later]
        )
        p = await wait_progress(handle, lambda p: p.final == 4, skip=time_skipping_env)
        assert p.by_status == {"completed": 4}
        await handle.signal(CampaignWorkflow.stop)
        result = await handle.result()
    assert result.state is CampaignState.STOPPED
    assert all(len(h.ledger.dials_for(x)) == 2 for x in first + later)


async def test_stop_cancels_waiting_recipients_and_dials_nobody_after(
    time_skipping_env, harness_for
):
    """After stop no call is placed; every waiting recipient ends canceled."""
    phones = PHONES[13:18]
    h = harness_for(time_skipping_env, {p: [N] for p in phones})
    s = spec(phones, delay=10800, retries=5)
    with time_skipping_env.auto_time_skipping_disabled():
        async with h.worker():
            handle = await campaigns.start_campaign(
                time_skipping_env.client, s, task_queue=h.task_queue
            )
            await wait_progress(handle, lambda p: p.total == 5)
            await _all_waiting(time_skipping_env, s.campaign_id, phones)
            await handle.signal(CampaignWorkflow.stop)
            result = await handle.result()
    assert result.state is CampaignState.STOPPED
    assert result.by_status == {"canceled": 5}
    assert all(len(h.ledger.dials_for(p)) == 1 for p in phones)
    assert h.store.campaign_state(s.campaign_id) == "stopped"


async def _all_waiting(env: WorkflowEnvironment, campaign_id: str, phones: list[str]) -> None:
    for phone in phones:
        for _ in range(1200):  # a minute: returns at once when it holds
            try:
                history = await campaigns.history(env.client, campaign_id, phone)
            except Exception:
                history = None
            if history and history.next_attempt and history.next_attempt.attempt == 2:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError(f"{phone} never waited for attempt 2")


async def test_pause_holds_retries_and_resume_continues(time_skipping_env, harness_for):
    """While paused nobody is dialed, however long, and the campaign does not poll (its history
    does not grow while nothing can move); after resume the retries go on."""
    phones = PHONES[18:21]
    h = harness_for(time_skipping_env, {p: [B, C] for p in phones})
    s = spec(phones, delay=600, retries=2)
    client = time_skipping_env.client
    async with h.worker():
        handle = await campaigns.start_campaign(client, s, task_queue=h.task_queue)
        with time_skipping_env.auto_time_skipping_disabled():
            await wait_progress(handle, lambda p: p.total == 3)
            await _all_waiting(time_skipping_env, s.campaign_id, phones)
            paused = await campaigns.pause(client, s.campaign_id)
            assert paused.state is CampaignState.PAUSED and "3 recipient(s) told" in paused.detail
            for phone in phones:
                await _wait_status(time_skipping_env, s.campaign_id, phone, "paused")
            await wait_progress(handle, lambda p: p.active == 3)  # the last reading is in
            events_before = len((await handle.fetch_history()).events)
        await time_skipping_env.sleep(2 * 24 * 3600)  # two days pass: still nobody dialed
        assert all(len(h.ledger.dials_for(p)) == 1 for p in phones)
        # A reading is an activity and a workflow task, ~10 events: a poll a minute would have
        # added ~28,000 in two days.
        assert len((await handle.fetch_history()).events) - events_before <= 20
        await campaigns.resume(client, s.campaign_id)
        result = await handle.result()
    assert result.by_status == {"completed": 3}
    assert all(len(h.ledger.dials_for(p)) == 2 for p in phones)


async def test_a_campaign_asleep_until_a_retry_hours_away_reads_the_store_rarely(
    time_skipping_env, harness_for
):
    """Every recipient waits for a retry 6 hours away: the campaign sleeps until it is due
    instead of reading the store every minute, and still counts the end at once."""
    phones = PHONES[21:23]
    h = harness_for(time_skipping_env, {p: [B, C] for p in phones})
    s = spec(phones, delay=6 * 3600, retries=1, long_living=True)
    client = time_skipping_env.client
    async with h.worker():
        handle = await campaigns.start_campaign(client, s, task_queue=h.task_queue)
        with time_skipping_env.auto_time_skipping_disabled():
            await _all_waiting(time_skipping_env, s.campaign_id, phones)
        await wait_progress(handle, lambda p: p.final == 2, skip=time_skipping_env, timeout=120)
        history = await handle.fetch_history()
        await campaigns.stop(client, s.campaign_id)
        await handle.result()
    readings = _activities(history, "count_recipients")
    assert readings <= 30, readings  # a reading a minute for 6 hours would be 360


async def test_control_commands_the_campaign_cannot_take_are_refused_with_the_reason(
    time_skipping_env, harness_for
):
    """pause, resume and stop are acknowledged, and refused (with why) when the state does not
    allow them, also once the campaign has ended; a refused command changes nothing."""
    phones = PHONES[23:24]
    h = harness_for(time_skipping_env, {p: [C] for p in phones})
    s = spec(phones, long_living=True)
    client = time_skipping_env.client
    async with h.worker():
        handle = await campaigns.start_campaign(client, s, task_queue=h.task_queue)
        with pytest.raises(campaigns.ControlRefused, match="is running: resume refused"):
            await campaigns.resume(client, s.campaign_id)
        assert (await campaigns.pause(client, s.campaign_id)).state is CampaignState.PAUSED
        with pytest.raises(campaigns.ControlRefused, match="is paused: pause refused"):
            await campaigns.pause(client, s.campaign_id)
        stopped = await campaigns.stop(client, s.campaign_id)
        assert stopped.state is CampaignState.STOPPED and stopped.detail.startswith("stopped")
        with pytest.raises(campaigns.ControlRefused, match="(is stopped|has ended)"):
            await campaigns.resume(client, s.campaign_id)
        result = await handle.result()
        with pytest.raises(campaigns.ControlRefused, match="has ended \\(completed\\)"):
            await campaigns.pause(client, s.campaign_id)
    assert result.state is CampaignState.STOPPED


async def _wait_status(env: WorkflowEnvironment, campaign_id: str, phone: str, status: str) -> None:
    for _ in range(1200):  # a minute: returns at once when it holds
        if (await campaigns.history(env.client, campaign_id, phone)).status == status:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{phone} never became {status}")


async def test_opt_out_through_the_campaign(time_skipping_env, harness_for):
    """opt-out ends a waiting recipient as opted_out and suppresses the number."""
    phones = PHONES[21:23]
    h = harness_for(time_skipping_env, {p: [N, C] for p in phones})
    s = spec(phones, delay=7200, retries=2)
    async with h.worker():
        handle = await campaigns.start_campaign(
            time_skipping_env.client, s, task_queue=h.task_queue
        )
        with time_skipping_env.auto_time_skipping_disabled():
            await wait_progress(handle, lambda p: p.total == 2)
            await _all_waiting(time_skipping_env, s.campaign_id, phones)
            await campaigns.opt_out(time_skipping_env.client, s.campaign_id, phones[0])
            await wait_progress(handle, lambda p: p.by_status.get("opted_out") == 1)
        result = await handle.result()
    assert result.by_status == {"opted_out": 1, "completed": 1}
    assert h.store.suppression_reason(phones[0]) == "opted_out"
    assert len(h.ledger.dials_for(phones[0])) == 1
    # Opting out ends without a call, so the workflow records that status itself.
    assert await final_records(time_skipping_env, h.store, s.campaign_id, phones) == {
        phones[0]: ("opted_out", 1, 1, True),
        phones[1]: ("completed", 2, 2, False),
    }


async def test_retry_now_on_a_campaign_recipient(time_skipping_env, harness_for):
    """retry_now sent to a recipient of a campaign dials it without the delay."""
    phone = PHONES[23]
    h = harness_for(time_skipping_env, {phone: [B, C]})
    s = spec([phone], delay=10800, retries=1)
    with time_skipping_env.auto_time_skipping_disabled():
        async with h.worker():
            handle = await campaigns.start_campaign(
                time_skipping_env.client, s, task_queue=h.task_queue
            )
            await _all_waiting(time_skipping_env, s.campaign_id, [phone])
            recipient = time_skipping_env.client.get_workflow_handle(
                f"campaign/{s.campaign_id}/recipient/{phone}"
            )
            await recipient.signal(RecipientWorkflow.retry_now)
            result = await asyncio.wait_for(handle.result(), 30)
    assert result.by_status == {FinalStatus.COMPLETED.value: 1}


async def test_counts_and_pause_survive_continue_as_new(time_skipping_env, harness_for):
    """Forced through several continue-as-new runs, the campaign loses no count, no recipient,
    and stays paused across a run boundary."""
    from redialer.payloads import AddRecipientsInput, CampaignInput
    from workflows.ids import campaign_workflow_id

    phones = [f"+1415555{n:04d}" for n in range(500, 540)]
    h = harness_for(time_skipping_env, {p: [B, C] for p in phones})
    client = time_skipping_env.client
    campaign_id = f"can-{h.task_queue[-8:]}"
    policy = spec([], delay=60, retries=1).policy().model_dump(mode="json")
    async with h.worker():
        handle = await client.start_workflow(
            CampaignWorkflow.run,
            CampaignInput(
                campaign_id=campaign_id, policy=policy, long_living=True, max_events_per_run=100
            ),
            id=campaign_workflow_id(campaign_id),
            task_queue=h.task_queue,
        )
        for i in range(0, 20, 4):  # small batches: many signals, many runs
            await handle.signal(
                CampaignWorkflow.add_recipients,
                AddRecipientsInput(recipients=[Recipient(phone=p) for p in phones[i : i + 4]]),
            )
        await wait_progress(handle, lambda p: p.final == 20, skip=time_skipping_env)
        first_run = handle.result_run_id
        await handle.signal(CampaignWorkflow.pause)
        await wait_progress(handle, lambda p: p.state is CampaignState.PAUSED)
        paused_run = (await handle.describe()).run_id
        for n, phone in enumerate(phones[20:] + phones[:3], start=1):  # one store trip each
            await handle.signal(
                CampaignWorkflow.add_recipients,
                AddRecipientsInput(recipients=[Recipient(phone=phone)]),
            )
            await wait_progress(
                handle, lambda p, n=n: p.total == min(20 + n, 40) or (n > 20 and p.total == 40)
            )
        await time_skipping_env.sleep(3600)
        paused = await handle.query(CampaignWorkflow.progress)
        assert (await handle.describe()).run_id != paused_run  # continued as new while paused
        assert paused.state is CampaignState.PAUSED and paused.total == 40 and paused.final == 20
        assert all(h.ledger.dials_for(p) == [] for p in phones[20:])  # nobody dialed while paused
        await handle.signal(CampaignWorkflow.resume)
        done = await wait_progress(handle, lambda p: p.final == 40, skip=time_skipping_env)
        await handle.signal(CampaignWorkflow.stop)
        result = await handle.result()
    assert done.by_status == {"completed": 40}
    assert result.total == 40 and result.by_status == {"completed": 40}
    assert all(len(h.ledger.dials_for(p)) == 2 for p in phones)  # the re-added three: not again
    runs, run_id = 0, first_run
    while run_id:  # follow the chain of runs: each ends by continuing as new, the last completes
        history = await client.get_workflow_handle(handle.id, run_id=run_id).fetch_history()
        assert len(history.events) < 400  # each run stays small
        runs += 1
        last = history.events[-1]
        run_id = (
            last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
            if last.HasField("workflow_execution_continued_as_new_event_attributes")
            else None
        )
    assert runs >= 2


async def test_a_bad_number_signalled_around_the_cli_is_skipped_and_the_rest_kept(
    time_skipping_env, harness_for
):
    """The workflow passes recipients on unparsed (parsing 100,000 numbers on each replay would
    stall it); the enqueue activity refuses an invalid one, keeps the others, and a fixed
    campaign still completes, its invalid recipient counted as received."""
    from redialer.payloads import AddRecipientsInput, QueuedRecipient

    phones = PHONES[26:29]
    h = harness_for(time_skipping_env, {p: [C] for p in phones})
    s = spec(phones[:1])
    async with h.worker():
        handle = await time_skipping_env.client.start_workflow(
            CampaignWorkflow.run,
            CampaignInput(
                campaign_id=s.campaign_id,
                policy=s.policy().model_dump(mode="json"),
                recipients=[QueuedRecipient(phone=phones[0])],
                expected_recipients=4,
            ),
            id=f"campaign/{s.campaign_id}",
            task_queue=campaign_task_queue(h.task_queue),
        )
        await handle.signal(
            CampaignWorkflow.add_recipients,
            AddRecipientsInput(
                recipients=[
                    QueuedRecipient(phone=phones[1]),
                    QueuedRecipient(phone="+1555", variables={"lost": False}),
                    Recipient(phone=phones[2]),
                ]
            ),
        )
        result = await handle.result()
    assert result.total == 3 and result.by_status == {"completed": 3}
    assert all(len(h.ledger.dials_for(p)) == 1 for p in phones)
    assert {r.phone for r in h.store.recipients_for_export(s.campaign_id)} == set(phones)


async def _until_idle(handle: WorkflowHandle) -> None:  # type: ignore[type-arg]
    """Until the campaign has started a reading timer of an hour or more (nothing can move)."""
    for _ in range(1200):
        for event in (await handle.fetch_history()).events:
            if event.event_type == EventType.EVENT_TYPE_TIMER_STARTED:
                fire = event.timer_started_event_attributes.start_to_fire_timeout
                if fire.seconds >= 3600:
                    return
        await asyncio.sleep(0.05)
    raise AssertionError("the campaign never went idle")


def _activities(history: WorkflowHistory, name: str) -> int:
    return sum(
        1
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and e.activity_task_scheduled_event_attributes.activity_type.name == name
    )


def _signals(history: WorkflowHistory, name: str) -> int:
    return sum(
        1
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
        and e.workflow_execution_signaled_event_attributes.signal_name == name
    )


async def test_a_campaigns_history_does_not_grow_with_its_recipients(
    time_skipping_env, harness_for
):
    """Who is final is read from the store, not signalled by each recipient: ten times the
    recipients, about the same history. (A steady stream of one signal per recipient would also
    keep a campaign from continuing as new: the server refuses while a signal is pending, until
    the run hits its signal cap.)"""
    h = harness_for(time_skipping_env)  # unscripted: the seeded random mix, instant calls
    histories = []
    for first, n in ((3000, 20), (3100, 200)):
        phones = [f"+1312555{i:04d}" for i in range(first, first + n)]
        s = spec(phones, retries=0)
        async with h.worker():
            handle = await campaigns.start_campaign(
                time_skipping_env.client, s, task_queue=h.task_queue
            )
            result = await handle.result()
            histories.append(await handle.fetch_history())
        store = h.store.recipient_counts(s.campaign_id)
        assert result.total == n
        assert result.by_status == {k.removeprefix("final:"): v for k, v in store.items()}
    small, large = histories
    assert _signals(large, "recipient_finished") == 0
    assert len(large.events) < len(small.events) + 100, (len(small.events), len(large.events))


async def test_a_stopped_campaign_counts_from_the_store_not_from_a_report_each(
    time_skipping_env, harness_for
):
    """After `stop`, the canceled recipients send no report each (100,000 of them would be more
    signals than one run may take); the campaign reads the store and its counts are exact."""
    phones = [f"+1415555{n:04d}" for n in range(600, 760)]
    h = harness_for(time_skipping_env, {p: [B, C] for p in phones})
    client = time_skipping_env.client
    s = spec(phones, delay=7200, retries=1)
    async with h.worker():
        handle = await campaigns.start_campaign(client, s, task_queue=h.task_queue)
        with time_skipping_env.auto_time_skipping_disabled():
            await wait_progress(handle, lambda p: p.total == 160 and p.queued == 0, timeout=60)
            await _all_waiting(time_skipping_env, s.campaign_id, phones)
            await _until_idle(handle)  # it sleeps until the retries, two hours away
            await handle.signal(CampaignWorkflow.stop)
            # In real time: a stopped campaign reads again soon, it does not sleep until retries
            # that will never come.
            result = await asyncio.wait_for(handle.result(), timeout=60)
        history = await handle.fetch_history()
    assert result.state is CampaignState.STOPPED
    assert result.by_status == {"canceled": 160}
    assert _signals(history, "recipient_finished") == 0
    assert all(len(h.ledger.dials_for(p)) == 1 for p in phones)
    assert h.store.recipient_counts(s.campaign_id) == {"final:canceled": 160}


async def test_a_long_stop_wait_continues_as_new_and_keeps_its_deadline(
    time_skipping_env, harness_for
):
    """A recipient still in a call after `stop` is waited for up to the grace period; the wait
    continues as new when it outgrows a run, carrying its deadline (not restarting it)."""
    phones = [f"+1415555{n:04d}" for n in range(800, 810)]
    h = harness_for(time_skipping_env, {p: [B, C] for p in phones})
    client = time_skipping_env.client
    campaign_id = f"stop-wait-{h.task_queue[-8:]}"
    stuck = "+14155550899"  # in a call that never ends, as the store sees it
    h.store.enqueue_recipients(
        campaign_id,
        [Recipient(phone=stuck)],
        workflow_id_for=lambda phone: recipient_workflow_id(campaign_id, phone),
    )
    h.store.mark_started(campaign_id, [stuck])
    async with h.worker():
        handle = await client.start_workflow(
            CampaignWorkflow.run,
            CampaignInput(
                campaign_id=campaign_id,
                policy=spec([], delay=7200, retries=1).policy().model_dump(mode="json"),
                recipients=[QueuedRecipient(phone=p) for p in phones],
                expected_recipients=len(phones),
                max_events_per_run=100,
            ),
            id=f"campaign/{campaign_id}",
            task_queue=campaign_task_queue(h.task_queue),
        )
        with time_skipping_env.auto_time_skipping_disabled():
            await wait_progress(handle, lambda p: p.total == 10 and p.queued == 0, timeout=60)
            await _all_waiting(time_skipping_env, campaign_id, phones)
            stopped_run = (await handle.describe()).run_id
            stopped_at = await time_skipping_env.get_current_time()
            await handle.signal(CampaignWorkflow.stop)
        # Bounded: a deadline restarted by every new run would keep the wait going forever.
        result = await asyncio.wait_for(handle.result(), timeout=60)
        last = await client.get_workflow_handle(handle.id).describe()
    assert result.state is CampaignState.STOPPED
    assert result.by_status == {"canceled": 10}  # the one still in a call is not final
    assert result.total == 11
    assert last.run_id != stopped_run  # the wait outgrew a run and continued as new
    assert last.close_time is not None
    waited = last.close_time - stopped_at
    assert timedelta(hours=2) <= waited < timedelta(hours=2, minutes=2), waited


async def test_recipients_the_counts_missed_are_still_called_and_counted(
    time_skipping_env, harness_for
):
    """An enqueue whose rows committed but whose result was lost leaves recipients the campaign
    never counted; before it ends, the store shows them, and they are called and counted."""
    counted, missed = PHONES[26], PHONES[27]
    h = harness_for(time_skipping_env, {counted: [C], missed: [C]})
    s = spec([counted])
    h.store.enqueue_recipients(  # as a lost enqueue result leaves it: in the store, uncounted
        s.campaign_id,
        [Recipient(phone=missed)],
        workflow_id_for=lambda phone: recipient_workflow_id(s.campaign_id, phone),
    )
    async with h.worker():
        handle = await campaigns.start_campaign(
            time_skipping_env.client, s, task_queue=h.task_queue
        )
        result = await handle.result()
    assert result.total == 2 and result.by_status == {"completed": 2}
    assert len(h.ledger.dials_for(missed)) == 1


async def test_a_cancel_reaches_a_recipient_waiting_for_a_line(time_skipping_env, harness_for):
    """A recipient whose dial waits for a free line (the campaign's one line is busy) and is
    canceled ends `canceled` at once, without waiting for the line, and is never dialed."""
    talking, waiting = PHONES[28], PHONES[29]
    h = harness_for(time_skipping_env, {talking: [C], waiting: [C]})
    h.dialer = held = HeldDialer(h.dialer)
    s = spec([talking, waiting], max_concurrent_calls=1)
    client = time_skipping_env.client
    with time_skipping_env.auto_time_skipping_disabled():
        async with h.worker():
            handle = await campaigns.start_campaign(client, s, task_queue=h.task_queue)
            await asyncio.wait_for(held.up.wait(), timeout=60)
            first = await _first_dialing(h.store, s.campaign_id, [talking, waiting])
            other = waiting if first == talking else talking
            second = client.get_workflow_handle_for(
                RecipientWorkflow.run, recipient_workflow_id(s.campaign_id, other)
            )
            await _until_waiting_for_a_line(h.store, s.campaign_id, other)
            await second.signal(RecipientWorkflow.cancel)
            try:  # while the line is still busy: the call up has not been hung up
                result = await asyncio.wait_for(second.result(), timeout=60)
            finally:
                held.hang_up.set()
            done = await handle.result()
    assert result.status is FinalStatus.CANCELED and result.attempts == 0
    assert h.ledger.dials_for(other) == []
    assert done.by_status == {"completed": 1, "canceled": 1}


async def _first_dialing(store: Store, campaign_id: str, phones: list[str]) -> str:
    for _ in range(1200):
        for phone in phones:
            if DialIntents(store).requests(f"{campaign_id}:{phone}:1"):
                return phone
        await asyncio.sleep(0.05)
    raise AssertionError("nobody dialed")


async def _until_waiting_for_a_line(store: Store, campaign_id: str, phone: str) -> None:
    """Until its dial stands in the campaign's line (waiting inside the worker, or sent back
    to retry later)."""
    key = f"{campaign_id}:{phone}:1"
    for _ in range(1200):
        with Session(store.engine) as session:
            row = session.get(CallLineRow, (campaign_id, key))
        if row is not None and row.admitted_at is None:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{key} never waited for a line")


def test_recipient_batches_are_bounded_in_bytes_as_well_as_in_count():
    """Large recipients travel in smaller batches, so no signal or start input nears 2 MB; a
    recipient larger than the byte bound travels alone."""
    from starter.campaigns import bounded_batches

    big = [QueuedRecipient(phone=p, variables={"note": "x" * 60_000}) for p in PHONES[:20]]
    batches = bounded_batches(big, count=1000, size=256 * 1024)
    assert [len(b) for b in batches] == [4, 4, 4, 4, 4]
    assert [q for b in batches for q in b] == big
    small = [QueuedRecipient(phone=p) for p in PHONES]
    assert [len(b) for b in bounded_batches(small, count=7, size=256 * 1024)] == [7, 7, 7, 7, 2]
    huge = [QueuedRecipient(phone=PHONES[0], variables={"note": "x" * 300_000})]
    assert bounded_batches(huge + small[:2], count=1000, size=256 * 1024) == [huge, small[:2]]


@pytest.mark.devserver
async def test_a_campaign_of_large_recipients_stays_under_temporals_payload_limits(
    dev_env, harness_for
):
    """40 recipients of 60 KiB each (2.4 MB in all, more than one payload may carry) start and
    finish on the real dev server."""
    phones = [f"+1650555{n:04d}" for n in range(700, 740)]
    h = harness_for(dev_env, {p: [C] for p in phones})
    s = CampaignSpec.model_validate(
        {
            "campaign_id": f"large-{h.task_queue[-8:]}",
            "recipients": [{"phone": p, "variables": {"note": "x" * 60_000}} for p in phones],
        }
    )
    async with h.worker():
        handle = await campaigns.start_campaign(dev_env.client, s, task_queue=h.task_queue)
        result = await asyncio.wait_for(handle.result(), timeout=300)
    assert result.by_status == {"completed": 40}
    assert all(r.variables == {"note": "x" * 60_000} for r in h.store.call_records(s.campaign_id))
