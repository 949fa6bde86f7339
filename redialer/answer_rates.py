"""Answer rates by local hour of the week, and the smart strategy's choice of retry hour.

The seed products' "smart interval" retries "based on past answer patterns". An `AnswerRates`
table counts calls placed and answered by a person per local hour of the week (168 buckets,
Monday 00:00-01:00 is 0), so it stays the same size whatever the history. Each bucket's rate is
a Beta posterior: a prior from the seed documents' advice, worth `PRIOR_WEIGHT` calls, plus the
counts, so the advice decides while there are no records and the records decide once there are.

`choose_time` picks a retry time by Thompson sampling: one draw per candidate hour from its
posterior, the highest wins. Hours that answer well win most often, the others now and then, so
a campaign keeps learning about hours the prior undervalues. Pure: randomness only from the
`rng` the caller passes, so a seeded generator gives the same choice every time.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import NamedTuple, Self
from zoneinfo import ZoneInfo

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, NonNegativeInt, model_validator

HOURS_PER_WEEK = 7 * 24
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

#: What the prior is worth, in calls per hour of the week: a few days of a modest campaign's
#: calls in that hour outweigh it.
PRIOR_WEIGHT = 10.0

#: The seed documents' advice as a person-answer rate per local hour of a weekday: 10-11 AM and
#: 4-6 PM best ("answer rates are highest between 10-11 AM and 4-6 PM on weekdays"), lunch
#: (12-2 PM) the day's worst, afternoons good, evenings moderate, nights very low. The levels
#: follow their benchmarks (20-40 % of first attempts connect).
_WEEKDAY_HOURS = (
    *(0.02,) * 6,  # 00-05: asleep
    0.05,  # 06
    0.10,  # 07
    0.20,  # 08
    0.30,  # 09
    0.40,  # 10: best
    0.32,  # 11
    0.15,  # 12: lunch
    0.15,  # 13: lunch
    0.28,  # 14
    0.30,  # 15
    0.40,  # 16: best
    0.40,  # 17: best
    0.28,  # 18: evening
    0.24,  # 19
    0.18,  # 20
    0.10,  # 21
    0.05,  # 22
    0.03,  # 23
)
#: "Monday: often busy, moderate; Tuesday-Thursday: generally best; Friday: lower afternoon
#: rates; weekend: varies widely" (lower, unless the records say otherwise).
_DAY_FACTOR = (0.9, 1.0, 1.0, 1.0, 1.0, 0.7, 0.6)
_FRIDAY_AFTERNOON = 0.85

#: How far ahead `choose_time` looks: every hour of the week comes once in 7 days, and a later
#: repeat of an hour is no better than its first allowed occurrence (a day more covers a cap).
WALK_HORIZON = timedelta(days=8)
_QUARTER = timedelta(minutes=15)


def prior_rate(hour_of_week: int) -> float:
    """The seed documents' expected answer rate for a local hour of the week."""
    weekday, hour = divmod(hour_of_week, 24)
    factor = _DAY_FACTOR[weekday]
    if weekday == 4 and hour >= 14:
        factor = _FRIDAY_AFTERNOON
    return _WEEKDAY_HOURS[hour] * factor


def hour_of_week(t: datetime, zone: ZoneInfo) -> int:
    """The local hour of the week `t` falls in (Monday 00:00-01:00 is 0)."""
    local = t.astimezone(zone)
    return local.weekday() * 24 + local.hour


def hour_label(hour_of_week: int) -> str:
    """`Tue 16:00`, as a person reads a bucket."""
    weekday, hour = divmod(hour_of_week, 24)
    return f"{WEEKDAYS[weekday][:3].title()} {hour:02}:00"


class HourCount(NamedTuple):
    """Calls placed and answered in one local weekday and hour (Monday = 0), as queried."""

    weekday: int
    hour: int
    attempts: int
    answered: int


