"""The call caps' line in the store, on SQLite and PostgreSQL: the cap, who goes, when to come
back, and few check-ins however long the line."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest
from sqlalchemy import delete, update
from temporalio.activity import ActivityCancellationDetails
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities import line_waiting
from activities.dialing import DialActivities
from redialer.campaign import CampaignPolicy
from redialer.dialers.simulated import DialLedger, SimulatedDialer
from redialer.outcomes import Outcome
from redialer.payloads import DialInput
from redialer.store.call_caps import FIRST_GUESS, Admission, dial_rate_windows
from redialer.store.store import Store
from redialer.store.tables import CallLineRow, utcnow
from tests import store_fixtures
from tests.dialers import HeldDialer

db = store_fixtures.db
database_url = store_fixtures.database_url

LEASE = timedelta(seconds=60)


def admit(
    db: Store,
    holder: str,
    *,
    calls: int | None = 2,
    rate: float | None = None,
    now: datetime | None = None,
) -> Admission:
    return db.caps.admit("c1", holder, max_calls=calls, rate=rate, lease=LEASE, now=now)


def backdate(db: Store, holders: list[str], **values: object) -> None:
    with db.engine.begin() as connection:
        connection.execute(
            update(CallLineRow)
            .where(CallLineRow.holder.in_(holders))  # type: ignore[attr-defined]
            .values(**values)
        )


def test_no_more_calls_than_the_cap_and_a_freed_slot_goes_to_the_next(db: Store):
    """Two slots: a third call waits, and goes once one of the first two ends."""
    first, second, third = admit(db, "k1"), admit(db, "k2"), admit(db, "k3")
    assert (first.admitted, first.holds_slot) == (True, True)
    assert second.admitted and not third.admitted
    assert 0 < third.retry_after < 10
    db.caps.release("c1", "k1")
    assert admit(db, "k3").admitted


def test_a_retried_attempt_keeps_its_slot_instead_of_taking_another(db: Store):
    """The same call asking again (its activity retried) holds one slot, not two."""
    assert admit(db, "k1").admitted
    assert admit(db, "k1").holds_slot
    assert admit(db, "k2").admitted  # the second slot was still free
    assert not admit(db, "k3").admitted


def test_a_free_slot_goes_to_whoever_asks_and_the_front_is_told_to_come_back_first(db: Store):
    """An idle slot is never held for a waiter who is late; the order comes from when each is
    told to come back: the front sooner than those behind it."""
    admit(db, "k1"), admit(db, "k2")
    third, fourth = admit(db, "k3"), admit(db, "k4")
    assert not third.admitted and not fourth.admitted
    assert (third.ahead, fourth.ahead) == (0, 1)
    assert third.retry_after < fourth.retry_after
    db.caps.release("c1", "k1")
    assert admit(db, "k4").admitted  # k3 is not back yet: the slot does not sit idle


def test_a_waiter_that_never_came_back_leaves_the_line(db: Store):
    """A waiter long past its time (its workflow ended, its campaign paused) stops counting as
    ahead of the others, so they are not told to wait longer for it."""
    admit(db, "k1"), admit(db, "k2")
    admit(db, "k3"), admit(db, "k4")
    assert admit(db, "k5").ahead == 2
    backdate(db, ["k3", "k4"], due_at=utcnow() - timedelta(minutes=5))
    assert admit(db, "k5").ahead == 0


def test_the_line_moves_at_the_pace_calls_free_their_slots(db: Store):
    """When to come back follows how long this campaign's calls hold a slot: waiting behind
    half-second calls is shorter than behind the first guess (2.5 s)."""
    admit(db, "k1"), admit(db, "k2")
    assumed = admit(db, "k3").retry_after
    backdate(db, ["k1", "k2"], admitted_at=utcnow() - timedelta(seconds=0.5))
    db.caps.release("c1", "k1")
    db.caps.release("c1", "k2")
    admit(db, "k4"), admit(db, "k5")  # the two free slots go
    measured = admit(db, "k3").retry_after
    assert measured < assumed / 2, (measured, assumed)


def test_before_any_call_ended_the_oldest_call_up_sets_the_pace(db: Store):
    """No call has ended yet, but the two up have rung for a minute: calls last at least that
    long, so a waiter is not sent back every few seconds to find the line still full."""
    admit(db, "k1"), admit(db, "k2")
    fresh = admit(db, "k3").retry_after
    backdate(db, ["k1", "k2"], admitted_at=utcnow() - timedelta(seconds=60))
    aged = admit(db, "k3").retry_after
    assert aged > 10 * fresh, (aged, fresh)


def test_the_dial_rate_allows_a_windows_worth_then_says_when(db: Store):
    """At 2 calls/s (one per half second) a second call in the same window waits for the next."""
    assert dial_rate_windows(2) == (1, 0.5)
    now = utcnow()  # both ask at one moment, so a busy machine cannot put them in two windows
    assert admit(db, "k1", calls=None, rate=2, now=now).admitted
    waiting = admit(db, "k2", calls=None, rate=2, now=now)
    assert not waiting.admitted
    assert 0 < waiting.retry_after <= 0.5 + 1e-6
    assert admit(db, "k2", calls=None, rate=2, now=now + timedelta(seconds=0.5)).admitted


@pytest.mark.parametrize(
    ("rate", "tickets", "seconds"),
    [(0.5, 1, 2.0), (4, 1, 0.25), (15, 1, 1 / 15), (50, 5, 0.1), (1000, 100, 0.1)],
)
def test_rate_windows_keep_the_average_and_bursts_small(rate, tickets, seconds):
    """Tickets per window over the window's length is the rate; windows stay short."""
    assert dial_rate_windows(rate) == (tickets, pytest.approx(seconds))
    assert tickets / seconds == pytest.approx(rate)


