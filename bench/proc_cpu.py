"""CPU seconds from /proc, for the callback load: a process, one of its threads, PostgreSQL's
processes, the whole machine; and percentages of one core between two samples."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def _stat_cpu(path: str) -> float:
    """utime + stime of a /proc/.../stat, seconds (fields 14 and 15, after the command)."""
    fields = Path(path).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def _postgres_cpu() -> float:
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() == "postgres":
                    total += _stat_cpu(str(entry / "stat"))
    return total


def _machine_busy() -> float:
    ticks = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(ticks[:8]) - ticks[3] - ticks[4]) / TICK  # all but idle and iowait


def cpu_sample(api: int, sender: int) -> dict[str, float]:
    return {
        "wall": time.monotonic(),
        "api": _stat_cpu(f"/proc/{api}/stat"),
        "api_main_thread": _stat_cpu(f"/proc/{api}/task/{api}/stat"),
        "sender": _stat_cpu(f"/proc/{sender}/stat"),
        "postgres": _postgres_cpu(),
        "machine": _machine_busy(),
        "bench": _stat_cpu("/proc/self/stat"),
    }


def cpu_percent(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Percent of one core over the interval; `others` is the machine minus all of ours."""
    wall = after["wall"] - before["wall"]
    used = {k: 100 * (after[k] - before[k]) / wall for k in before if k != "wall"}
    ours = used["api"] + used["sender"] + used["postgres"] + used["bench"]
    used["others"] = max(used["machine"] - ours, 0.0)
    used["api_store_threads"] = used["api"] - used["api_main_thread"]
    return {k: round(v, 1) for k, v in used.items()}
