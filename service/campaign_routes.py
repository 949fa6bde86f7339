"""`/v1/campaigns`: start a campaign from a spec, add recipients, control it, read it.

Each route does what the matching CLI command does, through the same starter helpers: the spec
is validated by the same code (every problem at once, the seed products' formats too), a control
command is acknowledged by the campaign or refused with its reason (409), and reads fall back to
the store when no worker answers.
"""

from __future__ import annotations

import asyncio
import csv
import io
import re
from collections.abc import Iterator
from typing import IO, Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import StreamingResponse
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.exceptions import WorkflowAlreadyStartedError

from redialer.limits import Problem
from redialer.loading import InvalidInput, parse_campaign, parse_recipients
from redialer.payloads import CampaignAction, ControlResult, RecipientHistory
from redialer.pseudonyms import Pseudonyms
from redialer.recipients import Recipient, normalise_phone
from redialer.report import AttemptRow, CampaignReport, DeferralCount, RecipientRow, build_report
from redialer.settings import Settings
from redialer.store.store import Store
from service.api_models import (
    AttemptOut,
    CallOut,
    CallReportOut,
    CampaignCreatedOut,
    ControlOut,
    ErrorOut,
    OptOutIn,
    ProgressOut,
    RecipientsAddedOut,
)
from service.openapi import body_schema, csv_or_json_body
from service.requests import (
    ApiError,
    invalid,
    is_json,
    media_type,
    needs_call,
    read_json,
    spool_body,
)
from service.temporal_errors import temporal_errors
from service.temporal_link import TemporalLink
from starter import campaigns, inspection
from starter.exports import DEFAULT_STATUSES, FORMATS, export_chunks, unknown_statuses
from workflows.ids import campaign_workflow_id

#: A campaign id as a spec allows it: anything else cannot name a campaign (404, not a call to
#: Temporal with an id it would refuse).
CAMPAIGN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
#: How long an acknowledged control command waits for the campaign's worker.
CONTROL_TIMEOUT = 30.0
#: At most this many problems are listed for a CSV (the count says how many there were).
MAX_LISTED_PROBLEMS = 1_000
CSV_CHUNK = 1_000

CampaignIdPath = Annotated[str, Path(description="The campaign id.", max_length=200)]

_REFUSALS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "No valid API key."},
    404: {"model": ErrorOut, "description": "No campaign with this id."},
    503: {"model": ErrorOut, "description": "Temporal (or a worker) cannot answer right now."},
}


def _refusals(*statuses: int) -> dict[int | str, dict[str, Any]]:
    extra = {
        409: "The campaign refused it (the reason says why).",
        413: "The body is over 2 MB.",
        415: "Wrong Content-Type.",
        422: "Bad input: every problem, with its path, value and rule.",
    }
    return _REFUSALS | {s: {"model": ErrorOut, "description": extra[s]} for s in statuses}


def _campaign_id(value: str) -> str:
    if not CAMPAIGN_ID.match(value):
        raise ApiError(404, f"no campaign has the id {value!r} (ids are letters, digits, . _ -)")
    return value


def _phone(value: str, *, path: str = "phone") -> str:
    try:
        return normalise_phone(value)
    except ValueError as exc:
        raise invalid([Problem(path, value, str(exc))]) from exc


