"""Sections of the common ("Platonic") space: PCA maps, agreement, transport, bias, atypical
structures, stitching and arithmetic, and the checks of the papers' claims."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

import numpy as np
import pandas as pd

from ...results import PlatonicFiles
from ..context import ReportContext, absent_note, missing
from ..figures import fmt, image_tag, pair_matrix
from ..plots import BIAS_TITLE, dendrogram_static, pca_figure, pca_static, structure_figure
from ..template import Section, details, figure_block, table

#: how the claims' ``holds`` column reads in words
VERDICTS = {"True": "holds", "False": "does not hold", "": "undecided"}

#: the agreement measures drawn as heatmaps, in this order (those present in the table)
AGREEMENT_MEASURES = ("cosine_mean", "top10", "top1_element", "raw_top10", "cka_z")

#: the claims table as shown: known columns in this order (``holds`` read as the verdict, the
#: estimate with its interval), then any other column of ``claims.csv`` as it is
CLAIM_COLUMNS = (
    "test",
    "subset",
    "claim",
    "evidence",
    "verdict",
    "estimate (95% CI)",
    "threshold",
    "threshold_source",
    "note",
)


def _platonic_missing(sec: Section, name: str) -> Section:
    return missing(sec, f"platonic/{name}", "platonic")


@dataclass(frozen=True)
class Opening:
    """The opening of a section built on one table of ``platonic/``: its anchor, title and
    table, and the lead shown when the table is there."""

    key: str
    title: str
    name: str
    lead: str
    required: tuple[str, ...] = ()
    matrix: bool = False  # a square table written with its index (W2, bias map)

    def open(self, ctx: ReportContext) -> tuple[Section, pd.DataFrame | None]:
        """The section with its lead and the table, or the section saying the table is
        missing (and what writes it) and None."""
        sec = Section(self.key, self.title)
        files = ctx.results.platonic
        df = files.matrix(self.name) if self.matrix else files.table(self.name, self.required)
        if df is None:
            return _platonic_missing(sec, self.name), None
        sec.lead(self.lead)
        return sec, df


AGREEMENT = Opening(
    "agreement",
    "Agreement in the common space",
    PlatonicFiles.AGREEMENT,
    "Each model's atoms as cosines to the same anchor atoms. cosine_mean: mean cosine between "
    "the two models' vectors of the same atom; top10: the same atom is among the 10 nearest "
    "of its counterpart; raw_top10: the same after Procrustes alignment of the raw features; "
    "cka_z: CKA in the common space. <code>element-onehot</code> and <code>shuffled:</code> "
    "rows are negative controls.",
    required=("source", "target"),
)
TRANSPORT = Opening(
    "transport",
    "Optimal transport between models",
    PlatonicFiles.W2,
    "W2: Wasserstein-2 distance between the clouds of anchored atoms of two models (exact "
    "optimal transport, uniform weights); the dendrogram clusters models by it.",
    matrix=True,
)
BIAS = Opening(
    "bias",
    "Bias map",
    PlatonicFiles.BIAS,
    "Mean deviation 1 − cos(z, consensus) of each model from the consensus of the trained "
    "models, per element (rows). High values: the model sees that element differently.",
    matrix=True,
)
ATYPICAL = Opening(
    "atypical",
    "Atypical structures",
    PlatonicFiles.ATYPICAL,
    "Structures whose atoms the trained models disagree on most (mean over atoms of the "
    "cross-model dispersion 1 − cos(z_A, z_B)). Top 20, and a 3D view of the first few "
    "(drag to rotate).",
    required=("structure_hash", "dispersion_mean"),
)


def _optional_table(sec: Section, files: PlatonicFiles, name: str, heading: str) -> bool:
    """``platonic/<name>`` under ``heading`` when present; whether it was."""
    df = files.table(name)
    if df is None:
        return False
    sec.heading(f"{heading} ({name})")
    sec.add(table(df))
    return True


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


def _agreement_heatmaps(
    ctx: ReportContext, df: pd.DataFrame, stem: str
) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """Each measure of an agreement table as a symmetric model × model matrix, drawn as
    ``<stem>_<measure>``: the matrices by measure and the figures' HTML."""
    names = list(dict.fromkeys([*df["source"], *df["target"]]))
    measures = [c for c in AGREEMENT_MEASURES if c in df]
    long = df.melt(id_vars=["source", "target"], value_vars=measures, var_name="measure")
    both = pd.concat([long, long.rename(columns={"source": "target", "target": "source"})])
    matrices = {
        m: pair_matrix(both[both.measure == m].drop_duplicates(["source", "target"]), names)
        for m in measures
    }
    figs = [ctx.figures.heatmap(M, m, f"{stem}_{m}") for m, M in matrices.items()]
    return matrices, figs


