"""The cross-campaign frequency cap (REDIALER_MAX_CALLS_PER_NUMBER), on SQLite and PostgreSQL:
the claim's window maths, its atomicity under racing workers, and the dial activity that defers
a call the window refuses (never drops it) and keeps every deferral as evidence.

The oracle for the window is written out by hand: with N calls at t1 < ... < tN inside the window,
the next may go at t1 + window, and not a moment before.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from temporalio.testing import ActivityEnvironment

from activities.dialing import DialActivities
from redialer.allowed_time import Deferral, DeferralReason
from redialer.campaign import CampaignPolicy
from redialer.dialers.simulated import DialLedger, SimulatedDialer
from redialer.frequency_caps import FrequencyCap, parse_frequency_cap
from redialer.outcomes import Outcome
from redialer.payloads import DialInput, DialSkip
from redialer.pseudonyms import Pseudonyms
from redialer.store.store import Store
from tests import store_fixtures
from tests.dialers import DiesAfterPlacing

db = store_fixtures.db
database_url = store_fixtures.database_url

T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)  # a Monday, 10:00 in New York
PHONE = "+12125550142"
THREE_AN_HOUR = FrequencyCap(calls=3, window=timedelta(hours=1))


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


# ---- the claim ----------------------------------------------------------------------------------


def test_n_calls_pass_and_the_next_waits_for_the_oldest_to_leave_the_window(db: Store):
    """3 an hour: calls at :00, :10, :20 go; one at :30 is told 11:00 (the oldest + 1 h); at
    11:00 it goes, and the window rolls: the next waits for :10 + 1 h."""
    calls = db.number_calls
    assert [calls.claim(PHONE, f"k{m}", THREE_AN_HOUR, at(m)).granted for m in (0, 10, 20)] == [
        True,
        True,
        True,
    ]
    refused = calls.claim(PHONE, "k30", THREE_AN_HOUR, at(30))
    assert (refused.granted, refused.until) == (False, at(60))
    assert not calls.claim(PHONE, "k59", THREE_AN_HOUR, at(59.99)).granted  # not a moment early
    assert calls.claim(PHONE, "k60", THREE_AN_HOUR, at(60)).granted
    rolled = calls.claim(PHONE, "k61", THREE_AN_HOUR, at(61))
    assert (rolled.granted, rolled.until) == (False, at(70))
    assert calls.calls_to(PHONE) == [at(10), at(20), at(60)]  # :00 left the window, pruned


def test_a_claim_is_kept_per_dial_and_never_counts_twice(db: Store):
    """The same dial asking again (a retried activity) keeps its place, even with the window
    full, and adds no call; other numbers have windows of their own."""
    cap = FrequencyCap(calls=1, window=timedelta(hours=24))
    calls = db.number_calls
    assert calls.claim(PHONE, "c1:k:1", cap, at(0)).granted
    assert calls.claim(PHONE, "c1:k:1", cap, at(5)).granted
    assert calls.calls_to(PHONE) == [at(0)]
    refused = calls.claim(PHONE, "c2:k:1", cap, at(5))
    assert (refused.granted, refused.until) == (False, at(24 * 60))
    assert calls.claim("+12125550143", "c2:other:1", cap, at(5)).granted


def test_a_claim_counts_from_the_call_request(db: Store):
    """A dial that claimed at :00 and called at :07 (it waited) holds the window until 1:07."""
    cap = FrequencyCap(calls=1, window=timedelta(hours=1))
    calls = db.number_calls
    assert calls.claim(PHONE, "k1", cap, at(0)).granted
    calls.calling("k1", at(7))
    assert calls.claim(PHONE, "k2", cap, at(66)).until == at(67)
    calls.release("k1")  # the provider refused it: no call, the place is free
    assert calls.claim(PHONE, "k2", cap, at(66)).granted


def test_a_forgotten_number_is_keyed_by_its_pseudonym(database_url: str):
    """With a pseudonym key the window is kept under the number's pseudonym, as the suppression
    list keeps a forgotten number: the number itself is not in the key."""
    pseudonyms = Pseudonyms(enabled=False, key=b"k" * 32)
    store = Store.open(database_url, pseudonyms=pseudonyms)
    try:
        cap = FrequencyCap(calls=1, window=timedelta(hours=1))
        assert store.number_calls.claim(PHONE, "k1", cap, at(0)).granted
        with store.engine.connect() as connection:
            (key,) = connection.exec_driver_sql("SELECT number_key FROM number_calls").scalars()
        assert key == pseudonyms.pseudonym(PHONE) and PHONE not in key
        assert not store.number_calls.claim(PHONE, "k2", cap, at(1)).granted
    finally:
        store.close()


def test_workers_racing_for_the_last_places_never_exceed_the_cap(database_url: str):
    """Two stores on one database (two worker processes, as far as the locks go), 12 threads
    each, all claiming places on the same numbers at once: each number gets exactly N."""
    cap = FrequencyCap(calls=2, window=timedelta(hours=1))
    phones = [f"+1212555{n:04d}" for n in range(300, 312)]
    stores = [Store.open(database_url) for _ in range(2)]
    try:
        threads_per_store = 12
        barrier = threading.Barrier(threads_per_store * len(stores))
        granted: list[tuple[str, str]] = []
        errors: list[BaseException] = []
        lock = threading.Lock()

        def claim_all(store: Store, worker: int) -> None:
            barrier.wait()
            try:
                for phone in phones:
                    holder = f"c{worker}:{phone}:1"
                    if store.number_calls.claim(phone, holder, cap, datetime.now(UTC)).granted:
                        with lock:
                            granted.append((phone, holder))
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [
            threading.Thread(target=claim_all, args=(store, i * 100 + t))
            for i, store in enumerate(stores)
            for t in range(threads_per_store)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        for phone in phones:
            assert sum(p == phone for p, _ in granted) == cap.calls, phone
            assert len(stores[0].number_calls.calls_to(phone)) == cap.calls, phone
    finally:
        for store in stores:
            store.close()


def test_old_claims_are_pruned(db: Store):
    """Numbers never called again lose their rows once no window reaches back to them."""
    cap = FrequencyCap(calls=1, window=timedelta(hours=1))
    db.number_calls.claim(PHONE, "k1", cap, at(0))
    db.number_calls.claim("+12125550143", "k2", cap, at(30))
    assert db.number_calls.prune(at(20)) == 1
    assert db.number_calls.calls_to(PHONE) == []
    assert db.number_calls.calls_to("+12125550143") == [at(30)]


# ---- the dial activity --------------------------------------------------------------------------


def dial_input(campaign: str | None, phone: str = PHONE, **policy: object) -> DialInput:
    return DialInput(
        campaign_id=campaign,
        retry_group_id=f"campaign/{campaign}/recipient/{phone}" if campaign else phone,
        phone=phone,
        zone="America/New_York",
        policy=CampaignPolicy.model_validate(policy).model_dump(mode="json"),
        attempt=1,
    )


def env_at(t: datetime) -> ActivityEnvironment:
    """An activity run that Temporal started at `t` (the activity's clock reads from there)."""
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, started_time=t)
    return env


