"""The simulated dialer: scripted outcomes, a realistic seeded mix, and never two calls per key."""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import update
from sqlmodel import Session

from redialer.answer_profile import AnswerProfile
from redialer.dialers.base import CallRequest, CallResult, idempotency_key
from redialer.dialers.simulated import (
    DURATIONS,
    RATES,
    DialLedger,
    SimulatedDialer,
    answers,
    load_script,
    simulated_outcome,
)
from redialer.loading import InvalidInput
from redialer.outcomes import Outcome
from redialer.store.store import Store
from redialer.store.tables import SimulatedDialRow
from tests import store_fixtures

db = store_fixtures.db
database_url = store_fixtures.database_url

ADA = "+16505550199"


def request(
    attempt: int, phone: str = ADA, campaign: str = "c1", zone: str | None = None
) -> CallRequest:
    return CallRequest(
        idempotency_key=idempotency_key(campaign, phone, attempt),
        campaign_id=campaign,
        phone=phone,
        attempt=attempt,
        retry_group_id=f"campaign/{campaign}/recipient/{phone}",
        zone=zone,
    )


def test_script_file_loads_and_normalises_numbers(tmp_path: Path):
    """A script maps numbers (any international format) to the outcome of each attempt."""
    path = tmp_path / "script.json"
    path.write_text(
        json.dumps({"+1 650 555 0199": ["busy", "no_answer", "completed"], "+14155550100": ["dnd"]})
    )
    assert load_script(path) == {
        ADA: [Outcome.BUSY, Outcome.NO_ANSWER, Outcome.COMPLETED],
        "+14155550100": [Outcome.DND],
    }


def test_bad_script_lists_every_problem(tmp_path: Path):
    """Every bad entry of a script is reported at once with its key, value and rule."""
    path = tmp_path / "script.yaml"
    path.write_text(
        "'+16505550199': [busy, hung_up]\n"
        "'12': [busy]\n"
        "'+14155550100': []\n"
        "'+1 650 555 0199': [completed]\n"
        "'+12125550123': busy\n"
    )
    with pytest.raises(InvalidInput) as info:
        load_script(path)
    problems = info.value.problems
    assert [p.path for p in problems] == [
        "+16505550199[1]",
        "12",
        "+14155550100",
        "+1 650 555 0199",
        "+12125550123",
    ]
    assert problems[0].value == "hung_up" and "no_answer" in problems[0].rule
    assert "already scripted" in problems[3].rule
    assert all(p.rule for p in problems)
    assert isinstance(info.value, ValueError) and "hung_up" in str(info.value)


async def test_scripted_outcomes_per_attempt_with_the_last_repeated(db: Store):
    """Attempt N gets the script's Nth outcome; past the end, the last one repeats."""
    ledger = DialLedger(db)
    dialer = SimulatedDialer(
        ledger=ledger, script={ADA: [Outcome.BUSY, Outcome.COMPLETED]}, instant=True
    )
    outcomes = [(await dialer.dial(request(n))).outcome for n in (1, 2, 3)]
    assert outcomes == [Outcome.BUSY, Outcome.COMPLETED, Outcome.COMPLETED]
    assert [(d.attempt, d.outcome) for d in ledger.dials_for(ADA)] == [
        (1, "busy"),
        (2, "completed"),
        (3, "completed"),
    ]


def test_unscripted_numbers_get_a_seeded_realistic_mix(store: Store):
    """Same seed and key, same outcome; over 5,000 calls the rates match within 3 points."""
    dialer = SimulatedDialer(ledger=DialLedger(store), seed=42)
    again = SimulatedDialer(ledger=DialLedger(store), seed=42)
    other = SimulatedDialer(ledger=DialLedger(store), seed=43)
    keys = [request(1, phone=f"+1212555{n:04d}") for n in range(5000)]
    first = [dialer.decide(k) for k in keys]
    assert first == [again.decide(k) for k in keys]
    assert first != [other.decide(k) for k in keys]
    counts = Counter(outcome for outcome, _ in first)
    assert set(counts) == set(RATES)
    for outcome, rate in RATES.items():
        assert abs(counts[outcome] / len(keys) - rate) < 0.03, (outcome, counts[outcome])
    for outcome, duration in first:
        low, high = DURATIONS.get(outcome, (1, 4))
        assert low <= duration <= high, (outcome, duration)


