"""Real calls, measured: the Twilio path beside the simulator's, in one run.

    python -m bench.twilio_path [--recipients 50] [--callbacks 2000] [--levels 1,8,32,64]

Needs the test extras (`pip install -e '.[test]'`): the network is tests/fake_twilio.py.

1. History events per attempt: N recipients each busy, no answer, then completed (three
   attempts one second apart), once with the simulated dialer (instant) and once through the
   Twilio dialer against the fake Twilio, on one dev server (a WAL file, as `bench.run` starts
   it). The bench plays the phone network: for each call the fake creates it sends that
   attempt's callbacks (`fake.normal`) to the real `redialer api`, which the worker's dial
   waits on. Events per attempt = recipient history length / attempts. Target on the Twilio
   path: at most 15.
2. Verified status callbacks per second through `redialer api` (bench/callback_load.py): a
   WAL SQLite store, and PostgreSQL (REDIALER_BENCH_PG, else 127.0.0.1:5432/test; a scratch
   database) unless --no-postgres. Target: at least 200/s on 2 cores.

Writes bench/results/<time>-twilio-path.json (machine, load average at start) and prints a table.
`--profile` runs part 2 only with the api under cProfile, `--what-if one-writer,info-logs` with
the api changed (bench/api_profile.py); `--skip-history` / `--skip-callbacks` run one part.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType

from bench.callback_load import DEFAULT_PG, api_process, callback_rows
from bench.run import RESULTS, Bench, bounded, environment, machine, phones
from redialer.campaign import CampaignPolicy
from redialer.process_exit import exit_now
from redialer.recipients import Recipient
from starter import campaigns
from tests.fake_twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio
from tests.fault_helpers import WorkerProcess

CALLER = "+15550009999"
#: Both paths: three attempts a second apart; the `call` section the Twilio dialer needs.
POLICY = CampaignPolicy.model_validate(
    {
        "retry": {"strategy": {"type": "attempts", "delays": [1, 1]}},
        "call": {"twiml": "<Response><Say>Hello</Say></Response>", "ring_timeout": 25},
    }
)
#: Each number's calls, as the network ends them (Twilio's words; the simulator's below).
TWILIO_SCRIPT = ["busy", "no-answer", "completed"]
WARM_UP = "+12015550100"
TARGET_EVENTS_PER_ATTEMPT = 15
TARGET_CALLBACKS_PER_S = 200


class Network:
    """The phone network: for each call the fake creates, the next of its number's outcomes."""

    def __init__(self, fake: FakeTwilio, script: list[str]) -> None:
        self.fake = fake
        self.script = script
        self.codes: Counter[int] = Counter()
        self._calls_to: Counter[str] = Counter()
        self._seen: set[str] = set()
        self._plays: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        while True:
            for sid, call in list(self.fake.calls.items()):
                if sid not in self._seen:
                    self._seen.add(sid)
                    outcome = self.script[min(self._calls_to[call.to], len(self.script) - 1)]
                    self._calls_to[call.to] += 1
                    task = asyncio.create_task(self._play(sid, outcome))
                    self._plays.add(task)
                    task.add_done_callback(self._plays.discard)
            await asyncio.sleep(0.05)

    async def _play(self, sid: str, outcome: str) -> None:
        self.codes.update(await self.fake.normal(sid, outcome))


@contextlib.asynccontextmanager
async def twilio_side(bench: Bench, tmp: Path) -> AsyncIterator[tuple[str, Network]]:
    """On the bench's dev server and store: the fake Twilio, `redialer api` and a worker
    process with the Twilio dialer on its own task queue; (task queue, network)."""
    database_url = bench.store.engine.url.render_as_string(hide_password=False)
    task_queue = "bench-twilio"
    with FakeTwilio() as fake, api_process(database_url, tmp) as (_, public_url):
        env = {
            **os.environ,
            "TEMPORAL_ADDRESS": bench.client.service_client.config.target_host,
            "REDIALER_TASK_QUEUE": task_queue,
            "REDIALER_DATABASE_URL": database_url,
            "REDIALER_DIALER": "twilio",
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "REDIALER_CALLER_ID": CALLER,
            "REDIALER_PUBLIC_URL": public_url,
            "REDIALER_TWILIO_API_URL": fake.url,
            "REDIALER_CALLBACK_TIMEOUT": "30",
            "REDIALER_MAX_CONCURRENT_ACTIVITIES": "500",
            "REDIALER_LOG_LEVEL": "WARNING",
        }
        worker = WorkerProcess(env, tmp / "twilio-worker.log").start()
        network = Network(fake, TWILIO_SCRIPT)
        playing = asyncio.create_task(network.run())
        try:
            yield task_queue, network
        finally:
            playing.cancel()
            worker.stop()


