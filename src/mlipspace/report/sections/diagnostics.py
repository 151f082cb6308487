"""The section of the physical-failure diagnostics (symmetry, mirror, relaxation, phonons)."""

from __future__ import annotations

from ...results import DiagnosticsFiles
from ..context import ReportContext, missing
from ..plots import displacement_figure
from ..template import Section, figure_block, table

#: headings of the known diagnostics tables
TITLES = {
    DiagnosticsFiles.AUROC: "Does the Platonic deviation flag failures? (AUROC)",
    DiagnosticsFiles.SYMMETRY: "Orbit spread of stored high-symmetry structures",
    DiagnosticsFiles.MIRROR: "Mirror-image gap in the common space",
    DiagnosticsFiles.RELAX: "Unconstrained relaxation: symmetry kept or lost",
    DiagnosticsFiles.PHONONS: "Phonons of each model's relaxed cell",
}


def diagnostics(ctx: ReportContext) -> Section:
    sec = Section("diagnostics", "Diagnostics")
    files = ctx.results.find_diagnostics()
    if not files.present():
        return missing(sec, "diagnostics/*.csv", "diagnostics", "the physical-failure checks")
    sec.lead(
        "Physical-failure diagnostics. Symmetry: sites that spglib makes equivalent must have "
        "equal features (orbit spread 1 − cos, ≈ 0), and the spread must grow as one site "
        "moves. Mirror: the gap between a structure and its mirror image (models that do not "
        "track parity show one). Relaxation and phonons with each model's own calculator, and "
        "how well the Platonic deviation from the consensus flags the failures (AUROC)."
    )
    series = files.table(files.DISPLACEMENT, ["model", "displacement", "spread"])
    if series is not None and len(series):
        figure = displacement_figure(series)
        ctx.highlight(
            "diagnostics",
            "Orbit spread as one site moves",
            figure,
            "It must grow with the displacement for every model.",
        )
        sec.add(figure_block([ctx.figures.plotly(figure, "displacement")]))
    for name in files.TABLES:
        df = files.table(name)
        if df is not None:
            sec.heading(TITLES.get(name, name))
            sec.add(table(df))
    for name, df in files.other_tables():
        sec.heading(name)
        sec.add(table(df))
    return sec
