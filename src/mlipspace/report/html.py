"""The self-contained HTML report of a results folder (``mlipspace report``).

The input is a folder as written by :func:`mlipspace.demo.run_demo` (or by the ``compare``,
``cumulants`` and ``platonic`` commands pointed at one folder)::

    structures.extxyz                  the structures (info: structure_hash, subset, source)
    store.zarr/                        the feature store
    compare/compare_<layer>.csv        all-pairs GFRE/LFRE/CKA/mknn (tidy)
    cumulants/<model>/orders_<layer>.csv   Φ(m) → Φ(n) of one model
    cumulants/models/models_<layer>.csv    Φ(order) across models
    platonic/                          anchors.csv, agreement.csv, transport.csv, w2.csv,
                                       w2_dendrogram.png, bias_map.csv, atypical_structures.csv,
                                       stitching.csv, arithmetic.csv, summary.json
    diagnostics/*.csv                  physical-failure diagnostics
    summary.md

Every part is optional: a section whose files are absent says so and the rest still renders.
The report is one HTML file with plotly.js embedded once (no CDN, no external font); static
PNG/SVG copies of the main figures go to ``figures/`` beside it, and a chemiscope input file
(``chemiscope.json.gz``) with the PCA maps of the anchored space when chemiscope is installed.
"""

from __future__ import annotations

import base64
import json
import logging
import platform
import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import MlipspaceError
from .template import Section, figure_block, page

logger = logging.getLogger(__name__)

__all__ = ["ReportError", "build_report", "element_group_colors", "pca_2d"]


class ReportError(MlipspaceError):
    """The results folder cannot be reported on (absent, or a file in it is unreadable)."""


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
VERSION_PACKAGES = (
    "numpy",
    "scipy",
    "pandas",
    "scikit-learn",
    "skmatter",
    "torch",
    "ase",
    "zarr",
    "pot",
    "plotly",
    "matplotlib",
    "chemiscope",
)


# ----------------------------------------------------------------------------- helpers


def element_group_colors(groups: Sequence[int]) -> list[str]:
    """One colour per periodic group (1–18)."""
    return [GROUP_COLORS[(int(g) - 1) % len(GROUP_COLORS)] for g in groups]


