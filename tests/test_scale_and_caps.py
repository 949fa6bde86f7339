"""Campaign-wide caps across worker processes, and campaigns beyond Temporal's per-run limits."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from datetime import datetime
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from redialer.campaign import CampaignSpec
from redialer.dialers.simulated import DialLedger
from redialer.store.store import Store
from starter import campaigns

pytestmark = pytest.mark.devserver

ROOT = Path(__file__).resolve().parent.parent


def most_at_once(intervals: list[tuple[datetime, datetime]]) -> int:
    """The largest number of intervals overlapping at any instant (a sweep over their ends)."""
    events = sorted(
        [(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals], key=lambda e: (e[0], e[1])
    )  # an end before a start at the same instant
    best = current = 0
    for _, step in events:
        current += step
        best = max(best, current)
    return best


def test_overlap_counter():
    """The sweep counts overlaps exactly, treating touching intervals as sequential."""
    t = [datetime(2026, 1, 1, 0, 0, s) for s in range(10)]
    assert most_at_once([(t[0], t[3]), (t[1], t[4]), (t[2], t[5]), (t[5], t[6])]) == 3
    assert most_at_once([(t[0], t[1]), (t[1], t[2])]) == 1


async def test_concurrency_cap_holds_across_two_worker_processes(
    dev_env: WorkflowEnvironment, tmp_path: Path
):
    """With two workers and slow calls, calls in progress never exceed max_concurrent_calls."""
    url = f"sqlite:///{tmp_path / 'calls.db'}"
    phones = [f"+1415555{n:04d}" for n in range(400, 424)]
    script = tmp_path / "script.json"
    script.write_text(json.dumps({p: ["no_answer", "completed"] for p in phones}))
    queue = f"cap-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
        "REDIALER_TASK_QUEUE": queue,
        "REDIALER_DATABASE_URL": url,
        "REDIALER_SIMULATOR_SCRIPT": str(script),
        "REDIALER_SIMULATOR_SPEED": "60",
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
        spec = CampaignSpec.model_validate(
            {
                "campaign_id": f"cap-{uuid.uuid4().hex[:6]}",
                "max_concurrent_calls": 3,
                "retry": {"strategy": {"type": "fixed_delay", "delay": 1, "max_retries": 1}},
                "recipients": [{"phone": p} for p in phones],
            }
        )
        handle = await campaigns.start_campaign(dev_env.client, spec, task_queue=queue)
        result = await asyncio.wait_for(handle.result(), 240)
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            w.wait(timeout=60)
    assert result.by_status == {"completed": len(phones)}
    store = Store.open(url)
    try:
        dials = [d for p in phones for d in DialLedger(store).dials_for(p)]
        assert len(dials) == 2 * len(phones)
        peak = most_at_once([(d.claimed_at, d.finished_at) for d in dials])  # type: ignore[misc]
        assert peak <= 3, f"{peak} calls were up at once"
        assert peak == 3  # the cap is used, not just respected
        assert all(w.returncode == 0 for w in workers)
    finally:
        store.close()


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
