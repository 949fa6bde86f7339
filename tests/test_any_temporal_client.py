"""Any Temporal client is a first-class client: campaigns driven by the `temporal` CLI alone.

A user of another language starts and drives redialer with their own Temporal SDK or the
`temporal` CLI: hand-written JSON input on the documented task queues, the documented signals,
queries and updates, and the search attributes to find what runs. These tests do only that (the
worker under test is redialer's own, in process, with the simulated dialer), with the very JSON
the README's "Driving redialer from any Temporal client" section shows.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import subprocess
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from redialer.binaries import find_binary
from redialer.outcomes import Outcome
from tests.fault_helpers import DEADLINE
from workflows.ids import campaign_task_queue

pytestmark = pytest.mark.devserver

README = Path(__file__).resolve().parent.parent / "README.md"
SECTION = "## Driving redialer from any Temporal client"

# ---- the README's examples, verbatim ------------------------------------------------------------

LONG_LIVING_INPUT = """\
{
  "campaign_id": "renewals",
  "long_living": true,
  "policy": {
    "timezone": "America/Chicago",
    "retry": {
      "strategy": {"type": "fixed_delay", "delay": "PT10M", "max_retries": 2},
      "retry_on": ["no_answer", "busy"]
    },
    "max_concurrent_calls": 5
  }
}"""

FIXED_INPUT = """\
{
  "campaign_id": "renewals-march",
  "policy": {
    "timezone": "America/Chicago",
    "retry": {"strategy": {"type": "attempts", "delays": ["PT5M", "PT1H"]}}
  },
  "recipients": [
    {"phone": "+13125550150"},
    {"phone": "+13125550151", "variables": {"name": "Ada"}}
  ],
  "expected_recipients": 2
}"""

ADD_RECIPIENTS = """\
{
  "recipients": [
    {"phone": "+13125550147", "variables": {"name": "Ada"}, "metadata": {"crm_id": "A-1"}},
    {"phone": "+13125550148", "timezone": "America/New_York"}
  ]
}"""

#: A number opted out before it is added: it ends `opted_out` without a call.
ADD_OPTED_OUT = """{"recipients": [{"phone": "+13125550149"}]}"""

PAUSE = """{"action": "pause"}"""
RESUME = """{"action": "resume"}"""
OPT_OUT = """{"action": "opt_out", "phone": "+13125550149"}"""

SINGLE_CALL_INPUT = """\
{
  "campaign_id": null,
  "phone": "+13125550152",
  "zone": "America/Chicago",
  "variables": {"name": "Ada"},
  "policy": {"retry": {"strategy": {"type": "fixed_delay", "delay": "PT10M", "max_retries": 2}}}
}"""

EXAMPLES = [
    LONG_LIVING_INPUT,
    FIXED_INPUT,
    ADD_RECIPIENTS,
    ADD_OPTED_OUT,
    PAUSE,
    RESUME,
    OPT_OUT,
    SINGLE_CALL_INPUT,
]

RETRIED, ANSWERED = "+13125550147", "+13125550148"  # in ADD_RECIPIENTS
OPTED_OUT = "+13125550149"  # in OPT_OUT and ADD_OPTED_OUT
SINGLE = "+13125550152"  # in SINGLE_CALL_INPUT
FINAL = {"completed", "opted_out"}  # the statuses these tests' recipients end in


# ---- the CLI ------------------------------------------------------------------------------------


class TemporalCli:
    """The `temporal` binary against the dev server, as a user runs it (TEMPORAL_ADDRESS set)."""

    def __init__(self, env: WorkflowEnvironment, files: Path) -> None:
        self.binary = find_binary("temporal")
        self.files = files
        self.env = {
            **os.environ,
            "TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
            "TEMPORAL_NAMESPACE": env.client.namespace,
        }

    def file(self, name: str, text: str) -> str:
        """A JSON file for `--input-file`, as a user writes one."""
        path = self.files / name
        path.write_text(text)
        return str(path)

    async def run(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        out = await asyncio.to_thread(
            subprocess.run,
            [self.binary, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if ok:
            assert out.returncode == 0, f"temporal {' '.join(args)}: {out.stderr}{out.stdout}"
        return out

    async def json(self, *args: str) -> Any:
        out = await self.run(*args, "-o", "json")
        return json.loads(out.stdout) if out.stdout.strip() else None

    async def query(self, workflow_id: str, query: str) -> dict[str, Any]:
        answer = await self.json("workflow", "query", "--workflow-id", workflow_id, "--type", query)
        [result] = answer["queryResult"]
        return result  # type: ignore[no-any-return]

    async def update(self, workflow_id: str, name: str, payload: str) -> dict[str, Any]:
        answer = await self.json(
            "workflow",
            "update",
            "execute",
            "--workflow-id",
            workflow_id,
            "--name",
            name,
            "--input",
            payload,
        )
        return answer["result"]  # type: ignore[no-any-return]

    async def signal(self, workflow_id: str, name: str, *, input_file: str | None = None) -> None:
        args = ["workflow", "signal", "--workflow-id", workflow_id, "--name", name]
        await self.run(*args, *(["--input-file", input_file] if input_file else []))

    async def listed(self, query: str) -> set[str]:
        rows = await self.json("workflow", "list", "--query", query) or []
        return {row["execution"]["workflowId"] for row in rows}

    async def describe(self, workflow_id: str) -> dict[str, Any]:
        answer = await self.json("workflow", "describe", "--workflow-id", workflow_id)
        return answer["workflowExecutionInfo"]  # type: ignore[no-any-return]


def search_attributes(info: dict[str, Any]) -> dict[str, Any]:
    """A described workflow's search attributes, decoded (the CLI prints the raw payloads)."""
    fields = info.get("searchAttributes", {}).get("indexedFields", {})
    return {name: json.loads(base64.b64decode(p["data"])) for name, p in fields.items()}