def dialing(db: Store, cap: str, dialer: object | None = None) -> DialActivities:
    script = {PHONE: [Outcome.NO_ANSWER], "+12125550143": [Outcome.COMPLETED]}
    return DialActivities(
        store=db,
        dialer=dialer or SimulatedDialer(ledger=DialLedger(db), script=script, instant=True),  # type: ignore[arg-type]
        max_calls_per_number=parse_frequency_cap(cap),
    )


async def test_a_dial_over_the_cap_is_deferred_to_when_the_window_allows(db: Store):
    """1 call a day to a number: campaign a's call goes; campaign b's, an hour later, is not
    dialed, not failed: it comes back deferred to a's call + 24 h, naming the cap; its line is
    given back and the deferral is kept for the report."""
    activities = dialing(db, "1/24h")
    first = await env_at(T0).run(activities.dial, dial_input("a", max_concurrent_calls=1))
    assert first.attempt is not None and first.attempt.dialed
    called_at = db.number_calls.calls_to(PHONE)[0]
    assert T0 <= called_at < T0 + timedelta(seconds=5)

    later = T0 + timedelta(hours=1)
    second = await env_at(later).run(activities.dial, dial_input("b", max_concurrent_calls=1))
    assert second.skipped is DialSkip.NOT_YET and second.attempt is None
    assert second.next is not None and second.next.attempt == 1
    (capped,) = second.next.deferred
    assert capped.reason is DeferralReason.FREQUENCY_CAP
    assert capped.rule == "at most 1 calls to a number in 1d"
    assert capped.moved_to == called_at + timedelta(hours=24) == second.next.at
    assert later <= capped.moved_from < later + timedelta(seconds=5)
    assert [d.idempotency_key for d in DialLedger(db).dials_for(PHONE)] == [f"a:{PHONE}:1"]
    assert db.caps.usage("b").in_use == 0  # the line went back
    assert db.deferral_counts("b") == [("frequency_cap", capped.rule, 1, 1)]


