"""Dialing activities: place one call exactly once, decide what comes next, record the end.

A dial is keyed by `{campaign_id}:{e164}:{attempt}`. Before calling, the activity looks for a call
record with that key (a retried activity whose first run recorded the call returns it). Before
asking the dialer, it writes its intent to redialer's own ledger (`DialIntents`): a run that finds
the intent already there is a retry of one that may have placed the call and died, so it asks the
dialer to adopt that call and places one only if there is none. So a retried or restarted
activity never calls twice, even through a provider that takes no idempotency key.

The activity is also where time is read: it places the call only if now is an allowed time
(pause windows, calling hours, the daily cap), and after the call runs the pure schedule on its
own clock. The workflow gets both decisions in the activity's result, recorded in its history.
Right before the call it claims a place in the number's window (REDIALER_MAX_CALLS_PER_NUMBER,
across every campaign and worker: redialer/store/number_calls.py); a dial the window refuses is
deferred, not dropped. Every deferral is kept with the attempt it moved (its record, for
`history`) and in the store (`redialer report`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from activities.answer_rates_cache import AnswerRatesCache
from activities.line_waiting import LineWaiting
from redialer.allowed_time import Deferral, DeferralReason, NoAllowedTime, next_allowed
from redialer.answer_rates import AnswerRates
from redialer.campaign import CampaignPolicy
from redialer.compliance import zone_is_own
from redialer.dialers.base import (
    CallRequest,
    CallResult,
    Dialer,
    PermanentDialError,
    idempotency_key,
)
from redialer.frequency_caps import FrequencyCap
from redialer.line_caps import AccountCaps
from redialer.outcomes import FinalStatus, Outcome
from redialer.payloads import (
    AttemptRecord,
    CampaignState,
    DialInput,
    DialResult,
    DialSkip,
    NextAttempt,
    RecordFinalInput,
)
from redialer.schedule import Final, next_step
from redialer.store.call_caps import Admission
from redialer.store.dial_intents import DialIntents
from redialer.store.store import DialGate, Store
from redialer.strategies import Smart
from redialer.zones import load_zone

T = TypeVar("T")

log = structlog.get_logger(__name__)

#: How often a dial in progress tells Temporal the worker is still alive.
HEARTBEAT_EVERY = 5.0
#: A call slot is held this long past the last heartbeat: a dead worker's slot frees itself.
SLOT_LEASE = timedelta(seconds=60)
#: How soon a dial whose calls-per-second slot lapsed asks for one again.
SOONEST_RETRY = 0.1
#: A dial this close to its allowed time waits for it here instead of going back to the workflow.
SHORT_WAIT = timedelta(seconds=2)


class ActivityClock:
    """Temporal's time for this activity run: the server's start time of the run, plus the time
    since (so time-skipping tests, the workflow's timers and the call records share one clock)."""

    def __init__(self) -> None:
        self._base = (
            activity.info().started_time.astimezone(UTC)
            if activity.in_activity()
            else datetime.now(UTC)
        )
        self._t0 = time.monotonic()

    def __call__(self) -> datetime:
        return self._base + timedelta(seconds=time.monotonic() - self._t0)


@lru_cache(maxsize=256)
def _parse_policy(policy_json: str) -> CampaignPolicy:
    return CampaignPolicy.model_validate_json(policy_json)


def _checked(input: DialInput, bound: Any) -> tuple[CampaignPolicy, ZoneInfo]:
    """The policy and zone, or a refusal that ends the recipient `failed`: an input that no
    retry can fix (a client other than redialer's own started it with a bad policy or zone)
    must not retry the dial forever."""
    try:
        return parse_policy(input.policy), load_zone(input.zone)
    except ValueError as exc:  # pydantic's ValidationError and unknown zones included
        bound.error("dial input refused", error=str(exc)[:500])
        raise ApplicationError(
            f"the recipient's policy or zone is invalid: {str(exc)[:500]}",
            type="InvalidDialRequest",
            non_retryable=True,
        ) from exc


def parse_policy(policy: dict[str, Any]) -> CampaignPolicy:
    """The policy the edge validated, parsed once per distinct policy (not once per dial)."""
    return _parse_policy(json.dumps(policy, sort_keys=True))


async def finish_despite_cancel(work: Awaitable[T], *, what: str) -> T:
    """Await `work` to its end even if the activity is cancelled meanwhile (a `cancel` or
    `opt_out` reaching the recipient while its call is up): a call in progress finishes and is
    recorded. A worker shutting down still interrupts it (the retried dial adopts the call)."""
    task = asyncio.ensure_future(work)
    while True:
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            details = activity.cancellation_details() if activity.in_activity() else None
            if details is None or details.worker_shutdown or details.timed_out:
                task.cancel()
                raise
            log.info("cancel asked while a call is up: the call finishes first", call=what)


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

    def __init__(
        self,
        *,
        store: Store,
        dialer: Dialer,
        account: AccountCaps | None = None,
        line_waiters: int = 0,
        max_calls_per_number: FrequencyCap | None = None,
        rates_cache_seconds: float = 600.0,
    ) -> None:
        self._store = store
        self._dialer = dialer
        self._account = account if account else None
        self._number_cap = max_calls_per_number
        self._line_waiting = LineWaiting(line_waiters)
        self._intents = DialIntents(store)
        self._rates = AnswerRatesCache(store, keep_for=rates_cache_seconds)

    @activity.defn(name="dial")
    async def dial(self, input: DialInput) -> DialResult:
        clock = ActivityClock()
        phone = input.phone
        key = idempotency_key(input.campaign_id or input.retry_group_id, phone, input.attempt)
        bound = log.bind(campaign=input.campaign_id, recipient=phone, attempt=input.attempt)
        policy, zone = _checked(input, bound)
        gate = await asyncio.to_thread(
            self._store.dial_gate, key, campaign_id=input.campaign_id, phone=phone
        )
        if gate.recorded is not None:
            bound.info("dial already recorded; returning it", outcome=gate.recorded.outcome.value)
            recorded = gate.recorded.model_copy(
                update={"deferred": list(input.deferred), **_chosen(input)}
            )
            return await self._finish(input, key, recorded, policy, zone, clock)
        skipped = _skip_reason(gate)
        if skipped is not None:
            bound.info("dial skipped", reason=skipped.value)
            return DialResult(skipped=skipped)
        not_yet, waited = await self._wait_for_allowed_time(input, policy, zone, clock)
        if not_yet is not None:
            bound.info("not an allowed time; deferred", until=not_yet.at.isoformat())
            return DialResult(skipped=DialSkip.NOT_YET, next=not_yet)
        deferred = [*input.deferred, *waited]
        if waited and input.campaign_id is not None:  # moved here, by a moment: evidence too
            await asyncio.to_thread(
                self._store.record_deferrals, input.campaign_id, phone, input.attempt, waited
            )
        if gate.suppressed is not None:  # no call: no place in the number's window either
            now = clock()
            record = AttemptRecord(
                attempt=input.attempt,
                outcome=Outcome.DND,
                started_at=now,
                ended_at=now,
                call_id=None,
                dialed=False,
                deferred=deferred,
                **_chosen(input),
            )
            bound.info("number is suppressed; not dialed", reason=gate.suppressed)
        else:
            placed = await self._place_call(input, key, bound, policy, zone, clock, deferred)
            if isinstance(placed, NextAttempt):
                bound.info(
                    "the number's calls fill its window; deferred", until=placed.at.isoformat()
                )
                return DialResult(skipped=DialSkip.NOT_YET, next=placed)
            record = placed
        return await self._finish(input, key, record, policy, zone, clock)

    def _allowed_from(
        self, t: datetime, input: DialInput, policy: CampaignPolicy, zone: ZoneInfo
    ) -> tuple[datetime, list[Deferral]]:
        """The first allowed instant at or after `t` (windows, calling hours, the daily cap,
        the number's laws), with the moves that led there."""
        try:
            return next_allowed(
                t,
                policy=policy,
                zone=zone,
                attempts=input.attempts,
                phone=input.phone,  # compliance rules cover numbers, and read its candidate zones
                own_zone=zone_is_own(input.phone, input.zone, policy.timezone),
            )
        except NoAllowedTime as exc:  # the campaign's hours and a rule never overlap here
            raise ApplicationError(
                f"no time is allowed to call this number: {exc}",
                type="InvalidDialRequest",
                non_retryable=True,
            ) from exc

    async def _wait_for_allowed_time(
        self, input: DialInput, policy: CampaignPolicy, zone: ZoneInfo, clock: ActivityClock
    ) -> tuple[NextAttempt | None, list[Deferral]]:
        """(None, the moves waited out here) if a call may be placed now (waiting here for a
        moment if it nearly may), else this attempt's next allowed time: no call at a forbidden
        hour, whenever the dial runs (a timer that fired late, a retry after a crash, a wait for
        a line)."""
        now = clock()
        at, deferred = self._allowed_from(now, input, policy, zone)
        if at <= now:
            return None, []
        if at - now <= SHORT_WAIT:
            await asyncio.sleep((at - now).total_seconds())
            return None, deferred
        return await self._defer(input, at, now, deferred, before=input.deferred), []

    async def _defer(
        self,
        input: DialInput,
        at: datetime,
        now: datetime,
        deferred: list[Deferral],
        *,
        before: list[Deferral],
    ) -> NextAttempt:
        """This attempt later, at `at`: its moves `before` and these new ones go with it (the
        new ones to the store too, once per rule, for `redialer report`)."""
        if input.campaign_id is not None:
            await asyncio.to_thread(
                functools.partial(
                    self._store.note_next_attempt,
                    input.campaign_id,
                    input.phone,
                    at,
                    attempt=input.attempt,
                    deferred=deferred,
                )
            )
        return NextAttempt(
            attempt=input.attempt,
            at=at,
            due=now,
            deferred=[*before, *deferred],
            expected_answer_rate=input.expected_answer_rate,  # still the hour it was chosen for
            chosen_because=input.chosen_because,
        )

    async def _finish(
        self,
        input: DialInput,
        key: str,
        record: AttemptRecord,
        policy: CampaignPolicy,
        zone: ZoneInfo,
        clock: ActivityClock,
    ) -> DialResult:
        """Decide what comes after this attempt, and record both in one write; safe to repeat.

        Jitter draws from a generator seeded by the key, so a repeated run decides alike."""
        decision = next_step(
            policy,
            zone=zone,
            attempts=[*input.attempts, record],
            now=max(clock(), record.ended_at),
            rng=random.Random(key),
            phone=input.phone,  # the next time keeps the number's compliance rules too
            own_zone=zone_is_own(input.phone, input.zone, policy.timezone),
            answer_rates=await self._answer_rates(policy, clock()),
        )
        final = decision if isinstance(decision, Final) else None
        upcoming = (
            None
            if isinstance(decision, Final)
            else NextAttempt(
                attempt=decision.attempt,
                at=decision.at,
                due=decision.due,
                deferred=decision.deferred,
                expected_answer_rate=decision.expected_answer_rate,
                chosen_because=decision.why,
            )
        )
        await asyncio.to_thread(
            self._store.finish_attempt,
            key=key,
            campaign_id=input.campaign_id,
            phone=input.phone,
            retry_group_id=input.retry_group_id,
            record=record,
            variables=input.variables,
            final=final.status.value if final is not None else None,
            suppress=_suppression_for(final.status if final is not None else None),
            next_attempt_at=upcoming.at if upcoming is not None else None,
            next_attempt=upcoming.attempt if upcoming is not None else None,
            deferred=upcoming.deferred if upcoming is not None else (),
        )
        if final is not None:
            _log_final(input.campaign_id, input.phone, final.status, input.attempt)
        return DialResult(
            attempt=record,
            next=upcoming,
            final=final.status if final is not None else None,
            final_reason=final.reason if final is not None else None,
        )

    async def _answer_rates(self, policy: CampaignPolicy, now: datetime) -> AnswerRates | None:
        """The answer-rate table a `smart` retry is timed by (None for other strategies): read
        from the call records at most once per cache period per worker and campaign list."""
        strategy = policy.retry.strategy
        if not isinstance(strategy, Smart):
            return None
        async with _heartbeating():  # a cold read of many records may outlast a heartbeat
            return await self._rates.get(strategy.learn_from, now)

    async def _place_call(
        self,
        input: DialInput,
        key: str,
        bound: Any,
        policy: CampaignPolicy,
        zone: ZoneInfo,
        clock: ActivityClock,
        deferred: list[Deferral],
    ) -> AttemptRecord | NextAttempt:
        """Dial under the caps: a slot (if capped) and an in-progress mark held for as long as
        the call may be up, and a place in the number's window; or, when the window is full,
        this attempt later (its line given back)."""
        request = CallRequest(
            idempotency_key=key,
            campaign_id=input.campaign_id,
            phone=input.phone,
            attempt=input.attempt,
            retry_group_id=input.retry_group_id,
            variables=input.variables,
            metadata=input.metadata,
            call=policy.call,
            zone=input.zone,  # the recipient's resolved zone: a simulator answers by its hour
        )
        holds_slot = await self._admit(input, key, policy)
        try:
            later = await self._claim_number(input, key, policy, zone, clock, deferred)
        except BaseException:
            await self._release(input, key, holds_slot)
            raise
        if later is not None:
            await self._release(input, key, holds_slot)  # the line goes to a call that may go
            return later
        try:
            await self._note_dialing(input, datetime.now(UTC))
            async with _heartbeating(also=self._renewer(input, key) if holds_slot else None):
                result = await finish_despite_cancel(self._call_once(request, clock), what=key)
        except PermanentDialError as exc:  # refused: no call was placed
            await self._release(input, key, holds_slot)
            if self._number_cap is not None:
                await asyncio.to_thread(self._store.number_calls.release, key)
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
            dialed=result.call_id is not None,
            message_left=result.message_left,
            deferred=deferred,
            **_chosen(input),
        )

    async def _claim_number(
        self,
        input: DialInput,
        key: str,
        policy: CampaignPolicy,
        zone: ZoneInfo,
        clock: ActivityClock,
        deferred: list[Deferral],
    ) -> NextAttempt | None:
        """A place in the number's window (None: call now), else this attempt when the window
        allows one, moved on to an allowed time from there (hours, windows and laws still hold).
        A retried dial finds its own claim: it never counts twice."""
        cap = self._number_cap
        if cap is None:
            return None
        now = clock()
        claim = await asyncio.to_thread(self._store.number_calls.claim, input.phone, key, cap, now)
        if claim.granted:
            return None
        assert claim.until is not None, "a refused claim says when the window allows a call"
        capped = Deferral(
            reason=DeferralReason.FREQUENCY_CAP,
            rule=cap.label(),
            moved_from=now,
            moved_to=claim.until,
        )
        at, moved = self._allowed_from(claim.until, input, policy, zone)
        return await self._defer(input, at, now, [capped, *moved], before=deferred)

    async def _call_once(self, request: CallRequest, clock: ActivityClock) -> CallResult:
        """One call for the key: adopt the call a previous run of this dial placed, if the dialer
        has it; place one only if not."""
        key = request.idempotency_key
        intent = await asyncio.to_thread(
            self._intents.begin, key, phone=request.phone, attempt=request.attempt
        )
        if not intent.first:
            adopted = await self._dialer.adopt(request, since=intent.created_at)
            if adopted is not None:
                log.info("adopted the call a previous run placed", key=key, call=adopted.call_id)
                await asyncio.to_thread(self._intents.adopted, key, adopted.call_id)
                await self._call_starts(key, at=intent.created_at)  # counted when it began
                return adopted
            await asyncio.to_thread(self._intents.requested, key)  # the first run's is counted
        await self._call_starts(key)
        if self._number_cap is not None:  # the number's window counts the call from its request
            await asyncio.to_thread(self._store.number_calls.calling, key, clock())
        result = await self._dialer.dial(request)
        if result.call_id is not None:
            await asyncio.to_thread(self._intents.placed, key, result.call_id)
        return result

    async def _call_starts(self, key: str, at: datetime | None = None) -> None:
        """Under the account's calls-per-second cap, the slot reserved at admission counts from
        the request itself (right before it), where the provider counts."""
        rate = self._account.rate if self._account else None
        if not rate:
            return
        if not await asyncio.to_thread(self._store.caps.call_starting, key, rate, at):
            raise _busy(
                "the call's calls-per-second slot lapsed before the request",
                kind="CallCapsFull",
                after=SOONEST_RETRY,
            )

    async def _release(self, input: DialInput, key: str, holds_slot: bool) -> None:
        """The call has ended, or never began: its slots are free."""
        if holds_slot:
            await asyncio.to_thread(self._store.caps.release, input.campaign_id, key)
            self._line_waiting.line_freed()

    async def _note_dialing(self, input: DialInput, since: datetime | None) -> None:
        """Calls in progress, for `redialer watch` (campaign recipients only)."""
        if input.campaign_id is not None:
            await asyncio.to_thread(self._store.mark_dialing, input.campaign_id, input.phone, since)

    async def _admit(self, input: DialInput, key: str, policy: CampaignPolicy) -> bool:
        """Through the campaign's call caps and the account's (True if it holds a line), or
        back in line: Temporal retries the activity when the line says, which adds no history
        events and holds no worker slot while waiting. Near the front it waits here instead
        (activities/line_waiting.py), so a freed line is taken at once."""
        campaign = input.campaign_id
        capped = campaign is not None and bool(
            policy.max_concurrent_calls or policy.max_calls_per_second
        )
        if not capped and not self._account:
            return False

        async def ask() -> Admission:
            return await asyncio.to_thread(
                self._store.caps.admit,
                campaign,
                key,
                max_calls=policy.max_concurrent_calls if capped else None,
                rate=policy.max_calls_per_second if capped else None,
                lease=SLOT_LEASE,
                account=self._account,
                priority=policy.priority,
            )

        async def may_be_free() -> bool:
            return await asyncio.to_thread(
                self._store.caps.line_may_be_free,
                campaign,
                max_calls=policy.max_concurrent_calls if capped else None,
                account=self._account,
            )

        first = await ask()
        admission = await self._line_waiting.wait_for_turn(ask, first, may_be_free, campaign)
        if not admission.admitted:
            raise _busy(
                f"{campaign or 'single call'}: waiting for a line, {admission.ahead} calls"
                " ahead in line",
                kind="CallCapsFull",
                after=admission.retry_after,
            )
        if not first.admitted and await self._changed_while_waiting(input, key):
            # Stopped, paused or opted out while it waited here: give the line back, and let
            # the retried dial read the store again from the start (it skips, or ends DND).
            await self._release(input, key, admission.holds_slot)
            raise _busy(
                "changed while waiting for a line", kind="CallCapsFull", after=SOONEST_RETRY
            )
        return admission.holds_slot

    async def _changed_while_waiting(self, input: DialInput, key: str) -> bool:
        gate = await asyncio.to_thread(
            self._store.dial_gate, key, campaign_id=input.campaign_id, phone=input.phone
        )
        return bool(_skip_reason(gate) is not None or gate.suppressed is not None or gate.recorded)

    def _renewer(self, input: DialInput, key: str) -> Callable[[], None]:
        return lambda: self._store.caps.renew(input.campaign_id, key, SLOT_LEASE)

    @activity.defn(name="record_final")
    async def record_final(self, input: RecordFinalInput) -> None:
        """A final status no dial recorded: an opt-out or cancel between calls, a refused dial."""
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


def _chosen(input: DialInput) -> dict[str, Any]:
    """A `smart` retry's expected answer rate and reason, for the attempt's record."""
    return {
        "expected_answer_rate": input.expected_answer_rate,
        "chosen_because": input.chosen_because,
    }


def _suppression_for(status: FinalStatus | None) -> str | None:
    """Opt-outs and DND join the suppression list: never called again, in any campaign."""
    if status is FinalStatus.OPTED_OUT:
        return "opted_out"
    if status is FinalStatus.DND:
        return "dnd"
    return None