def campaign_router(settings: Settings, store: Store, link: TemporalLink) -> APIRouter:
    router = APIRouter(prefix="/campaigns", tags=["campaigns"])
    #: A recipient is looked up by its number: its workflow id is the worker's (its pseudonym).
    pseudonyms = Pseudonyms.from_settings(settings)

    @router.post(
        "",
        status_code=201,
        response_model=CampaignCreatedOut,
        responses=_refusals(409, 413, 415, 422),
        summary="Start a campaign",
        description="The body is a campaign spec, exactly as `redialer start` reads it (the seed"
        " products' retry and window settings too). A fixed campaign needs recipients; a"
        " long-living one may start empty and take them from `/recipients`.",
        openapi_extra=body_schema("CampaignSpec"),
    )
    async def create_campaign(request: Request) -> CampaignCreatedOut:
        data = await read_json(request)
        try:
            loaded = await asyncio.to_thread(
                parse_campaign, data, limits=settings.limits, source="body"
            )
        except InvalidInput as exc:
            raise invalid(exc.problems) from exc
        spec = loaded.value
        problems = [p for p in [needs_call(settings, spec.call)] if p is not None]
        if not spec.long_living and not spec.recipients:
            problems.append(
                Problem("recipients", [], "a fixed campaign needs at least one recipient")
            )
        if problems:
            raise invalid(problems)
        client = await link.client()
        try:
            with temporal_errors(not_found="the campaign could not be started"):
                handle = await campaigns.start_campaign(
                    client, spec, task_queue=settings.task_queue
                )
        except WorkflowAlreadyStartedError as exc:
            raise ApiError(
                409,
                f"campaign_id {spec.campaign_id!r} is already used; campaign ids are never"
                " reused (so nobody is called twice by accident)",
            ) from exc
        return CampaignCreatedOut(
            campaign_id=spec.campaign_id,
            state="running",
            workflow_id=handle.id,
            recipients=len(spec.recipients),
            warnings=loaded.warnings,
            translated_from=loaded.translation.format_names if loaded.translation else [],
        )

    @router.get(
        "/{campaign_id}",
        response_model=ProgressOut,
        responses=_refusals(),
        summary="Progress",
        description="The same shape as `redialer progress --json`.",
    )
    async def get_progress(campaign_id: CampaignIdPath) -> ProgressOut:
        campaign_id = _campaign_id(campaign_id)
        client = await link.client()
        with temporal_errors(not_found=f"campaign {campaign_id!r} not found"):
            answer = await inspection.progress(client, campaign_id, database=settings.database_url)
        p = answer.value
        lines = await asyncio.to_thread(
            inspection.line_usage, campaign_id, database=settings.database_url
        )
        return ProgressOut(
            campaign_id=p.campaign_id,
            state=p.state.value,
            total=p.total,
            final=p.final,
            active=p.active,
            by_status=p.by_status,
            source=answer.source.value,
            note=answer.note,
            lines=lines,
        )

    @router.post(
        "/{campaign_id}/recipients",
        status_code=202,
        response_model=RecipientsAddedOut,
        responses=_refusals(409, 413, 415, 422),
        summary="Add recipients",
        description='A JSON list of recipients (or `{"recipients": [...]}`, at most 2 MB), or'
        " CSV with a `phone` column (`text/csv`, any size: streamed). Every row is checked"
        " before any is sent; a number already in the campaign is skipped.",
        openapi_extra=csv_or_json_body(),
    )
    async def add_recipients(campaign_id: CampaignIdPath, request: Request) -> RecipientsAddedOut:
        campaign_id = _campaign_id(campaign_id)
        kind = media_type(request)
        if not is_json(kind) and kind != "text/csv":
            raise ApiError(
                415, f"Content-Type {kind or '(none)'!r}: send application/json or text/csv"
            )
        client = await link.client()
        await _running(client, campaign_id, action="add recipients")
        if kind == "text/csv":
            spool = await spool_body(request)
            try:
                accepted, warnings = await _add_csv(client, campaign_id, spool, settings)
            finally:
                spool.close()
        else:
            data = await read_json(request)
            try:
                loaded = await asyncio.to_thread(
                    parse_recipients, data, source="body", limits=settings.limits
                )
            except InvalidInput as exc:
                raise invalid(exc.problems) from exc
            with temporal_errors(not_found=f"campaign {campaign_id!r} not found"):
                await campaigns.add_recipients(client, campaign_id, loaded.value)
            accepted, warnings = len(loaded.value), loaded.warnings
        return RecipientsAddedOut(campaign_id=campaign_id, accepted=accepted, warnings=warnings)

    async def control(
        campaign_id: str, action: CampaignAction, phone: str | None = None
    ) -> ControlOut:
        campaign_id = _campaign_id(campaign_id)
        client = await link.client()
        try:
            with temporal_errors(not_found=f"campaign {campaign_id!r} not found"):
                result: ControlResult = await asyncio.wait_for(
                    campaigns.control(client, campaign_id, action, phone=phone),
                    timeout=CONTROL_TIMEOUT,
                )
        except campaigns.CampaignNotFound as exc:
            raise ApiError(404, str(exc)) from exc
        except campaigns.ControlRefused as exc:
            raise ApiError(409, str(exc)) from exc
        except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError) as exc:
            raise ApiError(
                503,
                f"no worker took the {action.value} within {CONTROL_TIMEOUT:g} s; it may still"
                " be applied when one does: read the campaign's state before sending it again",
            ) from exc
        return ControlOut(
            campaign_id=campaign_id,
            action=action.value,
            state=result.state.value,
            detail=result.detail,
        )

    for action in (CampaignAction.PAUSE, CampaignAction.RESUME, CampaignAction.STOP):
        _add_control_route(router, action, control)

    @router.post(
        "/{campaign_id}/opt-outs",
        response_model=ControlOut,
        responses=_refusals(409, 413, 415, 422),
        summary="Opt a number out",
        description="The number is never called again, in this campaign or a later one; a call"
        " waiting for it is canceled.",
        openapi_extra=body_schema("OptOutIn"),
    )
    async def opt_out(campaign_id: CampaignIdPath, request: Request) -> ControlOut:
        data = await read_json(request)
        try:
            body = OptOutIn.model_validate(data)
        except ValueError as exc:
            raise invalid([Problem("phone", data, 'give {"phone": "+16505550199"}')]) from exc
        return await control(campaign_id, CampaignAction.OPT_OUT, _phone(body.phone))

    @router.get(
        "/{campaign_id}/recipients/{phone}",
        response_model=CallReportOut,
        responses=_refusals(422),
        summary="One recipient's call report",
        description="Every attempt with its call, the status, and the next attempt's time.",
    )
    async def call_report(
        campaign_id: CampaignIdPath,
        phone: Annotated[str, Path(description="The number, E.164.", max_length=64)],
    ) -> CallReportOut:
        campaign_id = _campaign_id(campaign_id)
        e164 = _phone(phone)
        client = await link.client()
        with temporal_errors(not_found=f"{e164} is not in campaign {campaign_id!r}"):
            answer = await inspection.history(
                client, campaign_id, e164, database=settings.database_url, pseudonyms=pseudonyms
            )
        h = answer.value
        return CallReportOut(
            retry_group_id=h.retry_group_id,
            status=h.status,
            phone=h.phone,
            timezone=h.timezone,
            attempts=attempts_out(h),
            next_attempt_at=h.next_attempt.at if h.next_attempt else None,
            final_reason=h.final_reason,
            source=answer.source.value,
            note=answer.note,
        )

    @router.get(
        "/{campaign_id}/report",
        response_model=CampaignReport,
        responses=_refusals(),
        summary="Campaign report",
        description="The content of `redialer report --json`: connection rate, attempts,"
        " retry conversion, connections per call, answer rate by hour, weekday and hour of the"
        " week, deferrals by rule.",
    )
    async def report(campaign_id: CampaignIdPath) -> CampaignReport:
        campaign_id = _campaign_id(campaign_id)

        def build() -> CampaignReport | None:
            recipients, records = store.report_rows(campaign_id)
            if not recipients and not records:
                return None
            return build_report(
                campaign_id,
                (RecipientRow(*r) for r in recipients),
                (AttemptRow(*a) for a in records),
                (DeferralCount(*d) for d in store.deferral_counts(campaign_id)),
            )

        found = await asyncio.to_thread(build)
        if found is None:
            raise ApiError(404, f"campaign {campaign_id!r}: no recipients or calls in the store")
        return found

    @router.get(
        "/{campaign_id}/export",
        responses=_refusals(422)
        | {
            200: {
                "description": "The rows, streamed.",
                "content": {
                    "text/csv": {"schema": {"type": "string"}},
                    "application/jsonl": {"schema": {"type": "string"}},
                },
            }
        },
        response_class=StreamingResponse,
        summary="Export recipients to follow up",
        description="Recipients with the given final statuses: phone, status, attempts, last"
        " outcome, timezone and variables (CSV: `var.<name>` columns). Streamed page by page.",
    )
    async def export(
        campaign_id: CampaignIdPath,
        status: Annotated[
            str,
            Query(description="Final statuses, comma-separated.", max_length=1000),
        ] = ",".join(DEFAULT_STATUSES),
        format: Annotated[str, Query(description="`csv` or `jsonl`.", max_length=10)] = "csv",
    ) -> StreamingResponse:
        campaign_id = _campaign_id(campaign_id)
        statuses = [s.strip() for s in status.split(",") if s.strip()]
        problems = [
            Problem(f"status[{i}]", s, "not a final status") for i, s in unknown_statuses(statuses)
        ]
        if format not in FORMATS:
            problems.append(Problem("format", format, "use csv or jsonl"))
        if problems:
            raise invalid(problems)
        known = await asyncio.to_thread(store.recipient_counts, campaign_id)
        if not known:
            raise ApiError(404, f"campaign {campaign_id!r}: no recipients in the store")
        media = "text/csv" if format == "csv" else "application/jsonl"
        return StreamingResponse(
            export_chunks(store, campaign_id, statuses, format),
            media_type=media,
            headers={
                "Content-Disposition": f'attachment; filename="{campaign_id}-export.{format}"'
            },
        )

    return router