def test_a_long_line_checks_in_rarely(db: Store):
    """1,000 calls waiting on 5 slots: the front comes back within seconds, the back in minutes,
    and the line checks in about ten times per call let through; retrying every 1.75 s, as
    before the line, would be 570 checks a second, over a thousand per call."""
    admissions = [admit(db, f"k{i:04}", calls=5) for i in range(1005)]
    assert sum(a.admitted for a in admissions) == 5
    waits = [a.retry_after for a in admissions if not a.admitted]
    assert waits[0] < 2 and waits[-1] > 300
    assert waits == sorted(waits)  # further back, later
    calls_per_second = 5 / FIRST_GUESS  # five slots, each freed every FIRST_GUESS seconds
    checks_per_second = sum(1 / w for w in waits)
    assert checks_per_second / calls_per_second < 12, checks_per_second


async def test_a_call_cut_off_on_our_side_keeps_its_slot(db: Store):
    """A dial attempt cancelled mid-call may leave the call up at the provider: its slot stays
    held, so no other call begins, and the retried attempt takes it over and frees it."""
    script = {"+16505550199": [Outcome.COMPLETED]}
    dialer = HeldDialer(SimulatedDialer(ledger=DialLedger(db), script=script, instant=True))
    dialing = DialActivities(store=db, dialer=dialer)
    call = DialInput(
        campaign_id="c1",
        retry_group_id="campaign/c1/recipient/+16505550199",
        phone="+16505550199",
        zone="America/Los_Angeles",
        policy=CampaignPolicy(max_concurrent_calls=1).model_dump(mode="json"),
        attempt=1,
    )
    first = ActivityEnvironment()
    attempt = asyncio.create_task(first.run(dialing.dial, call))
    await asyncio.wait_for(dialer.up.wait(), timeout=10)
    first.cancel(ActivityCancellationDetails(timed_out=True))
    with pytest.raises(asyncio.CancelledError):
        await attempt
    assert not admit(db, "another call", calls=1).admitted  # the slot is still this call's
    dialer.hang_up.set()
    result = await ActivityEnvironment().run(dialing.dial, call)  # the retried attempt
    assert result.attempt is not None and result.attempt.outcome is Outcome.COMPLETED
    assert admit(db, "another call", calls=1).admitted  # freed once the call ended


async def test_the_front_of_the_line_takes_a_freed_line_inside_the_worker(db: Store):
    """With a waiting place in the worker, the next dial does not go back to Temporal's
    back-off: it waits at the front and takes the line the moment the call before it ends.
    Without one (line_waiters=0) the same dial is sent back to retry later."""
    phones = ["+16505550101", "+16505550102"]
    policy = CampaignPolicy(max_concurrent_calls=1).model_dump(mode="json")

    def call(phone: str) -> DialInput:
        return DialInput(
            campaign_id="c1",
            retry_group_id=f"campaign/c1/recipient/{phone}",
            phone=phone,
            zone="America/Los_Angeles",
            policy=policy,
            attempt=1,
        )

    script = {p: [Outcome.COMPLETED] for p in phones}
    for waiters in (0, 4):
        with db.engine.begin() as connection:  # a fresh line for each round
            connection.execute(delete(CallLineRow))
        dialer = HeldDialer(SimulatedDialer(ledger=DialLedger(db), script=script, instant=True))
        dialing = DialActivities(store=db, dialer=dialer, line_waiters=waiters)
        first = asyncio.create_task(
            ActivityEnvironment().run(
                dialing.dial, call(phones[0]).model_copy(update={"attempt": 1 + waiters})
            )
        )
        await asyncio.wait_for(dialer.up.wait(), timeout=10)
        second = asyncio.create_task(
            ActivityEnvironment().run(
                dialing.dial, call(phones[1]).model_copy(update={"attempt": 1 + waiters})
            )
        )
        if waiters == 0:
            with pytest.raises(ApplicationError, match="waiting for a line"):
                await second
            dialer.hang_up.set()
            await first
            continue
        await asyncio.sleep(0.5)
        assert not second.done()  # waiting at the front, in the worker
        dialer.hang_up.set()
        await first
        result = await asyncio.wait_for(second, timeout=30)  # took the freed line
        assert result.attempt is not None and result.attempt.outcome is Outcome.COMPLETED


