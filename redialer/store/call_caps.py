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

from redialer.line_caps import AccountCaps, rate_slots
from redialer.store.tables import CallLineRow, CallSlotRow, DialTicketRow, utcnow

SLOTS = CallSlotRow.__table__.c  # type: ignore[attr-defined]
TICKETS = DialTicketRow.__table__.c  # type: ignore[attr-defined]
LINE = CallLineRow.__table__.c  # type: ignore[attr-defined]

#: Nearest and furthest "come back in" (seconds).
SOONEST, LATEST = 0.25, 3600.0
#: Come back a little before the estimate says it is your turn: the estimate is rough.
EARLY = 0.8
#: How long a call holds its slot before any of the campaign's calls has ended, at least: short
#: rather than long, so a wrong guess costs a waiter an early check, not an idle slot (the age
#: of the oldest call up raises it: calls last at least that long).
FIRST_GUESS = 2.5
#: How far back call lengths are averaged; rows let through before that are forgotten.
PACE_OVER = timedelta(minutes=5)
#: A waiter this long past the time it was told to come back has gone (its workflow ended, its
#: campaign paused): found at the head of the line, it leaves it.
OVERDUE = timedelta(seconds=30)
#: A campaign under its share of the account's lines keeps a free line waiting for it only if
#: one of its calls will ask within this long.
ASKS_SOON = timedelta(seconds=2)
#: A calls-per-second slot is held from admission until the call is requested (then for the
#: rate's window from that moment); a dial that never gets that far frees it after this long.
RATE_RESERVATION = timedelta(seconds=30)
#: Dial-rate windows are numbered from here (see DialTicketRow.window).
WINDOWS_FROM = datetime(2026, 1, 1, tzinfo=UTC)


