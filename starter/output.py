"""How the CLI talks to people: one console, errors on stderr, JSON when asked."""

from __future__ import annotations

import json
from typing import Any, NoReturn

import typer
from rich.console import Console

console = Console(highlight=False, soft_wrap=True)
errors = Console(stderr=True, highlight=False, soft_wrap=True)

#: Exit codes: 0 done, 1 the operation failed, 2 the input was refused.
EXIT_FAILED = 1
EXIT_INVALID = 2


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


def fail(message: str, *, code: int = EXIT_FAILED) -> NoReturn:
    errors.print(f"[red]error:[/red] {message}", markup=True, soft_wrap=True)
    raise typer.Exit(code)
