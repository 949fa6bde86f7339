"""The store: call records, campaign recipients and state, the suppression list.

SQLite file by default (WAL, so several worker processes can share it), PostgreSQL by URL for
production. Every write that a retried activity may repeat is idempotent (insert-or-ignore on a
natural key), so a retry never duplicates a record. Synchronous by design: activities call it
through `asyncio.to_thread`, keeping the event loop free for heartbeats.

`forget` erases one person's number and data (a right-to-erasure request) and keeps their
opt-out as a pseudonym, which the suppression check matches as well as the number.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from sqlalchemy import Connection, Engine, event, func, update
from sqlalchemy import select as sa_select
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, SQLModel, col, create_engine, select

from redialer.allowed_time import Deferral
from redialer.outcomes import Outcome
from redialer.payloads import AttemptRecord
from redialer.pseudonyms import NoPseudonymKey, Pseudonyms
from redialer.recipients import Recipient
from redialer.store.call_caps import CallCaps
from redialer.store.number_calls import NumberCalls
from redialer.store.sqlite_writes import serialize_writes
from redialer.store.tables import (
    CallLineRow,
    CallRecordRow,
    CallSlotRow,
    CampaignRecipientRow,
    CampaignRow,
    DeferralRow,
    DialIntentRow,
    DialTicketRow,
    NumberCallRow,
    ProviderCallRow,
    SimulatedDialRow,
    SuppressionRow,
    utcnow,
)
from redialer.zones import recipient_zone_name


def aware(value: datetime) -> datetime:
    """SQLite hands datetimes back naive; they were written in UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


#: How often to retry what another process starting at the same moment may be doing too
#: (switching a new SQLite file to WAL), and the pause between tries.
RACE_TRIES = 50
RACE_PAUSE = 0.1


def engine_for(url: str) -> Engine:
    """One engine per process. SQLite: WAL, so several worker processes share one file (readers
    never block the writer, a writer waits up to 30 s for another; within a process writers
    queue in Python: sqlite_writes.py). PostgreSQL: psycopg 3."""
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _pragmas(connection: Any, _: Any) -> None:
        cursor = connection.cursor()
        cursor.execute("PRAGMA busy_timeout=30000")
        _switch_to_wal(cursor)
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    serialize_writes(engine)
    return engine


def _switch_to_wal(cursor: Any) -> None:
    """Switching a new file to WAL needs it alone for a moment, and SQLite refuses at once
    ("database is locked", the busy timeout does not apply) while another process is switching
    it: workers starting together on a new file retry for a few seconds."""
    for attempt in range(RACE_TRIES):
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == RACE_TRIES - 1:
                raise
            time.sleep(RACE_PAUSE)


