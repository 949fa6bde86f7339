"""Answer rates by local hour of the week: the prior, the table, the choice of hour, the query.

`choose_time` is checked against allowed-time oracles written here by hand (local wall time read
with zoneinfo, minute by minute), not against `redialer.allowed_time`.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError
from rich.console import Console
from sqlalchemy import insert
from sqlmodel import SQLModel

from redialer.answer_rates import (
    HOURS_PER_WEEK,
    AnswerRates,
    HourCount,
    choose_time,
    hour_of_week,
    hour_of_week_table,
    local_hour_starts,
    prior_rate,
)
from redialer.store.answer_rate_query import answer_rate_rows
from redialer.store.store import Store
from redialer.store.tables import CallRecordRow, CampaignRecipientRow
from starter.plots import answer_rate_heatmap
from tests import store_fixtures

database_url = store_fixtures.database_url

NY = ZoneInfo("America/New_York")
KOLKATA = ZoneInfo("Asia/Kolkata")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")
MON, TUE, WED, THU, FRI, SAT, SUN = range(7)


def how(weekday: int, hour: int) -> int:
    return weekday * 24 + hour


# --- the prior ----------------------------------------------------------------------------------


def test_the_prior_follows_the_seed_documents_advice():
    """Weekdays 10-11 and 16-18 best, lunch the day's worst, evenings moderate, nights very low,
    Tuesday-Thursday best, weekends lower."""
    for day in (MON, TUE, WED, THU, FRI):
        rate = {h: prior_rate(how(day, h)) for h in range(24)}
        best = max(rate.values())
        assert rate[10] == best and (rate[16] == best or day == FRI), day
        assert rate[10] > rate[12] and rate[10] > rate[13]
        daytime = [rate[h] for h in range(9, 18)]
        assert min(daytime) == rate[12] == rate[13]
        assert rate[12] < rate[19] < rate[17]  # evenings moderate
        assert all(rate[h] <= 0.05 for h in (0, 1, 2, 3, 4, 5, 23))  # nights very low
    assert prior_rate(how(TUE, 10)) > prior_rate(how(MON, 10))
    assert prior_rate(how(FRI, 16)) < prior_rate(how(THU, 16))
    for h in range(24):
        assert prior_rate(how(SAT, h)) < prior_rate(how(WED, h))
        assert prior_rate(how(SUN, h)) < prior_rate(how(WED, h))


def test_without_calls_the_expected_rate_is_the_prior():
    """An empty table expects what the advice says; 10:00 beats 12:00 on a weekday."""
    rates = AnswerRates()
    for h in range(HOURS_PER_WEEK):
        assert rates.expected_rate(h) == pytest.approx(prior_rate(h))
    assert rates.expected_rate(how(WED, 10)) > rates.expected_rate(how(WED, 12))


def test_records_override_the_prior():
    """The prior is worth a few calls: 100 calls at lunch answered 60 times expect over 50 %."""
    lunch = how(WED, 12)
    rates = AnswerRates.from_rows([HourCount(WED, 12, 100, 60), HourCount(WED, 10, 100, 5)])
    assert rates.expected_rate(lunch) > 0.5
    assert rates.expected_rate(how(WED, 10)) < 0.1
    assert rates.expected_rate(lunch) > rates.expected_rate(how(WED, 10))
    assert rates.observed_rate(lunch) == 0.6 and rates.observed_rate(how(WED, 11)) is None


# --- the table ----------------------------------------------------------------------------------


def test_the_table_is_168_buckets_whatever_the_history_and_round_trips_as_json():
    """Bounded: one count per hour of the week; JSON in, the same table out."""
    rows = [HourCount(d, h, 1000 + d, 300 + h) for d in range(7) for h in range(24)]
    rates = AnswerRates.from_rows(rows * 3)  # the same bucket more than once: summed
    assert len(rates.attempts) == len(rates.answered) == HOURS_PER_WEEK
    assert rates.attempts[how(SUN, 23)] == 3 * 1006 and rates.answered[how(SUN, 23)] == 3 * 323
    assert rates.calls == 3 * sum(r.attempts for r in rows)
    assert AnswerRates.model_validate_json(rates.model_dump_json()) == rates
    assert len(rates.model_dump_json()) < 4096


def test_a_malformed_table_is_refused_naming_the_field_and_values():
    """Not 168 buckets, more answers than calls, or a weekday out of range: refused."""
    with pytest.raises(ValidationError) as exc:
        AnswerRates(attempts=[0] * 167, answered=[0] * 168)
    assert exc.value.errors()[0]["loc"] == ("attempts",)
    with pytest.raises(
        ValidationError, match=r"answered\[34\]: 5 answered of 2 calls at Tue 10:00"
    ):
        AnswerRates(attempts=[2] * 168, answered=[0] * 34 + [5] + [0] * 133)
    with pytest.raises(ValueError, match="weekday 7, hour 3: a weekday is 0-6"):
        AnswerRates.from_rows([HourCount(7, 3, 1, 0)])


def test_the_hour_of_week_table_lists_every_bucket_monday_first():
    """The report's rows: 168, Monday 00:00 first, observed rate None where no call was placed."""
    rates = AnswerRates.from_rows([HourCount(TUE, 16, 10, 4)])
    rows = hour_of_week_table(rates)
    assert len(rows) == 168
    assert (rows[0].weekday, rows[0].hour, rows[-1].weekday, rows[-1].hour) == (
        "monday",
        0,
        "sunday",
        23,
    )
    tue16 = rows[how(TUE, 16)]
    assert (tue16.calls, tue16.answered, tue16.observed_rate) == (10, 4, 0.4)
    assert tue16.expected_rate == round(rates.expected_rate(how(TUE, 16)), 4)
    assert rows[how(TUE, 15)].observed_rate is None


