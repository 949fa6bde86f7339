"""Progress and history whether or not a worker runs: the live query, else the store.

A query is answered by a worker, so with none polling (after `redialer demo`, or while the workers
are down) it fails. The store holds the same facts (every attempt, every final status, the
campaign's counts), so it answers the same shapes, and the answer says where it came from. A
closed workflow is read from the store and its result without a query: nothing about it can
change, and a query would have a worker replay its whole history. Only when the store has nothing
on it (a CLI without the workers' store URL) does a worker answer for it, as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, Generic, TypeVar

from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowQueryFailedError,
)
from temporalio.service import RPCError, RPCStatusCode

from redialer.payloads import (
    CampaignProgress,
    CampaignResult,
    CampaignState,
    RecipientHistory,
    RecipientResult,
)
from redialer.pseudonyms import Pseudonyms
from redialer.settings import get_settings
from redialer.store.inspection import RecipientStanding, recipient_standing
from redialer.store.store import Store
from redialer.zones import recipient_zone_name
from starter.campaigns import campaign_handle
from workflows.campaign import CampaignWorkflow
from workflows.ids import recipient_workflow_id
from workflows.recipient import RecipientWorkflow


def query_timeout() -> timedelta:
    """How long a live query may take before the store answers instead
    (REDIALER_QUERY_TIMEOUT): a worker answers in milliseconds; a query nobody polls for waits
    until this deadline."""
    return timedelta(seconds=get_settings().query_timeout)


T = TypeVar("T")
R = TypeVar("R")


class Source(StrEnum):
    LIVE = "live"
    STORE = "store"


@dataclass(frozen=True)
class Answer(Generic[T]):
    """What a query (or the store in its place) said, and where it came from."""

    value: T
    source: Source = Source.LIVE
    #: Why the store answered (the workflow is closed, no worker polls...).
    note: str | None = None

    def source_line(self) -> str | None:
        """The line a person reads under the answer; None for a live answer."""
        return f"(from the store: {self.note})" if self.source is Source.STORE else None


class NotInStore(LookupError):
    """No worker answered and the store knows nothing of it either (another store?)."""


@dataclass(frozen=True)
class _Run(Generic[R]):
    """What the store's answer needs to know of the workflow it stands in for."""

    closed: WorkflowExecutionStatus | None  # None while it runs
    result: R | None = None  # a completed run's result


async def progress(
    client: Client, campaign_id: str, *, database: str | None = None
) -> Answer[CampaignProgress]:
    """The campaign's counts: live, or from the store's campaign tables."""
    handle = campaign_handle(client, campaign_id)
    return await _inspect(
        handle,
        lambda: handle.query(CampaignWorkflow.progress, **_deadline()),
        lambda store, run: _progress_from_store(store, campaign_id, run),
        database=database,
        missing=f"campaign {campaign_id!r}",
        caveat="the figures may lag",
    )


async def history(
    client: Client,
    campaign_id: str,
    phone: str,
    *,
    database: str | None = None,
    pseudonyms: Pseudonyms | None = None,
) -> Answer[RecipientHistory]:
    """One recipient's attempts and status: live, or from its call records in the store (with
    no next attempt: only the workflow knows when that is). Found by the number: its workflow id
    is computed as the worker computed it (`pseudonyms`: this process's settings unless given).
    """
    key = (pseudonyms if pseudonyms is not None else Pseudonyms.from_environment()).id_for(phone)
    handle = client.get_workflow_handle_for(
        RecipientWorkflow.run, recipient_workflow_id(campaign_id, key)
    )
    return await _inspect(
        handle,
        lambda: handle.query(RecipientWorkflow.history, **_deadline()),
        lambda store, run: _history_from_store(store, campaign_id, phone, key, run),
        database=database,
        missing=f"{phone} in campaign {campaign_id!r}",
        caveat="the next attempt is unknown",
    )


async def call_history(
    client: Client, workflow_id: str, *, database: str | None = None
) -> Answer[RecipientHistory]:
    """A single API-triggered call (no campaign), by its workflow id: live, or from its call
    records and the workflow's result."""
    handle = client.get_workflow_handle_for(RecipientWorkflow.run, workflow_id)
    return await _inspect(
        handle,
        lambda: handle.query(RecipientWorkflow.history, **_deadline()),
        lambda store, run: _call_from_store(store, workflow_id, run),
        database=database,
        missing=f"call {workflow_id!r}",
        caveat="the next attempt is unknown",
    )


# ---- the live query, or why not -----------------------------------------------------------------


def _deadline() -> dict[str, Any]:
    return {"rpc_timeout": query_timeout()}


