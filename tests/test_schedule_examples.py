"""Worked examples from the seed products, through the pure schedule (`next_step`) and the plan.

Times are written as the recipient sees them (local ISO 8601 with offset); every policy is read
with the default product limits, as a spec is.
"""

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
from redialer.zones import recipient_zone_name, zone_of_number

NY = ZoneInfo("America/New_York")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")
B, N, C, V, F, R = (
    Outcome.BUSY,
    Outcome.NO_ANSWER,
    Outcome.COMPLETED,
    Outcome.VOICEMAIL,
    Outcome.FAILED,
    Outcome.REJECTED,
)
NYC = "+12125550123"  # maps to America/New_York only
PALO_ALTO = "+16505550199"  # maps to America/Los_Angeles only
TOLL_FREE = "+18005550199"  # maps to no zone: the campaign's applies
AU_MOBILE = "+61412345678"  # maps to eight Australian zones: the campaign's applies
WINDOWS = {"monday": [{"start": "12:00", "end": "14:00"}, {"start": "18:00", "end": "23:59"}]}


def policy(**fields: object) -> CampaignPolicy:
    return CampaignPolicy.model_validate(fields, context=Limits().context())


def fixed(delay: float, retries: int = 3, **more: object) -> dict[str, object]:
    return {"strategy": {"type": "fixed_delay", "delay": delay, "max_retries": retries}, **more}


