"""The seven retry strategies: how long to wait, or until when, before retry number N.

Each strategy answers one question: given the retry number (1 for the first retry), when the
previous attempt ended and the recipient's zone, what is the earliest time the retry may be
placed. Pause windows, calling hours and the daily cap are applied afterwards by the schedule,
which only ever moves that time forward. `smart` also gives a latest time: the schedule picks
the hour between the two with the best expected answer rate (`redialer.answer_rates`).
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from redialer.durations import Seconds
from redialer.limits import delay_within_limit, list_within_retry_limit, retries_within_limit
from redialer.windows import DAY_MINUTES, LocalTime
from redialer.zones import local_to_utc

#: A configured delay, checked against the product limit where a spec enters the system.
Delay = Annotated[Seconds, AfterValidator(delay_within_limit)]
#: A retry count, likewise.
RetryCount = Annotated[int, Field(ge=0), AfterValidator(retries_within_limit)]

#: The longest an exponential delay grows when no max_delay was set (no limits context).
UNCAPPED_GROWTH_LIMIT = 366 * 86400.0

#: Absolute-time strategies spread retries forward by at most `jitter` x this many seconds.
ABSOLUTE_JITTER_SPAN = 3600.0


class _Strategy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    jitter: float = Field(
        default=0.0,
        ge=0.0,
        le=0.5,
        description="Spread each delay by up to ±this fraction, so a batch does not retry at once.",
    )

    def retry_budget(self) -> int:
        """How many retries the strategy allows at most (attempts = budget + 1)."""
        raise NotImplementedError

    def earliest_retry(
        self,
        *,
        retry_number: int,
        last_ended_at: datetime,
        now: datetime,
        zone: ZoneInfo,
        rng: random.Random,
    ) -> datetime | None:
        """The earliest time for retry `retry_number`, or None when the strategy has no more."""
        raise NotImplementedError

    def _spread(self, delay: float, rng: random.Random) -> float:
        if not self.jitter:
            return delay
        return delay * (1.0 + self.jitter * (2.0 * rng.random() - 1.0))

    def _spread_forward(self, at: datetime, rng: random.Random) -> datetime:
        if not self.jitter:
            return at
        return at + timedelta(seconds=self.jitter * ABSOLUTE_JITTER_SPAN * rng.random())


class _DelayStrategy(_Strategy):
    def delay_for(self, retry_number: int) -> float:
        raise NotImplementedError

    def earliest_retry(
        self,
        *,
        retry_number: int,
        last_ended_at: datetime,
        now: datetime,
        zone: ZoneInfo,
        rng: random.Random,
    ) -> datetime | None:
        if retry_number > self.retry_budget():
            return None
        delay = self._spread(self.delay_for(retry_number), rng)
        return last_ended_at + timedelta(seconds=delay)


class NoRetry(_Strategy):
    """One attempt only: for tests of a flow, one-shot notices, or retries handled elsewhere."""

    type: Literal["none"] = "none"

    def retry_budget(self) -> int:
        return 0

    def earliest_retry(self, **_: object) -> datetime | None:
        return None


class FixedDelay(_DelayStrategy):
    """The same wait before every retry."""

    type: Literal["fixed_delay"] = "fixed_delay"
    delay: Delay
    max_retries: RetryCount

    def retry_budget(self) -> int:
        return self.max_retries

    def delay_for(self, retry_number: int) -> float:
        return self.delay


class AttemptDelays(_DelayStrategy):
    """One delay per retry, in order (the seed products' "Attempt rows")."""

    type: Literal["attempts"] = "attempts"
    delays: Annotated[list[Delay], Field(min_length=1), AfterValidator(list_within_retry_limit)]

    def retry_budget(self) -> int:
        return len(self.delays)

    def delay_for(self, retry_number: int) -> float:
        return self.delays[retry_number - 1]


class Exponential(_DelayStrategy):
    """A delay that grows by `multiplier` each retry, capped at `max_delay`."""

    type: Literal["exponential"] = "exponential"
    initial_delay: Delay
    multiplier: float = Field(default=2.0, ge=1.0, le=10.0, allow_inf_nan=False)
    max_delay: Delay | None = None
    max_retries: RetryCount

    @model_validator(mode="before")
    @classmethod
    def _cap_by_limit(cls, data: object, info: ValidationInfo) -> object:
        # Without max_delay the delay would outgrow the product limit; the limit becomes the cap.
        limits = info.context.get("limits") if isinstance(info.context, dict) else None
        if isinstance(data, dict) and data.get("max_delay") is None and limits is not None:
            data = {**data, "max_delay": limits.max_delay_seconds}
        return data

    def retry_budget(self) -> int:
        return self.max_retries

    def delay_for(self, retry_number: int) -> float:
        # Grow step by step and stop at the cap (or, with none, at a year: a policy built in code
        # without the limits must still give a time `datetime` can hold).
        cap = self.max_delay if self.max_delay is not None else UNCAPPED_GROWTH_LIMIT
        delay = self.initial_delay
        for _ in range(retry_number - 1):
            delay *= self.multiplier
            if delay >= cap:
                return cap
        return min(delay, cap)


class Scheduled(_Strategy):
    """Retries at absolute times; a time already past when a retry is due is skipped."""

    type: Literal["scheduled"] = "scheduled"
    retry_at: Annotated[
        list[AwareDatetime], Field(min_length=1), AfterValidator(list_within_retry_limit)
    ]

    @field_validator("retry_at")
    @classmethod
    def _in_order(cls, value: list[datetime]) -> list[datetime]:
        return sorted(v.astimezone(UTC) for v in value)

    def retry_budget(self) -> int:
        return len(self.retry_at)

    def earliest_retry(
        self,
        *,
        retry_number: int,
        last_ended_at: datetime,
        now: datetime,
        zone: ZoneInfo,
        rng: random.Random,
    ) -> datetime | None:
        if retry_number > self.retry_budget():
            return None
        after = max(last_ended_at, now)
        upcoming = [t for t in self.retry_at if t > after]
        return self._spread_forward(upcoming[0], rng) if upcoming else None


class TimeOfDay(_Strategy):
    """Retries at the next listed local time of day after the previous attempt."""

    type: Literal["time_of_day"] = "time_of_day"
    times: list[LocalTime] = Field(min_length=1)
    max_retries: RetryCount | None = None

    @field_validator("times")
    @classmethod
    def _within_day(cls, value: list[int]) -> list[int]:
        if any(t >= DAY_MINUTES for t in value):
            raise ValueError("a time of day must be before 24:00")
        return sorted(set(value))

    def retry_budget(self) -> int:
        return len(self.times) if self.max_retries is None else self.max_retries

    def earliest_retry(
        self,
        *,
        retry_number: int,
        last_ended_at: datetime,
        now: datetime,
        zone: ZoneInfo,
        rng: random.Random,
    ) -> datetime | None:
        if retry_number > self.retry_budget():
            return None
        day = last_ended_at.astimezone(zone).date()
        for offset in range(3):  # a listed time always comes within two local days
            for minute in self.times:
                # Latest reading: a time in a DST gap or fold is never reached early.
                at = local_to_utc(day + timedelta(days=offset), minute, zone, earliest=False)
                if at > last_ended_at:
                    return self._spread_forward(at, rng)
        raise AssertionError("unreachable: a listed time of day always recurs")


#: A campaign to learn answer rates from: the pattern of `CampaignSpec.campaign_id` (which
#: imports this module, so it cannot be imported here).
CampaignRef = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")]
#: Campaigns one smart strategy may learn from: every recipient workflow carries the list.
MAX_LEARN_FROM = 100


class Smart(_Strategy):
    """Retries in the local hour most likely to be answered, `min_delay` to `max_delay` after
    the previous attempt (the seed products' "smart interval": based on past answer patterns).

    The schedule picks the hour (`redialer.answer_rates.choose_time`): answer rates learned from
    the call records of `learn_from` (absent: every campaign in the store), or the seed
    products' advice where there are none. Jitter moves the call later within its chosen hour,
    by up to `jitter` x 1 hour where that is still allowed, so a batch does not ring at once.
    """

    type: Literal["smart"] = "smart"
    max_retries: RetryCount
    min_delay: Delay
    max_delay: Delay
    learn_from: list[CampaignRef] | None = Field(default=None, max_length=MAX_LEARN_FROM)

    @field_validator("max_delay")
    @classmethod
    def _not_before_min_delay(cls, value: float, info: ValidationInfo) -> float:
        low = info.data.get("min_delay")  # absent when min_delay itself was refused
        if low is not None and value < low:
            raise ValueError(
                f"min_delay {low:g} s is more than max_delay {value:g} s: the retry would have"
                " no time to be placed in (min_delay must be at most max_delay)"
            )
        return value

    def retry_budget(self) -> int:
        return self.max_retries

    def earliest_retry(
        self,
        *,
        retry_number: int,
        last_ended_at: datetime,
        now: datetime,
        zone: ZoneInfo,
        rng: random.Random,
    ) -> datetime | None:
        """`min_delay` after the previous attempt; the hour is chosen by the schedule."""
        if retry_number > self.retry_budget():
            return None
        return last_ended_at.astimezone(UTC) + timedelta(seconds=self.min_delay)

    def latest_retry(self, last_ended_at: datetime) -> datetime:
        """The end of the span the hour is chosen in: `max_delay` after the previous attempt."""
        return last_ended_at.astimezone(UTC) + timedelta(seconds=self.max_delay)


RetryStrategy = Annotated[
    NoRetry | FixedDelay | AttemptDelays | Exponential | Scheduled | TimeOfDay | Smart,
    Field(discriminator="type"),
]

STRATEGY_TYPES = (
    "none",
    "fixed_delay",
    "attempts",
    "exponential",
    "scheduled",
    "time_of_day",
    "smart",
)