@dataclass
class Seen:
    """A check's answer (falsy until the check holds) and what it saw, for a timeout to show."""

    value: Any
    shown: Any


async def until(
    check: Callable[[], Awaitable[Seen]], what: str, *, timeout: float = DEADLINE
) -> Any:
    """Poll `check` until its answer holds (visibility and the campaign's counts are eventually
    consistent), and return the answer."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not (seen := await check()).value:
        assert asyncio.get_running_loop().time() < deadline, (
            f"{what}: not within {timeout:g} s; last seen: {seen.shown!r}"
        )
        await asyncio.sleep(0.3)
    return seen.value


def with_id(example: str, campaign_id: str) -> str:
    """The README's start input with a campaign id of this test's own (the dev server is shared
    by the whole session)."""
    return json.dumps({**json.loads(example), "campaign_id": campaign_id})


# ---- the tests ----------------------------------------------------------------------------------


async def test_a_long_living_campaign_driven_by_the_temporal_cli_alone(
    dev_env: WorkflowEnvironment, harness_for, tmp_path: Path
):
    """Started, fed, paused, resumed, told to opt a number out, inspected, listed by CampaignId
    and stopped with nothing but `temporal` commands and hand-written JSON."""
    h = harness_for(
        dev_env,
        {RETRIED: [Outcome.NO_ANSWER, Outcome.COMPLETED], ANSWERED: [Outcome.COMPLETED]},
    )
    cli = TemporalCli(dev_env, tmp_path)
    campaign_id = f"renewals-{uuid.uuid4().hex[:8]}"
    campaign = f"campaign/{campaign_id}"

    def recipient(phone: str) -> str:
        return f"campaign/{campaign_id}/recipient/{phone}"

    async def progress() -> dict[str, Any]:
        return await cli.query(campaign, "progress")

    async with h.worker():
        await cli.run(
            "workflow", "start",
            "--type", "CampaignWorkflow",
            "--task-queue", campaign_task_queue(h.task_queue),
            "--workflow-id", campaign,
            "--id-reuse-policy", "RejectDuplicate", "--fail-existing",
            "--input-file", cli.file("renewals.json", with_id(LONG_LIVING_INPUT, campaign_id)),
        )  # fmt: skip
        await cli.signal(
            campaign, "add_recipients", input_file=cli.file("more.json", ADD_RECIPIENTS)
        )

        # Both are dialed once: one answers, the other sleeps ten minutes until its retry.
        await until(lambda: _dials(h, {RETRIED: 1, ANSWERED: 1}), "both recipients dialed once")
        asleep = await until(lambda: _asleep(cli, recipient(RETRIED)), "the retry scheduled")
        assert [a["outcome"] for a in asleep["attempts"]] == ["no_answer"]
        assert asleep["campaign_id"] == campaign_id and asleep["phone"] == RETRIED
        assert asleep["timezone"] == "America/Chicago"  # the number's own zone
        assert asleep["next_attempt"]["attempt"] == 2
        answered = await cli.query(recipient(ANSWERED), "history")
        assert answered["status"] == "completed" and len(answered["attempts"]) == 1
        assert answered["timezone"] == "America/New_York"  # the recipient's own `timezone`
        counted = await until(lambda: _progress_is(progress, final=1), "one recipient final")
        assert counted == {
            "campaign_id": campaign_id,
            "state": "running",
            "total": 2,
            "final": 1,
            "active": 1,
            "queued": 0,
            "by_status": {"completed": 1},
        }

        # An acknowledged pause and resume: the update answers once the recipients were told.
        paused = await cli.update(campaign, "control", PAUSE)
        assert paused["state"] == "paused"
        assert paused["detail"].startswith(f"paused: {counted['active']} recipient(s) told")
        refused = await cli.run(
            "workflow", "update", "execute",
            "--workflow-id", campaign, "--name", "control", "--input", PAUSE,
            ok=False,
        )  # fmt: skip
        assert refused.returncode == 1
        assert f"campaign {campaign_id} is paused: pause refused" in refused.stderr
        assert (await cli.query(recipient(RETRIED), "history"))["status"] == "paused"
        resumed = await cli.update(campaign, "control", RESUME)
        assert resumed == {"state": "running", "detail": "resumed: 1 recipient(s) told"}

        # The sleeping recipient, told to retry now, is dialed again and answers.
        await cli.signal(recipient(RETRIED), "retry_now")
        await until(lambda: _dials(h, {RETRIED: 2, ANSWERED: 1}), "the retry dialed")
        retried = await until(
            lambda: _final_history(cli, recipient(RETRIED)), "the retried recipient final"
        )
        assert [a["outcome"] for a in retried["attempts"]] == ["no_answer", "completed"]
        assert len(retried["attempts"]) == len(h.ledger.dials_for(RETRIED))

        # A number opted out through the campaign, then added: it ends without a call.
        opted = await cli.update(campaign, "control", OPT_OUT)
        assert opted["state"] == "running" and opted["detail"]
        await cli.signal(
            campaign, "add_recipients", input_file=cli.file("later.json", ADD_OPTED_OUT)
        )
        last = await until(lambda: _progress_is(progress, final=3), "every recipient final")
        assert last["by_status"] == {"completed": 2, "opted_out": 1}
        assert last["state"] == "running" and last["active"] == last["queued"] == 0
        assert (await cli.query(recipient(OPTED_OUT), "history"))["status"] == "opted_out"
        assert h.ledger.dials_for(OPTED_OUT) == []

        # Found by CampaignId: the campaign itself (which set the attribute; no starter did)
        # and its recipients.
        everyone = {campaign} | {recipient(p) for p in (RETRIED, ANSWERED, OPTED_OUT)}
        listed = await until(
            lambda: _listed_exactly(cli, f'CampaignId = "{campaign_id}"', everyone),
            "the campaign and its recipients listed by CampaignId",
        )
        assert listed == everyone
        done = f'CampaignId = "{campaign_id}" AND CallStatus = "completed"'
        assert await until(
            lambda: _listed_exactly(cli, done, {recipient(RETRIED), recipient(ANSWERED)}),
            "the completed recipients listed by CallStatus",
        )
        current = (
            f'CampaignId = "{campaign_id}" AND WorkflowType = "CampaignWorkflow"'
            ' AND ExecutionStatus = "Running"'
        )
        assert await until(
            lambda: _listed_exactly(cli, current, {campaign}), "the running campaign listed"
        )
        described = await cli.describe(campaign)
        assert described["status"] == "WORKFLOW_EXECUTION_STATUS_RUNNING"
        assert described["taskQueue"] == f"{h.task_queue}-campaigns"
        assert search_attributes(described)["CampaignId"] == campaign_id
        attributes = search_attributes(await cli.describe(recipient(RETRIED)))
        assert attributes["RecipientPhone"] == RETRIED and attributes["CampaignId"] == campaign_id
        assert attributes["CallStatus"] == "completed"
        assert attributes["AttemptCount"] == len(h.ledger.dials_for(RETRIED))

        # Stopped: the long-living campaign completes, and says so in its result.
        await cli.signal(campaign, "stop")
        closed = await until(lambda: _closed(cli, campaign), "the campaign completed after stop")
        assert closed["status"] == "WORKFLOW_EXECUTION_STATUS_COMPLETED"
        result = await cli.json("workflow", "result", "--workflow-id", campaign)
        late = await cli.run(
            "workflow", "update", "execute",
            "--workflow-id", campaign, "--name", "control", "--input", PAUSE,
            ok=False,
        )  # fmt: skip
        assert late.returncode == 1 and "workflow execution already completed" in late.stderr
        assert _result(result) == {
            "campaign_id": campaign_id,
            "state": "stopped",
            "total": 3,
            "by_status": {"completed": 2, "opted_out": 1},
        }
    assert sum(len(h.ledger.dials_for(p)) for p in (RETRIED, ANSWERED, OPTED_OUT)) == 3


async def test_a_fixed_campaign_started_by_the_temporal_cli_completes(
    dev_env: WorkflowEnvironment, harness_for, tmp_path: Path
):
    """A fixed campaign with its recipients in the start input dials them and completes."""
    first, second = (r["phone"] for r in json.loads(FIXED_INPUT)["recipients"])
    h = harness_for(
        dev_env, {first: [Outcome.BUSY, Outcome.COMPLETED], second: [Outcome.VOICEMAIL]}
    )
    cli = TemporalCli(dev_env, tmp_path)
    campaign_id = f"renewals-march-{uuid.uuid4().hex[:8]}"
    campaign = f"campaign/{campaign_id}"
    async with h.worker():
        await cli.run(
            "workflow", "start",
            "--type", "CampaignWorkflow",
            "--task-queue", campaign_task_queue(h.task_queue),
            "--workflow-id", campaign,
            "--id-reuse-policy", "RejectDuplicate", "--fail-existing",
            "--input-file", cli.file("renewals-march.json", with_id(FIXED_INPUT, campaign_id)),
        )  # fmt: skip
        await until(lambda: _dials(h, {first: 1, second: 1}), "both dialed once")
        # `busy` retries in five minutes: skip the wait, as a user may.
        retried = f"campaign/{campaign_id}/recipient/{first}"
        await until(lambda: _asleep(cli, retried), "the busy number's retry scheduled")
        await cli.signal(retried, "retry_now")
        result = await cli.json("workflow", "result", "--workflow-id", campaign)
        listed = await until(
            lambda: _listed_exactly(
                cli,
                f'CampaignId = "{campaign_id}"',
                {campaign, retried, f"campaign/{campaign_id}/recipient/{second}"},
            ),
            "the fixed campaign listed by CampaignId",
        )
        assert listed
    assert _result(result) == {
        "campaign_id": campaign_id,
        "state": "completed",
        "total": 2,
        "by_status": {"completed": 1, "voicemail_final": 1},
    }
    assert len(h.ledger.dials_for(first)) == 2 and len(h.ledger.dials_for(second)) == 1


async def test_a_single_call_started_by_the_temporal_cli_is_found_by_its_phone(
    dev_env: WorkflowEnvironment, harness_for, tmp_path: Path
):
    """A standalone RecipientWorkflow (no campaign) from hand-written JSON: it calls, sets its own
    search attributes, and `RecipientPhone` finds it."""
    h = harness_for(dev_env, {SINGLE: [Outcome.NO_ANSWER, Outcome.COMPLETED]})
    cli = TemporalCli(dev_env, tmp_path)
    call = f"call/{SINGLE}/{uuid.uuid4()}"
    async with h.worker():
        await cli.run(
            "workflow", "start",
            "--type", "RecipientWorkflow",
            "--task-queue", h.task_queue,
            "--workflow-id", call,
            "--id-reuse-policy", "RejectDuplicate", "--fail-existing",
            "--input-file", cli.file("call.json", SINGLE_CALL_INPUT),
        )  # fmt: skip
        found = await until(
            lambda: _listed_including(cli, f'RecipientPhone = "{SINGLE}"', call),
            "the call listed by RecipientPhone",
        )
        assert found
        asleep = await until(lambda: _asleep(cli, call), "the retry scheduled")
        assert asleep["campaign_id"] is None and asleep["retry_group_id"] == call
        attributes = search_attributes(await cli.describe(call))
        assert attributes["CallStatus"] == "in_progress"
        assert attributes["AttemptCount"] == len(h.ledger.dials_for(SINGLE)) == 1
        await cli.signal(call, "retry_now")
        result = await cli.json("workflow", "result", "--workflow-id", call)
        history = await cli.query(call, "history")
        attributes = await until(lambda: _final_attributes(cli, call), "the final status set")
        again = await cli.run(
            "workflow", "start",
            "--type", "RecipientWorkflow",
            "--task-queue", h.task_queue,
            "--workflow-id", call,
            "--id-reuse-policy", "RejectDuplicate", "--fail-existing",
            "--input-file", cli.file("call.json", SINGLE_CALL_INPUT),
            ok=False,
        )  # fmt: skip
        # The same request id never dials twice (without --fail-existing the CLI would print
        # the old run and exit 0, starting nothing).
        assert again.returncode == 1, again.stdout
        assert "Workflow execution already finished" in again.stderr
    assert _result(result) == {"phone": SINGLE, "status": "completed", "attempts": 2}
    assert [a["outcome"] for a in history["attempts"]] == ["no_answer", "completed"]
    assert len(h.ledger.dials_for(SINGLE)) == 2
    assert "CampaignId" not in attributes
    assert attributes["RecipientPhone"] == SINGLE and attributes["AttemptCount"] == 2


def test_the_readme_shows_these_examples():
    """The JSON this file drives redialer with is the JSON the README shows, and the README
    shows no other."""
    text = README.read_text()
    assert SECTION in text, f"README.md has no {SECTION!r} section"
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    shown = [json.loads(block) for block in re.findall(r"```json\n(.*?)```", section, re.DOTALL)]
    tested = [json.loads(e) for e in EXAMPLES]
    assert [e for e in tested if e not in shown] == [], "tested here, not in the README"
    assert [e for e in shown if e not in tested] == [], "in the README, not tested here"


# ---- helpers ------------------------------------------------------------------------------------


async def _dials(h: Any, expected: dict[str, int]) -> Seen:
    """The simulated provider placed exactly this many calls to each number."""
    seen = {p: len(h.ledger.dials_for(p)) for p in expected}
    return Seen(seen == expected, seen)


async def _asleep(cli: TemporalCli, workflow_id: str) -> Seen:
    """The recipient's history once it has made a call and sleeps until its next."""
    history = await cli.query(workflow_id, "history")
    scheduled = history["status"] == "scheduled" and history["next_attempt"] is not None
    return Seen(history if history["attempts"] and scheduled else None, history)


