"""``mlipspace platonic``: every analysis of the common space, written as tables and figures."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd
from ase import Atoms

from ..errors import MetricInputError
from ..models import fine_tune_pairs
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
from .claims import robustness as robustness_table
from .space import CommonSpace, common_space_from_store, is_control, with_controls


def _long(df: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Pair table → tidy (source, target, measure, value) for the heatmap writer."""
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
    center: bool = False,
    n_atoms: int = 2000,
    ot_atoms: int = 1000,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
    diagnostics: dict[str, Any] | bool = False,
    robustness: bool = True,
) -> dict[str, Any]:
    """Build the common space of ``models`` and write every analysis under ``out``.

    ``diagnostics`` (True, or the keyword arguments of
    :func:`mlipspace.diagnostics.run.run_diagnostics`) also runs the failure diagnostics on
    ``structures`` into ``out/diagnostics``; they run the models again, so they are off by
    default; their model runs (worker processes) go on while the analyses run here.
    ``robustness`` recomputes the core agreement under other anchor settings (T10).
    The checks of the paper's claims (:mod:`.claims`) go to ``claims.csv`` and ``claims.md``.
    Returns a summary dictionary (also written as ``summary.json``).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    say = progress or (lambda text: None)
    say("anchors and projection")
    # the space holds the given structures only: a shared store may hold other studies too
    base = common_space_from_store(
        store,
        models,
        layer,
        n_anchors,
        anchor_model,
        anchor_layer,
        method,
        center,
        seed,
        structures=structures,
    )
    trained = [m for m in base.models if not is_control(m)]
    space = with_controls(base, shuffled=trained[:1], random_state=seed)
    base.anchor_ids.to_csv(out / "anchors.csv", index=False)

    # the diagnostics need only the space: their worker processes use the cores that the
    # mostly single-threaded analyses below leave idle
    background = ThreadPoolExecutor(1)
    diagnosed = None
    if diagnostics and structures is not None:
        from ..diagnostics.run import run_diagnostics

        options = diagnostics if isinstance(diagnostics, dict) else {}
        diagnosed = background.submit(
            run_diagnostics,
            base,
            structures,
            out / "diagnostics",
            seed=seed,
            progress=say,
            **options,
        )
    try:
        summary, tables = _analyses(
            base, space, trained, list(models), out, structures, n_atoms, ot_atoms, seed, say
        )
        robust = None
        if robustness:
            say("robustness to anchor settings")
            robust = robustness_table(base, n_atoms=min(n_atoms, 1000), random_state=seed)
            robust.to_csv(out / "robustness.csv", index=False)
        if diagnosed is not None:
            summary["diagnostics"] = diagnosed.result()
    finally:
        background.shutdown(wait=True)  # a failed analysis still lets the diagnostics end
    claims = evaluate_claims(
        space,
        *tables,
        summary["arithmetic"],
        summary["fine_tune"],
        summary.get("diagnostics"),
        robust,
    )
    claims.to_csv(out / "claims.csv", index=False)
    (out / "claims.md").write_text(claims_markdown(claims), encoding="utf-8")
    summary["claims"] = claims.to_dict(orient="records")
    (out / "summary.json").write_text(
        json.dumps(summary, indent=2, default=float), encoding="utf-8"
    )
    return summary


def _analyses(
    base: CommonSpace,
    space: CommonSpace,
    trained: list[str],
    models: list[str],
    out: Path,
    structures: Sequence[Atoms] | None,
    n_atoms: int,
    ot_atoms: int,
    seed: int,
    say: Callable[[str], None],
) -> tuple[dict[str, Any], tuple]:
    """Agreement, transport, bias, atypicality, fine-tuning, arithmetic and stitching: their
    files under ``out``. Returns the summary and the tables the claims check (agreement, OT
    pairs, W2, stitching, bias, atypical structures: :func:`evaluate_claims`'s order)."""
    from ..metrics.compare import write_comparison
    from ..transport import plot_dendrogram

    agreement = pair_agreement(space, n_atoms=n_atoms, random_state=seed, progress=say)
    agreement.to_csv(out / "agreement.csv", index=False)
    write_comparison(
        _long(
            agreement,
            ["cosine_mean", "top10", "top1_class", "top1_element", "raw_top10", "cka_z", "cka_raw"],
        ),
        out / "agreement",
        stem="agreement",
    )

    say("optimal transport")
    ot_pairs, w2 = transport_agreement(space, n_atoms=ot_atoms, random_state=seed, progress=say)
    ot_pairs.to_csv(out / "transport.csv", index=False)
    w2.to_csv(out / "w2.csv")
    _dendrogram(w2, out / "w2_dendrogram.png", plot_dendrogram)  # controls included, for scale

    say("bias and atypicality")
    bias = bias_map(space)
    bias.to_csv(out / "bias_map.csv")
    _heatmap(bias, out / "bias_map.png", "1 − cos(z, consensus) per element")
    if len(trained) >= 2:
        atypical = atypical_structures(space)
        atypical.to_csv(out / "atypical_structures.csv", index=False)
        atypical_table = atypical
        most_atypical = atypical.head(10)[
            ["source", "subset", "elements", "dispersion_mean"]
        ].to_dict(orient="records")
    else:
        atypical_table = None
        most_atypical = {"skipped": "cross-model dispersion needs at least two trained models"}
    fine_tunes = [fine_tune_report(space, t, b) for t, b in fine_tune_pairs(list(space.Z))]

    labels = {"element_group": element_group(space.atoms.numbers)}
    arithmetic_summary = None
    if structures is not None:
        labels["coordination"] = atom_coordination(space, structures)
        say("embedding arithmetic")
        try:
            accuracy, parallel = embedding_arithmetic(base, structures)
        except MetricInputError as exc:  # reported; the other analyses still stand
            arithmetic_summary = {"skipped": str(exc)}
        else:
            accuracy.to_csv(out / "arithmetic.csv", index=False)
            parallel.to_csv(out / "arithmetic_parallel.csv", index=False)
            arithmetic_summary = {
                "top1_mean": float(accuracy["top1"].mean()),
                "baseline_top1_mean": float(accuracy["baseline_top1"].mean()),
                "delta_cosine_mean": float(parallel["delta_cosine"].mean())
                if len(parallel)
                else None,
            }
    say("zero-shot stitching")
    stitched = stitching(
        space, labels, n_atoms=min(3 * n_atoms // 2, len(space.atoms)), random_state=seed
    )
    stitched.to_csv(out / "stitching.csv", index=False)

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
    }
    return summary, (agreement, ot_pairs, w2, stitched, bias, atypical_table)


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


def _heatmap(table: pd.DataFrame, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.5 + 0.6 * table.shape[1], 1.5 + 0.18 * table.shape[0]))
    im = ax.imshow(table.to_numpy(dtype=float), aspect="auto", cmap="magma")
    ax.set_xticks(range(table.shape[1]), table.columns, rotation=45, ha="right")
    ax.set_yticks(range(table.shape[0]), table.index, fontsize=6)
    ax.set_title(title)
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    fig.savefig(path.with_suffix(".svg"))
    plt.close(fig)


def _dendrogram(w2: pd.DataFrame, path: Path, plot: Callable) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    plot(w2, ax=ax)
    ax.set_title("W2 distance between models in the common space")
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    fig.savefig(path.with_suffix(".svg"))
    plt.close(fig)


__all__ = ["CommonSpace", "run_platonic"]
