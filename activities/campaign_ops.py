"""Campaign activities: keep the recipient queue, start recipients in pages, broadcast control.

The campaign workflow keeps counts, never lists: recipients wait in the store until a page of
them is started as top-level workflows with deterministic ids (the server refuses a duplicate id,
so a retried page never starts anyone twice). Pause, resume and stop are written to the store
first (the dial activity reads it: no dial after stop, whatever signal is still in flight), then
broadcast to every started recipient that is not final.

Where numbers are pseudonymized (redialer/pseudonyms.py), the ids, the RecipientPhone attribute
and the summaries these starts write hold the pseudonym or the masked number, never the number.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from functools import partial

import structlog
from pydantic import ValidationError
from temporalio import activity
from temporalio.client import Client
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from redialer.outcomes import FinalStatus
from redialer.payloads import (
    CampaignControlInput,
    CampaignControlResult,
    CampaignState,
    CountRecipientsInput,
    CountRecipientsResult,
    EnqueueRecipientsInput,
    EnqueueRecipientsResult,
    OptOutInput,
    QueuedRecipient,
    RecipientInput,
    StartRecipientsInput,
    StartRecipientsResult,
)
from redialer.pseudonyms import Pseudonyms
from redialer.recipients import Recipient
from redialer.store.store import QueuedRow, Store
from workflows import search_attributes as sa
from workflows.ids import dispatch_priority, recipient_workflow_id
from workflows.recipient import RecipientWorkflow

log = structlog.get_logger(__name__)

#: Requests in flight at once against the Temporal frontend from one activity: enough to keep a
#: busy server's queue full (a start answered in half a second still makes 300/s), yet bounded.
PARALLEL_REQUESTS = 160
#: Signal sent to each active recipient for a control state.
_SIGNAL_FOR = {
    CampaignState.PAUSED: "pause",
    CampaignState.RUNNING: "resume",
    CampaignState.STOPPED: "cancel",
}


async def _bounded(calls: Iterable[Callable[[], Awaitable[None]]], limit: int) -> None:
    gate = asyncio.Semaphore(limit)

    async def run(call: Callable[[], Awaitable[None]]) -> None:
        async with gate:
            await call()

    await asyncio.gather(*(run(c) for c in calls))


class CampaignActivities:
    def __init__(
        self,
        *,
        store: Store,
        client: Client,
        task_queue: str,
        pseudonyms: Pseudonyms | None = None,
    ) -> None:
        self._store = store
        self._client = client
        self._task_queue = task_queue
        self._pseudonyms = pseudonyms if pseudonyms is not None else Pseudonyms()

    def _workflow_id(self, campaign_id: str, phone: str) -> str:
        return recipient_workflow_id(campaign_id, self._pseudonyms.id_for(phone))

    @activity.defn(name="enqueue_recipients")
    async def enqueue_recipients(self, input: EnqueueRecipientsInput) -> EnqueueRecipientsResult:
        recipients, rejected = await asyncio.to_thread(validated, input.recipients)
        for phone, problem in rejected:
            log.warning(
                "recipient rejected", campaign=input.campaign_id, recipient=phone, error=problem
            )
        accepted, duplicates = await asyncio.to_thread(
            self._store.enqueue_recipients,
            input.campaign_id,
            recipients,
            workflow_id_for=lambda phone: self._workflow_id(input.campaign_id, phone),
            campaign_timezone=input.campaign_timezone,
        )
        log.info(
            "recipients queued",
            campaign=input.campaign_id,
            accepted=accepted,
            duplicates=duplicates,
        )
        return EnqueueRecipientsResult(
            accepted=accepted, duplicates=duplicates, rejected=len(rejected)
        )

    @activity.defn(name="start_recipients")
    async def start_recipients(self, input: StartRecipientsInput) -> StartRecipientsResult:
        page = await asyncio.to_thread(self._store.next_queued, input.campaign_id, input.limit)
        started = already = 0

        async def start(recipient: QueuedRow) -> None:
            nonlocal started, already
            try:
                await self._start_one(input, recipient)
                started += 1
            except WorkflowAlreadyStartedError:
                already += 1  # a retried page: it runs already, do not start it again
            activity.heartbeat(started + already)

        await _bounded([partial(start, r) for r in page], PARALLEL_REQUESTS)
        await asyncio.to_thread(
            self._store.mark_started, input.campaign_id, [r.phone for r in page]
        )
        log.info(
            "recipients started",
            campaign=input.campaign_id,
            started=started,
            already_running=already,
        )
        return StartRecipientsResult(started=started, already_running=already)

    async def _start_one(self, input: StartRecipientsInput, recipient: QueuedRow) -> None:
        p = self._pseudonyms
        await self._client.start_workflow(
            RecipientWorkflow.run,
            RecipientInput(
                campaign_id=input.campaign_id,
                phone=recipient.phone,
                zone=recipient.zone,
                variables=recipient.variables,
                metadata=recipient.metadata,
                policy=input.policy,
                phone_key=p.id_for(recipient.phone) if p.enabled else None,
                display=p.shown(recipient.phone) if p.enabled else None,
            ),
            id=self._workflow_id(input.campaign_id, recipient.phone),
            task_queue=self._task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            search_attributes=recipient_search_attributes(
                input.campaign_id, p.id_for(recipient.phone)
            ),
            static_summary=f"{p.shown(recipient.phone)} in campaign {input.campaign_id}",
            priority=dispatch_priority(input.campaign_id, _weight(input.policy.get("priority"))),
        )

    @activity.defn(name="count_recipients")
    async def count_recipients(self, input: CountRecipientsInput) -> CountRecipientsResult:
        counts = await asyncio.to_thread(self._store.recipient_counts, input.campaign_id)
        moving, next_due = await asyncio.to_thread(self._store.next_wake, input.campaign_id)
        return CountRecipientsResult(
            queued=counts.pop("queued", 0),
            started=counts.pop("started", 0),
            by_status={FinalStatus(k.removeprefix("final:")): n for k, n in counts.items()},
            moving=moving,
            next_due=next_due,
        )

    @activity.defn(name="control_campaign")
    async def control_campaign(self, input: CampaignControlInput) -> CampaignControlResult:
        """Record the state, then tell every started, non-final recipient."""
        await asyncio.to_thread(self._store.set_campaign_state, input.campaign_id, input.state)
        canceled = 0
        if input.state is CampaignState.STOPPED:
            canceled = await asyncio.to_thread(self._store.cancel_queued, input.campaign_id)
        signal = _SIGNAL_FOR.get(input.state)
        signaled = 0
        after = activity.info().heartbeat_details[0] if activity.info().heartbeat_details else None
        while signal is not None:
            ids = await asyncio.to_thread(
                self._store.active_workflow_ids, input.campaign_id, after=after, limit=1000
            )
            if not ids:
                break
            await _bounded([partial(self._signal, wf, signal) for wf in ids], PARALLEL_REQUESTS)
            signaled += len(ids)
            after = ids[-1]
            activity.heartbeat(after)  # a retried broadcast resumes after the last page
        log.info(
            "campaign control",
            campaign=input.campaign_id,
            state=input.state.value,
            signaled=signaled,
            canceled_queued=canceled,
        )
        return CampaignControlResult(signaled=signaled, canceled_queued=canceled)

    @activity.defn(name="opt_out_recipient")
    async def opt_out_recipient(self, input: OptOutInput) -> None:
        """Suppress the number everywhere, then end its recipient workflow if one runs (by the id
        it was started with, which the store keeps: pseudonyms may have been turned on since)."""
        await asyncio.to_thread(self._store.suppress, input.phone, "opted_out", input.campaign_id)
        if input.campaign_id is not None:
            started_as = await asyncio.to_thread(
                self._store.workflow_id_of, input.campaign_id, input.phone
            )
            workflow_id = started_as or self._workflow_id(input.campaign_id, input.phone)
            await self._signal(workflow_id, "opt_out")

    async def _signal(self, workflow_id: str, signal: str) -> None:
        try:
            await self._client.get_workflow_handle(workflow_id).signal(signal)
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:  # already final and closed: nothing to do
                raise


def validated(queued: Iterable[QueuedRecipient]) -> tuple[list[Recipient], list[tuple[str, str]]]:
    """Full validation, off the workflow thread: the valid ones, and (phone, problem) for each
    of the rest."""
    recipients: list[Recipient] = []
    rejected: list[tuple[str, str]] = []
    for q in queued:
        try:
            recipients.append(Recipient.model_validate(q.model_dump()))
        except ValidationError as exc:
            problem = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['input']!r}: {e['msg']}" for e in exc.errors()
            )
            rejected.append((q.phone, problem))
    return recipients, rejected


def _weight(priority: object) -> float:
    """The policy's `priority` (validated at the edge; 1 when absent)."""
    return float(priority) if isinstance(priority, int | float) else 1.0


def recipient_search_attributes(
    campaign_id: str | None, recipient_key: str
) -> TypedSearchAttributes:
    """`recipient_key`: the number, or its pseudonym (`Pseudonyms.id_for`)."""
    pairs: list[SearchAttributePair] = [  # type: ignore[type-arg]
        SearchAttributePair(sa.RECIPIENT_PHONE, recipient_key),
        SearchAttributePair(sa.CALL_STATUS, sa.IN_PROGRESS),
        SearchAttributePair(sa.ATTEMPT_COUNT, 0),
    ]
    if campaign_id is not None:
        pairs.insert(0, SearchAttributePair(sa.CAMPAIGN_ID, campaign_id))
    return TypedSearchAttributes(pairs)
