"""The benchmark: redialer against the Temporal engine's own ceiling, side by side in one run.

    python -m bench [--quick] [--b2 10000] [--b3 5000] [--repeat 3] [--modes file,memory]

For each server mode (a WAL SQLite file, then in memory) it starts a dev server and one worker
process, runs a warm-up, then alternates the scenarios `--repeat` times and reports medians:
- B0: trivial workflows with one no-op activity, started from the client: the engine's ceiling;
- B1: standalone recipient workflows, instant scripted dialer (busy, no_answer, completed, 1 s
  delays), started from the client: recipients/s, attempts/s, history events per attempt;
- B2: a campaign of N recipients: start rate, time to finish, the campaign's largest history per
  run, peak worker RSS; beside it the same N recipient workflows started straight from the
  client (the yardstick for the start rate); and once, N recipients all sleeping;
- B3 (once per mode): a long-living campaign fed add_recipients signals while it continues as
  new: zero recipients lost or dialed twice.
Prints a table and writes bench/results/<time>-<mode>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from activities.campaign_ops import PARALLEL_REQUESTS as PARALLEL_STARTS  # like for like
from redialer.binaries import find_binary
from redialer.campaign import CampaignPolicy, CampaignSpec
from redialer.dialers.simulated import DialLedger
from redialer.payloads import AddRecipientsInput, CampaignProgress, QueuedRecipient
from redialer.recipients import Recipient
from redialer.settings import Settings
from redialer.store.store import Store
from starter import campaigns
from starter.client import connect
from starter.server import free_port, start_server
from workflows.campaign import CampaignWorkflow

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
B1_POLICY = CampaignPolicy.model_validate(
    {"retry": {"strategy": {"type": "attempts", "delays": [1, 1]}}}
)


@dataclass
class Bench:
    client: Client
    store: Store
    worker: subprocess.Popen[str]
    task_queue: str
    b1_phones: list[str]


def phones(area: str, n: int) -> list[str]:
    """n valid, distinct numbers in a US area code (exchanges 200 and up)."""
    return [f"+1{area}{200 + i // 10_000}{i % 10_000:04d}" for i in range(n)]


async def bounded(
    calls: list[Callable[[], Awaitable[Any]]], limit: int = PARALLEL_STARTS
) -> list[Any]:
    gate = asyncio.Semaphore(limit)

    async def one(call: Callable[[], Awaitable[Any]]) -> Any:
        async with gate:
            return await call()

    return await asyncio.gather(*(one(c) for c in calls))


def worker_rss_mb(worker: subprocess.Popen[str]) -> tuple[float, float]:
    """(current, peak) resident memory of the worker process, MB."""
    fields = dict(
        line.split(":", 1)
        for line in Path(f"/proc/{worker.pid}/status").read_text().splitlines()
        if ":" in line
    )
    return (int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024)


async def history_length(client: Client, workflow_id: str, run_id: str | None = None) -> int:
    history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
    return len(history.events)


async def b0(bench: Bench, n: int) -> dict[str, float]:
    """n trivial workflows with one no-op activity, started from the client."""
    ids = [f"b0-{uuid.uuid4().hex}" for _ in range(n)]
    t0 = time.perf_counter()
    handles = await bounded(
        [
            partial(
                bench.client.start_workflow,
                "BenchTrivial",
                id=i,
                task_queue=bench.task_queue + "-trivial",
            )
            for i in ids
        ]
    )
    started = time.perf_counter() - t0
    await bounded([h.result for h in handles])
    elapsed = time.perf_counter() - t0
    events = await history_length(bench.client, ids[0])
    return {
        "workflows_per_s": n / elapsed,
        "starts_per_s": n / started,
        "events_per_workflow": events,
        "events_per_s": n * events / elapsed,
    }


async def b1(bench: Bench, n: int) -> dict[str, float]:
    """n recipient workflows, each three attempts one second apart, started from the client."""
    recipients = [Recipient(phone=p) for p in bench.b1_phones[:n]]
    run = uuid.uuid4().hex[:8]
    t0 = time.perf_counter()
    handles = await bounded(
        [
            partial(
                campaigns.start_single_call,
                bench.client,
                r,
                B1_POLICY,
                task_queue=bench.task_queue,
                workflow_id=f"b1/{run}/{r.phone}",
            )
            for r in recipients
        ]
    )
    started = time.perf_counter() - t0
    results = await bounded([h.result for h in handles])
    elapsed = time.perf_counter() - t0
    attempts = sum(r.attempts for r in results)
    sample = [await history_length(bench.client, h.id) for h in handles[:10]]
    per_recipient = statistics.mean(sample)
    return {
        "recipients_per_s": n / elapsed,
        "attempts_per_s": attempts / elapsed,
        "starts_per_s": n / started,
        "events_per_attempt": per_recipient * n / attempts,
        "events_per_s": per_recipient * n / elapsed,
    }


async def progress_of(bench: Bench, campaign_id: str) -> CampaignProgress:
    """The progress query, patient: under full load a query can wait past its RPC deadline."""
    for _ in range(30):
        try:
            return await campaigns.progress(bench.client, campaign_id)
        except RPCError as exc:
            if exc.status not in (
                RPCStatusCode.DEADLINE_EXCEEDED,
                RPCStatusCode.CANCELLED,
                RPCStatusCode.UNKNOWN,
                RPCStatusCode.UNAVAILABLE,
            ):
                raise
            await asyncio.sleep(1)
    raise TimeoutError(f"progress of {campaign_id} never answered")


async def campaign_runs(client: Client, campaign_id: str) -> list[str]:
    query = f'WorkflowId = "campaign/{campaign_id}"'
    return [w.run_id async for w in client.list_workflows(query)]  # type: ignore[misc]


async def last_start(client: Client, query: str, n: int) -> float:
    """The server's start time of the last of n workflows matching `query` (epoch seconds)."""
    for _ in range(60):  # visibility is eventually consistent
        times = [w.start_time.timestamp() async for w in client.list_workflows(query)]
        if len(times) >= n:
            return max(times)
        await asyncio.sleep(1)
    raise TimeoutError(f"only {len(times)} of {n} workflows visible for {query}")


