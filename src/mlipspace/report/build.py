"""The self-contained HTML report of a results folder (``mlipspace report``): :func:`build_report`.

The report only reads and draws: every number and map it shows was written by an analysis
stage into the results folder (:mod:`mlipspace.results` names the files). Every part is
optional: a section whose files are absent says which command writes them and the rest still
renders. The report is one HTML file with plotly.js embedded once (no CDN, no external font);
static PNG/SVG copies of the main figures go to ``figures/`` beside it, and a chemiscope input
file (``chemiscope.json.gz``) with the PCA maps when chemiscope is installed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from html import escape
from pathlib import Path

from ..errors import ReportError, ResultsError
from ..results import WRITTEN_BY, PlatonicFiles, ResultsFolder
from .chemiscope import write_chemiscope
from .context import ReportContext
from .figures import FigureWriter
from .sections.diagnostics import diagnostics
from .sections.findings import findings
from .sections.overview import models, overview, package_versions, provenance
from .sections.pairs import compare, cumulants
from .sections.platonic import agreement, atypical, bias, claims, pca, stitching, transport
from .template import Section, page

logger = logging.getLogger(__name__)

__all__ = ["SECTIONS", "build_report"]

#: the sections in the order of the page; the findings, built last from what the others
#: found, open it
SECTIONS: tuple[Callable[[ReportContext], Section], ...] = (
    overview,
    claims,
    models,
    compare,
    cumulants,
    pca,
    agreement,
    transport,
    bias,
    atypical,
    stitching,
    diagnostics,
)


def _build(builder: Callable[[ReportContext], Section], ctx: ReportContext, strict: bool):
    name = builder.__name__
    try:
        return builder(ctx)
    except Exception as exc:  # one broken input must not hide every other result
        if isinstance(exc, ResultsError) and not isinstance(exc, ReportError):
            exc = ReportError(str(exc))  # the report's error, whatever file was at fault
        if strict:
            raise exc
        logger.warning("report section %s failed: %s", name, exc)
        failed = Section(name, name.capitalize())
        failed.note(f"This section could not be built: {type(exc).__name__}: {exc}")
        return failed


def _companion_files(
    ctx: ReportContext, out: Path, chemiscope: bool, strict: bool, progress: Callable | None
) -> Section:
    files = Section("files", "Companion files")
    figures = ctx.figures
    rel = [p.relative_to(out.parent).as_posix() for p in figures.static]
    if rel:
        files.lead(
            f"Static copies of the figures for papers ({len(rel)} files in "
            f"<code>{escape(figures.folder.name)}/</code>): "
            + ", ".join(f"<code>{escape(r)}</code>" for r in rel)
            + "."
        )
    if not chemiscope:
        return files
    if progress:
        progress("chemiscope")
    target = out.parent / ResultsFolder.CHEMISCOPE
    maps = ctx.results.platonic.pca_maps()
    structures = ctx.results.structures()
    if maps is None or structures is None:
        lacking = [
            f"platonic/{PlatonicFiles.PCA} (run {WRITTEN_BY['platonic']})" if maps is None else "",
            f"the structures (run {WRITTEN_BY['structures']})" if structures is None else "",
        ]
        files.note(f"chemiscope file not written: it needs {' and '.join(filter(None, lacking))}.")
        return files
    try:
        write_chemiscope(maps, structures, target)
    except ImportError:
        files.note("chemiscope is not installed: `pip install chemiscope` to get the map file.")
    except Exception as exc:
        if strict:
            raise
        files.note(f"chemiscope file not written: {exc}")
    else:
        files.lead(
            f"<code>{target.name}</code>: the PCA maps with their structures, for interactive "
            "exploration (drop it on the chemiscope viewer, or "
            f"<code>chemiscope.show_input('{target.name}')</code> in a notebook)."
        )
    return files


def build_report(
    results_dir: str | Path,
    out_path: str | Path | None = None,
    *,
    store: str | Path | None = None,
    structures: Sequence[str | Path] | None = None,
    n_structures_3d: int = 3,
    chemiscope: bool = True,
    strict: bool = False,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Write the self-contained HTML report of a results folder.

    Parameters
    ----------
    results_dir : str or Path
        A results folder (see :mod:`mlipspace.results`); every part is optional.
    out_path : str or Path, optional
        The HTML file; ``results_dir/report.html`` by default. ``figures/`` (static PNG/SVG)
        and ``chemiscope.json.gz`` are written beside it.
    store : str or Path, optional
        The feature store, when it is not ``results_dir/store.zarr``.
    structures : sequence of str or Path, optional
        Structure files, when they are not ``results_dir/structures.extxyz``.
    n_structures_3d : int, default=3
        Atypical structures shown in 3D.
    chemiscope : bool, default=True
        Write ``chemiscope.json.gz`` (needs the ``chemiscope`` package).
    strict : bool, default=False
        Raise on a section that fails instead of showing the error in that section.
    progress : callable, optional
        Called with the name of each section as it is built.

    Returns
    -------
    Path
        The HTML file.
    """
    root = Path(results_dir)
    if not root.is_dir():
        raise ReportError(f"{root}: results folder not found")
    out = Path(out_path) if out_path is not None else root / ResultsFolder.REPORT
    out.parent.mkdir(parents=True, exist_ok=True)
    ctx = ReportContext(
        results=ResultsFolder(root, store=store, structures=structures),
        figures=FigureWriter(out.parent / ResultsFolder.FIGURES),
        n_structures_3d=n_structures_3d,
    )
    sections = []
    for builder in SECTIONS:
        if progress:
            progress(builder.__name__)
        sections.append(_build(builder, ctx, strict))
    sections.insert(0, _build(findings, ctx, strict))
    sections.append(_companion_files(ctx, out, chemiscope, strict, progress))
    if progress:
        progress("provenance")
    sections.append(provenance(ctx))

    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    html = page(
        "mlipspace report",
        [
            f"Results: <code>{escape(str(root.resolve()))}</code>",
            f"Built {stamp} with mlipspace {escape(package_versions(())['mlipspace'])}; "
            f"{ctx.figures.n_plotly} interactive figures, plotly.js embedded (works offline).",
        ],
        sections,
        head=ctx.figures.plotly_bundle(),
    )
    out.write_text(html, encoding="utf-8")
    return out