async def _inspect(
    handle: WorkflowHandle[Any, R],
    query: Callable[[], Awaitable[T]],
    from_store: Callable[[Store, _Run[R]], T | None],
    *,
    database: str | None,
    missing: str,
    caveat: str,
) -> Answer[T]:
    """A closed workflow: the store (a worker's query only if the store has nothing on it). A
    running one: the query (the store if no worker answers). Not found and other refusals raise.
    """
    description = await handle.describe(**_deadline())
    status, queue = description.status, description.task_queue
    if status is not None and status is not WorkflowExecutionStatus.RUNNING:
        result = await _result(handle) if status is WorkflowExecutionStatus.COMPLETED else None
        closed = f"the workflow is {_name(status)}"
        try:
            value = await _from_store(
                database, lambda store: from_store(store, _Run(status, result)), missing=missing
            )
        except NotInStore as not_in_store:
            try:
                return Answer(await query())  # a worker replays a closed run to answer
            except (RPCError, WorkflowQueryFailedError) as exc:
                why = _why_not_live(exc, queue) or f"the live query failed ({exc})"
                raise NotInStore(f"{closed}, {not_in_store}, and {why}") from exc
        return Answer(value, Source.STORE, f"{closed}; no live query")
    try:
        return Answer(await query())
    except (RPCError, WorkflowQueryFailedError) as exc:
        reason = _why_not_live(exc, queue)
        if reason is None:
            raise
    try:
        value = await _from_store(
            database, lambda store: from_store(store, _Run(None)), missing=missing
        )
    except NotInStore as not_in_store:
        raise NotInStore(f"{reason}, and {not_in_store}") from None
    return Answer(value, Source.STORE, f"{reason}; {caveat}")


def _why_not_live(exc: RPCError | WorkflowQueryFailedError, queue: str) -> str | None:
    if isinstance(exc, WorkflowQueryFailedError):  # a worker answered, with an error
        return f"the live query failed ({exc.message})"
    return no_worker(exc, task_queue=queue)


def no_worker(exc: RPCError, *, task_queue: str) -> str | None:
    """Why a query failed for want of a worker, or None if it failed for another reason.

    Temporal answers FAILED_PRECONDITION "no poller seen for task queue recently, worker may be
    down" once nothing has polled the queue for a while; before that (a worker that just stopped,
    a queue never polled) the query waits for one until our deadline, which the client reports
    as CANCELLED "Timeout expired" (DEADLINE_EXCEEDED if the server's deadline came first).
    """
    if exc.status == RPCStatusCode.FAILED_PRECONDITION:
        if "poller" in exc.message:
            return f"no worker is polling task queue {task_queue!r}"
        return f"the live query was refused ({exc.message})"
    if exc.status in (RPCStatusCode.CANCELLED, RPCStatusCode.DEADLINE_EXCEEDED):
        seconds = f"{query_timeout().total_seconds():g}"
        return f"no worker answered on task queue {task_queue!r} within {seconds} s"
    return None


async def _result(handle: WorkflowHandle[Any, R]) -> R | None:
    """A completed run's result, which complements the store (the campaign's final state)."""
    try:
        return await handle.result(follow_runs=False, **_deadline())
    except Exception:  # only a complement: the store answers without it
        return None


def _name(status: WorkflowExecutionStatus) -> str:
    return status.name.lower().replace("_", " ")


# ---- the store's answer -------------------------------------------------------------------------


async def _from_store(
    database: str | None, read: Callable[[Store], T | None], *, missing: str
) -> T:
    """Read the store (without creating it) in a thread; NotInStore when it knows nothing."""
    url = database or get_settings().database_url
    parsed = make_url(url)
    shown = f"the store at {parsed.render_as_string(hide_password=True)}"
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        if not Path(str(parsed.database)).exists():
            raise NotInStore(f"{shown} does not exist (set REDIALER_DATABASE_URL or --database)")

    def go() -> T | None:
        store = Store(url)
        try:
            return read(store)
        finally:
            store.close()

    try:
        value = await asyncio.to_thread(go)
    except SQLAlchemyError as exc:
        raise NotInStore(f"{shown} cannot be read ({exc})") from exc
    if value is None:
        raise NotInStore(
            f"{shown} has no {missing} (is it the workers' store? REDIALER_DATABASE_URL or"
            " --database says which)"
        )
    return value


def _progress_from_store(
    store: Store, campaign_id: str, run: _Run[CampaignResult]
) -> CampaignProgress | None:
    """The counts the campaign itself reads (`recipient_counts`), in the query's shape."""
    counts = store.recipient_counts(campaign_id)
    if not counts:
        return None
    queued, started = counts.pop("queued", 0), counts.pop("started", 0)
    by_status = {k.removeprefix("final:"): n for k, n in counts.items() if k.startswith("final:")}
    final = sum(by_status.values())
    if run.result is not None:
        state = run.result.state
    else:
        recorded = store.campaign_state(campaign_id) or ""  # no row: never paused nor stopped
        known = recorded in {s.value for s in CampaignState}
        state = CampaignState(recorded) if known else CampaignState.RUNNING
    return CampaignProgress(
        campaign_id=campaign_id,
        state=state,
        total=queued + started + final,
        final=final,
        active=started,
        queued=queued,
        by_status=by_status,
    )