async def b2_client(bench: Bench, n: int) -> dict[str, float]:
    """The yardstick for B2: the same n recipient workflows started straight from the client,
    PARALLEL_STARTS at a time, as the campaign's start activity does (without a campaign to
    report to, so slightly cheaper)."""
    run = uuid.uuid4().hex[:8]
    policy = CampaignSpec.model_validate({"campaign_id": "x", "long_living": True}).policy()
    t0 = time.time()
    handles = await bounded(
        [
            partial(
                campaigns.start_single_call,
                bench.client,
                Recipient(phone=p),
                policy,
                task_queue=bench.task_queue,
                workflow_id=f"b2c/{run}/{p}",
            )
            for p in phones("917", n)
        ]
    )
    started = time.time() - t0
    await bounded([h.result for h in handles])
    return {"starts_per_s": n / started, "finish_s": time.time() - t0}


async def b2(bench: Bench, n: int) -> dict[str, float]:
    """A campaign of n recipients (one instant call each): start rate, finish time, history.

    The start rate runs from the client's start request to the server's start time of the last
    recipient workflow, so it counts storing the list and every page of starts.
    """
    spec = CampaignSpec.model_validate(
        {
            "campaign_id": f"b2-{uuid.uuid4().hex[:8]}",
            "recipients": [{"phone": p} for p in phones("917", n)],
        }
    )
    t0 = time.time()
    handle = await campaigns.start_campaign(bench.client, spec, task_queue=bench.task_queue)
    result = await handle.result()
    elapsed = time.time() - t0
    assert result.total == n, result
    query = f'CampaignId = "{spec.campaign_id}" AND WorkflowType = "RecipientWorkflow"'
    started = await last_start(bench.client, query, n) - t0
    runs = await campaign_runs(bench.client, spec.campaign_id)
    largest = max([await history_length(bench.client, handle.id, r) for r in runs] or [0])
    return {
        "starts_per_s": n / started,
        "finish_s": elapsed,
        "recipients_per_s": n / elapsed,
        "campaign_runs": len(runs),
        "largest_history": largest,
        "worker_peak_rss_mb": worker_rss_mb(bench.worker)[1],
    }


