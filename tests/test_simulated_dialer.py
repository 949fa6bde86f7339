"""The simulated dialer: scripted outcomes, a realistic seeded mix, and never two calls per key."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from redialer.dialers.base import CallRequest, idempotency_key
from redialer.dialers.simulated import RATES, DialLedger, SimulatedDialer, load_script
from redialer.loading import InvalidInput
from redialer.outcomes import Outcome
from redialer.store.store import Store

ADA = "+16505550199"


def request(attempt: int, phone: str = ADA, campaign: str = "c1") -> CallRequest:
    return CallRequest(
        idempotency_key=idempotency_key(campaign, phone, attempt),
        campaign_id=campaign,
        phone=phone,
        attempt=attempt,
        retry_group_id=f"campaign/{campaign}/recipient/{phone}",
    )


def test_script_file_loads_and_normalises_numbers(tmp_path: Path):
    """A script maps numbers (any international format) to the outcome of each attempt."""
    path = tmp_path / "script.json"
    path.write_text(json.dumps({"+1 650 555 0199": ["busy", "no_answer", "completed"]}))
    assert load_script(path) == {ADA: [Outcome.BUSY, Outcome.NO_ANSWER, Outcome.COMPLETED]}


def test_bad_script_lists_every_problem(tmp_path: Path):
    """Every bad entry of a script is reported at once with its key, value and rule."""
    path = tmp_path / "script.yaml"
    path.write_text("'+16505550199': [busy, hung_up]\n'12': [busy]\n'+14155550100': []\n")
    with pytest.raises(InvalidInput) as info:
        load_script(path)
    assert [p.path for p in info.value.problems] == ["+16505550199[1]", "12", "+14155550100"]


async def test_scripted_outcomes_per_attempt_with_the_last_repeated(store: Store):
    """Attempt N gets the script's Nth outcome; past the end, the last one repeats."""
    dialer = SimulatedDialer(
        ledger=DialLedger(store), script={ADA: [Outcome.BUSY, Outcome.COMPLETED]}, instant=True
    )
    outcomes = [(await dialer.dial(request(n))).outcome for n in (1, 2, 3)]
    assert outcomes == [Outcome.BUSY, Outcome.COMPLETED, Outcome.COMPLETED]


def test_unscripted_numbers_get_a_seeded_realistic_mix(store: Store):
    """Same seed and key, same outcome; over 5,000 calls the rates match within 3 points."""
    dialer = SimulatedDialer(ledger=DialLedger(store), seed=42)
    other = SimulatedDialer(ledger=DialLedger(store), seed=43)
    keys = [request(1, phone=f"+1212555{n:04d}") for n in range(5000)]
    first = [dialer.decide(k) for k in keys]
    assert first == [dialer.decide(k) for k in keys]
    assert first != [other.decide(k) for k in keys]
    counts = Counter(outcome for outcome, _ in first)
    for outcome, rate in RATES.items():
        assert abs(counts[outcome] / len(keys) - rate) < 0.03, (outcome, counts[outcome])
    for outcome, duration in first:
        assert (25 <= duration <= 35) if outcome is Outcome.NO_ANSWER else duration > 0


async def test_a_key_seen_again_returns_the_first_result_without_calling(store: Store):
    """Dialing the same idempotency key twice places one call and returns the same result."""
    ledger = DialLedger(store)
    dialer = SimulatedDialer(ledger=ledger, script={ADA: [Outcome.NO_ANSWER]}, instant=True)
    first = await dialer.dial(request(1))
    again = await dialer.dial(request(1))
    assert first == again
    assert ledger.placements() == {"c1:+16505550199:1": 1}


async def test_a_call_cut_off_by_a_dead_worker_is_finished_not_redialed(store: Store):
    """A ledger row without a result (the worker died mid-call) is finished, never placed again."""
    ledger = DialLedger(store)
    req = request(1)
    ledger.claim(req, "sim-dead", datetime(2026, 11, 24, 15, 0, tzinfo=UTC))  # placed, then SIGKILL
    dialer = SimulatedDialer(ledger=ledger, script={ADA: [Outcome.BUSY]}, instant=True)
    result = await dialer.dial(req)
    assert (result.outcome, result.call_id) == (Outcome.BUSY, "sim-dead")
    assert ledger.placements() == {req.idempotency_key: 1}


async def test_two_workers_racing_on_one_key_place_one_call(tmp_path: Path):
    """Two processes' dialers on one SQLite file, same key at once: one call, one result."""
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    stores = [Store.open(url), Store.open(url)]
    dialers = [
        SimulatedDialer(ledger=DialLedger(s), script={ADA: [Outcome.COMPLETED]}, speed=100)
        for s in stores
    ]
    results = await asyncio.gather(*(d.dial(request(1)) for d in dialers))
    assert results[0] == results[1]
    assert DialLedger(stores[0]).placements() == {"c1:+16505550199:1": 1}
    for s in stores:
        s.close()
