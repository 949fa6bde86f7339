"""RecipientWorkflow: dial one number until it reaches a final status.

One workflow per recipient (id `campaign/{campaign_id}/recipient/{e164 or its pseudonym}`), also
usable on its own for a single API-triggered call with retries. Each pass of the loop sleeps
durably until the next attempt's time (a timer any signal interrupts) and dials through an
activity.

Replay-safe by construction: no command this workflow emits depends on `workflow.now()`. Every
decision that reads the time (may a call be placed now? when is the next one? is the recipient
final?) is taken by the dial activity and reaches the workflow in its recorded result; the timer
before a dial is always started, even when its time has already come (a zero delay), so a worker
that is handed an activation with a stale or skewed time emits exactly the commands a replay
expects. The input is plain data (the edge validated it), so decoding it never depends on the
versions of phonenumbers or tzdata a worker has.

Any Temporal client may start it (a single call from another language's SDK or the `temporal`
CLI): it sets the search attributes the starter did not (`CampaignId` when it has a campaign,
`RecipientPhone`, and `CallStatus`/`AttemptCount` until its first call), so the same list queries
find it however it was started.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeUpdate
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError

with workflow.unsafe.imports_passed_through():
    from activities.dialing import DialActivities
    from redialer.allowed_time import Deferral
    from redialer.outcomes import FinalStatus
    from redialer.payloads import (
        AttemptRecord,
        DialInput,
        DialResult,
        DialSkip,
        NextAttempt,
        RecipientHistory,
        RecipientInput,
        RecipientResult,
        RecordFinalInput,
    )
    from redialer.schedule import Final
    from workflows import search_attributes as sa

#: A call may ring, talk and wrap up for this long before the dial activity is retried.
DIAL_TIMEOUT = timedelta(hours=1)
#: The dial activity heartbeats while a call is up; silence this long means the worker died.
DIAL_HEARTBEAT = timedelta(seconds=20)
#: Transport failures (database, provider API) are retried here; a dial is idempotent, so a
#: retry never places a second call. Business retries (busy, no answer) are the workflow's loop.
DIAL_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=2),
    non_retryable_error_types=["InvalidDialRequest"],
)
#: While the store says the campaign is paused, look again this often (a missed resume signal
#: must not strand a recipient).
PAUSE_RECHECK = timedelta(minutes=5)
#: The shortest timer: one whose time has come still starts (see the module's docstring).
MIN_TIMER = 0.001
#: The patch under which a recipient started without its search attributes (by a client other
#: than redialer) sets them itself. Runs already in flight before it replay without the upsert.
OWN_SEARCH_ATTRIBUTES = "own-search-attributes"


@workflow.defn
class RecipientWorkflow:
    @workflow.init
    def __init__(self, input: RecipientInput) -> None:
        self._input = input
        self._phone = input.phone
        #: The number as details and summaries show it, and as RecipientPhone holds it: masked
        #: and pseudonymized when the starter says so (redialer/pseudonyms.py), else itself.
        self._shown = input.display or input.phone
        self._phone_key = input.phone_key or input.phone
        self._attempts: list[AttemptRecord] = []
        #: The next attempt and its time, as the last dial decided; None before the first, which
        #: is tried at once (the dial activity defers it if now is not an allowed time).
        self._next: NextAttempt | None = None
        self._final: Final | None = None
        self._final_recorded = False  # the last dial recorded the final status with its call
        self._status = "scheduled"
        self._canceled = False
        self._opted_out = False
        self._paused = False  # by the campaign's signal
        self._paused_in_store = False  # the dial activity found the campaign paused
        self._retry_now = False
        self._wake = False  # any signal interrupts the current sleep

    # ---- the loop -------------------------------------------------------------------------------

    @workflow.run
    async def run(self, input: RecipientInput) -> RecipientResult:
        self._set_own_search_attributes()
        while self._final is None:
            if self._ended_by_signal():
                break
            if self._paused or self._paused_in_store:
                await self._wait_while_paused()
                continue
            if self._next is not None and not self._retry_now:
                if not await self._sleep_until(self._next):
                    continue  # a signal came first: look again
            await self._dial()
        return await self._finish()

    def _set_own_search_attributes(self) -> None:
        """The attributes redialer's starter sets, where this run was started without them.
        Decided by the run's start event alone: deterministic."""
        have = workflow.info().typed_search_attributes
        wanted: list[SearchAttributeUpdate[Any]] = []
        if self._input.campaign_id is not None and have.get(sa.CAMPAIGN_ID) is None:
            wanted.append(sa.CAMPAIGN_ID.value_set(self._input.campaign_id))
        if have.get(sa.RECIPIENT_PHONE) is None:
            wanted.append(sa.RECIPIENT_PHONE.value_set(self._phone_key))
        if have.get(sa.CALL_STATUS) is None:
            wanted.append(sa.CALL_STATUS.value_set(sa.IN_PROGRESS))
        if have.get(sa.ATTEMPT_COUNT) is None:
            wanted.append(sa.ATTEMPT_COUNT.value_set(0))
        if wanted and workflow.patched(OWN_SEARCH_ATTRIBUTES):
            workflow.upsert_search_attributes(wanted)

    def _ended_by_signal(self) -> bool:
        if self._opted_out:
            self._final = Final(status=FinalStatus.OPTED_OUT, reason="the recipient opted out")
        elif self._canceled:
            self._final = Final(status=FinalStatus.CANCELED, reason="canceled before the next call")
        return self._final is not None

    async def _wait_while_paused(self) -> None:
        self._status = "paused"
        workflow.set_current_details(f"**{self._shown}** paused with the campaign")
        timeout = PAUSE_RECHECK if self._paused_in_store and not self._paused else None
        try:
            await workflow.wait_condition(
                lambda: not self._paused or self._canceled or self._opted_out,
                timeout=timeout,
                timeout_summary="recheck campaign pause",
            )
        except TimeoutError:
            pass
        self._paused_in_store = False

    async def _sleep_until(self, upcoming: NextAttempt) -> bool:
        """Sleep until the attempt's time; False if a signal interrupted the sleep. The timer
        starts even when the time has come (see the module's docstring)."""
        self._status = "scheduled"
        why = ", ".join(d.describe() for d in upcoming.deferred)
        why = f" (deferred: {why})" if why else ""
        workflow.set_current_details(
            f"**{self._shown}** attempt {upcoming.attempt} at {upcoming.at.isoformat()}{why}"
        )
        delay = max((upcoming.at - workflow.now()).total_seconds(), MIN_TIMER)
        self._wake = False
        try:
            await workflow.wait_condition(
                lambda: self._wake,
                timeout=delay,
                timeout_summary=f"attempt {upcoming.attempt}{why}",
            )
        except TimeoutError:
            return True
        return False

    async def _dial(self) -> None:
        """One dial activity; a `cancel` or `opt_out` meanwhile cancels it if no call is up yet
        (a dial waiting for a line), while a call in progress finishes and is recorded."""
        attempt = len(self._attempts) + 1
        self._status = "dialing"
        # Details cost no history events. Whether the dial rings or waits for a line only the
        # activity knows (telling the workflow would cost events per wait): its pending entry
        # in the Web UI says "waiting for a line, N calls ahead" while it waits.
        workflow.set_current_details(
            f"**{self._shown}** attempt {attempt}: dialing, or waiting for a line"
            " (the pending dial says which)"
        )
        handle = workflow.start_activity_method(
            DialActivities.dial,
            DialInput(
                campaign_id=self._input.campaign_id,
                retry_group_id=workflow.info().workflow_id,
                phone=self._phone,
                zone=self._input.zone,
                variables=self._input.variables,
                metadata=self._input.metadata,
                policy=self._input.policy,
                attempt=attempt,
                attempts=list(self._attempts),
                deferred=self._deferred(attempt),
                expected_answer_rate=self._chosen(attempt)[0],
                chosen_because=self._chosen(attempt)[1],
            ),
            start_to_close_timeout=DIAL_TIMEOUT,
            heartbeat_timeout=DIAL_HEARTBEAT,
            retry_policy=DIAL_RETRY,
            cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            summary=f"dial {self._shown} attempt {attempt}",
        )
        await workflow.wait_condition(lambda: handle.done() or self._canceled or self._opted_out)
        if not handle.done():
            handle.cancel()
        try:
            result = await handle
        except ActivityError as exc:
            cause = exc.cause
            if isinstance(cause, CancelledError):
                return  # canceled before any call was placed: the loop ends it by its signal
            if not (isinstance(cause, ApplicationError) and cause.non_retryable):
                raise
            self._final = Final(status=FinalStatus.FAILED, reason=f"dial refused: {cause.message}")
            return
        self._took(result)

    def _deferred(self, attempt: int) -> list[Deferral]:
        """What moved this attempt so far (the last dial's decision, a deferred dial's), for its
        record: a query of the history then says why the call came when it did."""
        upcoming = self._next
        return (
            list(upcoming.deferred) if upcoming is not None and upcoming.attempt == attempt else []
        )

    def _chosen(self, attempt: int) -> tuple[float | None, str | None]:
        """A `smart` retry's expected answer rate and reason, as the decision that timed this
        attempt gave them, for its record (None before the first attempt, or for others)."""
        upcoming = self._next
        if upcoming is not None and upcoming.attempt == attempt:
            return upcoming.expected_answer_rate, upcoming.chosen_because
        return None, None

    def _took(self, result: DialResult) -> None:
        self._retry_now = False
        if result.skipped is DialSkip.OPTED_OUT:
            self._opted_out = True
        elif result.skipped is DialSkip.CAMPAIGN_STOPPED:
            self._canceled = True
        elif result.skipped is DialSkip.CAMPAIGN_PAUSED:
            self._paused_in_store = True
        elif result.skipped is DialSkip.NOT_YET:
            self._next = result.next
        elif result.attempt is not None:
            self._attempts.append(result.attempt)
            self._next = result.next
            if result.final is not None:
                self._final = Final(status=result.final, reason=result.final_reason or "")
                self._final_recorded = True  # the count goes with the final status
            else:
                workflow.upsert_search_attributes([sa.ATTEMPT_COUNT.value_set(len(self._attempts))])

    async def _finish(self) -> RecipientResult:
        final = self._final
        if final is None:  # pragma: no cover - the loop only exits with a final status
            raise ApplicationError("recipient loop ended without a final status")
        self._status, self._next = final.status.value, None
        workflow.set_current_details(
            f"**{self._shown}** final: {final.status.value} ({final.reason})"
        )
        attributes: list[SearchAttributeUpdate[Any]] = [
            sa.CALL_STATUS.value_set(final.status.value)
        ]
        if self._final_recorded:
            attributes.append(sa.ATTEMPT_COUNT.value_set(len(self._attempts)))
        # A status the last call recorded stands: a cancel or opt-out during that call does not
        # turn a reached person into `canceled` (an opt-out still suppresses the number).
        opted_out_after = self._opted_out and final.status is not FinalStatus.OPTED_OUT
        if not self._final_recorded or opted_out_after:
            await workflow.execute_local_activity_method(
                DialActivities.record_final,
                RecordFinalInput(
                    campaign_id=self._input.campaign_id,
                    phone=self._phone,
                    retry_group_id=workflow.info().workflow_id,
                    status=final.status,
                    attempts=len(self._attempts),
                    opted_out=opted_out_after,
                ),
                start_to_close_timeout=timedelta(seconds=30),
            )
        workflow.upsert_search_attributes(attributes)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return RecipientResult(phone=self._phone, status=final.status, attempts=len(self._attempts))

    # ---- signals and queries --------------------------------------------------------------------

    @workflow.signal
    def opt_out(self) -> None:
        """Never call again, in this campaign or a later one."""
        self._opted_out = self._wake = True

    @workflow.signal
    def cancel(self) -> None:
        """End without another call; a call in progress finishes and is recorded."""
        self._canceled = self._wake = True

    @workflow.signal
    def retry_now(self) -> None:
        """Skip the remaining delay (windows and calling hours still apply)."""
        self._retry_now = self._wake = True

    @workflow.signal
    def pause(self) -> None:
        self._paused = self._wake = True

    @workflow.signal
    def resume(self) -> None:
        self._paused = self._paused_in_store = False
        self._wake = True

    @workflow.query
    def history(self) -> RecipientHistory:
        return RecipientHistory(
            campaign_id=self._input.campaign_id,
            phone=self._phone,
            retry_group_id=workflow.info().workflow_id,
            timezone=self._input.zone,
            status=self._status,
            final_reason=self._final.reason if self._final else None,
            attempts=list(self._attempts),
            next_attempt=self._next if self._status in ("scheduled", "paused") else None,
        )