def test_the_heatmap_shows_seven_days_of_24_hours_in_percent():
    """A 7 x 24 text heat-map: a weekday per line, the expected rate per hour in %."""
    rates = AnswerRates.from_rows([HourCount(SAT, 3, 200, 180)])
    console = Console(width=120, record=True, color_system=None)
    console.print(answer_rate_heatmap(rates))
    text = console.export_text()
    lines = text.splitlines()
    (header,) = [line for line in lines if line.strip().startswith("0  1  2")]
    assert header.split() == [str(h) for h in range(24)]
    days = {line.split()[0]: line.split()[1:] for line in lines if line[:3] in {"Mon", "Sat"}}
    assert len(days["Mon"]) == 24 and days["Mon"][10] == "36"  # 0.40 x 0.9 (a Monday)
    assert days["Sat"][3] == str(round(rates.expected_rate(how(SAT, 3)) * 100))
    assert "from 200 calls" in text


# --- local hour starts across DST ---------------------------------------------------------------


def starts(zone: ZoneInfo, after: datetime, hours: int) -> list[str]:
    """The hour starts in the `hours` real hours after `after`, on the local clock."""
    until = after.astimezone(UTC) + timedelta(hours=hours)
    return [f"{t.astimezone(zone):%H:%M%z}" for t in local_hour_starts(after, until, zone)]


def test_hour_starts_skip_the_spring_forward_gap_and_repeat_the_fall_back_hour():
    """New York: no 02:00 on 2026-03-08 (the clock jumps to 03:00); 01:00 twice on 2026-11-01."""
    after = datetime(2026, 3, 7, 23, 30, tzinfo=NY)
    assert starts(NY, after, 5) == [
        "00:00-0500",
        "01:00-0500",
        "03:00-0400",
        "04:00-0400",
        "05:00-0400",
    ]
    after = datetime(2026, 10, 31, 23, 30, tzinfo=NY)
    assert starts(NY, after, 5) == [
        "00:00-0400",
        "01:00-0400",
        "01:00-0500",
        "02:00-0500",
        "03:00-0500",
    ]