async def recipients_through(
    bench: Bench, numbers: list[str], *, task_queue: str, tag: str
) -> dict[str, Any]:
    """Start one recipient workflow per number, wait for all, count their history events."""
    run = uuid.uuid4().hex[:8]
    t0 = time.perf_counter()
    handles = await bounded(
        [
            partial(
                campaigns.start_single_call,
                bench.client,
                Recipient(phone=p),
                POLICY,
                task_queue=task_queue,
                workflow_id=f"{tag}/{run}/{p}",
            )
            for p in numbers
        ]
    )
    results = await asyncio.wait_for(bounded([h.result for h in handles]), timeout=600)
    elapsed = time.perf_counter() - t0
    histories = await bounded([partial(h.fetch_history) for h in handles])
    lengths = [len(h.events) for h in histories]
    attempts = [r.attempts for r in results]
    odd = {  # recipients that did not end as scripted: their attempts as the store has them
        h.id: [(r.attempt, r.outcome, r.call_id) for r in bench.store.call_records_for(h.id)]
        for h, r in zip(handles, results, strict=True)
        if str(r.status) != "completed" or r.attempts != 3
    }
    kinds = Counter(
        EventType.Name(e.event_type).removeprefix("EVENT_TYPE_") for e in histories[0].events
    )
    return {
        "recipients": len(numbers),
        "statuses": dict(Counter(str(r.status) for r in results)),
        "attempts": sum(attempts),
        "history_events": sum(lengths),
        "events_per_attempt": sum(lengths) / sum(attempts),
        "events_per_recipient_min_max": [min(lengths), max(lengths)],
        "elapsed_s": elapsed,
        "attempts_per_s": sum(attempts) / elapsed,
        "one_history_by_event_type": dict(kinds.most_common()),
        "not_as_scripted": odd,
    }


async def history_rows(n: int) -> dict[str, Any]:
    """Part 1: the same scripted recipients through the simulator, then through Twilio."""
    sim_numbers, twilio_numbers = phones("212", n), phones("312", n)
    async with environment("file", sim_numbers, script={WARM_UP: ["completed"]}) as bench:
        print(f"  {n} recipients through the simulator ...", flush=True)
        await recipients_through(bench, [WARM_UP], task_queue=bench.task_queue, tag="warm")
        simulated = await recipients_through(
            bench, sim_numbers, task_queue=bench.task_queue, tag="sim"
        )
        tmp = Path(bench.store.engine.url.database or ".").parent
        async with twilio_side(bench, tmp) as (task_queue, network):
            print(f"  {n} recipients through Twilio (the fake) and redialer api ...", flush=True)
            await recipients_through(bench, [WARM_UP], task_queue=task_queue, tag="warm")
            twilio = await recipients_through(
                bench, twilio_numbers, task_queue=task_queue, tag="tw"
            )
            created = Counter(c.to for c in network.fake.calls.values())
            twilio["calls_created_at_twilio"] = sum(created[p] for p in twilio_numbers)
            twilio["status_callback_codes"] = {str(k): v for k, v in network.codes.items()}
            network.fake.assert_contract()
            twilio["worker_log_warnings"] = log_warnings(tmp / "twilio-worker.log")
    return {"simulated": simulated, "twilio": twilio}


def log_warnings(path: Path) -> list[dict[str, Any]]:
    """The worker's warnings and errors by message (timestamps cut off): count, one example."""
    found: Counter[str] = Counter()
    example: dict[str, str] = {}
    for line in path.read_text(errors="replace").splitlines():
        if "[warning" in line or "[error" in line:
            message = line.split(" ", 1)[-1]
            found[message[:60]] += 1
            example.setdefault(message[:60], message[:3000])
    return [{"count": n, "example": example[m]} for m, n in found.most_common(10)]


def load_average() -> list[float]:
    return [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]


def print_history(h: dict[str, Any]) -> None:
    print("\n== history events per attempt (busy, no answer, completed) ==")
    print(
        f"{'path':<12}{'recipients':>11}{'attempts':>10}{'events/attempt':>16}{'elapsed s':>11}"
        "  not as scripted"
    )
    for path in ("simulated", "twilio"):
        r = h[path]
        print(
            f"{path:<12}{r['recipients']:>11}{r['attempts']:>10}{r['events_per_attempt']:>16.1f}"
            f"{r['elapsed_s']:>11.1f}  {len(r['not_as_scripted'])} {r['statuses']}"
        )
    print(f"target on the Twilio path: <= {TARGET_EVENTS_PER_ATTEMPT}")