async def test_a_call_takes_its_time_sped_up_and_reports_its_simulated_length(store: Store):
    """A call waits duration/speed of real time; its record shows the simulated duration."""
    dialer = SimulatedDialer(ledger=DialLedger(store), script={ADA: [Outcome.BUSY]}, speed=100)
    _, duration = dialer.decide(request(1))
    before = datetime.now(UTC)
    started = time.perf_counter()
    result = await dialer.dial(request(1))
    waited = time.perf_counter() - started
    assert duration / 100 <= waited  # it rang for the call's length (time it in bench/, not here)
    assert result.ended_at - result.started_at == timedelta(seconds=duration / 100)
    assert before <= result.started_at <= datetime.now(UTC)  # wall clock outside an activity
    key = request(1).idempotency_key
    assert result.call_id == "sim-" + hashlib.sha256(key.encode()).hexdigest()[:16]


async def test_every_request_for_a_key_is_counted_so_a_double_dial_shows(db: Store):
    """The simulator counts every place-call request per key, as a provider would see them: a
    second request for a key is never hidden (it gets the first call's result, so a run can go on,
    and the ledger says the key was dialed twice)."""
    ledger = DialLedger(db)
    dialer = SimulatedDialer(ledger=ledger, script={ADA: [Outcome.NO_ANSWER]}, instant=True)
    first = await dialer.dial(request(1))
    assert ledger.placements() == {"c1:+16505550199:1": 1} and ledger.dialed_twice() == {}
    # Another worker with another script still gets the first result: nothing is re-decided.
    other = SimulatedDialer(ledger=DialLedger(db), script={ADA: [Outcome.COMPLETED]}, instant=True)
    assert await other.dial(request(1)) == first
    assert await dialer.dial(request(1)) == first
    assert (dialer.placed, other.placed) == (1, 0)
    assert ledger.placements() == {"c1:+16505550199:1": 3}
    assert ledger.dialed_twice("c1:") == {"c1:+16505550199:1": 3}
    assert ledger.dialed_twice("c2:") == {}


async def test_adopting_finds_the_call_placed_for_a_key_and_only_that(db: Store):
    """`adopt` returns the call already placed for a key without a new request, and None for a
    key the simulator never saw (so the caller may place it)."""
    ledger = DialLedger(db)
    dialer = SimulatedDialer(ledger=ledger, script={ADA: [Outcome.BUSY]}, instant=True)
    since = datetime.now(UTC)
    assert await dialer.adopt(request(1), since=since) is None
    placed = await dialer.dial(request(1))
    assert await dialer.adopt(request(1), since=since) == placed
    assert ledger.placements() == {"c1:+16505550199:1": 1}


async def test_a_call_cut_off_by_a_dead_worker_is_finished_not_redialed(db: Store):
    """A ledger row without a result (its worker died mid-call) is finished, never placed again."""
    ledger = DialLedger(db)
    req = request(1)
    placed_at = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
    ledger.claim(req, "sim-dead", placed_at)  # placed ... then SIGKILL, ten minutes ago
    with Session(db.engine) as session:
        session.exec(  # type: ignore[call-overload]
            update(SimulatedDialRow).values(claimed_at=datetime.now(UTC) - timedelta(minutes=10))
        )
        session.commit()
    dialer = SimulatedDialer(ledger=ledger, script={ADA: [Outcome.BUSY]}, instant=True)
    result = await dialer.adopt(req, since=placed_at)
    assert result is not None
    assert (result.outcome, result.call_id, result.started_at) == (
        Outcome.BUSY,
        "sim-dead",
        placed_at,
    )
    assert dialer.placed == 0
    assert ledger.placements() == {req.idempotency_key: 1}
    assert await dialer.adopt(req, since=placed_at) == result


