"""Property tests of the pure schedule over random policies, zones, windows and start times.

The oracle is written here, independently of `allowed_time`: it converts each planned instant to
the recipient's local wall time and checks it against the windows as a person would read them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from redialer.campaign import CampaignPolicy
from redialer.outcomes import RETRYABLE_OUTCOMES, Outcome
from redialer.schedule import DialAt, Final, next_step
from redialer.strategies import ABSOLUTE_JITTER_SPAN

ZONES = [
    "America/New_York",
    "Europe/London",
    "Asia/Kolkata",
    "Australia/Lord_Howe",
    "UTC",
    "America/Sao_Paulo",
]
#: DST transition days (and neighbours) worth biasing start times towards.
TRANSITIONS = [
    datetime(2026, 3, 8),
    datetime(2026, 11, 1),
    datetime(2026, 3, 29),
    datetime(2026, 10, 25),
    datetime(2026, 4, 5),
    datetime(2026, 10, 4),
    datetime(2025, 3, 9),
    datetime(2027, 3, 14),
]
DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
PROFILE = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@dataclass(frozen=True)
class Made:
    outcome: Outcome
    started_at: datetime
    ended_at: datetime


def hhmm(minute: int) -> str:
    return f"{minute // 60:02}:{minute % 60:02}"


minutes = st.integers(0, 24 * 60 - 1).map(lambda m: m - m % 15)
ranges = st.tuples(minutes, st.one_of(minutes, st.just(24 * 60 - 1))).filter(lambda r: r[0] != r[1])


def time_range(r: tuple[int, int]) -> dict[str, str]:
    return {"start": hhmm(r[0]), "end": hhmm(r[1])}


delay = st.integers(1, 10_800)
jitter = st.sampled_from([0.0, 0.0, 0.1, 0.3])
strategies = st.one_of(
    st.just({"type": "none"}),
    st.builds(
        lambda d, n, j: {"type": "fixed_delay", "delay": d, "max_retries": n, "jitter": j},
        delay,
        st.integers(0, 20),
        jitter,
    ),
    st.builds(
        lambda ds, j: {"type": "attempts", "delays": ds, "jitter": j},
        st.lists(delay, min_size=1, max_size=20),
        jitter,
    ),
    st.builds(
        lambda i, m, c, n, j: {
            "type": "exponential",
            "initial_delay": i,
            "multiplier": m,
            "max_delay": max(i, c),
            "max_retries": n,
            "jitter": j,
        },
        delay,
        st.sampled_from([1, 1.5, 2, 3]),
        delay,
        st.integers(0, 20),
        jitter,
    ),
    st.builds(
        lambda ts, j: {"type": "scheduled", "retry_at": ts, "jitter": j},
        st.lists(st.integers(-3 * 86400, 20 * 86400), min_size=1, max_size=20),
        jitter,
    ),
    st.builds(
        lambda ts, n, j: {
            "type": "time_of_day",
            "times": [hhmm(t) for t in ts],
            "max_retries": n,
            "jitter": j,
        },
        st.lists(minutes, min_size=1, max_size=5),
        st.integers(0, 20),
        jitter,
    ),
)


@st.composite
def policies(draw: st.DrawFn) -> tuple[CampaignPolicy, datetime]:
    start = draw(
        st.one_of(
            st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2027, 12, 31)),
            st.builds(
                lambda d, h: d + timedelta(hours=h),
                st.sampled_from(TRANSITIONS),
                st.integers(-48, 48),
            ),
        )
    ).replace(tzinfo=UTC)
    strategy = draw(strategies)
    if strategy["type"] == "scheduled":  # absolute times around the start
        strategy["retry_at"] = [
            (start + timedelta(seconds=s)).isoformat() for s in strategy["retry_at"]
        ]
    fields = {
        "timezone": draw(st.sampled_from(ZONES)),
        "retry": {
            "strategy": strategy,
            "retry_on": draw(st.lists(st.sampled_from(sorted(RETRYABLE_OUTCOMES)), unique=True)),
            "max_retries_by_outcome": draw(
                st.dictionaries(
                    st.sampled_from(sorted(RETRYABLE_OUTCOMES)), st.integers(0, 5), max_size=3
                )
            ),
        },
        "pause_windows": draw(
            st.dictionaries(
                st.sampled_from(DAYS), st.lists(ranges.map(time_range), max_size=3), max_size=4
            )
        ),
        "calling_hours": draw(st.none() | ranges.map(time_range)),
        "max_attempts_per_day": draw(st.none() | st.integers(1, 5)),
    }
    try:
        policy = CampaignPolicy.model_validate(fields)
    except ValueError:
        assume(False)  # e.g. windows that forbid the whole week are refused at validation
    return policy, start


def forbidden_by_wall_clock(policy: CampaignPolicy, at: datetime, zone: ZoneInfo) -> str | None:
    """The rule a local wall time breaks, read as a person reads the spec."""
    t = at.astimezone(zone)
    minute = t.hour * 60 + t.minute + t.second / 60
    today, yesterday = DAYS[t.weekday()], DAYS[(t.weekday() - 1) % 7]

    def end(r: object) -> int:
        e = r.end  # type: ignore[attr-defined]
        return 24 * 60 if e >= 24 * 60 - 1 else e

    for r in policy.pause_windows.get(today, []):  # type: ignore[call-overload]
        if (r.start <= minute < end(r)) if r.start < end(r) else minute >= r.start:
            return f"pause {today} {r.label()}"
    for r in policy.pause_windows.get(yesterday, []):  # type: ignore[call-overload]
        if end(r) < r.start and minute < end(r):
            return f"pause {yesterday} {r.label()} (past midnight)"
    hours = policy.calling_hours
    if hours is not None:
        inside = (
            hours.start <= minute < end(hours)
            if hours.start < end(hours)
            else minute >= hours.start or minute < end(hours)
        )
        if not inside:
            return f"outside calling hours {hours.label()}"
    return None


def drive(
    policy: CampaignPolicy,
    start: datetime,
    zone_name: str,
    outcomes: list[Outcome],
    calls: list[int],
    seed: int,
) -> tuple[list[DialAt], list[Made], Final]:
    zone = ZoneInfo(zone_name)
    rng = random.Random(seed)
    made: list[Made] = []
    dials: list[DialAt] = []
    now = start
    for i in range(60):
        d = next_step(policy, zone=zone, attempts=made, now=now, rng=rng)
        if isinstance(d, Final):
            return dials, made, d
        dials.append(d)
        ended = d.at + timedelta(seconds=calls[i % len(calls)])
        made.append(Made(outcomes[i % len(outcomes)], d.at, ended))
        now = ended
    raise AssertionError("the schedule never reached a final status")


outcome_lists = st.lists(st.sampled_from(list(Outcome)), min_size=1, max_size=25)
call_lists = st.lists(st.integers(0, 300), min_size=1, max_size=5)


@PROFILE
@given(policies(), outcome_lists, call_lists, st.integers(0, 2**16))
def test_no_attempt_in_a_pause_window_or_outside_calling_hours(case, outcomes, calls, seed):
    """Every planned attempt is at an allowed local wall time in the recipient's zone."""
    policy, start = case
    dials, _, _ = drive(policy, start, policy.timezone, outcomes, calls, seed)
    for d in dials:
        broken = forbidden_by_wall_clock(policy, d.at, ZoneInfo(policy.timezone))
        assert broken is None, (
            f"attempt {d.attempt} at {d.at.astimezone(ZoneInfo(policy.timezone))}: {broken}"
        )


