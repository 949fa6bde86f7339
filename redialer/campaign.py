"""The campaign spec: who to call, and the rules every attempt obeys."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from redialer.call_spec import CallSpec
from redialer.compliance import check_names
from redialer.outcomes import RETRYABLE_OUTCOMES, Outcome
from redialer.recipients import Recipient, ZoneName
from redialer.strategies import NoRetry, RetryCount, RetryStrategy
from redialer.windows import DAY_MINUTES, PauseWindows, TimeRange, Weekday

#: Out of the box, `failed` (a network error) is retried once: the same error is likely to repeat.
DEFAULT_RETRY_ON = (Outcome.NO_ANSWER, Outcome.BUSY, Outcome.FAILED)
DEFAULT_OUTCOME_CAPS = {Outcome.FAILED: 1}


class RetryPolicy(BaseModel):
    """Which outcomes retry, how often each may, and on what schedule."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    strategy: RetryStrategy = Field(default_factory=NoRetry)
    retry_on: list[Outcome] = Field(default_factory=lambda: list(DEFAULT_RETRY_ON))
    max_retries_by_outcome: dict[Outcome, RetryCount] = Field(default_factory=dict)

    @field_validator("retry_on")
    @classmethod
    def _only_retryable(cls, value: list[Outcome]) -> list[Outcome]:
        for outcome in value:
            if outcome not in RETRYABLE_OUTCOMES:
                raise ValueError(
                    f"{outcome.value} is never retried; retry_on takes "
                    + ", ".join(sorted(o.value for o in RETRYABLE_OUTCOMES))
                )
        return sorted(set(value), key=list(Outcome).index)

    @field_validator("max_retries_by_outcome")
    @classmethod
    def _caps(cls, value: dict[Outcome, int]) -> dict[Outcome, int]:
        for outcome in value:
            if outcome not in RETRYABLE_OUTCOMES:
                raise ValueError(f"{outcome.value} is never retried, so it takes no cap")
        return value

    def cap_for(self, outcome: Outcome) -> int | None:
        """How many retries `outcome` may trigger; `failed` defaults to once."""
        if outcome in self.max_retries_by_outcome:
            return self.max_retries_by_outcome[outcome]
        return DEFAULT_OUTCOME_CAPS.get(outcome)


class CampaignPolicy(BaseModel):
    """The rules of a campaign without its recipient list: what each recipient workflow carries."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timezone: ZoneName = "UTC"
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    pause_windows: PauseWindows = Field(default_factory=dict)
    calling_hours: TimeRange | None = None
    max_attempts_per_day: int | None = Field(default=None, ge=1)
    max_concurrent_calls: int | None = Field(default=None, ge=1)
    max_calls_per_second: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    #: The campaign's weight in the account's lines (REDIALER_MAX_CONCURRENT_CALLS): campaigns
    #: waiting for lines get them in proportion to their priorities.
    priority: float = Field(default=1.0, gt=0, le=1000, allow_inf_nan=False)
    #: What an answered call does (a real provider needs it; the simulator ignores it).
    call: CallSpec | None = None
    #: Calling-time laws (`redialer.compliance`): rule names, or "auto" for every rule that
    #: covers a recipient's number. They narrow calling hours and windows, never widen them.
    compliance: list[str] | Literal["auto"] | None = None

    @field_validator("compliance", mode="before")
    @classmethod
    def _known_rules(cls, value: object) -> object:
        return check_names(value)

    @model_validator(mode="after")
    def _some_time_left(self) -> CampaignPolicy:
        if not self.allowed_minutes_per_week():
            raise ValueError(
                "pause_windows and calling_hours together forbid every minute of the week:"
                " no call could ever be placed"
            )
        return self

    def allowed_minutes_per_week(self) -> int:
        """Minutes of an ordinary (DST-free) week in which a call may be placed."""
        week = bytearray(7 * DAY_MINUTES)  # 1 = forbidden

        def forbid(day: int, start: int, end: int) -> None:
            """Slices, not a loop over minutes: this runs whenever a policy is decoded."""
            lo, hi = day * DAY_MINUTES + start, day * DAY_MINUTES + end
            for a, b in ((lo, min(hi, len(week))), (0, max(0, hi - len(week)))):  # Sunday wraps
                if b > a:
                    week[a:b] = b"\x01" * (b - a)

        for weekday, ranges in self.pause_windows.items():
            for r in ranges:
                forbid(weekday.number, r.start, r.end_minute + (DAY_MINUTES * r.crosses_midnight))
        if self.calling_hours is not None:
            hours = self.calling_hours
            for day in range(7):
                if hours.crosses_midnight:
                    forbid(day, hours.end_minute, hours.start)
                else:
                    forbid(day, 0, hours.start)
                    forbid(day, hours.end_minute, DAY_MINUTES)
        return week.count(0)

    def windows_for(self, weekday: Weekday) -> list[TimeRange]:
        return self.pause_windows.get(weekday, [])


class CampaignSpec(CampaignPolicy):
    """What `redialer start campaign.json` reads (YAML too)."""

    campaign_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
    long_living: bool = False
    recipients: list[Recipient] = Field(default_factory=list)

    def policy(self) -> CampaignPolicy:
        """The rules alone: small enough to hand every recipient workflow."""
        return CampaignPolicy.model_validate(
            self.model_dump(exclude={"campaign_id", "long_living", "recipients"})
        )