async def test_the_time_the_cap_gives_still_keeps_the_calling_hours(db: Store):
    """The window frees the number at 19:30 New York time, after the campaign's hours
    (09:00-19:00): the call is deferred to 09:00 the next day, both moves named, in order."""
    activities = dialing(db, "1/4h")
    evening = datetime(2026, 3, 2, 20, 30, tzinfo=UTC)  # 15:30 in New York
    hours: dict[str, Any] = {
        "calling_hours": {"start": "09:00", "end": "19:00"},
        "timezone": "America/New_York",
    }
    await env_at(evening).run(activities.dial, dial_input("a", **hours))
    second = await env_at(evening + timedelta(minutes=10)).run(
        activities.dial, dial_input("b", **hours)
    )
    assert second.next is not None
    assert [d.reason for d in second.next.deferred] == [
        DeferralReason.FREQUENCY_CAP,
        DeferralReason.CALLING_HOURS,
    ]
    assert second.next.at == datetime(2026, 3, 3, 14, 0, tzinfo=UTC)  # 09:00 in New York
    assert {(r, n) for r, _, n, _ in db.deferral_counts("b")} == {
        ("frequency_cap", 1),
        ("calling_hours", 1),
    }


async def test_a_suppressed_number_takes_no_place_and_single_calls_count(db: Store):
    """A number on the do-not-call list ends DND without a call, and without a claim; a single
    call (no campaign) counts against the number like any other."""
    activities = dialing(db, "1/24h")
    db.suppress("+12125550143", "dnd")
    dnd = await env_at(T0).run(activities.dial, dial_input("a", "+12125550143"))
    assert dnd.attempt is not None and not dnd.attempt.dialed
    assert db.number_calls.calls_to("+12125550143") == []
    single = await env_at(T0).run(activities.dial, dial_input(None))
    assert single.attempt is not None and single.attempt.dialed
    refused = await env_at(T0 + timedelta(minutes=1)).run(activities.dial, dial_input("a"))
    assert refused.skipped is DialSkip.NOT_YET


async def test_a_retried_dial_reuses_its_place(db: Store):
    """A dial that placed its call and died before recording it is retried: it adopts its call
    under its own claim, so a cap of one is neither exceeded nor turned against the call."""
    inner = SimulatedDialer(
        ledger=DialLedger(db), script={PHONE: [Outcome.NO_ANSWER]}, instant=True
    )
    activities = dialing(db, "1/24h", DiesAfterPlacing(inner))
    with pytest.raises(ConnectionError):
        await env_at(T0).run(activities.dial, dial_input("a"))
    retried = await env_at(T0 + timedelta(seconds=30)).run(activities.dial, dial_input("a"))
    assert retried.attempt is not None and retried.attempt.outcome is Outcome.NO_ANSWER
    assert len(db.number_calls.calls_to(PHONE)) == 1
    assert DialLedger(db).placements() == {f"a:{PHONE}:1": 1}


