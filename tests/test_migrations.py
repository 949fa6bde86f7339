"""Schema migrations on SQLite and PostgreSQL: a 0.1.0 store upgrades in place with every row (the
suppression list above all), an out-of-date store is refused by name, an empty one opens at
head, and head equals the models (a change to tables.py without a revision fails here).

PostgreSQL tests run in a schema of their own per database made (other tests share the `test`
database's public schema at the same time), dropped at the end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import BigInteger, Column, DateTime, Engine, Index, MetaData, UniqueConstraint
from sqlalchemy.orm import registry
from sqlmodel import JSON, Field, SQLModel
from typer.testing import CliRunner

from redialer.allowed_time import Deferral, DeferralReason
from redialer.frequency_caps import FrequencyCap
from redialer.outcomes import Outcome
from redialer.payloads import AttemptRecord
from redialer.store.migrations import INITIAL, VERSION_TABLE, SchemaOutOfDate
from redialer.store.migrations import schema as migrations
from redialer.store.store import Store, engine_for
from starter.cli import app
from tests import store_fixtures

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()


# ---- the schema of redialer 0.1.0, as its tables.py defined it (frozen: never edit) ------------


class V010(SQLModel, registry=registry()):
    """0.1.0's models, in a metadata of their own (the app's models live on and change)."""


def _when(**kwargs: Any) -> Any:
    # 0.1.0's UtcDateTime column, as the type it is stored as (its `impl`).
    return Field(sa_column=Column(DateTime(timezone=True), **kwargs))


class CallRecord010(V010, table=True):
    __tablename__ = "call_records"
    __table_args__ = (UniqueConstraint("idempotency_key"),)

    id: int | None = Field(default=None, primary_key=True)
    idempotency_key: str
    campaign_id: str | None = Field(default=None, index=True)
    phone: str = Field(index=True)
    retry_group_id: str = Field(index=True)
    attempt: int
    outcome: str
    started_at: datetime = _when(nullable=False)
    ended_at: datetime = _when(nullable=False)
    call_id: str | None = None
    dialed: bool = True
    variables: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    recorded_at: datetime = _when(nullable=False)


class CampaignRecipient010(V010, table=True):
    __tablename__ = "campaign_recipients"
    __table_args__ = (Index("ix_campaign_recipients_state", "campaign_id", "state", "seq"),)

    campaign_id: str = Field(primary_key=True)
    phone: str = Field(primary_key=True)
    workflow_id: str
    seq: int
    state: str = "queued"
    status: str | None = None
    attempts: int = 0
    timezone: str | None = None
    zone: str = "UTC"
    dialing_since: datetime | None = _when(nullable=True)
    variables: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    extra: dict[str, Any] = Field(default_factory=dict, sa_column=Column("metadata", JSON))
    updated_at: datetime = _when(nullable=False)


class Campaign010(V010, table=True):
    __tablename__ = "campaigns"

    campaign_id: str = Field(primary_key=True)
    state: str
    updated_at: datetime = _when(nullable=False)


class Suppression010(V010, table=True):
    __tablename__ = "suppression"

    phone: str = Field(primary_key=True)
    reason: str
    campaign_id: str | None = None
    created_at: datetime = _when(nullable=False)


class SimulatedDial010(V010, table=True):
    __tablename__ = "simulated_dials"

    idempotency_key: str = Field(primary_key=True)
    phone: str = Field(index=True)
    attempt: int
    placements: int = 1
    outcome: str | None = None
    call_id: str
    started_at: datetime = _when(nullable=False)
    ended_at: datetime | None = _when(nullable=True)
    claimed_at: datetime = _when(nullable=False)
    finished_at: datetime | None = _when(nullable=True)


class CallSlot010(V010, table=True):
    __tablename__ = "call_slots"

    campaign_id: str = Field(primary_key=True)
    slot: int = Field(primary_key=True)
    holder: str = Field(index=True)
    expires_at: datetime = _when(nullable=False)


class DialTicket010(V010, table=True):
    __tablename__ = "dial_tickets"

    campaign_id: str = Field(primary_key=True)
    window: int = Field(sa_column=Column(BigInteger, primary_key=True))
    ticket: int = Field(primary_key=True)
    holder: str


class CallLine010(V010, table=True):
    __tablename__ = "call_line"
    __table_args__ = (
        Index("ix_call_line_order", "campaign_id", "admitted_at", "seq"),
        Index("ix_call_line_seq", "campaign_id", "seq"),
    )

    campaign_id: str = Field(primary_key=True)
    holder: str = Field(primary_key=True)
    seq: int
    due_at: datetime = _when(nullable=False)
    admitted_at: datetime | None = _when(nullable=True)
    held_seconds: float | None = None


SCHEMA_0_1_0: MetaData = V010.metadata

T0 = datetime(2026, 1, 12, 15, 0, tzinfo=UTC)
SUPPRESSED = {
    "+16505550101": ("opted_out", "c1"),
    "+16505550102": ("dnd", "c1"),
    "+16505550103": ("opted_out", None),  # opted out of a standalone call
    "+14155550104": ("dnd", None),
}


def _call(n: int, phone: str, outcome: str, *, campaign: str | None = "c1") -> dict[str, Any]:
    return {  # no id: the database numbers them, as it did for 0.1.0
        "idempotency_key": f"{campaign}:{phone}:{n}",
        "campaign_id": campaign,
        "phone": phone,
        "retry_group_id": f"campaign/{campaign}/recipient/{phone}" if campaign else phone,
        "attempt": n,
        "outcome": outcome,
        "started_at": T0 + timedelta(hours=n),
        "ended_at": T0 + timedelta(hours=n, seconds=42),
        "call_id": f"call-{n}",
        "dialed": outcome != "dnd",
        "variables": {"name": "Ada", "n": n},
        "recorded_at": T0 + timedelta(hours=n, minutes=1),
    }


#: A row or more in every 0.1.0 table.
ROWS_0_1_0: dict[str, list[dict[str, Any]]] = {
    "call_records": [
        _call(1, "+16505550101", "no_answer"),
        _call(2, "+16505550101", "busy"),
        _call(3, "+16505550105", "completed"),
        _call(4, "+16505550103", "completed", campaign=None),
    ],
    "campaign_recipients": [
        {
            "campaign_id": "c1",
            "phone": phone,
            "workflow_id": f"campaign/c1/recipient/{phone}",
            "seq": seq,
            "state": state,
            "status": status,
            "attempts": attempts,
            "timezone": "America/Los_Angeles" if seq == 1 else None,
            "zone": "America/Los_Angeles",
            "dialing_since": None,
            "variables": {"name": "Ada"},
            "metadata": {"crm": seq},
            "updated_at": T0,
        }
        for seq, phone, state, status, attempts in [
            (1, "+16505550101", "final", "opted_out", 2),
            (2, "+16505550105", "final", "completed", 1),
            (3, "+16505550106", "queued", None, 0),
        ]
    ],
    "campaigns": [{"campaign_id": "c1", "state": "paused", "updated_at": T0}],
    "suppression": [
        {"phone": phone, "reason": reason, "campaign_id": campaign, "created_at": T0}
        for phone, (reason, campaign) in SUPPRESSED.items()
    ],
    "simulated_dials": [
        {
            "idempotency_key": "c1:+16505550105:3",
            "phone": "+16505550105",
            "attempt": 3,
            "placements": 1,
            "outcome": "completed",
            "call_id": "call-3",
            "started_at": T0,
            "ended_at": T0 + timedelta(seconds=42),
            "claimed_at": T0,
            "finished_at": T0 + timedelta(seconds=43),
        }
    ],
    "call_slots": [
        {"campaign_id": "c1", "slot": 0, "holder": "c1:+16505550106:1", "expires_at": T0}
    ],
    "dial_tickets": [  # a window past 32 bits: the column is BIGINT
        {"campaign_id": "c1", "window": 2**40 + 7, "ticket": 0, "holder": "c1:+16505550106:1"}
    ],
    "call_line": [
        {
            "campaign_id": "c1",
            "holder": "c1:+16505550106:1",
            "seq": 1,
            "due_at": T0,
            "admitted_at": None,
            "held_seconds": 12.5,
        }
    ],
}


# ---- databases ---------------------------------------------------------------------------------


@pytest.fixture(params=store_fixtures.BOTH)
def new_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], str]]:
    """Makes empty databases: SQLite files, or PostgreSQL schemas of their own."""
    admin = engine_for(store_fixtures.POSTGRES_URL) if request.param == "postgres" else None
    schemas: list[str] = []

    def make() -> str:
        if admin is None:
            return f"sqlite:///{tmp_path / f'store{uuid.uuid4().hex[:8]}.db'}"
        name = f"redialer_migrations_{uuid.uuid4().hex[:12]}"
        with admin.begin() as connection:
            connection.exec_driver_sql(f'CREATE SCHEMA "{name}"')
        schemas.append(name)
        return f"{store_fixtures.POSTGRES_URL}?options=-csearch_path%3D{name}"

    yield make
    if admin is not None:
        with admin.begin() as connection:
            for name in schemas:
                connection.exec_driver_sql(f'DROP SCHEMA "{name}" CASCADE')
        admin.dispose()


@pytest.fixture
def database_url(new_database: Callable[[], str]) -> str:
    return new_database()


def with_engine(url: str, work: Callable[[Engine], Any]) -> Any:
    engine = engine_for(url)
    try:
        return work(engine)
    finally:
        engine.dispose()


def make_0_1_0_store(url: str) -> None:
    """What redialer 0.1.0 left: its tables by `create_all`, with rows, and no alembic_version."""

    def fill(engine: Engine) -> None:
        SCHEMA_0_1_0.create_all(engine)
        with engine.begin() as connection:
            for name, rows in ROWS_0_1_0.items():
                connection.execute(SCHEMA_0_1_0.tables[name].insert(), rows)

    with_engine(url, fill)


def migrate(url: str, revision: str) -> None:
    def run(engine: Engine) -> None:
        with migrations.exclusive(engine) as connection:
            command.upgrade(migrations.alembic_config(connection), revision)

    with_engine(url, run)


def revision_of(url: str) -> str | None:
    return with_engine(url, lambda engine: migrations.current(engine).revision)


def differences(url: str, metadata: MetaData) -> list[Any]:
    """What alembic's autogenerate finds between the database and the models (none is equal)."""

    def compare(engine: Engine) -> list[Any]:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return list(compare_metadata(context, metadata))

    return with_engine(url, compare)


