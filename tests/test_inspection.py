"""`redialer progress` and `redialer history` with no worker: answers from the store, labelled.

On the dev server: campaigns run on an in-process worker, which is then stopped, and the CLI
(a subprocess, as an operator runs it) is pointed at the same server and store.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from redialer.outcomes import Outcome
from starter.inspection import no_worker
from workflows.ids import campaign_workflow_id, recipient_workflow_id

ROOT = Path(__file__).resolve().parent.parent
REACHED, VOICEMAIL = "+13125550401", "+13125550402"


async def cli(
    address: str, task_queue: str, database_url: str, *args: str
) -> subprocess.CompletedProcess[str]:
    env = {
        "TEMPORAL_ADDRESS": address,
        "REDIALER_TASK_QUEUE": task_queue,
        "REDIALER_DATABASE_URL": database_url,
        "REDIALER_QUERY_TIMEOUT": "2.5",  # no worker: the store answers after this
        "PATH": "/usr/bin:/bin",
    }
    return await asyncio.to_thread(
        subprocess.run,
        [str(Path(sys.executable).parent / "redialer"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


async def until(check, timeout: float = 60.0):  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await check()
        if value:
            return value
        assert asyncio.get_running_loop().time() < deadline, "condition never met"
        await asyncio.sleep(0.2)


def spec_file(tmp_path: Path, campaign_id: str, phones: list[str], *, long_living: bool) -> Path:
    spec = {
        "campaign_id": campaign_id,
        "long_living": long_living,
        # A fixed campaign retries after a second; a long-living one waits ten minutes.
        "retry": {
            "strategy": {
                "type": "fixed_delay",
                "delay": 600 if long_living else 1,
                "max_retries": 1,
            }
        },
        "recipients": [{"phone": p} for p in phones],
    }
    path = tmp_path / f"{campaign_id}.json"
    path.write_text(json.dumps(spec))
    return path


@pytest.mark.devserver
async def test_a_finished_campaign_is_inspected_from_the_store_once_its_worker_is_gone(
    dev_env: WorkflowEnvironment, harness_for, tmp_path: Path, sqlite_url: str
):
    """A finished campaign is read from the store, worker or not (a worker answers only for a
    CLI without the store)."""
    h = harness_for(
        dev_env, {REACHED: [Outcome.NO_ANSWER, Outcome.COMPLETED], VOICEMAIL: [Outcome.VOICEMAIL]}
    )
    address = dev_env.client.service_client.config.target_host
    campaign_id = f"insp-{uuid.uuid4().hex[:6]}"
    spec = spec_file(tmp_path, campaign_id, [REACHED, VOICEMAIL], long_living=False)
    async with h.worker():
        done = await cli(address, h.task_queue, sqlite_url, "start", str(spec), "--wait")
        assert done.returncode == 0, done.stderr
        # A CLI without the workers' store still has a worker answer for the closed run.
        elsewhere = tmp_path / "another.db"
        answered = await cli(
            address, h.task_queue, f"sqlite:///{elsewhere}", "history", campaign_id, REACHED,
            "--json",
        )  # fmt: skip
        assert answered.returncode == 0, answered.stderr
        assert json.loads(answered.stdout)["source"] == "live"
    # The worker is gone: nothing polls the campaign's queues any more.

    history = await cli(
        address, h.task_queue, sqlite_url, "history", campaign_id, REACHED, "--json"
    )
    assert history.returncode == 0, history.stderr
    answer = json.loads(history.stdout)
    assert answer["source"] == "store"
    assert [a["outcome"] for a in answer["attempts"]] == ["no_answer", "completed"]
    assert [a["attempt"] for a in answer["attempts"]] == [1, 2]
    assert all(a["call_id"] for a in answer["attempts"])
    assert answer["status"] == "completed"
    assert answer["retry_group_id"] == recipient_workflow_id(campaign_id, REACHED)
    assert answer["next_attempt_at"] is None
    assert set(answer) == {"attempts", "status", "retry_group_id", "next_attempt_at", "source"}

    shown = await cli(address, h.task_queue, sqlite_url, "history", campaign_id, REACHED)
    assert shown.returncode == 0, shown.stderr
    assert f"{REACHED} " in shown.stdout and "completed" in shown.stdout
    assert "attempt  1" in shown.stdout and "attempt  2" in shown.stdout
    assert "(from the store: the workflow is completed; no live query)" in shown.stdout

    lost = await cli(
        address, h.task_queue, f"sqlite:///{elsewhere}", "history", campaign_id, REACHED
    )
    assert lost.returncode == 1
    assert "the workflow is completed" in lost.stderr and "REDIALER_DATABASE_URL" in lost.stderr
    assert not elsewhere.exists()  # looking does not create a store

    progress = await cli(
        address, h.task_queue, f"sqlite:///{elsewhere}", "progress", campaign_id, "--json",
        "--database", sqlite_url,
    )  # fmt: skip
    assert progress.returncode == 0, progress.stderr
    assert json.loads(progress.stdout) == {
        "campaign_id": campaign_id,
        "state": "completed",
        "total": 2,
        "final": 2,
        "active": 0,
        "by_status": {"completed": 1, "voicemail_final": 1},
        "source": "store",
        "lines": {
            "campaign": {"in_use": 0, "waiting": 0},
            "account": {"in_use": 0, "waiting": 0, "cap": None, "this_campaign": 0},
        },
    }
    shown = await cli(address, h.task_queue, sqlite_url, "progress", campaign_id)
    assert shown.returncode == 0, shown.stderr
    assert f"{campaign_id} completed: 2/2 final, 0 active" in shown.stdout
    assert "(from the store: the workflow is completed; no live query)" in shown.stdout


@pytest.mark.devserver
async def test_a_running_campaign_whose_worker_is_gone_is_inspected_from_the_store(
    dev_env: WorkflowEnvironment, harness_for, tmp_path: Path, sqlite_url: str
):
    """A running campaign with no worker: the live query fails, the store answers, with a note."""
    h = harness_for(dev_env, {REACHED: [Outcome.NO_ANSWER, Outcome.COMPLETED]})
    address = dev_env.client.service_client.config.target_host
    campaign_id = f"insp-live-{uuid.uuid4().hex[:6]}"
    spec = spec_file(tmp_path, campaign_id, [REACHED], long_living=True)
    try:
        async with h.worker():
            started = await cli(address, h.task_queue, sqlite_url, "start", str(spec))
            assert started.returncode == 0, started.stderr

            async def waiting_for_its_retry() -> dict | None:  # type: ignore[type-arg]
                out = await cli(
                    address, h.task_queue, sqlite_url, "history", campaign_id, REACHED, "--json"
                )
                assert out.returncode == 0, out.stderr
                answer = json.loads(out.stdout)
                return answer if answer["next_attempt_at"] else None

            live = await until(waiting_for_its_retry)
            assert live["source"] == "live"
            assert [a["outcome"] for a in live["attempts"]] == ["no_answer"]
        # The worker is gone; the campaign and its recipient still run in Temporal.
        described = await dev_env.client.get_workflow_handle(
            campaign_workflow_id(campaign_id)
        ).describe()
        assert described.status is WorkflowExecutionStatus.RUNNING

        history = await cli(
            address, h.task_queue, sqlite_url, "history", campaign_id, REACHED, "--json"
        )
        assert history.returncode == 0, history.stderr
        answer = json.loads(history.stdout)
        assert answer["source"] == "store"
        assert [a["outcome"] for a in answer["attempts"]] == ["no_answer"]
        assert answer["status"] == "scheduled"
        assert answer["next_attempt_at"] is None  # unknown without the workflow

        progress = await cli(address, h.task_queue, sqlite_url, "progress", campaign_id)
        assert progress.returncode == 0, progress.stderr
        assert f"{campaign_id} running: 0/1 final, 1 active" in progress.stdout
        note = next(line for line in progress.stdout.splitlines() if "from the store" in line)
        assert "no worker" in note and f"{h.task_queue}-campaigns" in note, note

        as_json = await cli(address, h.task_queue, sqlite_url, "progress", campaign_id, "--json")
        assert as_json.returncode == 0, as_json.stderr
        assert json.loads(as_json.stdout) == {
            "campaign_id": campaign_id,
            "state": "running",
            "total": 1,
            "final": 0,
            "active": 1,
            "by_status": {},
            "source": "store",
            "lines": {
                "campaign": {"in_use": 0, "waiting": 0},
                "account": {"in_use": 0, "waiting": 0, "cap": None, "this_campaign": 0},
            },
        }
    finally:
        for workflow_id in (
            campaign_workflow_id(campaign_id),
            recipient_workflow_id(campaign_id, REACHED),
        ):
            with contextlib.suppress(RPCError):  # already ended, or never started
                await dev_env.client.get_workflow_handle(workflow_id).terminate("test over")


@pytest.mark.parametrize(
    ("status", "message", "reason"),
    [
        (
            RPCStatusCode.FAILED_PRECONDITION,
            "no poller seen for task queue recently, worker may be down",
            "no worker is polling task queue 'q'",
        ),
        (RPCStatusCode.CANCELLED, "Timeout expired", "no worker answered on task queue 'q'"),
        (RPCStatusCode.DEADLINE_EXCEEDED, "deadline exceeded", "no worker answered"),
        (RPCStatusCode.NOT_FOUND, "workflow not found", None),
        (RPCStatusCode.PERMISSION_DENIED, "not allowed", None),
    ],
)
def test_which_query_failures_mean_no_worker(
    status: RPCStatusCode, message: str, reason: str | None
):
    """No poller, or no answer by the deadline, means no worker; anything else is an error."""
    said = no_worker(RPCError(message, status, b""), task_queue="q")
    if reason is None:
        assert said is None
    else:
        assert said is not None and said.startswith(reason), said


async def test_with_temporal_itself_gone_the_store_answers_and_says_so(store, sqlite_url):
    """After `redialer demo` has stopped its server, the `history` and `progress` it suggests
    still answer, from the store, saying that Temporal could not be reached."""
    from datetime import UTC, datetime

    from redialer.payloads import AttemptRecord
    from redialer.recipients import Recipient

    campaign, phone = "gone-1", REACHED
    group = recipient_workflow_id(campaign, phone)
    store.enqueue_recipients(campaign, [Recipient(phone=phone)], workflow_id_for=lambda _: group)
    store.mark_started(campaign, [phone])
    at = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    for attempt, outcome in ((1, Outcome.BUSY), (2, Outcome.COMPLETED)):
        record = AttemptRecord(
            attempt=attempt, outcome=outcome, started_at=at, ended_at=at, call_id=f"c{attempt}"
        )
        store.finish_attempt(
            key=f"{campaign}:{phone}:{attempt}",
            campaign_id=campaign,
            phone=phone,
            retry_group_id=group,
            record=record,
            variables={},
            final="completed" if outcome is Outcome.COMPLETED else None,
        )
    closed = "127.0.0.1:9"  # nothing listens on the discard port
    history = await cli(closed, "q", sqlite_url, "history", campaign, phone, "--json")
    assert history.returncode == 0, history.stderr
    answer = json.loads(history.stdout)
    assert [a["outcome"] for a in answer["attempts"]] == ["busy", "completed"]
    assert (answer["status"], answer["source"]) == ("completed", "store")
    progress = await cli(closed, "q", sqlite_url, "progress", campaign)
    assert progress.returncode == 0, progress.stderr
    assert "1/1 final" in progress.stdout
    assert "Temporal at 127.0.0.1:9 is not reachable" in progress.stdout
