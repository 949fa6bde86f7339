"""Calling-time laws per recipient (`compliance`): they narrow the campaign's windows, never
widen them, and hold in every zone an ambiguous number may ring in.

The oracle is written from the statutes' hours and a hand-made table of which law covers which
test number, not from `redialer.compliance`: an instant is read as local wall time with zoneinfo
in each candidate zone and checked against the hours, as a person reads them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from redialer.allowed_time import DeferralReason, NoAllowedTime, next_allowed
from redialer.campaign import CampaignPolicy
from redialer.outcomes import Outcome
from redialer.plan import plan_attempts
from redialer.zones import recipient_zone_name, zones_of_number
from tests.test_schedule_properties import forbidden_at

#: The laws' local hours, [start, end) in minutes, copied from the statutes (see SOURCES).
HOURS = {
    "us_tcpa": (8 * 60, 21 * 60),
    "us_florida": (8 * 60, 20 * 60),
    "in_trai": (9 * 60, 21 * 60),
    "us_oklahoma": (8 * 60, 20 * 60),
    "us_maryland": (8 * 60, 20 * 60),
}
CAPPED = {"us_florida", "us_oklahoma", "us_maryland"}  # at most 3 calls in any rolling 24 h
ALL = list(HOURS)

#: Test numbers and the laws that cover each, by hand (area code -> state, country code).
PHONES: dict[str, set[str]] = {
    "+12125550123": {"us_tcpa"},  # New York
    "+13055550123": {"us_tcpa", "us_florida"},  # Miami
    "+18502345678": {"us_tcpa", "us_florida"},  # Florida panhandle (Central time)
    "+14055550123": {"us_tcpa", "us_oklahoma"},  # Oklahoma City
    "+19182345678": {"us_tcpa", "us_oklahoma"},  # Tulsa
    "+14105550123": {"us_tcpa", "us_maryland"},  # Baltimore
    "+12272345678": {"us_tcpa", "us_maryland"},  # Maryland overlay
    "+14805550123": {"us_tcpa"},  # Arizona: no DST
    "+12085550123": {"us_tcpa"},  # Idaho: Mountain and Pacific
    "+16055550123": {"us_tcpa"},  # South Dakota: Central and Mountain
    "+13065550123": set(),  # Saskatchewan: +1 but not the US
    "+919876543210": {"in_trai"},
    "+447911123456": set(),  # UK mobile
    "+61412345678": set(),  # Australian mobile: many zones, no rule covers it
}
CAMPAIGN_ZONES = ["America/New_York", "Europe/London", "Asia/Kolkata", "Australia/Sydney", "UTC"]
OWN_ZONES = ["America/Los_Angeles", "Australia/Perth", "Pacific/Auckland", "America/Chicago"]
DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
START = datetime(2026, 1, 1, tzinfo=UTC)
END = datetime(2028, 12, 31, tzinfo=UTC)


#: Property cases in total over the four property tests; REDIALER_PROPERTY_EXAMPLES sets it (the
#: suite runs 3,000; the evidence run in the README took 100,000).
TOTAL_EXAMPLES = int(os.environ.get("REDIALER_PROPERTY_EXAMPLES", "3000"))


def _examples(share: float) -> int:
    return max(1, round(TOTAL_EXAMPLES * share))


PROFILE = dict(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    database=None,
)


def _transitions(names: set[str]) -> list[datetime]:
    """DST changes of `names` in 2026-2028, found by scanning zoneinfo (to the minute)."""
    found = []
    for name in sorted(names):
        zone = ZoneInfo(name)
        t = START
        step = timedelta(hours=6)
        while t < END:
            if t.astimezone(zone).utcoffset() != (t + step).astimezone(zone).utcoffset():
                lo, hi = t, t + step
                while hi - lo > timedelta(minutes=1):
                    mid = lo + (hi - lo) / 2
                    if mid.astimezone(zone).utcoffset() == lo.astimezone(zone).utcoffset():
                        lo = mid
                    else:
                        hi = mid
                found.append(hi)
            t += step
    return sorted(found)


TRANSITIONS = _transitions(
    {z for p in PHONES for z in zones_of_number(p)} | set(CAMPAIGN_ZONES) | set(OWN_ZONES)
)


@dataclass
class Made:
    started_at: datetime


@dataclass
class Case:
    raw: dict[str, Any]
    policy: CampaignPolicy
    phone: str
    zone: ZoneInfo
    own_zone: bool
    start: datetime
    attempts: list[Made]


def hhmm(minute: int) -> str:
    return f"{minute // 60:02}:{minute % 60:02}"


@st.composite
def cases(draw: st.DrawFn, near_dst: bool = False, with_own_zone: bool = False) -> Case:
    raw: dict[str, Any] = {"timezone": draw(st.sampled_from(CAMPAIGN_ZONES))}
    if draw(st.booleans()):
        start = draw(st.integers(0, 23 * 60 + 59))
        end = draw(st.integers(0, 24 * 60).filter(lambda m: m != start))
        raw["calling_hours"] = {"start": hhmm(start), "end": hhmm(end) if end < 1440 else "24:00"}
    windows: dict[str, list[dict[str, str]]] = {}
    for _ in range(draw(st.integers(0, 3))):
        day = draw(st.sampled_from(DAYS))
        a = draw(st.integers(0, 24 * 60 - 1))
        b = (a + draw(st.integers(1, 24 * 60 - 1))) % (24 * 60)  # never a
        windows.setdefault(day, []).append({"start": hhmm(a), "end": hhmm(b)})
    if windows:
        raw["pause_windows"] = windows
    if draw(st.booleans()):
        raw["max_attempts_per_day"] = draw(st.integers(1, 4))
    raw["compliance"] = draw(
        st.one_of(st.just("auto"), st.lists(st.sampled_from(ALL), min_size=1, max_size=5))
    )
    try:
        policy = CampaignPolicy.model_validate(raw)
    except ValidationError:
        assume(False)
        raise
    phone = draw(st.sampled_from(list(PHONES)))
    own = draw(st.sampled_from(OWN_ZONES)) if with_own_zone else None
    zone_name = recipient_zone_name(own=own, phone=phone, campaign=policy.timezone)
    if near_dst:
        start_at = draw(st.sampled_from(TRANSITIONS)) + timedelta(
            minutes=draw(st.integers(-36 * 60, 36 * 60))
        )
    else:
        start_at = START + timedelta(
            seconds=draw(st.integers(0, int((END - START).total_seconds())))
        )
    attempts = [
        Made(start_at - timedelta(minutes=m))
        for m in sorted(draw(st.lists(st.integers(0, 48 * 60), max_size=5)), reverse=True)
    ]
    return Case(raw, policy, phone, ZoneInfo(zone_name), own is not None, start_at, attempts)


# --- the oracle ----------------------------------------------------------------------------------


def binding(case: Case) -> set[str]:
    named = set(ALL) if case.raw["compliance"] == "auto" else set(case.raw["compliance"])
    return named & PHONES[case.phone]


def rule_zones(case: Case) -> list[ZoneInfo]:
    """The recipient's own zone; else every candidate zone of an ambiguous number."""
    candidates = zones_of_number(case.phone)
    if case.own_zone or len(candidates) <= 1:
        return [case.zone]
    return [ZoneInfo(name) for name in candidates]


