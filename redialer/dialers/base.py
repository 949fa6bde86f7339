"""The one extension point for telephony: a `Dialer` places one call and reports how it ended.

redialer keeps its own ledger of the calls it asked for (`DialIntents`), because a provider may
take no idempotency key: a dial retried after a crash first asks the dialer to `adopt` a call it
may already have placed for the key, and only places one (`dial`) when there is none. A dialer
counts every place-call request that reaches it per key, so a second one would show.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from pydantic import AwareDatetime, BaseModel, ConfigDict, JsonValue

from redialer.call_spec import CallSpec
from redialer.outcomes import Outcome


class CallRequest(BaseModel):
    """One call to place. A dialer that sees `idempotency_key` again must not call again."""

    model_config = ConfigDict(frozen=True)

    idempotency_key: str  # "{campaign_id}:{e164}:{attempt}"
    campaign_id: str | None
    phone: str
    attempt: int
    retry_group_id: str
    variables: dict[str, JsonValue] = {}
    metadata: dict[str, JsonValue] = {}
    #: What an answered call does (a real provider needs it; the simulator ignores it).
    call: CallSpec | None = None
    #: The recipient's time zone (IANA), as its windows are read in. The simulator's answer
    #: profile reads the local hour in it; unset, it reads the number's own clock.
    zone: str | None = None


class CallResult(BaseModel):
    """How one call ended."""

    model_config = ConfigDict(frozen=True)

    outcome: Outcome
    call_id: str | None  # None when the provider refused the number without placing a call
    started_at: AwareDatetime
    ended_at: AwareDatetime
    #: A voicemail message was left after the beep (`call.voicemail_message`).
    message_left: bool = False


class PermanentDialError(Exception):
    """The provider refused the call for a reason a retry cannot fix (bad credentials, a number
    it will never dial): the recipient ends `failed` instead of retrying."""


class Dialer(Protocol):
    async def dial(self, request: CallRequest) -> CallResult:
        """Place a new call and wait for its final outcome."""
        ...

    async def adopt(self, request: CallRequest, *, since: datetime) -> CallResult | None:
        """A call already placed for this request's key (at or after `since`): wait for its
        outcome and return it. None when the dialer has no such call, so one may be placed."""
        ...


def idempotency_key(scope: str, phone: str, attempt: int) -> str:
    """`{campaign_id}:{e164}:{attempt}`; a call outside a campaign is scoped by its workflow id."""
    return f"{scope}:{phone}:{attempt}"
