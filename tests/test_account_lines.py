"""The account's lines in the store, on SQLite and PostgreSQL: one cap across campaigns and single
calls, shared by priority, and a calls-per-second cap that holds in any sliding window."""

from __future__ import annotations

from datetime import datetime, timedelta

from redialer.line_caps import AccountCaps, rate_slots
from redialer.store.call_caps import ACCOUNT, SINGLE_CALLS, Admission
from redialer.store.store import Store
from redialer.store.tables import utcnow
from tests import store_fixtures

db = store_fixtures.db
database_url = store_fixtures.database_url

LEASE = timedelta(seconds=60)


def admit(
    db: Store,
    campaign: str | None,
    holder: str,
    *,
    lines: int | None = 3,
    rate: float | None = None,
    priority: float = 1.0,
    campaign_cap: int | None = None,
    now: datetime | None = None,
) -> Admission:
    return db.caps.admit(
        campaign,
        holder,
        max_calls=campaign_cap,
        rate=None,
        lease=LEASE,
        now=now,
        account=AccountCaps(max_calls=lines, rate=rate),
        priority=priority,
    )


def test_one_cap_across_campaigns_and_single_calls(db: Store):
    """Three lines: a campaign's two calls and a single call take them; nobody else gets one
    until a call ends, whatever campaign it belongs to."""
    assert admit(db, "a", "a1").admitted
    assert admit(db, "b", "b1").admitted
    assert admit(db, None, "call1").admitted
    for campaign, holder in (("a", "a2"), ("b", "b2"), ("c", "c1"), (None, "call2")):
        assert not admit(db, campaign, holder).admitted, holder
    usage = db.caps.usage(ACCOUNT)
    assert (usage.in_use, usage.waiting) == (3, 4)
    assert usage.by_campaign == {"a": 1, "b": 1, SINGLE_CALLS: 1}
    db.caps.release(None, "call1")
    assert admit(db, "c", "c1").admitted  # the campaign with no line yet goes first
    assert not admit(db, "a", "a2").admitted


def test_both_caps_apply_and_a_lost_line_gives_the_campaign_slot_back(db: Store):
    """A campaign under its own cap still waits for the account; the campaign slot it would
    have taken is not held while it waits."""
    assert admit(db, "a", "a1", lines=1, campaign_cap=5).admitted
    refused = admit(db, "a", "a2", lines=1, campaign_cap=5)
    assert not refused.admitted and refused.retry_after > 0
    assert db.caps.usage("a").in_use == 1  # only a1's
    db.caps.release("a", "a1")
    assert admit(db, "a", "a2", lines=1, campaign_cap=5).admitted
    assert (db.caps.usage("a").in_use, db.caps.usage(ACCOUNT).in_use) == (1, 1)


def test_lines_are_shared_by_priority_while_both_campaigns_wait(db: Store):
    """Priorities 1 and 2 on 30 lines: whoever asks when a line frees, the lines settle at
    10 and 20, and a large backlog never starves the smaller campaign."""
    n = 0

    def ask(campaign: str, priority: float) -> bool:
        nonlocal n
        n += 1
        return admit(db, campaign, f"{campaign}{n}", lines=30, priority=priority).admitted

    while ask("big", 1.0):  # the big campaign alone fills every line
        pass
    assert db.caps.usage(ACCOUNT).by_campaign == {"big": 30}
    assert not ask("small", 2.0)  # waiting now: owed 20 lines
    for _ in range(200):  # calls end one at a time, both campaigns ask for every free line
        big_calls = _holders(db, "big")
        db.caps.release("big" if big_calls else "small", (big_calls or _holders(db, "small"))[0])
        ask("big", 1.0)
        ask("small", 2.0)
    assert db.caps.usage(ACCOUNT).by_campaign == {"big": 10, "small": 20}


def _holders(db: Store, group: str) -> list[str]:
    from sqlmodel import Session, select

    from redialer.store.tables import CallSlotRow

    with Session(db.engine) as session:
        return list(
            session.exec(
                select(CallSlotRow.holder).where(
                    CallSlotRow.campaign_id == ACCOUNT, CallSlotRow.group_id == group
                )
            ).all()
        )


