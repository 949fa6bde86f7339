"""`/v1/calls`: one API-triggered call with retries, outside any campaign (DialNexa's `POST
/calls`), and its summary status with every attempt.

A client that retries its POST (a timeout, a dropped connection) sends the same
`Idempotency-Key`: the call id is derived from it, so Temporal refuses the second start and the
answer is the first call, never a second one.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Path, Request, Response
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.exceptions import WorkflowAlreadyStartedError

from redialer.loading import InvalidInput
from redialer.outcomes import FinalStatus
from redialer.pseudonyms import Pseudonyms
from redialer.settings import Settings
from service.api_models import CallCreatedOut, CallSummaryOut, ErrorOut
from service.call_models import parse_single_call
from service.campaign_routes import attempts_out
from service.openapi import body_schema
from service.requests import ApiError, invalid, needs_call, read_json
from service.temporal_errors import temporal_errors
from service.temporal_link import TemporalLink
from starter import campaigns, inspection
from workflows.recipient import RecipientWorkflow

CALL_ID = re.compile(r"^c[a-z2-7]{26}$")
_FINAL = {s.value for s in FinalStatus}
_REFUSALS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorOut, "description": "No valid API key."},
    503: {"model": ErrorOut, "description": "Temporal (or a worker) cannot answer right now."},
}


def new_call_id(idempotency_key: str | None) -> str:
    """26 base32 characters: random, or derived from the client's Idempotency-Key."""
    raw = (
        hashlib.sha256(idempotency_key.encode()).digest()[:16]
        if idempotency_key is not None
        else uuid.uuid4().bytes
    )
    return "c" + base64.b32encode(raw).decode().rstrip("=").lower()


def call_workflow_id(call_id: str) -> str:
    return f"call/{call_id}"


def call_router(settings: Settings, link: TemporalLink) -> APIRouter:
    router = APIRouter(prefix="/calls", tags=["single calls"])
    pseudonyms = Pseudonyms.from_settings(settings)  # RecipientPhone and the summary

    @router.post(
        "",
        status_code=201,
        response_model=CallCreatedOut,
        responses=_REFUSALS
        | {
            200: {
                "model": CallCreatedOut,
                "description": "The Idempotency-Key was seen before:"
                " the call it started (nothing new is dialed).",
            },
            413: {"model": ErrorOut, "description": "The body is over 2 MB."},
            415: {"model": ErrorOut, "description": "Wrong Content-Type."},
            422: {"model": ErrorOut, "description": "Bad input: every problem."},
        },
        summary="Place one call with retries",
        description='DialNexa\'s body: `{"from_number", "to_number", "variables",'
        ' "metadata", "retry": {"max_retries", "wait_minutes", "retry_on_voicemail",'
        ' "retry_on_no_answer", "retry_on_busy"}}`, or redialer\'s own `retry`, windows and'
        " `call` section. Send an `Idempotency-Key` header to make a retried request safe.",
        openapi_extra=body_schema("SingleCallIn"),
    )
    async def create_call(
        request: Request,
        response: Response,
        idempotency_key: Annotated[
            str | None,
            Header(
                description="Any string up to 200 characters; the same key gives the same call.",
                max_length=200,
            ),
        ] = None,
    ) -> CallCreatedOut:
        data = await read_json(request)
        try:
            call = await asyncio.to_thread(parse_single_call, data, limits=settings.limits)
        except InvalidInput as exc:
            raise invalid(exc.problems) from exc
        warnings = []
        missing = needs_call(settings, call.policy.call)
        if missing is not None:
            raise invalid([missing])
        if isinstance(data, dict) and data.get("from_number") and call.policy.call is None:
            warnings.append(
                "from_number is not used without a `call` section (the simulated dialer has no"
                " caller id)"
            )
        call_id = new_call_id(idempotency_key)
        workflow_id = call_workflow_id(call_id)
        client = await link.client()
        try:
            with temporal_errors(not_found="the call could not be started"):
                await campaigns.start_single_call(
                    client,
                    call.recipient,
                    call.policy,
                    task_queue=settings.task_queue,
                    workflow_id=workflow_id,
                    pseudonyms=pseudonyms,
                )
        except WorkflowAlreadyStartedError:
            response.status_code = 200
            warnings.append(
                "this Idempotency-Key was used before: this is the call it started; nothing"
                " new was dialed"
            )
            status = await _status(client, workflow_id)
        else:
            status = "in_progress"
        return CallCreatedOut(
            call_id=call_id, retry_group_id=workflow_id, status=status, warnings=warnings
        )

    @router.get(
        "/{call_id}",
        response_model=CallSummaryOut,
        responses=_REFUSALS | {404: {"model": ErrorOut, "description": "No such call."}},
        summary="A call's summary status and every attempt",
    )
    async def get_call(
        call_id: Annotated[str, Path(description="From `POST /v1/calls`.", max_length=100)],
    ) -> CallSummaryOut:
        if not CALL_ID.match(call_id):
            raise ApiError(404, f"no call has the id {call_id!r}")
        client = await link.client()
        with temporal_errors(not_found=f"no call has the id {call_id!r}"):
            answer = await inspection.call_history(
                client, call_workflow_id(call_id), database=settings.database_url
            )
        h = answer.value
        return CallSummaryOut(
            call_id=call_id,
            retry_group_id=h.retry_group_id,
            status=h.status if h.status in _FINAL else "in_progress",
            detail=h.status,
            phone=h.phone,
            attempts=attempts_out(h),
            next_attempt_at=h.next_attempt.at if h.next_attempt else None,
            final_reason=h.final_reason,
            source=answer.source.value,
        )

    return router


async def _status(client: Client, workflow_id: str) -> str:
    """The summary status of a call already started: `in_progress` or its final status."""
    handle = client.get_workflow_handle_for(RecipientWorkflow.run, workflow_id)
    with temporal_errors(not_found=f"call {workflow_id!r} not found"):
        status = (await handle.describe()).status
        if status is WorkflowExecutionStatus.COMPLETED:
            return (await handle.result()).status.value
    if status is WorkflowExecutionStatus.RUNNING or status is None:
        return "in_progress"
    return status.name.lower()