def law_forbids(case: Case, t: datetime) -> str | None:
    for name in binding(case):
        start, end = HOURS[name]
        for zone in rule_zones(case):
            local = t.astimezone(zone)
            minute = local.hour * 60 + local.minute + (local.second + local.microsecond / 1e6) / 60
            if not start <= minute < end:
                return f"{name} in {zone}: {local:%H:%M:%S}"
        if name in CAPPED:
            recent = [a for a in case.attempts if t - timedelta(hours=24) < a.started_at <= t]
            if len(recent) >= 3:
                return f"{name}: {len(recent)} calls in the 24 h before {t}"
    return None


def campaign_forbids(case: Case, t: datetime) -> str | None:
    why = forbidden_at(case.raw, t, case.zone)
    if why:
        return why
    cap = case.raw.get("max_attempts_per_day")
    day = t.astimezone(case.zone).date()
    if (
        cap is not None
        and sum(a.started_at.astimezone(case.zone).date() == day for a in case.attempts) >= cap
    ):
        return "daily cap"
    return None


COUNT = {"cases": 0, "no_time": 0}


def check(case: Case) -> None:
    COUNT["cases"] += 1
    try:
        at, deferred = next_allowed(
            case.start,
            policy=case.policy,
            zone=case.zone,
            attempts=case.attempts,
            phone=case.phone,
            own_zone=case.own_zone,
        )
    except NoAllowedTime:
        COUNT["no_time"] += 1
        # Then no instant of a week and a day may be allowed by both (sampled every 30 min).
        for step in range(0, 8 * 24 * 2):
            t = case.start + timedelta(minutes=30 * step)
            assert campaign_forbids(case, t) or law_forbids(case, t), t
        return
    assert at >= case.start
    assert law_forbids(case, at) is None, (law_forbids(case, at), at)
    assert campaign_forbids(case, at) is None, (campaign_forbids(case, at), at)
    # The rules narrow, never widen: the campaign alone allows `at`, and allows nothing later
    # than the campaign alone would.
    alone, _ = next_allowed(case.start, policy=case.policy, zone=case.zone, attempts=case.attempts)
    assert alone <= at
    again, moved = next_allowed(at, policy=case.policy, zone=case.zone, attempts=case.attempts)
    assert (again, moved) == (at, [])
    for d in deferred:
        if d.reason is DeferralReason.COMPLIANCE:
            assert d.rule.split(":")[0] in binding(case), d.rule


