"""Correct under faults: a worker SIGKILLed mid-call, the Temporal server killed and restarted,
malformed signals from outside. Real processes and real signals against the local dev server.

After each: every recipient reaches the status its script gives, no key `{campaign}:{e164}:
{attempt}` reached the simulated provider twice, every recorded call was requested once, and no
worker log shows a replay divergence or a broken log record.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from redialer.binaries import find_binary
from redialer.campaign import CampaignSpec
from redialer.dialers.simulated import DialLedger
from redialer.payloads import CampaignResult
from redialer.store.dial_intents import DialIntents
from redialer.store.store import Store, aware
from starter.campaigns import campaign_handle, start_campaign, stop
from starter.server import free_port, start_server
from tests.fault_helpers import (
    DEADLINE,
    WorkerProcess,
    all_final,
    bad_log_lines,
    ended_calls,
    eventually,
    live_calls,
    recipients,
    simulated_rows,
    until,
    worker_env,
)

pytestmark = pytest.mark.devserver

#: Simulated durations divided by this: a busy tone is a blink, a voicemail about a second, an
#: answered call 1-8 s of real time; the records keep simulated times, so a busy number is
#: retried 7-11 s after it was dialed (its 2-6 s call plus the 5 s delay).
SPEED = 30
RETRY = {"strategy": {"type": "fixed_delay", "delay": 5, "max_retries": 2}}
#: Script per group of numbers -> (final status, attempts).
GROUPS: list[tuple[list[str], str, int]] = [
    (["completed"], "completed", 1),
    (["busy", "completed"], "completed", 2),
    (["busy", "busy", "completed"], "completed", 3),
    (["busy", "busy", "busy"], "all_retries_exhausted", 3),
    (["voicemail"], "voicemail_final", 1),
]


def scripted(first: int, per_group: int) -> tuple[dict[str, list[str]], dict[str, tuple[str, int]]]:
    """Numbers from `+1212555{first}` on, `per_group` per group: their script and expectation."""
    script, expected = {}, {}
    n = first
    for outcomes, status, attempts in GROUPS:
        for _ in range(per_group):
            phone = f"+1212555{n:04d}"
            script[phone], expected[phone] = outcomes, (status, attempts)
            n += 1
    return script, expected


def address(client: Client) -> str:
    return client.service_client.config.target_host


def check_no_double_dial(
    store: Store,
    campaign_id: str,
    expected: dict[str, tuple[str, int]],
    result: CampaignResult,
) -> dict[str, object]:
    """The checks every fault test ends with; returns the counts it saw, for the report."""
    prefix = f"{campaign_id}:"
    ledger = DialLedger(store)
    assert result.state == "completed", result
    by_status: dict[str, int] = {}
    for status, _ in expected.values():
        by_status[status] = by_status.get(status, 0) + 1
    assert result.by_status == by_status
    seen = recipients(store, campaign_id)
    assert {p: (s, a) for p, (_, s, a) in seen.items()} == expected
    assert ledger.dialed_twice(prefix) == {}
    placements = {k: n for k, n in ledger.placements().items() if k.startswith(prefix)}
    records = store.call_records(campaign_id)
    record_keys = [r.idempotency_key for r in records]
    assert len(record_keys) == len(set(record_keys)) == sum(a for _, a in expected.values())
    # Every recorded call was requested exactly once, and nothing was placed unrecorded.
    assert {k: placements.get(k) for k in record_keys} == {k: 1 for k in record_keys}
    assert set(placements) == set(record_keys)
    assert store.calls_in_progress(campaign_id) == 0  # no mark left behind by a dead worker
    requests = DialIntents(store).requests(prefix)
    return {
        "adoptions": DialIntents(store).adoptions(prefix),
        "calls": len(record_keys),
        "requests_per_key": sorted(set(placements.values())),
        "intent_requests_per_key": sorted(set(requests.values())),
        "by_status": by_status,
    }


async def test_worker_sigkilled_three_times_mid_call_dials_nothing_twice(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    """SIGKILLed three times mid-call, workers adopt the orphaned calls and place none twice."""
    client = dev_env.client
    campaign_id = f"kill9-{uuid.uuid4().hex[:6]}"
    script, expected = scripted(first=6000, per_group=6)
    url = f"sqlite:///{tmp_path / 'calls.db'}"
    store = Store.open(url)
    ledger = DialLedger(store)
    env = worker_env(
        address=address(client),
        database_url=url,
        task_queue=f"faults-{uuid.uuid4().hex[:8]}",
        script=script,
        speed=SPEED,
        directory=tmp_path,
    )
    workers = [WorkerProcess(env, tmp_path / "worker1.log").start()]
    orphaned: list[set[str]] = []
    try:
        spec = CampaignSpec.model_validate(
            {
                "campaign_id": campaign_id,
                "retry": RETRY,
                "recipients": [{"phone": p} for p in script],
            }
        )
        handle = await start_campaign(client, spec, task_queue=env["REDIALER_TASK_QUEUE"])
        for kill in range(3):
            current = workers[-1]
            if kill == 0:  # some calls over (their retries are due soon), some still up
                await until(lambda: ended_calls(ledger, campaign_id) >= 5, "first calls ended")
            await until(
                lambda w=current: (  # type: ignore[misc]
                    live_calls(ledger, campaign_id, since=w.started_at)
                    and store.calls_in_progress(campaign_id) > 0
                ),
                f"worker {kill + 1} has a call up",
            )
            current.kill()
            # Calls the dead worker left up: their retried dials must adopt them.
            orphaned.append(live_calls(ledger, campaign_id, since=current.started_at))
            workers.append(WorkerProcess(env, tmp_path / f"worker{kill + 2}.log").start())
        result = await asyncio.wait_for(handle.result(), timeout=240)
        assert all_final(store, campaign_id, len(expected))
        counts = check_no_double_dial(store, campaign_id, expected, result)
        orphans = sum(len(o) for o in orphaned)
        assert orphans > 0, "no kill landed mid-call"
        assert counts["adoptions"] >= orphans  # type: ignore[operator]
        print(f"\nsigkill x3: orphaned per kill {[len(o) for o in orphaned]}, {counts}")
    finally:
        exit_code = workers[-1].stop()
        store.close()
    assert exit_code == 0
    assert bad_log_lines(w.log for w in workers) == []


async def test_server_killed_and_restarted_mid_campaign_dials_nothing_twice(
    tmp_path: Path,
) -> None:
    """The server killed mid-call and restarted on its file: the worker goes on, no dial twice."""
    port, ui_port = free_port(), free_port()
    db = tmp_path / "temporal.db"
    server_log = tmp_path / "server.log"
    server = start_server(port=port, ui_port=ui_port, db=db, headless=True, log=server_log)
    campaign_id = f"srvkill-{uuid.uuid4().hex[:6]}"
    script, expected = scripted(first=6100, per_group=4)
    url = f"sqlite:///{tmp_path / 'calls.db'}"
    store = Store.open(url)
    ledger = DialLedger(store)
    env = worker_env(
        address=f"127.0.0.1:{port}",
        database_url=url,
        task_queue=f"faults-{uuid.uuid4().hex[:8]}",
        script=script,
        speed=SPEED,
        directory=tmp_path,
    )
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    try:
        client = await Client.connect(f"127.0.0.1:{port}", data_converter=pydantic_data_converter)
        spec = CampaignSpec.model_validate(
            {
                "campaign_id": campaign_id,
                "retry": RETRY,
                "recipients": [{"phone": p} for p in script],
            }
        )
        await start_campaign(client, spec, task_queue=env["REDIALER_TASK_QUEUE"])

        def live() -> set[str]:
            return live_calls(ledger, campaign_id, since=worker.started_at)

        def three_up() -> set[str]:
            calls = live()
            return calls if len(calls) >= 3 else set()

        up = await until(three_up, "calls are up")
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=30)
        # Down until a call that was up has ended: its dial's result waits for the server.
        ended_while_down = await until(
            lambda: up - live(), "a call ended while the server was down"
        )
        server = start_server(port=port, ui_port=ui_port, db=db, headless=True, log=server_log)
        restarted_at = datetime.now(UTC)
        # The worker placed calls after the restart: it reconnected by itself.
        await until(
            lambda: any(
                aware(r.claimed_at) > restarted_at for r in ledger.dials_for_campaign(campaign_id)
            ),
            "a call placed after the restart",
        )
        assert worker.alive(), "the worker died with the server"
        handle = campaign_handle(client, campaign_id)

        async def result() -> CampaignResult | None:
            try:
                return await asyncio.wait_for(handle.result(), timeout=30)
            except (TimeoutError, RPCError):  # the long poll cut short: ask again
                return None

        final = await eventually(result, "the campaign completed", timeout=240)
        counts = check_no_double_dial(store, campaign_id, expected, final)
        print(
            f"\nserver kill: {len(up)} calls up at the kill,"
            f" {len(ended_while_down)} ended while it was down, {counts}"
        )
    finally:
        exit_code = worker.stop()
        server.terminate()
        server.wait(timeout=30)
        store.close()
    assert exit_code == 0
    assert bad_log_lines([worker.log]) == []


#: Signals no decoder can take as `AddRecipientsInput`, and one well-formed batch holding a
#: number that is not one: the campaign must drop or reject each and go on.
MALFORMED = [
    '"just a string"',
    '[{"phone": "+12125556201"}]',
    '{"recipients": "+12125556202"}',
    '{"recipients": [{"phone": 12125556203}]}',
    '{"recipients": [{"phone": "+12125556204", "variables": "not an object"}]}',
    '{"recipients": [{"phone": "not-a-phone"}, {"phone": "+12125556205"}]}',
]
GOOD = '{"recipients": [{"phone": "+12125556206"}]}'
NEVER_DIALED = [
    "+12125556201",
    "+12125556202",
    "12125556203",
    "+12125556203",
    "+12125556204",
    "not-a-phone",
]


async def test_malformed_add_recipients_signals_leave_the_campaign_running(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    """Malformed `add_recipients` signals are dropped or rejected; the campaign goes on calling."""
    client = dev_env.client
    campaign_id = f"badsig-{uuid.uuid4().hex[:6]}"
    script = {"+12125556205": ["busy", "completed"], "+12125556206": ["completed"]}
    url = f"sqlite:///{tmp_path / 'calls.db'}"
    store = Store.open(url)
    ledger = DialLedger(store)
    env = worker_env(
        address=address(client),
        database_url=url,
        task_queue=f"faults-{uuid.uuid4().hex[:8]}",
        script=script,
        speed=SPEED,
        directory=tmp_path,
    )
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    try:
        spec = CampaignSpec.model_validate(
            {"campaign_id": campaign_id, "retry": RETRY, "long_living": True}
        )
        handle = await start_campaign(client, spec, task_queue=env["REDIALER_TASK_QUEUE"])

        def signal_with(payload: str) -> None:
            sent = subprocess.run(
                [
                    find_binary("temporal"),
                    "workflow",
                    "signal",
                    "--workflow-id",
                    f"campaign/{campaign_id}",
                    "--name",
                    "add_recipients",
                    "--input",
                    payload,
                    "--address",
                    address(client),
                    "--namespace",
                    client.namespace,
                ],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert sent.returncode == 0, sent.stderr

        for payload in [*MALFORMED, GOOD]:
            await asyncio.to_thread(signal_with, payload)
        expected = {"+12125556205": ("completed", 2), "+12125556206": ("completed", 1)}

        def finals() -> bool:
            seen = recipients(store, campaign_id)
            return {p: (s, a) for p, (_, s, a) in seen.items() if s is not None} == expected

        await until(finals, "the good recipients reached their final status")
        assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
        assert set(recipients(store, campaign_id)) == set(expected)
        for phone in NEVER_DIALED:
            assert simulated_rows(store, phone) == [], phone
        assert {r.phone for r in ledger.dials_for_campaign(campaign_id)} == set(expected)
        assert ledger.dialed_twice(f"{campaign_id}:") == {}
        # No workflow task failed on the way (a failed decode retried forever would show here).
        events = [e.event_type async for e in handle.fetch_history_events()]
        assert EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED not in events
        stopped = await stop(client, campaign_id)
        assert stopped.state == "stopped"
        ended = await asyncio.wait_for(handle.result(), timeout=DEADLINE)
        assert ended.state == "stopped"
    finally:
        exit_code = worker.stop()
        store.close()
    assert exit_code == 0
    log = worker.log.read_text(errors="replace")
    assert bad_log_lines([worker.log]) == []
    # Each undecodable signal was dropped by the SDK, the number that is not one was rejected.
    assert log.count("dropping the signal") == len(MALFORMED) - 1
    assert log.count('"recipient rejected"') == 1
