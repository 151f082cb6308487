"""Sections of the common ("Platonic") space: PCA maps, agreement, transport, bias, atypical
structures, stitching and arithmetic, and the checks of the papers' claims."""

from __future__ import annotations

from html import escape

import pandas as pd

from ...results import PlatonicFiles
from ..context import ReportContext, absent_note, missing
from ..figures import image_tag, pair_matrix
from ..plots import pca_figure, pca_static, structure_figure
from ..template import Section, details, figure_block, table

#: how the claims' ``holds`` column reads in words
VERDICTS = {"True": "holds", "False": "does not hold", "": "undecided"}


def _platonic_missing(sec: Section, name: str) -> Section:
    return missing(sec, f"platonic/{name}", "platonic")


def pca(ctx: ReportContext) -> Section:
    sec = Section("pca", "PCA maps of raw and anchored spaces")
    data = ctx.results.platonic.pca_maps()
    if data is None:
        return missing(
            sec, f"platonic/{PlatonicFiles.PCA}", "platonic", "the maps of the common space"
        )
    ctx.seed("PCA maps", data.random_state)
    sec.lead(
        f"First two principal components of each model's raw <code>{escape(data.layer)}</code> "
        f"features (left) and of the same atoms in the common anchored space (right: cosine to "
        f"{data.n_anchors} anchor atoms{', centred' if data.center else ''}), on "
        f"{len(data.site)} of {data.n_atoms} atoms (seed {data.random_state}). Colour = "
        "periodic group. In the anchored space the models should look alike."
    )
    sec.add(ctx.figures.plotly(pca_figure(data), "pca-maps"))
    ctx.figures.save(pca_static(data), "pca_maps")
    return sec


def agreement(ctx: ReportContext) -> Section:
    sec = Section("agreement", "Agreement in the common space")
    files = ctx.results.platonic
    df = files.table(files.AGREEMENT, ["source", "target"])
    if df is None:
        return _platonic_missing(sec, files.AGREEMENT)
    summary = files.summary()
    settings = summary.get("settings", {})
    if "random_state" in settings:
        ctx.seed("platonic", settings["random_state"])
    sec.lead(
        "Each model's atoms as cosines to the same anchor atoms. cosine_mean: mean cosine between "
        "the two models' vectors of the same atom; top10: the same atom is among the 10 nearest "
        "of its counterpart; raw_top10: the same after Procrustes alignment of the raw features; "
        "cka_z: CKA in the common space. <code>element-onehot</code> and <code>shuffled:</code> "
        "rows are negative controls."
    )
    names = list(dict.fromkeys([*df["source"], *df["target"]]))
    measures = [
        c for c in ("cosine_mean", "top10", "top1_element", "raw_top10", "cka_z") if c in df
    ]
    long = df.melt(id_vars=["source", "target"], value_vars=measures, var_name="measure")
    both = pd.concat([long, long.rename(columns={"source": "target", "target": "source"})])
    figs = []
    for m in measures:
        M = pair_matrix(both[both.measure == m].drop_duplicates(["source", "target"]), names)
        figs.append(ctx.figures.heatmap(M, m, f"agreement_{m}"))
        if m == "cosine_mean":
            ctx.highlight(
                "agreement",
                "Mean cosine of the same atom in the common space",
                M,
                "1: two models place every atom alike relative to the anchors; the controls "
                "show the floor.",
            )
    sec.add(figure_block(figs))
    rows = []
    if summary.get("trained_pairs"):
        rows.append({"pairs": "trained models", **summary["trained_pairs"]})
    for name, values in (summary.get("controls") or {}).items():
        rows.append({"pairs": f"trained vs {name}", **values})
    if rows:
        sec.heading("Means over pairs (platonic/summary.json)")
        sec.add(table(pd.DataFrame(rows)))
    if settings:
        frame = pd.DataFrame(
            {"setting": list(settings), "value": [str(v) for v in settings.values()]}
        )
        sec.add(details("settings", table(frame)))
    sec.add(details("full table (agreement.csv)", table(df)))
    return sec


def transport(ctx: ReportContext) -> Section:
    sec = Section("transport", "Optimal transport between models")
    files = ctx.results.platonic
    w2 = files.matrix(files.W2)
    if w2 is None:
        return _platonic_missing(sec, files.W2)
    sec.lead(
        "W2: Wasserstein-2 distance between the clouds of anchored atoms of two models (exact "
        "optimal transport, uniform weights); the dendrogram clusters models by it."
    )
    figs = [ctx.figures.heatmap(w2, "W2 distance", "w2", xlabel="model", ylabel="model")]
    dendrogram = files.path(files.W2_DENDROGRAM)
    if dendrogram.exists():
        figs.append(image_tag(dendrogram, "W2 dendrogram"))
        ctx.figures.copy(dendrogram, "w2_dendrogram")
        if dendrogram.with_suffix(".svg").exists():
            ctx.figures.copy(dendrogram.with_suffix(".svg"), "w2_dendrogram")
    else:
        absent_note(sec, f"platonic/{files.W2_DENDROGRAM}", "platonic")
    sec.add(figure_block(figs))
    matched = files.table(files.TRANSPORT)
    if matched is not None:
        sec.heading(f"Atom matching by transport ({files.TRANSPORT})")
        sec.add(table(matched))
    else:
        absent_note(sec, f"platonic/{files.TRANSPORT}", "platonic")
    return sec


