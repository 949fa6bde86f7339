"""The `redialer` command: check, plan, run and inspect call campaigns."""

from __future__ import annotations

import sys

import typer

from starter import campaign_commands as run
from starter import db_commands, spec_commands, suppress_commands
from starter import report_commands as insight

app = typer.Typer(
    name="redialer",
    no_args_is_help=True,
    add_completion=False,
    help="Durable outbound call campaigns on Temporal.",
)
app.command()(spec_commands.validate)
app.command()(spec_commands.plan)
app.command()(run.start)
app.command()(run.add)
app.command()(run.pause)
app.command()(run.resume)
app.command()(run.stop)
app.command("opt-out")(run.opt_out)
app.command()(run.progress)
app.command()(run.history)
app.command()(run.pseudonym)
app.command()(run.forget)
app.command()(run.worker)
app.command()(run.server)
app.command()(run.api)
app.command()(run.demo)
app.command()(insight.report)
app.command()(insight.export)
app.command()(insight.watch)
app.add_typer(db_commands.app, name="db")
app.add_typer(suppress_commands.app, name="suppress")


def main() -> None:
    from redialer.process_exit import exit_now
    from redialer.settings import SettingsError
    from redialer.store.migrations import SchemaOutOfDate

    try:
        app()
    except SettingsError as exc:  # raised before any command could act
        print("\n".join(exc.lines), file=sys.stderr)
        exit_now(2)
    except SchemaOutOfDate as exc:  # the store needs `redialer db upgrade` first
        print(exc, file=sys.stderr)
        exit_now(2)
    except SystemExit as exc:  # typer ends every command this way
        exit_now(exc.code)
    exit_now(0)