async def b2_sleeping(bench: Bench, n: int) -> dict[str, float]:
    """n recipients all waiting on a durable timer (calling hours are hours away): worker RSS."""
    now = time.gmtime()
    opens = f"{(now.tm_hour + 6) % 24:02}:00"
    spec = CampaignSpec.model_validate(
        {
            "campaign_id": f"b2s-{uuid.uuid4().hex[:8]}",
            "calling_hours": {"start": opens, "end": f"{(now.tm_hour + 7) % 24:02}:00"},
            "recipients": [{"phone": p, "timezone": "UTC"} for p in phones("646", n)],
        }
    )
    handle = await campaigns.start_campaign(bench.client, spec, task_queue=bench.task_queue)
    while (await progress_of(bench, spec.campaign_id)).queued or (
        await progress_of(bench, spec.campaign_id)
    ).total < n:
        await asyncio.sleep(0.5)
    await asyncio.sleep(5)
    rss, peak = worker_rss_mb(bench.worker)
    await handle.signal(CampaignWorkflow.stop)
    await handle.result()
    return {"sleeping_recipients": n, "worker_rss_mb": rss, "worker_peak_rss_mb": peak}


async def b3(bench: Bench, n: int, per_signal: int = 1) -> dict[str, float]:
    """A long-living campaign fed n recipients by signals while it continues as new."""
    spec = CampaignSpec.model_validate(
        {"campaign_id": f"b3-{uuid.uuid4().hex[:8]}", "long_living": True}
    )
    handle = await campaigns.start_campaign(bench.client, spec, task_queue=bench.task_queue)
    numbers = phones("718", n)
    t0 = time.perf_counter()
    await bounded(
        [
            partial(
                handle.signal,
                CampaignWorkflow.add_recipients,
                AddRecipientsInput(
                    recipients=[QueuedRecipient(phone=p) for p in numbers[i : i + per_signal]]
                ),
            )
            for i in range(0, n, per_signal)
        ],
        limit=16,
    )
    # Every number once more: duplicates must not be called again.
    await handle.signal(
        CampaignWorkflow.add_recipients,
        AddRecipientsInput(recipients=[QueuedRecipient(phone=p) for p in numbers[:500]]),
    )
    while (p := await progress_of(bench, spec.campaign_id)).final < n:
        await asyncio.sleep(0.5)
    elapsed = time.perf_counter() - t0
    await handle.signal(CampaignWorkflow.stop)
    await handle.result()
    placements = DialLedger(bench.store).placements()
    mine = {k: v for k, v in placements.items() if k.startswith(spec.campaign_id + ":")}
    await asyncio.sleep(2)
    runs = await campaign_runs(bench.client, spec.campaign_id)
    return {
        "signals": len(range(0, n, per_signal)) + 1,
        "recipients": n,
        "total_counted": p.total,
        "dialed_once": sum(1 for v in mine.values() if v == 1),
        "dialed_twice": sum(1 for v in mine.values() if v > 1),
        "lost": n - len(mine),
        "campaign_runs": len(runs),
        "elapsed_s": elapsed,
    }


#: B4: no-answer calls ring 25-35 s; at this speed about a second each.
B4_SPEED = 30.0
B4_CAP = 20
#: What a dial waiting for a slot cost before the line: a retry every 1 to 2.5 s.
RETRY_EVERY_BEFORE = 1.75