def bias(ctx: ReportContext) -> Section:
    sec = Section("bias", "Bias map")
    files = ctx.results.platonic
    table_ = files.matrix(files.BIAS)
    if table_ is None:
        return _platonic_missing(sec, files.BIAS)
    sec.lead(
        "Mean deviation 1 − cos(z, consensus) of each model from the consensus of the trained "
        "models, per element (rows). High values: the model sees that element differently."
    )
    sec.add(
        ctx.figures.heatmap(
            table_,
            "1 − cos(z, consensus)",
            "bias_map",
            xlabel="model",
            ylabel="element",
            colorscale="Magma",
        )
    )
    return sec


def atypical(ctx: ReportContext) -> Section:
    sec = Section("atypical", "Atypical structures")
    files = ctx.results.platonic
    df = files.table(files.ATYPICAL, ["structure_hash", "dispersion_mean"])
    if df is None:
        return _platonic_missing(sec, files.ATYPICAL)
    sec.lead(
        "Structures whose atoms the trained models disagree on most (mean over atoms of the "
        "cross-model dispersion 1 − cos(z_A, z_B)). Top 20, and a 3D view of the first few "
        "(drag to rotate)."
    )
    top = df.head(20)
    shown = [
        c
        for c in ("source", "subset", "elements", "n_atoms", "dispersion_mean", "dispersion_max")
        if c in top
    ]
    sec.add(
        table(top[shown].rename_axis("rank").reset_index().assign(rank=lambda t: t["rank"] + 1))
    )
    if ctx.results.structures() is None:
        absent_note(sec, ctx.results.STRUCTURES, "structures", "no 3D views")
        return sec
    figs = []
    for rank, row in enumerate(top.head(ctx.n_structures_3d).itertuples(), start=1):
        atoms = ctx.results.find_structure(row.structure_hash, getattr(row, "source", None))
        if atoms is None:
            sec.note(f"structure {row.structure_hash} is not among the structures read.")
            continue
        title = f"#{rank} {atoms.get_chemical_formula()} ({getattr(row, 'source', '')})"
        figs.append(ctx.figures.plotly(structure_figure(atoms, title), f"atypical-{rank}"))
    sec.add(figure_block(figs))
    return sec


def stitching(ctx: ReportContext) -> Section:
    sec = Section("stitching", "Stitching and embedding arithmetic")
    files = ctx.results.platonic
    found = False
    stitched = files.table(files.STITCHING)
    if stitched is not None:
        found = True
        sec.lead(
            "Zero-shot stitching: a linear head trained on one model's anchored vectors, applied "
            "unchanged to another model's (zero_shot), against a head trained on that model "
            "(in_model), on the raw features (raw) and chance."
        )
        sec.add(table(stitched))
    else:
        absent_note(sec, f"platonic/{files.STITCHING}", "platonic")
    summary = files.summary()
    arithmetic = summary.get("arithmetic")
    accuracy = files.table(files.ARITHMETIC)
    if accuracy is not None:
        found = True
        sec.heading(f"Embedding arithmetic ({files.ARITHMETIC})")
        sec.add(table(accuracy))
    elif isinstance(arithmetic, dict) and "skipped" in arithmetic:
        sec.note(f"Embedding arithmetic skipped: {arithmetic['skipped']}")
    else:
        absent_note(sec, f"platonic/{files.ARITHMETIC}", "platonic", "it needs the structures too")
    if summary.get("fine_tune"):
        found = True
        sec.heading("Fine-tuned models against their base")
        sec.add(table(pd.DataFrame(summary["fine_tune"])))
    sec.missing = not found
    return sec


def verdicts(claims: pd.DataFrame) -> pd.Series:
    """The verdict of each claim in words (holds, does not hold, undecided)."""
    return pd.Series([VERDICTS.get(str(v), str(v)) for v in claims["holds"]], index=claims.index)


def claims(ctx: ReportContext) -> Section:
    sec = Section("claims", "Which claims of the papers hold here")
    files = ctx.results.platonic
    table_ = files.claims()
    if table_ is None:
        return _platonic_missing(sec, files.CLAIMS)
    sec.lead(
        "The checks T0–T10 of the Platonic-representation paper (Li & Walsh 2025) on these "
        "models: each claim, the evidence measured here and the verdict. The paper's own "
        "models are not offline, so the checks compare orderings and gaps, not its numbers."
    )
    table_ = table_.assign(verdict=verdicts(table_))
    sec.add(table(table_[["test", "claim", "evidence", "verdict", "note"]]))
    return sec
