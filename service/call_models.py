"""`POST /v1/calls`: one call with retries, in DialNexa's body, read into redialer's terms.

`{"from_number", "to_number", "variables", "metadata", "retry": {...}}`: `retry` in redialer's
format or a seed product's (DialNexa's `max_retries`/`wait_minutes`/`retry_on_*`, Exotel's,
Romulus's list); redialer's windows (`pause_windows`, `calling_hours`, Gomobile's
`pauseWindows`, Exotel's `schedule`), `max_attempts_per_day` and `call` section beside it.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError

from redialer.call_spec import CallSpec
from redialer.campaign import CampaignPolicy
from redialer.foreign_formats import translate_campaign
from redialer.limits import Limits, Problem
from redialer.loading import InvalidInput, problems_from
from redialer.recipients import Recipient, normalise_phone
from redialer.windows import PauseWindows, TimeRange

#: Fields that say who is called; everything else in the body is the call's policy.
_RECIPIENT_FIELDS = {"to_number", "from_number", "variables", "metadata", "timezone"}


class SingleCallIn(BaseModel):
    """The documented body (validation is `parse_single_call`, which also takes the seed
    products' formats)."""

    model_config = ConfigDict(extra="forbid")

    to_number: str = Field(description="Who to call, E.164.", examples=["+16505550199"])
    from_number: str | None = Field(
        default=None,
        description="The caller id (a number of your provider account); sets `call.caller_id`.",
    )
    variables: dict[str, JsonValue] = Field(default_factory=dict)
    metadata: dict[str, JsonValue] = Field(default_factory=dict)
    timezone: str | None = Field(
        default=None, description="The recipient's IANA zone (else its number's)."
    )
    retry: Any = Field(
        default=None,
        description="redialer's retry policy, DialNexa's or Exotel's `retry` object, or"
        " Romulus's list of delays in seconds.",
    )
    pause_windows: PauseWindows | None = None
    calling_hours: TimeRange | None = None
    max_attempts_per_day: int | None = Field(default=None, ge=1)
    call: CallSpec | None = None


class SingleCall(BaseModel):
    recipient: Recipient
    policy: CampaignPolicy
    formats: list[str] = []


def parse_single_call(data: Any, *, limits: Limits) -> SingleCall:
    """The recipient and policy of one call, or InvalidInput listing every problem (paths as the
    body has them: `to_number`, `retry.wait_minutes`)."""
    if not isinstance(data, dict):
        raise InvalidInput("body", [Problem("", type(data).__name__, "must be a JSON object")])
    problems: list[Problem] = []
    if "agent_version_id" in data:
        problems.append(
            Problem(
                "agent_version_id",
                data["agent_version_id"],
                "redialer has no agent versions: say what an answered call does in `call`"
                ' (e.g. {"url": "https://your-agent.example/twiml"})',
            )
        )
    recipient_doc = {
        "phone": data.get("to_number"),
        "variables": data.get("variables", {}),
        "metadata": data.get("metadata", {}),
    }
    if data.get("timezone") is not None:
        recipient_doc["timezone"] = data["timezone"]
    recipient = None
    try:
        recipient = Recipient.model_validate(recipient_doc, context=limits.context())
    except ValidationError as exc:
        for p in problems_from(exc):
            path = p.path
            if path.startswith("phone"):
                path = "to_number" + path.removeprefix("phone")
            if path == "to_number" and "to_number" not in data:
                problems.append(Problem("to_number", None, "is required"))
            else:
                problems.append(Problem(path, p.value, p.rule))
    policy_doc = {
        k: v for k, v in data.items() if k not in _RECIPIENT_FIELDS and k != "agent_version_id"
    }
    if data.get("timezone") is not None:
        policy_doc["timezone"] = data["timezone"]  # also the fallback for the windows
    from_number = data.get("from_number")
    if from_number is not None:
        try:
            from_number = normalise_phone(from_number)
        except ValueError as exc:
            problems.append(Problem("from_number", from_number, str(exc)))
        else:
            if isinstance(policy_doc.get("call"), dict):
                policy_doc["call"] = {**policy_doc["call"], "caller_id": from_number}
    translation = translate_campaign(policy_doc, source="body", collect=True)
    problems.extend(translation.problems)
    policy = None
    try:
        policy = CampaignPolicy.model_validate(translation.data, context=limits.context())
    except ValidationError as exc:
        problems.extend(translation.rewrite(_caller_id_path(problems_from(exc))))
    if problems or recipient is None or policy is None:
        raise InvalidInput("body", problems)
    return SingleCall(recipient=recipient, policy=policy, formats=translation.format_names)


def _caller_id_path(problems: list[Problem]) -> list[Problem]:
    """`call.caller_id` came from `from_number`: name the field the user wrote."""
    return [
        Problem("from_number", p.value, p.rule) if p.path == "call.caller_id" else p
        for p in problems
    ]