def test_hour_starts_in_half_hour_zones_and_half_hour_shifts():
    """Kolkata's hours start at UTC :30; Lord Howe's 30-minute jump enters 02:xx at 02:30."""
    after = datetime(2026, 6, 1, 9, 10, tzinfo=KOLKATA)
    found = local_hour_starts(after, after + timedelta(hours=3), KOLKATA)
    assert [t.astimezone(UTC).minute for t in found] == [30, 30, 30]
    assert [t.astimezone(KOLKATA).hour for t in found] == [10, 11, 12]
    after = datetime(2026, 10, 3, 23, 30, tzinfo=LORD_HOWE)  # spring forward 02:00 -> 02:30
    assert starts(LORD_HOWE, after, 4) == [
        "00:00+1030",
        "01:00+1030",
        "02:30+1100",
        "03:00+1100",
        "04:00+1100",
    ]
    after = datetime(2026, 4, 4, 23, 30, tzinfo=LORD_HOWE)  # fall back 02:00 -> 01:30
    assert starts(LORD_HOWE, after, 4) == [
        "00:00+1100",
        "01:00+1100",
        "02:00+1030",
        "03:00+1030",
    ]


def test_every_hour_start_is_a_real_local_time_a_year_round():
    """Read back through zoneinfo, each start shows minute 0 (or a DST jump into the hour) and
    exists on the local clock: a nonexistent wall time is never produced."""
    for zone in (NY, LORD_HOWE, ZoneInfo("America/Havana"), ZoneInfo("Asia/Kathmandu")):
        t = datetime(2026, 1, 1, tzinfo=UTC)
        found = local_hour_starts(t, t + timedelta(days=366), zone)
        assert 8700 <= len(found) <= 8800, zone
        for s in found:
            local = s.astimezone(zone)
            wall = local.replace(tzinfo=None)
            assert wall.replace(tzinfo=zone, fold=local.fold).astimezone(UTC) == s
            jumped = (s - timedelta(microseconds=1)).astimezone(
                zone
            ).utcoffset() != local.utcoffset()
            assert local.minute == 0 or jumped, (zone, local)


# --- choose_time against hand-written oracles ---------------------------------------------------


def oracle(
    zone: ZoneInfo, is_allowed: Callable[[datetime], bool]
) -> Callable[[datetime], datetime]:
    """The first instant at or after t that `is_allowed` (whose rules change on whole minutes)."""

    def allowed(t: datetime) -> datetime:
        if is_allowed(t):
            return t
        t = t.replace(second=0, microsecond=0) + timedelta(minutes=1)
        for _ in range(20 * 24 * 60):
            if is_allowed(t):
                return t
            t += timedelta(minutes=1)
        raise AssertionError("nothing allowed in 20 days")

    return allowed


def office(zone: ZoneInfo) -> Callable[[datetime], bool]:
    """Weekdays 09:00-12:00 and 14:00-20:00 local: nothing at lunch, at night or at weekends."""

    def is_allowed(t: datetime) -> bool:
        local = t.astimezone(zone)
        minute = local.hour * 60 + local.minute
        return local.weekday() < 5 and (9 * 60 <= minute < 12 * 60 or 14 * 60 <= minute < 20 * 60)

    return is_allowed


def test_the_choice_is_allowed_and_inside_the_span_for_many_seeds_and_starts():
    """Over seeds, starts and spans, the time chosen is allowed and in [earliest, latest]."""
    is_allowed = office(NY)
    allowed = oracle(NY, is_allowed)
    rng_cases = random.Random(11)
    for _ in range(150):
        earliest = datetime(2026, 3, 2, tzinfo=UTC) + timedelta(
            minutes=rng_cases.randrange(60 * 24 * 14)
        )
        latest = earliest + timedelta(minutes=rng_cases.choice([30, 90, 180, 600, 1440, 4000]))
        choice = choose_time(
            earliest=earliest,
            latest=latest,
            zone=NY,
            allowed=allowed,
            rates=AnswerRates(),
            rng=random.Random(rng_cases.random()),
        )
        assert is_allowed(choice.at), choice
        if choice.fallback:  # then truly nothing in the span was allowed
            t = earliest
            while t <= latest:
                assert not is_allowed(t), (earliest, latest, t)
                t += timedelta(minutes=1)
            assert choice.at == allowed(earliest) and choice.sampled is None
        else:
            assert earliest <= choice.at <= latest, choice
            assert choice.allowed_hours >= 1 and choice.sampled is not None
        assert choice.hour_of_week == hour_of_week(choice.at, NY)
        assert choice.expected_rate == AnswerRates().expected_rate(choice.hour_of_week)


