"""redialer's ledger of the calls it asked a dialer to place: exactly one call per key.

A provider such as Twilio takes no idempotency key, so a create-call retried after a crash would
place a second call. Before asking a dialer, the dial activity writes its intent here; a dial that
finds the intent already written is a retry of one that may have placed the call and died before
recording it, so it asks the dialer to adopt that call first, and places one only if there is none.
`requests` counts the place-call requests redialer sent or was about to send per key (a dial
that died before its request left counts, and so does the retry that then places the call):
the count that proves one call per key is the dialer's own, of requests that reached it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import NamedTuple

from sqlalchemy import update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from redialer.store.store import Store, aware
from redialer.store.tables import DialIntentRow


class Intent(NamedTuple):
    """A key's intent: `first` when this dial wrote it (nothing can have been placed yet)."""

    first: bool
    created_at: datetime
    call_id: str | None


class DialIntents:
    def __init__(self, store: Store) -> None:
        self._engine = store.engine

    def begin(self, key: str, *, phone: str, attempt: int) -> Intent:
        """Write the intent for `key`, counting the request the first run is about to send (one
        write where two would do: this sits between a line's admission and its call ringing),
        or read the one a previous run of this dial wrote."""
        table = DialIntentRow.__table__  # type: ignore[attr-defined]
        dialect = postgresql if self._engine.dialect.name == "postgresql" else sqlite
        now = datetime.now(UTC)
        insert = (
            dialect.insert(table)
            .values(idempotency_key=key, phone=phone, attempt=attempt, created_at=now, requests=1)
            .on_conflict_do_nothing()
            .returning(table.c.idempotency_key)
        )
        with self._engine.begin() as connection:
            if connection.execute(insert).first() is not None:
                return Intent(first=True, created_at=now, call_id=None)
            row = connection.execute(
                select(table.c.created_at, table.c.call_id).where(table.c.idempotency_key == key)
            ).one()
        return Intent(first=False, created_at=aware(row.created_at), call_id=row.call_id)

    def requested(self, key: str) -> None:
        """A retried dial's place-call request is about to go to the dialer for this key."""
        self._bump(key, requests=col(DialIntentRow.requests) + 1)

    def adopted(self, key: str, call_id: str | None) -> None:
        """A retried dial took over the call a previous run had placed."""
        self._bump(key, adoptions=col(DialIntentRow.adoptions) + 1, call_id=call_id)

    def placed(self, key: str, call_id: str) -> None:
        self._bump(key, call_id=call_id)

    def _bump(self, key: str, **values: object) -> None:
        with self._engine.begin() as connection:
            connection.execute(
                update(DialIntentRow)
                .where(col(DialIntentRow.idempotency_key) == key)
                .values(**values)
            )

    def requests(self, prefix: str = "") -> dict[str, int]:
        """Place-call requests sent per key (keys starting with `prefix`)."""
        with Session(self._engine) as session:
            rows = session.exec(
                select(DialIntentRow.idempotency_key, DialIntentRow.requests).where(
                    col(DialIntentRow.idempotency_key).startswith(prefix)
                )
            ).all()
        return {k: n for k, n in rows}

    def adoptions(self, prefix: str = "") -> int:
        with Session(self._engine) as session:
            rows = session.exec(
                select(DialIntentRow.adoptions).where(
                    col(DialIntentRow.idempotency_key).startswith(prefix)
                )
            ).all()
        return sum(rows)