def agreement(ctx: ReportContext) -> Section:
    sec, df = AGREEMENT.open(ctx)
    if df is None:
        return sec
    files = ctx.results.platonic
    summary = files.summary()
    settings = summary.get("settings", {})
    if "random_state" in settings:
        ctx.seed("platonic", settings["random_state"])
    matrices, figs = _agreement_heatmaps(ctx, df, "agreement")
    if "cosine_mean" in matrices:
        ctx.highlight(
            "agreement",
            "Mean cosine of the same atom in the common space",
            matrices["cosine_mean"],
            "1: two models place every atom alike relative to the anchors; the controls "
            "show the floor.",
        )
    sec.add(figure_block(figs))
    uncentred = files.table(files.AGREEMENT_UNCENTRED, ["source", "target"])
    if uncentred is not None:
        sec.heading(
            f"The same under the uncentred, unscaled projection ({files.AGREEMENT_UNCENTRED})"
        )
        sec.lead(
            "Cosines to the anchors without centring or standardising each model's projected "
            "coordinates (the paper's formula as far as it is known), on the same atoms: "
            "uncentred cosines crowd near 1 for every pair, controls included."
        )
        sec.add(figure_block(_agreement_heatmaps(ctx, uncentred, "agreement_uncentred")[1]))
    rows = []
    if summary.get("trained_pairs"):
        rows.append({"pairs": "trained models", **summary["trained_pairs"]})
    for name, values in (summary.get("controls") or {}).items():
        rows.append({"pairs": f"trained vs {name}", **values})
    if summary.get("uncentred_pairs"):
        rows.append({"pairs": "trained models, uncentred", **summary["uncentred_pairs"]})
    if rows:
        sec.heading("Means over pairs (platonic/summary.json)")
        sec.add(table(pd.DataFrame(rows)))
    anchors_against_population(sec, files)
    if settings:
        frame = pd.DataFrame(
            {"setting": list(settings), "value": [str(v) for v in settings.values()]}
        )
        sec.add(details("settings", table(frame)))
    sec.add(details("full table (agreement.csv)", table(df)))
    return sec


def anchors_against_population(sec: Section, files: PlatonicFiles) -> None:
    """The anchors' subsets (shown) and elements (folded) against the population of atoms."""
    coverage = files.table(files.ANCHOR_COVERAGE, ["kind", "value", "anchors", "population"])
    if coverage is None:
        return
    sec.heading(f"Anchors against the population ({files.ANCHOR_COVERAGE})")
    sec.lead(
        "How many anchor atoms come from each subset of structures and each element, against "
        "the atoms of the common space: an element or subset without anchors is seen only "
        "through the others."
    )
    for kind, group in coverage.groupby("kind", sort=False):
        shown = table(group.drop(columns="kind").rename(columns={"value": kind}))
        sec.add(shown if kind == "subset" else details(f"by {kind}", shown))


