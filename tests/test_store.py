"""The store on SQLite (the embedded default) and PostgreSQL (production): idempotent writes."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy
from sqlmodel import SQLModel

from redialer.outcomes import Outcome
from redialer.payloads import AttemptRecord
from redialer.recipients import Recipient
from redialer.store.store import Store
from tests import store_fixtures

db = store_fixtures.db
database_url = store_fixtures.database_url

TABLES = {"call_records", "campaign_recipients", "campaigns", "suppression", "simulated_dials"}


def record(attempt: int, outcome: Outcome, *, minutes: int = 0) -> AttemptRecord:
    start = datetime(2026, 11, 24, 15, 0, tzinfo=UTC) + timedelta(minutes=minutes)
    return AttemptRecord(
        attempt=attempt,
        outcome=outcome,
        started_at=start,
        ended_at=start + timedelta(seconds=42),
        call_id=f"call-{attempt}",
    )


def write(
    db: Store, attempt: AttemptRecord, phone: str = "+16505550199", campaign: str = "c1"
) -> None:
    db.finish_attempt(
        key=f"{campaign}:{phone}:{attempt.attempt}",
        campaign_id=campaign,
        phone=phone,
        retry_group_id=f"campaign/{campaign}/recipient/{phone}",
        record=attempt,
        variables={"name": "Ada"},
    )


def recorded(db: Store, key: str) -> AttemptRecord | None:
    """What a dial retried under `key` finds already recorded."""
    return db.dial_gate(key, campaign_id="c1", phone="+16505550199").recorded


def test_recording_an_attempt_twice_keeps_one_row_and_the_first_result(db: Store):
    """A retried activity writing the same attempt again changes nothing."""
    write(db, record(1, Outcome.BUSY))
    write(db, record(1, Outcome.COMPLETED, minutes=5))
    rows = db.call_records("c1")
    assert [(r.attempt, r.outcome) for r in rows] == [(1, "busy")]
    assert recorded(db, "c1:+16505550199:1") == record(1, Outcome.BUSY)
    assert recorded(db, "c1:+16505550199:2") is None


def test_timestamps_come_back_aware_and_equal(db: Store):
    """Times written with any offset come back as the same instants, timezone-aware."""
    start = datetime(2026, 3, 8, 1, 59, 30, tzinfo=timezone(timedelta(hours=-5)))
    write(
        db,
        AttemptRecord(
            attempt=1,
            outcome=Outcome.NO_ANSWER,
            started_at=start,
            ended_at=start + timedelta(seconds=30),
            call_id=None,
        ),
    )
    (back,) = db.attempts_for("campaign/c1/recipient/+16505550199")
    assert back.started_at == start and back.started_at.tzinfo is not None
    assert back.ended_at - back.started_at == timedelta(seconds=30)


def test_records_keep_the_retry_group_and_variables(db: Store):
    """Every attempt is a row of its own, grouped by retry_group_id, with the variables."""
    for n, outcome in enumerate([Outcome.BUSY, Outcome.NO_ANSWER, Outcome.COMPLETED], start=1):
        write(db, record(n, outcome, minutes=n * 10))
    write(db, record(1, Outcome.VOICEMAIL), phone="+14155550100")
    rows = db.call_records("c1")
    assert len(rows) == 4
    ada = [r for r in rows if r.phone == "+16505550199"]
    assert [r.attempt for r in ada] == [1, 2, 3]
    assert {r.retry_group_id for r in ada} == {"campaign/c1/recipient/+16505550199"}
    assert all(r.variables == {"name": "Ada"} for r in rows)
    assert db.calls_placed("c1") == 4


def wf(phone: str) -> str:
    return f"campaign/c1/recipient/{phone}"


def test_enqueue_counts_duplicates_and_never_changes_a_known_row(db: Store):
    """Queuing a known number again is a duplicate: it keeps its state and variables."""
    first = [Recipient(phone="+16505550199", variables={"v": 1}), Recipient(phone="+14155550100")]
    assert db.enqueue_recipients("c1", first, workflow_id_for=wf) == (2, 0)
    db.mark_started("c1", ["+16505550199"])
    again = [Recipient(phone="+16505550199", variables={"v": 2}), Recipient(phone="+12125550123")]
    assert db.enqueue_recipients("c1", again, workflow_id_for=wf) == (1, 1)
    assert db.recipient_counts("c1") == {"started": 1, "queued": 2}
    assert [r.phone for r in db.next_queued("c1", 10)] == ["+14155550100", "+12125550123"]
    # The same number in another campaign is a different recipient.
    assert db.enqueue_recipients("c2", first, workflow_id_for=wf) == (2, 0)


def test_queue_pages_in_order_and_active_ids_page_by_key(db: Store):
    """Queued recipients come out in arrival order; active workflow ids page without overlap."""
    phones = [f"+1212555{n:04d}" for n in range(100, 130)]
    db.enqueue_recipients(
        "c1",
        [Recipient(phone=p, variables={"i": i}) for i, p in enumerate(phones)],
        workflow_id_for=wf,
    )
    page = db.next_queued("c1", 12)
    assert [r.phone for r in page] == phones[:12] and page[3].variables == {"i": 3}
    db.mark_started("c1", [r.phone for r in page])
    assert [r.phone for r in db.next_queued("c1", 5)] == phones[12:17]
    seen: list[str] = []
    after = None
    while ids := db.active_workflow_ids("c1", after=after, limit=5):
        seen += ids
        after = ids[-1]
    assert seen == sorted(wf(p) for p in phones[:12])
    db.record_final(campaign_id="c1", phone=phones[0], status="completed", attempts=2)
    assert wf(phones[0]) not in db.active_workflow_ids("c1")


def test_stop_cancels_only_queued_recipients(db: Store):
    """cancel_queued ends queued recipients `canceled` and leaves started ones alone."""
    db.enqueue_recipients(
        "c1",
        [Recipient(phone=p) for p in ["+16505550199", "+14155550100", "+12125550123"]],
        workflow_id_for=wf,
    )
    db.mark_started("c1", ["+16505550199"])
    assert db.cancel_queued("c1") == 2
    assert db.cancel_queued("c1") == 0
    assert db.recipient_counts("c1") == {"started": 1, "final:canceled": 2}


def test_campaign_state_round_trip(db: Store):
    """The control state a dial reads is the last one written."""
    assert db.campaign_state("c1") is None
    for state in ("running", "paused", "running", "stopped"):
        db.set_campaign_state("c1", state)
        assert db.campaign_state("c1") == state


def test_suppression_outlives_the_store_and_keeps_its_first_reason(tmp_path: Path):
    """A suppressed number stays suppressed after a restart; its first reason is kept."""
    url = f"sqlite:///{tmp_path / 'keep.db'}"
    first = Store.open(url)
    first.suppress("+16505550199", "opted_out", "c1")
    first.suppress("+16505550199", "dnd", "c2")
    first.close()
    reopened = Store.open(url)
    assert reopened.suppression_reason("+16505550199") == "opted_out"
    assert reopened.suppression_reason("+14155550100") is None
    reopened.close()


def test_suppression_keeps_its_first_reason(db: Store):
    """Suppressing a number again (another reason, another campaign) keeps the first entry."""
    db.suppress("+16505550199", "dnd")
    db.suppress("+16505550199", "opted_out", "c1")
    assert db.suppression_reason("+16505550199") == "dnd"
    assert db.suppression_reason("+14155550100") is None


def test_enqueue_is_batched(db: Store):
    """2,500 recipients (three statements) queue and count exactly, duplicates skipped (its speed
    is measured in bench/, not asserted here)."""
    phones = [f"+1212555{n:04d}" for n in range(2500)]
    recipients = [Recipient(phone=p, variables={"i": i}) for i, p in enumerate(phones)]
    assert db.enqueue_recipients("c1", recipients[:1000], workflow_id_for=wf) == (1000, 0)
    assert db.enqueue_recipients("c1", recipients, workflow_id_for=wf) == (1500, 1000)
    assert db.recipient_counts("c1") == {"queued": 2500}
    queued = db.next_queued("c1", 3000)
    assert [r.phone for r in queued] == phones and queued[2499].variables == {"i": 2499}


def test_a_queued_recipient_comes_back_as_it_went_in(db: Store):
    """Zone, variables and metadata survive the queue unchanged."""
    ada = Recipient(
        phone="+16505550199",
        timezone="America/Los_Angeles",
        variables={"name": "Ada", "tags": ["vip"], "n": 1.5},
        metadata={"crm_id": 7, "source": None},
    )
    db.enqueue_recipients("c1", [ada], workflow_id_for=wf, campaign_timezone="Europe/Paris")
    [queued] = db.next_queued("c1", 1)
    assert queued == (ada.phone, "America/Los_Angeles", ada.variables, ada.metadata)
    db.enqueue_recipients("c2", [Recipient(phone=ada.phone)], workflow_id_for=wf)
    assert db.next_queued("c2", 1)[0].zone == "America/Los_Angeles"  # its number's own zone


def test_a_final_status_without_a_campaign_or_a_row_changes_nothing(db: Store):
    """A standalone call (no campaign) or an unknown number has no recipient row to end."""
    db.enqueue_recipients("c1", [Recipient(phone="+16505550199")], workflow_id_for=wf)
    db.record_final(campaign_id=None, phone="+16505550199", status="completed", attempts=1)
    db.record_final(campaign_id="c1", phone="+14155550100", status="completed", attempts=1)
    assert db.recipient_counts("c1") == {"queued": 1}
    db.record_final(campaign_id="c1", phone="+16505550199", status="completed", attempts=3)
    assert db.recipient_counts("c1") == {"final:completed": 1}


def test_workers_opening_an_empty_database_together_all_get_every_table(database_url: str):
    """Several processes' first start at once: each open returns with every table there."""
    barrier = threading.Barrier(6)
    found: list[set[str] | BaseException] = []

    def open_one() -> None:
        barrier.wait()
        try:
            store = Store.open(database_url)
            found.append(set(sqlalchemy.inspect(store.engine).get_table_names()))
            store.close()
        except BaseException as exc:  # reported below, with the others
            found.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(found) == 6
    for tables in found:
        assert isinstance(tables, set), tables
        assert tables >= TABLES


@pytest.mark.postgres
def test_postgres_tables_are_created_on_first_start():
    """Opening an empty PostgreSQL database creates every table."""
    store_fixtures.drop_postgres_tables()
    store = Store.open(store_fixtures.POSTGRES_URL)
    try:
        assert TABLES <= set(sqlalchemy.inspect(store.engine).get_table_names())
    finally:
        SQLModel.metadata.drop_all(store.engine)
        store.close()


def test_the_store_never_shows_a_password():
    """A store's repr (what a log line or traceback shows) masks the database password."""
    store = Store("postgresql://app:hunter2@db.internal:5432/calls")
    assert "hunter2" not in repr(store) and "db.internal" in repr(store)
    store.close()
