"""Property tests of the pure schedule (`next_step`) over random policies, zones and start times.

Every oracle here is written from the spec (DESIGN.md and the raw policy document), not from
`allowed_time`, `windows` or the strategies: an instant is turned into the recipient's local wall
time with zoneinfo and checked against the windows as a person reads them. The schedule is driven
the way `plan.py` and the recipient workflow drive it: dial at `decision.at`, the call lasts
0-300 s, the next `now` is the end of the call.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from redialer.campaign import CampaignPolicy
from redialer.limits import Limits
from redialer.outcomes import FinalStatus, Outcome
from redialer.schedule import DialAt, Final, next_step

ZONES = [
    "America/New_York",
    "Europe/London",
    "Asia/Kolkata",
    "Australia/Lord_Howe",  # 30-minute DST shift
    "UTC",
    "America/Sao_Paulo",
    "America/Havana",  # DST changes at local midnight
]
DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
DAY = 24 * 60
LIMITS = Limits()
STRATEGY_KINDS = ("none", "fixed_delay", "attempts", "exponential", "scheduled", "time_of_day")
RETRYABLE = ["no_answer", "busy", "voicemail", "rejected", "failed"]
DEFAULT_RETRY_ON = ["no_answer", "busy", "failed"]
#: DESIGN.md: the final status an outcome leads to when it is not (or no longer) retried.
STATUS_IF_NOT_RETRIED = {
    "completed": "completed",
    "no_answer": "all_retries_exhausted",
    "busy": "all_retries_exhausted",
    "voicemail": "voicemail_final",
    "rejected": "rejected_final",
    "failed": "failed",
    "invalid_number": "invalid_number",
    "dnd": "dnd",
    "canceled": "canceled",
}
MICRO = timedelta(microseconds=1)
#: Float tolerance on delays (seconds); timedelta has microsecond resolution.
EPS = 1e-3

PROFILE = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


# --- DST transitions, found by scanning zoneinfo (2025-2027) ---------------------------------


def _transitions(zone: ZoneInfo) -> list[datetime]:
    found = []
    t = datetime(2024, 12, 20, tzinfo=UTC)
    step = timedelta(hours=6)
    while t < datetime(2028, 1, 10, tzinfo=UTC):
        if t.astimezone(zone).utcoffset() != (t + step).astimezone(zone).utcoffset():
            lo, hi = t, t + step
            while hi - lo > timedelta(seconds=1):
                mid = lo + (hi - lo) / 2
                if mid.astimezone(zone).utcoffset() == lo.astimezone(zone).utcoffset():
                    lo = mid
                else:
                    hi = mid
            found.append(hi.replace(microsecond=0))
        t += step
    return found


TRANSITIONS = {name: _transitions(ZoneInfo(name)) for name in ZONES}


def near_transition(zone_name: str, t: datetime, margin: timedelta = timedelta(hours=3)) -> bool:
    return any(abs(t - x) <= margin for x in TRANSITIONS[zone_name])


def test_transition_table_covers_the_zones_that_shift():
    """The DST bias has something to bias towards: each shifting zone changes twice a year."""
    for name in ("America/New_York", "Europe/London", "Australia/Lord_Howe", "America/Havana"):
        assert len(TRANSITIONS[name]) >= 6, name
    for name in ("Asia/Kolkata", "UTC", "America/Sao_Paulo"):
        assert TRANSITIONS[name] == [], name


# --- the independent oracle: wall-clock reading of the raw policy document ---------------------


def parse_hhmm(text: str) -> int:
    hour, minute = text.split(":")
    return int(hour) * 60 + int(minute)


def end_of(text: str) -> int:
    """An end as the spec reads it: 23:59 and 24:00 both mean the end of the day."""
    m = parse_hhmm(text)
    return DAY if m >= DAY - 1 else m


def wall_minute(t: datetime, zone: ZoneInfo) -> tuple[int, float]:
    local = t.astimezone(zone)
    return local.weekday(), local.hour * 60 + local.minute + (
        local.second + local.microsecond / 1e6
    ) / 60


def forbidden_at(raw: dict[str, Any], t: datetime, zone: ZoneInfo) -> str | None:
    """The rule of the raw policy that forbids local wall time `t`, or None."""
    weekday, minute = wall_minute(t, zone)
    today, yesterday = DAYS[weekday], DAYS[(weekday - 1) % 7]
    for r in raw.get("pause_windows", {}).get(today, []):
        start, end = parse_hhmm(r["start"]), end_of(r["end"])
        if (start <= minute < end) if start < end else start <= minute:
            return f"pause {today} {r['start']}-{r['end']}"
    for r in raw.get("pause_windows", {}).get(yesterday, []):
        start, end = parse_hhmm(r["start"]), end_of(r["end"])
        if end < start and minute < end:
            return f"pause {yesterday} {r['start']}-{r['end']} (after midnight)"
    hours = raw.get("calling_hours")
    if hours is not None:
        start, end = parse_hhmm(hours["start"]), end_of(hours["end"])
        allowed = start <= minute < end if start < end else minute >= start or minute < end
        if not allowed:
            return f"outside calling hours {hours['start']}-{hours['end']}"
    return None


def local_date(t: datetime, zone: ZoneInfo) -> date:
    return t.astimezone(zone).date()


def cap_full(case: Case, t: datetime, made: list[Made]) -> bool:
    cap = case.raw.get("max_attempts_per_day")
    day = local_date(t, case.zone)
    return (
        cap is not None
        and sum(1 for a in made if local_date(a.started_at, case.zone) == day) >= cap
    )


def retry_budget(strategy: dict[str, Any]) -> int:
    kind = strategy["type"]
    if kind == "none":
        return 0
    if kind == "attempts":
        return len(strategy["delays"])
    if kind == "scheduled":
        return len(strategy["retry_at"])
    if kind == "time_of_day" and strategy.get("max_retries") is None:
        return len(strategy["times"])
    return strategy["max_retries"]


def configured_delay(case: Case, retry_number: int) -> float:
    """The delay before retry `retry_number` (1-based), before jitter, from the raw document."""
    s, seconds = case.raw["retry"]["strategy"], case.seconds
    if s["type"] == "fixed_delay":
        return seconds["delay"]
    if s["type"] == "attempts":
        return seconds["delays"][retry_number - 1]
    cap = seconds.get("max_delay") or LIMITS.max_delay_seconds  # no max_delay: the limit caps it
    return min(seconds["initial_delay"] * s["multiplier"] ** (retry_number - 1), cap)


def outcome_cap(raw: dict[str, Any], outcome: str) -> int | None:
    caps = raw["retry"].get("max_retries_by_outcome", {})
    return caps.get(outcome, 1 if outcome == "failed" else None)


def retry_on(raw: dict[str, Any]) -> list[str]:
    return raw["retry"].get("retry_on", DEFAULT_RETRY_ON)


def wall_readings(day: date, minute: int, zone_name: str) -> list[datetime]:
    """The instants at which local wall time `day minute` happens: once, twice (a DST fold),
    or, when the clock skips it (a DST gap), at the jump or read with the offset of before."""
    zone = ZoneInfo(zone_name)
    wall = datetime(day.year, day.month, day.day, minute // 60, minute % 60)
    readings = [wall.replace(tzinfo=zone, fold=f).astimezone(UTC) for f in (0, 1)]
    shown = [r for r in readings if r.astimezone(zone).replace(tzinfo=None) == wall]
    if shown:
        return sorted(set(shown))
    low, high = min(readings), max(readings)
    return [x for x in TRANSITIONS[zone_name] if low < x <= high] + [high]


# --- generating cases ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Made:
    outcome: Outcome
    started_at: datetime
    ended_at: datetime


@dataclass
class Case:
    raw: dict[str, Any]
    seconds: dict[str, Any]  # the strategy's durations in seconds, as generated
    policy: CampaignPolicy
    zone_name: str
    start: datetime
    outcomes: list[Outcome]
    calls: list[float]
    seed: int

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.zone_name)


@dataclass
class Run:
    nows: list[datetime] = field(default_factory=list)
    dials: list[DialAt] = field(default_factory=list)
    made: list[Made] = field(default_factory=list)
    final: Final | None = None


minute_of_day = st.one_of(
    st.integers(0, DAY - 1).map(lambda m: m - m % 15),  # on the grid DST gaps fall on
    st.integers(0, DAY - 1),
)
hhmm = minute_of_day.map(lambda m: f"{m // 60:02}:{m % 60:02}")
end_hhmm = st.one_of(hhmm, st.sampled_from(["23:59", "24:00", "00:00"]))
time_range = st.fixed_dictionaries({"start": hhmm, "end": end_hhmm}).filter(
    lambda r: parse_hhmm(r["start"]) != end_of(r["end"])
)
jitter = st.sampled_from([0.0, 0.0, 0.05, 0.1, 0.5])


@st.composite
def duration(draw: st.DrawFn, low: int = 1, high: int = int(LIMITS.max_delay_seconds)) -> tuple:
    """(what the document says, seconds): a number or an ISO 8601 duration."""
    s = draw(st.integers(low, high))
    form = draw(st.sampled_from(["int", "float", "iso"]))
    if form == "float":
        return float(s), float(s)
    if form == "iso":
        h, rest = divmod(s, 3600)
        m, sec = divmod(rest, 60)
        text = "PT" + (f"{h}H" if h else "") + (f"{m}M" if m else "") + (f"{sec}S" if sec else "")
        return text, float(s)
    return s, float(s)


@st.composite
def strategy_doc(
    draw: st.DrawFn, start: datetime, kinds: tuple[str, ...] = STRATEGY_KINDS
) -> tuple[dict[str, Any], dict[str, Any]]:
    kind = draw(st.sampled_from(kinds))
    doc: dict[str, Any] = {"type": kind}
    seconds: dict[str, Any] = {}
    retries = st.integers(0, LIMITS.max_retries)
    if kind == "fixed_delay":
        (doc["delay"], seconds["delay"]), doc["max_retries"] = draw(duration()), draw(retries)
    elif kind == "attempts":
        pairs = draw(st.lists(duration(), min_size=1, max_size=LIMITS.max_retries))
        doc["delays"], seconds["delays"] = [p[0] for p in pairs], [p[1] for p in pairs]
    elif kind == "exponential":
        doc["initial_delay"], seconds["initial_delay"] = draw(duration())
        doc["multiplier"] = draw(st.sampled_from([1, 1.5, 2, 3, 10]))
        doc["max_retries"] = draw(retries)
        if draw(st.booleans()):
            doc["max_delay"], seconds["max_delay"] = draw(duration())
    elif kind == "scheduled":
        offsets = draw(
            st.lists(st.integers(-3 * 86400, 20 * 86400), min_size=1, max_size=20, unique=True)
        )
        doc["retry_at"] = [(start + timedelta(seconds=s)).isoformat() for s in offsets]
    elif kind == "time_of_day":
        doc["times"] = draw(st.lists(hhmm, min_size=1, max_size=5, unique=True))
        doc["max_retries"] = draw(st.none() | retries)
    if kind != "none" and draw(st.booleans()):
        doc["jitter"] = draw(jitter)
    return doc, seconds


@st.composite
def start_time(draw: st.DrawFn, zone_name: str) -> datetime:
    transitions = TRANSITIONS[zone_name]
    near_a_change: bool = draw(st.booleans())
    if transitions and near_a_change:  # within two days either side of a DST change
        around = draw(st.sampled_from(transitions))
        return around + timedelta(seconds=draw(st.integers(-2 * 86400, 2 * 86400)))
    naive = draw(st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2027, 12, 31)))
    return naive.replace(tzinfo=UTC)


outcome = st.one_of(
    st.sampled_from([Outcome.NO_ANSWER, Outcome.BUSY]),  # the common case: keep retrying
    st.sampled_from(list(Outcome)),
)


@st.composite
def cases(draw: st.DrawFn, kinds: tuple[str, ...] = STRATEGY_KINDS) -> Case:
    zone_name = draw(st.sampled_from(ZONES))
    start = draw(start_time(zone_name))
    strategy, seconds = draw(strategy_doc(start, kinds))
    retry: dict[str, Any] = {"strategy": strategy}
    if draw(st.booleans()):
        retry["retry_on"] = draw(st.lists(st.sampled_from(RETRYABLE), unique=True))
    if draw(st.booleans()):
        retry["max_retries_by_outcome"] = draw(
            st.dictionaries(st.sampled_from(RETRYABLE), st.integers(0, 5), max_size=3)
        )
    raw: dict[str, Any] = {
        "timezone": zone_name,
        "retry": retry,
        "pause_windows": draw(
            st.dictionaries(st.sampled_from(DAYS), st.lists(time_range, max_size=3), max_size=5)
        ),
    }
    if draw(st.booleans()):
        raw["calling_hours"] = draw(time_range)
    if draw(st.booleans()):
        raw["max_attempts_per_day"] = draw(st.integers(1, 5))
    try:
        policy = CampaignPolicy.model_validate(raw, context=LIMITS.context())
    except ValidationError:
        assume(False)  # e.g. windows that leave no minute of the week: refused, not scheduled
        raise  # unreachable
    return Case(
        raw=raw,
        seconds=seconds,
        policy=policy,
        zone_name=zone_name,
        start=start,
        outcomes=draw(st.lists(outcome, min_size=1, max_size=LIMITS.max_retries + 2)),
        calls=draw(
            st.lists(
                st.floats(0, 300, allow_nan=False), min_size=LIMITS.max_retries + 2, max_size=25
            )
        ),
        seed=draw(st.integers(0, 2**32 - 1)),
    )


SHIFTING = [name for name in ZONES if TRANSITIONS[name]]


@st.composite
def dst_night_cases(draw: st.DrawFn, kind: str = "fixed_delay") -> Case:
    """Dense retries through a DST change, with window and hour boundaries in the gap or fold
    (or, for `time_of_day`, listed times there)."""
    zone_name = draw(st.sampled_from(SHIFTING))
    zone = ZoneInfo(zone_name)
    change = draw(st.sampled_from(TRANSITIONS[zone_name]))
    before, after = (change - MICRO).astimezone(zone), change.astimezone(zone)
    day = after.weekday()
    # The wall minutes the change skips or repeats: the short arc between the two readings.
    a, b = (t.hour * 60 + t.minute for t in (before, after))
    low, width = (a, (b - a) % DAY) if (b - a) % DAY <= 90 else (b, (a - b) % DAY)

    def hhmm_of(m: int) -> str:
        m = (m - m % 5) % DAY
        return f"{m // 60:02}:{m % 60:02}"

    inside = st.integers(low, low + width).map(hhmm_of)  # in the gap or the fold
    near = st.integers(low - 90, low + width + 90).map(hhmm_of)
    window = st.one_of(
        st.fixed_dictionaries({"start": inside, "end": near}),
        st.fixed_dictionaries({"start": near, "end": inside}),
    ).filter(lambda r: r["start"] != r["end"])
    delay = draw(st.integers(60, 1200))
    strategy: dict[str, Any] = {"type": "fixed_delay", "delay": delay, "max_retries": 20}
    if kind == "time_of_day":
        times = draw(st.lists(inside | near, min_size=1, max_size=4, unique=True))
        strategy = {"type": "time_of_day", "times": times, "max_retries": 6}
        if draw(st.booleans()):
            strategy["jitter"] = draw(jitter)
    raw: dict[str, Any] = {
        "timezone": zone_name,
        "retry": {"strategy": strategy, "retry_on": ["busy"]},
        "pause_windows": {  # the change's day, and the day before (windows past midnight)
            DAYS[d]: draw(st.lists(window, min_size=1, max_size=2)) for d in (day, (day - 1) % 7)
        },
    }
    if draw(st.booleans()):
        raw["calling_hours"] = draw(window)
    try:
        policy = CampaignPolicy.model_validate(raw, context=LIMITS.context())
    except ValidationError:
        assume(False)
        raise
    return Case(
        raw=raw,
        seconds={"delay": float(delay)},
        policy=policy,
        zone_name=zone_name,
        start=change
        + timedelta(minutes=draw(st.integers(-1440 if kind == "time_of_day" else -240, 60))),
        outcomes=[Outcome.BUSY],
        calls=draw(st.lists(st.floats(0, 300), min_size=22, max_size=22)),
        seed=0,
    )


def drive(case: Case, *, seed: int | None = None) -> Run:
    """Walk the schedule as plan.py does; fail if it has not ended after budget + 1 attempts."""
    rng = random.Random(case.seed if seed is None else seed)
    run = Run()
    now = case.start
    limit = retry_budget(case.raw["retry"]["strategy"]) + 1
    while True:
        decision = next_step(case.policy, zone=case.zone, attempts=run.made, now=now, rng=rng)
        run.nows.append(now)
        if isinstance(decision, Final):
            run.final = decision
            return run
        assert len(run.made) < limit, f"attempt {decision.attempt} beyond budget + 1 = {limit}"
        assert decision.attempt == len(run.made) + 1
        run.dials.append(decision)
        i = len(run.made)
        ended = decision.at + timedelta(seconds=case.calls[i])
        run.made.append(Made(case.outcomes[i % len(case.outcomes)], decision.at, ended))
        now = ended


# --- properties ---------------------------------------------------------------------------------


@PROFILE
@given(cases())
def test_no_attempt_in_a_pause_window_or_outside_calling_hours(case: Case):
    """Every planned attempt, the first included, is at an allowed local wall time."""
    run = drive(case)
    for d in run.dials:
        broken = forbidden_at(case.raw, d.at, case.zone)
        assert broken is None, (
            f"attempt {d.attempt} at {d.at.astimezone(case.zone).isoformat()} "
            f"({DAYS[d.at.astimezone(case.zone).weekday()]}): {broken}"
        )


@settings(PROFILE, max_examples=400)  # the gap and the fold are small targets
@given(dst_night_cases())
def test_no_attempt_at_a_forbidden_wall_time_on_dst_nights(case: Case):
    """Through a DST gap or fold, no dial lands at a local time a window or the hours forbid."""
    run = drive(case)
    for d in run.dials:
        broken = forbidden_at(case.raw, d.at, case.zone)
        assert broken is None, (
            f"attempt {d.attempt} at {d.at.astimezone(case.zone).isoformat()}"
            f" (fold={d.at.astimezone(case.zone).fold}): {broken}"
        )


@PROFILE
@given(cases(), st.integers(1, 3 * 86400))
def test_no_attempt_before_its_delay_before_now_or_before_due(case: Case, lag: int):
    """A dial is never before now or its due time; due respects the delay and the jitter bound."""
    run = drive(case)
    for i, now in enumerate(run.nows):  # asked late too (a worker was down): still never before now
        late = now + timedelta(seconds=lag)
        d = next_step(
            case.policy, zone=case.zone, attempts=run.made[:i], now=late, rng=random.Random(0)
        )
        if isinstance(d, DialAt):
            assert d.at >= late and d.at >= d.due, (d, late)
    strategy = case.raw["retry"]["strategy"]
    j = strategy.get("jitter", 0.0)
    for i, d in enumerate(run.dials):
        now = run.nows[i]
        assert d.at >= d.due, d
        assert d.at >= now, d
        if i == 0:
            assert d.due == case.start  # the first attempt is due at once
            continue
        previous_end = run.made[i - 1].ended_at
        assert previous_end == now
        if strategy["type"] in ("fixed_delay", "attempts", "exponential"):
            delay = configured_delay(case, i)
            waited = (d.due - previous_end).total_seconds()
            assert delay * (1 - j) - EPS <= waited <= delay * (1 + j) + EPS, (i, delay, waited)
            assert (d.at - previous_end).total_seconds() >= delay * (1 - j) - EPS
        elif strategy["type"] == "scheduled":
            listed = sorted(datetime.fromisoformat(t) for t in strategy["retry_at"])
            upcoming = [t for t in listed if t > previous_end]
            assert upcoming, "a retry was planned with no listed time left"
            assert upcoming[0] <= d.due <= upcoming[0] + timedelta(seconds=j * 3600) + MICRO


@settings(PROFILE, max_examples=300)
@given(cases(kinds=("time_of_day",)) | dst_night_cases(kind="time_of_day"))
def test_time_of_day_retries_come_at_the_next_listed_local_time(case: Case):
    """time_of_day: due is the next time the local clock shows a listed time, never earlier."""
    strategy = case.raw["retry"]["strategy"]
    run = drive(case)
    minutes = sorted(parse_hhmm(t) for t in strategy["times"])
    j = strategy.get("jitter", 0.0)
    for i, d in enumerate(run.dials[1:], start=1):
        previous_end = run.made[i - 1].ended_at
        first_day = local_date(previous_end, case.zone)
        expected = min(
            t
            for k in range(3)
            for m in minutes
            for t in wall_readings(first_day + timedelta(days=k), m, case.zone_name)
            if t > previous_end
        )
        # Around a DST change the strategy may take a later reading of the same wall time.
        slack = 3600 if near_transition(case.zone_name, expected, timedelta(hours=2)) else 0
        assert expected <= d.due <= expected + timedelta(seconds=j * 3600 + slack) + MICRO, (
            f"retry {i}: due {d.due.astimezone(case.zone)}, expected "
            f"{expected.astimezone(case.zone)} (+{j * 3600 + slack:g} s)"
        )


@PROFILE
@given(cases())
def test_attempt_counts_stay_within_budget_outcome_caps_and_daily_cap(case: Case):
    """Attempts never exceed budget + 1, a per-outcome retry cap, or the daily cap per local day."""
    run = drive(case)
    assert len(run.made) <= retry_budget(case.raw["retry"]["strategy"]) + 1
    for name in RETRYABLE:
        cap = outcome_cap(case.raw, name)
        if cap is not None:
            retried_after = sum(1 for a in run.made[:-1] if a.outcome == name)
            assert retried_after <= cap, (name, cap, [a.outcome for a in run.made])
    for a in run.made[:-1]:  # only an outcome in retry_on ever leads to another attempt
        assert a.outcome in retry_on(case.raw)
    cap = case.raw.get("max_attempts_per_day")
    if cap is not None:
        per_day: dict[date, int] = {}
        for a in run.made:
            day = local_date(a.started_at, case.zone)
            per_day[day] = per_day.get(day, 0) + 1
        assert max(per_day.values()) <= cap, per_day


@PROFILE
@given(cases())
def test_the_schedule_always_ends_with_the_right_final_status(case: Case):
    """next_step never raises, ends within budget + 1 attempts, and with the spec's final status."""
    run = drive(case)  # raises if next_step raises or the budget is overrun
    assert run.final is not None and run.made, "the first attempt is always planned"
    last = run.made[-1].outcome.value
    strategy = case.raw["retry"]["strategy"]
    cap = outcome_cap(case.raw, last)
    if last not in retry_on(case.raw):
        expected = STATUS_IF_NOT_RETRIED[last]
    elif cap is not None and sum(1 for a in run.made[:-1] if a.outcome == last) >= cap:
        expected = STATUS_IF_NOT_RETRIED[last]
    else:
        expected = "all_retries_exhausted"
        budget_left = len(run.made) <= retry_budget(strategy)
        if budget_left:  # only a scheduled list can run out before its budget: all times past
            assert strategy["type"] == "scheduled", run.final
            listed = [datetime.fromisoformat(t) for t in strategy["retry_at"]]
            assert not [t for t in listed if t > run.made[-1].ended_at]
    assert run.final.status == FinalStatus(expected), (run.final, last)