@settings(max_examples=_examples(0.3), **PROFILE)  # type: ignore[arg-type]
@given(cases())
def test_rules_hold_in_every_candidate_zone_at_any_start(case: Case) -> None:
    check(case)


@settings(max_examples=_examples(0.3), **PROFILE)  # type: ignore[arg-type]
@given(cases(near_dst=True))
def test_rules_hold_across_dst_changes(case: Case) -> None:
    check(case)


@settings(max_examples=_examples(0.15), **PROFILE)  # type: ignore[arg-type]
@given(cases(with_own_zone=True))
def test_the_recipients_own_zone_is_the_only_zone(case: Case) -> None:
    check(case)


RETRYABLE = [Outcome.NO_ANSWER, Outcome.BUSY, Outcome.FAILED]


@st.composite
def strategies(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["fixed_delay", "exponential", "time_of_day", "attempts"]))
    retries = draw(st.integers(1, 6))
    jitter = draw(st.sampled_from([0.0, 0.1, 0.5]))
    if kind == "fixed_delay":
        return {
            "type": kind,
            "delay": draw(st.integers(60, 10800)),
            "max_retries": retries,
            "jitter": jitter,
        }
    if kind == "exponential":
        return {
            "type": kind,
            "initial_delay": draw(st.integers(60, 3600)),
            "multiplier": 2.0,
            "max_delay": 10800,
            "max_retries": retries,
            "jitter": jitter,
        }
    if kind == "attempts":
        return {
            "type": kind,
            "delays": draw(st.lists(st.integers(60, 10800), min_size=1, max_size=6)),
            "jitter": jitter,
        }
    times = draw(st.lists(st.integers(0, 24 * 60 - 1), min_size=1, max_size=4))
    return {
        "type": kind,
        "times": [hhmm(t) for t in times],
        "max_retries": retries,
        "jitter": jitter,
    }


@st.composite
def plans(draw: st.DrawFn) -> tuple[Case, int, list[Outcome]]:
    case = draw(cases(near_dst=draw(st.booleans()), with_own_zone=draw(st.booleans())))
    raw = {
        **case.raw,
        "retry": {
            "strategy": draw(strategies()),
            "retry_on": ["no_answer", "busy", "failed"],
            "max_retries_by_outcome": {"failed": 6},
        },
    }
    try:
        case.policy = CampaignPolicy.model_validate(raw)
    except ValidationError:
        assume(False)
    case.raw = raw
    outcomes = draw(st.lists(st.sampled_from(RETRYABLE), min_size=1, max_size=7))
    return case, draw(st.integers(0, 2**32 - 1)), outcomes


COUNT["planned"] = 0


@settings(max_examples=_examples(0.25), **PROFILE)  # type: ignore[arg-type]
@given(plans())
def test_every_attempt_of_a_whole_plan_keeps_the_rules(drawn: tuple[Case, int, list[Outcome]]):
    """`redialer plan` walks the function the runtime walks: every attempt it places, first and
    retries, with jitter, across DST and windows, is allowed by the rules and the campaign, given
    the attempts planned before it (the rolling three-call caps and the daily cap count those)."""
    case, seed, outcomes = drawn
    COUNT["cases"] += 1
    own = str(case.zone) if case.own_zone else None
    try:
        planned = plan_attempts(
            case.policy,
            phone=case.phone,
            recipient_timezone=own,
            start=case.start,
            outcomes=outcomes,
            seed=seed,
        )
    except NoAllowedTime:
        COUNT["no_time"] += 1
        return
    assert planned.timezone == str(case.zone)
    made: list[Made] = []
    for attempt in planned.attempts:
        at = attempt.at.astimezone(UTC)
        so_far = Case(case.raw, case.policy, case.phone, case.zone, case.own_zone, at, made)
        assert law_forbids(so_far, at) is None, (law_forbids(so_far, at), attempt)
        assert campaign_forbids(so_far, at) is None, (campaign_forbids(so_far, at), attempt)
        assert not made or at > made[-1].started_at
        COUNT["planned"] += 1
        made = [*made, Made(at)]


