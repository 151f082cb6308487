"""The section the report opens with: the main figure of each analysis and the claims' verdicts.

It is built last, from what the other sections recorded (:meth:`ReportContext.highlight`),
and shown first; each entry links to its section below.
"""

from __future__ import annotations

from html import escape

import pandas as pd

from ...metrics.calibration import NULL_ALPHA
from ..context import ReportContext
from ..figures import heatmap_figure
from ..template import Section, figure_block, table
from .platonic import verdicts

#: the analyses in the order the findings show them
ORDER = ("claims", "compare", "cumulants", "agreement", "diagnostics")


def findings(ctx: ReportContext) -> Section:
    sec = Section("findings", "Findings")
    claims = ctx.results.platonic.claims()
    if claims is not None and len(claims):
        counts = verdicts(claims).value_counts()
        words = ", ".join(f"{n} {escape(v)}" for v, n in counts.items())
        sec.lead(
            f'Claims of the papers checked here (<a href="#claims">details</a>): {words} '
            f"of {len(claims)} checks."
        )
        by_test = claims.assign(verdict=verdicts(claims)).groupby("test", sort=False)["verdict"]
        per_test = by_test.agg(lambda v: ", ".join(dict.fromkeys(v)))
        sec.add(table(pd.DataFrame([per_test.to_dict()])))  # one row: test → verdict(s)
    figs = []
    for key in ORDER:
        item = ctx.highlights.get(key)
        if item is None:
            continue
        figure = item.figure
        if isinstance(figure, pd.DataFrame):
            figure = heatmap_figure(figure, item.title, marks=item.marks)
        text = escape(item.text) + _null_note(item.marks)
        link = f'<p class="lead"><a href="#{key}">{escape(item.title)}</a>: {text}</p>'
        figs.append(link + ctx.figures.plotly(figure, f"findings-{key}"))
    if figs:
        sec.add(figure_block(figs))
    if claims is None and not figs:
        sec.missing = True
        sec.note("No analysis found in this folder: the sections below say what writes each.")
    return sec


def _null_note(marks: pd.DataFrame | None) -> str:
    """What "ns" in a cell means, when the figure's table has a permutation null."""
    if marks is None:
        return ""
    n = int(marks.to_numpy(dtype=bool).sum())
    if n == 0:
        return f" Every cell beats its permutation null (p &le; {NULL_ALPHA:g})."
    cells = "1 cell" if n == 1 else f"{n} cells"
    return (
        f" <b>ns</b> ({cells}): does not beat its permutation null (p &gt; {NULL_ALPHA:g}; "
        "one test per cell, no correction)."
    )