def dial_rate_windows(rate: float) -> tuple[int, float]:
    """(tickets, seconds) per window for `max_calls_per_second`: the average rate is exact, and
    short windows keep bursts small: any one second sees at most `rate + tickets` dials, where
    one-second windows of `rate` tickets would let two windows' worth through back to back."""
    tickets = max(1, int(rate // 10))
    return tickets, tickets / rate


#: The account's lines (REDIALER_MAX_CONCURRENT_CALLS) and its dial-rate slots
#: (REDIALER_MAX_CALLS_PER_SECOND) are kept as scopes no campaign id can be (ids start with a
#: letter or digit); single calls share the account under the group SINGLE_CALLS.
ACCOUNT = "~account"
RATE = "~account-rate"
SINGLE_CALLS = "~calls"


@dataclass(frozen=True)
class LineUsage:
    """Lines in use and calls waiting for one (`redialer progress`, `watch`, the API)."""

    in_use: int
    waiting: int
    by_campaign: dict[str, int]


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
        campaign_id: str | None,
        holder: str,
        *,
        max_calls: int | None,
        rate: float | None,
        lease: timedelta,
        now: datetime | None = None,
        account: AccountCaps | None = None,
        priority: float = 1.0,
    ) -> Admission:
        """Let `holder` (a call's idempotency key) through its campaign's caps and the
        account's, or keep its place in line. `now` is the clock's reading unless given (tests
        pin it to stay inside one rate window)."""
        now = now or utcnow()
        account = account if account else None
        campaign = campaign_id if campaign_id is not None and (max_calls or rate) else None
        with self._engine.begin() as c:
            renewed = (
                campaign is not None
                and bool(max_calls)
                and self._renewed(c, campaign, holder, now + lease)
            )
            if account is not None and account.max_calls:
                renewed = self._renewed(c, ACCOUNT, holder, now + lease) or renewed
            if renewed:  # a retried attempt: its lines are still held
                if (
                    account is not None
                    and account.rate
                    and not self._rate_slot_reserved(c, holder, account.rate, now)
                ):
                    return Admission(admitted=False, holds_slot=True, retry_after=SOONEST)
                return Admission(admitted=True, holds_slot=True)
            waits: list[tuple[str, int, float]] = []  # (scope, ahead, come back after)
            window = None
            if campaign is not None:
                window, wait = self._campaign_turn(c, campaign, holder, max_calls, rate, now)
                if wait is not None:
                    waits.append((campaign, *wait))
            if account is not None:
                wait = self._account_turn(
                    c, account, campaign_id or SINGLE_CALLS, priority, holder, now
                )
                if wait is not None:
                    waits.append((ACCOUNT, *wait))
            if waits:
                return self._wait_in(c, holder, now, waits)
            taken: list[str] = []  # the slot scopes taken, to give back if a later one is lost
            if campaign is not None:
                if (
                    max_calls
                    and self._take_slot(c, campaign, holder, max_calls, now + lease) is None
                ):
                    return self._wait_in(c, holder, now, [(campaign, 0, SOONEST)])
                if max_calls:
                    taken.append(campaign)
                if window is not None and not self._take_ticket(c, campaign, holder, window):
                    self._give_back(c, taken, holder)
                    return self._wait_in(c, holder, now, [(campaign, 0, SOONEST)])
            if account is not None:
                group = campaign_id or SINGLE_CALLS
                if account.max_calls:
                    if (
                        self._take_slot(
                            c, ACCOUNT, holder, account.max_calls, now + lease, group, priority
                        )
                        is None
                    ):
                        self._give_back(c, taken, holder)
                        return self._wait_in(c, holder, now, [(ACCOUNT, 0, SOONEST)])
                    taken.append(ACCOUNT)
                if account.rate and not self._take_rate_slot(c, holder, account.rate, now):
                    self._give_back(c, taken, holder)
                    return self._wait_in(c, holder, now, [(ACCOUNT, 0, SOONEST)])
            for scope in [s for s in (campaign, account and ACCOUNT) if s]:
                c.execute(
                    update(CallLineRow).where(_held(LINE, scope, holder)).values(admitted_at=now)
                )
            return Admission(admitted=True, holds_slot=bool(taken))

    def _campaign_turn(
        self,
        c: Connection,
        campaign_id: str,
        holder: str,
        max_calls: int | None,
        rate: float | None,
        now: datetime,
    ) -> tuple[int | None, tuple[int, float] | None]:
        """The campaign's own caps: (its rate window, None if a slot and ticket are free now,
        else (calls ahead, come back after))."""
        c.execute(delete(CallSlotRow).where(_mine(SLOTS, campaign_id), SLOTS.expires_at < now))
        c.execute(
            delete(CallLineRow).where(_mine(LINE, campaign_id), LINE.admitted_at < now - PACE_OVER)
        )
        seq = self._join(c, campaign_id, holder, now)
        free = max_calls - _count(c, SLOTS, campaign_id) if max_calls else math.inf
        window, left = None, math.inf
        if rate:
            per_window, seconds = dial_rate_windows(rate)
            window = int((now - WINDOWS_FROM).total_seconds() // seconds)
            left = per_window - self._tickets_in(c, campaign_id, window)
        if free > 0 and left > 0:
            return window, None
        place = self._place(c, campaign_id, seq, now)
        after = SOONEST
        if max_calls and free <= 0:  # until `place + 1` calls have ended
            hold = self._mean_hold(c, campaign_id, now) or self._assumed_hold(c, campaign_id, now)
            after = EARLY * (place + 1) * hold / max_calls
        if window is not None and left <= 0:  # whole windows, one per `per_window` ahead
            per_window, seconds = dial_rate_windows(rate or 1)
            turn = window + 1 + place // per_window
            after = max(after, (WINDOWS_FROM - now).total_seconds() + turn * seconds)
        return window, (place, after)

    def _account_turn(
        self,
        c: Connection,
        account: AccountCaps,
        group: str,
        priority: float,
        holder: str,
        now: datetime,
    ) -> tuple[int, float] | None:
        """The account's lines, shared by weight: None if this call may take one now, else
        (calls of its own campaign ahead of it, come back after).

        Each campaign with calls up or waiting is owed `cap x priority / sum of priorities`
        lines. A campaign under its share takes a free line; one at or over it takes a free
        line only while no campaign under its share is waiting: a large backlog never starves
        a small campaign, and no line idles while anyone may use it. Under the calls-per-second
        cap alone, a refused call comes back when its campaign's share of the rate reaches it."""
        c.execute(delete(CallSlotRow).where(_mine(SLOTS, ACCOUNT), SLOTS.expires_at < now))
        c.execute(
            delete(CallLineRow).where(_mine(LINE, ACCOUNT), LINE.admitted_at < now - PACE_OVER)
        )
        c.execute(  # waiters long past their time have gone (a stopped campaign's, say)
            delete(CallLineRow).where(_waiting(ACCOUNT), LINE.due_at < now - OVERDUE)
        )
        seq = self._join(c, ACCOUNT, holder, now, group=group, priority=priority)
        in_use = {
            g: (n, p)
            for g, n, p in c.execute(
                select(SLOTS.group_id, func.count(), func.max(SLOTS.priority))
                .where(_mine(SLOTS, ACCOUNT))
                .group_by(SLOTS.group_id)
            ).all()
        }
        waiting = {
            g: (p, soonest)
            for g, p, soonest in c.execute(
                select(LINE.group_id, func.max(LINE.priority), func.min(LINE.due_at))
                .where(_waiting(ACCOUNT))
                .group_by(LINE.group_id)
            ).all()
        }
        weights = {g: float(p or 1.0) for g, (_, p) in in_use.items()}
        weights.update({g: float(p or 1.0) for g, (p, _) in waiting.items()})
        weights[group] = priority
        total = sum(weights.values())
        rate_ok = not account.rate or self._rate_slot_free(c, account.rate, now)
        if not account.max_calls:  # the calls-per-second cap alone
            if rate_ok:
                return None
            ahead = self._ahead_in_group(c, group, seq, now)
            starts_per_second = account.rate * weights[group] / total  # type: ignore[operator]
            return ahead, EARLY * (ahead + 1) / starts_per_second

        def share(g: str) -> float:
            return account.max_calls * weights[g] / total  # type: ignore[operator]

        def using(g: str) -> int:
            return int(in_use.get(g, (0, None))[0])

        free = account.max_calls - sum(n for n, _ in in_use.values())
        under = using(group) < share(group)
        # A line is kept for a campaign under its share only if it will ask within ASKS_SOON:
        # one whose waiters come back in minutes must not leave lines idle meanwhile.
        others_owed = any(
            g != group and using(g) < share(g) and _aware(soonest) <= now + ASKS_SOON
            for g, (_, soonest) in waiting.items()
        )
        if free > 0 and rate_ok and (under or not others_owed):
            return None
        ahead = self._ahead_in_group(c, group, seq, now)
        if under and free > 0:
            return ahead, SOONEST  # the rate's next second, or a line about to be ours
        hold = self._mean_hold(c, ACCOUNT, now) or self._assumed_hold(c, ACCOUNT, now)
        lines = max(1.0, share(group))
        return ahead, EARLY * (ahead + 1) * hold / lines

    def _ahead_in_group(self, c: Connection, group: str, seq: int, now: datetime) -> int:
        """The calls of the same campaign (group) before `seq` in the account's line."""
        return int(
            c.execute(
                select(func.count()).where(
                    _waiting(ACCOUNT),
                    LINE.group_id == group,
                    LINE.seq < seq,
                    LINE.due_at >= now - OVERDUE,
                )
            ).scalar_one()
        )

    def _rate_slot_free(self, c: Connection, rate: float, now: datetime) -> bool:
        c.execute(delete(CallSlotRow).where(_mine(SLOTS, RATE), SLOTS.expires_at <= now))
        return _count(c, SLOTS, RATE) < rate_slots(rate)[0]

    def _take_rate_slot(self, c: Connection, holder: str, rate: float, now: datetime) -> bool:
        """One of `k` starts allowed in any `w` seconds (`rate_slots`), reserved until the call
        is requested (`call_starting` then leases it for `w` from that moment)."""
        k, _ = rate_slots(rate)
        return self._take_slot(c, RATE, holder, k, now + RATE_RESERVATION) is not None

    def _rate_slot_reserved(self, c: Connection, holder: str, rate: float, now: datetime) -> bool:
        """A retried attempt keeps its rate slot if it has one, or takes one."""
        held = c.execute(
            select(func.count()).where(_held(SLOTS, RATE, holder), SLOTS.expires_at > now)
        ).scalar_one()
        return bool(held) or self._take_rate_slot(c, holder, rate, now)

    def call_starting(self, holder: str, rate: float, at: datetime | None = None) -> bool:
        """The call is requested now (or was, `at`): its calls-per-second slot counts `w`
        seconds from this moment, not from its admission, so however long the dial took to get
        here (its other writes, a busy worker), no two requests reach the provider closer than
        the rate allows. False if the reservation lapsed: the dial must ask for a slot again."""
        now = utcnow()
        _, w = rate_slots(rate)
        with self._engine.begin() as c:
            started = c.execute(
                update(CallSlotRow)
                .where(_held(SLOTS, RATE, holder), SLOTS.expires_at > now)
                .values(expires_at=(at or now) + timedelta(seconds=w))
            )
            return bool(started.rowcount)

    def _give_back(self, c: Connection, scopes: list[str], holder: str) -> None:
        for scope in scopes:
            c.execute(delete(CallSlotRow).where(_held(SLOTS, scope, holder)))

    def _wait_in(
        self, c: Connection, holder: str, now: datetime, waits: list[tuple[str, int, float]]
    ) -> Admission:
        """Wait in every line that said so, for the longest of their times."""
        after = min(LATEST, max(SOONEST, max(a for _, _, a in waits)))
        for scope, _, _ in waits:
            c.execute(
                update(CallLineRow)
                .where(_held(LINE, scope, holder))
                .values(due_at=now + timedelta(seconds=after))
            )
        return Admission(admitted=False, ahead=max(n for _, n, _ in waits), retry_after=after)

    def line_may_be_free(
        self, campaign_id: str | None, *, max_calls: int | None, account: AccountCaps | None
    ) -> bool:
        """Whether a slot looks free in every cap that has slots (read only: what a dial
        waiting at the front checks before it asks again, so waiting costs no writes)."""
        now = utcnow()
        with self._engine.connect() as c:
            for scope, cap in ((campaign_id, max_calls), (ACCOUNT, account and account.max_calls)):
                if scope is None or not cap:
                    continue
                taken = c.execute(
                    select(func.count()).where(_mine(SLOTS, scope), SLOTS.expires_at >= now)
                ).scalar_one()
                if int(taken) >= cap:
                    return False
        return True

    def usage(self, scope: str, now: datetime | None = None) -> LineUsage:
        """Lines in use and calls waiting for one, in a campaign or (ACCOUNT) the account."""
        now = now or utcnow()
        with self._engine.connect() as c:
            in_use = int(
                c.execute(
                    select(func.count()).where(_mine(SLOTS, scope), SLOTS.expires_at >= now)
                ).scalar_one()
            )
            waiting = int(
                c.execute(
                    select(func.count()).where(_waiting(scope), LINE.due_at >= now - OVERDUE)
                ).scalar_one()
            )
            by_group = {
                str(g): int(n)
                for g, n in c.execute(
                    select(SLOTS.group_id, func.count())
                    .where(_mine(SLOTS, scope), SLOTS.expires_at >= now)
                    .group_by(SLOTS.group_id)
                ).all()
                if g is not None
            }
        return LineUsage(in_use=in_use, waiting=waiting, by_campaign=by_group)

    def renew(self, campaign_id: str | None, holder: str, lease: timedelta) -> None:
        """Keep the call's slots (its campaign's and the account's) while it is up."""
        with self._engine.begin() as c:
            for scope in _scopes(campaign_id):
                self._renewed(c, scope, holder, utcnow() + lease)

    def release(self, campaign_id: str | None, holder: str) -> None:
        """Free the call's slots, and note how long it held them: the lines' pace."""
        now = utcnow()
        with self._engine.begin() as c:
            for scope in _scopes(campaign_id):
                c.execute(delete(CallSlotRow).where(_held(SLOTS, scope, holder)))
                admitted = c.execute(
                    select(LINE.admitted_at).where(_held(LINE, scope, holder))
                ).scalar()
                if admitted is not None:
                    c.execute(
                        update(CallLineRow)
                        .where(_held(LINE, scope, holder))
                        .values(held_seconds=(now - _aware(admitted)).total_seconds())
                    )

    # ---- pieces of one admission, all inside its transaction ------------------------------------

    def _renewed(self, c: Connection, campaign_id: str, holder: str, until: datetime) -> bool:
        held = c.execute(
            update(CallSlotRow).where(_held(SLOTS, campaign_id, holder)).values(expires_at=until)
        )
        return bool(held.rowcount)

    def _join(
        self,
        c: Connection,
        campaign_id: str,
        holder: str,
        now: datetime,
        *,
        group: str | None = None,
        priority: float | None = None,
    ) -> int:
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
            .values(
                campaign_id=campaign_id,
                holder=holder,
                seq=seq,
                due_at=now,
                group_id=group,
                priority=priority,
            )
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

    def _assumed_hold(self, c: Connection, campaign_id: str, now: datetime) -> float:
        """Before any call has ended: the oldest call up has held its line this long at least."""
        oldest = c.execute(
            select(func.min(LINE.admitted_at)).where(
                _mine(LINE, campaign_id), LINE.held_seconds.is_(None)
            )
        ).scalar()
        age = (now - _aware(oldest)).total_seconds() if oldest is not None else 0.0
        return max(FIRST_GUESS, age)

    def _tickets_in(self, c: Connection, campaign_id: str, window: int) -> int:
        return int(
            c.execute(
                select(func.count())
                .select_from(DialTicketRow)
                .where(_mine(TICKETS, campaign_id), TICKETS.window == window)
            ).scalar_one()
        )

    def _take_slot(
        self,
        c: Connection,
        campaign_id: str,
        holder: str,
        max_calls: int | None,
        until: datetime,
        group: str | None = None,
        priority: float | None = None,
    ) -> int | None:
        if not max_calls:
            return None
        taken = set(c.execute(select(SLOTS.slot).where(_mine(SLOTS, campaign_id))).scalars())
        for slot in (s for s in range(max_calls) if s not in taken):
            won = c.execute(
                self._dialect.insert(CallSlotRow.__table__)  # type: ignore[attr-defined]
                .values(
                    campaign_id=campaign_id,
                    slot=slot,
                    holder=holder,
                    expires_at=until,
                    group_id=group,
                    priority=priority,
                )
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


def _mine(columns: Any, campaign_id: str) -> Any:
    return columns.campaign_id == campaign_id


def _held(columns: Any, campaign_id: str, holder: str) -> Any:
    return and_(columns.campaign_id == campaign_id, columns.holder == holder)


def _waiting(campaign_id: str) -> Any:
    return and_(LINE.campaign_id == campaign_id, LINE.admitted_at.is_(None))


def _count(c: Connection, columns: Any, campaign_id: str) -> int:
    return int(c.execute(select(func.count()).where(_mine(columns, campaign_id))).scalar_one())


def _scopes(campaign_id: str | None) -> list[str]:
    return [campaign_id, ACCOUNT] if campaign_id is not None else [ACCOUNT]


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