def test_a_campaign_over_its_share_still_uses_a_line_nobody_else_waits_for(db: Store):
    """No line idles while anyone may use it: alone, a campaign takes every line."""
    for i in range(3):
        assert admit(db, "a", f"a{i}", priority=0.1).admitted


def test_calls_per_second_hold_in_any_sliding_second(db: Store):
    """1 call/s: a start one second after the last goes; one 0.99 s after does not."""

    def start(campaign: str, holder: str, at: datetime) -> bool:
        admitted = admit(db, campaign, holder, lines=None, rate=1, now=at).admitted
        return admitted and db.caps.call_starting(holder, 1, at=at)  # requested at once

    t0 = utcnow()
    assert start("a", "a1", t0)
    assert not start("b", "b1", t0 + timedelta(seconds=0.99))
    assert start("b", "b1", t0 + timedelta(seconds=1.0))
    starts = [t0]
    t = t0 + timedelta(seconds=1.0)
    starts.append(t)
    for i in range(40):  # asked every 0.13 s by anyone: never two in a second
        t += timedelta(seconds=0.13)
        if start("c", f"c{i}", t):
            starts.append(t)
    assert all(b - a >= timedelta(seconds=1) for a, b in zip(starts, starts[1:], strict=False))
    assert len(starts) >= 6  # and the rate is used: about one a second


def test_the_rate_counts_from_the_request_not_the_admission(db: Store):
    """Twilio counts calls per second where requests arrive. A call admitted at t0 but slow to
    be requested (t0 + 5 s: its other writes, a busy worker) keeps its slot until then, and the
    second counts from the request: nothing else starts before t0 + 6 s."""
    t0 = utcnow()
    assert admit(db, "a", "slow", lines=None, rate=1, now=t0).admitted
    assert not admit(db, "b", "b1", lines=None, rate=1, now=t0 + timedelta(seconds=1.5)).admitted
    assert db.caps.call_starting("slow", 1, at=t0 + timedelta(seconds=5))
    assert not admit(db, "b", "b1", lines=None, rate=1, now=t0 + timedelta(seconds=5.5)).admitted
    assert admit(db, "b", "b1", lines=None, rate=1, now=t0 + timedelta(seconds=6)).admitted


def test_a_lapsed_rate_reservation_cannot_start_a_call(db: Store):
    """A dial that took longer than the reservation to reach its request has lost the slot
    (another call may hold it now): it must ask again, never call on a stale slot."""
    past = utcnow() - timedelta(minutes=5)
    assert admit(db, "a", "late", lines=None, rate=1, now=past).admitted
    assert not db.caps.call_starting("late", 1)


def test_rate_slots_bound_every_window():
    for rate in (0.5, 1, 2.5, 9, 10, 25, 100):
        k, w = rate_slots(rate)
        assert k >= 1 and abs(k / w - rate) < 1e-9
        assert k / 1 <= max(rate, 1) or w < 1  # at most `rate` in one second below 10/s
    assert rate_slots(1) == (1, 1.0)


def test_progress_shows_lines_in_use_and_waiting(db: Store):
    """What `redialer progress` and the API show: the campaign's lines and the account's."""
    from starter.inspection import line_usage

    assert admit(db, "a", "a1", lines=1).admitted
    assert not admit(db, "a", "a2", lines=1).admitted
    assert not admit(db, "b", "b1", lines=1).admitted
    lines = line_usage("a", database=db.engine.url.render_as_string(hide_password=False))
    assert lines["account"] | {"cap": None} == {
        "in_use": 1,
        "waiting": 2,
        "cap": None,
        "this_campaign": 1,
    }


def test_watch_shows_the_lines():
    """`redialer watch` shows the campaign's lines and the account's, in use and waiting."""
    from rich.console import Console

    from redialer.payloads import CampaignProgress, CampaignState
    from redialer.store.call_caps import LineUsage
    from starter.watch import _view

    progress = CampaignProgress(
        campaign_id="a", state=CampaignState.RUNNING, total=10, final=2, active=5, queued=3,
        by_status={},
    )  # fmt: skip
    view = _view(progress, 2, [], (LineUsage(2, 3, {"a": 2}), LineUsage(2, 7, {"a": 2})))
    console = Console(record=True, width=120)
    console.print(view)
    text = console.export_text()
    assert "lines in use / waiting for one" in text and "2 / 3" in text
    assert "account lines in use / waiting" in text and "2 / 7" in text