def test_a_span_with_nothing_allowed_falls_back_to_the_next_allowed_time_and_says_so():
    """Friday 20:30 to Saturday 08:00 is all forbidden: Monday 09:00, and the reason."""
    earliest = datetime(2026, 3, 6, 20, 30, tzinfo=NY)
    choice = choose_time(
        earliest=earliest,
        latest=earliest + timedelta(hours=11, minutes=30),
        zone=NY,
        allowed=oracle(NY, office(NY)),
        rates=AnswerRates(),
        rng=random.Random(1),
    )
    assert choice.fallback and choice.at == datetime(2026, 3, 9, 9, 0, tzinfo=NY)
    assert choice.why == (
        "no allowed time between the earliest and the latest retry time: placed at the first"
        " allowed time, Mon 09:00 (expected answer rate 27%)"
    )


def test_an_hour_whose_allowed_part_starts_late_is_still_a_candidate():
    """Earliest 10:05 with 10:00-10:40 forbidden: 10:40 is kept as the 10:00 hour's time."""

    def not_before_10_40(t: datetime) -> bool:
        local = t.astimezone(NY)
        return not 10 * 60 <= local.hour * 60 + local.minute < 10 * 60 + 40

    earliest = datetime(2026, 3, 3, 10, 5, tzinfo=NY)
    choice = choose_time(
        earliest=earliest,
        latest=earliest + timedelta(minutes=50),  # 10:55: the 10:00 hour only
        zone=NY,
        allowed=oracle(NY, not_before_10_40),
        rates=AnswerRates(),
        rng=random.Random(0),
    )
    assert not choice.fallback and choice.at == datetime(2026, 3, 3, 10, 40, tzinfo=NY)
    assert choice.wanted == earliest and choice.allowed_hours == 1


def test_an_allowed_time_in_the_last_hour_but_after_latest_is_not_taken():
    """Span 15:50-16:20, forbidden 15:00-16:40: 16:40 is in the 16:00 hour yet after latest, so
    nothing in the span is allowed and the fallback says so."""

    def not_15_00_to_16_40(t: datetime) -> bool:
        local = t.astimezone(NY)
        return not 15 * 60 <= local.hour * 60 + local.minute < 16 * 60 + 40

    earliest = datetime(2026, 3, 3, 15, 50, tzinfo=NY)
    choice = choose_time(
        earliest=earliest,
        latest=earliest + timedelta(minutes=30),
        zone=NY,
        allowed=oracle(NY, not_15_00_to_16_40),
        rates=AnswerRates(),
        rng=random.Random(0),
    )
    assert choice.fallback and choice.at == datetime(2026, 3, 3, 16, 40, tzinfo=NY)


def test_the_same_seed_gives_the_same_choice_and_seeds_explore():
    """Deterministic given the rng; over seeds, more than one hour gets tried."""
    earliest = datetime(2026, 3, 3, 9, 0, tzinfo=NY)

    def pick(seed: int) -> datetime:
        return choose_time(
            earliest=earliest,
            latest=earliest + timedelta(hours=24),
            zone=NY,
            allowed=oracle(NY, office(NY)),
            rates=AnswerRates(),
            rng=random.Random(seed),
        ).at

    assert all(pick(seed) == pick(seed) for seed in range(20))
    hours = Counter(pick(seed).astimezone(NY).hour for seed in range(200))
    assert len(hours) >= 3, hours
    assert hours[10] + hours[16] + hours[17] > hours[9] + hours[18] + hours[19], hours


