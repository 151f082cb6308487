"""``mlipspace platonic``: every analysis of the common space, written as tables.

The analyses write data only; the figures are drawn from the tables by :mod:`mlipspace.report`
(:func:`mlipspace.report.plots.write_platonic_figures` beside them, and the report)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from ase import Atoms

from ..errors import MetricInputError
from ..results import PlatonicFiles
from .agreement import pair_agreement, transport_agreement
from .chemistry import (
    atom_coordination,
    atypical_structures,
    bias_map,
    element_group,
    embedding_arithmetic,
    fine_tune_report,
    stitching,
)
from .claims import claims_markdown, evaluate_claims
from .equivalence import orbit_labels
from .facts import fine_tune_pairs
from .maps import pca_maps
from .robustness import robustness as robustness_table
from .space import (
    DEFAULT_CENTER,
    DEFAULT_STANDARDIZE,
    CommonSpace,
    anchor_coverage,
    common_space_from_store,
    is_control,
    reprojected,
    subspace,
    with_controls,
)


def _long(df: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Pair table → tidy (source, target, measure, value), the form the heatmaps draw."""
    present = [c for c in columns if c in df]
    return df.melt(
        id_vars=["source", "target"], value_vars=present, var_name="measure", value_name="value"
    )


def run_platonic(
    store: Any,
    models: Sequence[str],
    out: str | Path,
    structures: Sequence[Atoms] | None = None,
    layer: str = "node",
    n_anchors: int = 256,
    anchor_model: str = "soap",
    anchor_layer: str | None = None,
    method: str = "direct",
    center: bool | str = DEFAULT_CENTER,
    n_atoms: int = 2000,
    ot_atoms: int = 500,
    random_state: int = 0,
    progress: Callable[[str], None] | None = None,
    diagnostics_summary: dict[str, Any] | None = None,
    robustness: bool = True,
    pca_models: Sequence[str] | None = None,
    pca_atoms: int = 3000,
    standardize: bool = DEFAULT_STANDARDIZE,
    anchor_input: str = "features",
) -> dict[str, Any]:
    """Build the common space of ``models`` and write every analysis under ``out``.

    ``store`` is a :class:`mlipspace.FeatureStore` or its path or URL. ``diagnostics_summary``
    (the summary of the diagnostics stage,
    :func:`mlipspace.diagnostics.run.run_diagnostics`, run first on the same space) is
    checked by the claims and kept in the summary. ``robustness`` recomputes the core
    agreement under other anchor settings (T10). The checks of the paper's claims
    (:mod:`.claims`) go to ``claims.csv`` and ``claims.md``; the PCA maps of ``pca_models``
    (default: the first three trained models) on ``pca_atoms`` atoms to ``pca_maps.csv``.
    ``center`` and ``standardize`` set the projection (:func:`~.space.project`); the
    agreement is also written for the uncentred, unscaled projection. ``anchor_input`` says
    what DIRECT selects anchors on (:func:`~.space.anchor_selection_features`); the anchors'
    subsets and elements against the population are written too. Transport and stitching
    are repeated on the ideal bulk crystals alone.
    File names: :class:`mlipspace.results.PlatonicFiles`. Returns a summary dictionary (also
    written as ``summary.json``).
    """
    files = PlatonicFiles(Path(out))
    files.folder.mkdir(parents=True, exist_ok=True)
    say = progress or (lambda text: None)
    say("anchors and projection")
    # the space holds the given structures only: a shared store may hold other studies too
    base = common_space_from_store(
        store,
        models,
        structures,
        layer=layer,
        n_anchors=n_anchors,
        anchor_model=anchor_model,
        anchor_layer=anchor_layer,
        method=method,
        center=center,
        random_state=random_state,
        standardize=standardize,
        anchor_input=anchor_input,
    )
    trained = [m for m in base.models if not is_control(m)]
    space = with_controls(base, shuffled=trained[:1], random_state=random_state)
    files.write_csv(base.anchor_ids, files.ANCHORS)
    files.write_csv(anchor_coverage(base), files.ANCHOR_COVERAGE)
    say("PCA maps")
    files.write_pca_maps(pca_maps(base, pca_models, pca_atoms, random_state=random_state))

    summary, tables, extra = _analyses(
        base, space, trained, list(models), files, structures, n_atoms, ot_atoms, random_state, say
    )
    robust = None
    if robustness:
        say("robustness to anchor settings")
        robust = robustness_table(base, n_atoms=min(n_atoms, 1000), random_state=random_state)
        files.write_csv(robust, files.ROBUSTNESS)
    if diagnostics_summary is not None:
        summary["diagnostics"] = diagnostics_summary
    claims = evaluate_claims(
        space,
        *tables,
        summary["arithmetic"],
        summary["fine_tune"],
        summary.get("diagnostics"),
        robust,
        **extra,
        random_state=random_state,
    )
    files.write_claims(claims, claims_markdown(claims))
    summary["claims"] = claims.to_dict(orient="records")
    files.write_summary(summary)
    return summary


