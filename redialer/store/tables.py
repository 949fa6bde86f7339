"""SQL tables (sqlmodel). They never cross the Temporal boundary; payloads live in payloads.py."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Dialect,
    Index,
    TypeDecorator,
    UniqueConstraint,
)
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """Stored as UTC, read back timezone-aware, on every database.

    SQLite keeps no offset: without this, a time written with -05:00 would come back five hours
    off. Naive datetimes are refused rather than guessed.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: store only timezone-aware times")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _when(**kwargs: Any) -> Any:
    return Field(sa_column=Column(UtcDateTime(), **kwargs))


class CallRecordRow(SQLModel, table=True):
    """One row per attempt; every attempt of a recipient shares its `retry_group_id`."""

    __tablename__ = "call_records"
    __table_args__ = (UniqueConstraint("idempotency_key"),)

    id: int | None = Field(default=None, primary_key=True)
    idempotency_key: str
    campaign_id: str | None = Field(default=None, index=True)
    phone: str = Field(index=True)
    retry_group_id: str = Field(index=True)
    attempt: int
    outcome: str
    started_at: datetime = _when(nullable=False)
    ended_at: datetime = _when(nullable=False)
    call_id: str | None = None
    dialed: bool = True
    message_left: bool = False  # a voicemail message was left after the beep
    variables: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    recorded_at: datetime = _when(nullable=False)


class CampaignRecipientRow(SQLModel, table=True):
    """A recipient of a campaign: queued until started, then started until final."""

    __tablename__ = "campaign_recipients"
    __table_args__ = (Index("ix_campaign_recipients_state", "campaign_id", "state", "seq"),)

    campaign_id: str = Field(primary_key=True)
    phone: str = Field(primary_key=True)
    workflow_id: str
    seq: int
    state: str = "queued"  # queued | started | final
    status: str | None = None
    attempts: int = 0
    timezone: str | None = None  # the recipient's own, as given
    zone: str = "UTC"  # the zone its windows are read in (own, else its number's, else campaign's)
    dialing_since: datetime | None = _when(nullable=True)  # a call is up right now
    #: When its next call is due (set with each attempt or deferral): the campaign sleeps until
    #: the earliest one instead of polling while nothing can move.
    next_attempt_at: datetime | None = _when(nullable=True)
    variables: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    extra: dict[str, Any] = Field(default_factory=dict, sa_column=Column("metadata", JSON))
    updated_at: datetime = _when(nullable=False)


class CampaignRow(SQLModel, table=True):
    """A campaign's control state, read by every dial (no dial after stop, none while paused)."""

    __tablename__ = "campaigns"

    campaign_id: str = Field(primary_key=True)
    state: str
    updated_at: datetime = _when(nullable=False)


class SuppressionRow(SQLModel, table=True):
    """Numbers never to call again, across campaigns: opted out, on a do-not-call registry, or
    added by hand. Who or what added each, and when, is kept: a complaint asks both."""

    __tablename__ = "suppression"

    phone: str = Field(primary_key=True)
    reason: str  # opted_out | dnd (a call's outcome) | dnc (a registry) | manual
    campaign_id: str | None = None
    created_at: datetime = _when(nullable=False)
    #: Who or what added it: "cli:<user>", "import:<file>", "opt_out:campaign <id>",
    #: "call:dnd campaign <id>". Null on rows added before revision 0005 (never recorded).
    source: str | None = None
    note: str | None = None  # the operator's words (`redialer suppress add --note`)


class DialIntentRow(SQLModel, table=True):
    """redialer's own ledger of calls it asked a dialer to place, one row per idempotency key.

    Written *before* the dialer is asked (providers such as Twilio take no idempotency key): a
    dial that finds its key here already was retried after a crash, and must adopt the call the
    dialer may have placed instead of placing another.
    """

    __tablename__ = "dial_intents"

    idempotency_key: str = Field(primary_key=True)
    phone: str
    attempt: int
    created_at: datetime = _when(nullable=False)  # wall clock: look for the call from here on
    call_id: str | None = None  # the provider's id, once known
    #: Place-call requests redialer sent, or was about to send when it died, for this key: a
    #: retry after a crash counts again when the dialer had no call to adopt. The dialer's own
    #: count (the provider's calls per key; the simulator's `placements`) is the evidence.
    requests: int = 0
    adoptions: int = 0  # retried dials that found and took over the call already placed


class ProviderCallRow(SQLModel, table=True):
    """A call a real provider placed for redialer, as its status callbacks (or, when they are
    late or lost, a lookup at the provider) tell it. The first terminal status is the outcome;
    nothing after it changes anything."""

    __tablename__ = "provider_calls"

    call_sid: str = Field(primary_key=True)
    idempotency_key: str = Field(index=True)
    status: str  # the provider's latest status
    outcome: str | None = None  # redialer's outcome, once a terminal status arrived
    answered_by: str | None = None
    sip_response_code: int | None = None
    duration: int | None = None  # seconds the call was up
    message_left: bool = False
    answer_twiml: str | None = None  # what a person hears (rendered with the variables)
    voicemail_twiml: str | None = None  # what is left after the beep, if anything
    created_at: datetime = _when(nullable=False)
    ended_at: datetime | None = _when(nullable=True)


