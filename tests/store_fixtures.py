"""Store fixtures on both databases: a SQLite file (the embedded default) and PostgreSQL.

Imported by the store and dialer tests (tests/conftest.py already has a SQLite-only `store`).
PostgreSQL tests fail, not skip, when the server is down: CI has it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlmodel import SQLModel

from redialer.store.store import Store

#: The machine's PostgreSQL (trust auth): the `test` database, or one per pytest-xdist worker, so
#: tests running side by side never drop each other's tables.
SERVER_URL = "postgresql://postgres@127.0.0.1:5432"


def _database_for_this_process() -> str:
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker:
        return f"{SERVER_URL}/test"
    name = f"redialer_test_{worker}"
    admin = create_engine(f"{SERVER_URL}/test", isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            exists = connection.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
            ).first()
            if not exists:
                connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception:  # PostgreSQL down: the tests that need it fail, the others run
        return f"{SERVER_URL}/test"
    finally:
        admin.dispose()
    return f"{SERVER_URL}/{name}"


POSTGRES_URL = _database_for_this_process()

BOTH = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def drop_postgres_tables() -> None:
    store = Store(POSTGRES_URL)
    SQLModel.metadata.drop_all(store.engine)
    store.close()


@pytest.fixture(params=BOTH)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL with no tables yet: a fresh SQLite file, or PostgreSQL emptied before and after."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    drop_postgres_tables()
    yield POSTGRES_URL
    drop_postgres_tables()


@pytest.fixture
def db(database_url: str) -> Iterator[Store]:
    """An opened store on each database, its tables freshly created."""
    store = Store.open(database_url)
    yield store
    store.close()
