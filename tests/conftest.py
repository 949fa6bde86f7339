"""Shared fixtures: the real Temporal servers (time-skipping and local dev), a store, workers.

No mocked Temporal. The time-skipping server makes hours and days pass in milliseconds; the local
dev server covers what it lacks (end to end through the CLI, visibility, worker crashes).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.api.workflowservice.v1 import ListOpenWorkflowExecutionsRequest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from redialer.binaries import find_binary
from redialer.dialers.simulated import DialLedger, SimulatedDialer
from redialer.outcomes import Outcome
from redialer.settings import Settings
from redialer.store.store import Store
from starter.server import FAIRNESS
from worker import Workers, build_worker
from workflows import search_attributes as sa

_INDEXED = {
    "Keyword": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    "Int": IndexedValueType.INDEXED_VALUE_TYPE_INT,
}


async def register_search_attributes(client: Client) -> None:
    await client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=client.namespace,
            search_attributes={
                k.name: _INDEXED["Int" if k.name == "AttemptCount" else "Keyword"] for k in sa.ALL
            },
        )
    )


@pytest_asyncio.fixture(scope="session")
async def _time_skipping_server() -> AsyncIterator[list[WorkflowEnvironment]]:
    """The one time-skipping server the tests share (empty until needed; see time_skipping_env)."""
    current: list[WorkflowEnvironment] = []
    yield current
    for env in current:
        await env.shutdown()


@pytest_asyncio.fixture
async def time_skipping_env(
    _time_skipping_server: list[WorkflowEnvironment],
) -> AsyncIterator[WorkflowEnvironment]:
    """The shared time-skipping server, replaced after a test that leaves a workflow open.

    The server skips time only while no workflow task is outstanding. A workflow left open with a
    task no worker will take (a recipient still closing when its campaign completed and the
    test's worker stopped, a test that failed midway) holds that lock for good, and terminating
    the workflow does not release it: every later test would wait in real time. A fresh server
    starts in a fraction of a second."""
    if not _time_skipping_server:
        env = await WorkflowEnvironment.start_time_skipping(
            test_server_existing_path=find_binary("temporal-test-server"),
            data_converter=pydantic_data_converter,
        )
        await register_search_attributes(env.client)
        _time_skipping_server.append(env)
    env = _time_skipping_server[0]
    yield env
    if await _any_open(env.client):
        _time_skipping_server.clear()
        await env.shutdown()


async def _any_open(client: Client) -> bool:
    try:
        response = await client.workflow_service.list_open_workflow_executions(
            ListOpenWorkflowExecutionsRequest(namespace=client.namespace, maximum_page_size=1)
        )
    except RPCError:
        return True  # cannot tell: start afresh
    return bool(response.executions)


@pytest_asyncio.fixture(scope="session")
async def dev_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await start_dev_server()
    yield env
    await env.shutdown()


async def start_dev_server(*extra_args: str) -> WorkflowEnvironment:
    """The local dev server (no UI, search attributes registered); `extra_args` for its CLI,
    e.g. `--dynamic-config-value KEY=VALUE`."""
    return await WorkflowEnvironment.start_local(
        dev_server_existing_path=find_binary("temporal"),
        data_converter=pydantic_data_converter,
        search_attributes=list(sa.ALL),
        ui=False,
        dev_server_log_level="error",
        dev_server_extra_args=[*FAIRNESS, *extra_args],
    )


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'redialer.db'}"


@pytest.fixture
def store(sqlite_url: str) -> Iterator[Store]:
    opened = Store.open(sqlite_url)
    yield opened
    opened.close()


class Harness:
    """A store, a scripted simulated dialer and a worker factory on a fresh task queue."""

    def __init__(self, client: Client, store: Store, script: dict[str, list[Outcome]]):
        self.client = client
        self.store = store
        self.ledger = DialLedger(store)
        self.dialer = SimulatedDialer(ledger=self.ledger, script=script, instant=True)
        self.task_queue = f"tq-{uuid.uuid4()}"
        self.settings = Settings(task_queue=self.task_queue)

    def worker(self) -> Workers:
        return build_worker(
            self.client,
            settings=self.settings,
            store=self.store,
            dialer=self.dialer,
            task_queue=self.task_queue,
        )


@pytest.fixture
def harness_for(store: Store):  # type: ignore[no-untyped-def]
    def make(env: WorkflowEnvironment, script: dict[str, list[Outcome]] | None = None) -> Harness:
        return Harness(env.client, store, script or {})

    return make


_exit_status: list[int] = []


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _exit_status.append(int(exitstatus))


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """After pytest has reported everything, skip interpreter teardown (see process_exit)."""
    if _exit_status and not hasattr(config, "workerinput"):
        from redialer.process_exit import exit_now

        exit_now(_exit_status[-1])
