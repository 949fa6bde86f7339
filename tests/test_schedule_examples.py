"""Worked examples from the seed products, through the pure schedule (`next_step`) and the plan."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from redialer.allowed_time import DeferralReason
from redialer.campaign import CampaignPolicy
from redialer.limits import Limits
from redialer.outcomes import FinalStatus, Outcome
from redialer.plan import Plan, plan_attempts
from redialer.schedule import DialAt, Final, next_step
from redialer.zones import recipient_zone_name

NY = ZoneInfo("America/New_York")
B, N, C, V, F, R = (
    Outcome.BUSY,
    Outcome.NO_ANSWER,
    Outcome.COMPLETED,
    Outcome.VOICEMAIL,
    Outcome.FAILED,
    Outcome.REJECTED,
)
NYC = "+12125550123"  # maps to America/New_York only


def policy(**fields: object) -> CampaignPolicy:
    return CampaignPolicy.model_validate(fields, context=Limits().context())


def plan(
    pol: CampaignPolicy,
    outcomes: list[Outcome],
    start: str,
    *,
    call: float = 0,
    phone: str = NYC,
    tz: str | None = None,
) -> Plan:
    return plan_attempts(
        pol,
        phone=phone,
        recipient_timezone=tz,
        start=datetime.fromisoformat(start),
        outcomes=outcomes,
        call_seconds=call,
    )


def local(p: Plan, i: int) -> str:
    return p.attempts[i].at.astimezone(ZoneInfo(p.timezone)).strftime("%a %H:%M")


@dataclass(frozen=True)
class Made:
    outcome: Outcome
    started_at: datetime
    ended_at: datetime


def test_attempt_delays_300_3600_10800():
    """The seed example: retries 5 min, 1 h and 3 h after each previous call ended."""
    p = plan(
        policy(retry={"strategy": {"type": "attempts", "delays": [300, 3600, 10800]}}),
        [B, N, B, N],
        "2026-11-24T10:00:00-05:00",
        call=30,
    )
    ats = [a.at for a in p.attempts]
    gaps = [(ats[i + 1] - ats[i]).total_seconds() - 30 for i in range(3)]
    assert gaps == [300, 3600, 10800]
    assert p.final_status is FinalStatus.ALL_RETRIES_EXHAUSTED


@pytest.mark.parametrize("retries", [0, 1, 3, 20])
def test_max_retries_n_gives_n_plus_one_attempts(retries: int):
    """`max_retries: N` allows attempts 2..N+1; 0 disables retries."""
    p = plan(
        policy(retry={"strategy": {"type": "fixed_delay", "delay": 1800, "max_retries": retries}}),
        [N] * 30,
        "2026-11-24T10:00:00-05:00",
    )
    assert len(p.attempts) == retries + 1
    assert p.final_status is FinalStatus.ALL_RETRIES_EXHAUSTED


def test_voicemail_final_unless_configured():
    """Voicemail ends `voicemail_final` by default and is retried when listed in retry_on."""
    fixed = {"type": "fixed_delay", "delay": 600, "max_retries": 3}
    p = plan(policy(retry={"strategy": fixed}), [V, C], "2026-11-24T10:00:00-05:00")
    assert (len(p.attempts), p.final_status) == (1, FinalStatus.VOICEMAIL_FINAL)
    p = plan(
        policy(retry={"strategy": fixed, "retry_on": ["voicemail"]}),
        [V, C],
        "2026-11-24T10:00:00-05:00",
    )
    assert (len(p.attempts), p.final_status) == (2, FinalStatus.COMPLETED)


def test_failed_is_retried_once_by_default():
    """A network failure is retried once; a second failure ends `failed`."""
    fixed = {"type": "fixed_delay", "delay": 600, "max_retries": 5}
    p = plan(policy(retry={"strategy": fixed}), [F, F, C], "2026-11-24T10:00:00-05:00")
    assert (len(p.attempts), p.final_status) == (2, FinalStatus.FAILED)
    p = plan(policy(retry={"strategy": fixed}), [F, B, C], "2026-11-24T10:00:00-05:00")
    assert (len(p.attempts), p.final_status) == (3, FinalStatus.COMPLETED)
    p = plan(
        policy(retry={"strategy": fixed, "max_retries_by_outcome": {"failed": 3}}),
        [F, F, F, F],
        "2026-11-24T10:00:00-05:00",
    )
    assert (len(p.attempts), p.final_status) == (4, FinalStatus.FAILED)


@pytest.mark.parametrize(
    ("outcome", "status"),
    [
        (Outcome.INVALID_NUMBER, FinalStatus.INVALID_NUMBER),
        (Outcome.DND, FinalStatus.DND),
        (C, FinalStatus.COMPLETED),
        (Outcome.CANCELED, FinalStatus.CANCELED),
        (R, FinalStatus.REJECTED_FINAL),
    ],
)
def test_outcomes_that_are_never_retried(outcome: Outcome, status: FinalStatus):
    """invalid_number, dnd, completed and canceled end the recipient; rejected unless configured."""
    p = plan(
        policy(retry={"strategy": {"type": "fixed_delay", "delay": 60, "max_retries": 5}}),
        [outcome, C],
        "2026-11-24T10:00:00-05:00",
    )
    assert (len(p.attempts), p.final_status) == (1, status)


def test_monday_pause_windows_move_retries():
    """Mon 12:00-14:00 and 18:00-23:59 pauses: a retry due inside waits until the window ends."""
    pol = policy(
        timezone="America/New_York",
        retry={"strategy": {"type": "fixed_delay", "delay": 3600, "max_retries": 3}},
        pause_windows={
            "monday": [{"start": "12:00", "end": "14:00"}, {"start": "18:00", "end": "23:59"}]
        },
    )
    p = plan(pol, [B, B, B, B], "2026-11-23T11:30:00-05:00")  # a Monday
    assert [local(p, i) for i in range(4)] == ["Mon 11:30", "Mon 14:00", "Mon 15:00", "Mon 16:00"]
    d = p.attempts[1].deferred[0]
    assert (d.reason, d.rule) == (DeferralReason.PAUSE_WINDOW, "monday 12:00-14:00")
    p = plan(pol, [B, B], "2026-11-23T17:30:00-05:00")
    assert local(p, 1) == "Tue 00:00"  # 18:30 is paused until the end of Monday
    with_hours = policy(
        **{**pol.model_dump(mode="json"), "calling_hours": {"start": "09:00", "end": "21:00"}}
    )
    p = plan(with_hours, [B, B], "2026-11-23T17:30:00-05:00")
    assert local(p, 1) == "Tue 09:00"
    assert [d.reason for d in p.attempts[1].deferred] == [
        DeferralReason.PAUSE_WINDOW,
        DeferralReason.CALLING_HOURS,
    ]


def test_touching_windows_chain_across_midnight():
    """Mon 18:00-24:00 followed by Tue 00:00-08:00 is one pause from Monday evening to 08:00."""
    pol = policy(
        timezone="America/New_York",
        retry={"strategy": {"type": "fixed_delay", "delay": 60, "max_retries": 1}},
        pause_windows={
            "monday": [{"start": "18:00", "end": "24:00"}],
            "tuesday": [{"start": "00:00", "end": "08:00"}],
        },
    )
    p = plan(pol, [B, B], "2026-11-23T19:00:00-05:00")
    assert local(p, 0) == "Tue 08:00"
    assert [d.rule for d in p.attempts[0].deferred] == ["monday 18:00-24:00", "tuesday 00:00-08:00"]


def test_window_crossing_midnight_in_one_range():
    """A window whose end is before its start runs into the next day."""
    pol = policy(
        timezone="America/New_York", pause_windows={"friday": [{"start": "22:00", "end": "07:00"}]}
    )
    assert local(plan(pol, [C], "2026-11-27T23:00:00-05:00"), 0) == "Sat 07:00"
    assert local(plan(pol, [C], "2026-11-28T06:59:00-05:00"), 0) == "Sat 07:00"
    assert local(plan(pol, [C], "2026-11-28T07:00:00-05:00"), 0) == "Sat 07:00"


def test_calling_hours_crossing_midnight():
    """Calling hours 18:00-02:00 allow late evening and early night, nothing in the day."""
    pol = policy(timezone="America/New_York", calling_hours={"start": "18:00", "end": "02:00"})
    assert local(plan(pol, [C], "2026-11-24T01:30:00-05:00"), 0) == "Tue 01:30"
    assert local(plan(pol, [C], "2026-11-24T02:00:00-05:00"), 0) == "Tue 18:00"
    assert local(plan(pol, [C], "2026-11-24T12:00:00-05:00"), 0) == "Tue 18:00"


def test_scheduled_list_with_a_past_date():
    """Scheduled retries skip times already past; when none is left the recipient is final."""
    pol = policy(
        retry={
            "strategy": {
                "type": "scheduled",
                "retry_at": [
                    "2025-01-20T10:00:00Z",
                    "2026-11-24T20:00:00Z",
                    "2026-11-25T15:00:00Z",
                ],
            }
        }
    )
    p = plan(pol, [N, N, N, N], "2026-11-24T15:00:00Z")
    assert [a.at.isoformat() for a in p.attempts] == [
        "2026-11-24T10:00:00-05:00",
        "2026-11-24T15:00:00-05:00",
        "2026-11-25T10:00:00-05:00",
    ]
    assert p.final_status is FinalStatus.ALL_RETRIES_EXHAUSTED
    all_past = policy(
        retry={"strategy": {"type": "scheduled", "retry_at": ["2025-01-20T10:00:00Z"]}}
    )
    p = plan(all_past, [N, N], "2026-11-24T15:00:00Z")
    assert (len(p.attempts), p.final_status) == (1, FinalStatus.ALL_RETRIES_EXHAUSTED)


def test_time_of_day_picks_the_next_listed_local_time():
    """time_of_day retries at the next of 10:00, 14:00, 17:00 local after the previous call."""
    pol = policy(
        retry={
            "strategy": {
                "type": "time_of_day",
                "times": ["10:00", "14:00", "17:00"],
                "max_retries": 3,
            }
        }
    )
    p = plan(pol, [N, N, N, N], "2026-11-24T11:00:00-05:00", call=60)
    assert [local(p, i) for i in range(4)] == ["Tue 11:00", "Tue 14:00", "Tue 17:00", "Wed 10:00"]


def test_exponential_growth_is_capped():
    """Exponential delays double from 30 min and stop growing at 2 h."""
    pol = policy(
        retry={
            "strategy": {
                "type": "exponential",
                "initial_delay": 1800,
                "multiplier": 2,
                "max_delay": 7200,
                "max_retries": 4,
            }
        }
    )
    p = plan(pol, [N] * 5, "2026-11-24T08:00:00-05:00")
    ats = [a.at for a in p.attempts]
    assert [(ats[i + 1] - ats[i]).total_seconds() for i in range(4)] == [1800, 3600, 7200, 7200]


def test_daily_cap_moves_to_the_next_local_day():
    """With max 2 attempts a day, the third waits for the next allowed time of the next day."""
    pol = policy(
        timezone="America/New_York",
        max_attempts_per_day=2,
        calling_hours={"start": "09:00", "end": "21:00"},
        retry={"strategy": {"type": "fixed_delay", "delay": 600, "max_retries": 4}},
    )
    p = plan(pol, [N] * 5, "2026-11-24T10:00:00-05:00")
    assert [local(p, i) for i in range(5)] == [
        "Tue 10:00",
        "Tue 10:10",
        "Wed 09:00",
        "Wed 09:10",
        "Thu 09:00",
    ]
    assert [d.reason for d in p.attempts[2].deferred] == [
        DeferralReason.DAILY_CAP,
        DeferralReason.CALLING_HOURS,
    ]


def test_first_attempt_waits_for_the_morning():
    """A campaign started at night places its first call when calling hours open."""
    pol = policy(calling_hours={"start": "09:00", "end": "21:00"})
    p = plan(pol, [C], "2026-11-24T23:30:00-05:00")
    assert local(p, 0) == "Wed 09:00"
    assert p.attempts[0].deferred[0].reason is DeferralReason.CALLING_HOURS


def test_spring_forward_window_end_inside_the_gap():
    """A pause ending at 02:30 on the night clocks jump 02:00->03:00 ends no earlier than 03:00."""
    pol = policy(
        timezone="America/New_York", pause_windows={"sunday": [{"start": "00:00", "end": "02:30"}]}
    )
    p = plan(pol, [C], "2026-03-08T01:00:00-05:00")
    at = p.attempts[0].at.astimezone(NY)
    assert at >= datetime(2026, 3, 8, 3, 0, tzinfo=NY)
    assert at.utcoffset() == timedelta(hours=-4)


def test_fall_back_window_covers_both_readings_of_the_repeated_hour():
    """On the night 01:00-02:00 happens twice, a window ending 01:30 covers both 01:xx hours."""
    pol = policy(
        timezone="America/New_York", pause_windows={"sunday": [{"start": "00:00", "end": "01:30"}]}
    )
    p = plan(pol, [C], "2026-11-01T00:30:00-04:00")
    at = p.attempts[0].at.astimezone(NY)
    assert (at.hour, at.minute, at.fold, at.utcoffset()) == (1, 30, 1, timedelta(hours=-5))


def test_lord_howe_half_hour_shift():
    """Australia/Lord_Howe shifts by 30 minutes; calling hours still hold in local wall time."""
    pol = policy(
        timezone="Australia/Lord_Howe",
        calling_hours={"start": "02:15", "end": "21:00"},
        retry={"strategy": {"type": "fixed_delay", "delay": 900, "max_retries": 8}},
    )
    # Clocks go forward 02:00 -> 02:30 on 2026-10-04 local; start just before.
    p = plan(
        pol, [N] * 9, "2026-10-03T20:50:00+10:30", phone="+61255501234", tz="Australia/Lord_Howe"
    )
    zone = ZoneInfo("Australia/Lord_Howe")
    for a in p.attempts:
        t = a.at.astimezone(zone)
        assert 2 * 60 + 15 <= t.hour * 60 + t.minute < 21 * 60, t


def test_zone_resolution_order():
    """Recipient's own zone, else the number's single zone, else the campaign's."""
    assert recipient_zone_name(own="Europe/London", phone=NYC, campaign="UTC") == "Europe/London"
    assert (
        recipient_zone_name(own=None, phone="+16505550199", campaign="UTC") == "America/Los_Angeles"
    )
    # +1 800 numbers are toll-free: no single zone, so the campaign's applies.
    assert (
        recipient_zone_name(own=None, phone="+18005550199", campaign="Asia/Kolkata")
        == "Asia/Kolkata"
    )