async def b4(bench: Bench, n: int) -> dict[str, float]:
    """A campaign capped at B4_CAP calls, with n recipients due at once: the cap holds, slots
    stay busy, and the dials waiting in line check in a few times each (a sample's histories)."""
    spec = CampaignSpec.model_validate(
        {
            "campaign_id": f"b4-{uuid.uuid4().hex[:8]}",
            "max_concurrent_calls": B4_CAP,
            "recipients": [{"phone": p} for p in phones("347", n)],
        }
    )
    t0 = time.time()
    handle = await campaigns.start_campaign(bench.client, spec, task_queue=bench.task_queue)
    await handle.result()
    elapsed = time.time() - t0
    dials = DialLedger(bench.store).dials_for_campaign(spec.campaign_id)
    intervals = [(d.claimed_at, d.finished_at) for d in dials if d.finished_at is not None]
    attempts, waits = [], []
    for phone in phones("347", n)[:: max(1, n // 200)]:
        history = await bench.client.get_workflow_handle(
            f"campaign/{spec.campaign_id}/recipient/{phone}"
        ).fetch_history()
        scheduled = {}
        for e in history.events:
            if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                scheduled[e.event_id] = e.event_time.ToDatetime()
            elif e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
                a = e.activity_task_started_event_attributes
                attempts.append(a.attempt)
                waits.append(
                    (e.event_time.ToDatetime() - scheduled[a.scheduled_event_id]).total_seconds()
                )
    return {
        "recipients": n,
        "cap": B4_CAP,
        "peak_calls_up": most_at_once(intervals),
        "calls_per_s": len(dials) / elapsed,
        "elapsed_s": elapsed,
        "dial_attempts_per_call": statistics.mean(attempts),
        "mean_wait_in_line_s": statistics.mean(waits),
        "attempts_per_call_retrying_every_1_75s": statistics.mean(
            1 + w / RETRY_EVERY_BEFORE for w in waits
        ),
    }


def most_at_once(intervals: list[tuple[Any, Any]]) -> int:
    """The most intervals overlapping at any instant (an end before a start at the same one)."""
    edges = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    best = current = 0
    for _, step in edges:
        current += step
        best = max(best, current)
    return best


@contextlib.asynccontextmanager
async def environment(
    mode: str,
    b1_phones: list[str],
    *,
    script: dict[str, list[str]] | None = None,
    speed: float = 1e6,
    encryption_keys: str | None = None,
) -> AsyncIterator[Bench]:
    """A dev server (a WAL SQLite file, or in memory) and one worker process, torn down after.
    B1's numbers are scripted busy, no answer, completed; `speed` divides call durations;
    `encryption_keys` (REDIALER_ENCRYPTION_KEYS) encrypts every payload, worker and client."""
    tmp = Path(tempfile.mkdtemp(prefix=f"redialer-bench-{mode}-"))
    port = free_port()
    server = start_server(
        port=port,
        ui_port=free_port(),
        headless=True,
        db=tmp / "temporal.db" if mode == "file" else None,
        log=tmp / "server.log",
    )
    script_file = tmp / "script.json"
    script_file.write_text(
        json.dumps({**{p: ["busy", "no_answer", "completed"] for p in b1_phones}, **(script or {})})
    )
    settings = Settings(
        temporal_address=f"127.0.0.1:{port}",
        task_queue="bench",
        database_url=f"sqlite:///{tmp / 'calls.db'}",
        encryption_keys=encryption_keys,
    )
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": settings.temporal_address,
        "REDIALER_TASK_QUEUE": settings.task_queue,
        "REDIALER_DATABASE_URL": settings.database_url,
        "REDIALER_SIMULATOR_SCRIPT": str(script_file),
        "REDIALER_SIMULATOR_SPEED": str(speed),
        "REDIALER_MAX_CONCURRENT_ACTIVITIES": "500",
        **({"REDIALER_ENCRYPTION_KEYS": encryption_keys} if encryption_keys else {}),
    }
    store = Store.open(settings.database_url)
    log = (tmp / "worker.log").open("w")
    worker = subprocess.Popen(
        [sys.executable, "-m", "bench.worker"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    finished = False
    try:
        assert worker.stdout is not None and worker.stdout.readline().strip() == "ready"
        # Keep draining the worker's stdout: a full pipe would block its next log line, and
        # with it the workflow thread that wrote it (the worker would stop taking tasks).
        threading.Thread(target=shutil.copyfileobj, args=(worker.stdout, log), daemon=True).start()
        yield Bench(await connect(settings), store, worker, settings.task_queue, b1_phones)
        finished = True
    finally:
        worker.terminate()
        worker.wait(timeout=60)
        store.close()
        server.terminate()
        server.wait(timeout=30)
        if finished:
            shutil.rmtree(tmp, ignore_errors=True)  # a 10,000-recipient run leaves 250 MB
        else:
            print(f"  server and worker logs kept in {tmp}", flush=True)


async def run_mode(mode: str, args: argparse.Namespace) -> dict[str, Any]:
    if args.only_sleeping:
        async with environment(mode, phones("212", 20)) as bench:
            return {"mode": mode, "B2-sleeping": await b2_sleeping(bench, args.b2)}
    async with environment(mode, phones("212", max(args.b1, 20))) as bench:
        await b0(bench, 20)  # warm-up
        await b1(bench, 20)
        rows: dict[str, list[dict[str, float]]] = {"B0": [], "B1": [], "B2-client": [], "B2": []}
        for rep in range(args.repeat):
            print(f"  [{mode}] repetition {rep + 1}/{args.repeat}", flush=True)
            rows["B0"].append(await b0(bench, args.b0))
            rows["B1"].append(await b1(bench, args.b1))
            rows["B2-client"].append(await b2_client(bench, args.b2))
            rows["B2"].append(await b2(bench, args.b2))
        once = {"B2-sleeping": await b2_sleeping(bench, args.b2), "B3": await b3(bench, args.b3)}
    b4_script = {p: ["no_answer"] for p in phones("347", args.b4)}
    async with environment(mode, [], script=b4_script, speed=B4_SPEED) as slow_calls:
        once["B4"] = await b4(slow_calls, args.b4)
    medians = {k: {m: statistics.median(r[m] for r in v) for m in v[0]} for k, v in rows.items()}
    return {"mode": mode, "medians": medians, "runs": rows, **once}


def machine() -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "?",
    )
    version = subprocess.run(
        [find_binary("temporal"), "--version"], capture_output=True, text=True
    ).stdout.strip()
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "temporal": version,
        "platform": platform.platform(),
    }


def print_table(result: dict[str, Any]) -> None:
    m = result["medians"]
    b0, b1, b2 = m["B0"], m["B1"], m["B2"]
    print(f"\n== {result['mode']} (medians of {len(result['runs']['B0'])}) ==")
    print(
        f"B0 trivial        {b0['workflows_per_s']:7.1f} wf/s   {b0['events_per_s']:8.1f} events/s"
        f"   {b0['starts_per_s']:7.1f} starts/s"
    )
    print(
        f"B1 recipients     {b1['recipients_per_s']:7.1f} rcp/s  {b1['events_per_s']:8.1f} events/s"
        f"   {b1['attempts_per_s']:6.1f} attempts/s  {b1['events_per_attempt']:.1f} events/attempt"
        f"   ratio to B0 events/s {b1['events_per_s'] / b0['events_per_s']:.2f}"
    )
    b2c = m["B2-client"]
    print(f"B2 from client    {b2c['starts_per_s']:7.1f} starts/s  finish {b2c['finish_s']:.1f} s")
    print(
        f"B2 campaign       {b2['starts_per_s']:7.1f} starts/s (ratio to client"
        f" {b2['starts_per_s'] / b2c['starts_per_s']:.2f})  finish {b2['finish_s']:.1f} s"
        f"  largest history {b2['largest_history']:.0f} over {b2['campaign_runs']:.0f} runs"
        f"  worker peak RSS {b2['worker_peak_rss_mb']:.0f} MB"
    )
    s = result["B2-sleeping"]
    print(
        f"B2 sleeping       {s['sleeping_recipients']} recipients on timers: worker RSS"
        f" {s['worker_rss_mb']:.0f} MB (peak {s['worker_peak_rss_mb']:.0f} MB)"
    )
    b4 = result["B4"]
    print(
        f"B4 capped at {b4['cap']}    {b4['recipients']} recipients due at once: peak"
        f" {b4['peak_calls_up']} calls up, {b4['calls_per_s']:.1f} calls/s, dial attempts per"
        f" call {b4['dial_attempts_per_call']:.1f} (retrying every 1.75 s:"
        f" {b4['attempts_per_call_retrying_every_1_75s']:.0f}), mean wait in line"
        f" {b4['mean_wait_in_line_s']:.0f} s"
    )
    b3 = result["B3"]
    print(
        f"B3 long-living    {b3['signals']} signals, {b3['recipients']} recipients: lost"
        f" {b3['lost']}, dialed twice {b3['dialed_twice']}, {b3['campaign_runs']} runs,"
        f" {b3['elapsed_s']:.0f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--b0", type=int, default=1000)
    parser.add_argument("--b1", type=int, default=500)
    parser.add_argument("--b2", type=int, default=10_000)
    parser.add_argument("--b3", type=int, default=5_000)
    parser.add_argument("--b4", type=int, default=2_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--modes", default="file,memory")
    parser.add_argument(
        "--only-sleeping", action="store_true", help="only worker RSS with --b2 recipients asleep"
    )
    args = parser.parse_args()
    if args.quick:
        args.b0, args.b1, args.b2, args.b3, args.b4, args.repeat = 60, 60, 300, 300, 100, 1
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for mode in args.modes.split(","):
        print(f"running {mode} mode ...", flush=True)
        result = asyncio.run(run_mode(mode, args))
        result.update(machine=machine(), sizes=vars(args))
        (RESULTS / f"{stamp}-{mode}.json").write_text(json.dumps(result, indent=2))
        if args.only_sleeping:
            print(json.dumps(result["B2-sleeping"]))
        else:
            print_table(result)


if __name__ == "__main__":
    main()