# --- examples ------------------------------------------------------------------------------------

NY = ZoneInfo("America/New_York")
IST = ZoneInfo("Asia/Kolkata")


def policy(**fields: Any) -> CampaignPolicy:
    return CampaignPolicy.model_validate(fields)


def test_florida_at_2030_waits_for_0800_under_us_florida_and_not_under_tcpa():
    t = datetime(2026, 6, 3, 20, 30, tzinfo=NY)
    at, deferred = next_allowed(
        t, policy=policy(compliance=["us_florida"]), zone=NY, phone="+13055550123"
    )
    assert at == datetime(2026, 6, 4, 8, 0, tzinfo=NY)
    (moved,) = deferred
    assert moved.reason is DeferralReason.COMPLIANCE
    assert (
        moved.rule == "us_florida: 08:00-20:00 local (Fla. Stat. 501.616(6)(a)-(b) (SB 1120, 2021))"
    )
    at, deferred = next_allowed(
        t, policy=policy(compliance=["us_tcpa"]), zone=NY, phone="+13055550123"
    )
    assert (at, deferred) == (t, [])


def test_indian_number_at_0830_ist_waits_for_0900():
    t = datetime(2026, 3, 10, 8, 30, tzinfo=IST)
    at, deferred = next_allowed(
        t, policy=policy(compliance=["in_trai"]), zone=IST, phone="+919876543210"
    )
    assert at == datetime(2026, 3, 10, 9, 0, tzinfo=IST)
    assert deferred[0].rule.startswith("in_trai: 09:00-21:00 local (TRAI")


def test_an_australian_mobile_needs_the_hours_in_perth_and_sydney(monkeypatch: pytest.MonkeyPatch):
    """No shipped rule covers +61; a test rule with US hours does, to see the intersection."""
    from redialer import compliance

    aus = compliance.ComplianceRule("us_tcpa", 8 * 60, 21 * 60, lambda p: p.startswith("+61"))
    monkeypatch.setitem(compliance.RULES, "us_tcpa", aus)
    phone = "+61412345678"
    perth, sydney = ZoneInfo("Australia/Perth"), ZoneInfo("Australia/Sydney")
    assert {"Australia/Perth", "Australia/Sydney"} <= set(zones_of_number(phone))
    p = policy(timezone="Australia/Sydney", compliance=["us_tcpa"])
    # 10:00 in Sydney (winter, +10) is 08:00 in Perth (+8): but Lord Howe, Darwin, Eucla and the
    # islands ring too; the allowed instants are those inside 08:00-21:00 in all of them.
    for hour in range(24):
        t = datetime(2026, 7, 1, hour, 0, tzinfo=sydney)
        at, _ = next_allowed(t, policy=p, zone=sydney, phone=phone)
        in_all = all(8 <= t.astimezone(ZoneInfo(z)).hour < 21 for z in zones_of_number(phone))
        assert (at == t) == in_all, (hour, at)
        if at == t:
            assert 8 <= t.astimezone(perth).hour and t.astimezone(sydney).hour < 21
    t = datetime(2026, 7, 1, 9, 0, tzinfo=sydney)  # 07:00 in Perth
    at, deferred = next_allowed(t, policy=p, zone=sydney, phone=phone)
    assert at.astimezone(perth).hour >= 8 and deferred[0].reason is DeferralReason.COMPLIANCE
    # The recipient's own zone is then the only zone.
    at, _ = next_allowed(t, policy=p, zone=sydney, phone=phone, own_zone=True)
    assert at == t


def test_a_fourth_florida_call_within_24_h_waits_for_the_earliest_plus_24_h():
    p = policy(compliance=["us_florida"])
    first = datetime(2026, 6, 3, 9, 0, tzinfo=NY)
    made = [Made(first), Made(first + timedelta(hours=2)), Made(first + timedelta(hours=4))]
    t = first + timedelta(hours=6)
    at, deferred = next_allowed(t, policy=p, zone=NY, attempts=made, phone="+13055550123")
    assert at == first + timedelta(hours=24)
    assert deferred[-1].rule.startswith("us_florida: at most 3 calls in 24 h")
    # Under the TCPA alone nothing caps it.
    at, _ = next_allowed(
        t, policy=policy(compliance=["us_tcpa"]), zone=NY, attempts=made, phone="+13055550123"
    )
    assert at == t