class Store:
    """The one gateway to the database. One engine per store, a session per call."""

    def __init__(self, url: str, *, pseudonyms: Pseudonyms | None = None) -> None:
        self.engine = engine_for(url)
        self.caps = CallCaps(self.engine)
        self.number_calls = NumberCalls(self.engine, self.number_key)
        self._pseudonyms = pseudonyms

    @property
    def pseudonyms(self) -> Pseudonyms:
        """The key a forgotten number's suppression is kept under: as given, else this
        process's settings (REDIALER_PSEUDONYM_KEY or REDIALER_ENCRYPTION_KEYS), read at first
        need."""
        if self._pseudonyms is None:
            self._pseudonyms = Pseudonyms.from_environment()
        return self._pseudonyms

    def __repr__(self) -> str:
        return f"Store({self.engine.url.render_as_string(hide_password=True)})"

    @classmethod
    def open(cls, url: str, *, pseudonyms: Pseudonyms | None = None) -> Store:
        """Connect; on an empty database, make the schema by running every migration (safe
        when workers start together). A store at another revision is refused with
        `SchemaOutOfDate`, naming `redialer db upgrade`: never write to tables we do not match."""
        from redialer.store.migrations.schema import open_schema  # alembic: only when opening

        store = cls(url, pseudonyms=pseudonyms)
        try:
            open_schema(store.engine)
        except BaseException:
            store.close()
            raise
        return store

    def close(self) -> None:
        self.engine.dispose()

    def _insert(self, table: type[SQLModel]) -> Any:
        """This database's INSERT, which knows ON CONFLICT (spelled alike on both)."""
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        return dialect.insert(table.__table__)  # type: ignore[attr-defined]

    def _insert_ignoring_conflicts(
        self, table: type[SQLModel], rows: Sequence[dict[str, Any]]
    ) -> int:
        """Insert rows in one transaction, skipping any whose key exists; returns how many were
        new. INSERT ... ON CONFLICT DO NOTHING on both databases: a repeated write is a no-op,
        and two writers racing on one key cannot both win. One statement compiled once, sent in
        batches under each database's parameter limit (SQLAlchemy's "insertmanyvalues")."""
        if not rows:
            return 0
        key = next(iter(table.__table__.primary_key.columns))  # type: ignore[attr-defined]
        statement = self._insert(table).on_conflict_do_nothing().returning(key)
        with self.engine.begin() as connection:
            # rowcount is -1 for batched inserts on some drivers: count the keys that came back.
            return len(connection.execute(statement, list(rows)).all())

    # ---- call records ---------------------------------------------------------------------------

    def attempts_for(self, retry_group_id: str) -> list[AttemptRecord]:
        return [_attempt(r) for r in self._records(CallRecordRow.retry_group_id == retry_group_id)]

    def call_records(self, campaign_id: str) -> list[CallRecordRow]:
        """Every attempt of a campaign, by recipient then attempt."""
        return self._records(CallRecordRow.campaign_id == campaign_id)

    def call_records_for(self, retry_group_id: str) -> list[CallRecordRow]:
        return self._records(CallRecordRow.retry_group_id == retry_group_id)

    def calls_placed(self, campaign_id: str) -> int:
        with Session(self.engine) as session:
            return session.exec(
                select(func.count()).where(
                    CallRecordRow.campaign_id == campaign_id, col(CallRecordRow.dialed).is_(True)
                )
            ).one()

    def _records(self, condition: Any) -> list[CallRecordRow]:
        with Session(self.engine) as session:
            rows = session.exec(
                select(CallRecordRow)
                .where(condition)
                .order_by(col(CallRecordRow.phone), col(CallRecordRow.attempt))
            ).all()
            for row in rows:
                row.started_at, row.ended_at = aware(row.started_at), aware(row.ended_at)
            return list(rows)

    # ---- campaign recipients --------------------------------------------------------------------

    def enqueue_recipients(
        self,
        campaign_id: str,
        recipients: Sequence[Recipient],
        *,
        workflow_id_for: Callable[[str], str],
        campaign_timezone: str = "UTC",
    ) -> tuple[int, int]:
        """Queue new recipients; returns (accepted, duplicates). A known number is left alone."""
        with Session(self.engine) as session:
            seq = session.exec(
                select(func.coalesce(func.max(CampaignRecipientRow.seq), 0)).where(
                    CampaignRecipientRow.campaign_id == campaign_id
                )
            ).one()
        now = utcnow()
        rows = [
            {
                "campaign_id": campaign_id,
                "phone": r.phone,
                "workflow_id": workflow_id_for(r.phone),
                "seq": seq + i + 1,
                "state": "queued",
                "timezone": r.timezone,
                "zone": recipient_zone_name(
                    own=r.timezone, phone=r.phone, campaign=campaign_timezone
                ),
                "variables": r.variables,
                "metadata": r.metadata,
                "updated_at": now,
            }
            for i, r in enumerate(recipients)
        ]
        accepted = self._insert_ignoring_conflicts(CampaignRecipientRow, rows)
        return accepted, len(rows) - accepted

    def next_queued(self, campaign_id: str, limit: int) -> list[QueuedRow]:
        with Session(self.engine) as session:
            rows = session.exec(
                select(CampaignRecipientRow)
                .where(
                    CampaignRecipientRow.campaign_id == campaign_id,
                    CampaignRecipientRow.state == "queued",
                )
                .order_by(col(CampaignRecipientRow.seq))
                .limit(limit)
            ).all()
            return [QueuedRow(r.phone, r.zone, r.variables, r.extra) for r in rows]

    def mark_started(self, campaign_id: str, phones: Iterable[str]) -> None:
        self._set_state(campaign_id, list(phones), state="started", only_from="queued")

    def cancel_queued(self, campaign_id: str) -> int:
        """End every queued recipient `canceled` without a call (the campaign was stopped)."""
        with Session(self.engine) as session:
            result = session.exec(  # type: ignore[call-overload]
                update(CampaignRecipientRow)
                .where(
                    col(CampaignRecipientRow.campaign_id) == campaign_id,
                    col(CampaignRecipientRow.state) == "queued",
                )
                .values(state="final", status="canceled", updated_at=utcnow())
            )
            session.commit()
            return int(result.rowcount or 0)

    def active_workflow_ids(
        self, campaign_id: str, *, after: str | None = None, limit: int = 1000
    ) -> list[str]:
        """Started, not final recipients' workflow ids, in pages (keyset on the id)."""
        query = select(CampaignRecipientRow.workflow_id).where(
            CampaignRecipientRow.campaign_id == campaign_id,
            CampaignRecipientRow.state == "started",
        )
        if after is not None:
            query = query.where(CampaignRecipientRow.workflow_id > after)
        with Session(self.engine) as session:
            return list(
                session.exec(query.order_by(col(CampaignRecipientRow.workflow_id)).limit(limit))
            )

    def workflow_id_of(self, campaign_id: str, phone: str) -> str | None:
        """The id the recipient's workflow was started with (the number's, or its pseudonym's)."""
        with Session(self.engine) as session:
            return session.exec(
                select(CampaignRecipientRow.workflow_id).where(
                    CampaignRecipientRow.campaign_id == campaign_id,
                    CampaignRecipientRow.phone == phone,
                )
            ).first()

    def record_final(
        self,
        *,
        campaign_id: str | None,
        phone: str,
        status: str,
        attempts: int,
        suppress: str | None = None,
    ) -> None:
        """A recipient's final status and, for opt-outs and DND, the suppression, together."""
        with self.engine.begin() as connection:
            if suppress is not None:
                connection.execute(self._suppression_insert(phone, suppress, campaign_id))
            if campaign_id is not None:
                connection.execute(_recipient_update(campaign_id, phone, _final(status, attempts)))

    def mark_dialing(self, campaign_id: str, phone: str, since: datetime | None) -> None:
        """Note that a call to this recipient is up (or, with None, that it ended)."""
        with self.engine.begin() as connection:
            connection.execute(_recipient_update(campaign_id, phone, {"dialing_since": since}))

    def note_next_attempt(
        self,
        campaign_id: str,
        phone: str,
        at: datetime,
        *,
        attempt: int | None = None,
        deferred: Sequence[Deferral] = (),
    ) -> None:
        """A dial deferred to an allowed time: when it is due now, and (with `attempt`) the
        rules that moved it, as evidence for `redialer report`."""
        with self.engine.begin() as connection:
            connection.execute(_recipient_update(campaign_id, phone, {"next_attempt_at": at}))
            if attempt is not None:
                self._record_deferrals(connection, campaign_id, phone, attempt, deferred)

    def record_deferrals(
        self, campaign_id: str, phone: str, attempt: int, deferred: Sequence[Deferral]
    ) -> None:
        """The rules that moved an attempt (see `_record_deferrals`)."""
        with self.engine.begin() as connection:
            self._record_deferrals(connection, campaign_id, phone, attempt, deferred)

    def _record_deferrals(
        self,
        connection: Connection,
        campaign_id: str,
        phone: str,
        attempt: int,
        deferred: Sequence[Deferral],
    ) -> None:
        """Once per (attempt, reason, rule): a retried dial or a second move by the same rule
        adds nothing, so the report counts attempts, not moves."""
        rows: dict[tuple[str, str], dict[str, Any]] = {}
        now = utcnow()
        for d in deferred:
            rows.setdefault(
                (d.reason.value, d.rule),
                {
                    "campaign_id": campaign_id,
                    "phone": phone,
                    "attempt": attempt,
                    "reason": d.reason.value,
                    "rule": d.rule,
                    "moved_from": d.moved_from,
                    "moved_to": d.moved_to,
                    "recorded_at": now,
                },
            )
        if rows:
            connection.execute(
                self._insert(DeferralRow).on_conflict_do_nothing(), list(rows.values())
            )

    def deferral_counts(self, campaign_id: str) -> list[tuple[str, str, int, int]]:
        """(reason, rule, attempts deferred, distinct recipients) of a campaign, in one grouped
        query over its deferrals (the table's key begins with the campaign)."""
        deferrals = DeferralRow.__table__.c  # type: ignore[attr-defined]
        with self.engine.connect() as connection:
            rows = connection.execute(
                sa_select(
                    deferrals.reason,
                    deferrals.rule,
                    func.count(),
                    func.count(deferrals.phone.distinct()),
                )
                .where(deferrals.campaign_id == campaign_id)
                .group_by(deferrals.reason, deferrals.rule)
            ).all()
        return [(str(r), str(rule), int(n), int(people)) for r, rule, n, people in rows]

    def next_wake(self, campaign_id: str) -> tuple[int, datetime | None]:
        """(recipients that may move any moment, the earliest time one of the rest is due).

        Started, non-final recipients either have a call up or no known next time (they may move
        any moment), or sleep until their `next_attempt_at`: the campaign needs to look again
        soon only for the first kind, else not before the earliest due time."""
        started = (
            col(CampaignRecipientRow.campaign_id) == campaign_id,
            col(CampaignRecipientRow.state) == "started",
        )
        with Session(self.engine) as session:
            moving = session.exec(
                select(func.count()).where(
                    *started,
                    col(CampaignRecipientRow.dialing_since).is_not(None)
                    | col(CampaignRecipientRow.next_attempt_at).is_(None),
                )
            ).one()
            earliest = session.exec(
                select(func.min(CampaignRecipientRow.next_attempt_at)).where(*started)
            ).one()
        return moving, aware(earliest) if earliest is not None else None

    # ---- one dial: what it reads first, what it writes at the end -------------------------------

    def dial_gate(self, key: str, *, campaign_id: str | None, phone: str) -> DialGate:
        """Everything a dial checks before calling, over one connection: the attempt if a run
        before this one recorded it, the campaign's control state, the number's suppression."""
        records = CallRecordRow.__table__.c  # type: ignore[attr-defined]
        suppression = SuppressionRow.__table__.c  # type: ignore[attr-defined]
        with self.engine.connect() as connection:
            row = connection.execute(
                sa_select(records).where(records.idempotency_key == key)
            ).first()
            state = _campaign_state(connection, campaign_id) if campaign_id is not None else None
            reason = connection.execute(
                sa_select(suppression.reason)
                .where(suppression.phone.in_(self._suppression_keys(phone)))
                .limit(1)
            ).scalar()
        return DialGate(
            recorded=_attempt(row) if row is not None else None,  # type: ignore[arg-type]
            campaign_state=state,
            suppressed=reason,
        )

    def finish_attempt(
        self,
        *,
        key: str,
        campaign_id: str | None,
        phone: str,
        retry_group_id: str,
        record: AttemptRecord,
        variables: dict[str, Any],
        final: str | None = None,
        suppress: str | None = None,
        next_attempt_at: datetime | None = None,
        next_attempt: int | None = None,
        deferred: Sequence[Deferral] = (),
    ) -> None:
        """A dial's end in one transaction: its call record, the end of its in-progress mark,
        and, when the call ended the recipient, the final status (and suppression), else when
        the next call is due and the rules that moved it (`deferred`, of `next_attempt`).
        Repeating it (a retried activity) changes nothing."""
        with self.engine.begin() as connection:
            connection.execute(
                self._insert(CallRecordRow).on_conflict_do_nothing(),
                [_call_record(key, campaign_id, phone, retry_group_id, record, variables)],
            )
            if suppress is not None:
                connection.execute(self._suppression_insert(phone, suppress, campaign_id))
            if campaign_id is not None:
                values: dict[str, Any] = {"dialing_since": None, "next_attempt_at": next_attempt_at}
                if final is not None:
                    values |= _final(final, record.attempt)
                connection.execute(_recipient_update(campaign_id, phone, values))
                if next_attempt is not None:
                    self._record_deferrals(connection, campaign_id, phone, next_attempt, deferred)

    def calls_in_progress(self, campaign_id: str) -> int:
        with Session(self.engine) as session:
            return session.exec(
                select(func.count()).where(
                    CampaignRecipientRow.campaign_id == campaign_id,
                    col(CampaignRecipientRow.dialing_since).is_not(None),
                )
            ).one()

    def report_rows(self, campaign_id: str) -> tuple[list[Any], list[Any]]:
        """(phone, zone, state, status) per recipient and (phone, attempt, outcome, started_at,
        dialed) per attempt: plain tuples, so 100,000 records load in a fraction of a second."""
        with Session(self.engine) as session:
            recipients = session.exec(
                select(
                    CampaignRecipientRow.phone,
                    CampaignRecipientRow.zone,
                    CampaignRecipientRow.state,
                    CampaignRecipientRow.status,
                ).where(CampaignRecipientRow.campaign_id == campaign_id)
            ).all()
            records = session.exec(
                select(  # type: ignore[call-overload]  # sqlmodel types up to 4 columns
                    CallRecordRow.phone,
                    CallRecordRow.attempt,
                    CallRecordRow.outcome,
                    CallRecordRow.started_at,
                    CallRecordRow.dialed,
                ).where(CallRecordRow.campaign_id == campaign_id)
            ).all()
        return list(recipients), list(records)

    def recipients_for_export(
        self, campaign_id: str, statuses: Iterable[str] | None = None
    ) -> list[CampaignRecipientRow]:
        query = select(CampaignRecipientRow).where(CampaignRecipientRow.campaign_id == campaign_id)
        if statuses is not None:
            query = query.where(col(CampaignRecipientRow.status).in_(list(statuses)))
        with Session(self.engine) as session:
            return list(session.exec(query.order_by(col(CampaignRecipientRow.seq))).all())

    def recipients_page(
        self, campaign_id: str, statuses: Iterable[str] | None, *, after_seq: int, limit: int
    ) -> list[CampaignRecipientRow]:
        """The next `limit` recipients in list order after `after_seq`: an export of any size
        reads page by page (keyset paging, so each page costs the same)."""
        query = select(CampaignRecipientRow).where(
            CampaignRecipientRow.campaign_id == campaign_id,
            col(CampaignRecipientRow.seq) > after_seq,
        )
        if statuses is not None:
            query = query.where(col(CampaignRecipientRow.status).in_(list(statuses)))
        with Session(self.engine) as session:
            return list(
                session.exec(query.order_by(col(CampaignRecipientRow.seq)).limit(limit)).all()
            )

    def last_outcomes_for(self, campaign_id: str, phones: list[str]) -> dict[str, str]:
        """The last recorded outcome of each of `phones` (one page of an export)."""
        if not phones:
            return {}
        with Session(self.engine) as session:
            rows = session.exec(
                select(CallRecordRow.phone, CallRecordRow.attempt, CallRecordRow.outcome).where(
                    CallRecordRow.campaign_id == campaign_id,
                    col(CallRecordRow.phone).in_(phones),
                )
            ).all()
        last: dict[str, tuple[int, str]] = {}
        for phone, attempt, outcome in rows:
            if phone not in last or attempt > last[phone][0]:
                last[phone] = (attempt, outcome)
        return {phone: outcome for phone, (_, outcome) in last.items()}

    def last_outcomes(self, campaign_id: str) -> dict[str, str]:
        """Each recipient's last recorded outcome."""
        latest = (
            select(CallRecordRow.phone, func.max(CallRecordRow.attempt).label("attempt"))
            .where(CallRecordRow.campaign_id == campaign_id)
            .group_by(CallRecordRow.phone)
            .subquery()
        )
        with Session(self.engine) as session:
            rows = session.exec(
                select(CallRecordRow.phone, CallRecordRow.outcome)
                .join(
                    latest,
                    (col(CallRecordRow.phone) == latest.c.phone)
                    & (col(CallRecordRow.attempt) == latest.c.attempt),
                )
                .where(CallRecordRow.campaign_id == campaign_id)
            ).all()
        return dict(rows)

    def recipient_counts(self, campaign_id: str) -> dict[str, int]:
        """Recipients by state, and final ones by status (`final:completed`)."""
        with Session(self.engine) as session:
            rows = session.exec(
                select(CampaignRecipientRow.state, CampaignRecipientRow.status, func.count())
                .where(CampaignRecipientRow.campaign_id == campaign_id)
                .group_by(col(CampaignRecipientRow.state), col(CampaignRecipientRow.status))
            ).all()
        counts: dict[str, int] = {}
        for state, status, n in rows:
            key = f"{state}:{status}" if status else state
            counts[key] = counts.get(key, 0) + n
        return counts

    def _set_state(
        self, campaign_id: str, phones: list[str], *, state: str, only_from: str
    ) -> None:
        if not phones:
            return
        with Session(self.engine) as session:
            session.exec(  # type: ignore[call-overload]
                update(CampaignRecipientRow)
                .where(
                    col(CampaignRecipientRow.campaign_id) == campaign_id,
                    col(CampaignRecipientRow.phone).in_(phones),
                    col(CampaignRecipientRow.state) == only_from,
                )
                .values(state=state, updated_at=utcnow())
            )
            session.commit()

    # ---- campaign state -------------------------------------------------------------------------

    def set_campaign_state(self, campaign_id: str, state: str) -> None:
        """Upsert in one statement: two workers writing at once cannot collide on the key."""
        now = utcnow()
        statement = (
            self._insert(CampaignRow)
            .values(campaign_id=campaign_id, state=state, updated_at=now)
            .on_conflict_do_update(
                index_elements=["campaign_id"], set_={"state": state, "updated_at": now}
            )
        )
        with Session(self.engine) as session:
            session.exec(statement)  # type: ignore[call-overload]
            session.commit()

    def campaign_state(self, campaign_id: str) -> str | None:
        with Session(self.engine) as session:
            row = session.get(CampaignRow, campaign_id)
            return row.state if row else None

    # ---- suppression ----------------------------------------------------------------------------

    def suppress(
        self,
        phone: str,
        reason: str,
        campaign_id: str | None = None,
        *,
        source: str | None = None,
        note: str | None = None,
    ) -> None:
        """Add a number to the suppression list; an existing entry keeps its first reason."""
        with self.engine.begin() as connection:
            connection.execute(
                self._suppression_insert(phone, reason, campaign_id, source=source, note=note)
            )

    def _suppression_insert(
        self,
        phone: str,
        reason: str,
        campaign_id: str | None,
        *,
        source: str | None = None,
        note: str | None = None,
    ) -> Any:
        return (
            self._insert(SuppressionRow)
            .values(
                phone=phone,
                reason=reason,
                campaign_id=campaign_id,
                created_at=utcnow(),
                source=source or _suppression_source(reason, campaign_id),
                note=note,
            )
            .on_conflict_do_nothing()
        )

    def add_suppression(
        self, phone: str, reason: str, *, source: str, note: str | None = None
    ) -> tuple[SuppressionRow, bool]:
        """(the entry, whether it is new). A number already on the list, in clear or kept as a
        pseudonym by `forget`, keeps its entry: its first reason and source are the evidence."""
        with self.engine.begin() as connection:
            existing = _suppression_row(connection, self._suppression_keys(phone))
            if existing is not None:
                return existing, False
            added = connection.execute(
                self._suppression_insert(phone, reason, None, source=source, note=note)
            ).rowcount
            row = _suppression_row(connection, [phone])
        if row is None:  # pragma: no cover - inserted or found in this very transaction
            raise RuntimeError(f"{phone}: neither added to nor found on the suppression list")
        return row, bool(added)

    def suppression_entry(self, phone: str) -> SuppressionRow | None:
        """The number's entry (or its pseudonym's, after `forget`), with who added it and when."""
        with self.engine.connect() as connection:
            return _suppression_row(connection, self._suppression_keys(phone))

    def remove_suppression(self, phone: str, *, force: bool = False) -> SuppressionRow | None:
        """Take a number off the list (its pseudonym's entry too); returns what was removed,
        None if it was not there. An opt-out is the person's own request: `SuppressionKept`
        unless `force`."""
        suppression = SuppressionRow.__table__.c  # type: ignore[attr-defined]
        keys = self._suppression_keys(phone)
        with self.engine.begin() as connection:
            found = _suppression_rows(connection, keys)  # the number's, and its pseudonym's
            if not found:
                return None
            row = next((r for r in found if r.reason == "opted_out"), found[0])
            if row.reason == "opted_out" and not force:
                raise SuppressionKept(
                    f"{phone} opted out (source {row.source or 'not recorded'}, since"
                    f" {row.created_at:%Y-%m-%d %H:%M} UTC): the person asked not to be called."
                    " Remove it only on their own new consent, with --force"
                )
            connection.execute(
                SuppressionRow.__table__.delete().where(  # type: ignore[attr-defined]
                    suppression.phone.in_(keys)
                )
            )
        return row

    def suppression_list(
        self, *, reason: str | None = None, limit: int = 100
    ) -> list[SuppressionRow]:
        """The newest entries first (an import's rows share its time: then by number)."""
        query = select(SuppressionRow)
        if reason is not None:
            query = query.where(SuppressionRow.reason == reason)
        query = query.order_by(
            col(SuppressionRow.created_at).desc(), col(SuppressionRow.phone)
        ).limit(limit)
        with Session(self.engine) as session:
            rows = list(session.exec(query))
            session.expunge_all()
        return rows

    def suppression_count(self, *, reason: str | None = None) -> int:
        query = select(func.count()).select_from(SuppressionRow)
        if reason is not None:
            query = query.where(SuppressionRow.reason == reason)
        with Session(self.engine) as session:
            return session.exec(query).one()

    def suppression_reason(self, phone: str) -> str | None:
        with Session(self.engine) as session:
            return session.exec(
                select(SuppressionRow.reason)
                .where(col(SuppressionRow.phone).in_(self._suppression_keys(phone)))
                .limit(1)
            ).first()

    def _suppression_keys(self, phone: str) -> list[str]:
        """The number, and its pseudonym: `forget` keeps an opt-out under the latter."""
        if not self.pseudonyms.has_key:
            return [phone]
        return [phone, self.pseudonyms.pseudonym(phone)]

    def number_key(self, phone: str) -> str:
        """One key per number for the frequency cap: its pseudonym where the store has a key (as
        `forget` leaves it, so a forgotten number's calls still count), else the number."""
        return self.pseudonyms.pseudonym(phone) if self.pseudonyms.has_key else phone

    # ---- erasure --------------------------------------------------------------------------------

    def forget(self, phone: str) -> ForgetResult:
        """Erase a number and what identifies its person, in one transaction; keep the counts.

        Column by column (each table holding the number):

        - `campaign_recipients`: `phone` becomes the pseudonym and `workflow_id` names it
          instead of the number; `variables` and `metadata` are emptied (names, account ids...).
          Kept: `campaign_id`, `seq`, `state`, `status`, `attempts`, `timezone`, `zone` (the
          report's local hours), times. So progress, reports and exports count them as before.
        - `call_records`: `phone`, `idempotency_key` and `retry_group_id` name the pseudonym;
          `variables` are emptied. Kept: `attempt`, `outcome`, `started_at`, `ended_at`,
          `dialed`, `message_left`, `call_id` (the provider's id: what to quote to the provider
          to erase its own record), `recorded_at`: every statistic of the report.
        - `suppression`: an opt-out or DND entry stays, under the pseudonym (a keyed hash: the
          number cannot be read back, the dial gate still matches it); `reason`, `campaign_id`
          and `created_at` stay.
        - `dial_intents`, `simulated_dials`: `idempotency_key` and `phone` name the pseudonym;
          counts and times stay (the exactly-once evidence).
        - `provider_calls`: `idempotency_key` names the pseudonym; `answer_twiml` and
          `voicemail_twiml` (rendered with the person's variables) are erased; the status,
          outcome, duration and `call_sid` stay. `provider_callbacks` hold no number.
        - `call_slots`, `call_line`, `dial_tickets`, `number_calls`: a `holder` (an idempotency
          key) names the pseudonym; `number_calls.number_key` (the number itself where the store
          had no key when the call was placed) becomes the pseudonym, so its calls still count.
        - `deferrals`: `phone` names the pseudonym; reasons, rules and times stay.

        Refused (`ForgetRefused`) while the number is queued or being called in a campaign (its
        workflow would write it back): opt it out or stop the campaign first. `NoPseudonymKey`
        without a key (REDIALER_PSEUDONYM_KEY).
        """
        if not phone.startswith("+") or not phone[1:].isdigit():
            raise ValueError(f"forget takes an E.164 number, not {phone!r}")
        pseudonym = self.pseudonyms.pseudonym(phone) if self.pseudonyms.has_key else None
        if pseudonym is None:
            raise NoPseudonymKey("forgetting a number (its opt-out is kept as a pseudonym)")
        number = re.compile(re.escape(phone) + r"(?!\d)")  # not a longer number's start
        recipients = CampaignRecipientRow.__table__.c  # type: ignore[attr-defined]
        records = CallRecordRow.__table__.c  # type: ignore[attr-defined]
        suppression = SuppressionRow.__table__.c  # type: ignore[attr-defined]
        with self.engine.begin() as connection:
            rows = connection.execute(
                sa_select(recipients.campaign_id, recipients.state, recipients.workflow_id).where(
                    recipients.phone == phone
                )
            ).all()
            active = sorted({r.campaign_id for r in rows if r.state != "final"})
            if active:
                raise ForgetRefused(
                    f"{phone} is still queued or being called in campaign(s) {', '.join(active)}:"
                    " opt it out (`redialer opt-out CAMPAIGN PHONE`) or stop the campaign, then"
                    " forget it once its recipient is final"
                )
            taken = connection.execute(
                sa_select(recipients.campaign_id).where(
                    recipients.phone == pseudonym,
                    recipients.campaign_id.in_([r.campaign_id for r in rows]),
                )
            ).all()
            if taken:
                raise ForgetRefused(
                    f"{phone} was forgotten before and added again to campaign(s)"
                    f" {', '.join(sorted(t.campaign_id for t in taken))}: its two rows there"
                    " would become one"
                )
            groups = connection.execute(
                sa_select(records.retry_group_id).distinct().where(records.phone == phone)
            ).scalars()
            workflow_ids = sorted({r.workflow_id for r in rows} | set(groups))
            calls = connection.execute(
                sa_select(records.call_id).where(
                    records.phone == phone, records.call_id.is_not(None)
                )
            ).scalars()
            call_ids = sorted(set(calls))
            connection.execute(
                update(CampaignRecipientRow)
                .where(recipients.phone == phone)
                .values({recipients.variables: {}, recipients["metadata"]: {}})
            )
            called = connection.execute(
                update(CallRecordRow).where(records.phone == phone).values({records.variables: {}})
            ).rowcount
            provider = ProviderCallRow.__table__.c  # type: ignore[attr-defined]
            connection.execute(
                update(ProviderCallRow)
                .where(provider.idempotency_key.contains(phone, autoescape=True))
                .values(answer_twiml=None, voicemail_twiml=None)
            )
            reason = connection.execute(
                sa_select(suppression.reason).where(suppression.phone == pseudonym)
            ).scalar()
            if reason is not None:  # forgotten before, opted out again since: one entry is enough
                connection.execute(
                    SuppressionRow.__table__.delete().where(  # type: ignore[attr-defined]
                        suppression.phone == phone
                    )
                )
            else:
                reason = connection.execute(
                    sa_select(suppression.reason).where(suppression.phone == phone)
                ).scalar()
            connection.execute(  # an operator's note may name the person; who and when stay
                update(SuppressionRow).where(suppression.phone == phone).values(note=None)
            )
            rewritten = sum(
                _rewrite(connection, table, column, phone, number, pseudonym)
                for table, column in _NAMING_THE_NUMBER
            )
        return ForgetResult(
            phone_key=pseudonym,
            recipients=len(rows),
            call_records=int(called or 0),
            suppressed=reason,
            rewritten=rewritten,
            workflow_ids=workflow_ids,
            call_ids=call_ids,
        )


