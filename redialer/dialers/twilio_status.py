"""Twilio's call statuses in redialer's outcomes: the provider's vocabulary stops here.

| CallStatus  | AnsweredBy / SipResponseCode                         | outcome          |
|-------------|------------------------------------------------------|------------------|
| completed   | machine_start, machine_end_beep/_silence/_other, fax | `voicemail`      |
| completed   | human, unknown, or absent                            | `completed`      |
| busy        |                                                      | `busy`           |
| no-answer   |                                                      | `no_answer`      |
| canceled    |                                                      | `canceled`       |
| failed      | SIP 404, 410, 484, 604 (no such number)              | `invalid_number` |
| failed      | SIP 603, 607, 608 (declined, unwanted, rejected)     | `rejected`       |
| failed      | SIP 486, 600 (busy everywhere)                       | `busy`           |
| failed      | SIP 408, 480 (no answer, unavailable)                | `no_answer`      |
| failed      | anything else (network, carrier)                     | `failed`         |

queued, initiated, ringing and in-progress are not terminal: the call goes on.
"""

from __future__ import annotations

from redialer.outcomes import Outcome

TERMINAL = frozenset({"completed", "busy", "no-answer", "canceled", "failed"})
MACHINE = frozenset(
    {"machine_start", "machine_end_beep", "machine_end_silence", "machine_end_other", "fax"}
)
_BY_STATUS = {
    "busy": Outcome.BUSY,
    "no-answer": Outcome.NO_ANSWER,
    "canceled": Outcome.CANCELED,
}
_BY_SIP = {
    **dict.fromkeys((404, 410, 484, 604), Outcome.INVALID_NUMBER),
    **dict.fromkeys((603, 607, 608), Outcome.REJECTED),
    **dict.fromkeys((486, 600), Outcome.BUSY),
    **dict.fromkeys((408, 480), Outcome.NO_ANSWER),
}


def outcome_of(status: str, *, answered_by: str | None, sip_code: int | None) -> Outcome | None:
    """The outcome a terminal status gives, None for a status that is not terminal."""
    if status not in TERMINAL:
        return None
    if status == "completed":
        return Outcome.VOICEMAIL if answered_by in MACHINE else Outcome.COMPLETED
    if status == "failed":
        return _BY_SIP.get(sip_code or 0, Outcome.FAILED)
    return _BY_STATUS[status]


def is_machine(answered_by: str | None) -> bool:
    return answered_by in MACHINE
