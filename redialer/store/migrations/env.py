"""Alembic's environment for the store, configured in code (no alembic.ini).

Always run on a connection handed in by `redialer.store.migrations.schema` (`Store.open`,
`redialer db`, `python -m redialer.store.migrations`), inside the transaction it holds: the
caller decides the locking and commits.
"""

from __future__ import annotations

from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlmodel import SQLModel
from sqlmodel.sql.sqltypes import AutoString

from redialer.store.tables import UtcDateTime


def render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    """Write redialer's column types as the plain types they are stored as: a revision must not
    import redialer's code, which keeps changing after the revision is written."""
    if type_ == "type" and isinstance(obj, UtcDateTime):
        return "sa.DateTime(timezone=True)"
    if type_ == "type" and isinstance(obj, AutoString):
        return f"sa.String(length={obj.length})" if obj.length else "sa.String()"
    return False


def run_migrations() -> None:
    if context.is_offline_mode():
        raise RuntimeError("redialer's migrations run against a database, not as SQL scripts")
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError(
            "redialer's migrations need a connection: run `redialer db upgrade`, or see"
            " redialer/store/migrations/__init__.py"
        )
    context.configure(
        connection=connection,
        target_metadata=SQLModel.metadata,
        render_as_batch=True,  # ALTERs as batch operations, which SQLite needs
        render_item=render_item,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
