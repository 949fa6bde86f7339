"""Replay: workflow histories recorded from real runs must replay on the current code.

`tests/histories/*.json` are committed histories recorded by this file's recording test
(`REDIALER_RECORD_HISTORIES=<label> pytest tests/test_replay.py -k fresh` writes
`<label>-*.json`). Histories of every released version stay (see the README, "Upgrading"): a
change that makes the workflow code non-deterministic for a run already in flight fails here, in
CI, before it reaches a worker.

The clock-perturbation tests replay each history with its workflow tasks' start times moved,
one at a time and all at once, by seconds to hours, earlier and later: what a worker taking over
after a crash may be handed (an activation stamped with a stale time). A workflow whose commands
depended on `workflow.now()` diverges from its history under some of these shifts.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from redialer.campaign import CampaignSpec
from redialer.outcomes import Outcome
from redialer.recipients import Recipient
from starter import campaigns
from tests.test_campaign_workflow import wait_progress
from workflows.campaign import CampaignWorkflow
from workflows.ids import recipient_workflow_id
from workflows.recipient import RecipientWorkflow
from workflows.sandbox import WORKFLOW_RUNNER

HISTORIES = Path(__file__).parent / "histories"
PHONES = ["+13125550170", "+13125550171", "+13125550172"]
TASK_STARTED = "EVENT_TYPE_WORKFLOW_TASK_STARTED"


def replayer() -> Replayer:
    return Replayer(
        workflows=[RecipientWorkflow, CampaignWorkflow],
        data_converter=pydantic_data_converter,
        workflow_runner=WORKFLOW_RUNNER,
    )


def committed() -> list[Path]:
    return sorted(HISTORIES.glob("*.json"))


def shifted(doc: dict[str, Any], shifts: dict[int, float]) -> dict[str, Any]:
    """The history with the start time of workflow task number i (0-based) moved by shifts[i]."""
    events = []
    task = 0
    for event in doc["events"]:
        if event["eventType"] == TASK_STARTED:
            if task in shifts:
                at = datetime.fromisoformat(event["eventTime"].replace("Z", "+00:00"))
                moved = at + timedelta(seconds=shifts[task])
                event = {**event, "eventTime": moved.isoformat().replace("+00:00", "Z")}
            task += 1
        events.append(event)
    return {**doc, "events": events}


def task_count(doc: dict[str, Any]) -> int:
    return sum(1 for e in doc["events"] if e["eventType"] == TASK_STARTED)


def perturbations(doc: dict[str, Any]) -> list[tuple[str, dict[int, float]]]:
    """Each workflow task alone an hour and a second earlier and later, then every task moved at
    random (seeded) by up to a day either way."""
    n = task_count(doc)
    cases = [(f"task {i} {s:+}s", {i: s}) for i in range(n) for s in (-3600.0, -1.0, 1.0, 3600.0)]
    for seed in range(3):
        rng = random.Random(seed)
        cases.append((f"all tasks, seed {seed}", {i: rng.uniform(-86400, 86400) for i in range(n)}))
    return cases


def test_histories_are_committed():
    """The replay suite has recorded histories of both workflows to check against."""
    names = {p.name for p in committed()}
    assert any("campaign" in n for n in names), names
    assert any("recipient" in n for n in names), names


@pytest.mark.parametrize("path", committed(), ids=lambda p: p.stem)
async def test_committed_history_replays(path: Path):
    """A recorded history replays on today's workflow code without non-determinism."""
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    await replayer().replay_workflow(history)


@pytest.mark.parametrize("path", committed(), ids=lambda p: p.stem)
async def test_history_replays_whatever_time_each_task_was_handed(path: Path):
    """The same history replays with any workflow task's clock moved earlier or later: no
    command depends on `workflow.now()`."""
    doc = json.loads(path.read_text())
    histories = [
        WorkflowHistory.from_json(f"{path.stem} ({label})", json.dumps(shifted(doc, shifts)))
        for label, shifts in perturbations(doc)
    ]

    async def each() -> AsyncIterator[WorkflowHistory]:
        for history in histories:
            yield history

    results = await replayer().replay_workflows(each(), raise_on_replay_failure=False)
    failed = {run: str(error)[:300] for run, error in results.replay_failures.items()}
    assert not failed, failed


