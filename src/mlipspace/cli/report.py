"""``mlipspace report``: the self-contained HTML report of a results folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .app import app, console


@app.command("report")
def report_command(
    results: Annotated[
        Path,
        typer.Argument(
            help="Results folder (as written by `mlipspace run` or `mlipspace demo`, or the "
            "folder whose compare/, cumulants/ and platonic/ the commands wrote)."
        ),
    ],
    out_path: Annotated[
        Path | None,
        typer.Option("--out", help="HTML file to write (default: RESULTS/report.html)."),
    ] = None,
    store: Annotated[
        Path | None,
        typer.Option(help="Feature store, when it is not RESULTS/store.zarr."),
    ] = None,
    structures: Annotated[
        list[str] | None,
        typer.Option(
            help="Structure files (as given to `featurize`), when RESULTS/structures.extxyz "
            "is absent; repeat for several."
        ),
    ] = None,
    chemiscope: Annotated[
        bool, typer.Option(help="Also write chemiscope.json.gz beside the report.")
    ] = True,
) -> None:
    """Write one offline HTML file with every result, static figures and a chemiscope file."""
    from ..report import build_report

    with console.status("report") as status:
        path = build_report(
            results,
            out_path,
            store=store,
            structures=structures,
            chemiscope=chemiscope,
            progress=lambda name: status.update(f"report: {name}"),
        )
    console.print(f"report written to {path}")