def transport(ctx: ReportContext) -> Section:
    sec, w2 = TRANSPORT.open(ctx)
    if w2 is None:
        return sec
    figs = [ctx.figures.heatmap(w2, "W2 distance", "w2", xlabel="model", ylabel="model")]
    dendrogram = ctx.figures.save(dendrogram_static(w2), "w2_dendrogram")[0]
    figs.append(image_tag(dendrogram, "W2 dendrogram"))
    sec.add(figure_block(figs))
    files = ctx.results.platonic
    if not _optional_table(sec, files, files.TRANSPORT, "Atom matching by transport"):
        absent_note(sec, f"platonic/{files.TRANSPORT}", "platonic")
    _optional_table(sec, files, files.TRANSPORT_BULK, "The same on the ideal bulk crystals alone")
    _optional_table(sec, files, files.TRANSPORT_UNCENTRED, "The same, uncentred projection")
    return sec


def bias(ctx: ReportContext) -> Section:
    sec, matrix = BIAS.open(ctx)
    if matrix is not None:
        sec.add(
            ctx.figures.heatmap(
                matrix, BIAS_TITLE, "bias_map", xlabel="model", ylabel="element", colorscale="Magma"
            )
        )
    return sec


def atypical(ctx: ReportContext) -> Section:
    sec, df = ATYPICAL.open(ctx)
    if df is None:
        return sec
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
        _optional_table(sec, files, files.STITCHING_BULK, "Stitching on the ideal bulk crystals")
        _optional_table(sec, files, files.STITCHING_UNCENTRED, "Stitching, uncentred projection")
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


def _interval(claims: pd.DataFrame) -> pd.Series | None:
    """``estimate [ci_low, ci_high]`` of each claim ('' where no figure applies); None when
    the table has no ``estimate`` column."""
    if "estimate" not in claims:
        return None

    def number(column: str) -> np.ndarray:
        values = claims[column] if column in claims else pd.Series(np.nan, index=claims.index)
        return pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)

    estimate, low, high = number("estimate"), number("ci_low"), number("ci_high")
    cells = []
    for e, lo, hi in zip(estimate, low, high, strict=True):
        ci = f" [{fmt(lo)}, {fmt(hi)}]" if np.isfinite(lo) and np.isfinite(hi) else ""
        cells.append(f"{fmt(e)}{ci}" if np.isfinite(e) else "")
    return pd.Series(cells, index=claims.index)


def claims_table(claims: pd.DataFrame) -> pd.DataFrame:
    """The claims as the report shows them, from the columns present in ``claims.csv``.

    ``holds`` becomes the verdict in words (:data:`VERDICTS`), ``estimate``, ``ci_low`` and
    ``ci_high`` one cell ``estimate [low, high]``; the columns of :data:`CLAIM_COLUMNS` come
    first, in that order, then every other column as it is.
    """
    shown = claims.assign(verdict=verdicts(claims))
    interval = _interval(claims)
    if interval is not None:
        shown["estimate (95% CI)"] = interval
    merged = {"holds", "estimate", "ci_low", "ci_high"}
    known = [c for c in CLAIM_COLUMNS if c in shown]
    others = [c for c in claims.columns if c not in merged and c not in known]
    return shown[known + others]


def claims(ctx: ReportContext) -> Section:
    sec = Section("claims", "Which claims of the papers hold here")
    files = ctx.results.platonic
    table_ = files.claims()
    if table_ is None:
        return _platonic_missing(sec, files.CLAIMS)
    sec.lead(
        "The checks T0–T10 of the Platonic-representation paper (Li & Walsh 2025) on these "
        "models: each claim, the evidence measured here and the verdict. The paper's own "
        "models are not offline, so the checks compare orderings and gaps, not its numbers. "
        "A verdict is taken on the estimate and its 95% bootstrap interval over structures: "
        "undecided when the interval straddles the threshold or the data are too few. The "
        "threshold's source says whether it is the paper's or this toolkit's own choice; a "
        "subset other than all repeats the check on those structures alone."
    )
    sec.add(table(claims_table(table_)))
    return sec
