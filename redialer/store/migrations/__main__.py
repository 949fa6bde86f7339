"""`python -m redialer.store.migrations revision 0002 "dial ledger"`: draft the next revision.

For developers (see this package's docstring): upgrades a scratch database to head, compares it
with the models and writes the difference as `versions/<id>_<slug>.py`, to review by hand.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
from pathlib import Path

from alembic import command
from alembic.config import Config

from redialer.store.migrations import schema
from redialer.store.store import engine_for


def draft_revision(*, rev_id: str, message: str, database_url: str | None = None) -> Path:
    """Autogenerate a revision against `database_url` (at head, or empty: it is upgraded
    first), by default a scratch SQLite file. Returns the new file's path."""
    if not re.fullmatch(r"\d{4}", rev_id):
        raise SystemExit(f"revision id {rev_id!r}: four digits, the next after {schema.head()}")
    with tempfile.TemporaryDirectory() as scratch:
        engine = engine_for(database_url or f"sqlite:///{Path(scratch) / 'head.db'}")
        try:
            schema.upgrade(engine)
            with schema.exclusive(engine) as connection:
                config = schema.alembic_config(connection)
                _format_with_ruff(config)
                script = command.revision(
                    config,
                    message=message,
                    autogenerate=True,
                    rev_id=rev_id,
                )
        finally:
            engine.dispose()
    if script is None or isinstance(script, list):
        raise SystemExit("alembic wrote no single revision")
    return Path(script.path)


def _format_with_ruff(config: Config) -> None:
    """Let the draft come out formatted as the project's code is (when ruff is installed)."""
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if ruff is None:
        return
    config.set_section_option("post_write_hooks", "hooks", "ruff")
    config.set_section_option("post_write_hooks", "ruff.type", "exec")
    config.set_section_option("post_write_hooks", "ruff.executable", ruff)
    config.set_section_option("post_write_hooks", "ruff.options", "format REVISION_SCRIPT_FILENAME")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m redialer.store.migrations")
    commands = parser.add_subparsers(dest="command", required=True)
    revision = commands.add_parser("revision", help="draft the next revision from the models")
    revision.add_argument("rev_id", help="four digits, the next after the head (e.g. 0002)")
    revision.add_argument("message", help="what it changes, a few words (the file's slug)")
    revision.add_argument(
        "--database-url", help="compare against this database (default: a scratch SQLite file)"
    )
    args = parser.parse_args()
    path = draft_revision(rev_id=args.rev_id, message=args.message, database_url=args.database_url)
    print(f"wrote {path}: review it by hand before committing (see {Path(__file__).parent})")


if __name__ == "__main__":
    main()
