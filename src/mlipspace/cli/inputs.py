"""What every command does with its inputs before any work: read the structures (with the
same ``--skip-bad`` choice everywhere) and check model and layer names before any model
loads or any store is created."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

import typer
from rich.markup import escape

from ..errors import ParameterError, StructureError
from .app import console

#: the ``--skip-bad/--strict`` option of every command that reads structures
SKIP_BAD_HELP = (
    "Skip unreadable files and bad structures, listing each with its reason (--strict stops "
    "at the first). Files of folders and globs that are not structures (.txt, .csv, .png, "
    ".py...) are always skipped and listed."
)

#: give it a default: ``False`` for commands that compute, ``True`` for ``structures``
SkipBadOption = Annotated[bool, typer.Option("--skip-bad/--strict", help=SKIP_BAD_HELP)]


def read_input(
    paths: Sequence[str],
    skip_bad: bool,
    deduplicate: bool = True,
    random_state: int = 0,
):
    """Read structures as every command does, saying what was ignored or skipped.

    Raises
    ------
    StructureError
        With ``skip_bad`` false, the first bad file or structure; the message says how
        to skip them instead.
    """
    from ..structures import read_structures

    try:
        result = read_structures(
            *paths,
            on_error="skip" if skip_bad else "raise",
            deduplicate=deduplicate,
            random_state=random_state,
        )
    except StructureError as exc:
        exc.args = (f"{exc}\n(--skip-bad skips bad files and structures and lists them)",)
        raise
    report = result.report
    for path, reason in report.ignored:
        console.print(f"[dim]ignored {escape(path)}: {reason}[/]")
    for error in report.errors:
        console.print(f"[yellow]skipped:[/] {escape(str(error))}")
    if not result:
        raise ParameterError(
            f"no structure in {', '.join(map(str, paths))}"
            + (f" ({len(report.errors)} problems listed above)" if report.errors else "")
        )
    return result


def split_names(text: str | None) -> list[str]:
    """``"a, b,c"`` → ``["a", "b", "c"]``."""
    return [item.strip() for item in (text or "").split(",") if item.strip()]


def check_names(models: Sequence[str], layers: Sequence[str] = ()) -> None:
    """Stop with every unknown model and layer at once (with "did you mean"), before any
    model loads or any store is created."""
    from ..studyfile import check_model_names

    if not models:
        raise ParameterError("give at least one model (`mlipspace models` lists them)")
    problems = check_model_names(models, layers)
    if problems:
        raise ParameterError("; ".join(problems))


def check_stored(fs: Any, models: Sequence[str], layer: str, store: Any) -> None:
    """Stop, before any analysis, with every model whose ``layer`` the store lacks."""
    from ..errors import StoreError
    from ..studyfile import check_stored_names

    if not models:
        raise ParameterError(f"give at least one model (`mlipspace store info {store}` lists them)")
    problems = check_stored_names(fs.entries(), models, layer, str(store))
    if problems:
        raise StoreError("; ".join(problems))
