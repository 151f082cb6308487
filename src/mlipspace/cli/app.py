"""The typer application all command modules attach to."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

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

#: the ``--scheduler`` option of every command that can run on Dask
SchedulerOption = Annotated[
    str | None,
    typer.Option(
        "--scheduler",
        help="Run on Dask: local:N (N worker processes here) or a scheduler address.",
    ),
]


def random_state_option(what: str) -> object:
    """The ``--random-state`` option of a command (``--seed``: its old name), seeding ``what``."""
    return Annotated[
        int,
        typer.Option("--random-state", "--seed", help=f"Seed of {what} (--seed is the old name)."),
    ]


def progress_bars(**kwargs) -> Progress:
    """The progress display of long work: description, bar, done/total, elapsed (on stderr)."""
    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        **kwargs,
    )