async def test_the_attempt_record_says_what_moved_it(db: Store):
    """The deferrals the workflow passes in (its last decision's) go with the attempt's record,
    as `history` shows it."""
    activities = dialing(db, "1/24h")
    moved = Deferral(
        reason=DeferralReason.CALLING_HOURS,
        rule="calling hours 09:00-19:00",
        moved_from=T0 - timedelta(hours=8),
        moved_to=T0,
    )
    call = dial_input("a").model_copy(update={"deferred": [moved]})
    result = await env_at(T0).run(activities.dial, call)
    assert result.attempt is not None and result.attempt.deferred == [moved]


def test_deferral_evidence_is_kept_once_per_attempt_and_rule(db: Store):
    """A retried dial, or a rule moving one attempt twice, is one deferral in the report; the
    counts are per rule: attempts moved and distinct recipients."""
    rule = "at most 1 calls to a number in 1d"
    capped = Deferral(
        reason=DeferralReason.FREQUENCY_CAP, rule=rule, moved_from=T0, moved_to=at(60)
    )
    hours = Deferral(
        reason=DeferralReason.CALLING_HOURS,
        rule="calling hours 09:00-17:00",
        moved_from=T0,
        moved_to=at(90),
    )
    for phone, attempt in [(PHONE, 1), (PHONE, 1), (PHONE, 2), ("+12125550143", 1)]:
        db.note_next_attempt("c", phone, at(60), attempt=attempt, deferred=[capped, capped])
    db.note_next_attempt("c", PHONE, at(90), attempt=3, deferred=[hours])
    db.note_next_attempt("other", PHONE, at(60), attempt=1, deferred=[capped])
    assert sorted(db.deferral_counts("c")) == [
        ("calling_hours", "calling hours 09:00-17:00", 1, 1),
        ("frequency_cap", rule, 3, 2),
    ]


async def test_the_window_counts_a_call_from_its_request(db: Store, monkeypatch):
    """Whatever the dial does between its claim and the provider request (here, its ledger
    write takes a second) the call counts from the request: so does the next call's wait."""
    from redialer.store.dial_intents import DialIntents

    begin = DialIntents.begin

    def slow_begin(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        time.sleep(1.0)
        return begin(self, *args, **kwargs)

    monkeypatch.setattr(DialIntents, "begin", slow_begin)
    activities = dialing(db, "1/1h")
    await env_at(T0).run(activities.dial, dial_input("a"))
    (called_at,) = db.number_calls.calls_to(PHONE)
    assert called_at >= T0 + timedelta(seconds=1)
    refused = await env_at(T0 + timedelta(minutes=1)).run(activities.dial, dial_input("b"))
    assert refused.next is not None and refused.next.at == called_at + timedelta(hours=1)


async def test_a_moment_waited_out_in_the_dial_is_kept_too(db: Store):
    """Half a second before the calling hours open, the dial waits here rather than go back to
    the workflow: that move too goes with the attempt's record and into the evidence."""
    activities = dialing(db, "3/1h")
    hours: dict[str, Any] = {
        "calling_hours": {"start": "09:00", "end": "19:00"},
        "timezone": "America/New_York",
    }
    opening = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)  # 09:00 in New York
    result = await env_at(opening - timedelta(seconds=0.5)).run(
        activities.dial, dial_input("a", **hours)
    )
    assert result.attempt is not None and result.attempt.dialed
    (waited,) = result.attempt.deferred
    assert (waited.reason, waited.moved_to) == (DeferralReason.CALLING_HOURS, opening)
    assert ("calling_hours", waited.rule, 1, 1) in db.deferral_counts("a")
