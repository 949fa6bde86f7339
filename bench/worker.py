"""The benchmark's worker process: redialer's worker plus B0's trivial workflow, same settings."""

from __future__ import annotations

import asyncio
import signal

from temporalio.worker import Worker

from bench.trivial import TrivialWorkflow, noop
from redialer.logs import configure_logging, secrets_of
from redialer.process_exit import exit_now
from redialer.settings import get_settings
from redialer.store.store import Store
from starter.client import connect
from worker import build_dialer, build_worker, use_store_threads


async def main() -> None:
    settings = get_settings()
    configure_logging(level="WARNING", log_pii=settings.log_pii, secrets=secrets_of(settings))
    use_store_threads()
    store = Store.open(settings.database_url)
    client = await connect(settings)
    redialer_worker = build_worker(
        client, settings=settings, store=store, dialer=build_dialer(settings, store)
    )
    trivial = Worker(
        client,
        task_queue=settings.task_queue + "-trivial",
        workflows=[TrivialWorkflow],
        activities=[noop],
        max_concurrent_activities=settings.max_concurrent_activities,
    )
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with redialer_worker, trivial:
        print("ready", flush=True)
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())
    exit_now(0)