def _add_control_route(router: APIRouter, action: CampaignAction, control: Any) -> None:
    async def route(campaign_id: CampaignIdPath) -> ControlOut:
        return await control(campaign_id, action)

    route.__name__ = f"{action.value}_campaign"
    router.post(
        f"/{{campaign_id}}/{action.value}",
        response_model=ControlOut,
        responses=_refusals(409),
        summary=action.value.capitalize(),
        description={
            CampaignAction.PAUSE: "No new dials until resumed; waiting retries wait.",
            CampaignAction.RESUME: "Dial again after a pause.",
            CampaignAction.STOP: "No dial after this; waiting recipients end canceled; calls in"
            " progress finish.",
        }[action],
    )(route)


def attempts_out(h: RecipientHistory) -> list[AttemptOut]:
    return [
        AttemptOut(
            attempt=a.attempt,
            outcome=a.outcome.value,
            call=CallOut(
                id=a.call_id,
                status=a.outcome.value if a.dialed else "not_dialed",
                started_at=a.started_at,
                ended_at=a.ended_at,
            ),
            dialed=a.dialed,
            message_left=a.message_left,
        )
        for a in h.attempts
    ]


async def _running(client: Client, campaign_id: str, *, action: str) -> None:
    """404 for an unknown campaign, 409 for one that has ended: a signal to it would be lost."""
    handle = client.get_workflow_handle(campaign_workflow_id(campaign_id))
    with temporal_errors(not_found=f"campaign {campaign_id!r} not found"):
        status = (await handle.describe()).status
    if status is not None and status is not WorkflowExecutionStatus.RUNNING:
        raise ApiError(
            409, f"campaign {campaign_id!r} has ended ({status.name.lower()}): cannot {action}"
        )