def reflected(url: str) -> dict[str, Any]:
    """Every table's columns (type, nullability), primary key, indexes and unique constraints,
    as the database reports them: what `compare_metadata` does not look at (primary keys)."""

    def read(engine: Engine) -> dict[str, Any]:
        inspector = sqlalchemy.inspect(engine)
        return {
            table: {
                "columns": sorted(  # an added column comes last: order does not matter
                    (c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)
                ),
                "primary_key": inspector.get_pk_constraint(table)["constrained_columns"],
                "indexes": sorted(
                    (i["name"], tuple(i["column_names"]), bool(i["unique"]))
                    for i in inspector.get_indexes(table)
                ),
                "unique": sorted(
                    tuple(u["column_names"]) for u in inspector.get_unique_constraints(table)
                ),
            }
            for table in sorted(inspector.get_table_names())
            if table != VERSION_TABLE
        }

    return with_engine(url, read)


def in_order(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda row: json.dumps(row, sort_keys=True, default=str))


def rows_in(url: str, metadata: MetaData) -> dict[str, list[dict[str, Any]]]:
    """Every row of the given tables, times as aware UTC (SQLite hands them back naive)."""

    def utc(value: Any) -> Any:
        if isinstance(value, datetime) and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC) if isinstance(value, datetime) else value

    def read(engine: Engine) -> dict[str, list[dict[str, Any]]]:
        with engine.connect() as connection:
            return {
                name: in_order(
                    {k: utc(v) for k, v in row._mapping.items()}
                    for row in connection.execute(table.select())
                )
                for name, table in metadata.tables.items()
            }

    return with_engine(url, read)