def plan(
    pol: CampaignPolicy,
    outcomes: list[Outcome],
    start: str,
    *,
    call: float = 0,
    phone: str = TOLL_FREE,
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


def local(p: Plan) -> list[str]:
    """Each attempt as the recipient's wall clock shows it, with the UTC offset."""
    zone = ZoneInfo(p.timezone)
    return [a.at.astimezone(zone).strftime("%a %H:%M %z") for a in p.attempts]


def outcome_and_count(p: Plan) -> tuple[int, FinalStatus | None]:
    return len(p.attempts), p.final_status


@dataclass(frozen=True)
class Made:
    outcome: Outcome
    started_at: datetime
    ended_at: datetime


# --- strategies -------------------------------------------------------------------------------


def test_attempt_delays_300_3600_10800():
    """The seed's lead-qualification rows: retries 5 min, 1 h and 3 h after each previous end."""
    p = plan(
        policy(retry={"strategy": {"type": "attempts", "delays": [300, 3600, 10800]}}),
        [B, N, B, N],
        "2026-11-24T10:00:00-05:00",
        call=45,
    )
    ats = [a.at for a in p.attempts]
    assert ats[0] == datetime.fromisoformat("2026-11-24T10:00:00-05:00")
    ends = [at + timedelta(seconds=45) for at in ats]
    assert [(ats[i + 1] - ends[i]).total_seconds() for i in range(3)] == [300, 3600, 10800]
    assert [a.attempt for a in p.attempts] == [1, 2, 3, 4]
    assert p.final_status is FinalStatus.ALL_RETRIES_EXHAUSTED


@pytest.mark.parametrize("retries", [0, 1, 3, 20])
def test_max_retries_n_gives_exactly_n_plus_one_attempts(retries: int):
    """`max_retries: N` allows attempts 2..N+1, then all_retries_exhausted; 0 disables retries."""
    p = plan(policy(retry=fixed(1800, retries)), [N] * 30, "2026-11-24T10:00:00-05:00")
    assert outcome_and_count(p) == (retries + 1, FinalStatus.ALL_RETRIES_EXHAUSTED)
    assert p.final_reason == f"no retries left after {retries + 1} attempt(s)"


def test_fixed_interval_seed_example():
    """Exotel's fixed interval: 10:00, 11:00, 12:00 with a 60-minute wait, answered on the third."""
    p = plan(
        policy(timezone="America/New_York", retry=fixed("PT60M", 3)),
        [N, B, C],
        "2026-11-24T10:00:00-05:00",
    )
    assert local(p) == ["Tue 10:00 -0500", "Tue 11:00 -0500", "Tue 12:00 -0500"]
    assert p.final_status is FinalStatus.COMPLETED


def test_exponential_seed_example_and_cap():
    """Increasing intervals 30, 60, 120 min; with max_delay 2 h the growth stops at 2 h."""
    exponential = {"type": "exponential", "initial_delay": 1800, "multiplier": 2}
    p = plan(
        policy(timezone="America/New_York", retry={"strategy": {**exponential, "max_retries": 3}}),
        [N, N, N, C],
        "2026-11-24T10:00:00-05:00",
    )
    assert local(p) == ["Tue 10:00 -0500", "Tue 10:30 -0500", "Tue 11:30 -0500", "Tue 13:30 -0500"]
    capped = {**exponential, "max_delay": 7200, "max_retries": 5}
    p = plan(policy(retry={"strategy": capped}), [N] * 6, "2026-11-24T08:00:00-05:00")
    ats = [a.at for a in p.attempts]
    gaps = [(b - a).total_seconds() for a, b in zip(ats, ats[1:], strict=False)]
    assert gaps == [1800, 3600, 7200, 7200, 7200]


def test_time_of_day_picks_the_next_listed_local_time():
    """time_of_day 10:00, 14:00, 17:00: each retry at the next listed local time, next day too."""
    pol = policy(
        timezone="America/New_York",
        retry={
            "strategy": {
                "type": "time_of_day",
                "times": ["17:00", "10:00", "14:00"],
                "max_retries": 4,
            }
        },
    )
    p = plan(pol, [N] * 5, "2026-11-24T10:00:00-05:00", call=60)
    assert local(p) == [
        "Tue 10:00 -0500",
        "Tue 14:00 -0500",
        "Tue 17:00 -0500",
        "Wed 10:00 -0500",
        "Wed 14:00 -0500",
    ]
    # Without max_retries, one retry per listed time.
    no_max = policy(retry={"strategy": {"type": "time_of_day", "times": ["10:00", "14:00"]}})
    assert outcome_and_count(plan(no_max, [N] * 5, "2026-11-24T10:00:00-05:00")) == (
        3,
        FinalStatus.ALL_RETRIES_EXHAUSTED,
    )


def test_scheduled_list_skips_past_dates():
    """Scheduled retries skip times already past; with none left the recipient is final."""
    pol = policy(
        retry={
            "strategy": {
                "type": "scheduled",
                "retry_at": [
                    "2026-11-25T15:00:00Z",
                    "2025-01-20T10:00:00Z",  # already past at the start: skipped
                    "2026-11-24T20:00:00Z",
                ],
            }
        }
    )
    p = plan(pol, [N, N, N, N], "2026-11-24T15:00:00Z")
    assert [a.at for a in p.attempts] == [
        datetime.fromisoformat(t)
        for t in ("2026-11-24T15:00:00Z", "2026-11-24T20:00:00Z", "2026-11-25T15:00:00Z")
    ]
    assert p.final_status is FinalStatus.ALL_RETRIES_EXHAUSTED
    all_past = policy(
        retry={
            "strategy": {
                "type": "scheduled",
                "retry_at": ["2025-01-20T10:00:00Z", "2025-01-21T10:00:00Z"],
            }
        }
    )
    p = plan(all_past, [N, N], "2026-11-24T15:00:00Z")
    assert outcome_and_count(p) == (1, FinalStatus.ALL_RETRIES_EXHAUSTED)


def test_delay_jitter_stays_within_plus_or_minus_j_and_follows_the_seed():
    """Delay jitter: each delay within ±J x delay; same rng seed, same time; seeds spread out."""
    pol = policy(
        retry={"strategy": {"type": "fixed_delay", "delay": 1000, "max_retries": 1, "jitter": 0.2}}
    )
    t0 = datetime.fromisoformat("2026-11-24T10:00:00+00:00")
    made = [Made(B, t0, t0)]
    waits = set()
    for seed in range(60):
        a = next_step(pol, zone=NY, attempts=made, now=t0, rng=random.Random(seed))
        b = next_step(pol, zone=NY, attempts=made, now=t0, rng=random.Random(seed))
        assert isinstance(a, DialAt) and a == b
        waits.add((a.at - t0).total_seconds())
    assert 800 <= min(waits) < 900 and 1100 < max(waits) <= 1200
    assert len(waits) == 60


@pytest.mark.parametrize(
    "strategy",
    [
        {"type": "scheduled", "retry_at": ["2026-11-24T16:00:00Z"], "jitter": 0.5},
        {"type": "time_of_day", "times": ["11:00"], "max_retries": 1, "jitter": 0.5},
    ],
)
def test_absolute_jitter_only_moves_forward_by_up_to_j_hours(strategy: dict[str, object]):
    """Scheduled and time_of_day retries shift forward by at most J x 3,600 s, never earlier."""
    pol = policy(timezone="America/New_York", retry={"strategy": strategy})
    t0 = datetime.fromisoformat("2026-11-24T15:00:00Z")  # 10:00 in New York
    listed = datetime.fromisoformat("2026-11-24T16:00:00Z")  # both strategies: 11:00 New York
    shifts = []
    for seed in range(40):
        d = next_step(pol, zone=NY, attempts=[Made(N, t0, t0)], now=t0, rng=random.Random(seed))
        assert isinstance(d, DialAt)
        shifts.append((d.due - listed).total_seconds())
        assert d.at == d.due
    assert all(0 <= s <= 1800 for s in shifts), shifts
    assert max(shifts) > 900  # the spread is used


def test_retry_is_never_before_now():
    """A retry whose delay already passed (a worker was down) is placed now, not in the past."""
    pol = policy(retry=fixed(60, 1))
    t0 = datetime.fromisoformat("2026-11-24T10:00:00+00:00")
    later = t0 + timedelta(hours=5)
    d = next_step(pol, zone=NY, attempts=[Made(B, t0, t0)], now=later, rng=random.Random(0))
    assert isinstance(d, DialAt) and d.at == later and d.due == t0 + timedelta(seconds=60)
    again = next_step(
        pol, zone=NY, attempts=[Made(B, t0, t0), Made(N, t0, t0)], now=later, rng=random.Random(0)
    )
    assert isinstance(again, Final)


# --- outcomes -----------------------------------------------------------------------------------


def test_voicemail_is_final_unless_retry_on_lists_it():
    """Voicemail ends `voicemail_final` by default and is retried when listed in retry_on."""
    start = "2026-11-24T10:00:00-05:00"
    p = plan(policy(retry=fixed(600)), [V, C], start)
    assert outcome_and_count(p) == (1, FinalStatus.VOICEMAIL_FINAL)
    p = plan(policy(retry=fixed(600, retry_on=["voicemail"])), [V, V, C], start)
    assert outcome_and_count(p) == (3, FinalStatus.COMPLETED)
    p = plan(policy(retry=fixed(600, 1, retry_on=["voicemail"])), [V, V, C], start)
    assert outcome_and_count(p) == (2, FinalStatus.ALL_RETRIES_EXHAUSTED)


def test_failed_is_retried_exactly_once_by_default():
    """A network failure is retried once; a second failure ends `failed`; a cap can raise that."""
    start = "2026-11-24T10:00:00-05:00"
    p = plan(policy(retry=fixed(600, 5)), [F, F, C], start)
    assert outcome_and_count(p) == (2, FinalStatus.FAILED)
    p = plan(policy(retry=fixed(600, 5)), [F, B, F, C], start)  # not two in a row: still twice
    assert outcome_and_count(p) == (3, FinalStatus.FAILED)
    p = plan(policy(retry=fixed(600, 5)), [F, B, C], start)
    assert outcome_and_count(p) == (3, FinalStatus.COMPLETED)
    p = plan(policy(retry=fixed(600, 5, max_retries_by_outcome={"failed": 3})), [F] * 6, start)
    assert outcome_and_count(p) == (4, FinalStatus.FAILED)


@pytest.mark.parametrize(
    ("outcome", "status"),
    [
        (Outcome.INVALID_NUMBER, FinalStatus.INVALID_NUMBER),
        (Outcome.DND, FinalStatus.DND),
        (Outcome.COMPLETED, FinalStatus.COMPLETED),
        (Outcome.CANCELED, FinalStatus.CANCELED),
    ],
)
def test_outcomes_that_are_never_retried(outcome: Outcome, status: FinalStatus):
    """invalid_number, dnd, completed and canceled end the recipient with their own status."""
    every = ["no_answer", "busy", "voicemail", "rejected", "failed"]
    for retry_on in (None, every):
        extra = {} if retry_on is None else {"retry_on": retry_on}
        p = plan(policy(retry=fixed(60, 5, **extra)), [B, outcome, N], "2026-11-24T10:00:00-05:00")
        assert outcome_and_count(p) == (2, status)


def test_rejected_is_final_unless_configured():
    """Rejected ends `rejected_final` by default and is retried when listed in retry_on."""
    start = "2026-11-24T10:00:00-05:00"
    assert outcome_and_count(plan(policy(retry=fixed(60)), [R, C], start)) == (
        1,
        FinalStatus.REJECTED_FINAL,
    )
    configured = policy(
        retry=fixed(60, retry_on=["rejected"], max_retries_by_outcome={"rejected": 1})
    )
    assert outcome_and_count(plan(configured, [R, C], start)) == (2, FinalStatus.COMPLETED)
    assert outcome_and_count(plan(configured, [R, R, C], start)) == (2, FinalStatus.REJECTED_FINAL)


# --- pause windows, calling hours, daily cap ----------------------------------------------------


def test_monday_lunch_window_moves_a_retry_to_14_00():
    """Mon 12:00-14:00 pause: a retry due Monday 12:30 local waits until 14:00, with the rule."""
    pol = policy(timezone="America/New_York", retry=fixed(3600), pause_windows=WINDOWS)
    p = plan(pol, [B, B, B, B], "2026-11-23T11:30:00-05:00")  # a Monday
    assert local(p) == ["Mon 11:30 -0500", "Mon 14:00 -0500", "Mon 15:00 -0500", "Mon 16:00 -0500"]
    (moved,) = p.attempts[1].deferred
    assert (moved.reason, moved.rule) == (DeferralReason.PAUSE_WINDOW, "monday 12:00-14:00")
    assert moved.moved_from == datetime.fromisoformat("2026-11-23T12:30:00-05:00")
    assert moved.moved_to == datetime.fromisoformat("2026-11-23T14:00:00-05:00")


def test_monday_evening_window_runs_to_the_end_of_the_day():
    """Mon 18:00-23:59: a retry due 19:00 waits until Tue 00:00; with 09:00-21:00 hours, 09:00."""
    pol = policy(timezone="America/New_York", retry=fixed(7200), pause_windows=WINDOWS)
    p = plan(pol, [B, B], "2026-11-23T17:00:00-05:00")
    assert local(p)[1] == "Tue 00:00 -0500"
    (moved,) = p.attempts[1].deferred
    assert (moved.reason, moved.rule) == (DeferralReason.PAUSE_WINDOW, "monday 18:00-23:59")
    assert moved.moved_from == datetime.fromisoformat("2026-11-23T19:00:00-05:00")

    with_hours = policy(
        timezone="America/New_York",
        retry=fixed(7200),
        pause_windows=WINDOWS,
        calling_hours={"start": "09:00", "end": "21:00"},
    )
    p = plan(with_hours, [B, B], "2026-11-23T17:00:00-05:00")
    assert local(p)[1] == "Tue 09:00 -0500"
    assert [(d.reason, d.rule) for d in p.attempts[1].deferred] == [
        (DeferralReason.PAUSE_WINDOW, "monday 18:00-23:59"),
        (DeferralReason.CALLING_HOURS, "calling hours 09:00-21:00"),
    ]
    assert p.attempts[1].deferred[0].moved_to == p.attempts[1].deferred[1].moved_from
    assert (
        "pause_window (monday 18:00-23:59)"
        in DialAt(
            attempt=2,
            at=p.attempts[1].at,
            due=p.attempts[1].at,
            deferred=p.attempts[1].deferred,
        ).why_deferred
    )


def test_touching_windows_chain_across_midnight():
    """Mon 18:00-24:00 then Tue 00:00-08:00 is one pause from Monday evening to Tuesday 08:00."""
    pol = policy(
        timezone="America/New_York",
        retry=fixed(3600, 1),
        pause_windows={
            "monday": [{"start": "18:00", "end": "24:00"}],
            "tuesday": [{"start": "00:00", "end": "08:00"}],
        },
    )
    p = plan(pol, [B, B], "2026-11-23T17:30:00-05:00")
    assert local(p) == ["Mon 17:30 -0500", "Tue 08:00 -0500"]
    assert [d.rule for d in p.attempts[1].deferred] == ["monday 18:00-24:00", "tuesday 00:00-08:00"]
    assert local(plan(pol, [C], "2026-11-23T23:59:00-05:00")) == ["Tue 08:00 -0500"]


def test_window_crossing_midnight_in_one_range():
    """A window whose end is before its start (Fri 22:00-07:00) runs into Saturday morning."""
    pol = policy(
        timezone="America/New_York", pause_windows={"friday": [{"start": "22:00", "end": "07:00"}]}
    )
    assert local(plan(pol, [C], "2026-11-27T21:59:00-05:00")) == ["Fri 21:59 -0500"]
    assert local(plan(pol, [C], "2026-11-27T23:00:00-05:00")) == ["Sat 07:00 -0500"]
    assert local(plan(pol, [C], "2026-11-28T06:59:00-05:00")) == ["Sat 07:00 -0500"]
    assert local(plan(pol, [C], "2026-11-28T07:00:00-05:00")) == ["Sat 07:00 -0500"]
    # Saturday itself has no window: the same hours a day later are free.
    assert local(plan(pol, [C], "2026-11-28T23:00:00-05:00")) == ["Sat 23:00 -0500"]


def test_calling_hours_crossing_midnight():
    """Calling hours 18:00-02:00 allow the evening and the small hours, nothing in the day."""
    pol = policy(timezone="America/New_York", calling_hours={"start": "18:00", "end": "02:00"})
    assert local(plan(pol, [C], "2026-11-24T01:30:00-05:00")) == ["Tue 01:30 -0500"]
    assert local(plan(pol, [C], "2026-11-24T02:00:00-05:00")) == ["Tue 18:00 -0500"]
    assert local(plan(pol, [C], "2026-11-24T12:00:00-05:00")) == ["Tue 18:00 -0500"]
    assert local(plan(pol, [C], "2026-11-24T23:59:00-05:00")) == ["Tue 23:59 -0500"]


def test_daily_cap_moves_to_the_next_allowed_time_of_the_next_local_day():
    """With max 2 attempts a day, the third waits for the next day's calling hours."""
    pol = policy(
        timezone="America/New_York",
        max_attempts_per_day=2,
        calling_hours={"start": "09:00", "end": "21:00"},
        retry=fixed(600, 4),
    )
    p = plan(pol, [N] * 5, "2026-11-24T10:00:00-05:00")
    assert local(p) == [
        "Tue 10:00 -0500",
        "Tue 10:10 -0500",
        "Wed 09:00 -0500",
        "Wed 09:10 -0500",
        "Thu 09:00 -0500",
    ]
    assert [(d.reason, d.rule) for d in p.attempts[2].deferred] == [
        (DeferralReason.DAILY_CAP, "max 2 attempts per day"),
        (DeferralReason.CALLING_HOURS, "calling hours 09:00-21:00"),
    ]


def test_daily_cap_counts_by_the_local_date():
    """The cap counts attempts by local date: 23:30 Monday in New York is Tuesday in UTC."""
    pol = policy(timezone="America/New_York", max_attempts_per_day=1, retry=fixed(600, 2))
    p = plan(pol, [N, N, N], "2026-11-23T23:30:00-05:00")
    assert local(p) == ["Mon 23:30 -0500", "Tue 00:00 -0500", "Wed 00:00 -0500"]


def test_first_attempt_waits_for_the_morning():
    """A campaign started at night places its first call when calling hours open."""
    pol = policy(timezone="America/New_York", calling_hours={"start": "09:00", "end": "21:00"})
    p = plan(pol, [C], "2026-11-24T23:30:00-05:00")
    assert local(p) == ["Wed 09:00 -0500"]
    (moved,) = p.attempts[0].deferred
    assert moved.reason is DeferralReason.CALLING_HOURS
    assert moved.moved_from == datetime.fromisoformat("2026-11-24T23:30:00-05:00")
    # Pause windows apply to the first attempt too.
    paused = policy(timezone="America/New_York", pause_windows=WINDOWS)
    assert local(plan(paused, [C], "2026-11-23T12:15:00-05:00")) == ["Mon 14:00 -0500"]


# --- DST ----------------------------------------------------------------------------------------


def test_spring_forward_retry_past_a_window_ending_inside_the_gap():
    """US spring forward: a pause ending 02:30 (never shown that night) ends after 03:00 EDT."""
    pol = policy(
        timezone="America/New_York",
        retry=fixed(1200, 1),
        pause_windows={"sunday": [{"start": "01:00", "end": "02:30"}]},
    )
    p = plan(pol, [B, B], "2026-03-08T00:50:00-05:00")  # retry due 01:10 EST, inside
    assert p.attempts[1].deferred[0].moved_from == datetime.fromisoformat(
        "2026-03-08T01:10:00-05:00"
    )
    at = p.attempts[1].at.astimezone(NY)
    assert at >= datetime(2026, 3, 8, 3, 0, tzinfo=NY) and at.utcoffset() == timedelta(hours=-4)
    assert at == datetime.fromisoformat("2026-03-08T03:30:00-04:00")  # 02:30 read at its latest


def test_spring_forward_window_starting_inside_the_gap_starts_at_its_earliest_reading():
    """A pause from 02:30 (in the gap) starts at its earliest reading: it grows, never shrinks."""
    pol = policy(
        timezone="America/New_York",
        retry=fixed(1800, 1),
        pause_windows={"sunday": [{"start": "02:30", "end": "05:00"}]},
    )
    p = plan(pol, [B, B], "2026-03-08T01:20:00-05:00")  # retry due 01:50 EST
    assert local(p) == ["Sun 01:20 -0500", "Sun 05:00 -0400"]


def test_fall_back_retry_past_a_window_ending_inside_the_fold():
    """US fall back: a pause ending 01:30 covers both 01:xx hours; the retry lands at 01:30 EST."""
    pol = policy(
        timezone="America/New_York",
        retry=fixed(1200, 1),
        pause_windows={"sunday": [{"start": "01:00", "end": "01:30"}]},
    )
    p = plan(pol, [B, B], "2026-11-01T00:50:00-04:00")  # retry due 01:10 EDT, inside
    at = p.attempts[1].at.astimezone(NY)
    assert (at.hour, at.minute, at.fold, at.utcoffset()) == (1, 30, 1, timedelta(hours=-5))


def test_fall_back_window_starting_inside_the_fold_covers_both_readings():
    """A pause from 01:30 on the fall-back night starts at the first 01:30 (EDT) and holds."""
    pol = policy(
        timezone="America/New_York",
        retry=fixed(2400, 1),
        pause_windows={"sunday": [{"start": "01:30", "end": "03:00"}]},
    )
    p = plan(pol, [B, B], "2026-11-01T01:00:00-04:00")  # retry due 01:40 EDT, inside
    assert local(p) == ["Sun 01:00 -0400", "Sun 03:00 -0500"]
    # The clock shows 01:05 again after the window began: the window does not reopen.
    assert local(plan(pol, [C], "2026-11-01T01:05:00-05:00")) == ["Sun 03:00 -0500"]
    assert local(plan(pol, [C], "2026-11-01T01:29:00-04:00")) == ["Sun 01:29 -0400"]


def test_lord_howe_half_hour_spring_forward():
    """Lord Howe jumps 02:00 -> 02:30: a pause to 02:15 (never shown) holds the retry past it."""
    pol = policy(
        timezone="Australia/Lord_Howe",
        retry=fixed(1200, 1),
        pause_windows={"sunday": [{"start": "01:00", "end": "02:15"}]},
    )
    p = plan(pol, [B, B], "2026-10-04T00:50:00+10:30", phone=AU_MOBILE)
    assert p.timezone == "Australia/Lord_Howe"
    at = p.attempts[1].at.astimezone(LORD_HOWE)
    assert at.utcoffset() == timedelta(hours=11) and (at.hour, at.minute) >= (2, 30)
    assert at == datetime.fromisoformat("2026-10-04T02:45:00+11:00")


def test_lord_howe_half_hour_fall_back():
    """Lord Howe goes back 02:00 -> 01:30: a pause to 01:45 covers both readings of 01:30-01:45."""
    pol = policy(
        timezone="Australia/Lord_Howe",
        retry=fixed(1200, 1),
        pause_windows={"sunday": [{"start": "01:00", "end": "01:45"}]},
    )
    p = plan(pol, [B, B], "2026-04-05T00:50:00+11:00", phone=AU_MOBILE)
    at = p.attempts[1].at.astimezone(LORD_HOWE)
    assert (at.hour, at.minute, at.fold, at.utcoffset()) == (1, 45, 1, timedelta(hours=10.5))


def test_lord_howe_calling_hours_hold_through_the_shift():
    """Calling hours 02:15-21:00 in Lord Howe hold in local wall time across the 30-minute jump."""
    pol = policy(
        timezone="Australia/Lord_Howe",
        calling_hours={"start": "02:15", "end": "21:00"},
        retry=fixed(900, 8),
    )
    p = plan(pol, [N] * 9, "2026-10-03T20:50:00+10:30", phone=AU_MOBILE)
    assert len(p.attempts) == 9
    for a in p.attempts:
        t = a.at.astimezone(LORD_HOWE)
        assert 2 * 60 + 15 <= t.hour * 60 + t.minute < 21 * 60, t
    assert local(p)[1] == "Sun 02:45 +1100"  # 02:15 never shows that night; read at its latest


def test_time_of_day_inside_the_spring_forward_gap_is_never_early():
    """A time_of_day retry listed at 02:30 never fires before the local clock has passed 02:30."""
    pol = policy(
        timezone="America/New_York",
        retry={"strategy": {"type": "time_of_day", "times": ["02:30"], "max_retries": 1}},
    )
    p = plan(pol, [N, N], "2026-03-07T23:00:00-05:00")
    at = p.attempts[1].at
    assert at >= datetime.fromisoformat("2026-03-08T03:00:00-04:00"), local(p)
    assert at <= datetime.fromisoformat("2026-03-08T03:30:00-04:00"), local(p)  # same morning


def test_time_of_day_inside_the_fall_back_fold_fires_once_at_the_listed_wall_time():
    """A time_of_day retry listed at 01:30 on the fall-back night fires at a 01:30, once."""
    pol = policy(
        timezone="America/New_York",
        retry={"strategy": {"type": "time_of_day", "times": ["01:30"], "max_retries": 2}},
    )
    p = plan(pol, [N, N, N], "2026-10-31T23:00:00-04:00", call=60)
    retry = p.attempts[1].at.astimezone(NY)
    assert (retry.date().isoformat(), retry.hour, retry.minute) == ("2026-11-01", 1, 30)
    assert local(p)[2] == "Mon 01:30 -0500"  # the next one is the next night's, not the same


# --- zones --------------------------------------------------------------------------------------


def test_zone_resolution_order():
    """Recipient's own zone, else the number's single zone, else the campaign's."""
    assert recipient_zone_name(own="Europe/London", phone=NYC, campaign="UTC") == "Europe/London"
    assert zone_of_number(PALO_ALTO) == "America/Los_Angeles"
    assert recipient_zone_name(own=None, phone=PALO_ALTO, campaign="UTC") == "America/Los_Angeles"
    assert zone_of_number(AU_MOBILE) is None  # several zones
    assert recipient_zone_name(own=None, phone=AU_MOBILE, campaign="Asia/Kolkata") == (
        "Asia/Kolkata"
    )
    assert zone_of_number(TOLL_FREE) is None  # no zone at all
    assert recipient_zone_name(own=None, phone=TOLL_FREE, campaign="Europe/London") == (
        "Europe/London"
    )


def test_windows_are_read_in_the_resolved_zone():
    """Calling hours 09:00-21:00 open at 09:00 in the zone the recipient resolves to."""
    pol = policy(timezone="Asia/Kolkata", calling_hours={"start": "09:00", "end": "21:00"})
    start = "2026-11-24T12:00:00Z"  # 04:00 in Palo Alto, 17:30 in Kolkata, 12:00 in London
    p = plan(pol, [C], start, phone=PALO_ALTO)
    assert (p.timezone, local(p)) == ("America/Los_Angeles", ["Tue 09:00 -0800"])
    p = plan(pol, [C], start, phone=AU_MOBILE)
    assert (p.timezone, local(p)) == ("Asia/Kolkata", ["Tue 17:30 +0530"])
    p = plan(pol, [C], start, phone=PALO_ALTO, tz="Europe/London")
    assert (p.timezone, local(p)) == ("Europe/London", ["Tue 12:00 +0000"])


# --- robustness ---------------------------------------------------------------------------------


def test_exponential_without_a_cap_never_makes_next_step_raise():
    """An exponential policy built in code without max_delay still plans every retry."""
    pol = CampaignPolicy.model_validate(  # no limits context: as a Python caller builds it
        {
            "retry": {
                "strategy": {
                    "type": "exponential",
                    "initial_delay": 10800,
                    "multiplier": 10,
                    "max_retries": 20,
                }
            }
        }
    )
    p = plan(pol, [N] * 21, "2026-11-24T10:00:00Z")
    assert len(p.attempts) == 21