def test_jitter_is_deterministic_per_seed_and_bounded():
    """Jitter comes from the rng the caller passes: same seed, same time; within ±jitter."""
    pol = policy(
        retry={"strategy": {"type": "fixed_delay", "delay": 1000, "max_retries": 1, "jitter": 0.2}}
    )
    t0 = datetime.fromisoformat("2026-11-24T10:00:00+00:00")
    made = [Made(B, t0, t0)]
    times = set()
    for seed in range(50):
        a = next_step(pol, zone=NY, attempts=made, now=t0, rng=random.Random(seed))
        b = next_step(pol, zone=NY, attempts=made, now=t0, rng=random.Random(seed))
        assert isinstance(a, DialAt) and a == b
        assert 800 <= (a.at - t0).total_seconds() <= 1200
        times.add(a.at)
    assert len(times) > 40


def test_retry_is_never_before_now():
    """A retry whose delay already passed (a worker was down) is placed now, not in the past."""
    pol = policy(retry={"strategy": {"type": "fixed_delay", "delay": 60, "max_retries": 1}})
    t0 = datetime.fromisoformat("2026-11-24T10:00:00+00:00")
    later = t0 + timedelta(hours=5)
    d = next_step(pol, zone=NY, attempts=[Made(B, t0, t0)], now=later, rng=random.Random(0))
    assert isinstance(d, DialAt) and d.at == later and d.due == t0 + timedelta(seconds=60)
    assert isinstance(
        next_step(
            pol,
            zone=NY,
            attempts=[Made(B, t0, t0), Made(N, t0, t0)],
            now=later,
            rng=random.Random(0),
        ),
        Final,
    )


def test_window_starting_in_the_repeated_hour_starts_at_its_first_reading():
    """A pause from 01:00 on the fall-back night already covers the first 01:xx hour (EDT)."""
    pol = policy(
        timezone="America/New_York", pause_windows={"sunday": [{"start": "01:00", "end": "03:00"}]}
    )
    p = plan(pol, [C], "2026-11-01T01:10:00-04:00")  # 01:10 EDT, the first reading
    at = p.attempts[0].at.astimezone(NY)
    assert (at.hour, at.minute, at.utcoffset()) == (3, 0, timedelta(hours=-5))
