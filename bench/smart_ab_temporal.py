"""The smart A/B on the Temporal time-skipping server: the runtime path end to end, smaller.

    python -m bench.smart_ab_temporal [--recipients 200]

`bench/smart_ab.py` walks the schedule without Temporal, fast enough for 2,000 recipients per
arm. This runs the real thing at a smaller size, to check the two agree: `smart` and
`fixed_delay` campaigns (the same policies as bench/smart_ab.py) on the Java time-skipping
server, each recipient a RecipientWorkflow whose dial activity times its retries (the smart one
reading the answer-rate table through the worker's cache), the simulated dialer answering from
the seeds' answer profile at the recipient's local hour (Temporal's clock, so simulated days
pass in seconds). Cold: both campaigns on an empty store (smart learning from itself). Warm:
both again the next Monday, smart learning from every campaign. As in bench/smart_ab.py, first
calls start Monday 09:00 New York, spread over 8 hours (a campaign per arm per hourly wave; an
arm's numbers are summed over its campaigns). Writes bench/results/<time>-smart-ab-temporal.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from bench.run import RESULTS, machine
from bench.smart_ab import BASE, RETRY_ON, STRATEGIES, audience, report, row
from redialer.answer_profile import AnswerProfile
from redialer.binaries import find_binary
from redialer.campaign import CampaignSpec
from redialer.dialers.simulated import DialLedger, SimulatedDialer
from redialer.settings import Settings
from redialer.store.store import Store
from starter import campaigns
from tests.conftest import register_search_attributes
from worker import build_worker

ARMS = ("smart", "fixed")
#: First calls go out in this many hourly waves (a campaign per arm each) from Monday 09:00
#: New York, as bench/smart_ab.py spreads them over the first 8 hours.
WAVES = 8
NEW_YORK = ZoneInfo("America/New_York")


def spec(
    campaign_id: str, arm: str, people: list[tuple[str, str]], learn_from: list[str] | None
) -> CampaignSpec:
    strategy = dict(STRATEGIES[arm])
    if arm == "smart" and learn_from is not None:
        strategy["learn_from"] = learn_from
    return CampaignSpec.model_validate(
        {
            **BASE,
            "campaign_id": campaign_id,
            "retry": {"strategy": strategy, "retry_on": RETRY_ON},
            "recipients": [{"phone": p} for p, _ in people],
        }
    )


def next_monday_9am_new_york(after: datetime) -> datetime:
    """The first Monday 09:00 in New York after `after` (where bench/smart_ab.py starts)."""
    local = after.astimezone(NEW_YORK)
    days = (7 - local.weekday()) % 7 or 7
    day = (local + timedelta(days=days)).date()
    return datetime(day.year, day.month, day.day, 9, tzinfo=NEW_YORK)


def combined(store: Store, campaign_ids: list[str]) -> dict[str, Any]:
    """One arm's numbers over its campaigns (one per hourly wave of first calls)."""
    rows = [row(report(store, c)) for c in campaign_ids]
    recipients = sum(r["recipients"] for r in rows)
    connected = sum(r["connected"] for r in rows)
    calls = sum(r["calls_placed"] for r in rows)
    attempts = sum((r["avg_attempts_to_connect"] or 0) * r["connected"] for r in rows)
    return {
        "recipients": recipients,
        "connected": connected,
        "calls_placed": calls,
        "connection_rate": round(connected / recipients, 4),
        "connections_per_call": round(connected / calls, 4),
        "avg_attempts_to_connect": round(attempts / connected, 4) if connected else None,
    }


async def run(recipients: int, seed: int) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="redialer-smart-ab-temporal-"))
    url = f"sqlite:///{workdir / 'calls.db'}"
    store = Store.open(url)
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=find_binary("temporal-test-server"),
        data_converter=pydantic_data_converter,
    )
    results: dict[str, Any] = {}
    try:
        await register_search_attributes(env.client)
        queue = f"smart-ab-{uuid.uuid4().hex[:6]}"
        settings = Settings(task_queue=queue)
        dialer = SimulatedDialer(
            ledger=DialLedger(store), seed=seed, instant=True, profile=AnswerProfile.default()
        )
        people = audience(recipients)
        waves = [people[k::WAVES] for k in range(WAVES)]
        async with build_worker(
            env.client, settings=settings, store=store, dialer=dialer, task_queue=queue
        ):
            for phase in ("cold", "warm"):
                t0 = time.perf_counter()
                now = await env.get_current_time()
                await env.sleep(next_monday_9am_new_york(now) - now)
                ids = {arm: [f"temporal-{phase}-{arm}-{k}" for k in range(WAVES)] for arm in ARMS}
                handles = []
                for k, wave in enumerate(waves):  # a wave of first calls each hour
                    for arm in ARMS:
                        learn = ids[arm] if phase == "cold" else None  # cold: its own calls
                        handles.append(
                            await campaigns.start_campaign(
                                env.client, spec(ids[arm][k], arm, wave, learn), task_queue=queue
                            )
                        )
                    await env.sleep(timedelta(hours=1))
                for handle in handles:  # one at a time: each await lets the server skip time
                    await handle.result()
                for arm in ARMS:
                    results[f"temporal-{phase}-{arm}"] = combined(store, ids[arm])
                    print(arm, phase, json.dumps(results[f"temporal-{phase}-{arm}"]), flush=True)
                results[f"{phase} seconds"] = round(time.perf_counter() - t0, 1)
        for phase in ("cold", "warm"):
            smart = results[f"temporal-{phase}-smart"]["connections_per_call"]
            fixed = results[f"temporal-{phase}-fixed"]["connections_per_call"]
            results[f"{phase}: smart vs fixed, connections per call"] = f"{smart / fixed - 1:+.1%}"
    finally:
        await env.shutdown()
        store.close()
    return {"database": url, "results": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipients", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    began = time.perf_counter()
    outcome = asyncio.run(run(args.recipients, args.seed))
    summary = {
        "bench": "smart-ab-temporal",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "recipients_per_arm": args.recipients,
        "seed": args.seed,
        "seconds": round(time.perf_counter() - began, 1),
        **outcome,
    }
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{datetime.now(UTC):%Y%m%d-%H%M%S}-smart-ab-temporal.json"
    out.write_text(json.dumps(summary, indent=2) + "\n")
    for key, value in outcome["results"].items():
        if isinstance(value, str):
            print(f"{key}: {value}")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