class SuppressionKept(Exception):
    """`Store.remove_suppression` refused: the entry is a person's opt-out (`force` removes it)."""


def _suppression_source(reason: str, campaign_id: str | None) -> str:
    """Who added an entry when the caller did not say: a campaign's opt-out, or a call's end."""
    where = f"campaign {campaign_id}" if campaign_id is not None else "a single call"
    return f"opt_out:{where}" if reason == "opted_out" else f"call:{reason} {where}"


def _suppression_row(connection: Connection, keys: Sequence[str]) -> SuppressionRow | None:
    found = _suppression_rows(connection, keys)
    return found[0] if found else None


def _suppression_rows(connection: Connection, keys: Sequence[str]) -> list[SuppressionRow]:
    """The entries under any of `keys`, oldest first (the first reason is the one that holds)."""
    suppression = SuppressionRow.__table__.c  # type: ignore[attr-defined]
    rows = connection.execute(
        sa_select(suppression)
        .where(suppression.phone.in_(keys))
        .order_by(suppression.created_at, suppression.phone)
    ).all()
    return [SuppressionRow.model_validate(row._mapping) for row in rows]


class ForgetRefused(Exception):
    """`Store.forget` would leave the store inconsistent; the message says what to do first."""


@dataclass(frozen=True)
class ForgetResult:
    """What `Store.forget` changed, and what it cannot reach."""

    phone_key: str  # the pseudonym that now stands for the number
    recipients: int  # campaign recipients: number replaced, variables and metadata erased
    call_records: int  # attempts: number replaced, variables erased; outcomes and times kept
    suppressed: str | None  # the suppression kept under the pseudonym ("opted_out", "dnd")
    rewritten: int  # values (ids, keys, numbers) that named the number, across every table
    #: Temporal's workflows for the number, by the ids they were started with (an id holds the
    #: number itself where pseudonyms were off): they stay until the namespace's retention.
    workflow_ids: list[str]
    call_ids: list[str]  # the provider's call ids: its own records are for the provider to erase

    @property
    def found(self) -> bool:
        """The number was in the store (a suppression kept by an earlier `forget` is not)."""
        return bool(self.recipients or self.call_records or self.rewritten)


