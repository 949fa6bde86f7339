"""How fast `redialer plan` answers on a 20-retry policy: in process and as a command.

    python -m bench.plan_speed

Issue target: "well under a second". Prints the median of several runs of each.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from redialer.campaign import CampaignPolicy
from redialer.outcomes import Outcome
from redialer.plan import plan_attempts

POLICY = {
    "timezone": "America/New_York",
    "retry": {"strategy": {"type": "fixed_delay", "delay": 1800, "max_retries": 20, "jitter": 0.1}},
    "pause_windows": {
        "monday": [{"start": "12:00", "end": "14:00"}, {"start": "18:00", "end": "23:59"}]
    },
    "calling_hours": {"start": "09:00", "end": "21:00"},
    "max_attempts_per_day": 3,
}


def in_process(runs: int = 50) -> float:
    policy = CampaignPolicy.model_validate(POLICY)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        plan = plan_attempts(
            policy,
            phone="+12125550123",
            recipient_timezone=None,
            start=datetime.fromisoformat("2026-11-23T08:00:00-05:00"),
            outcomes=[Outcome.BUSY] * 21,
        )
        times.append(time.perf_counter() - t)
    assert len(plan.attempts) == 21
    return statistics.median(times)


def as_command(runs: int = 5) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "spec.json"
        spec.write_text(
            json.dumps(
                {"campaign_id": "bench", **POLICY, "recipients": [{"phone": "+12125550123"}]}
            )
        )
        command = [
            str(Path(sys.executable).parent / "redialer"),
            "plan",
            str(spec),
            "--start",
            "2026-11-23T08:00:00-05:00",
            "--outcomes",
            ",".join(["busy"] * 21),
            "--json",
        ]
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True)
            times.append(time.perf_counter() - t)
    return statistics.median(times)


if __name__ == "__main__":
    print(f"plan, 21 attempts, in process: {in_process() * 1000:.1f} ms (median of 50)")
    print(
        f"redialer plan as a command:    {as_command() * 1000:.0f} ms (median of 5, incl. start-up)"
    )