def test_records_favouring_18_00_move_the_choice_there():
    """With 18:00 answered far more than any other hour, 18:00 wins almost every draw."""
    rows = [HourCount(d, h, 200, 140 if h == 18 else 10) for d in range(5) for h in range(24)]
    rates = AnswerRates.from_rows(rows)
    earliest = datetime(2026, 3, 3, 8, 30, tzinfo=NY)  # Tuesday
    allowed = oracle(NY, office(NY))

    def hour(seed: int, table: AnswerRates) -> int:
        return (
            choose_time(
                earliest=earliest,
                latest=earliest + timedelta(hours=20),
                zone=NY,
                allowed=allowed,
                rates=table,
                rng=random.Random(seed),
            )
            .at.astimezone(NY)
            .hour
        )

    learned = Counter(hour(seed, rates) for seed in range(200))
    assert learned[18] >= 190, learned
    prior_only = Counter(hour(seed, AnswerRates()) for seed in range(200))
    assert prior_only[18] < 60, prior_only


def test_jitter_spreads_within_the_chosen_hour_and_stays_allowed():
    """`spread` moves the call later inside its hour, never out of it or into a forbidden time."""
    earliest = datetime(2026, 3, 3, 8, 30, tzinfo=NY)
    is_allowed = office(NY)
    seen = set()
    for seed in range(100):
        choice = choose_time(
            earliest=earliest,
            latest=earliest + timedelta(hours=12),
            zone=NY,
            allowed=oracle(NY, is_allowed),
            rates=AnswerRates(),
            rng=random.Random(seed),
            spread=1800,
        )
        seen.add(choice.at.astimezone(NY).minute)
        assert is_allowed(choice.at) and choice.at <= earliest + timedelta(hours=12)
        assert choice.at.astimezone(NY).hour == choice.hour_of_week % 24
        assert choice.wanted <= choice.at
    assert len(seen) > 10


def test_on_the_spring_forward_night_the_choice_is_a_real_local_time():
    """A span over the skipped 02:00 hour, calls allowed all night: no 02:xx, no invented time."""
    earliest = datetime(2026, 3, 8, 0, 10, tzinfo=NY)
    allowed_hours = set()
    for seed in range(100):
        choice = choose_time(
            earliest=earliest,
            latest=earliest + timedelta(hours=4),
            zone=NY,
            allowed=lambda t: t,
            rates=AnswerRates(),
            rng=random.Random(seed),
        )
        local = choice.at.astimezone(NY)
        assert local.hour != 2
        assert local.replace(tzinfo=None).replace(tzinfo=NY).astimezone(UTC) == choice.at
        assert choice.allowed_hours == 4  # 00:10, 01:00, 03:00, 04:00 (the hour it ends in)
        allowed_hours.add(local.hour)
    assert allowed_hours <= {0, 1, 3, 4}


# --- the query, on SQLite and PostgreSQL --------------------------------------------------------


@pytest.fixture
def records_store(database_url: str) -> Iterator[Store]:
    """The two tables the query reads, made directly (no migrations: nothing else is needed)."""
    store = Store(database_url)
    SQLModel.metadata.create_all(
        store.engine,
        tables=[CallRecordRow.__table__, CampaignRecipientRow.__table__],  # type: ignore[attr-defined]
    )
    yield store
    store.close()


def add_recipient(store: Store, campaign: str, phone: str, zone: str) -> None:
    with store.engine.begin() as connection:
        connection.execute(
            insert(CampaignRecipientRow.__table__),  # type: ignore[attr-defined]
            [
                {
                    "campaign_id": campaign,
                    "phone": phone,
                    "workflow_id": f"campaign/{campaign}/recipient/{phone}",
                    "seq": 0,
                    "zone": zone,
                    "updated_at": datetime.now(UTC),
                }
            ],
        )


