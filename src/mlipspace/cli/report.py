"""``mlipspace report``: the self-contained HTML report of a results folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .app import app, console


@app.command("report")
def report_command(
    results: Annotated[
        Path, typer.Argument(help="Results folder (as written by `mlipspace demo`).")
    ],
    out_path: Annotated[
        Path | None,
        typer.Option("--out", help="HTML file to write (default: RESULTS/report.html)."),
    ] = None,
    models: Annotated[
        str | None,
        typer.Option(help="Comma-separated models of the PCA maps (default: first three)."),
    ] = None,
    max_atoms: Annotated[int, typer.Option(help="Atoms subsampled for the PCA maps.")] = 3000,
    seed: Annotated[int, typer.Option(help="Seed of the atom subsample.")] = 0,
    chemiscope: Annotated[
        bool, typer.Option(help="Also write chemiscope.json.gz beside the report.")
    ] = True,
) -> None:
    """Write one offline HTML file with every result, static figures and a chemiscope file."""
    from ..report import build_report

    pca_models = [m.strip() for m in models.split(",") if m.strip()] if models else None
    with console.status("report") as status:
        path = build_report(
            results,
            out_path,
            pca_models=pca_models,
            max_atoms=max_atoms,
            random_state=seed,
            chemiscope=chemiscope,
            progress=lambda name: status.update(f"report: {name}"),
        )
    console.print(f"report written to {path}")