#: Every text column that may hold the number, alone or inside an id or idempotency key.
_NAMING_THE_NUMBER: list[tuple[type[SQLModel], str]] = [
    (CampaignRecipientRow, "phone"),
    (CampaignRecipientRow, "workflow_id"),
    (CallRecordRow, "phone"),
    (CallRecordRow, "idempotency_key"),
    (CallRecordRow, "retry_group_id"),
    (SuppressionRow, "phone"),
    (DialIntentRow, "idempotency_key"),
    (DialIntentRow, "phone"),
    (ProviderCallRow, "idempotency_key"),
    (SimulatedDialRow, "idempotency_key"),
    (SimulatedDialRow, "phone"),
    (CallSlotRow, "holder"),
    (CallLineRow, "holder"),
    (DialTicketRow, "holder"),
    (NumberCallRow, "holder"),
    (NumberCallRow, "number_key"),
    (DeferralRow, "phone"),
]


def _rewrite(
    connection: Connection,
    table: type[SQLModel],
    column: str,
    phone: str,
    number: re.Pattern[str],
    pseudonym: str,
) -> int:
    """Each distinct value of `column` naming the number, with the pseudonym in its place."""
    c = table.__table__.c[column]  # type: ignore[attr-defined]
    values = connection.execute(
        sa_select(c).distinct().where(c.contains(phone, autoescape=True))
    ).scalars()
    changed = 0
    for old in list(values):
        new = number.sub(pseudonym, old)
        if new != old:
            connection.execute(
                update(table.__table__).where(c == old).values({c: new})  # type: ignore[attr-defined]
            )
            changed += 1
    return changed