class AnswerRates(BaseModel):
    """Calls placed and answered by a person per local hour of the week, with the prior."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    attempts: list[NonNegativeInt] = Field(
        default_factory=lambda: [0] * HOURS_PER_WEEK,
        min_length=HOURS_PER_WEEK,
        max_length=HOURS_PER_WEEK,
    )
    answered: list[NonNegativeInt] = Field(
        default_factory=lambda: [0] * HOURS_PER_WEEK,
        min_length=HOURS_PER_WEEK,
        max_length=HOURS_PER_WEEK,
    )
    prior_weight: float = Field(default=PRIOR_WEIGHT, gt=0, le=1e6, allow_inf_nan=False)

    @model_validator(mode="after")
    def _answered_within_attempts(self) -> AnswerRates:
        for how, (n, k) in enumerate(zip(self.attempts, self.answered, strict=True)):
            if k > n:
                raise ValueError(
                    f"answered[{how}]: {k} answered of {n} calls at {hour_label(how)}:"
                    " a bucket cannot answer more calls than were placed"
                )
        return self

    @classmethod
    def from_rows(cls, rows: Iterable[HourCount], *, prior_weight: float = PRIOR_WEIGHT) -> Self:
        """Sum grouped counts into buckets (a weekday and hour may come more than once)."""
        attempts, answered = [0] * HOURS_PER_WEEK, [0] * HOURS_PER_WEEK
        for weekday, hour, n, k in rows:
            if not (0 <= weekday < 7 and 0 <= hour < 24):
                raise ValueError(
                    f"weekday {weekday}, hour {hour}: a weekday is 0-6 (Monday = 0), an hour 0-23"
                )
            attempts[weekday * 24 + hour] += n
            answered[weekday * 24 + hour] += k
        return cls(attempts=attempts, answered=answered, prior_weight=prior_weight)

    @property
    def calls(self) -> int:
        """Calls counted in the table (0: the prior alone decides)."""
        return sum(self.attempts)

    def posterior(self, hour_of_week: int) -> tuple[float, float]:
        """Beta(a, b) for the bucket: the prior's pseudo-counts plus answered and unanswered."""
        rate, weight = prior_rate(hour_of_week), self.prior_weight
        n, k = self.attempts[hour_of_week], self.answered[hour_of_week]
        return rate * weight + k, (1.0 - rate) * weight + (n - k)

    def expected_rate(self, hour_of_week: int) -> float:
        """The posterior mean: the prior's rate with no calls, the observed rate with many."""
        a, b = self.posterior(hour_of_week)
        return a / (a + b)

    def observed_rate(self, hour_of_week: int) -> float | None:
        n = self.attempts[hour_of_week]
        return self.answered[hour_of_week] / n if n else None


class TimeChoice(BaseModel):
    """The retry time chosen, and why: the hour's expected rate and the draw that won."""

    model_config = ConfigDict(frozen=True)

    #: The candidate taken (an hour start, the earliest instant, or one moved by `spread`).
    wanted: AwareDatetime
    #: The first allowed instant at or after `wanted`: when to dial.
    at: AwareDatetime
    hour_of_week: int
    expected_rate: float
    sampled: float | None  # None on the fallback: nothing was drawn
    allowed_hours: int  # candidate hours that were allowed
    fallback: bool  # nothing was allowed between earliest and latest
    local: str  # `at` on the recipient's clock, e.g. "Tue 16:20"

    @property
    def why(self) -> str:
        if self.fallback:
            return (
                "no allowed time between the earliest and the latest retry time: placed at the"
                f" first allowed time, {self.local} (expected answer rate {self.expected_rate:.0%})"
            )
        plural = "" if self.allowed_hours == 1 else "s"
        return (
            f"expected answer rate {self.expected_rate:.0%} at {hour_label(self.hour_of_week)}"
            f" (best of {self.allowed_hours} allowed hour{plural})"
        )


def local_hour_starts(after: datetime, until: datetime, zone: ZoneInfo) -> list[datetime]:
    """The instants in (after, until] at which a new local hour begins in `zone`.

    Walked in UTC quarter-hours, where every offset in use puts local hour starts and DST
    changes, and read back through zoneinfo: a local time the clock skips is never produced,
    the hour a DST gap shortens starts when the clock jumps into it, and an hour the clock
    repeats starts twice.
    """
    utc = after.astimezone(UTC)
    q = utc.replace(second=0, microsecond=0) - timedelta(minutes=utc.minute % 15)
    local = after.astimezone(zone)
    previous = (local.date(), local.hour)
    starts = []
    q += _QUARTER
    while q <= until:
        local = q.astimezone(zone)
        current = (local.date(), local.hour)
        if current != previous or (local.minute == 0 and local.second == 0):
            starts.append(q)
        previous = current
        q += _QUARTER
    return starts


