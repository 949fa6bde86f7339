"""Controlling a live campaign through the CLI on the dev server, and what the Web UI can filter."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import uuid
from datetime import datetime
from pathlib import Path

import pytest
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from redialer.dialers.base import CallRequest, CallResult, Dialer
from redialer.outcomes import Outcome
from starter.server import free_port, start_server
from tests.dialers import HeldDialer
from workflows import search_attributes as sa
from workflows.ids import campaign_workflow_id

pytestmark = pytest.mark.devserver

ROOT = Path(__file__).resolve().parent.parent
PHONES = ["+13125550201", "+13125550202", "+13125550203"]
LATER = "+13125550204"


async def cli(address: str, task_queue: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"TEMPORAL_ADDRESS": address, "REDIALER_TASK_QUEUE": task_queue, "PATH": "/usr/bin:/bin"}
    return await asyncio.to_thread(
        subprocess.run,
        [str(Path(sys.executable).parent / "redialer"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


async def until(check, timeout: float = 120.0):  # type: ignore[no-untyped-def]
    """Poll `check` until it returns something true; generous, and returns as soon as it holds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await check()
        if value:
            return value
        assert asyncio.get_running_loop().time() < deadline, "condition never met"
        await asyncio.sleep(0.2)


class RingingDialer(HeldDialer):
    """A HeldDialer that also says which numbers have a call up (held until `hang_up`)."""

    def __init__(self, inner: Dialer) -> None:
        super().__init__(inner)
        self.ringing: set[str] = set()

    async def dial(self, request: CallRequest) -> CallResult:
        self.ringing.add(request.phone)
        return await super().dial(request)


