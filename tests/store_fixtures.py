"""Store fixtures on both databases: a SQLite file (the embedded default) and PostgreSQL.

Imported by the store and dialer tests (tests/conftest.py already has a SQLite-only `store`).
PostgreSQL tests fail, not skip, when the server is down: CI has it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import SQLModel

from redialer.store.store import Store

POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"

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
