"""RecipientWorkflow: dial one number until it reaches a final status.

One workflow per recipient (id `campaign/{campaign_id}/recipient/{e164}`), also usable on its own
for a single API-triggered call with retries. Each pass of the loop asks the pure schedule what
comes next, sleeps durably until then (a timer any signal interrupts), dials through an activity
and records the attempt. Time and jitter come from `workflow.now()` and `workflow.random()`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeUpdate
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.dialing import DialActivities
    from redialer.allowed_time import next_allowed
    from redialer.outcomes import FinalStatus
    from redialer.payloads import (
        AttemptRecord,
        DialInput,
        DialSkip,
        NextAttempt,
        RecipientFinishedInput,
        RecipientHistory,
        RecipientInput,
        RecipientResult,
        RecordFinalInput,
    )
    from redialer.schedule import DialAt, Final, ObservedAttempt, finals_by_outcome, next_step
    from redialer.zones import load_zone, recipient_zone_name
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
#: Patches (`workflow.patched`): histories recorded before each change replay as they ran.
#: The campaign reads who is final from the store (see CampaignWorkflow); before, each recipient
#: signalled it, which also cost the recipient two events and a whole workflow task.
CAMPAIGN_READS_STORE = "campaign-reads-final-status"
#: A status the last call recorded stands: a cancel or opt-out during that call does not turn a
#: reached person into `canceled` (an opt-out still suppresses the number).
FINAL_CALL_STANDS = "final-call-status-stands"


@workflow.defn
class RecipientWorkflow:
    @workflow.init
    def __init__(self, input: RecipientInput) -> None:
        self._input = input
        self._phone = input.recipient.phone
        self._zone_name = recipient_zone_name(
            own=input.recipient.timezone, phone=self._phone, campaign=input.policy.timezone
        )
        self._attempts: list[AttemptRecord] = []
        #: Attempts on Temporal's clock, which the schedule counts delays from (durable timers and
        #: the delays they measure must agree); the dialer's own times go to the call record.
        self._observed: list[ObservedAttempt] = []
        self._next: NextAttempt | None = None
        self._final: Final | None = None
        self._status = "scheduled"
        self._canceled = False
        self._opted_out = False
        self._paused = False  # by the campaign's signal
        self._paused_in_store = False  # the dial activity found the campaign paused
        self._retry_now = False
        self._wake = False  # any signal interrupts the current sleep
        #: The final status the last dial recorded with its attempt (saves a round trip at the end).
        self._final_recorded: FinalStatus | None = None

    # ---- the loop -------------------------------------------------------------------------------

    @workflow.run
    async def run(self, input: RecipientInput) -> RecipientResult:
        zone = load_zone(self._zone_name)
        while self._final is None:
            if self._ended_by_signal():
                break
            if self._paused or self._paused_in_store:
                await self._wait_while_paused()
                continue
            decision = next_step(
                input.policy,
                zone=zone,
                attempts=self._observed,
                now=workflow.now(),
                rng=workflow.random(),
            )
            if isinstance(decision, Final):
                self._final = decision
                break
            if self._retry_now:
                decision = self._now_instead(decision)
            if not await self._sleep_until(decision):
                continue  # a signal came first: look again
            await self._dial(decision.attempt)
        return await self._finish()

    def _ended_by_signal(self) -> bool:
        if not (self._opted_out or self._canceled):
            return False
        if self._final_recorded is not None and workflow.patched(FINAL_CALL_STANDS):
            return False  # the last call ended the recipient; next_step gives its status
        if self._opted_out:
            self._final = Final(status=FinalStatus.OPTED_OUT, reason="the recipient opted out")
        elif self._canceled:
            self._final = Final(status=FinalStatus.CANCELED, reason="canceled before the next call")
        return self._final is not None

    async def _wait_while_paused(self) -> None:
        self._status, self._next = "paused", None
        workflow.set_current_details(f"**{self._phone}** paused with the campaign")
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

    def _now_instead(self, decision: DialAt) -> DialAt:
        """`retry_now`: skip the remaining delay, but never a pause window or calling hours."""
        now = workflow.now()
        at, deferred = next_allowed(
            now, policy=self._input.policy, zone=load_zone(self._zone_name), attempts=self._observed
        )
        return DialAt(attempt=decision.attempt, at=at, due=now, deferred=deferred)

    async def _sleep_until(self, decision: DialAt) -> bool:
        """Sleep until the dial time; False if a signal interrupted the sleep."""
        self._status = "scheduled"
        self._next = NextAttempt(
            attempt=decision.attempt, at=decision.at, due=decision.due, deferred=decision.deferred
        )
        why = f" (deferred: {decision.why_deferred})" if decision.deferred else ""
        workflow.set_current_details(
            f"**{self._phone}** attempt {decision.attempt} at {decision.at.isoformat()}{why}"
        )
        delay = (decision.at - workflow.now()).total_seconds()
        if delay <= 0:
            return True
        self._wake = False
        try:
            await workflow.wait_condition(
                lambda: self._wake,
                timeout=delay,
                timeout_summary=f"attempt {decision.attempt}{why}",
            )
        except TimeoutError:
            return True
        return False

    async def _dial(self, attempt: int) -> None:
        self._status = "dialing"
        started = workflow.now()
        try:
            result = await workflow.execute_activity_method(
                DialActivities.dial,
                DialInput(
                    campaign_id=self._input.campaign_id,
                    retry_group_id=workflow.info().workflow_id,
                    recipient=self._input.recipient,
                    attempt=attempt,
                    max_concurrent_calls=self._input.policy.max_concurrent_calls,
                    max_calls_per_second=self._input.policy.max_calls_per_second,
                    finals=finals_by_outcome(
                        self._input.policy,
                        zone=load_zone(self._zone_name),
                        attempts=self._observed,
                        now=started,
                    ),
                ),
                start_to_close_timeout=DIAL_TIMEOUT,
                heartbeat_timeout=DIAL_HEARTBEAT,
                retry_policy=DIAL_RETRY,
                summary=f"dial {self._phone} attempt {attempt}",
            )
        except ActivityError as exc:
            cause = exc.cause
            if not (isinstance(cause, ApplicationError) and cause.non_retryable):
                raise
            self._final = Final(status=FinalStatus.FAILED, reason=f"dial refused: {cause.message}")
            return
        self._retry_now = False
        if result.skipped is DialSkip.OPTED_OUT:
            self._opted_out = True
        elif result.skipped is DialSkip.CAMPAIGN_STOPPED:
            self._canceled = True
        elif result.skipped is DialSkip.CAMPAIGN_PAUSED:
            self._paused_in_store = True
        elif result.attempt is not None:
            self._attempts.append(result.attempt)
            self._observed.append(ObservedAttempt(result.attempt.outcome, started, workflow.now()))
            self._final_recorded = result.final_recorded
            if self._final_recorded is None:  # else the count goes with the final status
                workflow.upsert_search_attributes([sa.ATTEMPT_COUNT.value_set(len(self._attempts))])

    async def _finish(self) -> RecipientResult:
        final = self._final
        if final is None:  # pragma: no cover - the loop only exits with a final status
            raise ApplicationError("recipient loop ended without a final status")
        self._status, self._next = final.status.value, None
        workflow.set_current_details(
            f"**{self._phone}** final: {final.status.value} ({final.reason})"
        )
        attributes: list[SearchAttributeUpdate[Any]] = [
            sa.CALL_STATUS.value_set(final.status.value)
        ]
        if self._final_recorded is not None:
            attributes.append(sa.ATTEMPT_COUNT.value_set(len(self._attempts)))
        opted_out_after = self._opted_out and final.status is not FinalStatus.OPTED_OUT
        if self._final_recorded is not final.status or opted_out_after:
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
        if self._input.report_to and not workflow.patched(CAMPAIGN_READS_STORE):
            await self._report(final.status)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return RecipientResult(phone=self._phone, status=final.status, attempts=len(self._attempts))

    async def _report(self, status: FinalStatus) -> None:
        """Before CAMPAIGN_READS_STORE: tell the campaign by a signal."""
        assert self._input.report_to is not None
        try:
            await workflow.get_external_workflow_handle(self._input.report_to).signal(
                "recipient_finished", RecipientFinishedInput(phone=self._phone, status=status)
            )
        except Exception as exc:  # the campaign may have completed or been terminated
            workflow.logger.warning("could not report to campaign: %s", exc)

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
            timezone=self._zone_name,
            status=self._status,
            final_reason=self._final.reason if self._final else None,
            attempts=list(self._attempts),
            next_attempt=self._next,
        )
