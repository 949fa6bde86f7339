"""Waiting at the front of a line inside the worker, so a freed line is taken at once.

A dial the caps refuse goes back to Temporal, which retries it when the line says: no worker
slot and no history events while it waits, which is what lets 20,000 calls wait on 200 lines.
At the front that back-off is what leaves lines idle: the next call starts when its retry
happens to fire, not when the line frees. So a dial told to come back within `NEAR` seconds, or
among the first `capacity` in line, waits here instead, in one of at most `capacity` places on
this worker: a call ending on this worker wakes it at once; otherwise it asks again every `POLL`
seconds (a call ending on another worker), heartbeating, and after `HOLD` seconds it goes back to
Temporal's back-off. Each place holds an activity slot: that is the price of a line never idle.
Its heartbeat says "waiting for a line" (the Web UI shows it on the pending dial; a dial in the
back-off shows the same words as its last failure).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

from temporalio import activity

from redialer.store.call_caps import Admission

#: Only a dial this close to its turn waits in the worker.
NEAR = 3.0
#: How often a waiter asks again when no call ended on this worker.
POLL = 0.2
#: The longest a dial waits here before it goes back to Temporal's back-off.
HOLD = 15.0


class LineWaiting:
    """The places at the front of the lines on this worker.

    The waiters take turns: one looks (or asks) at a time, and a look that found every line
    taken is shared with the other waiters of the same campaign for up to `POLL` seconds, until
    a line frees here or one of them is let through. (Only the same campaign's: a line the
    account keeps for a campaign under its share is refused to the others, and must not keep
    that campaign's own waiter from looking.) So a worker with 32 waiters of one campaign reads
    the store about 5 times a second instead of 160, and a line freed on another worker is met
    by one request, not 32 writes queueing for the store ahead of the calls about to ring."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._waiting = 0
        self._freed = asyncio.Event()
        self._turn = asyncio.Lock()  # asyncio's lock is first come, first served
        #: When a look last found no line free, per campaign (None: single calls).
        self._full_since: dict[str | None, float] = {}

    def _near(self, refusal: Admission) -> bool:
        """Its turn is close: due within NEAR seconds, or among the first in line."""
        return refusal.retry_after <= NEAR or refusal.ahead < self._capacity

    def line_freed(self) -> None:
        """A call on this worker gave its line back: the waiters here look again at once."""
        self._full_since.clear()
        freed, self._freed = self._freed, asyncio.Event()
        freed.set()

    def _known_full(self, group: str | None) -> bool:
        since = self._full_since.get(group)
        return since is not None and time.monotonic() - since < POLL

    async def wait_for_turn(
        self,
        ask: Callable[[], Awaitable[Admission]],
        first: Admission,
        may_be_free: Callable[[], Awaitable[bool]] | None = None,
        group: str | None = None,
    ) -> Admission:
        """The admission once this dial's turn came, or the last refusal (to back off with).
        `may_be_free` is a cheap read-only look: a waiter asks again (a write) only when a line
        looks free."""
        if first.admitted or not self._near(first) or self._waiting >= self._capacity:
            return first
        self._waiting += 1
        try:
            deadline = time.monotonic() + HOLD
            admission = first
            while time.monotonic() < deadline:
                freed = self._freed
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(freed.wait(), timeout=min(POLL, admission.retry_after))
                activity.heartbeat(f"waiting for a line, {admission.ahead} calls ahead")
                async with self._turn:
                    if self._known_full(group):
                        continue
                    if may_be_free is not None and not await may_be_free():
                        self._full_since[group] = time.monotonic()
                        continue
                    admission = await ask()
                    if admission.admitted:
                        self._full_since.pop(group, None)  # the next waiter looks for itself
                    else:
                        self._full_since[group] = time.monotonic()
                if admission.admitted or not self._near(admission):
                    break
            return admission
        finally:
            self._waiting -= 1