def print_callbacks(rows: list[dict[str, Any]]) -> None:
    print("\n== verified status callbacks through redialer api ==")
    print(
        f"{'store':<12}{'conc':>5}{'cb/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>7}"
        f"{'api%':>7}{'loop%':>7}{'sender%':>8}{'pg%':>6}{'others%':>8}"
    )
    for row in rows:
        if "skipped" in row:
            print(f"{row['store']:<12} skipped: {row['skipped']}")
            continue
        for lv in row["levels"]:
            cpu = lv["cpu_percent_of_one_core"]
            print(
                f"{row['store']:<12}{lv['concurrency']:>5}{lv['callbacks_per_s']:>9.1f}"
                f"{lv['p50_ms']:>9.1f}{lv['p99_ms']:>9.1f}{lv['errors']:>7}{cpu['api']:>7.0f}"
                f"{cpu['api_main_thread']:>7.0f}{cpu['sender']:>8.0f}{cpu['postgres']:>6.0f}"
                f"{cpu['others']:>8.0f}"
            )
        s = row["saturation"]
        print(
            f"{'':<12}best {s['best_callbacks_per_s']:.0f}/s at {s['best_concurrency']};"
            f" flat from {s['saturates_at_concurrency']};"
            f" recorded {row['callbacks_recorded']} of {row['callbacks_204']} answered 204"
        )
        print(f"{'':<12}limited by {s['limited_by']}")
        parts = row["parts_cpu_ms_per_callback"]
        per = [lv["api_cpu_ms_per_callback"] for lv in row["levels"]]
        print(
            f"{'':<12}api CPU {min(per):.2f}-{max(per):.2f} ms/callback; alone: signature"
            f" {parts['validate_signature']:.2f} ms, store {parts['take_callback']:.2f} ms"
        )
    print(f"target: >= {TARGET_CALLBACKS_PER_S}/s   (loop% = the api's event-loop thread)")


def print_profiles(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        for thread, prof in row.get("profile", {}).items():
            print(f"\n== {row['store']}: {thread}, {prof['busy_s']} s busy (profiled) ==")
            for name, share in list(prof["by_package_percent"].items())[:12]:
                print(f"  {share:5.1f}%  {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=50)
    parser.add_argument("--callbacks", type=int, default=2000, help="per concurrency level")
    parser.add_argument("--levels", default="1,8,32,64", help="concurrency levels")
    parser.add_argument("--level-seconds", type=float, default=20.0, help="time bound per level")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--skip-history", action="store_true", help="only the callback load")
    parser.add_argument("--skip-callbacks", action="store_true", help="only the histories")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="only the callback load, the api under cProfile (bench/api_profile.py)",
    )
    parser.add_argument(
        "--what-if",
        default="",
        help="only the callback load, the api changed (bench/api_profile.py: one-writer,"
        " info-logs)",
    )
    args = parser.parse_args()
    args.skip_history |= args.profile or bool(args.what_if)
    started = {"load_average": load_average(), "at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    stamp = time.strftime("%Y%m%d-%H%M%S")
    result: dict[str, Any] = {
        "machine": {**machine(), "nproc": len(os.sched_getaffinity(0)), **started}
    }
    if not args.skip_history:
        print("part 1: history events per attempt", flush=True)
        result["history"] = asyncio.run(history_rows(args.recipients))
    if not args.skip_callbacks:
        print("part 2: verified status callbacks per second", flush=True)
        result["callbacks"] = callback_rows(
            levels=[int(v) for v in args.levels.split(",")],
            callbacks=args.callbacks,
            seconds=args.level_seconds,
            postgres=None if args.no_postgres else os.environ.get("REDIALER_BENCH_PG", DEFAULT_PG),
            profile=args.profile,
            what_if=args.what_if,
        )
    result["machine"]["load_average_at_end"] = load_average()
    result["sizes"] = vars(args)
    RESULTS.mkdir(exist_ok=True)
    variant = ("-profile" if args.profile else "") + (
        f"-what-if-{args.what_if.replace(',', '-')}" if args.what_if else ""
    )
    out = RESULTS / f"{stamp}-twilio-path{variant}.json"
    out.write_text(json.dumps(result, indent=2))
    if "history" in result:
        print_history(result["history"])
    if "callbacks" in result:
        print_callbacks(result["callbacks"])
    if args.profile:
        print_profiles(result["callbacks"])
    print(f"\nwritten {out.relative_to(RESULTS.parent.parent)}", flush=True)
    exit_now(0)  # a Temporal client was used: see redialer/process_exit.py


if __name__ == "__main__":
    main()
