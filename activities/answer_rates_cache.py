"""The `smart` strategy's answer-rate tables, kept per worker for a while.

Reading a table groups up to the newest 100,000 call records by local hour of the week (about
half a second on SQLite, a fifth on PostgreSQL): far too slow for every dial, and a table a few
minutes old times a retry as well. One read per campaign list per `keep_for` seconds; dials that
need the same table meanwhile wait for that one read instead of starting their own. Ages are
counted on Temporal's clock (the dial's), as every other time the schedule reads: the same as
the wall in production, and simulated time on the time-skipping server, where days pass in
seconds and a wall-clock age would keep one table for a whole simulated campaign.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime, timedelta

from redialer.answer_rates import AnswerRates
from redialer.store.answer_rate_query import answer_rate_rows
from redialer.store.store import Store

#: Distinct campaign lists kept at once (each table is 2 x 168 counts); the oldest read goes.
MAX_TABLES = 256


class AnswerRatesCache:
    def __init__(self, store: Store, *, keep_for: float) -> None:
        self._store = store
        self._keep_for = timedelta(seconds=keep_for)
        self._tables: dict[tuple[str, ...] | None, tuple[datetime, AnswerRates]] = {}
        self._locks: dict[tuple[str, ...] | None, asyncio.Lock] = {}

    async def get(self, learn_from: Sequence[str] | None, now: datetime) -> AnswerRates:
        """The table of `learn_from`'s call records (None: every campaign's), as of `now`."""
        key = tuple(sorted(learn_from)) if learn_from is not None else None
        fresh = self._fresh(key, now)
        if fresh is not None:
            return fresh
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            fresh = self._fresh(key, now)  # another dial read it while this one waited
            if fresh is not None:
                return fresh
            table = await asyncio.to_thread(
                answer_rate_rows, self._store, campaign_ids=list(key) if key is not None else None
            )
            if len(self._tables) >= MAX_TABLES and key not in self._tables:
                oldest = min(self._tables, key=lambda k: self._tables[k][0])
                del self._tables[oldest]
                self._locks.pop(oldest, None)
            self._tables[key] = (now, table)
            return table

    def _fresh(self, key: tuple[str, ...] | None, now: datetime) -> AnswerRates | None:
        kept = self._tables.get(key)
        if kept is not None and kept[0] <= now < kept[0] + self._keep_for:
            return kept[1]
        return None
