"""The REST API under load: `POST /v1/calls` accepted per second, and `GET /v1/campaigns/{id}`
latency while a 10,000-recipient campaign dials; beside the engine's own start rate, in one run.

    python -m bench.api_load [--levels 1,8,32] [--calls 400] [--level-seconds 8]
                             [--recipients 10000] [--sample-rate 5] [--b0 500] [--profile]

One dev server (a WAL SQLite file, as `bench.run` starts it), one worker process with the
instant simulated dialer (`bench.worker`: it runs every call the bench starts), and `redialer
api` as an operator runs it (uvicorn, one process) with a fresh API key. The load comes from
this process (httpx, one kept-alive connection per concurrent client); CPU is sampled from /proc
around each part for the api, the worker, the dev server, this process and the whole machine.

1. `POST /v1/calls` (`{"to_number": ..., "retry": {"max_retries": 0}}`, `Authorization: Bearer
   KEY`) at each concurrency level, for `--calls` requests or `--level-seconds`, whichever comes
   first: accepted/s = 201 answers received / wall time of the level, p50/p99 per request. Each
   level is followed by the same number of single-call workflows started straight from the client
   at the same concurrency (what the route does, without HTTP: the API's own cost shows as the
   difference), and between parts the bench waits until the worker has finished every call.
2. B0 as `bench.run` measures it (trivial workflows started 160 at a time): the engine's start
   ceiling on this machine, in this run.
3. A campaign of `--recipients` started with `POST /v1/campaigns`; while its recipients start
   and dial, `GET /v1/campaigns/{id}` is sampled `--sample-rate` times a second, one request at a
   time, until every recipient has started (plus `--tail` seconds) or `--sample-seconds`: p50/p99
   of those requests, with the progress at the first and last sample. The engine's start rate
   for this campaign comes from the same samples (started = final + active) and, as B2 counts
   it, from the start request to the server's start time of the last recipient workflow. Then
   the campaign is stopped (`POST /v1/campaigns/{id}/stop`). Before it, an idle long-living
   campaign gives the GET's latency with nothing running; during it, beside every 5th GET and at
   the same moment, the bench asks Temporal the same (describe, then the progress query) straight
   from its client, timed apart: what the API adds, and what the engine and the worker take.
   `--recipients 0` skips this part.

Writes bench/results/<time>-api-load.json (date, machine, versions, every number) and prints a
summary. At the defaults it takes about 6 minutes on 2 cores, most of it the campaign.
`--profile` runs the api under cProfile (bench/api_profile.py, logs as `redialer api` configures
them) and adds where its time went over the whole run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx

from bench.proc_cpu import _machine_busy, _stat_cpu
from bench.run import RESULTS, ROOT, Bench, b0, environment, last_start, machine, phones
from redialer.limits import Limits
from redialer.process_exit import exit_now
from redialer.recipients import normalise_phone
from service.call_models import parse_single_call
from starter import campaigns
from starter.inspection import query_timeout
from starter.server import free_port
from workflows.campaign import CampaignWorkflow

WARM_UP_CALLS = 10
CALL_AREA, DIRECT_AREA, CAMPAIGN_AREA = "650", "415", "917"
MAX_JSON_BYTES = 2 * 1024 * 1024  # service/requests.py: the largest JSON body


def call_body(phone: str) -> dict[str, Any]:
    return {"to_number": phone, "retry": {"max_retries": 0}}


def valid_phones(area: str, n: int) -> list[str]:
    """n distinct numbers that `normalise_phone` takes as they are (checked, not assumed)."""
    numbers = phones(area, n)
    for p in numbers:
        assert normalise_phone(p) == p, p
    return numbers


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    ordered = sorted(values)
    cuts = (
        statistics.quantiles(ordered, n=100, method="inclusive")
        if len(ordered) > 1
        else ordered * 99
    )
    return {
        "n": len(ordered),
        "p50_ms": round(cuts[49], 2),
        "p90_ms": round(cuts[89], 2),
        "p99_ms": round(cuts[98], 2),
        "max_ms": round(ordered[-1], 2),
        "mean_ms": round(statistics.mean(ordered), 2),
    }


def load_average() -> list[float]:
    return [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]


# ---- CPU from /proc -----------------------------------------------------------------------------


class Cpu:
    """CPU seconds of our processes and the machine; percent of one core between two samples."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids

    def sample(self) -> dict[str, float]:
        taken = {"wall": time.monotonic(), "machine": _machine_busy()}
        for name, pid in self.pids.items():
            with contextlib.suppress(OSError):
                taken[name] = _stat_cpu(f"/proc/{pid}/stat")
        with contextlib.suppress(OSError, KeyError):
            api = self.pids["api"]
            taken["api_loop_thread"] = _stat_cpu(f"/proc/{api}/task/{api}/stat")
        return taken

    @staticmethod
    def percent(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
        wall = after["wall"] - before["wall"]
        used = {
            k: 100 * (after[k] - before[k]) / wall for k in before if k != "wall" and k in after
        }
        ours = sum(v for k, v in used.items() if k not in ("machine", "api_loop_thread"))
        used["others"] = max(used["machine"] - ours, 0.0)
        return {k: round(v, 1) for k, v in used.items()}


@contextlib.contextmanager
def measured(cpu: Cpu, into: dict[str, Any]) -> Any:
    before = cpu.sample()
    try:
        yield
    finally:
        into["cpu_percent_of_one_core"] = Cpu.percent(before, cpu.sample())


def server_pid(port: int) -> int | None:
    """The dev server `bench.run.environment` started (it keeps the process to itself)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                args = (entry / "cmdline").read_bytes().split(b"\0")
                if b"start-dev" in args and str(port).encode() in args:
                    return int(entry.name)
    return None


# ---- the api ------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def api_process(
    bench: Bench, tmp: Path, key: str, *, profile: Path | None
) -> AsyncIterator[tuple[subprocess.Popen[bytes], str]]:
    """`redialer api` on the bench's server, store and task queue, on a free loopback port."""
    port = free_port()
    command = [sys.executable, "-c", "from starter.cli import main; main()", "api"]
    if profile is not None:  # the same app and uvicorn, cProfile in every thread
        command = [sys.executable, "-m", "bench.api_profile", "--what-if", "info-logs"]
        command += ["--out", str(profile)]
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": bench.client.service_client.config.target_host,
        "REDIALER_TASK_QUEUE": bench.task_queue,
        "REDIALER_DATABASE_URL": bench.store.engine.url.render_as_string(hide_password=False),
        "REDIALER_API_KEYS": key,
    }
    url = f"http://127.0.0.1:{port}"
    with (tmp / "api.log").open("ab") as log:
        api = subprocess.Popen(
            [*command, "--port", str(port)], env=env, stdout=log, stderr=log, cwd=ROOT
        )
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            for _ in range(600):
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get(f"{url}/readyz")).status_code == 200:
                        break
                assert api.poll() is None, (tmp / "api.log").read_text()
                await asyncio.sleep(0.1)
            else:
                raise TimeoutError(f"redialer api never ready: {(tmp / 'api.log').read_text()}")
        yield api, url
    finally:
        api.terminate()
        api.wait(timeout=60)