def add_calls(
    store: Store, campaign: str | None, phone: str, calls: list[tuple[datetime, str, bool]]
) -> None:
    with store.engine.begin() as connection:
        connection.execute(
            insert(CallRecordRow.__table__),  # type: ignore[attr-defined]
            [
                {
                    "idempotency_key": f"{campaign}:{phone}:{n}:{started.isoformat()}",
                    "campaign_id": campaign,
                    "phone": phone,
                    "retry_group_id": f"campaign/{campaign}/recipient/{phone}",
                    "attempt": n + 1,
                    "outcome": outcome,
                    "started_at": started,
                    "ended_at": started + timedelta(seconds=40),
                    "dialed": dialed,
                    "variables": {},
                    "recorded_at": datetime.now(UTC),
                }
                for n, (started, outcome, dialed) in enumerate(calls)
            ],
        )


def test_the_query_counts_calls_by_the_recipients_local_hour_of_week(records_store: Store):
    """Grouped in the database by each recipient's own zone (DST and half-hour zones too);
    undialed calls and calls with no recipient row left out; campaigns, since and limit apply."""
    store = records_store
    add_recipient(store, "a", "+12125550101", "America/New_York")
    add_recipient(store, "a", "+919876543210", "Asia/Kolkata")
    add_recipient(store, "b", "+12125550101", "America/New_York")
    # 2026-03-08 06:30 UTC is 01:30 EST (Sunday); 07:30 UTC is 03:30 EDT: the gap in between.
    add_calls(
        store,
        "a",
        "+12125550101",
        [
            (datetime(2026, 3, 8, 6, 30, tzinfo=UTC), "completed", True),
            (datetime(2026, 3, 8, 7, 30, tzinfo=UTC), "no_answer", True),
            (datetime(2026, 3, 10, 15, 0, tzinfo=UTC), "voicemail", True),  # Tue 11:00 EDT
            (datetime(2026, 3, 10, 15, 5, tzinfo=UTC), "dnd", False),  # never dialed
        ],
    )
    # 04:40 UTC is 10:10 in Kolkata (Wednesday); 04:20 UTC is 09:50.
    add_calls(
        store,
        "a",
        "+919876543210",
        [
            (datetime(2026, 3, 11, 4, 40, tzinfo=UTC), "completed", True),
            (datetime(2026, 3, 11, 4, 20, tzinfo=UTC), "completed", True),
        ],
    )
    add_calls(
        store, "b", "+12125550101", [(datetime(2026, 3, 12, 21, 0, tzinfo=UTC), "busy", True)]
    )
    add_calls(
        store, None, "+12125550199", [(datetime(2026, 3, 12, 21, 0, tzinfo=UTC), "completed", True)]
    )

    rates = answer_rate_rows(store)
    expected = {
        how(SUN, 1): (1, 1),
        how(SUN, 3): (1, 0),
        how(TUE, 11): (1, 0),
        how(WED, 10): (1, 1),
        how(WED, 9): (1, 1),
        how(THU, 17): (1, 0),  # 21:00 UTC is 17:00 EDT
    }
    found = {h: (n, rates.answered[h]) for h, n in enumerate(rates.attempts) if n}
    assert found == expected
    assert rates.calls == 6

    only_b = answer_rate_rows(store, campaign_ids=["b"])
    assert {h: n for h, n in enumerate(only_b.attempts) if n} == {how(THU, 17): 1}
    assert answer_rate_rows(store, campaign_ids=[]).calls == 0
    since = answer_rate_rows(store, since=datetime(2026, 3, 10, tzinfo=UTC))
    assert since.calls == 4 and since.attempts[how(SUN, 1)] == 0
    newest = answer_rate_rows(store, limit=2)  # Thu 17:00 (b) and Wed 10:10 (a)
    assert {h: n for h, n in enumerate(newest.attempts) if n} == {how(THU, 17): 1, how(WED, 10): 1}


def test_the_query_refuses_a_naive_since_or_a_limit_below_one(records_store: Store):
    with pytest.raises(ValueError, match="since: .*must be timezone-aware"):
        answer_rate_rows(records_store, since=datetime(2026, 3, 1))
    with pytest.raises(ValueError, match="limit: 0: must be at least 1"):
        answer_rate_rows(records_store, limit=0)