def test_the_perturbation_moves_the_clock_the_workflow_reads():
    """The check above can fail: a workflow task's start time is what `workflow.now()` reads
    during replay, and the shift really changes it."""
    doc = json.loads(committed()[0].read_text())
    moved = shifted(doc, {0: 3600.0})
    times = [e["eventTime"] for e in doc["events"] if e["eventType"] == TASK_STARTED]
    moved_times = [e["eventTime"] for e in moved["events"] if e["eventType"] == TASK_STARTED]
    assert times[0] != moved_times[0] and times[1:] == moved_times[1:]


async def test_fresh_histories_replay(time_skipping_env, harness_for):
    """Histories of a campaign run just now (retries, a pause and resume while a recipient
    sleeps, retry_now, a stop) replay cleanly, also with their clocks moved."""
    script = {
        PHONES[0]: [Outcome.BUSY, Outcome.COMPLETED],
        PHONES[1]: [Outcome.NO_ANSWER] * 3,
        PHONES[2]: [Outcome.VOICEMAIL],
    }
    h = harness_for(time_skipping_env, script)
    client = time_skipping_env.client
    spec = CampaignSpec.model_validate(
        {
            "campaign_id": f"replay-{h.task_queue[-8:]}",
            "long_living": True,
            "retry": {"strategy": {"type": "fixed_delay", "delay": 900, "max_retries": 2}},
            "pause_windows": {"sunday": [{"start": "22:00", "end": "06:00"}]},
            "recipients": [{"phone": p} for p in PHONES[:2]],
        }
    )
    async with h.worker():
        handle = await campaigns.start_campaign(client, spec, task_queue=h.task_queue)
        first = client.get_workflow_handle(recipient_workflow_id(spec.campaign_id, PHONES[0]))
        second = client.get_workflow_handle(recipient_workflow_id(spec.campaign_id, PHONES[1]))
        with time_skipping_env.auto_time_skipping_disabled():
            await wait_progress(handle, lambda p: p.queued == 0 and p.total == 2)
            for recipient in (first, second):  # both asleep until their first retry
                await _until_asleep(recipient)
            await campaigns.pause(client, spec.campaign_id)
            await campaigns.resume(client, spec.campaign_id)
            await second.signal(RecipientWorkflow.retry_now)
        await campaigns.add_recipients(client, spec.campaign_id, [Recipient(phone=PHONES[2])])
        await wait_progress(handle, lambda p: p.final == 3, skip=time_skipping_env)
        await campaigns.stop(client, spec.campaign_id)
        await handle.result()
        histories = [await handle.fetch_history()]
        for phone in PHONES:
            recipient = client.get_workflow_handle(recipient_workflow_id(spec.campaign_id, phone))
            histories.append(await recipient.fetch_history())
    for history in histories:
        await replayer().replay_workflow(history)
    label = os.environ.get("REDIALER_RECORD_HISTORIES")
    if label:
        HISTORIES.mkdir(exist_ok=True)
        names = ["campaign"] + [f"recipient-{i}" for i in range(len(PHONES))]
        for name, history in zip(names, histories, strict=True):
            (HISTORIES / f"{label}-{name}.json").write_text(history.to_json())


async def _until_asleep(recipient: Any) -> None:
    """Until the recipient has made a call and sleeps until its next."""
    import asyncio

    for _ in range(600):
        history = await recipient.query(RecipientWorkflow.history)
        if history.attempts and history.status == "scheduled":
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{recipient.id} never went to sleep after a call")


def test_workflow_inputs_decode_without_number_or_zone_rules():
    """A recipient's input is plain data: decoding it (as every replay does) consults neither
    phonenumbers nor the zone database, so upgrading either cannot change a replay. A number
    and a zone those libraries would refuse today still decode as they were sent."""
    from temporalio.contrib.pydantic import pydantic_data_converter

    from redialer.payloads import CampaignInput, RecipientInput

    sent = RecipientInput(
        campaign_id="c1",
        phone="+1555",  # not a valid number by today's phonenumbers
        zone="Mars/Olympus_Mons",  # no such zone in today's tzdata
        policy={"timezone": "Mars/Olympus_Mons", "retry": {"strategy": {"type": "none"}}},
    )
    converter = pydantic_data_converter.payload_converter
    [payload] = converter.to_payloads([sent])
    assert converter.from_payloads([payload], [RecipientInput]) == [sent]
    campaign = CampaignInput(campaign_id="c1", policy={"timezone": "Mars/Olympus_Mons"})
    [payload] = converter.to_payloads([campaign])
    assert converter.from_payloads([payload], [CampaignInput]) == [campaign]
