"""Processes end cleanly when asked: no orphaned Temporal server, no call cut by a worker's
shutdown. Real processes and real signals, as systemd, `docker stop` or a supervisor sends them.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from redialer.campaign import CampaignPolicy
from redialer.dialers.simulated import DURATIONS, DialLedger
from redialer.outcomes import Outcome
from redialer.recipients import Recipient
from redialer.settings import Settings, describe_errors
from redialer.store.store import Store
from starter.campaigns import start_single_call
from starter.server import free_port

pytestmark = pytest.mark.devserver

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DEADLINE = 60.0


def until(check: Callable[[], bool], what: str, timeout: float = DEADLINE) -> None:
    """Poll `check` until it holds; fail naming `what` once `timeout` seconds have passed."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what}: not within {timeout:g} s"
        time.sleep(0.1)


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """`until` for checks that await."""
    deadline = time.monotonic() + DEADLINE
    while not await check():
        assert time.monotonic() < deadline, f"{what}: not within {DEADLINE:g} s"
        await asyncio.sleep(0.1)


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def alive(pid: int) -> bool:
    """Running, not a zombie waiting for its parent to reap it."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def descendants(pid: int) -> set[int]:
    """Every process below `pid`, from /proc/<pid>/task/*/children."""
    found: set[int] = set()
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            listed = children.read_text().split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        for child in map(int, listed):
            found |= {child, *descendants(child)}
    return found


def program(pid: int) -> str:
    """The name of the executable `pid` runs (`temporal`, `python3.11`), or "" once it ended."""
    try:
        return Path(os.readlink(f"/proc/{pid}/exe")).name
    except (FileNotFoundError, ProcessLookupError):
        return ""


def test_sigterm_to_redialer_server_leaves_no_temporal_server_behind(tmp_path: Path):
    """SIGTERM to `redialer server` ends the Temporal server too, and frees its port."""
    port, ui_port = free_port(), free_port()
    out = (tmp_path / "server.log").open("wb")
    process = subprocess.Popen(
        [
            str(BIN / "redialer"),
            "server",
            "--port",
            str(port),
            "--ui-port",
            str(ui_port),
            "--db",
            str(tmp_path / "data" / "temporal.db"),
        ],
        stdout=out,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    temporal: set[int] = set()
    try:
        until(lambda: listening(port) or process.poll() is not None, "the server listening")
        assert process.poll() is None, (tmp_path / "server.log").read_text()
        started = {process.pid, *descendants(process.pid)}
        temporal = {pid for pid in started if program(pid) == "temporal"}
        assert temporal, "no temporal process found"
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=DEADLINE)
        until(lambda: not any(alive(p) for p in temporal), f"temporal processes {temporal} ending")
        until(lambda: not listening(port), f"port {port} freed")
        log = (tmp_path / "server.log").read_text()
        assert f"127.0.0.1:{port}" in log  # where the server is, printed before it started
    finally:
        for pid in {process.pid, *temporal}:  # a failed run leaves nothing behind either
            if alive(pid) and (pid == process.pid or program(pid) == "temporal"):
                os.kill(pid, signal.SIGKILL)
        process.wait(timeout=DEADLINE)
        out.close()


FIRST, LATER = "+13125550301", "+13125550302"


class WorkerMidCall:
    """`python worker.py` on the dev server, a SQLite store and unanswered calls of 5-7 s (a
    25-35 s ring at speed 5), stopped by SIGTERM while its first call rings."""

    def __init__(self, env: WorkflowEnvironment, tmp_path: Path, *, grace: float) -> None:
        script = tmp_path / "script.json"
        script.write_text(json.dumps({FIRST: ["no_answer"], LATER: ["no_answer"]}))
        url = f"sqlite:///{tmp_path / 'calls.db'}"
        self.client = env.client
        self.queue = f"hygiene-{uuid.uuid4().hex[:8]}"
        self.env = {
            **os.environ,
            "TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
            "REDIALER_TASK_QUEUE": self.queue,
            "REDIALER_DATABASE_URL": url,
            "REDIALER_SIMULATOR_SCRIPT": str(script),
            "REDIALER_SIMULATOR_SPEED": "5",
            "REDIALER_GRACEFUL_SHUTDOWN": f"{grace:g}",
        }
        self.store = Store.open(url)  # the tables exist before the worker opens the file
        self.ledger = DialLedger(self.store)
        self.log = tmp_path / "worker.log"
        self.handles: list[WorkflowHandle[Any, Any]] = []

    async def call(self, phone: str) -> WorkflowHandle[Any, Any]:
        handle = await start_single_call(
            self.client, Recipient(phone=phone), CampaignPolicy(), task_queue=self.queue
        )
        self.handles.append(handle)
        return handle

    def logged(self) -> str:
        return self.log.read_text()

    async def run(self, during_shutdown: Callable[[], Awaitable[object]]) -> int:
        """Start the worker and the first call; SIGTERM once it rings, then `during_shutdown`;
        the worker's exit code."""
        with self.log.open("wb") as out:
            worker = subprocess.Popen(
                [sys.executable, str(ROOT / "worker.py")],
                env=self.env,
                cwd=ROOT,
                stdout=out,
                stderr=out,
            )
        try:
            await self.call(FIRST)

            async def ringing() -> bool:
                assert worker.poll() is None, self.logged()
                return bool(await asyncio.to_thread(self.ledger.dials_for, FIRST))

            await eventually(ringing, "the first call ringing")
            worker.send_signal(signal.SIGTERM)

            async def shutting_down() -> bool:
                return "shutting down" in self.logged()

            await eventually(shutting_down, "the worker shutting down")
            await during_shutdown()
            return await asyncio.to_thread(worker.wait, DEADLINE)
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait(timeout=DEADLINE)

    async def close(self) -> None:
        for handle in self.handles:
            await handle.terminate("test over")
        self.store.close()


async def test_sigterm_lets_the_call_in_progress_finish_and_takes_no_new_dial(
    dev_env: WorkflowEnvironment, tmp_path: Path
):
    """SIGTERM mid-call: the worker takes no new dial, the call ends and is recorded, exit 0."""
    run = WorkerMidCall(dev_env, tmp_path, grace=45)
    try:
        assert await run.run(lambda: run.call(LATER)) == 0, run.logged()
        assert "waiting up to 45 s for 1 calls in progress" in run.logged(), run.logged()
        [attempt] = run.store.attempts_for(run.handles[0].id)  # recorded before the exit
        assert attempt.outcome is Outcome.NO_ANSWER
        [dial] = run.ledger.dials_for(FIRST)
        assert dial.outcome == Outcome.NO_ANSWER.value and dial.placements == 1
        assert run.ledger.dials_for(LATER) == []  # no new dial after SIGTERM
        # A poll already waiting at the server may be handed the later workflow's first task
        # (WorkflowTaskStarted), but the worker runs none of it: it schedules no dial.
        events = [e.event_type async for e in run.handles[1].fetch_history_events()]
        assert EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED not in events, events
        assert EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED not in events, events
    finally:
        await run.close()


async def test_a_call_longer_than_the_grace_is_cut_and_left_to_the_next_worker(
    dev_env: WorkflowEnvironment, tmp_path: Path
):
    """REDIALER_GRACEFUL_SHUTDOWN bounds the wait: past it the call is cut, not recorded, and
    the worker still exits 0 (the next worker resumes the attempt)."""
    run = WorkerMidCall(dev_env, tmp_path, grace=0)

    async def nothing() -> None:
        pass

    try:
        assert await run.run(nothing) == 0, run.logged()
        assert "waiting up to 0 s for 1 calls in progress" in run.logged(), run.logged()
        assert run.store.attempts_for(run.handles[0].id) == []
        [dial] = run.ledger.dials_for(FIRST)
        assert dial.outcome is None  # still up as far as anyone knows: not finished here
    finally:
        await run.close()


def test_the_default_shutdown_grace_outlasts_the_longest_simulated_call():
    """A deploy with default settings never cuts a simulated call, answered ones included."""
    longest = max(high for _, high in DURATIONS.values())
    assert Settings().graceful_shutdown >= longest


def test_the_shutdown_grace_is_read_from_the_environment_and_validated(
    monkeypatch: pytest.MonkeyPatch,
):
    """REDIALER_GRACEFUL_SHUTDOWN is seconds; a negative one is refused, naming the variable."""
    monkeypatch.setenv("REDIALER_GRACEFUL_SHUTDOWN", "600")
    assert Settings().graceful_shutdown == 600
    monkeypatch.setenv("REDIALER_GRACEFUL_SHUTDOWN", "-1")
    with pytest.raises(ValidationError) as refused:
        Settings()
    [line] = describe_errors(refused.value)
    assert line.startswith("invalid setting REDIALER_GRACEFUL_SHUTDOWN='-1'"), line