async def test_pause_resume_add_opt_out_and_stop_through_the_cli(
    dev_env: WorkflowEnvironment, harness_for, tmp_path: Path
):
    """The operator's commands act on a running long-living campaign and say what they did; the
    Web UI can filter it."""
    h = harness_for(dev_env, {p: [Outcome.NO_ANSWER, Outcome.COMPLETED] for p in PHONES + [LATER]})
    h.dialer = held = RingingDialer(h.dialer)
    address = dev_env.client.service_client.config.target_host
    campaign_id = f"ctl-{uuid.uuid4().hex[:6]}"
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        f"campaign_id: {campaign_id}\nlong_living: true\n"
        "retry: {strategy: {type: fixed_delay, delay: 3, max_retries: 1}}\n"
        "recipients:\n" + "".join(f"  - phone: '{p}'\n" for p in PHONES)
    )

    async def progress() -> dict:  # type: ignore[type-arg]
        out = await cli(address, h.task_queue, "progress", campaign_id, "--json")
        return json.loads(out.stdout) if out.returncode == 0 else {}

    async with h.worker():
        unknown = await cli(address, h.task_queue, "pause", campaign_id)
        assert unknown.returncode == 1 and f"campaign {campaign_id} not found" in unknown.stderr
        started = await cli(address, h.task_queue, "start", str(spec))
        assert started.returncode == 0, started.stderr
        # Pause while every first call is up: the retries are decided after the pause took
        # effect, so they come due while paused however slow this machine is.
        await until(lambda: _ringing(held, PHONES))
        paused = await cli(address, h.task_queue, "pause", campaign_id)
        assert paused.returncode == 0, paused.stderr
        assert f"campaign {campaign_id} paused: 3 recipient(s) told;" in paused.stdout
        held.hang_up.set()
        await until(lambda: _state_is(progress, "paused"))
        due = [
            await until(lambda p=p: _paused_until(address, h.task_queue, campaign_id, p))
            for p in PHONES
        ]
        # The retries come due while paused (by the dev server's clock, this machine's): nobody
        # is dialed. A history query is answered after the recipient has handled everything up to
        # it, so a retry that had fired would show here as `dialing` or a second attempt.
        await until(lambda: _has_passed(dev_env, max(due)))
        for phone in PHONES:
            later = await _history(address, h.task_queue, campaign_id, phone)
            assert later["status"] == "paused" and len(later["attempts"]) == 1, later
        assert all(len(h.ledger.dials_for(p)) == 1 for p in PHONES)
        opted = await cli(address, h.task_queue, "opt-out", campaign_id, PHONES[0])
        assert opted.returncode == 0, opted.stderr
        assert f"campaign {campaign_id} {PHONES[0]} is on the suppression list" in opted.stdout
        resumed = await cli(address, h.task_queue, "resume", campaign_id)
        assert resumed.returncode == 0, resumed.stderr
        assert re.search(
            rf"campaign {campaign_id} resumed: \d+ recipient\(s\) told", resumed.stdout
        )
        more = tmp_path / "more.csv"
        more.write_text(f"phone,name\n{LATER},Dee\n{PHONES[1]},dup\n")
        added = await cli(address, h.task_queue, "add", campaign_id, str(more))
        assert added.returncode == 0, added.stderr
        final = await until(lambda: _final_count(progress, 4))
        assert final["by_status"] == {"opted_out": 1, "completed": 3}
        assert final["state"] == "running"  # long-living: still open
        history = await cli(address, h.task_queue, "history", campaign_id, PHONES[0], "--json")
        assert json.loads(history.stdout)["status"] == "opted_out"
        # What the Web UI shows: the campaign's recipients filtered by status.
        query = f'CampaignId = "{campaign_id}" AND CallStatus = "completed"'
        ids = await until(lambda: _list_ids(dev_env.client, query, 3))
        assert sorted(ids) == sorted(
            f"campaign/{campaign_id}/recipient/{p}" for p in PHONES[1:] + [LATER]
        )
        stopped = await cli(address, h.task_queue, "stop", campaign_id)
        assert stopped.returncode == 0, stopped.stderr
        assert f"campaign {campaign_id} stopped: " in stopped.stdout
        await until(lambda: _state_is(progress, "stopped"))
        again = await cli(address, h.task_queue, "pause", campaign_id)
        assert again.returncode == 1 and again.stdout == "", again.stdout
        assert re.search(
            rf"campaign {campaign_id} (is stopped|has ended \(completed\)): pause refused",
            again.stderr,
        ), again.stderr
    assert h.store.suppression_reason(PHONES[0]) == "opted_out"
    assert len(h.ledger.dials_for(PHONES[1])) == 2  # the duplicate row in more.csv was not called


async def _ringing(held: RingingDialer, phones: list[str]) -> bool:
    return set(phones) <= held.ringing


