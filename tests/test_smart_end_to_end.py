"""A `smart` recipient on the time-skipping server: its retries go to the hour the call records
say people answer, inside its span and calling hours; its history keeps the expected rate behind
each chosen time; and the recorded history replays on the current code.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from temporalio.client import WorkflowHistory

from redialer.campaign import CampaignPolicy
from redialer.outcomes import FinalStatus, Outcome
from redialer.recipients import Recipient
from starter.campaigns import start_single_call
from tests.test_answer_rates import add_calls, add_recipient
from tests.test_replay import HISTORIES, replayer
from workflows.recipient import RecipientWorkflow

ADA = "+16505550199"  # America/Los_Angeles
LA = ZoneInfo("America/Los_Angeles")
PAST = "past-evening-audience"


def seed_records(store) -> None:  # type: ignore[no-untyped-def]
    """A past campaign whose people answered at 18:00 local and hardly ever at other hours."""
    start = datetime(2026, 9, 7, tzinfo=LA)  # a Monday
    for n in range(60):
        phone = f"+1415555{n:04d}"
        add_recipient(store, PAST, phone, "America/Los_Angeles")
        calls = []
        for day in range(14):
            for hour in range(8, 21):
                at = (start + timedelta(days=day, hours=hour, minutes=n % 50)).astimezone(UTC)
                answered = (n + day) % 10 != 0 if hour == 18 else (n + day + hour) % 20 == 0
                calls.append((at, "completed" if answered else "no_answer", True))
        add_calls(store, PAST, phone, calls)


async def test_smart_retries_go_to_the_hour_people_answer_and_replay(
    time_skipping_env, harness_for, store
):
    seed_records(store)
    policy = CampaignPolicy.model_validate(
        {
            "timezone": "America/New_York",
            "calling_hours": {"start": "08:00", "end": "21:00"},
            "retry": {
                "strategy": {
                    "type": "smart",
                    "max_retries": 2,
                    "min_delay": 1800,
                    "max_delay": 86400,
                    "learn_from": [PAST],
                },
            },
        }
    )
    h = harness_for(time_skipping_env, {ADA: [Outcome.BUSY, Outcome.NO_ANSWER, Outcome.COMPLETED]})
    async with h.worker():
        handle = await start_single_call(
            time_skipping_env.client, Recipient(phone=ADA), policy, task_queue=h.task_queue
        )
        result = await handle.result()
        history = await handle.query(RecipientWorkflow.history)
        events = await handle.fetch_history()

    assert result.status is FinalStatus.COMPLETED
    first, *retries = history.attempts
    assert first.expected_answer_rate is None  # the first call is not a smart retry
    assert len(retries) == 2
    previous = first
    for retry in retries:
        local = retry.started_at.astimezone(LA)
        gap = (retry.started_at - previous.ended_at).total_seconds()
        assert 1800 <= gap <= 86400, gap
        assert local.hour == 18, local  # the records' hour, not the prior's 10:00 or 16:00
        assert retry.expected_answer_rate is not None and retry.expected_answer_rate > 0.6
        assert retry.chosen_because and "18:00" in retry.chosen_because
        previous = retry
    # The recorded history replays: the chosen times come from the dial's recorded result.
    await replayer().replay_workflow(
        WorkflowHistory.from_json(events.workflow_id, events.to_json())
    )
    label = os.environ.get("REDIALER_RECORD_HISTORIES")  # as tests/test_replay.py records
    if label:
        (HISTORIES / f"{label}-smart-recipient.json").write_text(events.to_json())
