"""Sections of the pairwise measures: the model comparison and the cumulant orders."""

from __future__ import annotations

from html import escape

import pandas as pd

from ...metrics.calibration import NULL_ALPHA
from ...metrics.compare_calibration import below_random_baseline
from ...metrics.registry import MEASURE_INFO, describe_measure
from ..context import ReportContext, absent_note, missing
from ..figures import fmt, null_marks, pair_matrix
from ..template import Section, details, figure_block, table

#: measures of the pairwise comparison, in display order, with what their values mean
MEASURE_NOTES = {
    "gfre": "GFRE: error of the best linear map from row to column features (0 = column fully "
    "recovered, 1 = nothing recovered).",
    "gfrd": "GFRD: distortion of that linear map (0 = orthogonal, i.e. no distortion).",
    "lfre": "LFRE: same, with local linear maps around each test atom (captures non-linear "
    "dependence).",
    "cka": "CKA: centred kernel alignment (1 = same geometry up to rotation and scale).",
    "mknn": "mutual kNN: mean fraction of the 10 nearest neighbours two models share.",
}


def compare(ctx: ReportContext) -> Section:
    sec = Section("compare", "Pairwise comparison (GFRE, LFRE, CKA, mutual kNN)")
    tables = ctx.results.compare.tables()
    if not tables:
        return missing(sec, "compare/*.csv", "compare")
    sec.lead(
        "Row = source (the features used to reconstruct), column = target. Hover a cell for its "
        "value. " + " ".join(escape(v) for v in MEASURE_NOTES.values())
    )
    for stem, df in tables:
        names = list(dict.fromkeys([*df["source"], *df["target"]]))
        layer = ", ".join(map(str, df["layer"].dropna().unique())) if "layer" in df else "?"
        sec.heading(f"{stem} (layer {layer})")
        if "seed" in df:
            ctx.seed("compare", df["seed"].dropna())
        measures = list(dict.fromkeys(df["measure"]))
        sec.add(_measure_descriptions(df, measures))
        figs = []
        for measure in measures:
            M = pair_matrix(df[df.measure == measure], names)
            marks = null_marks(df[df.measure == measure], names)
            figs.append(ctx.figures.heatmap(M, measure, f"{stem}_{measure}", marks=marks))
            if measure == "gfre":
                ctx.highlight(
                    "compare",
                    f"GFRE, layer {layer}",
                    M,
                    "Error of reconstructing each column model from each row model "
                    "(0: fully recovered).",
                    marks=marks,
                )
        sec.add(figure_block(figs))
        sec.add(_calibration(df))
        dims = [c for c in ("dim_source", "effective_rank_source") if c in df]
        if dims:
            ranks = (
                df.groupby("source")[dims]
                .first()
                .reindex(names)
                .rename(columns={"dim_source": "dim", "effective_rank_source": "effective rank"})
                .rename_axis("model")
                .reset_index()
            )
            extra = {c: df[c].iloc[0] for c in ("n_train", "n_test", "seed") if c in df}
            sec.add(
                '<p class="lead">Dimensions and effective ranks; '
                + ", ".join(f"{k} = {escape(fmt(v))}" for k, v in extra.items())
                + ".</p>"
            )
            sec.add(table(ranks))
        sec.add(details(f"full table ({stem}.csv)", table(df, max_rows=500)))
    return sec


def _measure_descriptions(df: pd.DataFrame, measures: list[str], rows: str = "atoms") -> str:
    """Each measure's precise name, preprocessing, split and calibration (one line each);
    ``rows``: what the table's rows are (atoms, or structures for the cumulant tables)."""
    known = [m for m in measures if m in MEASURE_INFO]
    if not known:
        return ""
    items = "".join(f"<li>{escape(describe_measure(df, m, rows))}</li>" for m in known)
    return f'<ul class="lead">{items}</ul>'


#: calibration columns of a compare table, as the report heads them
_CALIBRATION_COLUMNS = {
    "value": "value",
    "ci_low": "CI low",
    "ci_high": "CI high",
    "null_mean": "null mean",
    "null_std": "null std",
    "p_value": "p",
    "null_movable": "movable atoms",
    "random_baseline": "random-source baseline",
    "value_common_width": "at common width",
}


