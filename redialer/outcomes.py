"""What one dial can end in, and what a recipient can end as."""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    """The result of one call attempt, as a dialer reports it."""

    COMPLETED = "completed"  # a live person answered
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    VOICEMAIL = "voicemail"
    REJECTED = "rejected"
    FAILED = "failed"  # network or carrier trouble: transient
    INVALID_NUMBER = "invalid_number"
    DND = "dnd"
    CANCELED = "canceled"


class FinalStatus(StrEnum):
    """Where a recipient ends; once final, it is never dialed again."""

    COMPLETED = "completed"
    ALL_RETRIES_EXHAUSTED = "all_retries_exhausted"
    VOICEMAIL_FINAL = "voicemail_final"
    REJECTED_FINAL = "rejected_final"
    FAILED = "failed"
    INVALID_NUMBER = "invalid_number"
    DND = "dnd"
    OPTED_OUT = "opted_out"
    CANCELED = "canceled"


#: Outcomes a user may list in `retry_on`; the rest end the recipient whatever the policy says.
RETRYABLE_OUTCOMES: frozenset[Outcome] = frozenset(
    {Outcome.NO_ANSWER, Outcome.BUSY, Outcome.VOICEMAIL, Outcome.REJECTED, Outcome.FAILED}
)

#: The status a recipient ends in when this outcome is not (or no longer) retried.
STATUS_WHEN_NOT_RETRIED: dict[Outcome, FinalStatus] = {
    Outcome.COMPLETED: FinalStatus.COMPLETED,
    Outcome.NO_ANSWER: FinalStatus.ALL_RETRIES_EXHAUSTED,
    Outcome.BUSY: FinalStatus.ALL_RETRIES_EXHAUSTED,
    Outcome.VOICEMAIL: FinalStatus.VOICEMAIL_FINAL,
    Outcome.REJECTED: FinalStatus.REJECTED_FINAL,
    Outcome.FAILED: FinalStatus.FAILED,
    Outcome.INVALID_NUMBER: FinalStatus.INVALID_NUMBER,
    Outcome.DND: FinalStatus.DND,
    Outcome.CANCELED: FinalStatus.CANCELED,
}
