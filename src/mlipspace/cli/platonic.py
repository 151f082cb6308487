"""``mlipspace platonic``: the common anchor space of all models and its analyses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from .app import app, console, out


@app.command("platonic")
def platonic_command(
    store: Annotated[Path, typer.Option(help="Feature store.")],
    models: Annotated[str, typer.Option(help="Comma-separated models.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("platonic"),
    structures: Annotated[
        list[str] | None,
        typer.Option(help="Structure files (for coordination numbers and embedding arithmetic)."),
    ] = None,
    layer: Annotated[
        str, typer.Option(help="Layer projected (the embedding of Li & Walsh: node).")
    ] = "node",
    anchors: Annotated[int, typer.Option(help="Number of anchor atoms.")] = 256,
    anchor_model: Annotated[
        str, typer.Option(help="Model whose features choose the anchors.")
    ] = "soap",
    method: Annotated[
        str, typer.Option(help="Anchor selection: direct, fps, kmeans, random.")
    ] = "direct",
    center: Annotated[
        str,
        typer.Option(
            help="Origin of the cosines: data (each model's mean), anchors (the anchors' "
            "mean) or none."
        ),
    ] = "data",
    standardize: Annotated[
        bool, typer.Option(help="Standardise each model's projected coordinates.")
    ] = True,
    n_atoms: Annotated[
        int, typer.Option("--atoms", help="Atoms sampled for agreement and retrieval.")
    ] = 2000,
    ot_atoms: Annotated[int, typer.Option(help="Atoms sampled for optimal transport.")] = 500,
    pca_models: Annotated[
        str | None,
        typer.Option(help="Comma-separated models of the PCA maps (default: first three trained)."),
    ] = None,
    pca_atoms: Annotated[int, typer.Option(help="Atoms subsampled for the PCA maps.")] = 3000,
    random_state: Annotated[
        int,
        typer.Option(
            "--random-state", "--seed", help="Seed of anchors and samples (--seed is the old name)."
        ),
    ] = 0,
    diagnostics: Annotated[
        bool,
        typer.Option(
            help="Also run the failure diagnostics (symmetry, mirror, relaxation, phonons) "
            "with the models on --structures."
        ),
    ] = False,
) -> None:
    """Project every model on shared anchors; agreement, OT, arithmetic, stitching, bias, atypicality."""
    from ..diagnostics.run import diagnose_store
    from ..platonic import run_platonic
    from ..results import PlatonicFiles
    from ..store import FeatureStore
    from ..structures import read_structures

    fs = FeatureStore(store, mode="r")
    atoms = read_structures(*structures, deduplicate=False) if structures else None
    names = [m.strip() for m in models.split(",") if m.strip()]
    space = dict(
        layer=layer,
        n_anchors=anchors,
        anchor_model=anchor_model,
        method=method,
        center=center,
        standardize=standardize,
    )
    with console.status("platonic") as status:
        diagnosed = None
        if diagnostics and atoms is not None:
            diagnosed = diagnose_store(
                fs,
                names,
                atoms,
                PlatonicFiles(out_dir).diagnostics.folder,
                space=space,
                random_state=random_state,
                progress=lambda text: status.update(text),
            )
        summary = run_platonic(
            fs,
            names,
            out_dir,
            structures=atoms,
            n_atoms=n_atoms,
            ot_atoms=ot_atoms,
            random_state=random_state,
            progress=lambda text: status.update(f"platonic: {text}"),
            diagnostics_summary=diagnosed,
            pca_models=[m.strip() for m in pca_models.split(",") if m.strip()]
            if pca_models
            else None,
            pca_atoms=pca_atoms,
            **space,
        )
    out.print_json(json.dumps(summary, default=float))
    console.print(f"tables and figures written to {out_dir}")