async def test_a_dial_and_an_adoption_racing_on_one_key_give_one_call(database_url: str):
    """Two processes' dialers on one database (a dial and its retry, which adopts, at once):
    one call, one result, and the adopter waits for the call to end."""
    stores = [Store.open(database_url), Store.open(database_url)]
    dialers = [
        SimulatedDialer(ledger=DialLedger(s), script={ADA: [Outcome.BUSY]}, speed=4) for s in stores
    ]
    _, duration = dialers[0].decide(request(1))
    started = time.perf_counter()

    async def dial(dialer: SimulatedDialer) -> tuple[CallResult, float]:
        result = await dialer.dial(request(1))
        return result, time.perf_counter() - started

    async def adopt(dialer: SimulatedDialer) -> tuple[CallResult, float]:
        while (result := await dialer.adopt(request(1), since=datetime.now(UTC))) is None:
            await asyncio.sleep(0.01)  # not placed yet: look again (the retry's lookup)
        return result, time.perf_counter() - started

    try:
        (first, took), (second, other_took) = await asyncio.gather(
            dial(dialers[0]), adopt(dialers[1])
        )
        assert first == second and first.outcome is Outcome.BUSY
        # The one that did not place the call waited for it to end: no early answer.
        assert min(took, other_took) >= duration / 4
        assert sorted(d.placed for d in dialers) == [0, 1]
        assert DialLedger(stores[1]).placements() == {"c1:+16505550199:1": 1}
    finally:
        for s in stores:
            s.close()


# ---- answers by the recipient's local hour (an answer profile) -----------------------------------

NEW_YORK = ZoneInfo("America/New_York")
KOLKATA = ZoneInfo("Asia/Kolkata")
#: Tuesday 2026-11-24: 10:00 and 12:30 in New York (EST, UTC-5), as instants.
TUESDAY_10_NY = datetime(2026, 11, 24, 10, tzinfo=NEW_YORK).astimezone(UTC)
TUESDAY_1230_NY = datetime(2026, 11, 24, 12, 30, tzinfo=NEW_YORK).astimezone(UTC)
TUESDAY_03_NY = datetime(2026, 11, 24, 3, tzinfo=NEW_YORK).astimezone(UTC)
#: 04:30 UTC is 10:00 in Kolkata (UTC+5:30), 04:00 for anyone reading UTC.
TUESDAY_0430_UTC = datetime(2026, 11, 24, 4, 30, tzinfo=UTC)
CALLS = 4000


def new_york(n: int) -> CallRequest:
    return request(1, phone=f"+1212555{n:04d}")


def answered_share(dialer: SimulatedDialer, requests: list[CallRequest], at: datetime) -> float:
    outcomes = [dialer.decide(r, at)[0] for r in requests]
    return outcomes.count(Outcome.COMPLETED) / len(outcomes)


def within_binomial(share: float, p: float, n: int = CALLS) -> bool:
    """Four standard deviations: the seed is fixed, so this is a deterministic check of the
    rate, and one that a rate read at another hour could not pass."""
    return abs(share - p) <= 4 * math.sqrt(p * (1 - p) / n)


def test_without_a_profile_the_hour_changes_nothing(store: Store):
    """No profile: RATES at any hour, the draw unchanged (seeded runs and benchmarks keep their
    results)."""
    dialer = SimulatedDialer(ledger=DialLedger(store), seed=42)
    for n in range(200):
        r = new_york(n)
        assert (
            dialer.decide(r) == dialer.decide(r, TUESDAY_10_NY) == dialer.decide(r, TUESDAY_03_NY)
        )
        assert dialer.decide(r)[0] is simulated_outcome(42, r.idempotency_key)