class ProviderCallbackRow(SQLModel, table=True):
    """Status callbacks taken, by (call, sequence number): a repeated delivery is ignored."""

    __tablename__ = "provider_callbacks"

    call_sid: str = Field(primary_key=True)
    sequence_number: int = Field(primary_key=True)
    status: str
    received_at: datetime = _when(nullable=False)


class SimulatedDialRow(SQLModel, table=True):
    """The simulated dialer's own ledger, as a provider keeps its calls: one row per idempotency
    key; `placements` counts every place-call request that reached it for the key (must stay 1).
    """

    __tablename__ = "simulated_dials"

    idempotency_key: str = Field(primary_key=True)
    phone: str = Field(index=True)
    attempt: int
    placements: int = 1
    outcome: str | None = None
    call_id: str
    started_at: datetime = _when(nullable=False)  # the call's time (Temporal's clock)
    ended_at: datetime | None = _when(nullable=True)
    claimed_at: datetime = _when(nullable=False)  # wall clock: is the placing process still live?
    finished_at: datetime | None = _when(nullable=True)  # wall clock, for concurrency checks


class CallSlotRow(SQLModel, table=True):
    """A campaign's call slots: a row per call in progress, at most `max_concurrent_calls`.

    Taking a slot is an INSERT on the primary key, atomic on every database and across every
    worker; the lease is renewed while the call is up, so a dead worker's slot frees itself.
    """

    __tablename__ = "call_slots"

    campaign_id: str = Field(primary_key=True)
    slot: int = Field(primary_key=True)
    holder: str = Field(index=True)  # the idempotency key of the call using it
    expires_at: datetime = _when(nullable=False)
    #: On the account's lines (`campaign_id` "~account"): whose call it is (a campaign id, or
    #: "~calls" for single calls) and that campaign's priority, for the fair share.
    group_id: str | None = None
    priority: float | None = None


class DialTicketRow(SQLModel, table=True):
    """Dial-rate tickets: at most N per campaign per time window (`max_calls_per_second`)."""

    __tablename__ = "dial_tickets"

    campaign_id: str = Field(primary_key=True)
    #: Whole windows since 2026-01-01 (not 1970: sub-second windows since 1970 overflow the 32-bit
    #: column a store made before it was BIGINT still has).
    window: int = Field(sa_column=Column(BigInteger, primary_key=True))
    ticket: int = Field(primary_key=True)
    holder: str


class CallLineRow(SQLModel, table=True):
    """A campaign's line for its call caps: the dials waiting, in arrival order, and those let
    through lately with how long their calls held a slot (which says when to come back)."""

    __tablename__ = "call_line"
    __table_args__ = (
        Index("ix_call_line_order", "campaign_id", "admitted_at", "seq"),  # waiting, in order
        Index("ix_call_line_seq", "campaign_id", "seq"),  # the last arrival number
    )

    campaign_id: str = Field(primary_key=True)
    holder: str = Field(primary_key=True)  # the idempotency key of the call waiting
    seq: int  # arrival order
    due_at: datetime = _when(nullable=False)  # when it was told to come back
    admitted_at: datetime | None = _when(nullable=True)  # let through; kept a while, then gone
    held_seconds: float | None = None  # how long its call held a slot (the line's pace)
    #: On the account's line: the campaign waiting (or "~calls") and its priority.
    group_id: str | None = None
    priority: float | None = None


class NumberCallRow(SQLModel, table=True):
    """Calls to each number across every campaign and worker, for REDIALER_MAX_CALLS_PER_NUMBER:
    a row per dial that took a place in its number's window (redialer/store/number_calls.py).

    One row per dial's idempotency key, so a retried dial re-uses its row and never counts
    twice. `called_at` is when the call was requested; rows older than the window are pruned.
    """

    __tablename__ = "number_calls"
    __table_args__ = (Index("ix_number_calls_window", "number_key", "called_at"),)

    holder: str = Field(primary_key=True)  # the dial's idempotency key
    #: The number as the suppression list keys it: its pseudonym where the store has a key.
    number_key: str
    called_at: datetime = _when(nullable=False)


class DeferralRow(SQLModel, table=True):
    """An attempt moved by a rule (calling hours, a pause window, the daily cap, a law, the
    frequency cap): once per attempt and rule, the evidence `redialer report` counts."""

    __tablename__ = "deferrals"

    campaign_id: str = Field(primary_key=True)
    phone: str = Field(primary_key=True)  # the recipient, as campaign_recipients has it
    attempt: int = Field(primary_key=True)
    reason: str = Field(primary_key=True)  # a DeferralReason
    rule: str = Field(primary_key=True)  # the rule's label, as `plan` and `history` show it
    moved_from: datetime = _when(nullable=False)  # the first move's, when several
    moved_to: datetime = _when(nullable=False)
    recorded_at: datetime = _when(nullable=False)
