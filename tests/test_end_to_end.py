"""End to end on the local dev server: the CLI, a worker process, call records, and a crash.

These run the product as users do: `redialer start --wait`, `redialer progress --json`,
`redialer history --json` as subprocesses against `python worker.py` in another process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlmodel import SQLModel
from temporalio.testing import WorkflowEnvironment

from redialer.dialers.simulated import DialLedger
from redialer.store.store import Store
from tests.store_fixtures import POSTGRES_URL

pytestmark = pytest.mark.devserver

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def address(env: WorkflowEnvironment) -> str:
    return env.client.service_client.config.target_host


def spec_file(tmp_path: Path, campaign_id: str, phones: list[str], *, delays: list[int]) -> Path:
    spec = {
        "campaign_id": campaign_id,
        "timezone": "America/New_York",
        "retry": {"strategy": {"type": "attempts", "delays": delays}},
        "recipients": [{"phone": p, "variables": {"row": i}} for i, p in enumerate(phones)],
    }
    path = tmp_path / f"{campaign_id}.json"
    path.write_text(json.dumps(spec))
    return path


class WorkerProcess:
    """`python worker.py` with its settings in the environment, as an operator runs it."""

    def __init__(self, env: dict[str, str], log: Path):
        self._env = env
        self._log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        out = open(self._log, "ab")  # noqa: SIM115 - closed with the process
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "worker.py")],
            env=self._env,
            stdout=out,
            stderr=out,
            cwd=ROOT,
        )

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def terminate(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)


@pytest.fixture
def run_env(dev_env: WorkflowEnvironment, tmp_path: Path):  # type: ignore[no-untyped-def]
    def make(database_url: str, script: dict[str, list[str]], speed: float) -> dict[str, str]:
        script_path = tmp_path / f"script-{uuid.uuid4().hex[:6]}.json"
        script_path.write_text(json.dumps(script))
        return {
            **os.environ,
            "TEMPORAL_ADDRESS": address(dev_env),
            "REDIALER_TASK_QUEUE": f"e2e-{uuid.uuid4().hex[:8]}",
            "REDIALER_DATABASE_URL": database_url,
            "REDIALER_SIMULATOR_SCRIPT": str(script_path),
            "REDIALER_SIMULATOR_SPEED": str(speed),
            "REDIALER_LOG_FORMAT": "json",
        }

    return make


def until(check: Callable[[], bool], what: str, timeout: float = 120) -> None:
    """Poll `check` until it holds (at once if it does); fail naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what}: not within {timeout:g} s"
        time.sleep(0.1)