def _analyses(
    base: CommonSpace,
    space: CommonSpace,
    trained: list[str],
    models: list[str],
    files: PlatonicFiles,
    structures: Sequence[Atoms] | None,
    n_atoms: int,
    ot_atoms: int,
    random_state: int,
    say: Callable[[str], None],
) -> tuple[dict[str, Any], tuple, dict[str, Any]]:
    """Agreement, transport, bias, atypicality, fine-tuning, arithmetic and stitching: their
    ``files``. Returns the summary, the tables the claims check (agreement, OT
    pairs, W2, stitching, bias, atypical structures: :func:`evaluate_claims`'s order) and
    the keyword tables (uncentred agreement, bulk-crystal transport and stitching)."""
    skipped: dict[str, str] = {}  # analysis → why it could not run on these data

    def skip(analysis: str, why: object) -> None:
        say(f"{analysis} skipped: {why}")
        skipped[analysis] = str(why)

    agreement = pair_agreement(space, n_atoms=n_atoms, random_state=random_state, progress=say)
    files.write_csv(agreement, files.AGREEMENT)
    # every agreement figure under the uncentred, unscaled projection too (the paper's
    # formula as far as it is known), on the same atoms
    say("agreement, uncentred projection")
    uncentred = pair_agreement(
        reprojected(space, "none", False),
        n_atoms=n_atoms,
        random_state=random_state,
        raw_baseline=False,
    )
    files.write_csv(uncentred, files.AGREEMENT_UNCENTRED)
    long = _long(
        agreement,
        ["cosine_mean", "top10", "top1_class", "top1_element", "raw_top10", "cka_z", "cka_raw"],
    )
    files.write_agreement_long(long)

    say("optimal transport")
    orbits = orbit_labels(space, structures) if structures is not None else None
    ot_pairs, w2 = transport_agreement(
        space, n_atoms=ot_atoms, random_state=random_state, progress=say, orbits=orbits
    )
    files.write_csv(ot_pairs, files.TRANSPORT)
    say("optimal transport, bulk crystals")
    try:
        ot_bulk, _ = transport_agreement(
            space,
            n_atoms=ot_atoms,
            random_state=random_state,
            rows=space.bulk_rows(),
            orbits=orbits,
        )
    except MetricInputError as exc:  # no bulk-crystal rows (a user's data): as for stitching
        skip("optimal transport on bulk crystals", exc)
        ot_bulk = None
    else:
        files.write_csv(ot_bulk, files.TRANSPORT_BULK)
    ot_uncentred = None
    if len(trained) >= 2:  # the same atoms, trained models, uncentred projection
        say("optimal transport, uncentred projection")
        ot_uncentred, _ = transport_agreement(
            reprojected(subspace(space, trained), "none", False),
            n_atoms=ot_atoms,
            random_state=random_state,
            orbits=orbits,
            raw_from=ot_pairs,
        )
        files.write_csv(ot_uncentred, files.TRANSPORT_UNCENTRED)
    files.write_csv(w2, files.W2, index=True)

    say("bias and atypicality")
    bias = bias_map(space)
    files.write_csv(bias, files.BIAS, index=True)
    if len(trained) >= 2:
        atypical = atypical_structures(space)
        files.write_csv(atypical, files.ATYPICAL)
        atypical_table = atypical
        most_atypical = atypical.head(10)[
            ["source", "subset", "elements", "dispersion_mean"]
        ].to_dict(orient="records")
    else:
        atypical_table = None
        most_atypical = {"skipped": "cross-model dispersion needs at least two trained models"}
        skip("atypical structures", most_atypical["skipped"])
    fine_tunes = [fine_tune_report(space, t, b) for t, b in fine_tune_pairs(trained)]

    labels = {"element_group": element_group(space.atoms.numbers)}
    arithmetic_summary = None
    if structures is not None:
        labels["coordination"] = atom_coordination(space, structures)
        say("embedding arithmetic")
        try:
            accuracy, parallel = embedding_arithmetic(base, structures)
        except MetricInputError as exc:  # reported; the other analyses still stand
            arithmetic_summary = {"skipped": str(exc)}
            skip("embedding arithmetic", exc)
        else:
            files.write_csv(accuracy, files.ARITHMETIC)
            files.write_csv(parallel, files.ARITHMETIC_PARALLEL)
            # embedding_arithmetic compares the trained models only: no control in any mean
            arithmetic_summary = {
                "top1_mean": float(accuracy["top1"].mean()),
                "baseline_top1_mean": float(accuracy["baseline_top1"].mean()),
                "delta_cosine_mean": float(parallel["delta_cosine"].mean())
                if len(parallel)
                else None,
            }
    say("zero-shot stitching")
    n_stitch = min(3 * n_atoms // 2, len(space.atoms))
    stitched = stitching(space, labels, n_atoms=n_stitch, random_state=random_state)
    files.write_csv(stitched, files.STITCHING)
    try:
        stitched_bulk = stitching(
            space, labels, n_atoms=n_stitch, random_state=random_state, rows=space.bulk_rows()
        )
    except MetricInputError as exc:  # too few bulk atoms or classes: reported in the claims
        skip("stitching on bulk crystals", exc)
        stitched_bulk = None
    else:
        files.write_csv(stitched_bulk, files.STITCHING_BULK)
    stitched_uncentred = stitching(
        reprojected(space, "none", False), labels, n_atoms=n_stitch, random_state=random_state
    )
    files.write_csv(stitched_uncentred, files.STITCHING_UNCENTRED)
    for where, table in (("", stitched), (" on bulk crystals", stitched_bulk)):
        for label, why in (table.attrs["skipped"] if table is not None else {}).items():
            skip(f"stitching of {label}{where}", why)  # a label these data cannot teach

    summary = {
        "settings": {
            **base.settings,
            "models": list(models),
            "n_atoms_agreement": int(agreement.attrs["n_atoms"]),
        },
        "trained_pairs": _pair_summary(agreement, trained),
        "controls": {
            name: _pair_summary(agreement, trained, against=name)
            for name in space.models
            if is_control(name)
        },
        "transport": {
            "emd_accuracy_trained_mean": float(
                ot_pairs[ot_pairs.source.isin(trained) & ot_pairs.target.isin(trained)][
                    "emd_accuracy"
                ].mean()
            ),
            "gw_raw_accuracy_trained_mean": float(
                ot_pairs[ot_pairs.source.isin(trained) & ot_pairs.target.isin(trained)][
                    "gw_raw_accuracy"
                ].mean()
            ),
        },
        "stitching": stitched[stitched.source.isin(trained) & stitched.target.isin(trained)]
        .groupby("label")[["zero_shot", "in_model", "raw", "chance"]]
        .mean()
        .to_dict(orient="index"),
        "arithmetic": arithmetic_summary,
        "fine_tune": fine_tunes,
        "most_atypical": most_atypical,
        "skipped": skipped,
    }
    extra = {
        "agreement_uncentred": uncentred,
        "ot_bulk": ot_bulk,
        "stitched_bulk": stitched_bulk,
        "ot_uncentred": ot_uncentred,
        "stitched_uncentred": stitched_uncentred,
    }
    summary["uncentred_pairs"] = _pair_summary(uncentred, trained)
    return summary, (agreement, ot_pairs, w2, stitched, bias, atypical_table), extra


def _pair_summary(
    agreement: pd.DataFrame, trained: list[str], against: str | None = None
) -> dict[str, float]:
    if against is None:
        sub = agreement[agreement.source.isin(trained) & agreement.target.isin(trained)]
    else:
        sub = agreement[agreement.source.isin(trained) & (agreement.target == against)]
    cols = [
        "cosine_mean",
        "top1",
        "top10",
        "top1_class",
        "top1_element",
        "raw_cosine_mean",
        "raw_top10",
        "cka_z",
        "cka_raw",
    ]
    return {c: float(sub[c].mean()) for c in cols if c in sub}


__all__ = ["CommonSpace", "run_platonic"]