def db(*args: str) -> Any:
    return runner.invoke(app, ["db", *args])


# ---- upgrading a store made before migrations ---------------------------------------------------


def test_a_0_1_0_store_upgrades_in_place_keeping_every_row(database_url: str):
    """`redialer db upgrade` takes a 0.1.0 store as 0001, upgrades it, and every row is there."""
    make_0_1_0_store(database_url)
    with pytest.raises(SchemaOutOfDate):
        Store.open(database_url).close()

    result = db("upgrade", "--database-url", database_url)
    assert result.exit_code == 0, result.output
    head = migrations.head()
    moved = "already at head (0001)" if head == INITIAL else f"upgraded from 0001 to {head}"
    assert result.stdout.strip() == (
        f"recognised a redialer 0.1.0 store (tables, no revision) as 0001 and recorded it; {moved}"
    )
    assert revision_of(database_url) == head

    store = Store.open(database_url)
    try:
        for phone, (reason, _) in SUPPRESSED.items():
            assert store.suppression_reason(phone) == reason
            gate = store.dial_gate(f"c1:{phone}:9", campaign_id="c1", phone=phone)
            assert gate.suppressed == reason and gate.campaign_state == "paused"
        assert store.suppression_reason("+16505550105") is None
        assert [
            (r.phone, r.attempt, r.outcome, r.started_at) for r in store.call_records("c1")
        ] == [
            (c["phone"], c["attempt"], c["outcome"], c["started_at"])
            for c in ROWS_0_1_0["call_records"][:3]
        ]
        (standalone,) = store.attempts_for("+16505550103")
        assert standalone.outcome == "completed" and standalone.call_id == "call-4"
        assert store.recipient_counts("c1") == {
            "final:opted_out": 1,
            "final:completed": 1,
            "queued": 1,
        }
        # Written after the upgrade (+16505550199): a suppression, and a call numbered after
        # the old ones.
        store.suppress("+16505550199", "opted_out", "c2")
        assert store.suppression_reason("+16505550199") == "opted_out"
        new = AttemptRecord(
            attempt=1, outcome=Outcome.BUSY, started_at=T0, ended_at=T0, call_id="call-new"
        )
        store.finish_attempt(
            key="+16505550199:1",
            campaign_id=None,
            phone="+16505550199",
            retry_group_id="+16505550199",
            record=new,
            variables={},
        )
        assert store.attempts_for("+16505550199") == [new]
        # The tables revision 0006 added: the frequency cap's claims and deferral evidence.
        cap = FrequencyCap(calls=1, window=timedelta(hours=1))
        assert store.number_calls.claim("+16505550199", "+16505550199:1", cap, T0).granted
        assert not store.number_calls.claim("+16505550199", "c2:+16505550199:1", cap, T0).granted
        moved = Deferral(
            reason=DeferralReason.FREQUENCY_CAP, rule=cap.label(), moved_from=T0, moved_to=T0
        )
        store.note_next_attempt("c1", "+16505550106", T0, attempt=1, deferred=[moved])
        assert store.deferral_counts("c1") == [("frequency_cap", cap.label(), 1, 1)]
    finally:
        store.close()

    kept = {
        name: in_order(
            {column: value for column, value in row.items() if column != "id"}
            for row in rows
            if row.get("phone") != "+16505550199"
        )
        for name, rows in rows_in(database_url, SCHEMA_0_1_0).items()
    }
    assert kept == {name: in_order(rows) for name, rows in ROWS_0_1_0.items()}

    again = db("upgrade", "--database-url", database_url)
    assert again.exit_code == 0 and again.stdout.strip() == f"already at head ({head})"
    assert db("current", "--database-url", database_url).stdout.strip() == f"{head} (head)"


