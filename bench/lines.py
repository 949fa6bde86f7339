"""Lines under a backlog: the campaign's and the account's call caps, refilled at once.

    python -m bench.lines [--only b4,b4big,b5,b5small,cps] [--workers 2] [--cps-workers 5]
                          [--b4 2000] [--big 20000] [--big-cap 200] [--big-cap-on account]
                          [--window 180] [--b5-window 120] [--cps-seconds 600]

Each sub-bench starts its own dev server (a WAL SQLite file), `--workers` worker processes
(bench/worker.py, the store a shared SQLite file) and the simulated dialer with every number
scripted `no_answer` (25-35 s, divided by the sub-bench's speed), then measures:

- b4: B4 as bench/run.py has it (2,000 due at once, campaign cap 20, speed 30), run to the end;
- b4big: `--big` due at once on `--big-cap` lines (the account cap REDIALER_MAX_CONCURRENT_CALLS
  by default, `--big-cap-on campaign` for the campaign's own cap), calls of 12.5-17.5 s,
  measured over `--window` seconds from the moment the lines first fill, backlog still waiting;
- b5: three campaigns of priorities 1, 1, 2 on one account cap of 30: each one's share of the
  line-time over `--b5-window` seconds while all three have a backlog;
- b5small: a 10-recipient campaign started behind a 10,000-recipient one on the same 30 lines;
- cps: the account at REDIALER_MAX_CALLS_PER_SECOND=1, `--cps-workers` workers, for
  `--cps-seconds`: starts in any sliding second, and the rate achieved.

Calls up over time come from the simulator's ledger (`simulated_dials`: claimed_at, finished_at,
wall clock, written around the call itself). Waits come from the store's line (`call_line`): the
bench polls it every half second and notes when each dial first joined it (first asked for a
line) and its `admitted_at`. Lines held (slots) are sampled from `CallCaps.usage` every second.
Writes bench/results/<time>-lines-<name>.json per sub-bench.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from sqlalchemy import select, text
from sqlmodel import SQLModel
from temporalio.client import Client

from bench.proc_cpu import _machine_busy, _stat_cpu
from bench.run import RESULTS, ROOT, machine, most_at_once, phones
from redialer.campaign import CampaignSpec
from redialer.dialers.simulated import DURATIONS, DialLedger
from redialer.outcomes import Outcome
from redialer.settings import Settings
from redialer.store.call_caps import ACCOUNT, LINE
from redialer.store.store import Store, aware
from starter import campaigns
from starter.client import connect
from starter.server import free_port, start_server

#: The store every process shares (`--database`); None: a new SQLite file per sub-bench.
DATABASE: str | None = None
#: Every number rings unanswered: 25-35 s at speed 1.
RING = DURATIONS[Outcome.NO_ANSWER]


@dataclass
class Env:
    client: Client
    store: Store
    workers: list[subprocess.Popen[str]]
    server: subprocess.Popen[bytes]
    task_queue: str
    env: dict[str, str]


@contextlib.asynccontextmanager
async def environment(
    *, workers: int, speed: float, numbers: Iterable[str], extra: dict[str, str] | None = None
) -> AsyncIterator[Env]:
    """A dev server on a WAL SQLite file and `workers` worker processes sharing one store (a
    SQLite file, or `--database`, emptied first)."""
    tmp = Path(tempfile.mkdtemp(prefix="redialer-lines-"))
    port = free_port()
    server = start_server(
        port=port,
        ui_port=free_port(),
        headless=True,
        db=tmp / "temporal.db",
        log=tmp / "server.log",
    )
    script = tmp / "script.json"
    script.write_text(json.dumps({p: ["no_answer"] for p in numbers}))
    settings = Settings(
        temporal_address=f"127.0.0.1:{port}",
        task_queue="lines",
        database_url=DATABASE or f"sqlite:///{tmp / 'calls.db'}",
    )
    if DATABASE:
        emptied = Store(DATABASE)
        SQLModel.metadata.drop_all(emptied.engine)
        with emptied.engine.begin() as c:
            c.execute(text("DROP TABLE IF EXISTS alembic_version"))
        emptied.close()
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": settings.temporal_address,
        "REDIALER_TASK_QUEUE": settings.task_queue,
        "REDIALER_DATABASE_URL": settings.database_url,
        "REDIALER_SIMULATOR_SCRIPT": str(script),
        "REDIALER_SIMULATOR_SPEED": str(speed),
        "REDIALER_MAX_CONCURRENT_ACTIVITIES": "500",
        **(extra or {}),
    }
    store = Store.open(settings.database_url)
    procs: list[subprocess.Popen[str]] = []
    finished = False
    try:
        for i in range(workers):
            log = (tmp / f"worker{i}.log").open("w")
            proc = subprocess.Popen(
                [sys.executable, "-m", "bench.worker"],
                env=env,
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )
            procs.append(proc)
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
            threading.Thread(
                target=shutil.copyfileobj, args=(proc.stdout, log), daemon=True
            ).start()
        yield Env(await connect(settings), store, procs, server, settings.task_queue, env)
        finished = True
    finally:
        for proc in procs:
            proc.kill()  # no graceful shutdown: calls in progress would hold it for minutes
        for proc in procs:
            proc.wait(timeout=60)
        store.close()
        server.terminate()
        server.wait(timeout=60)
        if finished:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"  logs kept in {tmp}", flush=True)


def _ts(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return aware(value).timestamp()


@dataclass
class LineWatch:
    """Polls one line (`call_line` rows of a scope) and its usage, in the bench process."""

    store: Store
    scope: str
    first_ask: dict[str, float] = field(default_factory=dict)
    admitted: dict[str, float] = field(default_factory=dict)
    group: dict[str, str | None] = field(default_factory=dict)
    usage: list[dict[str, Any]] = field(default_factory=list)
    held: dict[str, float] = field(default_factory=dict)
    _last_seq: int = 0
    _since: float = 0.0

    def poll_rows(self) -> None:
        now = time.time()
        with self.store.engine.connect() as c:
            rows = c.execute(
                select(LINE.holder, LINE.group_id, LINE.seq, LINE.admitted_at).where(
                    LINE.campaign_id == self.scope, LINE.seq >= self._last_seq
                )
            ).all()
            done = c.execute(
                select(LINE.holder, LINE.group_id, LINE.admitted_at).where(
                    LINE.campaign_id == self.scope,
                    LINE.admitted_at >= datetime.fromtimestamp(self._since - 5, UTC),
                )
            ).all()
        for holder, group, seq, admitted in rows:
            self._last_seq = max(self._last_seq, int(seq))
            if holder not in self.first_ask:
                at = _ts(admitted)
                self.first_ask[holder] = min(now, at) if at is not None else now
                self.group[holder] = group
        for holder, group, admitted in done:
            at = _ts(admitted)
            assert at is not None
            self.admitted.setdefault(holder, at)
            self.group.setdefault(holder, group)
            self.first_ask.setdefault(holder, at)
            self._since = max(self._since, at)

    def poll_usage(self) -> None:
        u = self.store.caps.usage(self.scope)
        self.usage.append(
            {"t": time.time(), "in_use": u.in_use, "waiting": u.waiting, "by": u.by_campaign}
        )

    async def run(self, stop: asyncio.Event) -> None:
        tick = 0
        while not stop.is_set():
            await asyncio.to_thread(self.poll_rows)
            if tick % 2 == 0:
                await asyncio.to_thread(self.poll_usage)
            tick += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)
        await asyncio.to_thread(self.poll_rows)
        await asyncio.to_thread(self.poll_held)

    def poll_held(self) -> None:
        """How long each call admitted in the last five minutes held its line (store's view:
        admission to release), for the breakdown against the ledger's ringing time."""
        with self.store.engine.connect() as c:
            rows = c.execute(
                select(LINE.holder, LINE.held_seconds).where(
                    LINE.campaign_id == self.scope, LINE.held_seconds.is_not(None)
                )
            ).all()
        self.held.update({h: float(v) for h, v in rows})


