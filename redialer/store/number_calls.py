"""The cross-campaign frequency cap in the store: at most N calls to a number in any window.

A dial claims a place in its number's window right before the call is placed, whichever campaign
and worker it comes from. The count and the insert must be one step, or two workers could both
see the last place free: on SQLite the claim's first statement writes, so the whole claim runs
under the store's write lock (redialer/store/sqlite_writes.py); on PostgreSQL it first takes a
transaction-scoped advisory lock on the number (a row lock would not do: a number's first call
has no row to lock). Claims are keyed by the dial's idempotency key, so a retried dial re-uses
its claim and never counts twice.

A claim counts from when the call was requested: `calling` moves it there (a dial that waited a
moment after its claim counts from its real call). Rows older than the window are pruned, a
number's own at each claim and everyone's every `PRUNE_EVERY`: every worker must run with the same
REDIALER_MAX_CALLS_PER_NUMBER, since one with a shorter window prunes rows a longer one needs.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, delete, select, text, update
from sqlalchemy.dialects import postgresql, sqlite

from redialer.frequency_caps import FrequencyCap
from redialer.store.tables import NumberCallRow

CALLS = NumberCallRow.__table__.c  # type: ignore[attr-defined]
#: The advisory locks' first key ("nc"): never one of the schema lock's (a single bigint key).
LOCK_CLASS = 0x6E63
#: Seconds between two prunes of every number's old rows, per process.
PRUNE_EVERY = 600.0


@dataclass(frozen=True)
class Claim:
    """May the call go now; if not, the first instant the number's window allows one."""

    granted: bool
    until: datetime | None = None


def number_lock(number_key: str) -> int:
    """The advisory lock's second key: 32 bits of a hash of the number's key (two numbers that
    share one only wait for each other)."""
    return int.from_bytes(hashlib.sha256(number_key.encode()).digest()[:4], "big", signed=True)


class NumberCalls:
    def __init__(self, engine: Engine, number_key: Callable[[str], str]) -> None:
        self._engine = engine
        self._number_key = number_key
        self._postgres = engine.dialect.name == "postgresql"
        self._dialect: Any = postgresql if self._postgres else sqlite
        self._pruned_at = time.monotonic()
        self._prune_lock = threading.Lock()

    def claim(self, phone: str, holder: str, cap: FrequencyCap, now: datetime) -> Claim:
        """A place for the call `holder` (a dial's idempotency key) to `phone` at `now`, or when
        the window frees one: the oldest of the number's last `cap.calls` calls + the window."""
        key = self._number_key(phone)
        with self._engine.begin() as c:
            if self._postgres:
                c.execute(
                    text("SELECT pg_advisory_xact_lock(:cls, :obj)"),
                    {"cls": LOCK_CLASS, "obj": number_lock(key)},
                )
            # The first statement writes (on SQLite: takes the write lock for the whole claim),
            # and finds the claim of a retried dial.
            if self._held(c, holder):
                return Claim(granted=True)
            c.execute(
                delete(NumberCallRow).where(
                    CALLS.number_key == key, CALLS.called_at <= now - cap.window
                )
            )
            times = list(
                c.execute(
                    select(CALLS.called_at)
                    .where(CALLS.number_key == key, CALLS.called_at > now - cap.window)
                    .order_by(CALLS.called_at)
                ).scalars()
            )
            if len(times) >= cap.calls:
                return Claim(granted=False, until=times[-cap.calls] + cap.window)
            c.execute(
                self._dialect.insert(NumberCallRow.__table__)  # type: ignore[attr-defined]
                .values(holder=holder, number_key=key, called_at=now)
                .on_conflict_do_nothing()
            )
        self._prune_now_and_then(now, cap)
        return Claim(granted=True)

    def _held(self, c: Connection, holder: str) -> bool:
        kept = c.execute(
            update(NumberCallRow).where(CALLS.holder == holder).values(called_at=CALLS.called_at)
        )
        return bool(kept.rowcount)

    def calling(self, holder: str, at: datetime) -> None:
        """The call is requested now (`at`): its claim counts from this moment."""
        with self._engine.begin() as c:
            c.execute(update(NumberCallRow).where(CALLS.holder == holder).values(called_at=at))

    def release(self, holder: str) -> None:
        """No call was placed after all (the provider refused it): the place is free."""
        with self._engine.begin() as c:
            c.execute(delete(NumberCallRow).where(CALLS.holder == holder))

    def calls_to(self, phone: str) -> list[datetime]:
        """The number's claimed calls, oldest first (tests, and a look at one number)."""
        with self._engine.connect() as c:
            return list(
                c.execute(
                    select(CALLS.called_at)
                    .where(CALLS.number_key == self._number_key(phone))
                    .order_by(CALLS.called_at)
                ).scalars()
            )

    def prune(self, before: datetime) -> int:
        """Forget every claim older than `before` (no window in force reaches back that far)."""
        with self._engine.begin() as c:
            return int(c.execute(delete(NumberCallRow).where(CALLS.called_at < before)).rowcount)

    def _prune_now_and_then(self, now: datetime, cap: FrequencyCap) -> None:
        """Numbers never called again keep their rows until this drops them, every PRUNE_EVERY
        seconds per process (one indexed delete; each claim prunes its own number anyway)."""
        with self._prune_lock:
            if time.monotonic() - self._pruned_at < PRUNE_EVERY:
                return
            self._pruned_at = time.monotonic()
        self.prune(now - cap.window)