# ---- part 1: POST /v1/calls ---------------------------------------------------------------------


async def post_calls(
    url: str, key: str, numbers: list[str], *, concurrency: int, seconds: float
) -> dict[str, Any]:
    """`concurrency` clients, each with one kept-alive connection, post calls one after the
    other until the numbers run out or `seconds` pass (requests under way finish)."""
    latencies: list[float] = []
    codes: Counter[str] = Counter()
    pending = iter(numbers)
    headers = {"Authorization": f"Bearer {key}"}
    clients = [
        httpx.AsyncClient(base_url=url, limits=httpx.Limits(max_connections=1), timeout=60)
        for _ in range(concurrency)
    ]
    deadline = time.monotonic() + seconds

    async def client(http: httpx.AsyncClient) -> None:
        async with http:
            for phone in pending:  # one iterator shared by every client: each number once
                if time.monotonic() > deadline:
                    return
                t0 = time.perf_counter()
                try:
                    response = await http.post("/v1/calls", json=call_body(phone), headers=headers)
                    code = str(response.status_code)
                except httpx.HTTPError as exc:
                    code = type(exc).__name__
                latencies.append((time.perf_counter() - t0) * 1000)
                codes[code] += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(client(http) for http in clients))
    elapsed = time.perf_counter() - t0
    accepted = codes.get("201", 0)
    return {
        "concurrency": concurrency,
        "sent": len(latencies),
        "accepted_201": accepted,
        "codes": dict(codes),
        "elapsed_s": round(elapsed, 3),
        "accepted_per_s": round(accepted / elapsed, 1),
        "latency": percentiles(latencies),
    }