class QueuedRow(NamedTuple):
    """A queued recipient as its workflow needs it: the number, its resolved zone, its data."""

    phone: str
    zone: str
    variables: dict[str, Any]
    metadata: dict[str, Any]


class DialGate(NamedTuple):
    """What a dial reads before it may call (see `Store.dial_gate`)."""

    recorded: AttemptRecord | None
    campaign_state: str | None
    suppressed: str | None  # "opted_out" or "dnd"


def _call_record(
    key: str,
    campaign_id: str | None,
    phone: str,
    retry_group_id: str,
    record: AttemptRecord,
    variables: dict[str, Any],
) -> dict[str, Any]:
    return {
        "idempotency_key": key,
        "campaign_id": campaign_id,
        "phone": phone,
        "retry_group_id": retry_group_id,
        "attempt": record.attempt,
        "outcome": record.outcome.value,
        "started_at": record.started_at,
        "ended_at": record.ended_at,
        "call_id": record.call_id,
        "dialed": record.dialed,
        "message_left": record.message_left,
        "variables": variables,
        "recorded_at": utcnow(),
    }


def _final(status: str, attempts: int) -> dict[str, Any]:
    return {"state": "final", "status": status, "attempts": attempts, "updated_at": utcnow()}


def _recipient_update(campaign_id: str, phone: str, values: dict[str, Any]) -> Any:
    return (
        update(CampaignRecipientRow)
        .where(
            col(CampaignRecipientRow.campaign_id) == campaign_id,
            col(CampaignRecipientRow.phone) == phone,
        )
        .values(**values)
    )


def _campaign_state(connection: Connection, campaign_id: str) -> str | None:
    campaigns = CampaignRow.__table__.c  # type: ignore[attr-defined]
    return connection.execute(
        sa_select(campaigns.state).where(campaigns.campaign_id == campaign_id)
    ).scalar()


def _attempt(row: CallRecordRow) -> AttemptRecord:
    return AttemptRecord(
        attempt=row.attempt,
        outcome=Outcome(row.outcome),
        started_at=aware(row.started_at),
        ended_at=aware(row.ended_at),
        call_id=row.call_id,
        dialed=row.dialed,
        message_left=row.message_left,
    )
