"""What crosses the Temporal boundary: inputs, results, signals and queries.

Named `<Thing>Input` / `<Thing>Result`. SQL table models never appear here.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, JsonValue

from redialer.allowed_time import Deferral
from redialer.outcomes import FinalStatus, Outcome

# ---- recipient workflow -------------------------------------------------------------------------


#: A `CampaignPolicy` as JSON. Workflows carry it unparsed and activities parse it: decoding a
#: workflow's input must give the same result on every replay, whatever versions of phonenumbers,
#: tzdata or redialer's own rules the worker has (the edge checked it before anything started).
PolicyJson = dict[str, JsonValue]


class RecipientInput(BaseModel):
    """One recipient's run. Standalone when `campaign_id` is None or absent (a single
    API-triggered call).

    Plain data only, checked at the edge: the number is already E.164 and `zone` already resolved
    (the recipient's own, else its number's, else the campaign's); the workflow parses nothing.
    """

    campaign_id: str | None = None
    phone: str
    zone: str
    variables: dict[str, JsonValue] = {}
    metadata: dict[str, JsonValue] = {}
    policy: PolicyJson
    #: Where numbers are pseudonymized (redialer/pseudonyms.py), set by the starter: the
    #: RecipientPhone value (the pseudonym) and the number as details and summaries show it
    #: (masked). None: the number itself, as before (and as every recorded history has it).
    phone_key: str | None = None
    display: str | None = None


class AttemptRecord(BaseModel):
    """One attempt as the `history` query shows it."""

    attempt: int
    outcome: Outcome
    started_at: AwareDatetime
    ended_at: AwareDatetime
    call_id: str | None
    dialed: bool = True  # False when it ended without a call (suppressed number)
    message_left: bool = False  # a voicemail message was left after the beep
    #: The rules that moved this attempt's time (calling hours, a law, the frequency cap...), in
    #: order: history says why a call came when it did. Empty in histories recorded before.
    deferred: list[Deferral] = []
    #: For a `smart` retry: the expected answer rate of the hour chosen for it, and why that hour.
    expected_answer_rate: float | None = None
    chosen_because: str | None = None


class NextAttempt(BaseModel):
    attempt: int
    at: AwareDatetime
    due: AwareDatetime
    deferred: list[Deferral] = []
    #: For a `smart` retry: the expected answer rate of the chosen hour, and why it was chosen.
    expected_answer_rate: float | None = None
    chosen_because: str | None = None


class RecipientHistory(BaseModel):
    """The `history` query: every attempt, the summary status, and what comes next."""

    campaign_id: str | None
    phone: str
    retry_group_id: str
    timezone: str
    status: str  # a FinalStatus once final; "scheduled", "dialing" or "paused" before
    final_reason: str | None = None
    attempts: list[AttemptRecord] = []
    next_attempt: NextAttempt | None = None


class RecipientResult(BaseModel):
    phone: str
    status: FinalStatus
    attempts: int


# ---- campaign workflow --------------------------------------------------------------------------


class CampaignState(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"
    COMPLETED = "completed"


class CampaignCounts(BaseModel):
    """What the campaign carries across continue-as-new: counts, never lists."""

    total: int = 0  # recipients started (or ended before start, e.g. stopped while queued)
    queued: int = 0  # accepted, not yet started
    by_status: dict[FinalStatus, int] = Field(default_factory=dict)

    @property
    def final(self) -> int:
        return sum(self.by_status.values())


class QueuedRecipient(BaseModel):
    """A recipient on its way to the store: the campaign workflow only passes it on.

    Same JSON as `Recipient`, without its validators: numbers are checked at the edge (the spec,
    the CLI) and again by the enqueue activity, never in workflow code, where parsing 100,000
    numbers on every replay would stall the workflow task past Temporal's deadlock detector.
    """

    model_config = ConfigDict(from_attributes=True)  # a validated Recipient converts as is

    phone: str
    timezone: str | None = None
    variables: dict[str, JsonValue] = {}
    metadata: dict[str, JsonValue] = {}


class CampaignInput(BaseModel):
    campaign_id: str
    policy: PolicyJson
    long_living: bool = False
    #: The first recipients, bounded (the starter sends the rest with `add_recipients`).
    recipients: list[QueuedRecipient] = []
    #: A fixed campaign completes only after this many recipients arrived (the starter's count),
    #: so one whose first batch finishes early does not end before the rest are delivered.
    expected_recipients: int | None = None
    #: Continue as new past this many events, even before Temporal suggests it (tests lower it).
    max_events_per_run: int = Field(default=8_000, ge=100)
    # Carried across continue-as-new:
    counts: CampaignCounts = Field(default_factory=CampaignCounts)
    state: CampaignState = CampaignState.RUNNING
    received: int = 0  # recipients delivered so far, duplicates included
    stop_deadline: AwareDatetime | None = None  # once stopped: stop waiting for reports then


class AddRecipientsInput(BaseModel):
    recipients: list[QueuedRecipient]


class CampaignProgress(BaseModel):
    """The `progress` query (and `redialer progress --json`)."""

    campaign_id: str
    state: CampaignState
    total: int
    final: int
    active: int
    queued: int
    by_status: dict[str, int]


class CampaignResult(BaseModel):
    campaign_id: str
    state: CampaignState
    total: int
    by_status: dict[str, int]


# ---- activities ---------------------------------------------------------------------------------


class DialInput(BaseModel):
    """Place attempt `attempt` if now is an allowed time, and decide what comes after it."""

    campaign_id: str | None
    retry_group_id: str
    phone: str
    zone: str
    variables: dict[str, JsonValue] = {}
    metadata: dict[str, JsonValue] = {}
    policy: PolicyJson
    attempt: int
    #: The attempts so far: the schedule counts delays, daily caps and per-outcome caps from them.
    attempts: list[AttemptRecord] = []
    #: The deferrals that moved this attempt so far (the workflow's next attempt's), which its
    #: record carries on with any the dial adds.
    deferred: list[Deferral] = []
    #: A `smart` retry's expected answer rate and reason, carried into its record likewise.
    expected_answer_rate: float | None = None
    chosen_because: str | None = None


class DialSkip(StrEnum):
    """Why a dial activity returned without calling."""

    CAMPAIGN_PAUSED = "campaign_paused"
    CAMPAIGN_STOPPED = "campaign_stopped"
    OPTED_OUT = "opted_out"  # on the suppression list as an opt-out: ends `opted_out`
    #: A pause window, calling hours, the daily cap, a law or the number's frequency cap:
    #: `next` says when, and why (its `deferred`).
    NOT_YET = "not_yet"


class DialResult(BaseModel):
    """An attempt's record, or the reason no call was placed; and what comes next.

    Every decision that depends on the time (is now allowed? when is the next attempt? is the
    recipient final?) is taken here, on the activity's clock, and reaches the workflow recorded in
    its history: the workflow never branches on `workflow.now()`, so a replay, or a worker handed
    an activation with a stale time after a crash, always takes the same path.
    """

    attempt: AttemptRecord | None = None
    skipped: DialSkip | None = None
    #: The next attempt (after `attempt`), or this one later (NOT_YET); None once final.
    next: NextAttempt | None = None
    #: The final status `attempt` ended the recipient with, recorded with it.
    final: FinalStatus | None = None
    final_reason: str | None = None


class RecordFinalInput(BaseModel):
    campaign_id: str | None
    phone: str
    retry_group_id: str
    status: FinalStatus
    attempts: int
    #: The recipient opted out after its last call had already ended it: the status stands, and
    #: the number still joins the suppression list.
    opted_out: bool = False


class EnqueueRecipientsInput(BaseModel):
    campaign_id: str
    recipients: list[QueuedRecipient]
    campaign_timezone: str = "UTC"  # to resolve each recipient's zone for reports


class EnqueueRecipientsResult(BaseModel):
    accepted: int  # new to this campaign
    duplicates: int  # already in it: never called twice
    rejected: int = 0  # not a valid recipient (a signal sent around the CLI): logged, skipped


class StartRecipientsInput(BaseModel):
    campaign_id: str
    policy: PolicyJson
    limit: int


class StartRecipientsResult(BaseModel):
    started: int
    already_running: int  # started before (a retried activity): not started again


class CountRecipientsInput(BaseModel):
    campaign_id: str


class CountRecipientsResult(BaseModel):
    """The store's count of a campaign's recipients: the truth the signals' counts approximate."""

    queued: int
    started: int  # started, not final yet
    by_status: dict[FinalStatus, int]
    #: Started recipients that may move any moment: a call up, or no next time known yet.
    moving: int = 0
    #: The earliest time one of the others is due to call (the campaign sleeps until then).
    next_due: AwareDatetime | None = None

    @property
    def total(self) -> int:
        return self.queued + self.started + sum(self.by_status.values())


class CampaignAction(StrEnum):
    PAUSE = "pause"
    RESUME = "resume"
    STOP = "stop"
    OPT_OUT = "opt_out"


class ControlInput(BaseModel):
    """The campaign's `control` update: an acknowledged pause, resume, stop or opt-out."""

    action: CampaignAction
    phone: str | None = None  # for opt_out: E.164


class ControlResult(BaseModel):
    state: CampaignState
    detail: str  # what happened, for the person who asked


class CampaignControlInput(BaseModel):
    campaign_id: str
    state: CampaignState


class OptOutInput(BaseModel):
    campaign_id: str | None = None
    phone: str


class CampaignControlResult(BaseModel):
    signaled: int
    canceled_queued: int = 0  # queued recipients ended `canceled` without a workflow