@contextlib.asynccontextmanager
async def watching(store: Store, scope: str) -> AsyncIterator[LineWatch]:
    watch = LineWatch(store, scope)
    stop = asyncio.Event()
    task = asyncio.create_task(watch.run(stop))
    try:
        yield watch
    finally:
        stop.set()
        await task


# ---- the numbers ------------------------------------------------------------------------------


@dataclass
class Call:
    key: str
    campaign: str
    start: float
    end: float | None


def calls_of(store: Store, campaign_ids: Iterable[str]) -> list[Call]:
    ledger = DialLedger(store)
    return [
        Call(d.idempotency_key, cid, _ts(d.claimed_at) or 0.0, _ts(d.finished_at))
        for cid in campaign_ids
        for d in ledger.dials_for_campaign(cid)
    ]


def line_time(calls: list[Call], a: float, b: float, until: float) -> float:
    """Call-seconds inside [a, b] (a call still up counts until `until`)."""
    total = 0.0
    for c in calls:
        end = c.end if c.end is not None else until
        total += max(0.0, min(end, b) - max(c.start, a))
    return total


def first_full(calls: list[Call], cap: int) -> float | None:
    """When calls up first reached `cap` (ledger)."""
    edges = sorted([(c.start, 1) for c in calls] + [(c.end, -1) for c in calls if c.end])
    up = 0
    for t, step in edges:
        up += step
        if up >= cap:
            return t
    return None


