"""What encryption costs: B1 with and without REDIALER_ENCRYPTION_KEYS, in the same run.

    python -m bench.codec_cost [--recipients 300] [--repeat 3] [--mode file]

Each repetition runs B1 (recipients started from the client, three attempts each, the instant
simulated dialer) once on plain payloads and once with every payload AES-256-GCM encrypted by
the worker and the client (the codec, failures included), alternating which goes first, each in
its own dev server and worker process. Reported per arm (medians): attempts and history events
per second, and the worker's CPU seconds per attempt (from /proc: utime + stime of the worker
process over the B1 run). Writes bench/results/<time>-codec-cost.json.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import statistics
from datetime import UTC, datetime
from typing import Any

from bench.proc_cpu import _stat_cpu
from bench.run import RESULTS, b1, environment, machine, phones

#: Two keys, as a rotation leaves them: the first encrypts.
KEYS = ",".join(f"k{i}:" + base64.b64encode(os.urandom(32)).decode() for i in (2, 1))


async def one_arm(encrypted: bool, n: int, mode: str) -> dict[str, float]:
    async with environment(
        mode, phones("212", n), encryption_keys=KEYS if encrypted else None
    ) as bench:
        await b1(bench, 20)  # warm-up: imports, caches, the first workflow tasks
        cpu0 = _stat_cpu(f"/proc/{bench.worker.pid}/stat")
        row = await b1(bench, n)
        cpu = _stat_cpu(f"/proc/{bench.worker.pid}/stat") - cpu0
        attempts = n * row["attempts_per_s"] / row["recipients_per_s"]
        row["worker_cpu_s"] = cpu
        row["worker_cpu_ms_per_attempt"] = 1000 * cpu / attempts
        return row


async def run(args: argparse.Namespace) -> dict[str, Any]:
    arms: dict[str, list[dict[str, float]]] = {"plain": [], "encrypted": []}
    for rep in range(args.repeat):
        order = [False, True] if rep % 2 == 0 else [True, False]
        for encrypted in order:
            name = "encrypted" if encrypted else "plain"
            print(f"  repetition {rep + 1}/{args.repeat}: {name}", flush=True)
            arms[name].append(await one_arm(encrypted, args.recipients, args.mode))
    medians = {
        arm: {k: statistics.median(r[k] for r in rows) for k in rows[0]}
        for arm, rows in arms.items()
    }
    ratio = {
        k: medians["encrypted"][k] / medians["plain"][k]
        for k in ("attempts_per_s", "events_per_s", "worker_cpu_ms_per_attempt")
    }
    return {"medians": medians, "encrypted_over_plain": ratio, "runs": arms}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipients", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--mode", choices=["file", "memory"], default="file")
    args = parser.parse_args()
    started = datetime.now(UTC)
    result = asyncio.run(run(args))
    for arm, m in result["medians"].items():
        print(
            f"  {arm:9} {m['attempts_per_s']:6.1f} attempts/s {m['events_per_s']:7.1f} events/s"
            f"  worker {m['worker_cpu_ms_per_attempt']:5.1f} ms CPU per attempt"
        )
    print(
        "  encrypted / plain:", {k: round(v, 3) for k, v in result["encrypted_over_plain"].items()}
    )
    out = RESULTS / f"{started:%Y%m%d-%H%M%S}-codec-cost.json"
    out.write_text(
        json.dumps(
            {
                "bench": "codec_cost",
                "date": started.isoformat(timespec="seconds"),
                "machine": machine(),
                "options": vars(args),
                **result,
            },
            indent=1,
        )
    )
    print(f"  ({out})")


if __name__ == "__main__":
    main()