def choose_time(
    *,
    earliest: datetime,
    latest: datetime,
    zone: ZoneInfo,
    allowed: Callable[[datetime], datetime],
    rates: AnswerRates,
    rng: random.Random,
    spread: float = 0.0,
) -> TimeChoice:
    """The retry time in [earliest, latest] whose local hour drew the best answer rate.

    Candidates are `earliest` and each local hour start after it (within `WALK_HORIZON`). A
    candidate is kept when `allowed(c)` (the first allowed instant at or after `c`: windows,
    hours, caps, laws) falls in its own hour and not after `latest`. Each kept hour of the week
    draws one sample from its Beta posterior; the highest wins (ties: the earliest). `spread`
    seconds (jitter) move the call later within the hour where that is still allowed. With no
    candidate kept, the first allowed time after `earliest` is taken, and `fallback` says so.
    """
    earliest, latest = earliest.astimezone(UTC), latest.astimezone(UTC)  # exact arithmetic
    walk_end = min(max(latest, earliest), earliest + WALK_HORIZON)
    # Three hours past the walk: the hour after the last candidate has begun by then.
    starts = local_hour_starts(earliest, walk_end + timedelta(hours=3), zone)
    candidates = [earliest] + [s for s in starts if s <= walk_end]
    assert len(starts) >= len(candidates), "every candidate's hour ends within the walk"
    kept: list[tuple[datetime, datetime, datetime]] = []  # (candidate, allowed, its hour's end)
    reach: datetime | None = None  # allowed() of the last candidate: all before it is forbidden
    for candidate, hour_end in zip(candidates, starts, strict=False):
        at = reach if reach is not None and candidate <= reach else allowed(candidate)
        reach = at
        if at < hour_end and at <= latest:
            kept.append((candidate, at, hour_end))
    if not kept:
        return _choice(earliest, allowed(earliest), zone, rates, sampled=None, allowed_hours=0)
    samples: dict[int, float] = {}  # one draw per hour of the week, in the order first met
    best, best_sample = kept[0], -1.0
    for candidate, at, hour_end in kept:
        how = hour_of_week(at, zone)
        if how not in samples:
            samples[how] = rng.betavariate(*rates.posterior(how))
        if samples[how] > best_sample:  # strictly: on a tie the earlier hour stays
            best, best_sample = (candidate, at, hour_end), samples[how]
    wanted, at, hour_end = best
    if spread > 0:
        shifted = at + timedelta(seconds=spread * rng.random())
        if shifted < hour_end and shifted <= latest:
            moved = allowed(shifted)
            if moved < hour_end and moved <= latest:
                wanted, at = shifted, moved
    return _choice(wanted, at, zone, rates, sampled=best_sample, allowed_hours=len(kept))


def _choice(
    wanted: datetime,
    at: datetime,
    zone: ZoneInfo,
    rates: AnswerRates,
    *,
    sampled: float | None,
    allowed_hours: int,
) -> TimeChoice:
    """The choice of `at`, described: its hour, expected rate and local time (no allowed
    hour: the fallback)."""
    how = hour_of_week(at, zone)
    return TimeChoice(
        wanted=wanted,
        at=at,
        hour_of_week=how,
        expected_rate=rates.expected_rate(how),
        sampled=sampled,
        allowed_hours=allowed_hours,
        fallback=allowed_hours == 0,
        local=f"{at.astimezone(zone):%a %H:%M}",
    )


class HourOfWeekRow(BaseModel):
    """One bucket, for a report: calls, answers, the observed and the expected rate."""

    weekday: str
    hour: int
    calls: int
    answered: int
    observed_rate: float | None  # None: no calls in this hour
    expected_rate: float  # the posterior mean: the prior where there are few calls


def _rounded(rate: float | None) -> float | None:
    return None if rate is None else round(rate, 4)


def hour_of_week_table(rates: AnswerRates) -> list[HourOfWeekRow]:
    """The 168 buckets in order, Monday 00:00 first."""
    return [
        HourOfWeekRow(
            weekday=WEEKDAYS[how // 24],
            hour=how % 24,
            calls=rates.attempts[how],
            answered=rates.answered[how],
            observed_rate=_rounded(rates.observed_rate(how)),
            expected_rate=round(rates.expected_rate(how), 4),
        )
        for how in range(HOURS_PER_WEEK)
    ]