async def _history(address: str, task_queue: str, campaign_id: str, phone: str) -> dict:  # type: ignore[type-arg]
    out = await cli(address, task_queue, "history", campaign_id, phone, "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)  # type: ignore[no-any-return]


async def _paused_until(
    address: str, task_queue: str, campaign_id: str, phone: str
) -> datetime | None:
    """When the paused recipient's next attempt is due, once it has made its first call."""
    h = await _history(address, task_queue, campaign_id, phone)
    if h["status"] != "paused" or not h["attempts"] or h["next_attempt_at"] is None:
        return None
    return datetime.fromisoformat(h["next_attempt_at"])


async def _has_passed(env: WorkflowEnvironment, moment: datetime) -> bool:
    return await env.get_current_time() > moment


async def _state_is(progress, state: str) -> bool:  # type: ignore[no-untyped-def]
    return (await progress()).get("state") == state


async def _final_count(progress, n: int) -> dict | None:  # type: ignore[no-untyped-def,type-arg]
    p = await progress()
    return p if p.get("final") == n else None


async def _list_ids(client: Client, query: str, n: int) -> list[str] | None:
    ids = [w.id async for w in client.list_workflows(query)]
    return ids if len(ids) == n else None


async def test_pause_of_a_stopped_or_ended_campaign_exits_1_with_the_reason(
    dev_env: WorkflowEnvironment, harness_for, tmp_path: Path
):
    """`redialer pause` on a stopped campaign, and on one that has ended, exits 1 and says why
    instead of claiming to have paused it."""
    phone = "+13125550401"
    h = harness_for(dev_env, {phone: [Outcome.COMPLETED]})
    h.dialer = held = RingingDialer(h.dialer)
    address = dev_env.client.service_client.config.target_host
    campaign_id = f"stp-{uuid.uuid4().hex[:6]}"
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"campaign_id": campaign_id, "recipients": [{"phone": phone}]}))
    handle = dev_env.client.get_workflow_handle(campaign_workflow_id(campaign_id))
    async with h.worker():
        started = await cli(address, h.task_queue, "start", str(spec))
        assert started.returncode == 0, started.stderr
        await until(lambda: _ringing(held, [phone]))
        stopped = await cli(address, h.task_queue, "stop", campaign_id)
        assert stopped.returncode == 0, stopped.stderr
        assert f"campaign {campaign_id} stopped: 1 recipient(s) told" in stopped.stdout
        # The call is still up: the campaign is stopped and waits for it, not yet ended.
        refused = await cli(address, h.task_queue, "pause", campaign_id)
        assert refused.returncode == 1 and refused.stdout == "", refused.stdout
        assert f"campaign {campaign_id} is stopped: pause refused" in refused.stderr
        held.hang_up.set()
        await until(lambda: _closed(handle))
        ended = await cli(address, h.task_queue, "pause", campaign_id)
        assert ended.returncode == 1 and ended.stdout == "", ended.stdout
        assert f"campaign {campaign_id} has ended (completed): pause refused" in ended.stderr
    assert len(h.ledger.dials_for(phone)) == 1  # the call up at `stop` finished; no other


async def _closed(handle) -> bool:  # type: ignore[no-untyped-def]
    return (await handle.describe()).close_time is not None


async def test_redialer_server_registers_the_search_attributes(tmp_path: Path):
    """`redialer server` persists to a file and registers the search attributes the UI uses."""
    port, ui_port = free_port(), free_port()
    db = tmp_path / "temporal.db"
    server = start_server(port=port, ui_port=ui_port, db=db, headless=True)
    try:
        client = await Client.connect(f"127.0.0.1:{port}", data_converter=pydantic_data_converter)
        response = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace="default")
        )
        assert {k.name for k in sa.ALL} <= set(response.custom_attributes)
        assert db.exists()
    finally:
        server.terminate()
        server.wait(timeout=30)


async def test_watch_follows_a_campaign_until_it_ends(
    dev_env: WorkflowEnvironment, harness_for, tmp_path: Path, sqlite_url: str
):
    """`redialer watch` shows progress and upcoming retries, and returns when the campaign ends."""
    phones = ["+13125550301", "+13125550302"]
    h = harness_for(dev_env, {p: [Outcome.NO_ANSWER, Outcome.COMPLETED] for p in phones})
    address = dev_env.client.service_client.config.target_host
    campaign_id = f"watch-{uuid.uuid4().hex[:6]}"
    spec = tmp_path / "spec.json"
    spec.write_text(
        json.dumps(
            {
                "campaign_id": campaign_id,
                "retry": {"strategy": {"type": "fixed_delay", "delay": 3, "max_retries": 1}},
                "recipients": [{"phone": p} for p in phones],
            }
        )
    )
    async with h.worker():
        assert (await cli(address, h.task_queue, "start", str(spec))).returncode == 0
        watched = await cli(
            address, h.task_queue, "watch", campaign_id, "--database", sqlite_url, "--every", "0.3"
        )
    assert watched.returncode == 0, watched.stderr
    assert f"campaign {campaign_id} completed: 2/2 final" in watched.stdout
    assert "completed" in watched.stdout and "calls in progress" in watched.stdout
