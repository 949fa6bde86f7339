"""CampaignWorkflow: fan recipients out, take new ones, pause, resume, stop, count progress.

Built to stay inside Temporal's limits at any size. Recipients arrive in bounded batches (the
start input and `add_recipients` signals) and wait in the store; the workflow starts them a page
at a time through an activity, as top-level workflows with deterministic ids, so it never has
pending children. Each recipient reports its final status by one signal; the workflow keeps
counts, not lists, and continues-as-new when Temporal suggests it, so every run's history stays
bounded however many recipients pass through and however long a long-living campaign runs.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.campaign_ops import CampaignActivities
    from redialer.outcomes import FinalStatus
    from redialer.payloads import (
        AddRecipientsInput,
        CampaignControlInput,
        CampaignInput,
        CampaignProgress,
        CampaignResult,
        CampaignState,
        EnqueueRecipientsInput,
        OptOutInput,
        QueuedRecipient,
        RecipientFinishedInput,
        StartRecipientsInput,
    )

#: Recipients stored per enqueue activity, and started per page: bounded payloads and history.
BATCH = 500
#: After `stop`, how long to wait for calls in progress to finish and report.
STOP_GRACE = timedelta(hours=2)
STORE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1)
)


@workflow.defn
class CampaignWorkflow:
    @workflow.init
    def __init__(self, input: CampaignInput) -> None:
        self._input = input
        self._counts = input.counts.model_copy(deep=True)
        self._state = input.state
        self._inbox: list[QueuedRecipient] = list(input.recipients)
        self._controls: list[CampaignState] = []
        self._opt_outs: list[str] = []
        self._received = input.received

    # ---- the loop -------------------------------------------------------------------------------

    @workflow.run
    async def run(self, input: CampaignInput) -> CampaignResult:
        while True:
            await workflow.wait_condition(self._has_work)
            if self._controls:
                await self._apply(self._controls.pop(0))
            elif self._opt_outs:
                await self._opt_out(self._opt_outs.pop(0))
            elif self._inbox:
                await self._enqueue()
            elif self._counts.queued and self._state is CampaignState.RUNNING:
                await self._start_page()
            if self._done():
                break
            if self._should_continue_as_new():
                await workflow.wait_condition(workflow.all_handlers_finished)
                if not (self._controls or self._opt_outs or self._inbox):
                    workflow.continue_as_new(self._carry_over())
        if self._state is CampaignState.STOPPED:
            await self._wait_for_calls_in_progress()
        else:
            self._state = CampaignState.COMPLETED
            await self._apply(CampaignState.COMPLETED)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return CampaignResult(
            campaign_id=input.campaign_id,
            state=self._state,
            total=self._counts.total,
            by_status={k.value: v for k, v in self._counts.by_status.items()},
        )

    def _has_work(self) -> bool:
        return bool(
            self._controls
            or self._opt_outs
            or self._inbox
            or (self._counts.queued and self._state is CampaignState.RUNNING)
            or self._done()
            or self._should_continue_as_new()
        )

    def _done(self) -> bool:
        if self._controls or self._opt_outs or self._inbox:
            return False
        if self._state is CampaignState.STOPPED:
            return True
        if self._input.long_living or self._state is CampaignState.PAUSED:
            return False
        expected = self._input.expected_recipients or 1
        return (
            self._received >= expected
            and self._counts.queued == 0
            and self._counts.final >= self._counts.total
        )

    def _should_continue_as_new(self) -> bool:
        info = workflow.info()
        return (
            info.is_continue_as_new_suggested()
            or info.get_current_history_length() > self._input.max_events_per_run
        )

    def _carry_over(self) -> CampaignInput:
        return self._input.model_copy(
            update={
                "recipients": [],
                "counts": self._counts,
                "state": self._state,
                "received": self._received,
            }
        )

    async def _enqueue(self) -> None:
        batch, self._inbox = self._inbox[:BATCH], self._inbox[BATCH:]
        result = await workflow.execute_activity_method(
            CampaignActivities.enqueue_recipients,
            EnqueueRecipientsInput(
                campaign_id=self._input.campaign_id,
                recipients=batch,
                campaign_timezone=self._input.policy.timezone,
            ),
            start_to_close_timeout=timedelta(minutes=2),
            retry_policy=STORE_RETRY,
            summary=f"store {len(batch)} recipients",
        )
        self._received += result.accepted + result.duplicates + result.rejected
        self._counts.total += result.accepted
        self._counts.queued += result.accepted

    async def _start_page(self) -> None:
        result = await workflow.execute_activity_method(
            CampaignActivities.start_recipients,
            StartRecipientsInput(
                campaign_id=self._input.campaign_id,
                campaign_workflow_id=workflow.info().workflow_id,
                policy=self._input.policy,
                limit=BATCH,
            ),
            start_to_close_timeout=timedelta(minutes=10),
            heartbeat_timeout=timedelta(seconds=20),
            retry_policy=STORE_RETRY,
            summary=f"start up to {BATCH} recipients",
        )
        self._counts.queued = max(0, self._counts.queued - result.started - result.already_running)

    async def _apply(self, state: CampaignState) -> None:
        result = await workflow.execute_activity_method(
            CampaignActivities.control_campaign,
            CampaignControlInput(campaign_id=self._input.campaign_id, state=state),
            start_to_close_timeout=timedelta(hours=1),
            heartbeat_timeout=timedelta(seconds=20),
            retry_policy=STORE_RETRY,
            summary=f"campaign {state.value}",
        )
        if result.canceled_queued:
            self._count_final(FinalStatus.CANCELED, result.canceled_queued)
            self._counts.queued = 0

    async def _opt_out(self, phone: str) -> None:
        await workflow.execute_activity_method(
            CampaignActivities.opt_out_recipient,
            OptOutInput(campaign_id=self._input.campaign_id, phone=phone),
            start_to_close_timeout=timedelta(minutes=1),
            retry_policy=STORE_RETRY,
            summary=f"opt out {phone}",
        )

    async def _wait_for_calls_in_progress(self) -> None:
        """After `stop`, count the recipients still reporting, up to STOP_GRACE in all.

        A stopped campaign of 100,000 gets 100,000 `recipient_finished` signals here, more than
        one run may hold (Temporal caps signals and events per run), so this wait continues as
        new too, carrying its deadline.
        """
        deadline = self._input.stop_deadline or workflow.now() + STOP_GRACE
        while self._counts.final < self._counts.total:
            left = (deadline - workflow.now()).total_seconds()
            try:
                if left <= 0:
                    raise TimeoutError
                await workflow.wait_condition(
                    lambda: (
                        self._counts.final >= self._counts.total or self._should_continue_as_new()
                    ),
                    timeout=left,
                    timeout_summary="calls in progress finish",
                )
            except TimeoutError:
                workflow.logger.warning("stopped with recipients still unreported")
                return
            if self._counts.final < self._counts.total and self._should_continue_as_new():
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(
                    self._carry_over().model_copy(update={"stop_deadline": deadline})
                )

    def _count_final(self, status: FinalStatus, n: int = 1) -> None:
        self._counts.by_status[status] = self._counts.by_status.get(status, 0) + n

    # ---- signals and queries --------------------------------------------------------------------

    @workflow.signal
    def add_recipients(self, input: AddRecipientsInput) -> None:
        if self._state is CampaignState.STOPPED:
            workflow.logger.warning(
                "campaign stopped: %d recipients ignored", len(input.recipients)
            )
            return
        self._inbox.extend(input.recipients)

    @workflow.signal
    def pause(self) -> None:
        if self._state is CampaignState.RUNNING:
            self._state = CampaignState.PAUSED
            self._controls.append(CampaignState.PAUSED)

    @workflow.signal
    def resume(self) -> None:
        if self._state is CampaignState.PAUSED:
            self._state = CampaignState.RUNNING
            self._controls.append(CampaignState.RUNNING)

    @workflow.signal
    def stop(self) -> None:
        if self._state is not CampaignState.STOPPED:
            self._state = CampaignState.STOPPED
            self._inbox.clear()
            self._controls.append(CampaignState.STOPPED)

    @workflow.signal
    def opt_out(self, input: OptOutInput) -> None:
        """Never call this number again, whether it is queued, waiting or not yet added."""
        self._opt_outs.append(input.phone)

    @workflow.signal
    def recipient_finished(self, input: RecipientFinishedInput) -> None:
        self._count_final(input.status)

    @workflow.query
    def progress(self) -> CampaignProgress:
        counts = self._counts
        return CampaignProgress(
            campaign_id=self._input.campaign_id,
            state=self._state,
            total=counts.total,
            final=counts.final,
            active=max(0, counts.total - counts.final - counts.queued),
            queued=counts.queued,
            by_status={k.value: v for k, v in counts.by_status.items()},
        )
