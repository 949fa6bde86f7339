"""What `Store.open` and `redialer db` do with a database's schema, through Alembic.

Every change runs in one transaction that no other process's schema change runs beside: SQLite's
write lock (`BEGIN IMMEDIATE`), a PostgreSQL advisory lock. Workers starting together on an empty
database therefore create it once, the others wait and find it at head; a failed upgrade leaves
the store as it was (both databases roll DDL back).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect, text
from sqlmodel import SQLModel

from redialer.store import tables  # noqa: F401  # the models, in SQLModel.metadata
from redialer.store.migrations import INITIAL, RELEASE_0_1_0_TABLES, VERSION_TABLE, SchemaOutOfDate

HERE = Path(__file__).parent
#: The PostgreSQL advisory lock (one per database) every schema change holds.
LOCK_KEY = 0x7265_6469_616C  # "redial"


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's configuration in code: the revisions shipped in this package, and the
    connection (with its transaction) that env.py runs them on."""
    config = Config()
    config.set_main_option("script_location", str(HERE))
    config.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    config.attributes["connection"] = connection
    return config


@lru_cache(maxsize=1)
def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head() -> str:
    """The revision this code works with."""
    revision = _script().get_current_head()
    if revision is None:
        raise RuntimeError(f"no revisions in {HERE / 'versions'}")
    return revision


def revisions() -> list[str]:
    """Every revision, oldest first."""
    return [script.revision for script in reversed(list(_script().walk_revisions()))]


@dataclass(frozen=True)
class SchemaState:
    """A database's revision and which of redialer's tables it has."""

    revision: str | None
    tables: frozenset[str]

    @property
    def empty(self) -> bool:
        return not self.tables


def read_state(connection: Connection) -> SchemaState:
    present = set(inspect(connection).get_table_names())
    ours = present & (RELEASE_0_1_0_TABLES | set(SQLModel.metadata.tables))
    revision = MigrationContext.configure(connection).get_current_revision()
    return SchemaState(revision=revision, tables=frozenset(ours))


@contextmanager
def exclusive(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction holding the schema lock; committed when the block ends,
    rolled back if it raises."""
    with engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            # The write lock now (waiting up to the busy timeout), not at the first write: two
            # transactions that read first and then write would refuse each other.
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        elif connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
        yield connection
        connection.commit()


def open_schema(engine: Engine) -> None:
    """Make an empty database's schema (every revision, to head); accept a database at head;
    refuse any other (`SchemaOutOfDate`). A database at head is read without the lock."""
    with engine.connect() as connection:
        state = read_state(connection)
    if state.empty:
        with exclusive(engine) as connection:
            state = read_state(connection)  # another process may have made it meanwhile
            if state.empty:
                _create(connection)
                return
    if state.revision != head():
        raise _out_of_date(engine, state.revision)


def _create(connection: Connection) -> None:
    """Run every revision on a database without redialer's tables. A revision left behind by
    tables dropped without it (tests drop them so) is forgotten first."""
    if inspect(connection).has_table(VERSION_TABLE):
        connection.execute(text(f"DELETE FROM {VERSION_TABLE}"))
    command.upgrade(alembic_config(connection), "head")


def _out_of_date(engine: Engine, current: str | None) -> SchemaOutOfDate:
    url = engine.url
    if url.drivername == "postgresql+psycopg":  # as users write it (`engine_for` adds the driver)
        url = url.set(drivername="postgresql")
    return SchemaOutOfDate(
        store=url.render_as_string(hide_password=True),
        current=current,
        required=head(),
        known=current is None or current in revisions(),
    )


@dataclass(frozen=True)
class Upgraded:
    """What `upgrade` did: from which revision (None: an empty database) to which."""

    before: str | None
    after: str
    unversioned: bool = False  # a 0.1.0 store, recognised as INITIAL

    def __str__(self) -> str:
        if self.before is None:
            return f"created the schema at head ({self.after}) in an empty database"
        moved = (
            f"already at head ({self.after})"
            if self.before == self.after
            else f"upgraded from {self.before} to {self.after}"
        )
        if self.unversioned:
            return (
                f"recognised a redialer 0.1.0 store (tables, no revision) as {INITIAL}"
                f" and recorded it; {moved}"
            )
        return moved


def upgrade(engine: Engine) -> Upgraded:
    """Bring the store to head in one transaction, keeping every row. A 0.1.0 store is stamped
    INITIAL first (never recreated); a revision this code does not know is refused."""
    with exclusive(engine) as connection:
        state = read_state(connection)
        if state.empty:
            _create(connection)
            return Upgraded(before=None, after=head())
        config = alembic_config(connection)
        before = state.revision
        if before is None:
            command.stamp(config, INITIAL)
        elif before not in revisions():
            raise _out_of_date(engine, before)
        if (before or INITIAL) != head():
            command.upgrade(config, "head")
        return Upgraded(before=before or INITIAL, after=head(), unversioned=before is None)


def current(engine: Engine) -> SchemaState:
    with engine.connect() as connection:
        return read_state(connection)