def cli(env: dict[str, str], *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "redialer"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A clean PostgreSQL database for one test (tables dropped before and after)."""
    store = Store.open(POSTGRES_URL)
    SQLModel.metadata.drop_all(store.engine)
    store.close()
    yield POSTGRES_URL


@pytest.mark.parametrize(
    "database", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
async def test_campaign_through_the_cli_with_call_records(
    database: str, run_env, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """`redialer start --wait` completes a campaign; progress, history and records agree."""
    url = (
        request.getfixturevalue("postgres_url")
        if database == "postgres"
        else f"sqlite:///{tmp_path / 'calls.db'}"
    )
    phones = ["+12125550101", "+12125550102", "+13125550103", "+14155550104"]
    script = {
        phones[0]: ["busy", "no_answer", "completed"],
        phones[1]: ["voicemail"],
        phones[2]: ["no_answer", "no_answer", "no_answer"],
        phones[3]: ["completed"],
    }
    env = run_env(url, script, speed=1000)
    campaign_id = f"e2e-{database}-{uuid.uuid4().hex[:6]}"
    spec = spec_file(tmp_path, campaign_id, phones, delays=[1, 2])
    worker = WorkerProcess(env, tmp_path / "worker.log")
    worker.start()
    try:
        done = cli(env, "start", str(spec), "--wait")
        assert done.returncode == 0, done.stderr + (tmp_path / "worker.log").read_text()[-3000:]
        progress = json.loads(cli(env, "progress", campaign_id, "--json").stdout)
        history = json.loads(cli(env, "history", campaign_id, phones[0], "--json").stdout)
        again = cli(env, "start", str(spec))
    finally:
        assert worker.terminate() == 0
    assert progress == {
        "campaign_id": campaign_id,
        "state": "completed",
        "total": 4,
        "final": 4,
        "active": 0,
        "by_status": {"completed": 2, "voicemail_final": 1, "all_retries_exhausted": 1},
        "source": "store",  # the campaign has completed: no worker needed to answer
        "lines": {
            "campaign": {"in_use": 0, "waiting": 0},
            "account": {"in_use": 0, "waiting": 0, "cap": None, "this_campaign": 0},
        },
    }
    assert [a["outcome"] for a in history["attempts"]] == ["busy", "no_answer", "completed"]
    assert history["status"] == "completed"
    assert history["retry_group_id"] == f"campaign/{campaign_id}/recipient/{phones[0]}"
    assert history["next_attempt_at"] is None
    assert set(history["attempts"][0]) == {
        "attempt",
        "outcome",
        "started_at",
        "ended_at",
        "call_id",
    }
    # The same campaign id is never started twice.
    assert again.returncode == 2 and "already exists" in again.stderr
    store = Store.open(url)
    try:
        records = store.call_records(campaign_id)
        assert len(records) == 3 + 1 + 3 + 1
        assert {r.retry_group_id for r in records if r.phone == phones[0]} == {
            history["retry_group_id"]
        }
        assert [r.outcome for r in records if r.phone == phones[0]] == [
            "busy",
            "no_answer",
            "completed",
        ]
        assert next(r for r in records if r.phone == phones[2]).variables == {"row": 2}
    finally:
        store.close()


async def test_worker_killed_mid_campaign_loses_nothing_and_dials_nothing_twice(
    run_env, tmp_path: Path
) -> None:
    """SIGKILL the worker mid-campaign: a new one finishes every recipient, no attempt twice."""
    url = f"sqlite:///{tmp_path / 'calls.db'}"
    phones = [f"+1212555{n:04d}" for n in range(300, 324)]
    script = {p: ["no_answer", "busy", "completed"] for p in phones}
    env = run_env(url, script, speed=20)  # calls last 1-2 s: some are up when the worker dies
    campaign_id = f"crash-{uuid.uuid4().hex[:6]}"
    spec = spec_file(tmp_path, campaign_id, phones, delays=[1, 1])
    first = WorkerProcess(env, tmp_path / "worker1.log")
    first.start()
    started = cli(env, "start", str(spec))
    assert started.returncode == 0, started.stderr
    store = Store.open(url)
    ledger = DialLedger(store)
    try:
        until(lambda: sum(ledger.placements().values()) >= 20, "the first worker dialing")
        first.kill()
        placed_before = sum(ledger.placements().values())
        second = WorkerProcess(env, tmp_path / "worker2.log")
        second.start()
        try:
            progress: dict[str, object] = {}

            def completed() -> bool:
                out = cli(env, "progress", campaign_id, "--json")
                progress.clear()
                progress.update(json.loads(out.stdout) if out.returncode == 0 else {})
                return progress.get("state") == "completed"

            until(completed, "the campaign completing", timeout=300)
        finally:
            second.terminate()
        # The new worker replays what the dead one decided: any divergence would show here.
        assert "Nondeterminism" not in (tmp_path / "worker2.log").read_text()
        assert progress["by_status"] == {"completed": len(phones)}
        placements = ledger.placements()
        assert sum(placements.values()) > placed_before  # the second worker did real work
        assert all(n == 1 for n in placements.values()), placements
        for phone in phones:
            assert [d.attempt for d in ledger.dials_for(phone)] == [1, 2, 3]
        assert len(store.call_records(campaign_id)) == 3 * len(phones)
    finally:
        store.close()
