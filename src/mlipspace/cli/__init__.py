"""Command-line interface: ``mlipspace --help``.

Each command lives in its own module under ``mlipspace.cli`` and attaches itself to
:data:`mlipspace.cli.app.app` on import; add new modules to ``COMMAND_MODULES``.
"""

from __future__ import annotations

import importlib
import sys
import warnings

from rich.markup import escape

from ..errors import MlipspaceError
from .app import app, console

COMMAND_MODULES = (
    "mlipspace.cli.core",
    "mlipspace.cli.models",
    "mlipspace.cli.compare",
    "mlipspace.cli.cumulants",
    "mlipspace.cli.platonic",
    "mlipspace.cli.env",
    "mlipspace.cli.report",
)


def _import_commands() -> None:
    for name in COMMAND_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:  # a real missing dependency inside the module
                raise


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``mlipspace`` command."""
    from ..workers import tune_allocator

    tune_allocator()  # models run in this process too (one worker, diagnostics)
    warnings.formatwarning = _plain_warning
    _import_commands()
    try:
        app(args=argv, standalone_mode=True)
    except MlipspaceError as exc:
        console.print(f"[bold red]error:[/] {escape(str(exc))}")
        sys.exit(2)
    except SystemExit as exc:
        # typer turns Ctrl-C into exit code 130 silently; say what was kept
        interrupt = _interrupt_behind(exc)
        if interrupt is not None:
            console.print("[bold yellow]interrupted.[/]")
            for note in getattr(interrupt, "__notes__", ()):
                console.print(f"[yellow]{note}[/]")
        raise


def _plain_warning(message, category, filename, lineno, line=None) -> str:
    """Warnings of a command as one line for its user, without the source line of the library."""
    return f"warning: {message}\n"


def _interrupt_behind(exc: BaseException) -> KeyboardInterrupt | None:
    """The KeyboardInterrupt an exception was raised from (directly or further back)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, KeyboardInterrupt):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


__all__ = ["app", "main"]