async def start_direct(
    bench: Bench, numbers: list[str], *, concurrency: int, seconds: float
) -> dict[str, Any]:
    """What the route does, without HTTP: the same policy and workflow, from the client."""
    call = parse_single_call(call_body(numbers[0]), limits=Limits())
    run = uuid.uuid4().hex[:8]
    latencies: list[float] = []
    failures: Counter[str] = Counter()
    pending = iter(numbers)
    deadline = time.monotonic() + seconds

    async def client() -> None:
        for phone in pending:
            if time.monotonic() > deadline:
                return
            recipient = call.recipient.model_copy(update={"phone": phone})
            t0 = time.perf_counter()
            try:
                await campaigns.start_single_call(
                    bench.client,
                    recipient,
                    call.policy,
                    task_queue=bench.task_queue,
                    workflow_id=f"direct/{run}/{phone}",
                )
            except Exception as exc:
                failures[type(exc).__name__] += 1
            latencies.append((time.perf_counter() - t0) * 1000)

    t0 = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    elapsed = time.perf_counter() - t0
    started = len(latencies) - sum(failures.values())
    return {
        "concurrency": concurrency,
        "started": started,
        "failures": dict(failures),
        "elapsed_s": round(elapsed, 3),
        "starts_per_s": round(started / elapsed, 1),
        "latency": percentiles(latencies),
    }


async def drained(bench: Bench, timeout: float) -> float:
    """Seconds until no call (single-call recipient workflow) is running: the next part starts
    on a quiet worker. Visibility lags a little, so it must read zero twice."""
    query = 'WorkflowType = "RecipientWorkflow" AND ExecutionStatus = "Running"'
    t0 = time.monotonic()
    zeros = 0
    while time.monotonic() - t0 < timeout:
        zeros = zeros + 1 if (await bench.client.count_workflows(query)).count == 0 else 0
        if zeros == 2:
            break
        await asyncio.sleep(0.5)
    return round(time.monotonic() - t0, 1)


# ---- part 3: GET /v1/campaigns/{id} while a campaign dials --------------------------------------


async def sample_progress(
    http: httpx.AsyncClient,
    campaign_id: str,
    *,
    rate: float,
    seconds: float,
    tail: float,
    until_started: int | None,
    beside: Callable[[], Awaitable[dict[str, Any]]] | None = None,
    beside_every: int = 5,
) -> list[dict[str, Any]]:
    """One GET every 1/rate s (never two at once; a tick that a slow answer overran is skipped)
    until `until_started` recipients have started plus `tail` seconds, or `seconds`. With every
    `beside_every`-th GET, `beside` (the same question straight to Temporal) runs at the same
    moment, timed apart: a slow pair is the engine's or the worker's doing, a slow GET alone the
    API's."""
    samples: list[dict[str, Any]] = []
    t_start = time.monotonic()
    all_started_at: float | None = None
    tick = 0

    async def get(sample: dict[str, Any]) -> None:
        t0 = time.perf_counter()
        try:
            response = await http.get(f"/v1/campaigns/{campaign_id}")
            sample["code"] = response.status_code
            if response.status_code == 200:
                body = response.json()
                sample.update({k: body[k] for k in ("state", "total", "final", "active", "source")})
                sample["started"] = body["final"] + body["active"]
        except httpx.HTTPError as exc:
            sample["code"] = type(exc).__name__
        sample["ms"] = round((time.perf_counter() - t0) * 1000, 2)

    while True:
        now = time.monotonic()
        if now - t_start >= seconds or (
            all_started_at is not None and now - all_started_at >= tail
        ):
            return samples
        sample: dict[str, Any] = {"t": round(now - t_start, 3)}
        if beside is not None and len(samples) % beside_every == 0:
            sample["direct"] = (await asyncio.gather(get(sample), beside()))[1]
        else:
            await get(sample)
        samples.append(sample)
        if (
            all_started_at is None
            and until_started is not None
            and sample.get("started", 0) >= until_started
        ):
            all_started_at = time.monotonic()
        tick = max(tick + 1, int((time.monotonic() - t_start) * rate) + 1)
        await asyncio.sleep(max(0.0, t_start + tick / rate - time.monotonic()))