async def _final_history(cli: TemporalCli, workflow_id: str) -> Seen:
    history = await cli.query(workflow_id, "history")
    return Seen(history if history["status"] in FINAL else None, history)


async def _progress_is(progress: Any, *, final: int) -> Seen:
    p = await progress()
    return Seen(p if p["final"] == final else None, p)


async def _listed_exactly(cli: TemporalCli, query: str, ids: set[str]) -> Seen:
    listed = await cli.listed(query)
    return Seen(listed if listed == ids else None, listed)


async def _listed_including(cli: TemporalCli, query: str, workflow_id: str) -> Seen:
    listed = await cli.listed(query)
    return Seen(workflow_id in listed, listed)


async def _closed(cli: TemporalCli, workflow_id: str) -> Seen:
    info = await cli.describe(workflow_id)
    return Seen(info if info.get("closeTime") else None, info.get("status"))


async def _final_attributes(cli: TemporalCli, workflow_id: str) -> Seen:
    attributes = search_attributes(await cli.describe(workflow_id))
    return Seen(attributes if attributes.get("CallStatus") in FINAL else None, attributes)


def _result(printed: Any) -> Any:
    """The workflow's result from `temporal workflow result -o json`."""
    assert printed["status"] == "COMPLETED", printed
    return printed["result"]
