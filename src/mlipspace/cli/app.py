"""The typer application all command modules attach to."""

from __future__ import annotations

import typer
from rich.console import Console

app = typer.Typer(
    name="mlipspace",
    help="Compare and unify the latent spaces of universal machine-learning interatomic potentials.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
#: messages and progress go to stderr; results (tables) to stdout, so they can be piped
console = Console(stderr=True)
out = Console()