async def test_a_number_opted_out_while_waiting_at_the_front_is_not_called(db: Store):
    """The store is read again once the line is taken: a number opted out (or a campaign
    stopped) while its dial waited in the worker gives the line back and is never dialed."""
    phones = ["+16505550111", "+16505550112"]
    policy = CampaignPolicy(max_concurrent_calls=1).model_dump(mode="json")
    calls = [
        DialInput(
            campaign_id="c2",
            retry_group_id=f"campaign/c2/recipient/{p}",
            phone=p,
            zone="America/Los_Angeles",
            policy=policy,
            attempt=1,
        )
        for p in phones
    ]
    ledger = DialLedger(db)
    script = {p: [Outcome.COMPLETED] for p in phones}
    dialer = HeldDialer(SimulatedDialer(ledger=ledger, script=script, instant=True))
    dialing = DialActivities(store=db, dialer=dialer, line_waiters=4)
    first = asyncio.create_task(ActivityEnvironment().run(dialing.dial, calls[0]))
    await asyncio.wait_for(dialer.up.wait(), timeout=10)
    second = asyncio.create_task(ActivityEnvironment().run(dialing.dial, calls[1]))
    await asyncio.sleep(0.5)
    assert not second.done()  # waiting at the front
    db.suppress(phones[1], "opted_out", "c2")
    dialer.hang_up.set()
    await first
    with pytest.raises(ApplicationError, match="changed while waiting"):
        await asyncio.wait_for(second, timeout=30)
    assert ledger.dials_for(phones[1]) == []
    retried = await ActivityEnvironment().run(dialing.dial, calls[1])
    assert retried.skipped is not None and retried.skipped.value == "opted_out"
    assert ledger.dials_for(phones[1]) == []
    assert db.caps.usage("c2").in_use == 0  # the line was given back


async def test_waiters_on_one_worker_take_turns_looking_at_the_line(monkeypatch):
    """32 dials waiting at the front of a full line for a second: the worker looks at the store
    about once per poll for all of them (at most ~12 looks, not 32 x 5 = 160), and asks for a
    line (a write) never while it looks full; a line freed here is met by one request."""
    monkeypatch.setattr(line_waiting, "HOLD", 1.0)
    waiting = line_waiting.LineWaiting(32)
    free_lines, looks, asks = 0, 0, 0

    async def may_be_free() -> bool:
        nonlocal looks
        looks += 1
        await asyncio.sleep(0.001)  # a store read takes a moment; others may come meanwhile
        return free_lines > 0

    async def ask() -> Admission:
        nonlocal asks, free_lines
        asks += 1
        await asyncio.sleep(0.001)
        if free_lines > 0:
            free_lines -= 1
            return Admission(admitted=True, holds_slot=True)
        return Admission(admitted=False, ahead=0, retry_after=0.2)

    refused = Admission(admitted=False, ahead=0, retry_after=0.2)

    async def waiters() -> list[Admission]:
        nonlocal free_lines
        everyone = [
            asyncio.create_task(waiting.wait_for_turn(ask, refused, may_be_free)) for _ in range(32)
        ]
        await asyncio.sleep(0.5)
        assert asks == 0 and looks <= 1 + 0.5 / line_waiting.POLL * 2, looks
        free_lines = 1
        waiting.line_freed()
        return await asyncio.gather(*everyone)

    results = await ActivityEnvironment().run(waiters)
    assert sum(r.admitted for r in results) == 1
    assert asks == 1, asks  # the freed line: one write, not a rush of 32
    assert looks <= 1 + 1.0 / line_waiting.POLL * 2 + 2, looks
