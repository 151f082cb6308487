"""Figures: the one heatmap (interactive and static), and the writer of a report's figures.

:class:`Heatmap` draws every heatmap of mlipspace: the report's, the pages that
``mlipspace compare`` and ``mlipspace cumulants`` write beside their tables
(:func:`write_heatmaps`) and the Platonic figures beside the Platonic tables
(:func:`mlipspace.report.plots.write_platonic_figures`).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "FigureWriter",
    "Heatmap",
    "element_group_colors",
    "heatmap_figure",
    "null_marks",
    "pair_matrix",
    "save_figure",
    "write_heatmaps",
]

#: colours of periodic groups 1–18 (distinct, colour-blind friendly first)
GROUP_COLORS = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
    "#393b79",
    "#637939",
    "#8c6d31",
    "#843c39",
    "#7b4173",
    "#3182bd",
    "#e6550d",
    "#31a354",
)


def element_group_colors(groups: Sequence[int]) -> list[str]:
    """One colour per periodic group (1–18)."""
    return [GROUP_COLORS[(int(g) - 1) % len(GROUP_COLORS)] for g in groups]


def slug(text: str) -> str:
    """``text`` as a file-name and HTML-id friendly token."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-") or "x"


def fmt(value: Any) -> str:
    """A number with 3 significant digits ('' for NaN), anything else as text."""
    if isinstance(value, float | np.floating):
        return "" if not np.isfinite(value) else f"{value:.3g}"
    return str(value)


def pair_matrix(
    df: pd.DataFrame,
    names: Sequence[Any] | None = None,
    index: str = "source",
    columns: str = "target",
) -> pd.DataFrame:
    """A tidy (source, target, value) table as a matrix, rows and columns in ``names`` order."""
    M = df.pivot_table(index=index, columns=columns, values="value", aggfunc="mean")
    if names is not None:
        M = M.reindex(index=list(names), columns=list(names))
    return M


def null_marks(df: pd.DataFrame, names: Sequence[Any] | None = None) -> pd.DataFrame | None:
    """Cells of a tidy pair table that do not beat their permutation null, as a boolean matrix.

    True where ``p_value`` is above :data:`mlipspace.metrics.calibration.NULL_ALPHA`; None when
    the table has no ``p_value`` column (no null was computed).
    """
    from ..metrics.calibration import beats_null

    if "p_value" not in df:
        return None
    P = pair_matrix(df.assign(value=df["p_value"]), names)
    return P.apply(lambda col: col.map(lambda p: bool(np.isfinite(p) and not beats_null(p))))


def _cell_text(value: float, marked: bool, digits: str) -> str:
    text = "" if not np.isfinite(value) else f"{value:{digits}}"
    return f"{text} ns" if marked and text else text


@dataclass(frozen=True)
class Heatmap:
    """What a heatmap shows, whichever library draws it.

    ``M`` is drawn row = ``ylabel``, column = ``xlabel``; ``marks`` (a boolean matrix like
    ``M``, e.g. :func:`null_marks`) adds "ns" to the cells marked True. :meth:`interactive`
    draws it with plotly, :meth:`static` with matplotlib (for PNG/SVG copies).
    """

    M: pd.DataFrame
    title: str
    xlabel: str = "target"
    ylabel: str = "source"
    marks: pd.DataFrame | None = None

    @property
    def values(self) -> np.ndarray:
        return self.M.to_numpy(dtype=np.float64)

    def marked(self) -> np.ndarray:
        """Boolean mask of the cells marked "ns"."""
        shape = self.M.shape
        return np.zeros(shape, bool) if self.marks is None else self.marks.to_numpy(dtype=bool)

    def interactive(self, colorscale: str = "Viridis") -> Any:
        """The heatmap as a plotly figure, values in the cells and on hover."""
        import plotly.graph_objects as go

        z, mask = self.values, self.marked()
        x = [str(c) for c in self.M.columns]
        y = [str(i) for i in self.M.index]
        xlabel, ylabel, title = escape(self.xlabel), escape(self.ylabel), escape(self.title)
        heat = go.Heatmap(
            z=z,
            x=x,
            y=y,
            colorscale=colorscale,
            text=[
                [_cell_text(v, m, ".3g") for v, m in zip(r, k, strict=True)]
                for r, k in zip(z, mask, strict=True)
            ],
            hovertemplate=(
                f"{ylabel} %{{y}}<br>{xlabel} %{{x}}<br>{title} = %{{z:.4g}}<extra></extra>"
            ),
        )
        if z.size <= 400:
            heat.texttemplate = "%{text}"
            heat.textfont = {"size": 12 if len(y) <= 20 else 9}
        fig = go.Figure(heat)
        fig.update_layout(
            title={"text": title, "font": {"size": 14}},
            xaxis={"title": xlabel, "type": "category", "tickangle": -40},
            yaxis={"title": ylabel, "type": "category", "autorange": "reversed"},
            width=int(np.clip(220 + 62 * len(x), 420, 1100)),
            height=int(np.clip(200 + (34 if len(y) <= 20 else 18) * len(y), 360, 2400)),
            margin={"l": 150, "r": 20, "t": 50, "b": 140},
        )
        return fig

    def static(self, cmap: str = "viridis") -> Any:
        """The same heatmap as a matplotlib figure; the caller saves and closes it
        (:func:`save_figure`)."""
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        z, mask = self.values, self.marked()
        many = z.shape[0] > 20  # a per-element bias map has ~80 rows: small labels, no values
        fig, ax = plt.subplots(
            figsize=(2.8 + 0.65 * z.shape[1], 2.2 + (0.18 if many else 0.4) * z.shape[0])
        )
        im = ax.imshow(z, cmap=cmap, aspect="auto")
        ax.set_xticks(range(z.shape[1]), [str(c) for c in self.M.columns], rotation=45, ha="right")
        ax.set_yticks(
            range(z.shape[0]), [str(i) for i in self.M.index], fontsize=6 if many else None
        )
        ax.set_xlabel(self.xlabel)
        ax.set_ylabel(self.ylabel)
        ax.set_title(self.title)
        if z.size <= 400:
            finite = z[np.isfinite(z)]
            mid = (finite.min() + finite.max()) / 2 if finite.size else 0.0
            for i, j in zip(*np.nonzero(np.isfinite(z)), strict=True):
                color = "k" if z[i, j] > mid else "w"
                text = _cell_text(z[i, j], bool(mask[i, j]), ".2g")
                ax.text(j, i, text, ha="center", va="center", fontsize=7, color=color)
        fig.colorbar(im, ax=ax)
        fig.tight_layout()
        return fig


