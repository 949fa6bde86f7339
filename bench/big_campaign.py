"""One very large campaign end to end: the documented 100,000-recipient run (not part of CI).

    python -m bench.big_campaign [--recipients 100000] [--mode file|memory]

Starts its own dev server and one worker process (as `python -m bench` does), starts a campaign
of N recipients with the default policy and the instant simulated dialer, and samples progress
and the worker's memory every 15 s until it completes. Reports the wall time, the time to start
everyone, peak worker RSS, the campaign's runs and its largest history per run, and checks that
every recipient was dialed exactly once. Writes bench/results/<time>-big-<N>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from typing import Any

from bench.run import (
    RESULTS,
    Bench,
    campaign_runs,
    environment,
    history_length,
    machine,
    phones,
    progress_of,
    worker_rss_mb,
)
from redialer.campaign import CampaignSpec
from redialer.dialers.simulated import DialLedger
from starter import campaigns

SAMPLE_EVERY = 15.0


async def big_campaign(bench: Bench, n: int) -> dict[str, Any]:
    area_codes = ["917", "646", "718", "347", "929", "332", "212", "315", "516", "631", "914"]
    numbers = [p for area in area_codes for p in phones(area, 10_000)][:n]
    spec = CampaignSpec.model_validate(
        {
            "campaign_id": f"big-{uuid.uuid4().hex[:8]}",
            "recipients": [{"phone": p} for p in numbers],
        }
    )
    t0 = time.time()
    handle = await campaigns.start_campaign(bench.client, spec, task_queue=bench.task_queue)
    delivered = time.time() - t0
    samples: list[dict[str, float]] = []
    all_started = None
    peak = 0.0
    while True:
        p = await progress_of(bench, spec.campaign_id)
        rss, peak = worker_rss_mb(bench.worker)
        samples.append({"t": time.time() - t0, "final": p.final, "queued": p.queued, "rss_mb": rss})
        print(
            f"  {samples[-1]['t']:7.0f} s  total {p.total:>7}  queued {p.queued:>7}"
            f"  final {p.final:>7}  worker RSS {rss:5.0f} MB",
            flush=True,
        )
        if all_started is None and p.total == n and p.queued == 0:
            all_started = time.time() - t0
        if p.final >= n:
            break
        await asyncio.sleep(SAMPLE_EVERY)
    result = await handle.result()
    wall = time.time() - t0
    runs = await campaign_runs(bench.client, spec.campaign_id)
    histories = [await history_length(bench.client, handle.id, r) for r in runs]
    placements = DialLedger(bench.store).placements()
    mine = [v for k, v in placements.items() if k.startswith(spec.campaign_id + ":")]
    return {
        "recipients": n,
        "by_status": result.by_status,
        "wall_s": wall,
        "list_delivered_s": delivered,
        "all_started_s": all_started,
        "recipients_per_s": n / wall,
        "worker_peak_rss_mb": peak,
        "campaign_runs": len(runs),
        "largest_history": max(histories),
        "dialed": len(mine),
        "dialed_twice": sum(1 for v in mine if v > 1),
        "samples": samples,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=100_000)
    # Not "memory" by default: the in-memory dev server keeps every history in RAM, and at
    # 100,000 recipients it passed 23 GB and stopped answering ("shard status unknown").
    parser.add_argument("--mode", choices=["memory", "file"], default="file")
    args = parser.parse_args()

    async def run() -> dict[str, Any]:
        async with environment(args.mode, phones("212", 20)) as bench:
            return await big_campaign(bench, args.recipients)

    result = asyncio.run(run())
    result.update(mode=args.mode, machine=machine())
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{time.strftime('%Y%m%d-%H%M%S')}-big-{args.recipients}.json"
    out.write_text(json.dumps(result, indent=2))
    print(
        f"\n{args.recipients:,} recipients in {result['wall_s'] / 60:.1f} min"
        f" ({result['recipients_per_s']:.1f}/s; all started after {result['all_started_s']:.0f} s)"
        f"  worker peak RSS {result['worker_peak_rss_mb']:.0f} MB"
        f"  campaign: {result['campaign_runs']} runs, largest history {result['largest_history']}"
        f"  dialed {result['dialed']:,}, twice {result['dialed_twice']}\n{out}"
    )


if __name__ == "__main__":
    main()
