"""`redialer db upgrade|current`: the store's schema revision, and upgrading it in place.

A worker or command refuses a store whose revision is not this redialer's (it says to run
`redialer db upgrade`); upgrading keeps every row, the suppression list above all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from redialer.settings import get_settings
from starter.output import EXIT_FAILED, EXIT_INVALID, console, fail

if TYPE_CHECKING:
    from sqlalchemy import Engine

app = typer.Typer(
    name="db",
    no_args_is_help=True,
    help="The store's schema: show its revision, upgrade it.",
)

DatabaseUrl = Annotated[
    str | None,
    typer.Option("--database-url", help="Store URL (default: REDIALER_DATABASE_URL)."),
]


def _engine(database_url: str | None) -> Engine:
    from redialer.store.store import engine_for

    return engine_for(database_url or get_settings().database_url)


def _first_line(exc: Exception) -> str:
    """The database's own words, without the SQL and the link SQLAlchemy appends."""
    return str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]


@app.command()
def upgrade(database_url: DatabaseUrl = None) -> None:
    """Upgrade the store to this redialer's schema, in one transaction, keeping every row.

    A store made by redialer 0.1.0 (before migrations) is recognised as revision 0001 first.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from redialer.store.migrations import SchemaOutOfDate
    from redialer.store.migrations.schema import upgrade as upgrade_schema

    engine = _engine(database_url)
    try:
        done = upgrade_schema(engine)
    except SchemaOutOfDate as exc:  # a newer redialer's revision: nothing to do here
        fail(str(exc), code=EXIT_INVALID)
    except SQLAlchemyError as exc:
        fail(f"upgrade failed, the store is unchanged: {_first_line(exc)}", code=EXIT_FAILED)
    finally:
        engine.dispose()
    console.print(str(done))


@app.command()
def current(database_url: DatabaseUrl = None) -> None:
    """Print the store's schema revision, and whether it is the one this redialer needs."""
    from sqlalchemy.exc import SQLAlchemyError

    from redialer.store.migrations import INITIAL
    from redialer.store.migrations.schema import current as current_state
    from redialer.store.migrations.schema import head, revisions

    engine = _engine(database_url)
    try:
        state = current_state(engine)
    except SQLAlchemyError as exc:
        fail(f"cannot read the store: {_first_line(exc)}", code=EXIT_FAILED)
    finally:
        engine.dispose()
    needed = head()
    if state.empty:
        console.print(f"none (no redialer tables: the first start makes revision {needed})")
    elif state.revision is None:
        console.print(
            f"none (a redialer 0.1.0 store: `redialer db upgrade` takes it as {INITIAL}"
            f" and upgrades it to {needed})"
        )
    elif state.revision == needed:
        console.print(f"{state.revision} (head)")
    elif state.revision in revisions():
        console.print(f"{state.revision} (this redialer needs {needed}: run `redialer db upgrade`)")
    else:
        console.print(f"{state.revision} (unknown to this redialer, which needs {needed})")