def _history_from_store(
    store: Store, campaign_id: str, phone: str, recipient_key: str, run: _Run[RecipientResult]
) -> RecipientHistory | None:
    """Its call records (one retry group: the workflow id, named by `recipient_key`) and its
    final status from the campaign's recipients."""
    retry_group_id = recipient_workflow_id(campaign_id, recipient_key)
    standing = recipient_standing(store, campaign_id, phone)
    attempts = store.attempts_for(retry_group_id)
    if standing is None and not attempts:
        return None
    if run.result is not None:
        status = run.result.status.value
    else:
        status = _status(store, campaign_id, standing, closed=run.closed)
    zone = standing.zone if standing else recipient_zone_name(own=None, phone=phone, campaign="UTC")
    return RecipientHistory(
        campaign_id=campaign_id,
        phone=phone,
        retry_group_id=retry_group_id,
        timezone=zone,
        status=status,
        attempts=attempts,
    )


def _call_from_store(
    store: Store, workflow_id: str, run: _Run[RecipientResult]
) -> RecipientHistory | None:
    """A single call's records; its number comes from them (there is no campaign row)."""
    rows = store.call_records_for(workflow_id)
    if not rows:
        return None
    if run.result is not None:
        status = run.result.status.value
    elif run.closed is not None:
        status = _name(run.closed)
    else:
        status = "scheduled"
    phone = rows[0].phone
    return RecipientHistory(
        campaign_id=None,
        phone=phone,
        retry_group_id=workflow_id,
        timezone=recipient_zone_name(own=None, phone=phone, campaign="UTC"),
        status=status,
        attempts=store.attempts_for(workflow_id),
    )


def _status(
    store: Store,
    campaign_id: str,
    standing: RecipientStanding | None,
    *,
    closed: WorkflowExecutionStatus | None,
) -> str:
    """The status the query would give, as far as the store tells it."""
    if standing is not None and standing.state == "final" and standing.status:
        return standing.status
    if closed is not None:  # ended without a final status (terminated, say): say how
        return _name(closed)
    if standing is not None and standing.dialing_since is not None:
        return "dialing"
    if store.campaign_state(campaign_id) == CampaignState.PAUSED.value:
        return "paused"
    return "scheduled"


def line_usage(campaign_id: str, *, database: str | None = None) -> dict[str, dict[str, Any]]:
    """Lines in use and calls waiting for one: the campaign's, and the account's with its cap
    (REDIALER_MAX_CONCURRENT_CALLS as this process sees it). Empty when the store cannot say."""
    from redialer.store.call_caps import ACCOUNT

    settings = get_settings()
    url = make_url(database or settings.database_url)
    if url.get_backend_name() == "sqlite" and not Path(str(url.database or "")).exists():
        return {}  # no store here: say nothing rather than create one
    try:
        store = Store(url.render_as_string(hide_password=False))
    except SQLAlchemyError:
        return {}
    try:
        mine, account = store.caps.usage(campaign_id), store.caps.usage(ACCOUNT)
    except SQLAlchemyError:
        return {}
    finally:
        store.close()
    return {
        "campaign": {"in_use": mine.in_use, "waiting": mine.waiting},
        "account": {
            "in_use": account.in_use,
            "waiting": account.waiting,
            "cap": settings.max_concurrent_calls,
            "this_campaign": account.by_campaign.get(campaign_id, 0),
        },
    }


async def unreachable(
    kind: str,
    campaign_id: str,
    phone: str | None,
    *,
    database: str | None,
    why: str,
    pseudonyms: Pseudonyms | None = None,
) -> Answer[Any]:
    """Temporal itself cannot be reached (the demo's server has stopped, say): the store's
    answer, saying so."""
    if kind == "progress":
        value: Any = await _from_store(
            database,
            lambda store: _progress_from_store(store, campaign_id, _Run(None)),
            missing=f"campaign {campaign_id!r}",
        )
    else:
        assert phone is not None
        p = pseudonyms if pseudonyms is not None else Pseudonyms.from_environment()
        value = await _from_store(
            database,
            lambda store: _history_from_store(
                store, campaign_id, phone, p.id_for(phone), _Run(None)
            ),
            missing=f"{phone} in campaign {campaign_id!r}",
        )
    return Answer(value, Source.STORE, f"{why}; the figures may lag")
