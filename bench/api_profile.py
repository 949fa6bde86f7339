"""`redialer api` under cProfile, every thread, or with a what-if change: for
`python -m bench.twilio_path --profile` and `--what-if one-writer,info-logs`.

The same app and server as `service.app.serve` (the app factory, one uvicorn process, the store
reached through `asyncio.to_thread`), with a profiler in the event-loop thread and one in each
thread of the default executor (a pool of the same size as asyncio's own). The clock is the wall
clock: `time.thread_time` costs a system call per event on this VM, which would swamp the
profile; so waits for work are left out (IDLE), and a wait for the GIL counts where the thread
stood. On SIGTERM it writes both profiles as pstats files next to `--out` and a JSON summary to
`--out`: time per package (by the file of the function that spent it) and the top functions.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import re
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import uvicorn

from redialer.logs import configure_logging, secrets_of
from redialer.settings import get_settings
from redialer.store.provider_calls import CallbackEffect, ProviderCalls
from redialer.store.store import Store
from service.app import create_app

#: Where a thread waits for work, not works: left out (the timer is the wall clock).
IDLE = (
    "of 'select.epoll'",
    "'get' of '_queue.SimpleQueue'",
    "'acquire' of '_thread.lock'",
)
_SITE = re.compile(r"site-packages/([A-Za-z0-9_]+)")
_STDLIB = re.compile(r"python3\.\d+/([A-Za-z0-9_]+)")


def package(filename: str, function: str) -> str:
    """Where a function lives: its site-packages package, stdlib module, our folder, or for a
    builtin the C type it belongs to (sqlite3.Cursor, _hashlib, ...)."""
    if filename == "~":
        match = re.search(r"of '([\w.]+)' objects|built-in method ([\w.]+)", function)
        return "builtin " + ((match.group(1) or match.group(2)) if match else function)
    if m := _SITE.search(filename):
        return m.group(1)
    if m := _STDLIB.search(filename):
        return "stdlib " + m.group(1)
    return "redialer " + Path(filename).parent.name


def summary(profiles: list[cProfile.Profile], *, top: int = 25) -> dict[str, Any]:
    stats = pstats.Stats(profiles[0])
    for more in profiles[1:]:
        stats.add(more)
    raw: dict[tuple[str, int, str], tuple[Any, ...]] = {
        k: v
        for k, v in stats.stats.items()  # type: ignore[attr-defined]
        if not any(idle in k[2] for idle in IDLE)
    }
    total = sum(v[2] for v in raw.values())
    by_package: dict[str, float] = {}
    for (filename, _, function), (_, _, tottime, _, _) in raw.items():
        key = package(filename, function)
        by_package[key] = by_package.get(key, 0.0) + tottime
    functions = sorted(raw.items(), key=lambda kv: kv[1][2], reverse=True)[:top]
    return {
        "busy_s": round(total, 3),
        "by_package_percent": {
            k: round(100 * v / total, 1)
            for k, v in sorted(by_package.items(), key=lambda kv: -kv[1])
            if v / total >= 0.005
        },
        "top_functions": [
            {
                "function": f"{Path(f).name}:{line} {name}",
                "calls": calls,
                "self_percent": round(100 * tottime / total, 1),
                "cumulative_s": round(cumtime, 3),
            }
            for (f, line, name), (_, calls, tottime, cumtime, _) in functions
        ],
    }


def _enable(profiles: dict[int, cProfile.Profile]) -> None:
    profile = profiles[threading.get_ident()] = cProfile.Profile()
    profile.enable()


def _disable_each(executor: ThreadPoolExecutor, profiles: dict[int, cProfile.Profile]) -> None:
    """Stop each thread's profiler in that thread: stopped from another one, cProfile closes
    the calls still open there (the idle thread's queue wait) on the wrong thread's clock."""
    if not profiles:
        return
    barrier = threading.Barrier(len(profiles))  # one task per thread, none takes two

    def stop_here() -> None:
        barrier.wait(timeout=10)
        profiles[threading.get_ident()].disable()

    for future in [executor.submit(stop_here) for _ in profiles]:
        future.result(timeout=20)


def one_writer() -> None:
    """What if the api took its callbacks' writes one at a time (a lock in the process)? Then
    its threads never meet on SQLite's write lock, whose busy handler sleeps (1, 2, 5, 10 ...
    ms) instead of handing over."""
    lock = threading.Lock()
    take = ProviderCalls.take_callback

    def serialized(self: ProviderCalls, **callback: Any) -> CallbackEffect:
        with lock:
            return take(self, **callback)

    ProviderCalls.take_callback = serialized  # type: ignore[method-assign]


def info_logs() -> None:
    """What if `redialer api` configured its logs like the worker (INFO): no debug line per
    callback (today it never configures structlog, whose default prints every level)."""
    configure_logging(
        level="INFO", log_pii=get_settings().log_pii, secrets=secrets_of(get_settings())
    )


WHAT_IF = {"one-writer": one_writer, "info-logs": info_logs}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", type=Path, help="profile, and write the report here")
    parser.add_argument("--what-if", default="", help="comma-separated: " + ", ".join(WHAT_IF))
    args = parser.parse_args()
    for name in filter(None, args.what_if.split(",")):
        WHAT_IF[name]()
    settings = get_settings()
    store = Store.open(settings.database_url)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, store), host="127.0.0.1", port=args.port, log_config=None
        )
    )
    if args.out is None:
        try:
            server.run()  # as `service.app.serve` does
        finally:
            store.close()
        return
    store_threads: dict[int, cProfile.Profile] = {}
    executor = ThreadPoolExecutor(initializer=lambda: _enable(store_threads))

    async def serve() -> None:
        asyncio.get_running_loop().set_default_executor(executor)
        # uvicorn re-raises the SIGTERM it stopped on, to the handler it found: make that one
        # a no-op, or the process dies before the report is written.
        signal.signal(signal.SIGTERM, lambda *_: None)
        loop_thread = cProfile.Profile()
        loop_thread.enable()
        try:
            await server.serve()  # until SIGTERM
        finally:
            loop_thread.disable()
        _disable_each(executor, store_threads)
        report = {"event_loop_thread": summary([loop_thread])}
        loop_thread.dump_stats(args.out.with_suffix(".loop.pstats"))
        if store_threads:
            profiles = list(store_threads.values())
            report["store_threads"] = summary(profiles)
            merged = pstats.Stats(profiles[0])
            for more in profiles[1:]:
                merged.add(more)
            merged.dump_stats(args.out.with_suffix(".store.pstats"))
        args.out.write_text(json.dumps(report, indent=2))

    try:
        asyncio.run(serve())
    finally:
        store.close()


if __name__ == "__main__":
    main()
