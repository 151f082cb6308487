"""``mlipspace platonic``: the common anchor space of all models and its analyses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from .app import app, console, out, random_state_option
from .inputs import SkipBadOption, check_names, check_stored, read_input, split_names


@app.command(
    "platonic", context_settings={"allow_extra_args": True, "ignore_unknown_options": False}
)
def platonic_command(
    ctx: typer.Context,
    store: Annotated[Path, typer.Option(help="Feature store.")],
    models: Annotated[str, typer.Option(help="Comma-separated models.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("platonic"),
    structures: Annotated[
        list[str] | None,
        typer.Option(
            help="Structure files, folders, globs or demo:small/demo:default, as featurize "
            "takes them (--structures a.xyz b.cif ...): for coordination numbers, embedding "
            "arithmetic and the diagnostics."
        ),
    ] = None,
    layer: Annotated[
        str, typer.Option(help="Layer projected (the embedding of Li & Walsh: node).")
    ] = "node",
    anchors: Annotated[
        int, typer.Option(help="Number of anchor atoms (capped at the distinct atoms).")
    ] = 256,
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
    random_state: random_state_option("anchors and samples") = 0,
    diagnostics: Annotated[
        bool,
        typer.Option(
            help="Also run the failure diagnostics (symmetry, mirror, relaxation, phonons) "
            "with the models on --structures."
        ),
    ] = False,
    skip_bad: SkipBadOption = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the whole summary as JSON instead of a table.")
    ] = False,
) -> None:
    """Project every model on shared anchors; agreement, OT, arithmetic, stitching, bias, atypicality."""
    from ..diagnostics.run import diagnose_store
    from ..errors import ParameterError
    from ..platonic import run_platonic
    from ..report.plots import write_platonic_figures
    from ..results import PlatonicFiles
    from ..store import FeatureStore
    from ..study import capped_anchors, remove_stale_diagnostics

    sources = [*(structures or []), *ctx.args]
    if ctx.args and not structures:
        raise ParameterError(f"unexpected arguments {ctx.args}; structures go after --structures")
    names = split_names(models)
    if diagnostics and not sources:
        raise ParameterError("--diagnostics needs --structures (the diagnostics rerun the models)")
    fs = FeatureStore(store, mode="r")
    check_stored(fs, [*names, anchor_model], layer, store)
    if diagnostics:
        check_names(names)  # the diagnostics rerun the models: they must be registered
    atoms = read_input(sources, skip_bad, deduplicate=False) if sources else None
    say = console.print
    stale = remove_stale_diagnostics(PlatonicFiles(out_dir).diagnostics.folder, diagnostics)
    if stale:
        say(stale)
    n_anchors = capped_anchors(anchors, fs, anchor_model, layer, atoms, say)
    space = dict(
        layer=layer,
        n_anchors=n_anchors,
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
        status.update("platonic: figures")
        write_platonic_figures(PlatonicFiles(out_dir))
    if as_json:
        out.print_json(json.dumps(summary, default=float))
    else:
        print_summary(summary)
    console.print(f"tables and figures written to {out_dir} (summary.json holds every number)")


def print_summary(summary: dict[str, Any]) -> None:
    """The headline numbers of a Platonic run: agreement of trained pairs against controls,
    transport, arithmetic, claims."""
    columns = ("cosine_mean", "top1", "top10", "cka_z")
    table = Table(title="Platonic agreement (mean over model pairs)")
    table.add_column("pairs")
    for column in columns:
        table.add_column(column, justify="right")
    rows = {"trained models": summary.get("trained_pairs", {})}
    rows.update({f"vs {k}": v for k, v in summary.get("controls", {}).items()})
    for label, values in rows.items():
        table.add_row(label, *(_fmt(values.get(c)) for c in columns))
    out.print(table)
    if len(summary.get("settings", {}).get("models", [])) < 2:
        out.print("one trained model: the pair columns need two (give --models a,b)")
    transport = summary.get("transport", {})
    if transport:
        out.print(
            "optimal transport, trained pairs: EMD accuracy "
            f"{_fmt(transport.get('emd_accuracy_trained_mean'))}, GW accuracy "
            f"{_fmt(transport.get('gw_raw_accuracy_trained_mean'))}"
        )
    arithmetic = summary.get("arithmetic")
    if arithmetic:
        if "skipped" in arithmetic:
            out.print(f"embedding arithmetic skipped: {arithmetic['skipped']}")
        else:
            out.print(
                f"embedding arithmetic: top-1 {_fmt(arithmetic.get('top1_mean'))} "
                f"(baseline {_fmt(arithmetic.get('baseline_top1_mean'))})"
            )
    diagnostics = summary.get("diagnostics")
    if diagnostics:
        for note in diagnostics.get("notes", []):
            out.print(f"diagnostics: {note}")
    claims = summary.get("claims") or []
    if claims:
        words = {True: "hold", False: "do not hold", None: "undecided"}
        verdicts: dict[str, int] = {}
        for claim in claims:
            holds = claim.get("holds")
            verdict = words.get(holds if holds in (True, False) else None, "undecided")
            verdicts[verdict] = verdicts.get(verdict, 0) + 1
        out.print(
            f"claims of the paper checked: {len(claims)} ("
            + ", ".join(f"{v} {k}" for k, v in sorted(verdicts.items()))
            + "; claims.md)"
        )


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return "-" if number != number else f"{number:.3f}"
