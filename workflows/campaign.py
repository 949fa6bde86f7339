"""CampaignWorkflow: fan recipients out, take new ones, pause, resume, stop, count progress.

Built to stay inside Temporal's limits at any size. Recipients arrive in bounded batches (the
start input and `add_recipients` signals) and wait in the store; the workflow starts them a page
at a time through an activity, as top-level workflows with deterministic ids, so it never has
pending children. Who is final is written to the store with each recipient's last call; while
calls are under way the workflow reads its counts from there (no signal per recipient), keeps
counts, not lists, and continues-as-new when Temporal suggests it, so every run's history stays
bounded however many recipients pass through and however long a long-living campaign runs.

A reading falls due on a durable timer, never by comparing `workflow.now()` with a stored time
(a worker taking over after a crash can be handed an activation stamped with the previous task's
time, and a branch on that time would differ from replay). While nothing can move (paused, or
every recipient asleep until a retry hours away) it does not poll: it sleeps until the earliest
retry is due, or until a signal or update gives it work.

Control (`pause`, `resume`, `stop`, `opt_out`) comes as signals (fire and forget, for any
Temporal client) or as the `control` update, which a validator refuses when the campaign's state
does not allow it and which answers once the change is written and broadcast.

Any Temporal client may start it (another language's SDK, the `temporal` CLI): it sets its own
`CampaignId` search attribute when the starter did not, so `CampaignId = "..."` lists the
campaign itself beside its recipients however it was started.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.campaign_ops import CampaignActivities
    from redialer.masking import mask_phone
    from redialer.outcomes import FinalStatus
    from redialer.payloads import (
        AddRecipientsInput,
        CampaignAction,
        CampaignControlInput,
        CampaignControlResult,
        CampaignInput,
        CampaignProgress,
        CampaignResult,
        CampaignState,
        ControlInput,
        ControlResult,
        CountRecipientsInput,
        CountRecipientsResult,
        EnqueueRecipientsInput,
        OptOutInput,
        QueuedRecipient,
        StartRecipientsInput,
    )
    from workflows import search_attributes as sa

#: Recipients stored per enqueue activity: a bounded payload (a count, and bytes of JSON).
BATCH = 500
BATCH_BYTES = 256 * 1024
#: Recipients started per start activity (it returns only counts, so no payload grows with it):
#: fewer pages mean fewer pauses between them, and `pause`/`stop` wait for at most one page.
START_PAGE = 1000
#: The campaign reads who is final from the store instead of taking a signal from every
#: recipient: a signal per recipient is a stream as fast as calls end, and a workflow under a
#: steady stream of signals cannot continue as new (the server rejects each try while a new
#: signal is pending, temporalio/temporal#1289) until the run hits its 10,000-signal cap.
#: While calls are up, read the store this soon after the counts last moved, backing off to at
#: most READ_MAX while they do not; while every recipient sleeps until a known time, read again
#: when the earliest is due (at most READ_IDLE_MAX later, the bound on a stale count).
READ_FIRST = timedelta(seconds=2)
READ_MAX = timedelta(minutes=1)
READ_IDLE_MAX = timedelta(hours=6)
_STATE_FOR = {
    CampaignAction.PAUSE: CampaignState.PAUSED,
    CampaignAction.RESUME: CampaignState.RUNNING,
    CampaignAction.STOP: CampaignState.STOPPED,
}


def _described(state: CampaignState, result: CampaignControlResult) -> str:
    told = f"{result.signaled} recipient(s) told"
    if state is CampaignState.PAUSED:
        return f"paused: {told}; calls in progress finish, no new call starts"
    if state is CampaignState.RUNNING:
        return f"resumed: {told}"
    if state is CampaignState.STOPPED:
        queued = f"{result.canceled_queued} queued canceled"
        return f"stopped: {told}, {queued}; calls in progress finish"
    return state.value


#: After `stop`, how long to wait for calls in progress to finish.
STOP_GRACE = timedelta(hours=2)
STORE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1)
)
#: The patch under which a campaign started without its `CampaignId` search attribute (by a
#: client other than redialer's starter) sets it itself. Runs that were already in flight before
#: it replay as they were recorded, without the upsert.
OWN_SEARCH_ATTRIBUTES = "own-search-attributes"


@workflow.defn
class CampaignWorkflow:
    @workflow.init
    def __init__(self, input: CampaignInput) -> None:
        self._input = input
        self._counts = input.counts.model_copy(deep=True)
        self._state = input.state
        self._inbox: list[QueuedRecipient] = list(input.recipients)
        #: Control requests in arrival order, each with its number (an update waits for its own).
        self._controls: list[tuple[int, CampaignState]] = []
        self._opt_outs: list[tuple[int, str]] = []
        self._requested = 0  # control and opt-out requests numbered so far
        self._awaited: set[int] = set()  # requests an update waits on (signals wait on nothing)
        self._answered: dict[int, str] = {}  # number -> what happened, for those updates
        self._received = input.received
        self._reading_pause = READ_FIRST
        self._idle_until_due = False  # the last reading found nothing that can move soon
        self._reading_is_due = False  # set by the reading timer
        self._reading_timer: asyncio.Task[None] | None = None
        self._stop_wait_over = False  # set by the stop deadline's timer

    # ---- the loop -------------------------------------------------------------------------------

    @workflow.run
    async def run(self, input: CampaignInput) -> CampaignResult:
        self._set_own_search_attributes()
        while True:
            await self._wait_for_work()
            if self._controls:
                await self._apply(*self._controls.pop(0))
            elif self._opt_outs:
                await self._opt_out(*self._opt_outs.pop(0))
            elif self._inbox:
                await self._enqueue()
            elif self._reading_due():
                await self._read_counts()
            elif self._counts.queued and self._state is CampaignState.RUNNING:
                await self._start_page()
            if self._done() and (
                self._state is CampaignState.STOPPED or await self._settled_in_store()
            ):
                break
            if self._should_continue_as_new():
                await workflow.wait_condition(workflow.all_handlers_finished)
                if not (self._controls or self._opt_outs or self._inbox):
                    workflow.continue_as_new(self._carry_over())
        if self._state is CampaignState.STOPPED:
            await self._wait_for_calls_in_progress()
        else:
            self._state = CampaignState.COMPLETED
            await self._apply(0, CampaignState.COMPLETED)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return CampaignResult(
            campaign_id=input.campaign_id,
            state=self._state,
            total=self._counts.total,
            by_status={k.value: v for k, v in self._counts.by_status.items()},
        )

    def _set_own_search_attributes(self) -> None:
        """`CampaignId`, unless the starter set it (redialer's does; after continue-as-new the
        new run has it already). Decided by the run's start event alone: deterministic."""
        if workflow.info().typed_search_attributes.get(sa.CAMPAIGN_ID) is not None:
            return
        if workflow.patched(OWN_SEARCH_ATTRIBUTES):
            workflow.upsert_search_attributes([sa.CAMPAIGN_ID.value_set(self._input.campaign_id)])

    async def _wait_for_work(self) -> None:
        """Until there is something to do, or, while calls are under way, a reading is due."""
        if self._under_way() and self._may_move():
            self._arm_reading_timer()  # also while pages of starts keep it busy
        if not self._has_work():
            await workflow.wait_condition(self._has_work)

    def _may_move(self) -> bool:
        """Whether counts can change without a signal: never while paused with no call up."""
        return self._state is not CampaignState.PAUSED or not self._idle_until_due

    def _arm_reading_timer(self) -> None:
        """Make the next reading fall due in `_reading_pause`, unless a timer already runs."""
        if self._reading_is_due or self._reading_timer is not None:
            return

        async def fall_due() -> None:
            await workflow.sleep(self._reading_pause, summary="read progress from the store")
            self._reading_is_due, self._reading_timer = True, None

        self._reading_timer = asyncio.create_task(fall_due())

    def _read_soon(self) -> None:
        """Something just moved (recipients started, the campaign resumed): read again soon,
        instead of at the end of a long idle wait."""
        self._reading_pause, self._idle_until_due = READ_FIRST, False
        if self._reading_timer is not None:
            self._reading_timer.cancel()
            self._reading_timer = None

    def _has_work(self) -> bool:
        return bool(
            self._controls
            or self._opt_outs
            or self._inbox
            or self._reading_due()
            or (self._counts.queued and self._state is CampaignState.RUNNING)
            or self._done()
            or self._should_continue_as_new()
        )

    def _under_way(self) -> bool:
        """Started recipients that are not final yet, by the last counts."""
        return self._counts.total - self._counts.final - self._counts.queued > 0

    def _reading_due(self) -> bool:
        return self._reading_is_due and self._under_way()

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

    async def _read_counts(self) -> CountRecipientsResult:
        """Take the store's counts, the truth about who is final, and schedule the next reading:
        soon while they move, less often while they do not, and, while every recipient sleeps
        until a known time, when the earliest is due (never while paused with no call up)."""
        store = await workflow.execute_activity_method(
            CampaignActivities.count_recipients,
            CountRecipientsInput(campaign_id=self._input.campaign_id),
            start_to_close_timeout=timedelta(minutes=2),
            retry_policy=STORE_RETRY,
            summary="read progress from the store",
        )
        moved = (store.total, sum(store.by_status.values())) != (
            self._counts.total,
            self._counts.final,
        )
        self._counts.total, self._counts.queued = store.total, store.queued
        self._counts.by_status = dict(store.by_status)
        # Once stopped, everyone is about to end: never sleep until a retry that will not come.
        self._idle_until_due = (
            store.moving == 0 and not moved and self._state is not CampaignState.STOPPED
        )
        if not self._idle_until_due:
            self._reading_pause = READ_FIRST if moved else min(self._reading_pause * 2, READ_MAX)
        elif store.next_due is not None:
            # How long to sleep, never whether to: a stale `now` only shifts the timer.
            until_due = store.next_due - workflow.now() + timedelta(seconds=1)
            self._reading_pause = min(max(until_due, READ_FIRST), READ_IDLE_MAX)
        else:
            self._reading_pause = READ_MAX
        self._reading_is_due = False
        return store

    async def _settled_in_store(self) -> bool:
        """The counts say everyone is final: does a fresh reading of the store agree? It also
        catches what counts alone would miss: recipients an interrupted enqueue left uncounted
        (still queued: they are started)."""
        store = await self._read_counts()
        return store.queued == 0 and store.started == 0

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
        taken, used = 0, 0
        while taken < min(BATCH, len(self._inbox)):
            used += len(self._inbox[taken].model_dump_json()) + 1
            if taken and used > BATCH_BYTES:
                break
            taken += 1
        batch, self._inbox = self._inbox[:taken], self._inbox[taken:]
        result = await workflow.execute_activity_method(
            CampaignActivities.enqueue_recipients,
            EnqueueRecipientsInput(
                campaign_id=self._input.campaign_id,
                recipients=batch,
                campaign_timezone=str(self._input.policy.get("timezone") or "UTC"),
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
                policy=self._input.policy,
                limit=START_PAGE,
            ),
            start_to_close_timeout=timedelta(minutes=10),
            heartbeat_timeout=timedelta(seconds=20),
            retry_policy=STORE_RETRY,
            summary=f"start up to {START_PAGE} recipients",
        )
        self._counts.queued = max(0, self._counts.queued - result.started - result.already_running)
        self._read_soon()

    async def _apply(self, request: int, state: CampaignState) -> None:
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
        if state in (CampaignState.RUNNING, CampaignState.STOPPED):
            self._read_soon()  # calls resume, or everyone ends: a long idle wait would hide it
        self._answer(request, _described(state, result))

    async def _opt_out(self, request: int, phone: str) -> None:
        await workflow.execute_activity_method(
            CampaignActivities.opt_out_recipient,
            OptOutInput(campaign_id=self._input.campaign_id, phone=phone),
            start_to_close_timeout=timedelta(minutes=1),
            retry_policy=STORE_RETRY,
            summary=f"opt out {mask_phone(phone)}",  # history outlives erasure: no number in it
        )
        self._answer(request, f"{phone} is on the suppression list and will not be called")
        self._read_soon()  # its recipient ends now, perhaps the campaign's last

    async def _wait_for_calls_in_progress(self) -> None:
        """After `stop`: calls in progress finish, everyone else ends `canceled`; wait for that,
        up to STOP_GRACE in all (continuing as new if the wait outgrows a run)."""
        deadline = self._input.stop_deadline or workflow.now() + STOP_GRACE
        await self._read_store_until_settled(deadline)

    async def _read_store_until_settled(self, deadline: datetime) -> None:
        async def wait_over() -> None:
            left = max(deadline - workflow.now(), timedelta(milliseconds=1))
            await workflow.sleep(left, summary="stop waiting for calls in progress")
            self._stop_wait_over = True

        waiting = asyncio.create_task(wait_over())
        while not await self._settled_in_store():
            if self._stop_wait_over:
                workflow.logger.warning("stopped with calls still in progress")
                return
            if self._should_continue_as_new():
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(
                    self._carry_over().model_copy(update={"stop_deadline": deadline})
                )
            self._arm_reading_timer()
            await workflow.wait_condition(lambda: self._reading_is_due or self._stop_wait_over)
        waiting.cancel()

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
        if self._refusal(CampaignAction.PAUSE) is None:
            self._request(CampaignAction.PAUSE)

    @workflow.signal
    def resume(self) -> None:
        if self._refusal(CampaignAction.RESUME) is None:
            self._request(CampaignAction.RESUME)

    @workflow.signal
    def stop(self) -> None:
        if self._refusal(CampaignAction.STOP) is None:
            self._request(CampaignAction.STOP)

    @workflow.signal
    def opt_out(self, input: OptOutInput) -> None:
        """Never call this number again, whether it is queued, waiting or not yet added."""
        self._request(CampaignAction.OPT_OUT, input.phone)

    @workflow.update
    async def control(self, input: ControlInput) -> ControlResult:
        """Pause, resume, stop or opt a number out, acknowledged: answers once the change is
        written to the store and broadcast to the recipients it concerns."""
        request = self._request(input.action, input.phone)
        self._awaited.add(request)
        await workflow.wait_condition(lambda: request in self._answered)
        self._awaited.discard(request)
        return ControlResult(state=self._state, detail=self._answered.pop(request))

    @control.validator
    def _validate_control(self, input: ControlInput) -> None:
        refusal = self._refusal(input.action)
        if refusal is not None:
            raise ValueError(refusal)
        if input.action is CampaignAction.OPT_OUT and not input.phone:
            raise ValueError("opt_out needs the phone number to suppress")

    def _answer(self, request: int, detail: str) -> None:
        if request in self._awaited:
            self._answered[request] = detail

    def _refusal(self, action: CampaignAction) -> str | None:
        """Why the campaign, as it is now, refuses `action` (None: it takes it)."""
        state = self._state
        allowed = {
            CampaignAction.PAUSE: state is CampaignState.RUNNING,
            CampaignAction.RESUME: state is CampaignState.PAUSED,
            CampaignAction.STOP: state in (CampaignState.RUNNING, CampaignState.PAUSED),
            CampaignAction.OPT_OUT: True,
        }[action]
        if allowed:
            return None
        return f"campaign {self._input.campaign_id} is {state.value}: {action.value} refused"

    def _request(self, action: CampaignAction, phone: str | None = None) -> int:
        """Queue a control request for the loop; returns its number."""
        self._requested += 1
        request = self._requested
        if action is CampaignAction.OPT_OUT:
            assert phone is not None
            self._opt_outs.append((request, phone))
            return request
        state = _STATE_FOR[action]
        self._state = state
        if state is CampaignState.STOPPED:
            self._inbox.clear()
        self._controls.append((request, state))
        return request

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
