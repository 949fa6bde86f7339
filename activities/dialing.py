"""Dialing activities: place one call idempotently, and record where a recipient ended.

A dial is keyed by `{campaign_id}:{e164}:{attempt}`. Before calling, the activity looks for a call
record with that key (a retried activity whose first run recorded the call returns it); the
dialer itself refuses to place a second call for a key it has seen (a run that died between
placing the call and recording it). So a retried or restarted activity never calls twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from redialer.dialers.base import CallRequest, Dialer, PermanentDialError, idempotency_key
from redialer.outcomes import FinalStatus, Outcome
from redialer.payloads import (
    AttemptRecord,
    CampaignState,
    DialInput,
    DialResult,
    DialSkip,
    RecordFinalInput,
)
from redialer.store.store import Store

log = structlog.get_logger(__name__)

#: How often a dial in progress tells Temporal the worker is still alive.
HEARTBEAT_EVERY = 5.0
#: A call slot is held this long past the last heartbeat: a dead worker's slot frees itself.
SLOT_LEASE = timedelta(seconds=60)


def _busy(message: str, *, kind: str, after: float) -> ApplicationError:
    """Try again later, spread out; activity retries cost no history events."""
    return ApplicationError(
        message,
        type=kind,
        next_retry_delay=timedelta(seconds=after + random.uniform(0, 1.5)),
        category=ApplicationErrorCategory.BENIGN,  # expected under load: not logged as a failure
    )


@contextlib.asynccontextmanager
async def _heartbeating(
    every: float = HEARTBEAT_EVERY, also: Callable[[], None] | None = None
) -> AsyncIterator[None]:
    async def beat() -> None:
        while True:
            activity.heartbeat()
            if also is not None:
                await asyncio.to_thread(also)
            await asyncio.sleep(every)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class DialActivities:
    """Side effects of one recipient: the dialer and the store are injected, tests pass fakes."""

    def __init__(self, *, store: Store, dialer: Dialer) -> None:
        self._store = store
        self._dialer = dialer

    @activity.defn(name="dial")
    async def dial(self, input: DialInput) -> DialResult:
        phone = input.recipient.phone
        key = idempotency_key(input.campaign_id or input.retry_group_id, phone, input.attempt)
        bound = log.bind(campaign=input.campaign_id, recipient=phone, attempt=input.attempt)
        recorded = await asyncio.to_thread(self._store.get_attempt, key)
        if recorded is not None:
            bound.info("dial already recorded; returning it", outcome=recorded.outcome.value)
            return await self._result(input, recorded)
        if input.campaign_id is not None:
            skipped = await self._campaign_gate(input.campaign_id)
            if skipped is not None:
                bound.info("dial skipped", reason=skipped.value)
                return DialResult(skipped=skipped)
        suppressed = await asyncio.to_thread(self._store.suppression_reason, phone)
        if suppressed == "opted_out":
            bound.info("recipient opted out; not dialed")
            return DialResult(skipped=DialSkip.OPTED_OUT)
        if suppressed is not None:
            now = datetime.now(UTC)
            record = AttemptRecord(
                attempt=input.attempt,
                outcome=Outcome.DND,
                started_at=now,
                ended_at=now,
                call_id=None,
                dialed=False,
            )
            bound.info("number is suppressed; not dialed", reason=suppressed)
        else:
            record = await self._place_call(input, key, bound)
        await asyncio.to_thread(
            self._store.record_attempt,
            key=key,
            campaign_id=input.campaign_id,
            phone=phone,
            retry_group_id=input.retry_group_id,
            record=record,
            variables=input.recipient.variables,
        )
        return await self._result(input, record)

    async def _result(self, input: DialInput, record: AttemptRecord) -> DialResult:
        """The attempt, and the recipient's final status if this outcome ends it (see finals)."""
        final = input.finals.get(record.outcome)
        if final is not None:
            await self._record_final(
                RecordFinalInput(
                    campaign_id=input.campaign_id,
                    phone=input.recipient.phone,
                    retry_group_id=input.retry_group_id,
                    status=final,
                    attempts=input.attempt,
                )
            )
        return DialResult(attempt=record, final_recorded=final)

    async def _place_call(self, input: DialInput, key: str, bound: Any) -> AttemptRecord:
        """Dial under the caps; the slot and the in-progress mark are released come what may."""
        request = CallRequest(
            idempotency_key=key,
            campaign_id=input.campaign_id,
            phone=input.recipient.phone,
            attempt=input.attempt,
            retry_group_id=input.retry_group_id,
            variables=input.recipient.variables,
            metadata=input.recipient.metadata,
        )
        holds_slot = await self._take_slot(input, key)
        await self._note_dialing(input, datetime.now(UTC))
        try:
            async with _heartbeating(also=self._renewer(input, key) if holds_slot else None):
                result = await self._dialer.dial(request)
        except PermanentDialError as exc:
            bound.warning("dial refused permanently", error=str(exc))
            raise ApplicationError(str(exc), type="InvalidDialRequest", non_retryable=True) from exc
        finally:
            if holds_slot and input.campaign_id:
                await asyncio.to_thread(self._store.release_slot, input.campaign_id, key)
            await self._note_dialing(input, None)
        bound.info("call ended", outcome=result.outcome.value, call_id=result.call_id)
        return AttemptRecord(
            attempt=input.attempt,
            outcome=result.outcome,
            started_at=result.started_at,
            ended_at=result.ended_at,
            call_id=result.call_id,
        )

    async def _note_dialing(self, input: DialInput, since: datetime | None) -> None:
        """Calls in progress, for `redialer watch` (campaign recipients only)."""
        if input.campaign_id is not None:
            await asyncio.to_thread(
                self._store.mark_dialing, input.campaign_id, input.recipient.phone, since
            )

    async def _take_slot(self, input: DialInput, key: str) -> bool:
        """Hold one of the campaign's call slots and a dial-rate ticket, or retry later."""
        campaign = input.campaign_id
        if campaign is None:
            return False
        holds = False
        if input.max_concurrent_calls:
            slot = await asyncio.to_thread(
                self._store.acquire_slot,
                campaign,
                key,
                limit=input.max_concurrent_calls,
                lease=SLOT_LEASE,
            )
            if slot is None:
                raise _busy(
                    f"all {input.max_concurrent_calls} call slots of {campaign} are busy",
                    kind="CallSlotsBusy",
                    after=1.0,
                )
            holds = True
        if input.max_calls_per_second:
            window = max(1.0, 1.0 / input.max_calls_per_second)
            wait = await asyncio.to_thread(
                self._store.take_dial_ticket,
                campaign,
                key,
                per_window=max(1, round(input.max_calls_per_second * window)),
                window_seconds=window,
            )
            if wait is not None:
                if holds:
                    await asyncio.to_thread(self._store.release_slot, campaign, key)
                raise _busy(
                    f"{campaign} is at {input.max_calls_per_second} calls/s",
                    kind="DialRateLimited",
                    after=wait,
                )
        return holds

    def _renewer(self, input: DialInput, key: str) -> Callable[[], None]:
        campaign = input.campaign_id
        assert campaign is not None
        return lambda: self._store.renew_slot(campaign, key, SLOT_LEASE)

    async def _campaign_gate(self, campaign_id: str) -> DialSkip | None:
        """No dial after `stop`, none while paused: the store is the truth across workers."""
        state = await asyncio.to_thread(self._store.campaign_state, campaign_id)
        if state == CampaignState.STOPPED:
            return DialSkip.CAMPAIGN_STOPPED
        if state == CampaignState.PAUSED:
            return DialSkip.CAMPAIGN_PAUSED
        return None

    @activity.defn(name="record_final")
    async def record_final(self, input: RecordFinalInput) -> None:
        """A final status the last dial did not record: opt-out, cancel, a refused dial, or a
        scheduled retry time that passed during the call."""
        await self._record_final(input)

    async def _record_final(self, input: RecordFinalInput) -> None:
        """Keep the recipient's final status; opt-outs and DND join the suppression list."""
        if input.status in (FinalStatus.OPTED_OUT, FinalStatus.DND):
            reason = "opted_out" if input.status is FinalStatus.OPTED_OUT else "dnd"
            await asyncio.to_thread(self._store.suppress, input.phone, reason, input.campaign_id)
        await asyncio.to_thread(
            self._store.set_final,
            campaign_id=input.campaign_id,
            phone=input.phone,
            status=input.status.value,
            attempts=input.attempts,
        )
        log.info(
            "recipient final",
            campaign=input.campaign_id,
            recipient=input.phone,
            status=input.status.value,
            attempts=input.attempts,
        )
