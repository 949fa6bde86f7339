"""The `redialer` command: check, plan, run and inspect call campaigns."""

from __future__ import annotations

import typer

from starter import spec_commands

app = typer.Typer(
    name="redialer",
    no_args_is_help=True,
    add_completion=False,
    help="Durable outbound call campaigns on Temporal.",
)
app.command()(spec_commands.validate)
app.command()(spec_commands.plan)


def main() -> None:
    app()
