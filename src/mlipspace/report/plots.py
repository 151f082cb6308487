"""Plots of the report other than heatmaps: PCA maps, the dendrogram of the W2 distances, 3D
structures, the displacement series; and the Platonic figures written beside the tables."""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import MetricInputError
from ..results import PcaMaps, PlatonicFiles
from .figures import Heatmap, element_group_colors, save_figure, write_heatmaps

__all__ = [
    "BIAS_TITLE",
    "W2_TITLE",
    "dendrogram_static",
    "displacement_figure",
    "pca_figure",
    "pca_static",
    "plot_dendrogram",
    "structure_figure",
    "write_platonic_figures",
]

#: titles of the Platonic figures, the same beside the tables and in the report
W2_TITLE = "W2 distance between models in the common space"
BIAS_TITLE = "1 − cos(z, consensus) per element"


def pca_figure(data: PcaMaps) -> Any:
    """Raw (left) and anchored (right) PCA map of each model, coloured by periodic group."""
    import plotly.graph_objects as go
    from ase.data import chemical_symbols
    from plotly.subplots import make_subplots

    models = data.models
    titles = []
    for m in models:
        for kind in ("raw", "anchored"):
            ratio = data.maps[m][kind][1]
            titles.append(f"{m} {kind} ({100 * ratio[0]:.0f}% + {100 * ratio[1]:.0f}%)")
    fig = make_subplots(
        rows=len(models),
        cols=2,
        subplot_titles=titles,
        horizontal_spacing=0.08,
        vertical_spacing=0.1,
    )
    groups = data.groups
    symbols = np.array([chemical_symbols[z] for z in data.numbers])
    for g in sorted(set(groups.tolist())):
        mask = groups == g
        color = element_group_colors([g])[0]
        hover = [f"{s} · site {i}" for s, i in zip(symbols[mask], data.site[mask], strict=True)]
        for r, m in enumerate(models, start=1):
            for c, kind in enumerate(("raw", "anchored"), start=1):
                xy = data.maps[m][kind][0][mask]
                fig.add_trace(
                    go.Scatter(
                        x=xy[:, 0],
                        y=xy[:, 1],
                        mode="markers",
                        marker={"size": 4, "color": color, "opacity": 0.75},
                        name=f"group {g}",
                        legendgroup=f"group {g}",
                        showlegend=(r == 1 and c == 1),
                        text=hover,
                        hovertemplate="%{text}<extra>group " + str(g) + "</extra>",
                    ),
                    row=r,
                    col=c,
                )
    fig.update_layout(
        width=980,
        height=60 + 340 * len(models),
        margin={"l": 40, "r": 20, "t": 50, "b": 30},
        legend={"title": {"text": "periodic group"}},
    )
    return fig


def pca_static(data: PcaMaps) -> Any:
    """The PCA maps as a matplotlib figure (the caller saves and closes it)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    models = data.models
    fig, axes = plt.subplots(
        len(models), 2, figsize=(9, 3.6 * len(models)), squeeze=False, layout="constrained"
    )
    colors = element_group_colors(data.groups)
    for r, m in enumerate(models):
        for c, kind in enumerate(("raw", "anchored")):
            xy, ratio = data.maps[m][kind]
            ax = axes[r, c]
            ax.scatter(xy[:, 0], xy[:, 1], s=3, c=colors, rasterized=True)
            ax.set_title(f"{m} {kind}", fontsize=10)
            ax.set_xlabel(f"PC1 ({100 * ratio[0]:.0f}%)")
            ax.set_ylabel(f"PC2 ({100 * ratio[1]:.0f}%)")
    handles = [
        plt.Line2D(
            [], [], marker="o", ls="", color=element_group_colors([g])[0], label=f"group {g}"
        )
        for g in sorted(set(data.groups.tolist()))
    ]
    fig.legend(handles=handles, loc="outside right center", fontsize=8)
    return fig


def structure_figure(atoms: Any, title: str = "") -> Any:
    """A rotatable 3D view (plotly ``Scatter3d``) of a structure, atoms coloured by element."""
    import plotly.graph_objects as go
    from ase.data import covalent_radii
    from ase.data.colors import jmol_colors

    fig = go.Figure()
    symbols = np.array(atoms.get_chemical_symbols())
    for symbol in dict.fromkeys(symbols):
        mask = symbols == symbol
        z = atoms.numbers[mask][0]
        rgb = ",".join(str(int(255 * c)) for c in jmol_colors[z])
        xyz = atoms.positions[mask]
        fig.add_trace(
            go.Scatter3d(
                x=xyz[:, 0],
                y=xyz[:, 1],
                z=xyz[:, 2],
                mode="markers",
                name=str(symbol),
                marker={
                    "size": float(4 + 8 * covalent_radii[z]),
                    "color": f"rgb({rgb})",
                    "line": {"width": 0.5, "color": "#333"},
                },
                text=[f"{symbol} · site {i}" for i in np.flatnonzero(mask)],
                hovertemplate="%{text}<extra></extra>",
            )
        )
    if atoms.pbc.any() and atoms.cell.volume > 1e-6:
        corners = (
            np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)]) @ atoms.cell[:]
        )
        xs, ys, zs = [], [], []
        for a in range(8):
            for b in range(a + 1, 8):
                if bin(a ^ b).count("1") == 1:  # corners differing in one lattice vector
                    for v, out in zip(range(3), (xs, ys, zs), strict=True):
                        out += [corners[a, v], corners[b, v], None]
        fig.add_trace(
            go.Scatter3d(
                x=xs,
                y=ys,
                z=zs,
                mode="lines",
                line={"color": "#888", "width": 2},
                name="cell",
                hoverinfo="skip",
            )
        )
    fig.update_layout(
        title={"text": escape(title), "font": {"size": 13}},
        width=460,
        height=420,
        margin={"l": 0, "r": 0, "t": 40, "b": 0},
        scene={
            "aspectmode": "data",
            "xaxis_title": "x (Å)",
            "yaxis_title": "y (Å)",
            "zaxis_title": "z (Å)",
        },
    )
    return fig


def displacement_figure(df: pd.DataFrame) -> Any:
    """Orbit spread against displacement, one line per model (log scale)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for model, group in df.groupby("model", sort=False):
        group = group.sort_values("displacement")
        fig.add_trace(
            go.Scatter(
                x=group["displacement"],
                y=np.maximum(group["spread"], 1e-16),
                mode="lines+markers",
                name=str(model),
                hovertemplate="%{x} Å: spread %{y:.3g}<extra>" + str(model) + "</extra>",
            )
        )
    fig.update_layout(
        title="Orbit spread in the common space as one site moves",
        xaxis_title="displacement (Å)",
        yaxis_title="orbit spread (1 − cos)",
        yaxis_type="log",
        height=420,
    )
    return fig


