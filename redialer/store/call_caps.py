"""A campaign's call caps, held across every worker: call slots, dial tickets, and the line.

`max_concurrent_calls` is a set of slot rows per campaign: taking one is an INSERT on its key,
atomic on SQLite and PostgreSQL, and a lease that the call's heartbeat renews frees a dead
worker's slot. `max_calls_per_second` is tickets per short time window, taken the same way.

A dial that finds no slot or ticket joins the campaign's line and is told when to come back: soon
near the front, later the further back it stands, by the pace at which calls free their slots.
A campaign starts all its recipients at once, so 100,000 dials may wait on 50 slots; telling each
to retry every second would be a storm of 100,000 checks a second. Instead each checks in a
handful of times. A free slot goes to whoever asks (an idle slot is never held for someone who is
late), and since the front is told to come back first, calls go roughly in arrival order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, and_, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from redialer.store.tables import CallLineRow, CallSlotRow, DialTicketRow, utcnow

SLOTS = CallSlotRow.__table__.c  # type: ignore[attr-defined]
TICKETS = DialTicketRow.__table__.c  # type: ignore[attr-defined]
LINE = CallLineRow.__table__.c  # type: ignore[attr-defined]

#: Nearest and furthest "come back in" (seconds).
SOONEST, LATEST = 0.25, 3600.0
#: Come back a little before the estimate says it is your turn: the estimate is rough.
EARLY = 0.8
#: How long a call holds its slot, until the campaign's own calls say: short rather than long,
#: so a wrong guess costs a waiter one early check, not an idle slot.
ASSUMED_HOLD = 10.0
#: How far back call lengths are averaged; rows let through before that are forgotten.
PACE_OVER = timedelta(minutes=5)
#: A waiter this long past the time it was told to come back has gone (its workflow ended, its
#: campaign paused): found at the head of the line, it leaves it.
OVERDUE = timedelta(seconds=30)
#: Dial-rate windows are numbered from here (see DialTicketRow.window).
WINDOWS_FROM = datetime(2026, 1, 1, tzinfo=UTC)


def dial_rate_windows(rate: float) -> tuple[int, float]:
    """(tickets, seconds) per window for `max_calls_per_second`: the average rate is exact, and
    short windows keep bursts small: any one second sees at most `rate + tickets` dials, where
    one-second windows of `rate` tickets would let two windows' worth through back to back."""
    tickets = max(1, int(rate // 10))
    return tickets, tickets / rate


@dataclass(frozen=True)
class Admission:
    """May the call go now; if not, about how many wait before it, and when to ask again."""

    admitted: bool
    holds_slot: bool = False
    ahead: int = 0
    retry_after: float = 0.0


class CallCaps:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._dialect: Any = postgresql if engine.dialect.name == "postgresql" else sqlite

    def admit(
        self,
        campaign_id: str,
        holder: str,
        *,
        max_calls: int | None,
        rate: float | None,
        lease: timedelta,
        now: datetime | None = None,
    ) -> Admission:
        """Let `holder` (a call's idempotency key) through both caps, or keep its place in line.
        `now` is the clock's reading unless given (tests pin it to stay inside one rate window)."""
        now = now or utcnow()
        with self._engine.begin() as c:
            if max_calls and self._renewed(c, campaign_id, holder, now + lease):
                return Admission(admitted=True, holds_slot=True)  # a retried attempt: still held
            c.execute(delete(CallSlotRow).where(_mine(SLOTS, campaign_id), SLOTS.expires_at < now))
            c.execute(
                delete(CallLineRow).where(
                    _mine(LINE, campaign_id), LINE.admitted_at < now - PACE_OVER
                )
            )
            seq = self._join(c, campaign_id, holder, now)
            free = max_calls - _count(c, SLOTS, campaign_id) if max_calls else math.inf
            window, left = None, math.inf
            if rate:
                per_window, seconds = dial_rate_windows(rate)
                window = int((now - WINDOWS_FROM).total_seconds() // seconds)
                left = per_window - self._tickets_in(c, campaign_id, window)
            if free > 0 and left > 0:
                slot = self._take_slot(c, campaign_id, holder, max_calls, now + lease)
                if max_calls and slot is None:  # another worker took the last one a moment ago
                    return self._wait(c, campaign_id, holder, now, ahead=0, after=SOONEST)
                if window is not None and not self._take_ticket(c, campaign_id, holder, window):
                    c.execute(delete(CallSlotRow).where(_held(SLOTS, campaign_id, holder)))
                    return self._wait(c, campaign_id, holder, now, ahead=0, after=SOONEST)
                c.execute(
                    update(CallLineRow)
                    .where(_held(LINE, campaign_id, holder))
                    .values(admitted_at=now)
                )
                return Admission(admitted=True, holds_slot=slot is not None)
            place = self._place(c, campaign_id, seq, now)
            after = SOONEST
            if max_calls and free <= 0:  # until `place + 1` calls have ended
                hold = self._mean_hold(c, campaign_id, now) or ASSUMED_HOLD
                after = EARLY * (place + 1) * hold / max_calls
            if window is not None and left <= 0:  # whole windows, one per `per_window` ahead
                per_window, seconds = dial_rate_windows(rate or 1)
                turn = window + 1 + place // per_window
                after = max(after, (WINDOWS_FROM - now).total_seconds() + turn * seconds)
            return self._wait(c, campaign_id, holder, now, ahead=place, after=after)

    def renew(self, campaign_id: str, holder: str, lease: timedelta) -> None:
        with self._engine.begin() as c:
            self._renewed(c, campaign_id, holder, utcnow() + lease)

    def release(self, campaign_id: str, holder: str) -> None:
        """Free the call's slot, and note how long it held it: the line's pace."""
        now = utcnow()
        with self._engine.begin() as c:
            c.execute(delete(CallSlotRow).where(_held(SLOTS, campaign_id, holder)))
            admitted = c.execute(
                select(LINE.admitted_at).where(_held(LINE, campaign_id, holder))
            ).scalar()
            if admitted is not None:
                c.execute(
                    update(CallLineRow)
                    .where(_held(LINE, campaign_id, holder))
                    .values(held_seconds=(now - _aware(admitted)).total_seconds())
                )

    # ---- pieces of one admission, all inside its transaction ------------------------------------

    def _renewed(self, c: Connection, campaign_id: str, holder: str, until: datetime) -> bool:
        held = c.execute(
            update(CallSlotRow).where(_held(SLOTS, campaign_id, holder)).values(expires_at=until)
        )
        return bool(held.rowcount)

    def _join(self, c: Connection, campaign_id: str, holder: str, now: datetime) -> int:
        """Join the line at its end, or keep one's place (a waiter checking in again)."""
        seq = c.execute(select(LINE.seq).where(_held(LINE, campaign_id, holder))).scalar()
        if seq is not None:
            c.execute(
                update(CallLineRow)
                .where(_held(LINE, campaign_id, holder))
                .values(admitted_at=None, held_seconds=None)
            )
            return int(seq)
        last = c.execute(select(func.max(LINE.seq)).where(_mine(LINE, campaign_id))).scalar()
        seq = (last or 0) + 1
        c.execute(  # a racing join may take the same number: harmless, it only orders the line
            self._dialect.insert(CallLineRow.__table__)  # type: ignore[attr-defined]
            .values(campaign_id=campaign_id, holder=holder, seq=seq, due_at=now)
            .on_conflict_do_nothing()
        )
        return seq

    def _place(self, c: Connection, campaign_id: str, seq: int, now: datetime) -> int:
        """How many wait before `seq`, from arrival numbers (one index lookup at any length).
        Waiters long overdue at the head have gone: they leave, so as not to push everyone back."""
        while True:
            head = c.execute(
                select(LINE.holder, LINE.seq, LINE.due_at)
                .where(_waiting(campaign_id))
                .order_by(LINE.seq)
                .limit(20)
            ).all()
            gone = [h for h, s, due in head if s != seq and _aware(due) < now - OVERDUE]
            if not gone:
                return max(0, seq - head[0].seq) if head else 0
            c.execute(delete(CallLineRow).where(_mine(LINE, campaign_id), LINE.holder.in_(gone)))

    def _mean_hold(self, c: Connection, campaign_id: str, now: datetime) -> float | None:
        """How long the campaign's recent calls held their slots, on average (None: none yet)."""
        value = c.execute(
            select(func.avg(LINE.held_seconds)).where(
                _mine(LINE, campaign_id),
                LINE.admitted_at >= now - PACE_OVER,
                LINE.held_seconds.is_not(None),
            )
        ).scalar()
        return float(value) if value is not None else None

    def _tickets_in(self, c: Connection, campaign_id: str, window: int) -> int:
        return int(
            c.execute(
                select(func.count())
                .select_from(DialTicketRow)
                .where(_mine(TICKETS, campaign_id), TICKETS.window == window)
            ).scalar_one()
        )

    def _take_slot(
        self, c: Connection, campaign_id: str, holder: str, max_calls: int | None, until: datetime
    ) -> int | None:
        if not max_calls:
            return None
        taken = set(c.execute(select(SLOTS.slot).where(_mine(SLOTS, campaign_id))).scalars())
        for slot in (s for s in range(max_calls) if s not in taken):
            won = c.execute(
                self._dialect.insert(CallSlotRow.__table__)  # type: ignore[attr-defined]
                .values(campaign_id=campaign_id, slot=slot, holder=holder, expires_at=until)
                .on_conflict_do_nothing()
                .returning(SLOTS.slot)
            ).first()
            if won is not None:
                return slot
        return None

    def _take_ticket(self, c: Connection, campaign_id: str, holder: str, window: int) -> bool:
        c.execute(  # forget windows long past
            delete(DialTicketRow).where(_mine(TICKETS, campaign_id), TICKETS.window < window - 10)
        )
        won = c.execute(
            self._dialect.insert(DialTicketRow.__table__)  # type: ignore[attr-defined]
            .values(
                campaign_id=campaign_id,
                window=window,
                ticket=self._tickets_in(c, campaign_id, window),
                holder=holder,
            )
            .on_conflict_do_nothing()
            .returning(TICKETS.ticket)
        ).first()
        return won is not None

    def _wait(
        self,
        c: Connection,
        campaign_id: str,
        holder: str,
        now: datetime,
        *,
        ahead: int,
        after: float,
    ) -> Admission:
        after = min(LATEST, max(SOONEST, after))
        c.execute(
            update(CallLineRow)
            .where(_held(LINE, campaign_id, holder))
            .values(due_at=now + timedelta(seconds=after))
        )
        return Admission(admitted=False, ahead=ahead, retry_after=after)


def _mine(columns: Any, campaign_id: str) -> Any:
    return columns.campaign_id == campaign_id


def _held(columns: Any, campaign_id: str, holder: str) -> Any:
    return and_(columns.campaign_id == campaign_id, columns.holder == holder)


def _waiting(campaign_id: str) -> Any:
    return and_(LINE.campaign_id == campaign_id, LINE.admitted_at.is_(None))


def _count(c: Connection, columns: Any, campaign_id: str) -> int:
    return int(c.execute(select(func.count()).where(_mine(columns, campaign_id))).scalar_one())


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
