"""``mlipspace env``: build and list the per-family worker environments."""

from __future__ import annotations

import sys

import typer
from rich.table import Table

from .app import app, console

env_app = typer.Typer(
    help="Isolated environments for model families whose dependencies conflict (e.g. mace).",
    no_args_is_help=True,
)
app.add_typer(env_app, name="env")


@env_app.command("create")
def create(
    family: str = typer.Argument(
        ...,
        help="Environment or model family to build for, e.g. 'mace', 'orb', 'orb-pet-mattersim' "
        "(see `mlipspace env list` and `mlipspace models`).",
    ),
    force: bool = typer.Option(
        False, "--force", help="Delete and rebuild an existing environment."
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Print pip's output."),
) -> None:
    """Build the environment of FAMILY from its pinned file envs/<environment>.txt.

    FAMILY is an environment name or a model family (orb, pet, mattersim share the
    environment 'orb-pet-mattersim'): the family's model card names its environment."""
    from ..featurization import envs

    asked, family = family, envs.environment_of(family)
    if asked != family:
        console.print(f"{asked}: its models run in the {family!r} environment")
    requirements = envs.requirements_file(family)
    status = envs.env_status(family)
    if status.ready and not force:
        console.print(f"{family}: already ready at {status.path} (use --force to rebuild)")
        return
    console.print(
        f"building the {family!r} environment at {envs.env_path(family)} from {requirements}"
    )
    with console.status(f"[bold]pip install ({family})[/]") as spinner:

        def echo(line: str) -> None:
            if verbose:
                console.print(line, markup=False, highlight=False)
            elif line.startswith(("Collecting", "Installing", "Building", "Successfully")):
                spinner.update(f"[bold]{family}:[/] {line[:100]}")

        info = envs.create_env(family, force=force, echo=echo)
    console.print(f"[green]{family}: ready[/] at {info.path}")


@env_app.command("list")
def list_() -> None:
    """Show every family, where its environment lives, and whether it is ready."""
    from ..featurization import envs

    table = Table(title=f"model-family environments ({envs.env_root()})")
    for column in ("family", "path", "ready", "detail"):
        table.add_column(column)
    for info in envs.list_envs():
        ready, detail, path = info.ready, info.detail, str(info.path)
        if info.family == envs.MAIN_FAMILY:
            # main-family models run in the calling environment: that is what must match
            problems = envs.pin_mismatches(info.family)
            ready = not problems
            path = sys.prefix
            detail = "models run in this environment" + (
                f"; differs from the pins: {'; '.join(problems)}" if problems else ""
            )
            detail += f"; isolated copy at {info.path}: {info.detail}"
        mark = "[green]yes[/]" if ready else "[red]no[/]"
        table.add_row(info.family, path, mark, detail)
    console.print(table)
