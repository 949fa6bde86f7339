"""What the `/v1` API reads and answers, as its OpenAPI schema documents it.

Separate from the Temporal payloads (redialer.payloads) and the SQL tables: the API's shapes are a
public contract of their own, versioned by the `/v1` prefix, and may not change when a workflow
input does.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, JsonValue

# ---- errors --------------------------------------------------------------------------------------


class ProblemOut(BaseModel):
    """One thing wrong with a request: where, what was there, and the rule it breaks."""

    path: str = Field(description="Where, e.g. `recipients[3].phone` (empty: the whole body).")
    value: JsonValue = Field(description="What was there (shortened when long).")
    rule: str


class ErrorOut(BaseModel):
    """Every refusal has this shape, whatever the status."""

    error: str = Field(description="A stable code: `invalid_input`, `not_found`, `conflict`, ...")
    message: str
    problems: list[ProblemOut] = []


# ---- campaigns -----------------------------------------------------------------------------------


class CampaignCreatedOut(BaseModel):
    campaign_id: str
    state: str
    workflow_id: str
    recipients: int = Field(description="Recipients accepted (a number listed twice counts once).")
    warnings: list[str] = []
    #: Where the spec came from when it was not in redialer's own format.
    translated_from: list[str] = []


class ProgressOut(BaseModel):
    """The same shape as `redialer progress --json`."""

    campaign_id: str
    state: str
    total: int
    final: int
    active: int
    by_status: dict[str, int]
    source: Literal["live", "store"]
    note: str | None = None
    lines: dict[str, dict[str, int | None]] = Field(
        default_factory=dict,
        description="Lines in use and calls waiting for one: `campaign`, and `account` (with its"
        " `cap`, REDIALER_MAX_CONCURRENT_CALLS, and `this_campaign`'s lines).",
    )


class ControlOut(BaseModel):
    campaign_id: str
    action: str
    state: str
    detail: str


class RecipientsAddedOut(BaseModel):
    campaign_id: str
    accepted: int = Field(description="Recipients handed to the campaign (duplicates merged).")
    warnings: list[str] = []


class OptOutIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    phone: str = Field(description="The number, E.164 (`+16505550199`).", max_length=64)


# ---- one recipient's call report -----------------------------------------------------------------


class CallOut(BaseModel):
    id: str | None = Field(description="The provider's call id (None: no call was placed).")
    status: str
    started_at: AwareDatetime
    ended_at: AwareDatetime


class AttemptOut(BaseModel):
    attempt: int
    outcome: str
    call: CallOut
    dialed: bool = True
    message_left: bool = False


class CallReportOut(BaseModel):
    """Gomobile's `/call-report` and DialNexa's retry history: every attempt of one recipient."""

    retry_group_id: str
    status: str = Field(
        description="A final status (`completed`, `all_retries_exhausted`, ...) once final;"
        " `scheduled`, `dialing` or `paused` before."
    )
    phone: str
    timezone: str
    attempts: list[AttemptOut]
    next_attempt_at: AwareDatetime | None
    final_reason: str | None = None
    source: Literal["live", "store"]
    note: str | None = None


# ---- single calls --------------------------------------------------------------------------------


class CallCreatedOut(BaseModel):
    call_id: str = Field(description="URL-safe; `GET /v1/calls/{call_id}` reads it.")
    retry_group_id: str = Field(description="Shared by every attempt (the workflow id).")
    status: str
    warnings: list[str] = []


class CallSummaryOut(BaseModel):
    """DialNexa's summary status of an API-triggered call, with every attempt."""

    call_id: str
    retry_group_id: str
    status: str = Field(
        description="`in_progress` until final, then `completed`, `all_retries_exhausted`,"
        " `voicemail_final`, `rejected_final`, `failed`, `invalid_number`, `dnd`, `opted_out`"
        " or `canceled`."
    )
    detail: str = Field(description="`scheduled`, `dialing` or `paused` while in progress.")
    phone: str
    attempts: list[AttemptOut]
    next_attempt_at: AwareDatetime | None
    final_reason: str | None = None
    source: Literal["live", "store"]


# ---- health --------------------------------------------------------------------------------------


class HealthOut(BaseModel):
    status: Literal["ok"]


class ReadyOut(BaseModel):
    status: Literal["ready", "not_ready"]
    checks: dict[str, str] = Field(description="`ok`, or why not, for `temporal` and `store`.")


def problem_out(path: str, value: Any, rule: str) -> ProblemOut:
    """A problem whose value is JSON and short (a 2 MB value is not echoed back)."""
    if not isinstance(value, (str, int, float, bool, type(None))):
        value = repr(value)
    if isinstance(value, str) and len(value) > 200:
        value = value[:197] + "..."
    return ProblemOut(path=path, value=value, rule=rule)