@PROFILE
@given(policies(), outcome_lists, call_lists, st.integers(0, 2**16))
def test_no_attempt_earlier_than_its_delay_or_now(case, outcomes, calls, seed):
    """A retry never comes before its delay (less jitter) after the previous call ended."""
    policy, start = case
    dials, made, _ = drive(policy, start, policy.timezone, outcomes, calls, seed)
    strategy = policy.retry.strategy
    for i, d in enumerate(dials):
        assert d.at >= d.due
        previous_end = made[i - 1].ended_at if i else start
        assert d.at >= previous_end
        if i and hasattr(strategy, "delay_for"):
            configured = strategy.delay_for(i)
            assert (d.at - previous_end).total_seconds() >= configured * (
                1 - strategy.jitter
            ) - 1e-6
        if i and strategy.type == "scheduled":
            listed = [t for t in strategy.retry_at if t > previous_end]
            assert listed and d.due >= listed[0]
            assert d.due <= listed[0] + timedelta(seconds=strategy.jitter * ABSOLUTE_JITTER_SPAN)


@PROFILE
@given(policies(), outcome_lists, call_lists, st.integers(0, 2**16))
def test_attempt_counts_stay_within_every_limit(case, outcomes, calls, seed):
    """Attempts never exceed the strategy's budget, a per-outcome cap, or the daily cap."""
    policy, start = case
    zone = ZoneInfo(policy.timezone)
    dials, made, final = drive(policy, start, policy.timezone, outcomes, calls, seed)
    assert len(made) <= policy.retry.strategy.retry_budget() + 1
    for outcome in RETRYABLE_OUTCOMES:
        cap = policy.retry.cap_for(outcome)
        if cap is not None:
            retried_after = sum(1 for a in made[:-1] if a.outcome == outcome)
            assert retried_after <= cap
    if policy.max_attempts_per_day is not None:
        per_day: dict[object, int] = {}
        for a in made:
            day = a.started_at.astimezone(zone).date()
            per_day[day] = per_day.get(day, 0) + 1
        assert max(per_day.values(), default=0) <= policy.max_attempts_per_day
    # Only retryable outcomes ever lead to another attempt.
    for a in made[:-1]:
        assert a.outcome in policy.retry.retry_on
    assert isinstance(final, Final)


@PROFILE
@given(policies(), outcome_lists, call_lists, st.integers(0, 2**16))
def test_same_inputs_same_decisions(case, outcomes, calls, seed):
    """The schedule is deterministic given the rng seed: replaying it gives the same plan."""
    policy, start = case
    first = drive(policy, start, policy.timezone, outcomes, calls, seed)
    again = drive(policy, start, policy.timezone, outcomes, calls, seed)
    assert first[0] == again[0] and first[2] == again[2]
