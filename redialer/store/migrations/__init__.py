"""The store's schema, one Alembic revision per change (revisions live in `versions/`).

A new store is made by running every revision (`Store.open` on an empty database), an existing
one is changed only by `redialer db upgrade`, in one transaction, keeping its rows. `Store.open`
refuses a store at any other revision than this code's head (`SchemaOutOfDate`): code must never
write to tables it does not match. A store made by redialer 0.1.0, before migrations (tables, no
`alembic_version`), is revision 0001.

Adding a revision (every change to `redialer/store/tables.py` needs one; `tests/test_migrations.py`
fails while the models and the revisions' head differ):

1. Change the models in `redialer/store/tables.py`.
2. Generate the revision against a scratch database at the current head:

       .venv/bin/python -m redialer.store.migrations revision 0002 "dial ledger"

   It upgrades a temporary SQLite file to head, compares it with the models (alembic's
   autogenerate) and writes `versions/0002_dial_ledger.py` (add `--database-url URL` to compare
   against a PostgreSQL database at head instead). Revision ids are four digits, in order.
3. Review it by hand; autogenerate is a draft. Check that every change is there (it misses
   renames, which it sees as a drop and an add, so fix those, and changes to server defaults),
   that a new NOT NULL column on an existing table has a `server_default` (old rows need a
   value), that data moves are written (`op.execute`), that types are plain SQLAlchemy types
   (`sa.DateTime(timezone=True)`, `sa.String()`: never imports from redialer, whose code moves
   on), and that `downgrade()` undoes `upgrade()`. Changes to existing tables go through
   `with op.batch_alter_table(...)` so they work on SQLite too.
4. Run `.venv/bin/pytest tests/test_migrations.py -q` (SQLite and PostgreSQL): the head must equal
   the models, a store at every older revision (and a 0.1.0 store, with rows in every table) must
   upgrade to it. When the revision moves or fills data, check that in the 0.1.0 upgrade test;
   never edit that test's copy of the 0.1.0 models, which is what 0.1.0 stores really have.

Users upgrade with `redialer db upgrade` (see `starter/db_commands.py`) and `redialer db current`.

This module stays light (the CLI imports it for the error it reports); the work is in `schema.py`.
"""

from __future__ import annotations

import shlex

#: The first revision: the schema of redialer 0.1.0.
INITIAL = "0001"
#: Alembic's table recording a database's revision.
VERSION_TABLE = "alembic_version"
#: The tables of redialer 0.1.0, the last release that made its schema with `create_all`: a
#: database with any of them and no revision is a 0.1.0 store, taken as revision 0001.
RELEASE_0_1_0_TABLES = frozenset(
    {
        "call_line",
        "call_records",
        "call_slots",
        "campaign_recipients",
        "campaigns",
        "dial_tickets",
        "simulated_dials",
        "suppression",
    }
)


def upgrade_command(url: str) -> str:
    return f"redialer db upgrade --database-url {shlex.quote(url)}"


class SchemaOutOfDate(RuntimeError):
    """The store is not at the schema revision this redialer works with: it is older (a 0.1.0
    store, or an earlier revision) and needs `redialer db upgrade`, or a newer redialer's."""

    def __init__(self, *, store: str, current: str | None, required: str, known: bool) -> None:
        self.store = store
        self.current = current
        self.required = required
        if not known:
            message = (
                f"the store {store} is at schema revision {current}, which this redialer does"
                f" not know (a newer redialer upgraded it, it needs {required}):"
                " run that newer redialer against it"
            )
        else:
            made = (
                f"is at schema revision {current}"
                if current is not None
                else f"has no schema revision (made by redialer 0.1.0: revision {INITIAL})"
            )
            message = (
                f"the store {store} {made}, this redialer needs revision {required}:"
                f" run `{upgrade_command(store)}`, then start again"
            )
        super().__init__(message)