def _csv_recipients(spool: IO[bytes]) -> Iterator[tuple[int, dict[str, Any]]]:
    """(row index, recipient document) for each CSV row: a `phone` column, an optional
    `timezone`, every other column a variable (as `redialer add list.csv` reads it)."""
    spool.seek(0)
    text = io.TextIOWrapper(spool, encoding="utf-8-sig", newline="")
    try:
        for i, row in enumerate(csv.DictReader(text)):
            row = {k.strip(): (v or "").strip() for k, v in row.items() if k is not None}
            entry: dict[str, Any] = {"phone": row.pop("phone", "")}
            zone = row.pop("timezone", "")
            if zone:
                entry["timezone"] = zone
            entry["variables"] = row
            yield i, entry
    finally:
        text.detach()


def _chunks(spool: IO[bytes]) -> Iterator[tuple[int, list[dict[str, Any]]]]:
    chunk: list[dict[str, Any]] = []
    first = 0
    for i, entry in _csv_recipients(spool):
        if not chunk:
            first = i
        chunk.append(entry)
        if len(chunk) == CSV_CHUNK:
            yield first, chunk
            chunk = []
    if chunk:
        yield first, chunk


_ROW = re.compile(r"^recipients\[(\d+)\]")


def _renumbered(text: str, first: int) -> str:
    """A chunk's `recipients[i]` as the file's row number."""
    return _ROW.sub(lambda m: f"recipients[{int(m.group(1)) + first}]", text)


def _check_csv(spool: IO[bytes], settings: Settings) -> tuple[int, list[Problem]]:
    """Every row checked (pass one): how many rows, and every problem (the first
    MAX_LISTED_PROBLEMS of them, paths numbered across the whole file)."""
    problems: list[Problem] = []
    rows = 0
    try:
        for first, chunk in _chunks(spool):
            rows += len(chunk)
            try:
                parse_recipients(chunk, limits=settings.limits)
            except InvalidInput as exc:
                for p in exc.problems:
                    problems.append(Problem(_renumbered(p.path, first), p.value, p.rule))
    except (UnicodeDecodeError, csv.Error) as exc:
        problems.append(Problem("", "(body)", f"is not UTF-8 CSV: {exc}"))
    if not rows and not problems:
        problems.append(Problem("", "(body)", "has no rows: give a header with a `phone` column"))
    if len(problems) > MAX_LISTED_PROBLEMS:
        more = len(problems) - MAX_LISTED_PROBLEMS
        problems = problems[:MAX_LISTED_PROBLEMS]
        problems.append(Problem("", f"{more} more", "problems not listed"))
    return rows, problems


async def _add_csv(
    client: Client, campaign_id: str, spool: IO[bytes], settings: Settings
) -> tuple[int, list[str]]:
    """Check every row, then send (pass two): nothing is sent from a file with a bad row."""
    rows, problems = await asyncio.to_thread(_check_csv, spool, settings)
    if problems:
        raise invalid(problems, f"{len(problems)} problem(s) in the CSV; nothing was added")
    accepted, warnings = 0, list[str]()
    chunks = _chunks(spool)
    while True:
        found = await asyncio.to_thread(next, chunks, None)
        if found is None:
            break
        first, chunk = found
        loaded = await asyncio.to_thread(parse_recipients, chunk, limits=settings.limits)
        warnings.extend(_renumbered(w, first) for w in loaded.warnings)
        recipients: list[Recipient] = loaded.value
        with temporal_errors(not_found=f"campaign {campaign_id!r} not found"):
            await campaigns.add_recipients(client, campaign_id, recipients)
        accepted += len(recipients)
    return accepted, warnings[:MAX_LISTED_PROBLEMS]
