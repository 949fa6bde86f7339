"""Campaign-wide caps across worker processes, and campaigns beyond Temporal's per-run limits."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select
from temporalio.testing import WorkflowEnvironment

from bench.run import most_at_once
from redialer.campaign import CampaignSpec
from redialer.dialers.simulated import DialLedger
from redialer.payloads import CampaignResult
from redialer.store.call_caps import LINE, dial_rate_windows
from redialer.store.store import Store
from starter import campaigns

pytestmark = pytest.mark.devserver

ROOT = Path(__file__).resolve().parent.parent


def test_overlap_counter():
    """The sweep counts overlaps exactly, treating touching intervals as sequential."""
    t = [datetime(2026, 1, 1, 0, 0, s) for s in range(10)]
    assert most_at_once([(t[0], t[3]), (t[1], t[4]), (t[2], t[5]), (t[5], t[6])]) == 3
    assert most_at_once([(t[0], t[1]), (t[1], t[2])]) == 1


async def run_on_two_workers(
    dev_env: WorkflowEnvironment, tmp_path: Path, spec: CampaignSpec, script: dict, speed: str
) -> tuple[CampaignResult, Store]:
    """Run the campaign on two worker processes sharing one store; returns its result and store."""
    url = f"sqlite:///{tmp_path / 'calls.db'}"
    (tmp_path / "script.json").write_text(json.dumps(script))
    queue = f"cap-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
        "REDIALER_TASK_QUEUE": queue,
        "REDIALER_DATABASE_URL": url,
        "REDIALER_SIMULATOR_SCRIPT": str(tmp_path / "script.json"),
        "REDIALER_SIMULATOR_SPEED": speed,
    }
    Store.open(url).close()  # tables exist before two processes race to create them
    workers = [
        subprocess.Popen(
            [sys.executable, str(ROOT / "worker.py")],
            env=env,
            cwd=ROOT,
            stdout=(tmp_path / f"w{i}.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        for i in range(2)
    ]
    try:
        handle = await campaigns.start_campaign(dev_env.client, spec, task_queue=queue)
        result = await asyncio.wait_for(handle.result(), 240)
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            w.wait(timeout=60)
    assert all(w.returncode == 0 for w in workers)
    return result, Store.open(url)


async def test_concurrency_cap_holds_across_two_worker_processes(
    dev_env: WorkflowEnvironment, tmp_path: Path
):
    """With two workers and slow calls, calls in progress never exceed max_concurrent_calls."""
    phones = [f"+1415555{n:04d}" for n in range(400, 424)]
    spec = CampaignSpec.model_validate(
        {
            "campaign_id": f"cap-{uuid.uuid4().hex[:6]}",
            "max_concurrent_calls": 3,
            "retry": {"strategy": {"type": "fixed_delay", "delay": 1, "max_retries": 1}},
            "recipients": [{"phone": p} for p in phones],
        }
    )
    script = {p: ["no_answer", "completed"] for p in phones}
    result, store = await run_on_two_workers(dev_env, tmp_path, spec, script, speed="60")
    try:
        assert result.by_status == {"completed": len(phones)}
        dials = [d for p in phones for d in DialLedger(store).dials_for(p)]
        assert len(dials) == 2 * len(phones)
        peak = most_at_once([(d.claimed_at, d.finished_at) for d in dials])  # type: ignore[misc]
        assert peak <= 3, f"{peak} calls were up at once"
        assert peak == 3  # the cap is used, not just respected
    finally:
        store.close()


async def test_dial_rate_holds_across_two_worker_processes(
    dev_env: WorkflowEnvironment, tmp_path: Path
):
    """With two workers and instant calls, max_calls_per_second holds: no second lets through
    more than the rate plus one window's worth, and the calls take as long as the rate says."""
    phones = [f"+1415555{n:04d}" for n in range(500, 516)]
    rate = 4
    spec = CampaignSpec.model_validate(
        {
            "campaign_id": f"rate-{uuid.uuid4().hex[:6]}",
            "max_calls_per_second": rate,
            "recipients": [{"phone": p} for p in phones],
        }
    )
    script = {p: ["completed"] for p in phones}
    result, store = await run_on_two_workers(dev_env, tmp_path, spec, script, speed="1000000")
    try:
        assert result.by_status == {"completed": len(phones)}
        dialed = {d.idempotency_key for p in phones for d in DialLedger(store).dials_for(p)}
        # When each call was let through, as the store decided it (the clock reading that picked
        # its window): how long a busy machine then takes to place the call does not blur it.
        with Session(store.engine) as session:
            admitted = dict(
                session.exec(  # type: ignore[call-overload]
                    select(LINE.holder, LINE.admitted_at).where(
                        LINE.campaign_id == spec.campaign_id
                    )
                ).all()
            )
    finally:
        store.close()
    assert len(dialed) == len(phones) and set(admitted) == dialed  # every call was let through
    starts = sorted(admitted.values())
    tickets, seconds = dial_rate_windows(rate)
    busiest = max(sum(1 for t in starts if s <= t < s + timedelta(seconds=1)) for s in starts)
    assert busiest <= rate + tickets, f"{busiest} calls were let through within one second"
    # One window's worth per window: the first and last call are whole windows apart.
    span = (starts[-1] - starts[0]).total_seconds()
    assert span >= (len(phones) / tickets - 2) * seconds, span


async def test_campaign_larger_than_the_pending_child_limit_completes(
    dev_env: WorkflowEnvironment, harness_for
):
    """2,100 recipients (over Temporal's 2,000 pending children) all start and finish."""
    h = harness_for(dev_env)  # unscripted numbers: the seeded random mix, instant calls
    phones = [f"+1312555{n:04d}" for n in range(2100)]
    spec = CampaignSpec.model_validate(
        {
            "campaign_id": f"big-{uuid.uuid4().hex[:6]}",
            "recipients": [{"phone": p} for p in phones],
        }
    )
    async with h.worker():
        handle = await campaigns.start_campaign(dev_env.client, spec, task_queue=h.task_queue)
        result = await asyncio.wait_for(handle.result(), 400)
    assert result.total == 2100
    assert sum(result.by_status.values()) == 2100
    assert len(h.ledger.placements()) == 2100
    history = await handle.fetch_history()
    assert len(history.events) < 10_000
