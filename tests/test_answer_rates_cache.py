"""The smart strategy's answer-rate tables are read once per cache period, on Temporal's clock,
however many dials need them at once: counted by the reads that reach the store."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from activities import answer_rates_cache
from activities.answer_rates_cache import AnswerRatesCache
from redialer.answer_rates import AnswerRates

T0 = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    seen: list[Any] = []

    def read(store: object, *, campaign_ids: list[str] | None = None) -> AnswerRates:
        seen.append(campaign_ids)
        return AnswerRates()

    monkeypatch.setattr(answer_rates_cache, "answer_rate_rows", read)
    return seen


async def test_a_table_is_read_once_per_period_and_again_after_it(reads: list[Any]):
    cache = AnswerRatesCache(store=None, keep_for=600)  # type: ignore[arg-type]
    first = await cache.get(["a"], T0)
    assert await cache.get(["a"], T0 + timedelta(seconds=599)) is first
    assert len(reads) == 1
    await cache.get(["a"], T0 + timedelta(seconds=600))
    assert len(reads) == 2
    await cache.get(["b"], T0)  # another campaign list: its own table
    await cache.get(None, T0)  # every campaign
    assert reads[2:] == [["b"], None]


async def test_simultaneous_dials_share_one_read(reads: list[Any]):
    cache = AnswerRatesCache(store=None, keep_for=600)  # type: ignore[arg-type]
    await asyncio.gather(*(cache.get(["a", "b"], T0) for _ in range(20)))
    await cache.get(["b", "a"], T0)  # the same list, in another order
    assert reads == [["a", "b"]]


async def test_the_age_is_counted_on_the_clock_given_not_the_wall(reads: list[Any]):
    """Simulated days pass in seconds on the time-skipping server: a day later is stale."""
    cache = AnswerRatesCache(store=None, keep_for=600)  # type: ignore[arg-type]
    await cache.get(["a"], T0)
    await cache.get(["a"], T0 + timedelta(days=1))
    assert len(reads) == 2