def _calibration(df: pd.DataFrame) -> str:
    """Each cell against its null, interval and width control, when the table holds them."""
    present = [c for c in _CALIBRATION_COLUMNS if c in df and c != "value"]
    if not present:
        return ""
    notes = []
    if "p_value" in df:
        notes.append(
            f"<b>ns</b> in a cell: it does not beat its permutation null (p &gt; {NULL_ALPHA:g}; "
            "the target's structures permuted among structures of equal atom count). The level "
            "is per cell, with no correction for the number of cells; a GFRE/LFRE null lies "
            "above the score (lower is better), a similarity's below. Movable atoms: the "
            "fraction in structures that share their atom count with another; the rest keep "
            "their pairing in every permutation, which makes the test conservative."
        )
    if "ci_low" in df:
        notes.append("CI: percentile interval over resamples of the test structures (not atoms).")
    if "random_baseline" in df:
        notes.append(
            "Random-source baseline: the same measure with the source replaced by Gaussian "
            "features of its width on the same atoms (what width alone gives); at common width: "
            "every model on the same number of principal components."
        )
        below = below_random_baseline(df)
        notes.append(
            f"No better than a random source of the same width: {escape('; '.join(below))}."
            if below
            else "Every cell does better than a random source of its width."
        )
    cells = df[["measure", "source", "target", "value", *present]].rename(
        columns=_CALIBRATION_COLUMNS
    )
    return f'<p class="lead">{" ".join(notes)}</p>' + details(
        f"each cell against its null and controls ({len(cells)} cells)", table(cells)
    )


def cumulants(ctx: ReportContext) -> Section:
    sec = Section("cumulants", "Cumulant orders (structure level)")
    files = ctx.results.cumulants
    orders, models = files.order_tables(), files.model_tables()
    if not orders and not models:
        return missing(
            sec, "cumulants/*/orders_*.csv and cumulants/models/models_*.csv", "cumulants"
        )
    sec.lead(
        "Φ(n): structure features made of the first n cumulants of the per-atom features. "
        "Order table: GFRE/LFRE of Φ(row) → Φ(column) for one model (small values above the "
        "diagonal mean the higher orders add little). Cross-model table: the models compared on "
        "Φ(order)."
    )
    if not orders:
        absent_note(sec, "cumulants/<model>/orders_*.csv", "cumulants", "no order-by-order table")
    for model, stem, df in orders:
        if "seed" in df:
            ctx.seed("cumulants", df["seed"].dropna())
        sec.heading(f"{model}: {stem}")
        sec.add(_measure_descriptions(df, list(dict.fromkeys(df["measure"])), "structures"))
        labels = [f"Φ({k})" for k in sorted({*df.source_order, *df.target_order})]
        figs = []
        for measure in dict.fromkeys(df["measure"]):
            M = pair_matrix(df[df.measure == measure], labels)
            title = f"{measure} Φ(m) → Φ(n)"
            figs.append(
                ctx.figures.heatmap(
                    M,
                    title,
                    f"cumulants_{model}_{stem}_{measure}",
                    xlabel="target order",
                    ylabel="source order",
                )
            )
            if measure == "gfre":
                text = f"{model}: how much of Φ(column) the lower orders Φ(row) recover."
                ctx.highlight("cumulants", f"{model}: {title}", M, text)
        sec.add(figure_block(figs))
    if not models:
        absent_note(sec, "cumulants/models/models_*.csv", "cumulants", "no cross-model table")
    for stem, df in models:
        if "seed" in df:
            ctx.seed("cumulants", df["seed"].dropna())
        order = f" on Φ({int(df['order'].iloc[0])})" if "order" in df else ""
        sec.heading(f"Across models{order}: {stem}")
        sec.add(_measure_descriptions(df, list(dict.fromkeys(df["measure"])), "structures"))
        names = list(dict.fromkeys([*df["source"], *df["target"]]))
        figs = [
            ctx.figures.heatmap(
                pair_matrix(df[df.measure == measure], names),
                f"{measure}{order}",
                f"cumulants_models_{stem}_{measure}",
            )
            for measure in dict.fromkeys(df["measure"])
        ]
        sec.add(figure_block(figs))
    return sec