def pca_2d(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First two principal components of ``X`` and their explained-variance ratios.

    Signs are fixed (scikit-learn's ``svd_flip``), so the map is reproducible.
    """
    from sklearn.decomposition import PCA

    X = np.asarray(X, dtype=np.float64)
    n = min(2, X.shape[0], X.shape[1])
    pca = PCA(n_components=n, svd_solver="full").fit(X)
    coords = pca.transform(X)
    ratio = pca.explained_variance_ratio_
    if n < 2:  # a one-dimensional space still gets a (flat) map
        coords = np.column_stack([coords, np.zeros(len(X))])
        ratio = np.append(ratio, 0.0)
    return coords, ratio


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-") or "x"


def _fmt(value: Any) -> str:
    if isinstance(value, float | np.floating):
        return "" if not np.isfinite(value) else f"{value:.3g}"
    return str(value)


def _table(df: pd.DataFrame, index: bool = False, max_rows: int = 200) -> str:
    """A DataFrame as an HTML table (escaped, 4 significant digits)."""
    note = ""
    if len(df) > max_rows:
        note = f'<p class="lead">First {max_rows} of {len(df)} rows.</p>'
        df = df.head(max_rows)
    html = df.to_html(
        index=index,
        border=0,
        classes="data",
        na_rep="–",
        float_format=lambda v: f"{v:.4g}",
        escape=True,
    )
    return f'<div class="scroll">{html}</div>{note}'


def _details(summary: str, inner: str) -> str:
    return f"<details><summary>{escape(summary)}</summary>{inner}</details>"


def _read_csv(path: Path, required: Sequence[str] = (), **kwargs: Any) -> pd.DataFrame:
    try:
        df = pd.read_csv(path, **kwargs)
    except (OSError, ValueError) as exc:
        raise ReportError(f"{path}: unreadable table ({exc})") from exc
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ReportError(f"{path}: missing columns {missing}")
    return df


def _pivot(df: pd.DataFrame, index: str, columns: str, names: Sequence[Any] | None = None):
    M = df.pivot_table(index=index, columns=columns, values="value", aggfunc="mean")
    if names is not None:
        M = M.reindex(index=list(names), columns=list(names))
    return M


def _image_tag(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img class="static" alt="{escape(alt)}" src="data:image/png;base64,{data}">'


# ----------------------------------------------------------------------------- figures


class _Figures:
    """Writes plotly fragments (plotly.js embedded in the first only) and static copies."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.plotly_included = False
        self.n_plotly = 0
        self.static: list[Path] = []
        self._ids: set[str] = set()

    def plotly(self, fig: Any, name: str) -> str:
        div_id = f"fig-{_slug(name)}"
        while div_id in self._ids:
            div_id += "-2"
        self._ids.add(div_id)
        html = fig.to_html(
            full_html=False,
            include_plotlyjs=not self.plotly_included,
            div_id=div_id,
            config={"displaylogo": False, "responsive": False},
        )
        self.plotly_included = True
        self.n_plotly += 1
        return html

    def save(self, fig: Any, stem: str) -> None:
        """Save a matplotlib figure as PNG and SVG under ``figures/``."""
        import matplotlib.pyplot as plt

        self.folder.mkdir(parents=True, exist_ok=True)
        for ext in ("png", "svg"):
            path = self.folder / f"{_slug(stem)}.{ext}"
            fig.savefig(path, dpi=150)
            self.static.append(path)
        plt.close(fig)

    def copy(self, path: Path, stem: str) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        target = self.folder / f"{_slug(stem)}{path.suffix}"
        shutil.copyfile(path, target)
        self.static.append(target)

    def heatmap(
        self,
        M: pd.DataFrame,
        title: str,
        name: str,
        xlabel: str = "target",
        ylabel: str = "source",
        colorscale: str = "Viridis",
        static: bool = True,
    ) -> str:
        """Interactive heatmap (values on hover and in the cells) plus its static copy."""
        import plotly.graph_objects as go

        z = M.to_numpy(dtype=np.float64)
        x = [str(c) for c in M.columns]
        y = [str(i) for i in M.index]
        text = [[_fmt(v) for v in row] for row in z]
        heat = go.Heatmap(
            z=z,
            x=x,
            y=y,
            colorscale=colorscale,
            text=text,
            hovertemplate=(
                f"{escape(ylabel)} %{{y}}<br>{escape(xlabel)} %{{x}}<br>"
                f"{escape(title)} = %{{z:.4g}}<extra></extra>"
            ),
        )
        if z.size <= 400:
            heat.texttemplate = "%{text}"
            heat.textfont = {"size": 12 if len(y) <= 20 else 9}
        fig = go.Figure(heat)
        width = int(np.clip(220 + 62 * len(x), 420, 1100))
        height = int(np.clip(200 + (34 if len(y) <= 20 else 18) * len(y), 360, 2400))
        fig.update_layout(
            title={"text": escape(title), "font": {"size": 14}},
            xaxis={"title": escape(xlabel), "type": "category", "tickangle": -40},
            yaxis={"title": escape(ylabel), "type": "category", "autorange": "reversed"},
            width=width,
            height=height,
            margin={"l": 150, "r": 20, "t": 50, "b": 140},
        )
        if static:
            self.static_heatmap(M, title, name, xlabel, ylabel)
        return self.plotly(fig, name)

    def static_heatmap(
        self, M: pd.DataFrame, title: str, name: str, xlabel: str, ylabel: str
    ) -> None:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        z = M.to_numpy(dtype=np.float64)
        fig, ax = plt.subplots(figsize=(2.8 + 0.65 * z.shape[1], 2.2 + 0.4 * z.shape[0]))
        im = ax.imshow(z, cmap="viridis", aspect="auto")
        ax.set_xticks(range(z.shape[1]), [str(c) for c in M.columns], rotation=45, ha="right")
        ax.set_yticks(range(z.shape[0]), [str(i) for i in M.index])
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        if z.size <= 400:
            finite = z[np.isfinite(z)]
            mid = (finite.min() + finite.max()) / 2 if finite.size else 0.0
            for i in range(z.shape[0]):
                for j in range(z.shape[1]):
                    if np.isfinite(z[i, j]):
                        color = "k" if z[i, j] > mid else "w"
                        ax.text(
                            j,
                            i,
                            f"{z[i, j]:.2g}",
                            ha="center",
                            va="center",
                            fontsize=7,
                            color=color,
                        )
        fig.colorbar(im, ax=ax)
        fig.tight_layout()
        self.save(fig, name)


# ----------------------------------------------------------------------------- context


@dataclass
class _Context:
    root: Path
    figures: _Figures
    random_state: int
    max_atoms: int
    pca_models: list[str] | None
    n_structures_3d: int
    seeds: dict[str, set] = field(default_factory=dict)
    pca: dict[str, Any] | None = None
    _store: Any = None
    _structures: dict[str, Any] | None = None
    _summary: dict[str, Any] | None = None

    def path(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)

    def store(self):
        """The feature store, or None when the folder has none."""
        if self._store is None and (self.root / "store.zarr" / "zarr.json").exists():
            from ..store import FeatureStore

            self._store = FeatureStore(self.root / "store.zarr", mode="r")
        return self._store

    def structures(self) -> dict[str, Any] | None:
        """Structures of ``structures.extxyz`` keyed by structure hash (None when absent)."""
        path = self.root / "structures.extxyz"
        if self._structures is None and path.exists():
            from ase.io import read

            from ..structures import structure_hash

            frames = read(path, index=":")
            self._structures = {
                str(a.info.get("structure_hash") or structure_hash(a)): a for a in frames
            }
        return self._structures

    def find_structure(self, key: str, source: str | None = None) -> Any:
        """A structure by hash, else by ``info["source"]`` (None when not found)."""
        structures = self.structures() or {}
        if key in structures:
            return structures[key]
        if source:
            for atoms in structures.values():
                if atoms.info.get("source") == source:
                    return atoms
        return None

    def platonic_summary(self) -> dict[str, Any]:
        path = self.root / "platonic" / "summary.json"
        if self._summary is None:
            self._summary = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
        return self._summary

    def seed(self, what: str, values: Any) -> None:
        values = np.atleast_1d(np.asarray(values)).ravel()
        self.seeds.setdefault(what, set()).update(
            int(v) for v in values if pd.notna(v) and str(v) != ""
        )


# ----------------------------------------------------------------------------- sections


def _platonic_file(ctx: _Context, sec: Section, name: str) -> Path | None:
    """``platonic/<name>``, or None with the section marked missing and a note saying why."""
    path = ctx.path("platonic", name)
    if path.exists():
        return path
    sec.missing = True
    sec.note(f"platonic/{name} not found: run `mlipspace platonic` (or the demo) first.")
    return None


def _overview(ctx: _Context) -> Section:
    sec = Section("overview", "Overview")
    structures = ctx.structures()
    if structures is None:
        sec.note("structures.extxyz not found: structure counts and 3D views are unavailable.")
    else:
        frames = list(structures.values())
        subsets = pd.Series([str(a.info.get("subset", "")) for a in frames]).value_counts()
        elements = sorted({s for a in frames for s in a.get_chemical_symbols()})
        sec.lead(
            f"{len(frames)} structures, {sum(len(a) for a in frames)} atoms, "
            f"{len(elements)} elements ({escape(' '.join(elements))})."
        )
        sec.add(_table(subsets.rename_axis("subset").rename("structures").reset_index()))
    summary = ctx.path("summary.md")
    if summary.exists():
        sec.add(_details("summary.md", f"<pre>{escape(summary.read_text(encoding='utf-8'))}</pre>"))
    else:
        sec.note("summary.md not found.")
    return sec


def _models(ctx: _Context) -> Section:
    sec = Section("models", "Models and extracted features")
    store = ctx.store()
    if store is None:
        sec.missing = True
        sec.note("store.zarr not found: no feature store to describe.")
        return sec
    info = store.info()
    if info.empty:
        sec.note("The feature store holds no features.")
        return sec
    rows = []
    for _, row in info.iterrows():
        meta = store.metadata(row["model"], row["layer"])
        package = " ".join(str(meta.get(k, "")) for k in ("package", "package_version"))
        rows.append(
            {
                **row.drop(labels=["segments"], errors="ignore").to_dict(),
                "package": package.strip(),
                "checkpoint": meta.get("checkpoint", ""),
                "sha256": str(meta.get("checkpoint_sha256", ""))[:12],
                "torch": meta.get("torch_version", ""),
                "extracted": str(meta.get("time", ""))[:16].replace("T", " "),
            }
        )
    sec.lead(
        "One row per (model, layer) in <code>store.zarr</code>: structures and atoms held, "
        "feature dimension and dtype, structures the model could not featurize (skipped), and "
        "the provenance recorded at extraction time."
    )
    sec.add(_table(pd.DataFrame(rows)))
    skipped = []
    for model, layer in store.entries():
        table = store.skipped(model, layer)
        for reason, count in table["reason"].value_counts().items():
            skipped.append({"model": model, "layer": layer, "reason": reason, "structures": count})
    if skipped:
        sec.heading("Skipped structures")
        sec.add(_table(pd.DataFrame(skipped)))
    return sec


def _compare(ctx: _Context) -> Section:
    sec = Section("compare", "Pairwise comparison (GFRE, LFRE, CKA, mutual kNN)")
    files = sorted(ctx.path("compare").glob("*.csv"))
    if not files:
        sec.missing = True
        sec.note("compare/*.csv not found: run `mlipspace compare` (or the demo) first.")
        return sec
    sec.lead(
        "Row = source (the features used to reconstruct), column = target. Hover a cell for its "
        "value. " + " ".join(escape(v) for v in MEASURE_NOTES.values())
    )
    for path in files:
        df = _read_csv(path, ["source", "target", "measure", "value"])
        names = list(dict.fromkeys([*df["source"], *df["target"]]))
        layer = ", ".join(map(str, df["layer"].dropna().unique())) if "layer" in df else "?"
        sec.heading(f"{path.stem} (layer {layer})")
        if "seed" in df:
            ctx.seed("compare", df["seed"].dropna())
        figs = [
            ctx.figures.heatmap(
                _pivot(df[df.measure == measure], "source", "target", names),
                measure,
                f"{path.stem}_{measure}",
            )
            for measure in dict.fromkeys(df["measure"])
        ]
        sec.add(figure_block(figs))
        dims = [c for c in ("dim_source", "effective_rank_source") if c in df]
        if dims:
            table = (
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
                + ", ".join(f"{k} = {escape(_fmt(v))}" for k, v in extra.items())
                + ".</p>"
            )
            sec.add(_table(table))
        sec.add(_details(f"full table ({path.name})", _table(df, max_rows=500)))
    return sec


def _cumulants(ctx: _Context) -> Section:
    sec = Section("cumulants", "Cumulant orders (structure level)")
    folder = ctx.path("cumulants")
    orders = sorted(folder.glob("*/orders_*.csv"))
    models = sorted(folder.glob("models/models_*.csv"))
    if not orders and not models:
        sec.missing = True
        sec.note("cumulants/*/orders_*.csv and cumulants/models/models_*.csv not found.")
        return sec
    sec.lead(
        "Φ(n): structure features made of the first n cumulants of the per-atom features. "
        "Order table: GFRE/LFRE of Φ(row) → Φ(column) for one model (small values above the "
        "diagonal mean the higher orders add little). Cross-model table: the models compared on "
        "Φ(order)."
    )
    if not orders:
        sec.note("No order-by-order table (cumulants/<model>/orders_*.csv).")
    for path in orders:
        df = _read_csv(
            path, ["source", "target", "measure", "value", "source_order", "target_order"]
        )
        if "seed" in df:
            ctx.seed("cumulants", df["seed"].dropna())
        model = path.parent.name
        sec.heading(f"{model}: {path.stem}")
        labels = [f"Φ({k})" for k in sorted({*df.source_order, *df.target_order})]
        figs = [
            ctx.figures.heatmap(
                _pivot(df[df.measure == measure], "source", "target", labels),
                f"{measure} Φ(m) → Φ(n)",
                f"cumulants_{model}_{path.stem}_{measure}",
                xlabel="target order",
                ylabel="source order",
            )
            for measure in dict.fromkeys(df["measure"])
        ]
        sec.add(figure_block(figs))
    if not models:
        sec.note("No cross-model table (cumulants/models/models_*.csv).")
    for path in models:
        df = _read_csv(path, ["source", "target", "measure", "value"])
        if "seed" in df:
            ctx.seed("cumulants", df["seed"].dropna())
        order = f" on Φ({int(df['order'].iloc[0])})" if "order" in df else ""
        sec.heading(f"Across models{order}: {path.stem}")
        names = list(dict.fromkeys([*df["source"], *df["target"]]))
        figs = [
            ctx.figures.heatmap(
                _pivot(df[df.measure == measure], "source", "target", names),
                f"{measure}{order}",
                f"cumulants_models_{path.stem}_{measure}",
            )
            for measure in dict.fromkeys(df["measure"])
        ]
        sec.add(figure_block(figs))
    return sec


def _pca_data(ctx: _Context) -> dict[str, Any]:
    """Raw and anchored 2D PCA maps of a few models on a shared subsample of atoms."""
    from ..platonic.chemistry import element_group
    from ..platonic.space import is_control, project, sample_rows

    store = ctx.store()
    settings = ctx.platonic_summary().get("settings", {})
    layer = settings.get("layer", "node")
    center = bool(settings.get("center", False))
    entries = store.entries()
    if ctx.pca_models:
        models = list(ctx.pca_models)
        absent = [m for m in models if (m, layer) not in entries]
        if absent:
            raise ReportError(f"no {layer!r} features in the store for {absent}")
    else:
        candidates = settings.get("models") or [m for m, lay in entries if lay == layer]
        models = [m for m in candidates if not is_control(m) and (m, layer) in entries][:3]
    if not models:
        raise ReportError(f"no trained model with {layer!r} features in the store")
    aligned = store.aligned([(m, layer) for m in models])
    tables = {m: aligned[(m, layer)] for m in models}
    first = tables[models[0]]
    anchors = _read_csv(ctx.path("platonic", "anchors.csv"), ["structure_hash", "site"])
    lookup = {
        (h, int(s)): i
        for i, (h, s) in enumerate(zip(first.structure_hash, first.site, strict=True))
    }
    anchor_rows = np.array(
        [
            lookup.get((h, int(s)), -1)
            for h, s in zip(anchors.structure_hash, anchors.site, strict=True)
        ]
    )
    if (anchor_rows < 0).any():
        raise ReportError(
            f"{int((anchor_rows < 0).sum())} of {len(anchor_rows)} anchors of platonic/anchors.csv "
            f"are not among the atoms of {models} ({layer})"
        )
    sample = sample_rows(len(first), ctx.max_atoms, ctx.random_state)
    maps = {}
    for m, table in tables.items():
        E = np.asarray(table.X, dtype=np.float64)
        raw, raw_ratio = pca_2d(E[sample])
        anchored, anchored_ratio = pca_2d(project(E, anchor_rows, center)[sample])
        maps[m] = {"raw": (raw, raw_ratio), "anchored": (anchored, anchored_ratio)}
    numbers = first.numbers[sample]
    ctx.seed("report subsample", ctx.random_state)
    return {
        "models": models,
        "layer": layer,
        "center": center,
        "n_atoms": len(first),
        "n_anchors": len(anchor_rows),
        "sample": sample,
        "structure_hash": first.structure_hash[sample],
        "site": first.site[sample],
        "numbers": numbers,
        "groups": element_group(numbers),
        "maps": maps,
    }


def _pca(ctx: _Context) -> Section:
    sec = Section("pca", "PCA maps of raw and anchored spaces")
    missing = [
        p
        for p in ("store.zarr/zarr.json", "platonic/anchors.csv")
        if not ctx.path(*p.split("/")).exists()
    ]
    if missing:
        sec.missing = True
        sec.note(f"{', '.join(missing)} not found: the maps need the store and the anchors.")
        return sec
    data = _pca_data(ctx)
    ctx.pca = data
    sec.lead(
        f"First two principal components of each model's raw <code>{escape(data['layer'])}</code> "
        f"features (left) and of the same atoms in the common anchored space (right: cosine to "
        f"{data['n_anchors']} anchor atoms{', centred' if data['center'] else ''}), on "
        f"{len(data['sample'])} of {data['n_atoms']} atoms (seed {ctx.random_state}). Colour = "
        "periodic group. In the anchored space the models should look alike."
    )
    sec.add(ctx.figures.plotly(_pca_plotly(data), "pca-maps"))
    _pca_static(ctx, data)
    return sec


def _pca_plotly(data: dict[str, Any]):
    import plotly.graph_objects as go
    from ase.data import chemical_symbols
    from plotly.subplots import make_subplots

    models = data["models"]
    titles = []
    for m in models:
        for kind in ("raw", "anchored"):
            ratio = data["maps"][m][kind][1]
            titles.append(f"{m} {kind} ({100 * ratio[0]:.0f}% + {100 * ratio[1]:.0f}%)")
    fig = make_subplots(
        rows=len(models),
        cols=2,
        subplot_titles=titles,
        horizontal_spacing=0.08,
        vertical_spacing=0.1,
    )
    groups = data["groups"]
    symbols = np.array([chemical_symbols[z] for z in data["numbers"]])
    for g in sorted(set(groups.tolist())):
        mask = groups == g
        color = element_group_colors([g])[0]
        hover = [f"{s} · site {i}" for s, i in zip(symbols[mask], data["site"][mask], strict=True)]
        for r, m in enumerate(models, start=1):
            for c, kind in enumerate(("raw", "anchored"), start=1):
                xy = data["maps"][m][kind][0][mask]
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


def _pca_static(ctx: _Context, data: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    models = data["models"]
    fig, axes = plt.subplots(
        len(models), 2, figsize=(9, 3.6 * len(models)), squeeze=False, layout="constrained"
    )
    colors = element_group_colors(data["groups"])
    for r, m in enumerate(models):
        for c, kind in enumerate(("raw", "anchored")):
            xy, ratio = data["maps"][m][kind]
            ax = axes[r, c]
            ax.scatter(xy[:, 0], xy[:, 1], s=3, c=colors, rasterized=True)
            ax.set_title(f"{m} {kind}", fontsize=10)
            ax.set_xlabel(f"PC1 ({100 * ratio[0]:.0f}%)")
            ax.set_ylabel(f"PC2 ({100 * ratio[1]:.0f}%)")
    handles = [
        plt.Line2D(
            [], [], marker="o", ls="", color=element_group_colors([g])[0], label=f"group {g}"
        )
        for g in sorted(set(data["groups"].tolist()))
    ]
    fig.legend(handles=handles, loc="outside right center", fontsize=8)
    ctx.figures.save(fig, "pca_maps")


def _agreement(ctx: _Context) -> Section:
    sec = Section("agreement", "Agreement in the common space")
    path = _platonic_file(ctx, sec, "agreement.csv")
    if path is None:
        return sec
    df = _read_csv(path, ["source", "target"])
    settings = ctx.platonic_summary().get("settings", {})
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
    figs = [
        ctx.figures.heatmap(
            _pivot(
                both[both.measure == m].drop_duplicates(["source", "target"]),
                "source",
                "target",
                names,
            ),
            m,
            f"agreement_{m}",
        )
        for m in measures
    ]
    sec.add(figure_block(figs))
    summary = ctx.platonic_summary()
    rows = []
    if summary.get("trained_pairs"):
        rows.append({"pairs": "trained models", **summary["trained_pairs"]})
    for name, values in (summary.get("controls") or {}).items():
        rows.append({"pairs": f"trained vs {name}", **values})
    if rows:
        sec.heading("Means over pairs (platonic/summary.json)")
        sec.add(_table(pd.DataFrame(rows)))
    if settings:
        sec.add(
            _details(
                "settings",
                _table(
                    pd.DataFrame(
                        {"setting": list(settings), "value": [str(v) for v in settings.values()]}
                    )
                ),
            )
        )
    sec.add(_details("full table (agreement.csv)", _table(df)))
    return sec


def _transport(ctx: _Context) -> Section:
    sec = Section("transport", "Optimal transport between models")
    w2_path = _platonic_file(ctx, sec, "w2.csv")
    if w2_path is None:
        return sec
    w2 = _read_csv(w2_path, index_col=0)
    sec.lead(
        "W2: Wasserstein-2 distance between the clouds of anchored atoms of two models (exact "
        "optimal transport, uniform weights); the dendrogram clusters models by it."
    )
    figs = [ctx.figures.heatmap(w2, "W2 distance", "w2", xlabel="model", ylabel="model")]
    dendrogram = ctx.path("platonic", "w2_dendrogram.png")
    if dendrogram.exists():
        figs.append(_image_tag(dendrogram, "W2 dendrogram"))
        ctx.figures.copy(dendrogram, "w2_dendrogram")
        if dendrogram.with_suffix(".svg").exists():
            ctx.figures.copy(dendrogram.with_suffix(".svg"), "w2_dendrogram")
    else:
        sec.note("platonic/w2_dendrogram.png not found.")
    sec.add(figure_block(figs))
    transport = ctx.path("platonic", "transport.csv")
    if transport.exists():
        sec.heading("Atom matching by transport (transport.csv)")
        sec.add(_table(_read_csv(transport)))
    else:
        sec.note("platonic/transport.csv not found.")
    return sec


def _bias(ctx: _Context) -> Section:
    sec = Section("bias", "Bias map")
    path = _platonic_file(ctx, sec, "bias_map.csv")
    if path is None:
        return sec
    bias = _read_csv(path, index_col=0)
    sec.lead(
        "Mean deviation 1 − cos(z, consensus) of each model from the consensus of the trained "
        "models, per element (rows). High values: the model sees that element differently."
    )
    sec.add(
        ctx.figures.heatmap(
            bias,
            "1 − cos(z, consensus)",
            "bias_map",
            xlabel="model",
            ylabel="element",
            colorscale="Magma",
        )
    )
    return sec


def _atypical(ctx: _Context) -> Section:
    sec = Section("atypical", "Atypical structures")
    path = _platonic_file(ctx, sec, "atypical_structures.csv")
    if path is None:
        return sec
    df = _read_csv(path, ["structure_hash", "dispersion_mean"])
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
        _table(top[shown].rename_axis("rank").reset_index().assign(rank=lambda t: t["rank"] + 1))
    )
    structures = ctx.structures()
    if structures is None:
        sec.note("structures.extxyz not found: no 3D views.")
        return sec
    figs = []
    for rank, row in enumerate(top.head(ctx.n_structures_3d).itertuples(), start=1):
        atoms = ctx.find_structure(row.structure_hash, getattr(row, "source", None))
        if atoms is None:
            sec.note(f"structure {row.structure_hash} is not in structures.extxyz.")
            continue
        title = f"#{rank} {atoms.get_chemical_formula()} ({getattr(row, 'source', '')})"
        figs.append(ctx.figures.plotly(structure_figure(atoms, title), f"atypical-{rank}"))
    sec.add(figure_block(figs))
    return sec


def structure_figure(atoms: Any, title: str = ""):
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


def _stitching(ctx: _Context) -> Section:
    sec = Section("stitching", "Stitching and embedding arithmetic")
    found = False
    path = ctx.path("platonic", "stitching.csv")
    if path.exists():
        found = True
        sec.lead(
            "Zero-shot stitching: a linear head trained on one model's anchored vectors, applied "
            "unchanged to another model's (zero_shot), against a head trained on that model "
            "(in_model), on the raw features (raw) and chance."
        )
        sec.add(_table(_read_csv(path)))
    else:
        sec.note("platonic/stitching.csv not found.")
    path = ctx.path("platonic", "arithmetic.csv")
    summary = ctx.platonic_summary()
    arithmetic = summary.get("arithmetic")
    if path.exists():
        found = True
        sec.heading("Embedding arithmetic (arithmetic.csv)")
        sec.add(_table(_read_csv(path)))
    elif isinstance(arithmetic, dict) and "skipped" in arithmetic:
        sec.note(f"Embedding arithmetic skipped: {arithmetic['skipped']}")
    else:
        sec.note("platonic/arithmetic.csv not found.")
    if summary.get("fine_tune"):
        found = True
        sec.heading("Fine-tuned models against their base")
        sec.add(_table(pd.DataFrame(summary["fine_tune"])))
    sec.missing = not found
    return sec


def _claims(ctx: _Context) -> Section:
    sec = Section("claims", "Which claims of the papers hold here")
    path = _platonic_file(ctx, sec, "claims.csv")
    if path is None:
        return sec
    claims = _read_csv(path, ["test", "claim", "evidence", "holds"], keep_default_na=False)
    sec.lead(
        "The checks T0–T10 of the Platonic-representation paper (Li & Walsh 2025) on these "
        "models: each claim, the evidence measured here and the verdict. The paper's own "
        "models are not offline, so the checks compare orderings and gaps, not its numbers."
    )
    verdict = {"True": "holds", "False": "does not hold", "": "undecided"}
    claims = claims.assign(verdict=[verdict.get(str(v), str(v)) for v in claims["holds"]])
    sec.add(_table(claims[["test", "claim", "evidence", "verdict", "note"]]))
    return sec


def _diagnostics(ctx: _Context) -> Section:
    sec = Section("diagnostics", "Diagnostics")
    folder = next(
        (
            ctx.path(*parts)
            for parts in (("platonic", "diagnostics"), ("diagnostics",))
            if list(ctx.path(*parts).glob("*.csv"))
        ),
        None,
    )
    if folder is None:
        sec.missing = True
        sec.note(
            "platonic/diagnostics/*.csv not found: run the physical-failure diagnostics "
            "(`mlipspace platonic --diagnostics`, or the demo) to add them."
        )
        return sec
    sec.lead(
        "Physical-failure diagnostics. Symmetry: sites that spglib makes equivalent must have "
        "equal features (orbit spread 1 − cos, ≈ 0), and the spread must grow as one site "
        "moves. Mirror: the gap between a structure and its mirror image (models that do not "
        "track parity show one). Relaxation and phonons with each model's own calculator, and "
        "how well the Platonic deviation from the consensus flags the failures (AUROC)."
    )
    series = folder / "displacement.csv"
    if series.exists():
        df = _read_csv(series, ["model", "displacement", "spread"])
        if len(df):
            sec.add(figure_block([ctx.figures.plotly(_displacement_figure(df), "displacement")]))
    for name, title in (
        ("auroc.csv", "Does the Platonic deviation flag failures? (AUROC)"),
        ("symmetry.csv", "Orbit spread of stored high-symmetry structures"),
        ("mirror_gap.csv", "Mirror-image gap in the common space"),
        ("relax.csv", "Unconstrained relaxation: symmetry kept or lost"),
        ("phonons.csv", "Phonons of each model's relaxed cell"),
    ):
        path = folder / name
        if path.exists():
            sec.heading(title)
            sec.add(_table(_read_csv(path)))
    for path in sorted(folder.glob("*.csv")):
        if path.name not in {
            "displacement.csv",
            "auroc.csv",
            "symmetry.csv",
            "mirror_gap.csv",
            "relax.csv",
            "phonons.csv",
        }:
            sec.heading(path.name)
            sec.add(_table(_read_csv(path)))
    return sec


def _displacement_figure(df: pd.DataFrame):
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


def package_versions(packages: Sequence[str] = VERSION_PACKAGES) -> dict[str, str]:
    """Installed versions of ``packages`` (``"not installed"`` when absent)."""
    from .. import __version__

    out = {"mlipspace": __version__, "python": platform.python_version()}
    for name in packages:
        try:
            out[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _provenance(ctx: _Context) -> Section:
    sec = Section("provenance", "Versions and seeds")
    sec.lead("Packages of the environment that built this report:")
    versions = package_versions()
    sec.add(_table(pd.DataFrame({"package": list(versions), "version": list(versions.values())})))
    store = ctx.store()
    if store is not None:
        rows = []
        for model, layer in store.entries():
            meta = store.metadata(model, layer)
            rows.append(
                {
                    "model": model,
                    "package": meta.get("package", ""),
                    "package version": meta.get("package_version", ""),
                    "torch": meta.get("torch_version", ""),
                    "checkpoint": meta.get("checkpoint", ""),
                    "checkpoint sha256": meta.get("checkpoint_sha256", ""),
                    "mlipspace": meta.get("mlipspace_version", ""),
                }
            )
        if rows:
            sec.heading("Model packages recorded at extraction time")
            sec.add(_table(pd.DataFrame(rows).drop_duplicates("model")))
    else:
        sec.note("store.zarr not found: model package versions unavailable.")
    sec.heading("Seeds")
    seeds = [{"stage": k, "seed(s)": ", ".join(map(str, sorted(v)))} for k, v in ctx.seeds.items()]
    if seeds:
        sec.add(_table(pd.DataFrame(seeds)))
    else:
        sec.note("No seed recorded in the results found.")
    return sec


SECTIONS: tuple[Callable[[_Context], Section], ...] = (
    _overview,
    _claims,
    _models,
    _compare,
    _cumulants,
    _pca,
    _agreement,
    _transport,
    _bias,
    _atypical,
    _stitching,
    _diagnostics,
)


# ----------------------------------------------------------------------------- chemiscope


def write_chemiscope(ctx: _Context, path: Path) -> Path:
    """Structures of the PCA subsample with the maps as per-atom properties (chemiscope input)."""
    import chemiscope

    data = ctx.pca
    structures = ctx.structures()
    if data is None or structures is None:
        raise ReportError("the chemiscope file needs the PCA maps and structures.extxyz")
    hashes = list(dict.fromkeys(data["structure_hash"]))
    absent = [h for h in hashes if h not in structures]
    if absent:
        raise ReportError(f"{len(absent)} structures of the store are not in structures.extxyz")
    index = {h: i for i, h in enumerate(hashes)}
    frames = []
    for h in hashes:
        atoms = structures[h].copy()
        atoms.info = {k: v for k, v in atoms.info.items() if isinstance(v, str | int | float)}
        atoms.arrays = {k: v for k, v in atoms.arrays.items() if k in ("numbers", "positions")}
        atoms.calc = None
        frames.append(atoms)
    environments = [
        (index[h], int(s), 4.0) for h, s in zip(data["structure_hash"], data["site"], strict=True)
    ]
    properties: dict[str, Any] = {
        "element group": {"target": "atom", "values": data["groups"].astype(float)},
        "Z": {"target": "atom", "values": data["numbers"].astype(float)},
    }
    for m in data["models"]:
        for kind in ("anchored", "raw"):
            properties[f"{m} {kind} PCA"] = {
                "target": "atom",
                "values": data["maps"][m][kind][0],
                "description": f"first two principal components of the {kind} {data['layer']} space",
            }
    first = data["models"][0]
    chemiscope.write_input(
        str(path),
        structures=frames,
        properties=properties,
        environments=environments,
        metadata={
            "name": "mlipspace: PCA maps of raw and anchored spaces",
            "description": f"{len(environments)} atoms; models {', '.join(data['models'])}",
        },
        settings={
            "map": {
                "x": {"property": f"{first} anchored PCA[1]"},
                "y": {"property": f"{first} anchored PCA[2]"},
                "color": {"property": "element group"},
            }
        },
    )
    return path


# ----------------------------------------------------------------------------- main


def build_report(
    results_dir: str | Path,
    out_path: str | Path | None = None,
    *,
    pca_models: Sequence[str] | None = None,
    max_atoms: int = 3000,
    n_structures_3d: int = 3,
    random_state: int = 0,
    chemiscope: bool = True,
    strict: bool = False,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Write the self-contained HTML report of a results folder.

    Parameters
    ----------
    results_dir : str or Path
        A folder as written by :func:`mlipspace.demo.run_demo` (see the module docstring);
        every part is optional.
    out_path : str or Path, optional
        The HTML file; ``results_dir/report.html`` by default. ``figures/`` (static PNG/SVG)
        and ``chemiscope.json.gz`` are written beside it.
    pca_models : sequence of str, optional
        Models of the PCA maps; by default the first three trained models of the Platonic run.
    max_atoms : int, default=3000
        Atoms subsampled for the PCA maps and the chemiscope file.
    n_structures_3d : int, default=3
        Atypical structures shown in 3D.
    random_state : int, default=0
        Seed of the atom subsample.
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
    if max_atoms < 10:
        raise ReportError(f"max_atoms must be at least 10, not {max_atoms}")
    out = Path(out_path) if out_path is not None else root / "report.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    figures = _Figures(out.parent / "figures")
    ctx = _Context(
        root=root,
        figures=figures,
        random_state=random_state,
        max_atoms=max_atoms,
        pca_models=list(pca_models) if pca_models else None,
        n_structures_3d=n_structures_3d,
    )
    sections = []
    for builder in SECTIONS:
        name = builder.__name__.strip("_")
        if progress:
            progress(name)
        try:
            sections.append(builder(ctx))
        except Exception as exc:  # one broken input must not hide every other result
            if strict:
                raise
            logger.warning("report section %s failed: %s", name, exc)
            failed = Section(name, name.capitalize())
            failed.note(f"This section could not be built: {type(exc).__name__}: {exc}")
            sections.append(failed)

    files = Section("files", "Companion files")
    rel = [p.relative_to(out.parent).as_posix() for p in figures.static]
    if rel:
        files.lead(
            f"Static copies of the figures for papers ({len(rel)} files in "
            f"<code>{escape(figures.folder.name)}/</code>): "
            + ", ".join(f"<code>{escape(r)}</code>" for r in rel)
            + "."
        )
    if chemiscope:
        if progress:
            progress("chemiscope")
        target = out.parent / "chemiscope.json.gz"
        try:
            if ctx.pca is None or ctx.structures() is None:
                raise FileNotFoundError("it needs the PCA maps and structures.extxyz")
            write_chemiscope(ctx, target)
        except ImportError:
            files.note("chemiscope is not installed: `pip install chemiscope` to get the map file.")
        except FileNotFoundError as exc:
            files.note(f"chemiscope file not written: {exc}")
        except Exception as exc:
            if strict:
                raise
            files.note(f"chemiscope file not written: {exc}")
        else:
            files.lead(
                f"<code>{target.name}</code>: the PCA maps with their structures, for interactive "
                "exploration (drop it on the chemiscope viewer, or "
                "<code>chemiscope.show_input('chemiscope.json.gz')</code> in a notebook)."
            )
    if progress:
        progress("provenance")
    sections.append(files)
    sections.append(_provenance(ctx))

    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    html = page(
        "mlipspace report",
        [
            f"Results: <code>{escape(str(root.resolve()))}</code>",
            f"Built {stamp} with mlipspace {escape(package_versions(())['mlipspace'])}; "
            f"{figures.n_plotly} interactive figures, plotly.js embedded (works offline).",
        ],
        sections,
    )
    out.write_text(html, encoding="utf-8")
    return out