def pct(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]


def lines_numbers(
    calls: list[Call], watch: LineWatch, cap: int, a: float, b: float, until: float
) -> dict[str, Any]:
    """Busy fraction, calls/s against the ideal, peak and waits over the window [a, b]."""
    lengths = [c.end - c.start for c in calls if c.end is not None and a <= c.start <= b]
    mean_len = statistics.mean(lengths) if lengths else math.nan
    started = [c for c in calls if a <= c.start <= b]
    busy = line_time(calls, a, b, until) / (cap * (b - a))
    slots = [u["in_use"] for u in watch.usage if a <= u["t"] <= b]
    waiting = [u["waiting"] for u in watch.usage if a <= u["t"] <= b]
    ideal = cap / mean_len
    rate = len(started) / (b - a)
    intervals = [(c.start, c.end if c.end is not None else until) for c in calls]
    waits = [
        watch.admitted[h] - watch.first_ask[h]
        for h in watch.admitted
        if a <= watch.admitted[h] <= b and h in watch.first_ask
    ]
    pre, post = [], []
    for c in calls:
        if a <= c.start <= b and c.key in watch.admitted:
            pre.append(c.start - watch.admitted[c.key])
            if c.end is not None and c.key in watch.held:
                post.append(watch.admitted[c.key] + watch.held[c.key] - c.end)
    return {
        "window_s": b - a,
        "mean_admitted_to_ringing_s": statistics.mean(pre) if pre else math.nan,
        "p99_admitted_to_ringing_s": pct(pre, 0.99),
        "mean_ringing_end_to_line_freed_s": statistics.mean(post) if post else math.nan,
        "p99_ringing_end_to_line_freed_s": pct(post, 0.99),
        "calls_started_in_window": len(started),
        "mean_call_s": mean_len,
        "busy_fraction_ledger": busy,
        "idle_line_s_per_call": (1 - busy) * cap * (b - a) / max(1, len(started)),
        "slots_held_fraction_sampled": statistics.mean(slots) / cap if slots else math.nan,
        "waiting_min_sampled": min(waiting) if waiting else None,
        "waiting_max_sampled": max(waiting) if waiting else None,
        "calls_per_s": rate,
        "ideal_calls_per_s": ideal,
        "calls_per_s_vs_ideal": rate / ideal,
        "peak_calls_up_ledger": most_at_once(intervals),
        "peak_slots_sampled": max((u["in_use"] for u in watch.usage), default=0),
        "cap": cap,
        "waits_counted": len(waits),
        "mean_wait_s": statistics.mean(waits) if waits else math.nan,
        "p50_wait_s": pct(waits, 0.5),
        "p99_wait_s": pct(waits, 0.99),
        "max_wait_s": max(waits, default=math.nan),
    }


def cpu_sample(env: Env) -> dict[str, float]:
    sample = {"wall": time.monotonic(), "machine": _machine_busy(), "server": 0.0, "workers": 0.0}
    with contextlib.suppress(OSError):
        sample["server"] = _stat_cpu(f"/proc/{env.server.pid}/stat")
        sample["workers"] = sum(_stat_cpu(f"/proc/{w.pid}/stat") for w in env.workers)
    sample["bench"] = _stat_cpu("/proc/self/stat")
    return sample


