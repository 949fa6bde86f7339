"""Helpers for the fault tests: worker processes to kill, polling, and what the store shows.

Run as a module (`python -m tests.fault_helpers`) it is a worker with dial adoption broken on
purpose (every retried dial believes it is the first), the mutation that proves the double-dial
checks of `tests/test_faults.py` can fail: `FAULTS_SABOTAGE=adoption pytest tests/test_faults.py`
must fail them.
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
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from sqlmodel import Session, select

from redialer.dialers.simulated import DialLedger
from redialer.store.store import Store, aware
from redialer.store.tables import CampaignRecipientRow, SimulatedDialRow

ROOT = Path(__file__).resolve().parent.parent
#: Far above what any wait takes on a loaded 2-core machine; polls return as soon as they hold.
DEADLINE = 120.0
#: What a worker log must never contain: replay divergence, or a log record that broke logging.
BAD_LOG_LINES = ("Nondeterminism", "TMPRL1100", "Logging error")

T = TypeVar("T")


async def until(check: Callable[[], T], what: str, *, timeout: float = DEADLINE) -> T:
    """Poll `check` until it returns something truthy, and return that."""
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, f"{what}: not within {timeout:g} s"
        await asyncio.sleep(0.1)
    return value


async def eventually(
    check: Callable[[], Awaitable[T | None]], what: str, *, timeout: float = DEADLINE
) -> T:
    """`until` for a check that awaits."""
    deadline = time.monotonic() + timeout
    while not (value := await check()):
        assert time.monotonic() < deadline, f"{what}: not within {timeout:g} s"
        await asyncio.sleep(0.1)
    return value


def worker_env(
    *,
    address: str,
    database_url: str,
    task_queue: str,
    script: dict[str, list[str]],
    speed: float,
    directory: Path,
) -> dict[str, str]:
    """A worker's environment, as an operator sets it (see `redialer/settings.py`)."""
    script_path = directory / f"script-{task_queue}.json"
    script_path.write_text(json.dumps(script))
    return {
        **os.environ,
        "TEMPORAL_ADDRESS": address,
        "REDIALER_TASK_QUEUE": task_queue,
        "REDIALER_DATABASE_URL": database_url,
        "REDIALER_SIMULATOR_SCRIPT": str(script_path),
        "REDIALER_SIMULATOR_SPEED": str(speed),
        "REDIALER_LOG_FORMAT": "json",
        "REDIALER_GRACEFUL_SHUTDOWN": "10",
    }


class WorkerProcess:
    """`python worker.py` in its own process, to SIGKILL mid-call; its log in its own file.

    With FAULTS_SABOTAGE=adoption in the test's environment it is the broken worker instead."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log = log
        self.started_at = datetime.now(UTC)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        sabotage = os.environ.get("FAULTS_SABOTAGE") == "adoption"
        command = (
            [sys.executable, "-m", "tests.fault_helpers"]
            if sabotage
            else [sys.executable, str(ROOT / "worker.py")]
        )
        out = open(self.log, "ab")  # noqa: SIM115 - the child owns it
        self.started_at = datetime.now(UTC)
        self.process = subprocess.Popen(command, env=self.env, stdout=out, stderr=out, cwd=ROOT)
        out.close()
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> int:
        """SIGTERM, as a supervisor stops it; the exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def bad_log_lines(logs: Iterable[Path]) -> list[str]:
    """Lines of the given logs that show a replay divergence or a broken log record."""
    return [
        f"{path.name}: {line[:400]}"
        for path in logs
        if path.exists()
        for line in path.read_text(errors="replace").splitlines()
        if any(bad in line for bad in BAD_LOG_LINES)
    ]


def live_calls(ledger: DialLedger, campaign_id: str, *, since: datetime) -> set[str]:
    """Keys of calls claimed at the simulated provider since `since` and not ended yet: calls a
    worker started after `since` has up right now."""
    return {
        row.idempotency_key
        for row in ledger.dials_for_campaign(campaign_id)
        if row.outcome is None and aware(row.claimed_at) >= since
    }


def ended_calls(ledger: DialLedger, campaign_id: str) -> int:
    return sum(1 for row in ledger.dials_for_campaign(campaign_id) if row.outcome is not None)


def recipients(store: Store, campaign_id: str) -> dict[str, tuple[str, str | None, int]]:
    """phone -> (state, final status, attempts), as the store has them."""
    with Session(store.engine) as session:
        rows = session.exec(
            select(CampaignRecipientRow).where(CampaignRecipientRow.campaign_id == campaign_id)
        ).all()
    return {r.phone: (r.state, r.status, r.attempts) for r in rows}


def all_final(store: Store, campaign_id: str, n: int) -> bool:
    rows = recipients(store, campaign_id)
    return len(rows) == n and all(state == "final" for state, _, _ in rows.values())


def simulated_rows(store: Store, phone: str) -> list[SimulatedDialRow]:
    """Every ledger row for a phone exactly as written (no normalisation)."""
    with Session(store.engine) as session:
        return list(session.exec(select(SimulatedDialRow).where(SimulatedDialRow.phone == phone)))


def _sabotaged_worker() -> None:
    """A worker whose retried dials never find their intent, so never adopt: they re-place."""
    from redialer.store.dial_intents import DialIntents

    begin = DialIntents.begin

    def forgetful(self, key, *, phone, attempt):  # type: ignore[no-untyped-def]
        return begin(self, key, phone=phone, attempt=attempt)._replace(first=True)

    DialIntents.begin = forgetful  # type: ignore[method-assign]
    sys.path.insert(0, str(ROOT))
    import worker

    worker.main()


if __name__ == "__main__":
    _sabotaged_worker()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_api(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    """`redialer api` in its own process, as an operator runs it; its log in `log`."""
    out = open(log, "ab")  # noqa: SIM115 - the child owns it
    try:
        return subprocess.Popen(
            [sys.executable, "-c", "from starter.cli import main; main()", "api"]
            + ["--port", str(port)],
            env=env,
            stdout=out,
            stderr=out,
            cwd=ROOT,
        )
    finally:
        out.close()