def test_auto_picks_the_rules_that_cover_the_number():
    p = policy(compliance="auto")
    t = datetime(2026, 6, 3, 21, 30, tzinfo=NY)  # after 21:00 ET and after 21:00 IST? no: 07:00 IST
    at, deferred = next_allowed(t, policy=p, zone=NY, phone="+12125550123")
    assert [d.rule.split(":")[0] for d in deferred] == ["us_tcpa"]
    at, deferred = next_allowed(t, policy=p, zone=IST, phone="+919876543210")
    assert [d.rule.split(":")[0] for d in deferred] == ["in_trai"]
    assert at == datetime(2026, 6, 4, 9, 0, tzinfo=IST)
    london = ZoneInfo("Europe/London")
    at, deferred = next_allowed(t, policy=p, zone=london, phone="+447911123456")
    assert (at, deferred) == (t, [])


def test_an_unknown_rule_is_refused_naming_the_field_the_value_and_the_known_rules():
    with pytest.raises(ValidationError) as exc:
        policy(compliance=["us_tcpa", "us_texas"])
    (error,) = exc.value.errors()
    assert error["loc"] == ("compliance",)
    assert "'us_texas'" in error["msg"] and "us_florida" in error["msg"]


def test_no_compliance_is_todays_behaviour():
    t = datetime(2026, 6, 3, 23, 30, tzinfo=NY)
    assert next_allowed(t, policy=policy(), zone=NY, phone="+13055550123") == (t, [])


def test_plan_names_the_rule_and_the_zones_it_held_in():
    p = policy(compliance=["us_tcpa"])
    result = plan_attempts(
        p,
        phone="+12085550123",  # Idaho: Mountain and Pacific
        recipient_timezone=None,
        start=datetime(2026, 6, 3, 7, 30, tzinfo=ZoneInfo("America/Denver")),
        outcomes=[Outcome.COMPLETED],
    )
    assert result.compliance_zones == ["America/Boise", "America/Los_Angeles"]
    (moved,) = result.attempts[0].deferred
    assert moved.rule.startswith("us_tcpa: 08:00-21:00 local")
    assert result.attempts[0].at == datetime(
        2026, 6, 3, 8, 0, tzinfo=ZoneInfo("America/Los_Angeles")
    )


def test_property_count_is_reported(capsys: pytest.CaptureFixture[str]):
    """Not a check: prints how many cases the property tests ran in this session."""
    with capsys.disabled():
        print(
            f"\ncompliance property cases: {COUNT['cases']} ({COUNT['no_time']} with no time,"
            f" {COUNT['planned']} planned attempts checked)"
        )


async def test_a_number_no_rule_lets_the_campaign_call_ends_failed_not_retried_forever(store):
    """Calling hours 21:00-23:00 under us_tcpa (08:00-21:00) leave a US number no minute: the
    dial is refused for good (the recipient ends `failed`), it does not retry for ever."""
    from temporalio.exceptions import ApplicationError
    from temporalio.testing import ActivityEnvironment

    from activities.dialing import DialActivities
    from redialer.dialers.simulated import DialLedger, SimulatedDialer
    from redialer.payloads import DialInput

    policy = CampaignPolicy.model_validate(
        {
            "timezone": "America/New_York",
            "calling_hours": {"start": "21:00", "end": "23:00"},
            "compliance": ["us_tcpa"],
        }
    )
    dialing = DialActivities(store=store, dialer=SimulatedDialer(ledger=DialLedger(store)))
    call = DialInput(
        campaign_id="c1",
        retry_group_id="campaign/c1/recipient/+12125550101",
        phone="+12125550101",
        zone="America/New_York",
        policy=policy.model_dump(mode="json"),
        attempt=1,
    )
    with pytest.raises(ApplicationError) as refused:
        await ActivityEnvironment().run(dialing.dial, call)
    assert refused.value.non_retryable and "no time is allowed" in refused.value.message
    assert DialLedger(store).dials_for("+12125550101") == []


@pytest.mark.parametrize("bad", [[{}], [[]], [1], {"us_tcpa": True}, 3])
def test_a_compliance_value_of_the_wrong_shape_is_refused_naming_the_field(bad: object) -> None:
    """Found by the API's fuzzing: `[{}]` crashed the check (500) instead of a 422."""
    with pytest.raises(ValidationError, match="compliance"):
        CampaignPolicy.model_validate({"timezone": "UTC", "compliance": bad})