def cpu_cores(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Cores used over the interval (1.0 = one core busy)."""
    wall = after["wall"] - before["wall"]
    return {k: round((after[k] - before[k]) / wall, 2) for k in before if k != "wall"}


def spec(campaign_id: str, numbers: list[str], **policy: Any) -> CampaignSpec:
    return CampaignSpec.model_validate(
        {"campaign_id": campaign_id, "recipients": [{"phone": p} for p in numbers], **policy}
    )


async def wait_until(check: Any, timeout: float, every: float = 0.5) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if await check():
            return True
        await asyncio.sleep(every)
    return False


def settings_of(env: Env) -> dict[str, str]:
    return {k: v for k, v in env.env.items() if k.startswith("REDIALER_") and "URL" not in k}


# ---- the sub-benches --------------------------------------------------------------------------


async def b4(args: argparse.Namespace, n: int, cap: int, speed: float) -> dict[str, Any]:
    """B4 as bench/run.py: n due at once on a campaign capped at `cap`, run to the end."""
    numbers = phones("347", n)
    async with environment(workers=args.workers, speed=speed, numbers=numbers) as env:
        s = spec(f"b4-{uuid.uuid4().hex[:8]}", numbers, max_concurrent_calls=cap)
        async with watching(env.store, s.campaign_id) as watch:
            cpu0 = cpu_sample(env)
            t0 = time.time()
            handle = await campaigns.start_campaign(env.client, s, task_queue=env.task_queue)
            await handle.result()
            elapsed = time.time() - t0
            cpu1 = cpu_sample(env)
        calls = calls_of(env.store, [s.campaign_id])
        full = first_full(calls, cap) or t0
        last_start = max(c.start for c in calls)
        out = lines_numbers(calls, watch, cap, full, last_start, time.time())
        all_waits = [watch.admitted[h] - watch.first_ask[h] for h in watch.admitted]
        return {
            "recipients": n,
            "cap": cap,
            "cap_on": "campaign max_concurrent_calls",
            "speed": speed,
            "workers": args.workers,
            "elapsed_s": elapsed,
            "calls": len(calls),
            "calls_per_s_overall": len(calls) / elapsed,
            "backlog_window": "from the lines' first filling to the last call's start (ledger)",
            **out,
            "all_calls_mean_wait_s": statistics.mean(all_waits),
            "all_calls_p99_wait_s": pct(all_waits, 0.99),
            "all_calls_waits_counted": len(all_waits),
            "ideal_mean_wait_s_fifo": (n - cap) / 2 / out["ideal_calls_per_s"],
            "cpu_cores": cpu_cores(cpu0, cpu1),
            "settings": settings_of(env),
        }


async def b4big(args: argparse.Namespace) -> dict[str, Any]:
    """`--big` due at once on `--big-cap` lines, measured over `--window` s of backlog."""
    n, cap, speed = args.big, args.big_cap, args.big_speed
    numbers = phones("929", n)
    on_account = args.big_cap_on == "account"
    extra = {"REDIALER_MAX_CONCURRENT_CALLS": str(cap)} if on_account else {}
    async with environment(workers=args.workers, speed=speed, numbers=numbers, extra=extra) as env:
        s = (
            spec(f"big-{uuid.uuid4().hex[:8]}", numbers)
            if on_account
            else spec(f"big-{uuid.uuid4().hex[:8]}", numbers, max_concurrent_calls=cap)
        )
        scope = ACCOUNT if on_account else s.campaign_id
        async with watching(env.store, scope) as watch:
            t0 = time.time()
            await campaigns.start_campaign(env.client, s, task_queue=env.task_queue)

            async def full() -> bool:
                return bool(watch.usage) and watch.usage[-1]["in_use"] >= cap

            filled = await wait_until(full, 300)
            queued = None
            if args.big_queue_first:  # measure only once (nearly) every dial waits in the line

                async def in_line() -> bool:
                    return bool(watch.usage) and watch.usage[-1]["waiting"] >= 0.9 * (n - cap)

                queued = await wait_until(in_line, args.big_queue_timeout)
                print(f"  queued: {queued} after {time.time() - t0:.0f} s", flush=True)
            a = time.time()
            print(
                f"  lines full: {filled} after {a - t0:.0f} s; measuring {args.window} s",
                flush=True,
            )
            cpu0 = cpu_sample(env)
            await asyncio.sleep(args.window)
            b = time.time()
            cpu1 = cpu_sample(env)
        calls = calls_of(env.store, [s.campaign_id])
        ledger_full = first_full(calls, cap)
        out = lines_numbers(calls, watch, cap, a, b, b)
        waiting_at_end = [h for h in watch.first_ask if h not in watch.admitted]
        return {
            "recipients": n,
            "cap": cap,
            "cap_on": "account REDIALER_MAX_CONCURRENT_CALLS (campaign uncapped)"
            if on_account
            else "campaign max_concurrent_calls",
            "speed": speed,
            "call_length_s": [RING[0] / speed, RING[1] / speed],
            "workers": args.workers,
            "lines_first_full_after_s": (ledger_full or a) - t0,
            "queued_first": args.big_queue_first,
            "queued_90pct_before_window": queued,
            "waiting_at_window_start": next(
                (u["waiting"] for u in watch.usage if u["t"] >= a), None
            ),
            "window_from_start_s": [a - t0, b - t0],
            "calls_started_before_end": len(calls),
            **out,
            "waiting_at_end_seen": len(waiting_at_end),
            "oldest_waiting_at_end_s": max(
                (b - watch.first_ask[h] for h in waiting_at_end), default=0.0
            ),
            "cpu_cores": cpu_cores(cpu0, cpu1),
            "settings": settings_of(env),
        }


async def b5(args: argparse.Namespace) -> dict[str, Any]:
    """Three campaigns, priorities 1, 1, 2, on one account cap: shares of line-time."""
    cap, speed, n = 30, args.b5_speed, args.b5_each
    priorities = [1, 1, 2]
    numbers = phones("718", n * 3)
    extra = {"REDIALER_MAX_CONCURRENT_CALLS": str(cap)}
    async with environment(workers=args.workers, speed=speed, numbers=numbers, extra=extra) as env:
        run = uuid.uuid4().hex[:6]
        specs = [
            spec(f"b5-{run}-p{p}-{i}", numbers[i * n : (i + 1) * n], priority=p)
            for i, p in enumerate(priorities)
        ]
        async with watching(env.store, ACCOUNT) as watch:
            t0 = time.time()
            await asyncio.gather(
                *(campaigns.start_campaign(env.client, x, task_queue=env.task_queue) for x in specs)
            )

            async def all_up() -> bool:
                u = watch.usage[-1] if watch.usage else None
                return bool(u) and u["in_use"] >= cap and len(u["by"]) == 3 and u["waiting"] > 0

            await wait_until(all_up, 300)
            await asyncio.sleep(args.b5_settle)
            a = time.time()
            print(f"  all three up after {a - t0:.0f} s; measuring {args.b5_window} s", flush=True)
            cpu0 = cpu_sample(env)
            await asyncio.sleep(args.b5_window)
            b = time.time()
            cpu1 = cpu_sample(env)
        calls = calls_of(env.store, [x.campaign_id for x in specs])
        total = line_time(calls, a, b, b)
        per: dict[str, Any] = {}
        for x in specs:
            mine = [c for c in calls if c.campaign == x.campaign_id]
            share = line_time(mine, a, b, b) / total
            target = x.priority / sum(priorities)
            slots = [u["by"].get(x.campaign_id, 0) for u in watch.usage if a <= u["t"] <= b]
            waiting_left = n - len(mine)
            per[x.campaign_id] = {
                "priority": x.priority,
                "share_of_line_time": share,
                "target_share": target,
                "off_by_relative": share / target - 1,
                "within_10pct": abs(share / target - 1) <= 0.10,
                "mean_lines_sampled": statistics.mean(slots) if slots else math.nan,
                "calls_started_in_window": sum(1 for c in mine if a <= c.start <= b),
                "recipients_not_yet_called_at_end": waiting_left,
            }
        out = lines_numbers(calls, watch, cap, a, b, b)
        return {
            "cap": cap,
            "cap_on": "account REDIALER_MAX_CONCURRENT_CALLS",
            "recipients_each": n,
            "speed": speed,
            "call_length_s": [RING[0] / speed, RING[1] / speed],
            "workers": args.workers,
            "window_from_start_s": [a - t0, b - t0],
            "campaigns": per,
            "all_within_10pct": all(v["within_10pct"] for v in per.values()),
            "lines": out,
            "cpu_cores": cpu_cores(cpu0, cpu1),
            "settings": settings_of(env),
        }


async def b5small(args: argparse.Namespace) -> dict[str, Any]:
    """A 10-recipient campaign started behind a large one on the same 30 account lines."""
    cap, speed, big_n, small_n = 30, args.b5_speed, args.b5_big, 10
    big_numbers, small_numbers = phones("718", big_n), phones("332", small_n)
    extra = {"REDIALER_MAX_CONCURRENT_CALLS": str(cap)}
    async with environment(
        workers=args.workers, speed=speed, numbers=big_numbers + small_numbers, extra=extra
    ) as env:
        run = uuid.uuid4().hex[:6]
        big = spec(f"b5big-{run}", big_numbers)
        small = spec(f"b5small-{run}", small_numbers)
        async with watching(env.store, ACCOUNT) as watch:
            t0 = time.time()
            await campaigns.start_campaign(env.client, big, task_queue=env.task_queue)

            async def queued() -> bool:
                u = watch.usage[-1] if watch.usage else None
                return bool(u) and u["in_use"] >= cap and u["waiting"] >= 0.9 * (big_n - cap)

            backlog = await wait_until(queued, 300)
            await asyncio.sleep(5)
            waiting_then = watch.usage[-1]["waiting"]
            print(
                f"  big campaign queued ({backlog}, {waiting_then} waiting) after"
                f" {time.time() - t0:.0f} s; starting the small one",
                flush=True,
            )
            t1 = time.time()
            handle = await campaigns.start_campaign(env.client, small, task_queue=env.task_queue)
            await asyncio.wait_for(handle.result(), 600)
            done = time.time() - t1
            await asyncio.sleep(1)
        small_calls = calls_of(env.store, [small.campaign_id])
        big_calls = calls_of(env.store, [big.campaign_id])
        lengths = [c.end - c.start for c in small_calls if c.end is not None]
        big_lengths = [c.end - c.start for c in big_calls if c.end is not None]
        mean_len = statistics.mean(big_lengths + lengths)
        fair = cap * 1 / 2  # two campaigns of priority 1
        own_work = sum(lengths) / fair
        last_end = max(c.end for c in small_calls if c.end is not None) - t1
        small_holders = [h for h in watch.admitted if watch.group.get(h) == small.campaign_id]
        waits = [watch.admitted[h] - watch.first_ask[h] for h in small_holders]
        return {
            "cap": cap,
            "cap_on": "account REDIALER_MAX_CONCURRENT_CALLS",
            "big_recipients": big_n,
            "big_waiting_when_small_started": waiting_then,
            "small_recipients": small_n,
            "speed": speed,
            "workers": args.workers,
            "mean_call_s": mean_len,
            "small_calls": len(small_calls),
            "small_line_time_s": sum(lengths),
            "fair_share_lines": fair,
            "own_work_s": own_work,
            "small_first_call_start_s": min(c.start for c in small_calls) - t1,
            "small_last_call_start_s": max(c.start for c in small_calls) - t1,
            "small_last_call_end_s": last_end,
            "small_campaign_result_s": done,
            "target_s": own_work + 2 * mean_len,
            "met_by_last_call_end": last_end <= own_work + 2 * mean_len,
            "met_by_campaign_result": done <= own_work + 2 * mean_len,
            "small_mean_wait_s": statistics.mean(waits) if waits else math.nan,
            "small_max_wait_s": max(waits, default=math.nan),
            "settings": settings_of(env),
        }


def starts_in_windows(times: list[float], width: float = 1.0) -> tuple[int, int, float]:
    """(most starts in any sliding `width`-second window [t, t+width), number of starts that
    begin a window holding more than one, smallest gap between consecutive starts)."""
    times = sorted(times)
    most, over, j = 0, 0, 0
    for i, t in enumerate(times):
        while j < len(times) and times[j] < t + width:
            j += 1
        most = max(most, j - i)
        over += j - i > 1
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    return most, over, min(gaps, default=math.nan)


async def cps(args: argparse.Namespace) -> dict[str, Any]:
    """The account at 1 call/s over `--cps-seconds`, `--cps-workers` workers."""
    rate, seconds = 1.0, args.cps_seconds
    n = int(seconds * rate) + args.cps_extra
    numbers = phones("646", n)
    extra = {"REDIALER_MAX_CALLS_PER_SECOND": str(rate)}
    async with environment(
        workers=args.cps_workers, speed=args.cps_speed, numbers=numbers, extra=extra
    ) as env:
        s = spec(f"cps-{uuid.uuid4().hex[:8]}", numbers)
        async with watching(env.store, ACCOUNT) as watch:
            t0 = time.time()
            await campaigns.start_campaign(env.client, s, task_queue=env.task_queue)

            async def begun() -> bool:
                return bool(watch.admitted)

            await wait_until(begun, 120)
            a = time.time()
            cpu0 = cpu_sample(env)
            print(f"  first call after {a - t0:.0f} s; holding {seconds} s", flush=True)
            await asyncio.sleep(seconds)
            b = time.time()
            cpu1 = cpu_sample(env)
        calls = [c for c in calls_of(env.store, [s.campaign_id]) if a - 5 <= c.start <= b]
        ledger_times = [c.start for c in calls]
        admitted = [t for t in watch.admitted.values() if a - 5 <= t <= b]
        first = min(admitted + ledger_times)
        span = b - first
        l_most, l_over, l_gap = starts_in_windows(ledger_times)
        s_most, s_over, s_gap = starts_in_windows(admitted)
        rows = await asyncio.to_thread(_scopes_in_store, env.store)
        return {
            "rate_cap": rate,
            "workers": args.cps_workers,
            "recipients": n,
            "speed": args.cps_speed,
            "held_s": span,
            "admissions_in_store": len(admitted),
            "calls_in_ledger": len(ledger_times),
            "achieved_rate_store": len(admitted) / span,
            "achieved_rate_ledger": len(ledger_times) / span,
            "most_starts_in_any_1s_store": s_most,
            "windows_over_1_store": s_over,
            "min_gap_s_store": s_gap,
            "most_starts_in_any_1s_ledger": l_most,
            "windows_over_1_ledger": l_over,
            "min_gap_s_ledger": l_gap,
            "store_scopes_seen": rows,
            "cpu_cores": cpu_cores(cpu0, cpu1),
            "settings": settings_of(env),
        }


def _scopes_in_store(store: Store) -> dict[str, dict[str, int]]:
    """Which scopes hold rows now (call_line, call_slots): which times the store keeps."""
    with store.engine.connect() as c:
        return {
            table: {
                str(k): int(v)
                for k, v in c.execute(
                    text(f"SELECT campaign_id, count(*) FROM {table} GROUP BY campaign_id")
                ).all()
                if str(k).startswith("~")
            }
            for table in ("call_line", "call_slots")
        }


def versions() -> dict[str, str]:
    out = {}
    for name in ("redialer", "temporalio", "sqlalchemy"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[name] = metadata.version(name)
    out["git"] = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    changed = subprocess.run(  # uncommitted changes to the code the workers run
        ["git", "status", "--porcelain", "--", "redialer", "activities", "workflows", "worker.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout.split("\n")
    out["uncommitted"] = ", ".join(line[3:] for line in changed if line.strip()) or "none"
    return out


def save(name: str, result: dict[str, Any], args: argparse.Namespace, code: dict[str, str]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    store = "-postgres" if DATABASE and DATABASE.startswith("postgresql") else ""
    path = RESULTS / f"{time.strftime('%Y%m%d-%H%M%S')}-lines-{name}{store}.json"
    doc = {
        "bench": name,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python -m bench.lines", *sys.argv[1:]]),
        "machine": machine(),
        "versions": code,  # read when the sub-bench started its workers
        "options": vars(args),
        "result": result,
    }
    path.write_text(json.dumps(doc, indent=2, default=str))
    return path


def summary(name: str, r: dict[str, Any]) -> str:
    if name in ("b4", "b4big"):
        return (
            f"{name}: {r['recipients']} due, cap {r['cap']} ({r['cap_on']}): busy"
            f" {r['busy_fraction_ledger']:.2f} of the cap (slots held"
            f" {r['slots_held_fraction_sampled']:.2f}), {r['calls_per_s']:.1f} calls/s vs ideal"
            f" {r['ideal_calls_per_s']:.1f} ({r['calls_per_s_vs_ideal']:.2f}), peak"
            f" {r['peak_calls_up_ledger']} (slots {r['peak_slots_sampled']}), wait mean"
            f" {r['mean_wait_s']:.1f} s p99 {r['p99_wait_s']:.1f} s, mean call"
            f" {r['mean_call_s']:.2f} s"
        )
    if name == "b5":
        parts = [
            f"p{v['priority']} {v['share_of_line_time']:.3f} (target {v['target_share']:.2f})"
            for v in r["campaigns"].values()
        ]
        return f"b5: shares {', '.join(parts)}; all within 10 %: {r['all_within_10pct']}"
    if name == "b5small":
        return (
            f"b5small: last call ended {r['small_last_call_end_s']:.1f} s after its start"
            f" (result {r['small_campaign_result_s']:.1f} s), own work {r['own_work_s']:.1f} s,"
            f" mean call {r['mean_call_s']:.1f} s, target {r['target_s']:.1f} s"
        )
    return (
        f"cps: {r['held_s']:.0f} s, most starts in any 1 s: store"
        f" {r['most_starts_in_any_1s_store']}"
        f" ledger {r['most_starts_in_any_1s_ledger']}, min gap store {r['min_gap_s_store']:.3f} s"
        f" ledger {r['min_gap_s_ledger']:.3f} s, rate {r['achieved_rate_store']:.3f}/s"
    )


async def run_one(name: str, args: argparse.Namespace) -> dict[str, Any]:
    if name == "b4":
        return await b4(args, args.b4, 20, 30.0)
    if name == "b4big":
        return await b4big(args)
    if name == "b5":
        return await b5(args)
    if name == "b5small":
        return await b5small(args)
    if name == "cps":
        return await cps(args)
    raise SystemExit(f"unknown sub-bench {name!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="b4,b4big,b5,b5small,cps")
    parser.add_argument(
        "--database", default=None, help="a PostgreSQL URL for the store (emptied first)"
    )
    parser.add_argument("--workers", type=int, default=2, help="worker processes (b4, b5)")
    parser.add_argument("--b4", type=int, default=2_000, help="B4's recipients (cap 20)")
    parser.add_argument("--big", type=int, default=20_000, help="b4big's recipients")
    parser.add_argument("--big-cap", type=int, default=200)
    parser.add_argument("--big-cap-on", choices=["account", "campaign"], default="account")
    parser.add_argument("--big-speed", type=float, default=2.0, help="calls of 12.5-17.5 s")
    parser.add_argument("--window", type=float, default=180.0, help="b4big's measured seconds")
    parser.add_argument(
        "--big-queue-first",
        action="store_true",
        help="b4big: start measuring once 90 %% of the dials wait in the store's line",
    )
    parser.add_argument("--big-queue-timeout", type=float, default=300.0)
    parser.add_argument("--b5-each", type=int, default=1_000, help="recipients per campaign")
    parser.add_argument("--b5-big", type=int, default=10_000)
    parser.add_argument("--b5-speed", type=float, default=5.0, help="calls of 5-7 s")
    parser.add_argument("--b5-settle", type=float, default=10.0)
    parser.add_argument("--b5-window", type=float, default=120.0)
    parser.add_argument("--cps-seconds", type=float, default=600.0)
    parser.add_argument("--cps-workers", type=int, default=5)
    parser.add_argument("--cps-extra", type=int, default=100, help="recipients past the need")
    parser.add_argument("--cps-speed", type=float, default=30.0, help="calls of about 1 s")
    args = parser.parse_args()
    global DATABASE
    DATABASE = args.database
    for name in args.only.split(","):
        print(f"running {name} ...", flush=True)
        t = time.time()
        code = versions()
        result = asyncio.run(run_one(name, args))
        path = save(name, result, args, code)
        print(f"  {summary(name, result)}\n  ({time.time() - t:.0f} s, {path})", flush=True)


if __name__ == "__main__":
    main()
