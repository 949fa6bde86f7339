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
from redialer.store.store import DialGate, Store

log = structlog.get_logger(__name__)

#: How often a dial in progress tells Temporal the worker is still alive.
HEARTBEAT_EVERY = 5.0
#: A call slot is held this long past the last heartbeat: a dead worker's slot frees itself.
SLOT_LEASE = timedelta(seconds=60)


def _busy(message: str, *, kind: str, after: float) -> ApplicationError:
    """Try again after `after` seconds, give or take a tenth, so that dials told to come back at
    the same moment do not; activity retries cost no history events."""
    return ApplicationError(
        message,
        type=kind,
        next_retry_delay=timedelta(seconds=after * random.uniform(1.0, 1.1)),
        category=ApplicationErrorCategory.BENIGN,  # expected under load: not logged as a failure
    )


@contextlib.asynccontextmanager
async def _heartbeating(
    every: float = HEARTBEAT_EVERY, also: Callable[[], None] | None = None
) -> AsyncIterator[None]:
    """Heartbeat while a call is up; `also` (renewing the call's slot) runs beside, never in the
    way: a store slow to answer must not cost the call its heartbeat, and with it its attempt."""

    async def renew() -> None:
        assert also is not None
        try:
            await asyncio.to_thread(also)
        except Exception as exc:  # the lease has a minute to spare: the next beat tries again
            log.warning("could not renew a call slot", error=str(exc))

    async def beat() -> None:
        renewing: asyncio.Task[None] | None = None
        while True:
            activity.heartbeat()
            if also is not None and (renewing is None or renewing.done()):
                renewing = asyncio.create_task(renew())
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
        gate = await asyncio.to_thread(
            self._store.dial_gate, key, campaign_id=input.campaign_id, phone=phone
        )
        if gate.recorded is not None:
            bound.info("dial already recorded; returning it", outcome=gate.recorded.outcome.value)
            return await self._finish(input, key, gate.recorded)
        skipped = _skip_reason(gate)
        if skipped is not None:
            bound.info("dial skipped", reason=skipped.value)
            return DialResult(skipped=skipped)
        if gate.suppressed is not None:
            now = datetime.now(UTC)
            record = AttemptRecord(
                attempt=input.attempt,
                outcome=Outcome.DND,
                started_at=now,
                ended_at=now,
                call_id=None,
                dialed=False,
            )
            bound.info("number is suppressed; not dialed", reason=gate.suppressed)
        else:
            record = await self._place_call(input, key, bound)
        return await self._finish(input, key, record)

    async def _finish(self, input: DialInput, key: str, record: AttemptRecord) -> DialResult:
        """Record the attempt, with the recipient's final status if this outcome ends it (see
        `DialInput.finals`), in one write; safe to repeat."""
        final = input.finals.get(record.outcome)
        await asyncio.to_thread(
            self._store.finish_attempt,
            key=key,
            campaign_id=input.campaign_id,
            phone=input.recipient.phone,
            retry_group_id=input.retry_group_id,
            record=record,
            variables=input.recipient.variables,
            final=final.value if final is not None else None,
            suppress=_suppression_for(final),
        )
        if final is not None:
            _log_final(input.campaign_id, input.recipient.phone, final, input.attempt)
        return DialResult(attempt=record, final_recorded=final)

    async def _place_call(self, input: DialInput, key: str, bound: Any) -> AttemptRecord:
        """Dial under the caps: a slot (if capped) and an in-progress mark held for as long as
        the call may be up."""
        request = CallRequest(
            idempotency_key=key,
            campaign_id=input.campaign_id,
            phone=input.recipient.phone,
            attempt=input.attempt,
            retry_group_id=input.retry_group_id,
            variables=input.recipient.variables,
            metadata=input.recipient.metadata,
        )
        holds_slot = await self._admit(input, key)
        try:
            await self._note_dialing(input, datetime.now(UTC))
            async with _heartbeating(also=self._renewer(input, key) if holds_slot else None):
                result = await self._dialer.dial(request)
        except PermanentDialError as exc:  # refused: no call was placed
            await self._release(input, key, holds_slot)
            await self._note_dialing(input, None)
            bound.warning("dial refused permanently", error=str(exc))
            raise ApplicationError(str(exc), type="InvalidDialRequest", non_retryable=True) from exc
        # Anything else (this attempt cancelled or timed out, the provider unreachable) may leave
        # the call up at the provider: its slot stays held, and the retried attempt, under the
        # same key, takes it over (a dead worker's lease runs out in a minute). Freeing it here
        # would let one call too many begin while this one still rings. (Its in-progress mark
        # goes with the call record, in one write.)
        await self._release(input, key, holds_slot)
        bound.info("call ended", outcome=result.outcome.value, call_id=result.call_id)
        return AttemptRecord(
            attempt=input.attempt,
            outcome=result.outcome,
            started_at=result.started_at,
            ended_at=result.ended_at,
            call_id=result.call_id,
        )

    async def _release(self, input: DialInput, key: str, holds_slot: bool) -> None:
        """The call has ended, or never began: its slot is free."""
        if holds_slot and input.campaign_id:
            await asyncio.to_thread(self._store.caps.release, input.campaign_id, key)

    async def _note_dialing(self, input: DialInput, since: datetime | None) -> None:
        """Calls in progress, for `redialer watch` (campaign recipients only)."""
        if input.campaign_id is not None:
            await asyncio.to_thread(
                self._store.mark_dialing, input.campaign_id, input.recipient.phone, since
            )

    async def _admit(self, input: DialInput, key: str) -> bool:
        """Through the campaign's call caps (True if it holds a call slot), or back in line:
        Temporal retries the activity when the line says, which adds no history events and holds
        no worker slot while waiting."""
        campaign = input.campaign_id
        if campaign is None or not (input.max_concurrent_calls or input.max_calls_per_second):
            return False
        admission = await asyncio.to_thread(
            self._store.caps.admit,
            campaign,
            key,
            max_calls=input.max_concurrent_calls,
            rate=input.max_calls_per_second,
            lease=SLOT_LEASE,
        )
        if not admission.admitted:
            raise _busy(
                f"{campaign}: waiting for its call caps, {admission.ahead} calls ahead in line",
                kind="CallCapsFull",
                after=admission.retry_after,
            )
        return admission.holds_slot

    def _renewer(self, input: DialInput, key: str) -> Callable[[], None]:
        campaign = input.campaign_id
        assert campaign is not None
        return lambda: self._store.caps.renew(campaign, key, SLOT_LEASE)

    @activity.defn(name="record_final")
    async def record_final(self, input: RecordFinalInput) -> None:
        """A final status the last dial did not record: opt-out, cancel, a refused dial, or a
        scheduled retry time that passed during the call."""
        status = input.status
        reason = "opted_out" if input.opted_out else _suppression_for(status)
        await asyncio.to_thread(
            self._store.record_final,
            campaign_id=input.campaign_id,
            phone=input.phone,
            status=status.value,
            attempts=input.attempts,
            suppress=reason,
        )
        _log_final(input.campaign_id, input.phone, status, input.attempts)


def _log_final(campaign_id: str | None, phone: str, status: FinalStatus, attempts: int) -> None:
    log.info(
        "recipient final",
        campaign=campaign_id,
        recipient=phone,
        status=status.value,
        attempts=attempts,
    )


def _skip_reason(gate: DialGate) -> DialSkip | None:
    """No dial after `stop`, none while paused (the store is the truth across workers), none to
    a number that opted out."""
    if gate.campaign_state == CampaignState.STOPPED:
        return DialSkip.CAMPAIGN_STOPPED
    if gate.campaign_state == CampaignState.PAUSED:
        return DialSkip.CAMPAIGN_PAUSED
    if gate.suppressed == "opted_out":
        return DialSkip.OPTED_OUT
    return None


def _suppression_for(status: FinalStatus | None) -> str | None:
    """Opt-outs and DND join the suppression list: never called again, in any campaign."""
    if status is FinalStatus.OPTED_OUT:
        return "opted_out"
    if status is FinalStatus.DND:
        return "dnd"
    return None
