"""Calls a real provider placed, as its status callbacks tell them: one place for the HTTP
service to write what it hears and for the dial that waits to read how its call ended.

Every write is conditional on the call not having ended yet, in one transaction with the
callback's deduplication row, so callbacks may arrive twice, out of order, late or after a
lookup reconciled the call: the first terminal status is the outcome and nothing changes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from redialer.dialers.twilio_status import TERMINAL, outcome_of
from redialer.store.store import Store, aware
from redialer.store.tables import ProviderCallbackRow, ProviderCallRow


class CallbackEffect(StrEnum):
    """What a status callback changed."""

    RECORDED = "recorded"  # the call's status moved on (or ended: see `ended`)
    ENDED = "ended"  # this callback ended the call: its outcome is now the attempt's
    DUPLICATE = "duplicate"  # the same (call, sequence number) was taken before
    ALREADY_ENDED = "already_ended"  # the call had ended: nothing changed


class ProviderCalls:
    def __init__(self, store: Store) -> None:
        self._engine = store.engine
        self._dialect = postgresql if self._engine.dialect.name == "postgresql" else sqlite

    def placed(
        self,
        *,
        call_sid: str,
        key: str,
        status: str,
        created_at: datetime,
        answer_twiml: str | None = None,
        voicemail_twiml: str | None = None,
    ) -> None:
        """The provider created (or a lookup found) this call for `key`; a call known already
        keeps what it has (a callback may have been first)."""
        values: dict[str, Any] = {
            "call_sid": call_sid,
            "idempotency_key": key,
            "status": status,
            "created_at": created_at,
            "answer_twiml": answer_twiml,
            "voicemail_twiml": voicemail_twiml,
        }
        table = ProviderCallRow.__table__  # type: ignore[attr-defined]
        statement = (
            self._dialect.insert(table)
            .values(**values)
            .on_conflict_do_update(
                index_elements=["call_sid"],
                set_={"answer_twiml": answer_twiml, "voicemail_twiml": voicemail_twiml},
            )
        )
        with self._engine.begin() as connection:
            connection.execute(statement)

    def take_callback(
        self,
        *,
        call_sid: str,
        key: str,
        sequence_number: int,
        status: str,
        answered_by: str | None,
        sip_response_code: int | None,
        duration: int | None,
        at: datetime,
    ) -> CallbackEffect:
        """A verified status callback, applied once; the first terminal status ends the call."""
        callbacks = ProviderCallbackRow.__table__  # type: ignore[attr-defined]
        with self._engine.begin() as connection:
            new = connection.execute(
                self._dialect.insert(callbacks)
                .values(
                    call_sid=call_sid,
                    sequence_number=sequence_number,
                    status=status,
                    received_at=datetime.now(UTC),
                )
                .on_conflict_do_nothing()
                .returning(callbacks.c.call_sid)
            ).first()
            if new is None:
                return CallbackEffect.DUPLICATE
            if status in TERMINAL and not answered_by:
                # AnsweredBy may come with an earlier callback (the answer) than the final one.
                answered_by = connection.execute(
                    select(ProviderCallRow.answered_by).where(ProviderCallRow.call_sid == call_sid)
                ).scalar()
            values = _status_values(
                status,
                answered_by=answered_by,
                sip_response_code=sip_response_code,
                duration=duration,
                at=at,
            )
            changed = connection.execute(
                update(ProviderCallRow)
                .where(col(ProviderCallRow.call_sid) == call_sid)
                .where(col(ProviderCallRow.outcome).is_(None))
                .values(**values)
            ).rowcount
            if not changed and not self._known(connection, call_sid):
                # A call whose create response was lost (its worker died) is known by its
                # callbacks: the key comes back in the callback URL.
                connection.execute(
                    self._dialect.insert(ProviderCallRow.__table__)  # type: ignore[attr-defined]
                    .values(call_sid=call_sid, idempotency_key=key, created_at=at, **values)
                    .on_conflict_do_nothing()
                )
                changed = 1
        if not changed:
            return CallbackEffect.ALREADY_ENDED
        ended = "outcome" in values
        return CallbackEffect.ENDED if ended else CallbackEffect.RECORDED

    @staticmethod
    def _known(connection: Any, call_sid: str) -> bool:
        return (
            connection.execute(
                select(ProviderCallRow.call_sid).where(ProviderCallRow.call_sid == call_sid)
            ).first()
            is not None
        )

    def reconcile(
        self,
        call_sid: str,
        *,
        status: str,
        answered_by: str | None,
        duration: int | None,
        at: datetime,
    ) -> bool:
        """What the provider said when asked (a final callback was late or lost): applied as a
        callback would be, unless the call has ended meanwhile. True if it changed anything."""
        with self._engine.begin() as connection:
            answered_by = (
                answered_by
                or connection.execute(
                    select(ProviderCallRow.answered_by).where(ProviderCallRow.call_sid == call_sid)
                ).scalar()
            )
            changed = connection.execute(
                update(ProviderCallRow)
                .where(col(ProviderCallRow.call_sid) == call_sid)
                .where(col(ProviderCallRow.outcome).is_(None))
                .values(
                    **_status_values(
                        status,
                        answered_by=answered_by,
                        sip_response_code=None,
                        duration=duration,
                        at=at,
                    )
                )
            ).rowcount
        return bool(changed)

    def message_left(self, call_sid: str) -> None:
        with self._engine.begin() as connection:
            connection.execute(
                update(ProviderCallRow)
                .where(col(ProviderCallRow.call_sid) == call_sid)
                .values(message_left=True)
            )

    def get(self, call_sid: str) -> ProviderCallRow | None:
        with Session(self._engine) as session:
            return _aware(session.get(ProviderCallRow, call_sid))

    def for_key(self, key: str) -> ProviderCallRow | None:
        """The call placed for `key` (the latest, should there ever be two)."""
        with Session(self._engine) as session:
            row = session.exec(
                select(ProviderCallRow)
                .where(ProviderCallRow.idempotency_key == key)
                .order_by(col(ProviderCallRow.created_at).desc())
            ).first()
            return _aware(row)

    def ended_among(self, call_sids: Sequence[str]) -> set[str]:
        """Which of these calls have an outcome: one query however many calls a worker waits on."""
        if not call_sids:
            return set()
        with Session(self._engine) as session:
            return set(
                session.exec(
                    select(ProviderCallRow.call_sid).where(
                        col(ProviderCallRow.call_sid).in_(list(call_sids)),
                        col(ProviderCallRow.outcome).is_not(None),
                    )
                ).all()
            )


def _status_values(
    status: str,
    *,
    answered_by: str | None,
    sip_response_code: int | None,
    duration: int | None,
    at: datetime,
) -> dict[str, Any]:
    values: dict[str, Any] = {"status": status}
    if answered_by:
        values["answered_by"] = answered_by
    outcome = outcome_of(status, answered_by=answered_by, sip_code=sip_response_code)
    if outcome is not None:
        values |= {
            "outcome": outcome.value,
            "sip_response_code": sip_response_code,
            "duration": duration,
            "ended_at": at,
        }
    return values


def _aware(row: ProviderCallRow | None) -> ProviderCallRow | None:
    if row is not None:
        row.created_at = aware(row.created_at)
        row.ended_at = aware(row.ended_at) if row.ended_at is not None else None
    return row
