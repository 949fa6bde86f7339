"""Controlling a live campaign through the CLI on the dev server, and what the Web UI can filter."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from redialer.outcomes import Outcome
from starter.server import free_port, start_server
from workflows import search_attributes as sa

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


async def until(check, timeout: float = 30.0):  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await check()
        if value:
            return value
        assert asyncio.get_running_loop().time() < deadline, "condition never met"
        await asyncio.sleep(0.2)


async def test_pause_resume_add_opt_out_and_stop_through_the_cli(
    dev_env: WorkflowEnvironment, harness_for, tmp_path: Path
):
    """The operator's commands act on a running long-living campaign; the Web UI can filter it."""
    h = harness_for(dev_env, {p: [Outcome.NO_ANSWER, Outcome.COMPLETED] for p in PHONES + [LATER]})
    address = dev_env.client.service_client.config.target_host
    campaign_id = f"ctl-{uuid.uuid4().hex[:6]}"
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        f"campaign_id: {campaign_id}\nlong_living: true\n"
        "retry: {strategy: {type: fixed_delay, delay: 8, max_retries: 1}}\n"
        "recipients:\n" + "".join(f"  - phone: '{p}'\n" for p in PHONES)
    )

    async def progress() -> dict:  # type: ignore[type-arg]
        out = await cli(address, h.task_queue, "progress", campaign_id, "--json")
        return json.loads(out.stdout) if out.returncode == 0 else {}

    async with h.worker():
        assert (await cli(address, h.task_queue, "pause", campaign_id)).returncode == 1
        started = await cli(address, h.task_queue, "start", str(spec))
        assert started.returncode == 0, started.stderr
        await until(lambda: _first_attempts_done(h, PHONES))
        assert (await cli(address, h.task_queue, "pause", campaign_id)).returncode == 0
        await until(lambda: _state_is(progress, "paused"))
        await asyncio.sleep(9)  # the 8 s retries come due while paused: nobody is dialed
        assert all(len(h.ledger.dials_for(p)) == 1 for p in PHONES)
        opted = await cli(address, h.task_queue, "opt-out", campaign_id, PHONES[0])
        assert opted.returncode == 0, opted.stderr
        assert (await cli(address, h.task_queue, "resume", campaign_id)).returncode == 0
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
        assert (await cli(address, h.task_queue, "stop", campaign_id)).returncode == 0
        await until(lambda: _state_is(progress, "stopped"))
    assert h.store.suppression_reason(PHONES[0]) == "opted_out"
    assert len(h.ledger.dials_for(PHONES[1])) == 2  # the duplicate row in more.csv was not called


async def _first_attempts_done(h, phones: list[str]) -> bool:  # type: ignore[no-untyped-def]
    return all(len(h.ledger.dials_for(p)) == 1 for p in phones)


async def _state_is(progress, state: str) -> bool:  # type: ignore[no-untyped-def]
    return (await progress()).get("state") == state


async def _final_count(progress, n: int) -> dict | None:  # type: ignore[no-untyped-def,type-arg]
    p = await progress()
    return p if p.get("final") == n else None


async def _list_ids(client: Client, query: str, n: int) -> list[str] | None:
    ids = [w.id async for w in client.list_workflows(query)]
    return ids if len(ids) == n else None


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