async def direct_progress(bench: Bench, campaign_id: str) -> dict[str, Any]:
    """What the GET route asks Temporal, straight from the client and timed apart: describe,
    then the progress query (the route's 5 s deadline)."""
    handle = campaigns.campaign_handle(bench.client, campaign_id)
    out: dict[str, Any] = {}
    t0 = time.perf_counter()
    try:
        await handle.describe(rpc_timeout=query_timeout())
        out["describe_ms"] = round((time.perf_counter() - t0) * 1000, 2)
        t1 = time.perf_counter()
        await handle.query(CampaignWorkflow.progress, rpc_timeout=query_timeout())
        out["query_ms"] = round((time.perf_counter() - t1) * 1000, 2)
    except Exception as exc:  # a query past its deadline: recorded, not fatal
        out["error"] = type(exc).__name__
    out["ms"] = round((time.perf_counter() - t0) * 1000, 2)
    return out


def direct_summary(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """The direct probes, and the GETs sent at the same moments: a slow GET beside a slow probe
    waited on Temporal or the worker, not on the API."""
    paired = [s for s in samples if "direct" in s]
    probes = [s["direct"] for s in paired]
    slow_gets = [s for s in paired if s["ms"] >= 1000]
    return {
        "pairs": len(paired),
        "total": percentiles([d["ms"] for d in probes if "error" not in d]),
        "describe": percentiles([d["describe_ms"] for d in probes if "describe_ms" in d]),
        "query": percentiles([d["query_ms"] for d in probes if "query_ms" in d]),
        "errors": dict(Counter(d["error"] for d in probes if "error" in d)),
        "get_at_the_same_moments": percentiles([s["ms"] for s in paired]),
        "gets_over_1s": len(slow_gets),
        "of_which_probe_over_1s_too": sum(
            1 for s in slow_gets if "error" in s["direct"] or s["direct"]["ms"] >= 1000
        ),
    }


def progress_row(sample: dict[str, Any]) -> dict[str, Any]:
    return {k: sample.get(k) for k in ("t", "state", "total", "started", "active", "final")}


def engine_rate(samples: list[dict[str, Any]], total: int, post_s: float) -> dict[str, Any]:
    """Recipients started per second as the GET saw them: from the start request (`post_s`
    before the first sample) to the first sample with all started (the campaign reports its
    starts a page of 1,000 at a time, so this is coarse); finals per second over the sampling."""
    ok = [s for s in samples if "started" in s]
    done = next((s for s in ok if s["started"] >= total), None)
    out: dict[str, Any] = {"all_started_during_sampling": done is not None}
    if done is not None:
        out["all_started_seen_after_s"] = round(post_s + done["t"], 2)
        out["starts_per_s_seen_by_get"] = round(total / (post_s + done["t"]), 1)
    elif ok:
        out["started_at_last_sample"] = ok[-1]["started"]
        out["starts_per_s_seen_by_get"] = round(ok[-1]["started"] / (post_s + ok[-1]["t"]), 1)
    if len(ok) > 1 and ok[-1]["t"] > ok[0]["t"]:
        span = ok[-1]["t"] - ok[0]["t"]
        out["final_per_s"] = round((ok[-1]["final"] - ok[0]["final"]) / span, 1)
    return out


async def campaign_part(
    bench: Bench, url: str, key: str, cpu: Cpu, args: argparse.Namespace
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {key}"}
    result: dict[str, Any] = {}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as http:
        # The GET with nothing running: an empty long-living campaign, answered live.
        idle_id = f"api-idle-{uuid.uuid4().hex[:8]}"
        r = await http.post("/v1/campaigns", json={"campaign_id": idle_id, "long_living": True})
        assert r.status_code == 201, r.text
        await sample_progress(
            http, idle_id, rate=args.sample_rate, seconds=1, tail=0, until_started=None
        )
        idle = await sample_progress(
            http,
            idle_id,
            rate=args.sample_rate,
            seconds=args.idle_seconds,
            tail=0,
            until_started=None,
        )
        result["idle_get"] = {
            **percentiles([s["ms"] for s in idle if s["code"] == 200]),
            "codes": dict(Counter(str(s["code"]) for s in idle)),
            "sources": dict(Counter(s.get("source") for s in idle)),
        }
        await http.post(f"/v1/campaigns/{idle_id}/stop")

        campaign_id = f"api-load-{uuid.uuid4().hex[:8]}"
        numbers = valid_phones(CAMPAIGN_AREA, args.recipients)
        body = json.dumps(
            {"campaign_id": campaign_id, "recipients": [{"phone": p} for p in numbers]}
        )
        assert len(body) <= MAX_JSON_BYTES, f"{len(body)} bytes: over the API's 2 MB"
        print(
            f"  POST /v1/campaigns ({args.recipients} recipients, {len(body) / 1024:.0f} KB)"
            " and GET it while it dials ...",
            flush=True,
        )
        with measured(cpu, result):
            t_post = time.time()
            p0 = time.perf_counter()
            r = await http.post(
                "/v1/campaigns", content=body, headers={"Content-Type": "application/json"}
            )
            post_ms = (time.perf_counter() - p0) * 1000
            assert r.status_code == 201, r.text
            samples = await sample_progress(
                http,
                campaign_id,
                rate=args.sample_rate,
                seconds=args.sample_seconds,
                tail=args.tail,
                until_started=args.recipients,
                beside=partial(direct_progress, bench, campaign_id),
            )
        sampling_s = samples[-1]["t"] if samples else 0.0
        ok = [s for s in samples if s["code"] == 200]
        result.update(
            {
                "campaign_id": campaign_id,
                "recipients": args.recipients,
                "body_bytes": len(body),
                "post_campaign_ms": round(post_ms, 1),
                "sample_rate_per_s": args.sample_rate,
                "sampling_s": sampling_s,
                "get_while_dialing": {
                    **percentiles([s["ms"] for s in ok]),
                    "requests": len(samples),
                    "codes": dict(Counter(str(s["code"]) for s in samples)),
                    "sources": dict(Counter(s.get("source") for s in ok)),
                },
                "direct_from_client_every_5th": direct_summary(samples),
                "progress_at_first_sample": progress_row(ok[0]) if ok else None,
                "progress_at_last_sample": progress_row(ok[-1]) if ok else None,
                "engine": engine_rate(samples, args.recipients, post_ms / 1000),
            }
        )
        # The server's start times of the recipient workflows (visibility): as B2 counts it,
        # the start request to the start of the last recipient; and the steady rate between.
        engine = result["engine"]
        query = f'CampaignId = "{campaign_id}" AND WorkflowType = "RecipientWorkflow"'
        if engine["all_started_during_sampling"]:
            last = await last_start(bench.client, query, args.recipients)
            engine["b2_style_starts_per_s"] = round(args.recipients / (last - t_post), 1)
            engine["b2_style_all_started_s"] = round(last - t_post, 1)
        else:
            await asyncio.sleep(2)  # visibility lags a little
        # Listed while recipients close, a page can repeat a row: count each run once.
        rows = {
            (w.id, w.run_id): w.start_time.timestamp() - t_post
            async for w in bench.client.list_workflows(query)
        }
        times = sorted(rows.values())
        engine["server_started_recipients"] = len(times)
        engine["server_started_distinct_ids"] = len({wid for wid, _ in rows})
        if len(times) >= 10:
            at = {f: times[round(f * (len(times) - 1))] for f in (0, 0.1, 0.25, 0.5, 0.75, 0.9, 1)}
            engine["server_start_times_s_after_post"] = {
                f"p{round(100 * f)}": round(v, 2) for f, v in at.items()
            }
            engine["server_steady_starts_per_s_p10_to_p90"] = round(
                0.8 * len(times) / (at[0.9] - at[0.1]), 1
            )
        t0 = time.perf_counter()
        stop = await http.post(f"/v1/campaigns/{campaign_id}/stop")
        result["stop"] = {
            "code": stop.status_code,
            "ms": round((time.perf_counter() - t0) * 1000, 1),
            **(stop.json() if stop.status_code in (200, 503) else {"body": stop.text[:500]}),
        }
        result["samples"] = samples
    return result


def api_log_errors(log: list[str]) -> dict[str, Any]:
    """The api's log: how many lines and error records, and the end of each error's traceback
    (up to the next timestamped record), which names what was raised."""
    starts = [i for i, line in enumerate(log) if "[error" in line]
    ends = []
    for i in starts:
        j = i + 1
        while j < len(log) and not log[j][:2].isdigit():
            j += 1
        ends.append("\n".join([log[i], *log[max(i + 1, j - 12) : j]]))
    return {"lines": len(log), "errors": len(starts), "error_tails": ends[:5]}


# ---- the run ------------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> dict[str, Any]:
    key = secrets.token_urlsafe(24)
    levels = [int(v) for v in args.levels.split(",")]
    calls = valid_phones(CALL_AREA, WARM_UP_CALLS + args.calls * len(levels))
    direct = valid_phones(DIRECT_AREA, args.calls * len(levels))
    out: dict[str, Any] = {}
    async with environment("file", []) as bench:
        tmp = Path(bench.store.engine.url.database or ".").parent
        profile = tmp / "api-profile.json" if args.profile else None
        port = int(bench.client.service_client.config.target_host.rsplit(":", 1)[1])
        async with api_process(bench, tmp, key, profile=profile) as (api, url):
            pids = {"api": api.pid, "worker": bench.worker.pid, "bench": os.getpid()}
            if (server := server_pid(port)) is not None:
                pids["server"] = server
            cpu = Cpu(pids)
            print(
                f"  api {url} (pid {api.pid}), worker pid {bench.worker.pid}, server pid {server}",
                flush=True,
            )
            warm = await post_calls(url, key, calls[:WARM_UP_CALLS], concurrency=1, seconds=30)
            assert warm["accepted_201"] == WARM_UP_CALLS, warm
            await b0(bench, 20)  # warm-up, as bench.run does
            await drained(bench, args.drain_timeout)

            print("part 1: POST /v1/calls", flush=True)
            rows = []
            for i, c in enumerate(levels):
                chunk = slice(WARM_UP_CALLS + i * args.calls, WARM_UP_CALLS + (i + 1) * args.calls)
                row: dict[str, Any] = {"concurrency": c}
                with measured(cpu, row):
                    row.update(
                        await post_calls(
                            url, key, calls[chunk], concurrency=c, seconds=args.level_seconds
                        )
                    )
                row["drain_s"] = await drained(bench, args.drain_timeout)
                line = (
                    f"    api    c={c:<3} {row['accepted_per_s']:7.1f} accepted/s"
                    f"  p50 {row['latency']['p50_ms']:.0f} ms  p99 {row['latency']['p99_ms']:.0f}"
                    f" ms  codes {row['codes']}"
                )
                if not args.no_direct:
                    d: dict[str, Any] = {}
                    with measured(cpu, d):
                        d.update(
                            await start_direct(
                                bench,
                                direct[i * args.calls : (i + 1) * args.calls],
                                concurrency=c,
                                seconds=args.level_seconds,
                            )
                        )
                    d["drain_s"] = await drained(bench, args.drain_timeout)
                    row["direct_from_client"] = d
                    line += f"   | client direct {d['starts_per_s']:7.1f} starts/s"
                rows.append(row)
                print(line, flush=True)
            out["post_calls"] = rows

            if args.b0:
                print(f"part 2: B0, {args.b0} trivial workflows from the client", flush=True)
                row = {}
                with measured(cpu, row):
                    row.update(await b0(bench, args.b0))
                out["B0"] = row
                print(
                    f"    B0 {row['starts_per_s']:.1f} starts/s, {row['workflows_per_s']:.1f}"
                    " workflows/s",
                    flush=True,
                )

            if args.recipients:
                print("part 3: GET /v1/campaigns/{id} while a campaign dials", flush=True)
                out["campaign"] = await campaign_part(bench, url, key, cpu, args)
        log = (tmp / "api.log").read_text(errors="replace").splitlines()
        out["api_log"] = api_log_errors(log)
        if profile is not None:
            out["api_profile"] = json.loads(profile.read_text())
    return out


def summary(result: dict[str, Any]) -> None:
    m = result["machine"]
    print(f"\n== redialer api under load ({m['nproc']} cores, {m['cpu']}, {result['date']}) ==")
    print(
        f"{'POST /v1/calls':<16}{'conc':>5}{'201/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'non-201':>9}"
        f"{'api%':>7}{'loop%':>7}{'wrk%':>7}{'srv%':>7}{'bench%':>8}{'oth%':>6}{'mach%':>7}"
        f"{'direct/s':>10}"
    )
    for row in result["post_calls"]:
        cpu = row["cpu_percent_of_one_core"]
        direct = row.get("direct_from_client", {}).get("starts_per_s", float("nan"))
        print(
            f"{'':<16}{row['concurrency']:>5}{row['accepted_per_s']:>9.1f}"
            f"{row['latency']['p50_ms']:>9.1f}{row['latency']['p99_ms']:>9.1f}"
            f"{row['sent'] - row['accepted_201']:>9}{cpu.get('api', 0):>7.0f}"
            f"{cpu.get('api_loop_thread', 0):>7.0f}{cpu.get('worker', 0):>7.0f}"
            f"{cpu.get('server', 0):>7.0f}{cpu.get('bench', 0):>8.0f}{cpu['others']:>6.0f}"
            f"{cpu['machine']:>7.0f}"
            f"{direct:>10.1f}"
        )
    if "B0" in result:
        b = result["B0"]
        print(
            f"B0 (same run)    {b['starts_per_s']:.1f} starts/s, {b['workflows_per_s']:.1f}"
            f" workflows/s (others' CPU {b['cpu_percent_of_one_core']['others']:.0f}%)"
        )
    log = result["api_log"]
    if "campaign" in result:
        campaign_summary(result["campaign"])
    print(f"  api log: {log['lines']} lines, {log['errors']} error records")
    for tail in log["error_tails"][:2]:
        print("    " + tail.replace("\n", "\n    "))
    if "api_profile" in result:
        prof = result["api_profile"]["event_loop_thread"]
        print(f"api event-loop thread, {prof['busy_s']} s busy (whole run, profiled):")
        for name, share in list(prof["by_package_percent"].items())[:12]:
            print(f"  {share:5.1f}%  {name}")


def campaign_summary(c: dict[str, Any]) -> None:
    g, idle, e = c["get_while_dialing"], c["idle_get"], c["engine"]
    first, last = c["progress_at_first_sample"], c["progress_at_last_sample"]
    print(
        f"GET /v1/campaigns/{{id}} while {c['recipients']} recipients start and dial:"
        f" p50 {g['p50_ms']:.1f} ms, p99 {g['p99_ms']:.1f} ms, max {g['max_ms']:.0f} ms"
        f" ({g['n']} of {g['requests']} answered 200 over {c['sampling_s']:.0f} s; sources"
        f" {g['sources']}); idle p50 {idle['p50_ms']:.1f} ms, p99 {idle['p99_ms']:.1f} ms"
    )
    d = c["direct_from_client_every_5th"]
    print(
        f"  the same question straight to Temporal, beside every 5th GET ({d['total']['n']}"
        f" answered,"
        f" errors {d['errors']}): p50 {d['total'].get('p50_ms', 0):.1f} ms, p99"
        f" {d['total'].get('p99_ms', 0):.1f} ms (describe p50 {d['describe'].get('p50_ms', 0):.1f}"
        f" ms, query p50 {d['query'].get('p50_ms', 0):.1f} ms,"
        f" p99 {d['query'].get('p99_ms', 0):.1f} ms); the GETs at those moments: p50"
        f" {d['get_at_the_same_moments'].get('p50_ms', 0):.1f} ms, p99"
        f" {d['get_at_the_same_moments'].get('p99_ms', 0):.1f} ms; GETs over 1 s:"
        f" {d['gets_over_1s']}, with the probe over 1 s too: {d['of_which_probe_over_1s_too']}"
    )
    print(
        f"  progress at first sample: started {first['started']}, final {first['final']};"
        f" at last (t={last['t']:.0f} s): started {last['started']}, final {last['final']}"
    )
    print(
        f"  POST /v1/campaigns of {c['body_bytes'] / 1024:.0f} KB: {c['post_campaign_ms']:.0f} ms;"
        f" CPU while sampling: {c['cpu_percent_of_one_core']}"
    )
    nan = float("nan")
    print(
        f"  the engine started its recipients at {e.get('b2_style_starts_per_s', nan):.1f}/s"
        f" (B2's way: POST to the server's start of the last one,"
        f" {e.get('b2_style_all_started_s', nan):.1f} s; p10 to p90 of the server's start times"
        f" {e.get('server_steady_starts_per_s_p10_to_p90', nan):.1f}/s; as the GET saw it"
        f" {e.get('starts_per_s_seen_by_get', nan):.1f}/s); finals {e.get('final_per_s', 0):.1f}/s"
    )
    print(
        f"  recipient workflows the server started: {e.get('server_started_recipients')};"
        f" POST /v1/campaigns/{{id}}/stop: {c['stop']['code']} after {c['stop']['ms']:.0f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default="1,8,32", help="concurrent clients for POST /v1/calls")
    parser.add_argument("--calls", type=int, default=400, help="at most, per level")
    parser.add_argument("--level-seconds", type=float, default=8.0, help="at most, per level")
    parser.add_argument(
        "--no-direct", action="store_true", help="skip the same starts straight from the client"
    )
    parser.add_argument("--drain-timeout", type=float, default=90.0)
    parser.add_argument("--b0", type=int, default=500, help="B0's trivial workflows (0: skip)")
    parser.add_argument("--recipients", type=int, default=10_000, help="0: no part 3")
    parser.add_argument("--sample-rate", type=float, default=5.0, help="GETs per second")
    parser.add_argument("--sample-seconds", type=float, default=150.0, help="at most")
    parser.add_argument(
        "--tail", type=float, default=5.0, help="seconds sampled after every recipient has started"
    )
    parser.add_argument("--idle-seconds", type=float, default=5.0)
    parser.add_argument("--profile", action="store_true", help="the api under cProfile")
    args = parser.parse_args()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    result: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {
            **machine(),
            "nproc": len(os.sched_getaffinity(0)),
            "load_average_at_start": load_average(),
        },
        "versions": {
            p: version(p)
            for p in (
                "redialer",
                "temporalio",
                "fastapi",
                "uvicorn",
                "starlette",
                "pydantic",
                "httpx",
            )
        },
        "sizes": vars(args),
    }
    t0 = time.monotonic()
    result.update(asyncio.run(run(args)))
    result["machine"]["load_average_at_end"] = load_average()
    result["wall_s"] = round(time.monotonic() - t0, 1)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{stamp}-api-load{'-profile' if args.profile else ''}.json"
    out.write_text(json.dumps(result, indent=2))
    summary(result)
    print(f"\nwritten {out.relative_to(ROOT)} ({result['wall_s']:.0f} s)", flush=True)
    exit_now(0)  # a Temporal client was used: see redialer/process_exit.py


if __name__ == "__main__":
    main()