def test_every_older_revision_is_refused_then_upgraded(new_database: Callable[[], str]):
    """A store at any revision before head (or none: 0.1.0) is refused naming both revisions and
    `redialer db upgrade`, which then upgrades it to head."""
    head = migrations.head()
    for older in [None, *migrations.revisions()[:-1]]:
        url = new_database()
        if older is None:
            make_0_1_0_store(url)
        else:
            migrate(url, older)
        with pytest.raises(SchemaOutOfDate) as refused:
            Store.open(url)
        message = str(refused.value)
        assert refused.value.current == older and refused.value.required == head
        assert f"needs revision {head}" in message
        assert f"run `redialer db upgrade --database-url {url}`" in message.replace("'", "")
        assert (f"at schema revision {older}" if older else "no schema revision") in message
        result = db("upgrade", "--database-url", url)
        assert result.exit_code == 0, result.output
        assert f"upgraded from {older or INITIAL} to {head}" in result.stdout or head == (
            older or INITIAL
        )
        assert revision_of(url) == head
        Store.open(url).close()


def test_a_revision_from_a_newer_redialer_is_refused_and_not_touched(database_url: str):
    """A store upgraded by a newer redialer: opening and upgrading both refuse, exit 2."""
    Store.open(database_url).close()

    def stamp_future(engine: Engine) -> None:
        with engine.begin() as connection:
            connection.exec_driver_sql(f"UPDATE {VERSION_TABLE} SET version_num = '9999'")

    with_engine(database_url, stamp_future)
    with pytest.raises(SchemaOutOfDate, match="revision 9999, which this redialer does not know"):
        Store.open(database_url)
    result = db("upgrade", "--database-url", database_url)
    assert result.exit_code == 2 and "does not know" in result.stderr
    assert revision_of(database_url) == "9999"