@PROFILE
@given(cases())
def test_a_dial_time_is_moved_only_as_far_as_the_rules_require(case: Case):
    """Deferrals chain from the due time to `at`; just before `at` a rule still forbids calling."""
    run = drive(case)
    for i, d in enumerate(run.dials):
        base = max(d.due, run.nows[i])
        if d.at == base:
            assert d.deferred == []
            continue
        assert d.deferred, "moved without a reason"
        assert d.deferred[0].moved_from == base
        assert d.deferred[-1].moved_to == d.at
        for a, b in zip(d.deferred, d.deferred[1:], strict=False):
            assert a.moved_to == b.moved_from
        for x in d.deferred:
            assert x.moved_from < x.moved_to
        made = run.made[:i]
        for t in (base, d.at - MICRO):
            if near_transition(case.zone_name, t):
                continue  # a window may grow by the DST shift there (read conservatively)
            assert forbidden_at(case.raw, t, case.zone) or cap_full(case, t, made), (
                f"attempt {d.attempt}: {t.astimezone(case.zone)} is allowed, yet the dial was "
                f"moved from {base.astimezone(case.zone)} to {d.at.astimezone(case.zone)}"
            )


@PROFILE
@given(cases(), st.integers(0, 2**32 - 1))
def test_same_inputs_and_seed_give_the_same_decisions(case: Case, other_seed: int):
    """Deterministic: the same inputs and rng seed give the same plan; without jitter, any seed."""
    first, again = drive(case), drive(case)
    assert first.dials == again.dials and first.final == again.final
    for i, now in enumerate(first.nows):  # one call, replayed with a fresh rng of the same seed
        a = next_step(
            case.policy, zone=case.zone, attempts=first.made[:i], now=now, rng=random.Random(7)
        )
        b = next_step(
            case.policy, zone=case.zone, attempts=first.made[:i], now=now, rng=random.Random(7)
        )
        assert a == b
    if not case.raw["retry"]["strategy"].get("jitter"):
        other = drive(case, seed=other_seed)
        assert other.dials == first.dials and other.final == first.final