def test_answers_follow_the_profile_at_the_recipients_local_hour(store: Store):
    """Over 4,000 keys the answered share at a local hour is the profile's probability there;
    unanswered calls keep RATES's proportions among the other outcomes; the benchmark's
    `answers` is the dialer's own decision."""
    profile = AnswerProfile.default()
    dialer = SimulatedDialer(ledger=DialLedger(store), seed=7, profile=profile)
    requests = [new_york(n) for n in range(CALLS)]
    for instant in (TUESDAY_10_NY, TUESDAY_1230_NY, TUESDAY_03_NY):
        p = profile.probability(instant.astimezone(NEW_YORK))
        assert within_binomial(answered_share(dialer, requests, instant), p), (instant, p)
    local = TUESDAY_1230_NY.astimezone(NEW_YORK)
    decided = [dialer.decide(r, TUESDAY_1230_NY)[0] for r in requests]
    assert decided == [
        simulated_outcome(7, r.idempotency_key, profile=profile, local_time=local) for r in requests
    ]
    assert [o is Outcome.COMPLETED for o in decided] == [
        answers(profile, 7, r.idempotency_key, local) for r in requests
    ]
    unanswered = Counter(o for o in decided if o is not Outcome.COMPLETED)
    missed = sum(unanswered.values())
    others = sum(rate for o, rate in RATES.items() if o is not Outcome.COMPLETED)
    for outcome, rate in RATES.items():
        if outcome is not Outcome.COMPLETED:
            assert within_binomial(unanswered[outcome] / missed, rate / others, missed), outcome


def test_the_local_hour_is_read_in_the_recipients_zone(store: Store):
    """An Indian number called at 04:30 UTC on a Tuesday is called at 10:00 IST, and answers at
    the 10:00 rate (not 04:00's); a zone in the request wins over the number's."""
    profile = AnswerProfile.default()
    dialer = SimulatedDialer(ledger=DialLedger(store), seed=7, profile=profile)
    ten_ist = profile.probability(TUESDAY_0430_UTC.astimezone(KOLKATA))
    assert (ten_ist, profile.probability(TUESDAY_0430_UTC)) == (0.5, 0.03)
    indian = [request(1, phone=f"+9198765{n:05d}") for n in range(CALLS)]
    assert within_binomial(answered_share(dialer, indian, TUESDAY_0430_UTC), ten_ist)
    told = [new_york(n).model_copy(update={"zone": "Asia/Kolkata"}) for n in range(CALLS)]
    assert within_binomial(answered_share(dialer, told, TUESDAY_0430_UTC), ten_ist)


async def test_a_key_keeps_the_outcome_of_its_first_start_whatever_the_clock_says(db: Store):
    """The start is stamped once per key: a second request, an adoption, or a dead worker's call
    finished later are all decided from that stamp, never from the later clock."""
    profile = AnswerProfile.default()
    ledger = DialLedger(db)

    def dialer(at: datetime) -> SimulatedDialer:
        return SimulatedDialer(
            ledger=ledger, seed=3, profile=profile, instant=True, clock=lambda: at
        )

    morning, night = dialer(TUESDAY_10_NY), dialer(TUESDAY_03_NY)
    # Keys whose outcome differs between 10:00 and 03:00, so that the clock would show.
    differ = [
        r
        for r in map(new_york, range(200))
        if morning.decide(r, TUESDAY_10_NY)[0] != night.decide(r, TUESDAY_03_NY)[0]
    ][:6]
    assert len(differ) == 6
    for r in differ[:3]:
        first = await morning.dial(r)
        assert first.outcome is morning.decide(r, TUESDAY_10_NY)[0]
        assert first.started_at == TUESDAY_10_NY
        assert await night.dial(r) == first
        assert await night.adopt(r, since=TUESDAY_03_NY) == first
        assert ledger.placements()[r.idempotency_key] == 2
    for r in differ[3:]:  # placed at 10:00, then the worker died before the call ended
        ledger.claim(r, "sim-dead", TUESDAY_10_NY)
        with Session(db.engine) as session:
            session.exec(  # type: ignore[call-overload]
                update(SimulatedDialRow)
                .where(SimulatedDialRow.idempotency_key == r.idempotency_key)  # type: ignore[arg-type]
                .values(claimed_at=datetime.now(UTC) - timedelta(minutes=10))
            )
            session.commit()
        finished = await night.adopt(r, since=TUESDAY_10_NY)
        assert finished is not None
        assert finished.outcome is morning.decide(r, TUESDAY_10_NY)[0]
        assert finished.started_at == TUESDAY_10_NY
    assert (morning.placed, night.placed) == (3, 0)


def test_a_profile_needs_the_start_of_the_call(store: Store):
    dialer = SimulatedDialer(ledger=DialLedger(store), profile=AnswerProfile.default())
    with pytest.raises(ValueError, match="started_at is required"):
        dialer.decide(new_york(1))