def test_the_cli_and_the_worker_refuse_an_old_store_in_one_line_exit_2(database_url: str):
    """`redialer report` and the worker exit 2 with one line naming `redialer db upgrade`."""
    make_0_1_0_store(database_url)
    env = {**os.environ, "REDIALER_DATABASE_URL": database_url, "REDIALER_LOG_FORMAT": "json"}
    commands = [  # `redialer` is starter.cli:main; run from this tree
        [sys.executable, "-c", "from starter.cli import main; main()", "report", "c1"],
        [sys.executable, str(ROOT / "worker.py")],
    ]
    for argv in commands:
        done = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert done.returncode == 2, (argv, done.stdout, done.stderr)
        # stderr: the worker's JSON log lines ("worker starting"), then the one line of refusal
        (line,) = [line for line in done.stderr.splitlines() if not line.startswith("{")]
        assert "has no schema revision (made by redialer 0.1.0: revision 0001)" in line
        assert f"this redialer needs revision {migrations.head()}: run `redialer db upgrade" in line
    assert revision_of(database_url) is None  # refused, not changed


# ---- a new store, and head against the models ---------------------------------------------------


def test_an_empty_database_opens_at_head_equal_to_the_models(new_database: Callable[[], str]):
    """Opening an empty database runs every revision; the result is what `create_all` of the
    models makes: same tables, columns, types, nullability, keys and indexes."""
    url = new_database()
    assert db("current", "--database-url", url).stdout.startswith("none (no redialer tables")
    Store.open(url).close()
    Store.open(url).close()  # at head: opens as it is
    assert revision_of(url) == migrations.head()
    assert differences(url, SQLModel.metadata) == []
    made = new_database()
    with_engine(made, SQLModel.metadata.create_all)
    assert reflected(url) == reflected(made)


def test_revision_0001_is_the_0_1_0_schema(new_database: Callable[[], str]):
    """Revision 0001 makes exactly what 0.1.0's `create_all` made."""
    url = new_database()
    migrate(url, INITIAL)
    assert differences(url, SCHEMA_0_1_0) == []
    made = new_database()
    with_engine(made, SCHEMA_0_1_0.create_all)
    assert reflected(url) == reflected(made)


def test_tables_dropped_behind_alembics_back_are_made_again(database_url: str):
    """A database whose tables were dropped but not its revision (tests do it) counts as empty."""
    Store.open(database_url).close()
    with_engine(database_url, SQLModel.metadata.drop_all)
    Store.open(database_url).close()
    assert revision_of(database_url) == migrations.head()
    assert differences(database_url, SQLModel.metadata) == []


def test_workers_opening_an_empty_database_together_make_it_once(database_url: str):
    """Processes starting together on an empty database: each open succeeds, one revision row."""
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def open_one() -> None:
        barrier.wait()
        try:
            Store.open(database_url).close()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []

    def versions(engine: Engine) -> list[Any]:
        with engine.connect() as connection:
            return list(connection.exec_driver_sql(f"SELECT version_num FROM {VERSION_TABLE}"))

    assert [row[0] for row in with_engine(database_url, versions)] == [migrations.head()]
