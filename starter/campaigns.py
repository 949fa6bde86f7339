"""Client helpers: start a campaign, add recipients, control it, read its progress and history.

Everything the CLI does goes through here, so programs can do the same with a Temporal client.
Recipient lists travel in bounded batches: the start input takes the first, signals the rest,
so no payload nears Temporal's 2 MB limit whatever the list's size.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDReusePolicy
from temporalio.service import RPCError, RPCStatusCode

from activities.campaign_ops import recipient_search_attributes
from redialer.campaign import CampaignPolicy, CampaignSpec
from redialer.limits import json_size
from redialer.payloads import (
    AddRecipientsInput,
    CampaignAction,
    CampaignInput,
    CampaignProgress,
    CampaignResult,
    ControlInput,
    ControlResult,
    QueuedRecipient,
    RecipientHistory,
    RecipientInput,
    RecipientResult,
)
from redialer.pseudonyms import Pseudonyms
from redialer.recipients import Recipient
from redialer.zones import recipient_zone_name
from workflows import search_attributes as sa
from workflows.campaign import CampaignWorkflow
from workflows.ids import (
    campaign_task_queue,
    campaign_workflow_id,
    dispatch_priority,
    recipient_workflow_id,
)
from workflows.recipient import RecipientWorkflow

#: A start input or signal closes at this many recipients (about 100 kB of typical ones) or at
#: SIGNAL_BYTES of them: with a recipient at most 1 MiB (the cap on REDIALER_MAX_RECIPIENT_BYTES)
#: and the policy at most 256 KiB, no payload reaches Temporal's 2 MB limit.
SIGNAL_BATCH = 1_000
SIGNAL_BYTES = 256 * 1024


def _batches(recipients: Sequence[Recipient]) -> list[list[QueuedRecipient]]:
    """The validated recipients as the campaign takes them (the same JSON), in bounded batches."""
    return bounded_batches(
        [QueuedRecipient.model_validate(r) for r in recipients],
        count=SIGNAL_BATCH,
        size=SIGNAL_BYTES,
    )


def bounded_batches(
    items: Sequence[QueuedRecipient], *, count: int, size: int
) -> list[list[QueuedRecipient]]:
    """Consecutive batches of at most `count` items and, unless one item alone is larger, at most
    `size` bytes of JSON."""
    batches: list[list[QueuedRecipient]] = []
    batch: list[QueuedRecipient] = []
    used = 0
    for item in items:
        n = json_size(item) + 1
        if batch and (len(batch) == count or used + n > size):
            batches.append(batch)
            batch, used = [], 0
        batch.append(item)
        used += n
    if batch:
        batches.append(batch)
    return batches


async def start_campaign(
    client: Client, spec: CampaignSpec, *, task_queue: str
) -> WorkflowHandle[CampaignWorkflow, CampaignResult]:
    """Start the campaign (refused if its id was ever used) and deliver its recipients.

    `task_queue` is the workers' queue; the campaign itself runs on its campaign queue beside it.
    """
    if not spec.long_living and not spec.recipients:
        raise ValueError("recipients: a fixed campaign needs at least one recipient")
    batches = _batches(spec.recipients)
    handle = await client.start_workflow(
        CampaignWorkflow.run,
        CampaignInput(
            campaign_id=spec.campaign_id,
            policy=spec.policy().model_dump(mode="json"),
            long_living=spec.long_living,
            recipients=batches[0] if batches else [],
            expected_recipients=None if spec.long_living else len(spec.recipients),
        ),
        id=campaign_workflow_id(spec.campaign_id),
        task_queue=campaign_task_queue(task_queue),
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        search_attributes=TypedSearchAttributes(
            [SearchAttributePair(sa.CAMPAIGN_ID, spec.campaign_id)]
        ),
        static_summary=f"campaign {spec.campaign_id}: {len(spec.recipients)} recipients"
        + (" (long-living)" if spec.long_living else ""),
        # Its workflow tasks and activities (starting recipients) are handed out fairly too:
        # a small campaign's first page is not queued behind a large one's thousands.
        priority=dispatch_priority(spec.campaign_id, spec.priority),
    )
    for batch in batches[1:]:
        await handle.signal(CampaignWorkflow.add_recipients, AddRecipientsInput(recipients=batch))
    return handle


def campaign_handle(
    client: Client, campaign_id: str
) -> WorkflowHandle[CampaignWorkflow, CampaignResult]:
    return client.get_workflow_handle_for(CampaignWorkflow.run, campaign_workflow_id(campaign_id))


async def add_recipients(client: Client, campaign_id: str, recipients: Sequence[Recipient]) -> int:
    """Deliver recipients in batches; the campaign stores them once (a known number is skipped)."""
    handle = campaign_handle(client, campaign_id)
    for batch in _batches(recipients):
        await handle.signal(CampaignWorkflow.add_recipients, AddRecipientsInput(recipients=batch))
    return len(recipients)


class ControlRefused(Exception):
    """The campaign did not take a control command; the message says why."""


class CampaignNotFound(ControlRefused):
    """No campaign has this id."""


async def control(
    client: Client, campaign_id: str, action: CampaignAction, *, phone: str | None = None
) -> ControlResult:
    """Pause, resume, stop or opt a number out, acknowledged: returns once the campaign has
    written the change and told its recipients, or raises `ControlRefused` with the reason (a
    pause of a stopped campaign, a campaign that has ended)."""
    handle = campaign_handle(client, campaign_id)
    try:
        return await handle.execute_update(
            CampaignWorkflow.control, ControlInput(action=action, phone=phone)
        )
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        raise ControlRefused(getattr(cause, "message", None) or str(cause)) from exc
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
        ended = await _ended(handle)
        if ended is None:
            raise CampaignNotFound(f"campaign {campaign_id} not found") from exc
        raise ControlRefused(
            f"campaign {campaign_id} has ended ({ended}): {action.value} refused"
        ) from exc


async def _ended(handle: WorkflowHandle[Any, Any]) -> str | None:
    """How the workflow ended ("completed", "terminated", ...), or None if there is none."""
    try:
        status = (await handle.describe()).status
    except RPCError:
        return None
    return status.name.lower() if status is not None else "unknown"


async def pause(client: Client, campaign_id: str) -> ControlResult:
    return await control(client, campaign_id, CampaignAction.PAUSE)


async def resume(client: Client, campaign_id: str) -> ControlResult:
    return await control(client, campaign_id, CampaignAction.RESUME)


async def stop(client: Client, campaign_id: str) -> ControlResult:
    return await control(client, campaign_id, CampaignAction.STOP)


async def opt_out(client: Client, campaign_id: str, phone: str) -> ControlResult:
    return await control(client, campaign_id, CampaignAction.OPT_OUT, phone=phone)


async def progress(client: Client, campaign_id: str) -> CampaignProgress:
    return await campaign_handle(client, campaign_id).query(CampaignWorkflow.progress)


async def history(
    client: Client, campaign_id: str, phone: str, *, pseudonyms: Pseudonyms | None = None
) -> RecipientHistory:
    """By the number: its workflow id is computed as the worker computed it (`pseudonyms`:
    this process's settings unless given)."""
    p = pseudonyms if pseudonyms is not None else Pseudonyms.from_environment()
    handle = client.get_workflow_handle_for(
        RecipientWorkflow.run, recipient_workflow_id(campaign_id, p.id_for(phone))
    )
    return await handle.query(RecipientWorkflow.history)


async def start_single_call(
    client: Client,
    recipient: Recipient,
    policy: CampaignPolicy,
    *,
    task_queue: str,
    workflow_id: str | None = None,
    pseudonyms: Pseudonyms | None = None,
) -> WorkflowHandle[RecipientWorkflow, RecipientResult]:
    """One API-triggered call with retries, outside any campaign. A given `workflow_id` is
    never reused (a retried request with the same id is refused, not dialed again). With
    `pseudonyms` on (this process's settings unless given), the id, RecipientPhone and the
    summary hold the pseudonym or the masked number."""
    p = pseudonyms if pseudonyms is not None else Pseudonyms.from_environment()
    key = p.id_for(recipient.phone)
    return await client.start_workflow(
        RecipientWorkflow.run,
        RecipientInput(
            campaign_id=None,
            phone=recipient.phone,
            zone=recipient_zone_name(
                own=recipient.timezone, phone=recipient.phone, campaign=policy.timezone
            ),
            variables=recipient.variables,
            metadata=recipient.metadata,
            policy=policy.model_dump(mode="json"),
            phone_key=key if p.enabled else None,
            display=p.shown(recipient.phone) if p.enabled else None,
        ),
        id=workflow_id or f"call/{key}/{uuid.uuid4()}",
        task_queue=task_queue,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE
        if workflow_id
        else WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
        search_attributes=recipient_search_attributes(None, key),
        static_summary=f"call {p.shown(recipient.phone)}",
        priority=dispatch_priority(None),
    )