def heatmap_figure(
    M: pd.DataFrame,
    title: str,
    xlabel: str = "target",
    ylabel: str = "source",
    colorscale: str = "Viridis",
    marks: pd.DataFrame | None = None,
) -> Any:
    """Interactive heatmap (plotly) of ``M``: :meth:`Heatmap.interactive`."""
    return Heatmap(M, title, xlabel, ylabel, marks).interactive(colorscale)


def save_figure(fig: Any, paths: Iterable[Path]) -> list[Path]:
    """Save a matplotlib figure under each of ``paths`` (the format from the suffix), then
    close it."""
    import matplotlib.pyplot as plt

    written = []
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=150)
        written.append(path)
    plt.close(fig)
    return written


def write_heatmaps(
    df: pd.DataFrame,
    folder: str | Path,
    stem: str,
    formats: Iterable[str] = ("png", "svg", "html"),
) -> list[Path]:
    """One heatmap per measure of a tidy pair table: ``<stem>_<measure>.png|svg`` and one
    ``<stem>.html`` page with every measure (plotly.js embedded once: works offline)."""
    folder = Path(folder)
    names = list(dict.fromkeys([*df["source"], *df["target"]]))
    matrices = {
        measure: pair_matrix(df[df["measure"] == measure], names)
        for measure in dict.fromkeys(df["measure"])
    }
    formats = set(formats)
    written: list[Path] = []
    static = [f for f in ("png", "svg") if f in formats]
    marks = {m: null_marks(df[df["measure"] == m], names) for m in matrices}
    for measure, M in matrices.items() if static else ():
        paths = [folder / f"{stem}_{measure}.{ext}" for ext in static]
        written += save_figure(Heatmap(M, measure, marks=marks[measure]).static(), paths)
    if "html" in formats:
        parts = [
            heatmap_figure(M, measure, marks=marks[measure]).to_html(
                full_html=False, include_plotlyjs=(i == 0)
            )
            for i, (measure, M) in enumerate(matrices.items())
        ]
        path = folder / f"{stem}.html"
        folder.mkdir(parents=True, exist_ok=True)
        path.write_text(
            "<!DOCTYPE html><html><head><meta charset='utf-8'><title>mlipspace</title>"
            "</head><body>" + "\n".join(parts) + "</body></html>",
            encoding="utf-8",
        )
        written.append(path)
    return written


class FigureWriter:
    """The report's figures: plotly fragments (plotly.js goes once into the page, see
    :meth:`plotly_bundle`) and the static PNG/SVG copies written to ``folder``."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.n_plotly = 0
        self.static: list[Path] = []
        self._ids: set[str] = set()

    def plotly(self, fig: Any, name: str) -> str:
        div_id = f"fig-{slug(name)}"
        while div_id in self._ids:
            div_id += "-2"
        self._ids.add(div_id)
        html = fig.to_html(
            full_html=False,
            include_plotlyjs=False,
            div_id=div_id,
            config={"displaylogo": False, "responsive": False},
        )
        self.n_plotly += 1
        return html

    def plotly_bundle(self) -> str:
        """plotly.js inline (one ``<script>``), or nothing when no figure needs it.

        It goes in the page head: sections are built in another order than they are shown
        (the findings last), and every figure must find plotly.js already loaded.
        """
        if not self.n_plotly:
            return ""
        from plotly.offline import get_plotlyjs

        return (
            "<script type=\"text/javascript\">window.PlotlyConfig = {MathJaxConfig: 'local'};"
            f'</script>\n<script charset="utf-8" type="text/javascript">{get_plotlyjs()}</script>\n'
        )

    def save(self, fig: Any, stem: str) -> list[Path]:
        """Save a matplotlib figure as PNG and SVG under ``folder``; the paths, PNG first."""
        paths = [self.folder / f"{slug(stem)}.{ext}" for ext in ("png", "svg")]
        written = save_figure(fig, paths)
        self.static += written
        return written

    def heatmap(
        self,
        M: pd.DataFrame,
        title: str,
        name: str,
        xlabel: str = "target",
        ylabel: str = "source",
        colorscale: str = "Viridis",
        static: bool = True,
        marks: pd.DataFrame | None = None,
    ) -> str:
        """Interactive heatmap plus its static copy ``<name>.png|svg`` (``marks``: cells to
        mark "ns", see :func:`heatmap_figure`)."""
        heatmap = Heatmap(M, title, xlabel, ylabel, marks)
        if static:
            self.save(heatmap.static(cmap=colorscale.lower()), name)
        return self.plotly(heatmap.interactive(colorscale), name)


def image_tag(path: Path, alt: str) -> str:
    """A PNG embedded in the page (no external file)."""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img class="static" alt="{escape(alt)}" src="data:image/png;base64,{data}">'
