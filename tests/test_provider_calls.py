"""What the HTTP service records of a provider's status callbacks, on SQLite and PostgreSQL:
each (call, sequence number) once, the first terminal status as the outcome, nothing after it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from redialer.store.provider_calls import CallbackEffect, ProviderCalls
from redialer.store.store import Store
from tests import store_fixtures

db = store_fixtures.db
database_url = store_fixtures.database_url

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
E = CallbackEffect


def callback(calls: ProviderCalls, seq: int, status: str, **extra: object) -> CallbackEffect:
    values: dict[str, object] = {
        "call_sid": "CA1",
        "key": "c1:+16505550199:1",
        "sequence_number": seq,
        "status": status,
        "answered_by": None,
        "sip_response_code": None,
        "duration": None,
        "at": T0 + timedelta(seconds=seq),
    }
    return calls.take_callback(**(values | extra))  # type: ignore[arg-type]


def test_the_first_terminal_status_is_the_outcome_and_nothing_after_changes_it(db: Store):
    """Duplicates are ignored, a status after the end changes nothing, and AnsweredBy from the
    answer decides a `completed` that does not repeat it."""
    calls = ProviderCalls(db)
    calls.placed(call_sid="CA1", key="c1:+16505550199:1", status="queued", created_at=T0)
    assert callback(calls, 0, "initiated") is E.RECORDED
    assert callback(calls, 0, "initiated") is E.DUPLICATE
    assert callback(calls, 2, "in-progress", answered_by="machine_end_beep") is E.RECORDED
    assert callback(calls, 3, "completed", duration=12) is E.ENDED
    assert callback(calls, 1, "ringing") is E.ALREADY_ENDED  # out of order, after the end
    assert callback(calls, 4, "failed", sip_response_code=503) is E.ALREADY_ENDED
    row = calls.get("CA1")
    assert row is not None
    assert (row.outcome, row.status, row.duration) == ("voicemail", "completed", 12)
    assert row.ended_at == T0 + timedelta(seconds=3)
    assert calls.ended_among(["CA1", "CA2"]) == {"CA1"}
    assert not calls.reconcile("CA1", status="busy", answered_by=None, duration=0, at=T0)


def test_a_call_known_only_by_its_callbacks_is_recorded_under_the_key_they_carry(db: Store):
    """The worker died before it recorded the call Twilio created: the callback, whose URL
    carries the attempt's key, makes the call known, so the retried dial finds it by key."""
    calls = ProviderCalls(db)
    assert callback(calls, 0, "initiated") is E.RECORDED
    assert callback(calls, 1, "busy") is E.ENDED
    found = calls.for_key("c1:+16505550199:1")
    assert found is not None and (found.call_sid, found.outcome) == ("CA1", "busy")


def test_a_lookup_reconciles_a_call_whose_final_callback_was_lost(db: Store):
    """No final callback: what the provider says when asked ends the call, once."""
    calls = ProviderCalls(db)
    calls.placed(call_sid="CA1", key="k", status="queued", created_at=T0)
    assert callback(calls, 1, "ringing") is E.RECORDED
    assert calls.reconcile("CA1", status="no-answer", answered_by=None, duration=0, at=T0)
    assert callback(calls, 2, "completed") is E.ALREADY_ENDED  # the late callback
    row = calls.get("CA1")
    assert row is not None and row.outcome == "no_answer"
