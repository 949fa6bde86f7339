"""The one extension point for telephony: a `Dialer` places one call and reports how it ended."""

from __future__ import annotations

from typing import Protocol

from pydantic import AwareDatetime, BaseModel, ConfigDict, JsonValue

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


class CallResult(BaseModel):
    """How one call ended."""

    model_config = ConfigDict(frozen=True)

    outcome: Outcome
    call_id: str
    started_at: AwareDatetime
    ended_at: AwareDatetime


class PermanentDialError(Exception):
    """The provider refused the call for a reason a retry cannot fix (bad credentials, a number
    it will never dial): the recipient ends `failed` instead of retrying."""


class Dialer(Protocol):
    async def dial(self, request: CallRequest) -> CallResult:
        """Place the call and wait for its final outcome; same key, same result, one call."""
        ...


def idempotency_key(scope: str, phone: str, attempt: int) -> str:
    """`{campaign_id}:{e164}:{attempt}`; a call outside a campaign is scoped by its workflow id."""
    return f"{scope}:{phone}:{attempt}"
