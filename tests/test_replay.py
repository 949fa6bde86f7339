"""Replay: workflow histories recorded from real runs must replay on the current code.

`tests/histories/*.json` are committed histories recorded by this file's recording test
(`REDIALER_RECORD_HISTORIES=<label> pytest tests/test_replay.py` writes `<label>-*.json`; `1`
writes them unlabelled). Histories of every earlier version stay: a change that makes the
workflow code non-deterministic for a run already in flight fails here, in CI, before it
reaches a worker. `campaign.json` and `recipient-*.json` predate the patches in the workflows.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from redialer.campaign import CampaignSpec
from redialer.outcomes import Outcome
from redialer.recipients import Recipient
from starter import campaigns
from workflows.campaign import CampaignWorkflow
from workflows.recipient import RecipientWorkflow
from workflows.sandbox import WORKFLOW_RUNNER

HISTORIES = Path(__file__).parent / "histories"
PHONES = ["+13125550170", "+13125550171", "+13125550172"]


def replayer() -> Replayer:
    return Replayer(
        workflows=[RecipientWorkflow, CampaignWorkflow],
        data_converter=pydantic_data_converter,
        workflow_runner=WORKFLOW_RUNNER,
    )


def committed() -> list[Path]:
    return sorted(HISTORIES.glob("*.json"))


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


async def test_fresh_histories_replay(time_skipping_env, harness_for):
    """Histories of a campaign run just now (signals, retries, pause, stop) replay cleanly."""
    script = {
        PHONES[0]: [Outcome.BUSY, Outcome.COMPLETED],
        PHONES[1]: [Outcome.NO_ANSWER] * 3,
        PHONES[2]: [Outcome.VOICEMAIL],
    }
    h = harness_for(time_skipping_env, script)
    spec = CampaignSpec.model_validate(
        {
            "campaign_id": "replay-demo",
            "long_living": True,
            "retry": {"strategy": {"type": "fixed_delay", "delay": 900, "max_retries": 2}},
            "pause_windows": {"sunday": [{"start": "22:00", "end": "06:00"}]},
            "recipients": [{"phone": p} for p in PHONES[:2]],
        }
    )
    client = time_skipping_env.client
    async with h.worker():
        spec = spec.model_copy(update={"campaign_id": f"replay-{h.task_queue[-8:]}"})
        handle = await campaigns.start_campaign(client, spec, task_queue=h.task_queue)
        await campaigns.add_recipients(client, spec.campaign_id, [Recipient(phone=PHONES[2])])
        await handle.signal(CampaignWorkflow.pause)
        await handle.signal(CampaignWorkflow.resume)
        while (await handle.query(CampaignWorkflow.progress)).final < 3:
            await time_skipping_env.sleep(600)
        await handle.signal(CampaignWorkflow.stop)
        await handle.result()
        histories = [await handle.fetch_history()]
        for phone in PHONES:
            recipient = client.get_workflow_handle(f"campaign/{spec.campaign_id}/recipient/{phone}")
            histories.append(await recipient.fetch_history())
    for history in histories:
        await replayer().replay_workflow(history)
    label = os.environ.get("REDIALER_RECORD_HISTORIES")
    if label:
        prefix = "" if label == "1" else f"{label}-"
        HISTORIES.mkdir(exist_ok=True)
        names = ["campaign"] + [f"recipient-{i}" for i in range(len(PHONES))]
        for name, history in zip(names, histories, strict=True):
            (HISTORIES / f"{prefix}{name}.json").write_text(history.to_json())