def plot_dendrogram(distances: pd.DataFrame, method: str = "average", ax: Any = None) -> Any:
    """Hierarchical clustering (``scipy`` linkage) of a square distance table, drawn.

    Parameters
    ----------
    distances : DataFrame
        Symmetric distances with zero diagonal, e.g. from
        :func:`mlipspace.transport.w2_matrix`.
    method : str, default="average"
        Linkage method for ``scipy.cluster.hierarchy.linkage``.
    ax : matplotlib Axes, optional
        Where to draw; a new figure is made otherwise.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    MetricInputError
        ``distances`` is not a symmetric square table.
    """
    from matplotlib.figure import Figure
    from scipy.cluster.hierarchy import dendrogram, linkage
    from scipy.spatial.distance import squareform

    D = distances.to_numpy(dtype=np.float64)
    if D.ndim != 2 or D.shape[0] != D.shape[1] or not np.allclose(D, D.T):
        raise MetricInputError("distances must be a symmetric square table")
    if ax is None:
        fig = Figure(figsize=(max(4.0, 0.6 * len(D)), 3.5), layout="constrained")
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    Y = linkage(squareform(D, checks=False), method=method)
    dendrogram(Y, labels=[str(c) for c in distances.index], ax=ax, leaf_rotation=90)
    ax.set_ylabel("W2 distance" if method == "average" else f"distance ({method} linkage)")
    return fig


def dendrogram_static(distances: pd.DataFrame, title: str = W2_TITLE) -> Any:
    """The average-linkage dendrogram of ``distances`` as a pyplot figure (the caller saves
    and closes it, :func:`~.figures.save_figure`)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    plot_dendrogram(distances, ax=ax)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def write_platonic_figures(files: PlatonicFiles) -> list[Path]:
    """Draw the figures of a Platonic run beside its tables, from the tables alone.

    The analysis (:func:`mlipspace.platonic.run_platonic`) writes data only; the
    ``mlipspace platonic`` command and a study's Platonic stage call this after it. Written:
    one heatmap per agreement measure (``agreement/agreement_<measure>.png|svg`` and
    ``agreement/agreement.html``), the dendrogram of the W2 distances
    (:attr:`~PlatonicFiles.W2_DENDROGRAM`, PNG and SVG) and the bias map
    (:attr:`~PlatonicFiles.BIAS_FIGURE`, PNG and SVG); a figure whose table is absent is
    left out. Returns the paths written.
    """
    written: list[Path] = []
    long = files.agreement_long()
    if long is not None:
        written += write_heatmaps(long, files.path(files.AGREEMENT_FOLDER), files.AGREEMENT_LONG)
    w2 = files.matrix(files.W2)
    if w2 is not None:  # controls included, for scale
        path = files.path(files.W2_DENDROGRAM)
        written += save_figure(dendrogram_static(w2), [path, path.with_suffix(".svg")])
    bias = files.matrix(files.BIAS)
    if bias is not None:
        path = files.path(files.BIAS_FIGURE)
        figure = Heatmap(bias, BIAS_TITLE, xlabel="model", ylabel="element").static(cmap="magma")
        written += save_figure(figure, [path, path.with_suffix(".svg")])
    return written
