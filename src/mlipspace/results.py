"""The results folder: its layout, and the one set of readers and writers of its files.

Every stage writes through this module and the report reads through it, so a file's name and
format are written down once. A results folder (``mlipspace run``, ``mlipspace demo``, or the
``compare``, ``cumulants`` and ``platonic`` commands pointed at its sub-folders)::

    structures.extxyz                      the structures (info: structure_hash, subset, source)
    store.zarr/                            the feature store
    stages.json                            each stage's cache key, time and headline numbers
    summary.md                             the store's contents, GFRE tables, stage times
    compare/compare_<layer>.csv|parquet    all-pairs measures (tidy: source, target, measure, value)
    cumulants/<model>/orders_<layer>.*     Φ(m) → Φ(n) of one model
    cumulants/models/models_<layer>.*      Φ(order) across models
    diagnostics/                           symmetry, displacement, mirror_gap, relax, phonons,
                                           auroc (.csv) and summary.json
    platonic/                              anchors, anchor_coverage, agreement,
                                           agreement_uncentred, transport, transport_bulk,
                                           transport_uncentred, w2, bias_map,
                                           atypical_structures, stitching, stitching_bulk,
                                           stitching_uncentred, arithmetic, arithmetic_parallel,
                                           robustness, claims (.csv), claims.md, pca_maps.csv +
                                           pca_maps.json, summary.json, agreement/agreement.*
                                           (the agreement as a tidy table); figures drawn from
                                           these tables: w2_dendrogram.png|svg,
                                           bias_map.png|svg, agreement/agreement_*.png|svg|html
    report.html, figures/, chemiscope.json.gz   the report and its companion files

Analyses write data only; figures are drawn by :mod:`mlipspace.report` from the tables. The
report draws every figure it shows into ``figures/`` beside ``report.html``; the heatmaps
beside the ``compare/`` and ``cumulants/`` tables and the Platonic figures beside the
``platonic/`` tables (:func:`mlipspace.report.plots.write_platonic_figures`) are drawn by the
commands and the study after the analysis, for a reader of the folder without the report.

The sub-folder classes (:class:`CompareFiles`, :class:`CumulantFiles`, :class:`PlatonicFiles`,
:class:`DiagnosticsFiles`) also serve the commands that write one sub-folder anywhere
(``mlipspace platonic --out DIR``). Readers return ``None`` (or an empty list) for a file
that is absent and raise :class:`~mlipspace.errors.ResultsError` for one that is unreadable.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import ResultsError

__all__ = [
    "CompareFiles",
    "CumulantFiles",
    "DiagnosticsFiles",
    "PcaMaps",
    "PlatonicFiles",
    "ResultsFolder",
    "read_table",
    "write_table",
]

#: the commands that write each part of a results folder (for "not found" notes)
WRITTEN_BY = {
    "structures": "`mlipspace run` (or `mlipspace report --structures FILES`)",
    "store": "`mlipspace featurize --store` (then `mlipspace report --store PATH`)",
    "summary": "`mlipspace run` / `mlipspace demo`",
    "compare": "`mlipspace compare --out RESULTS/compare`",
    "cumulants": "`mlipspace cumulants --out RESULTS/cumulants`",
    "platonic": "`mlipspace platonic --out RESULTS/platonic`",
    "diagnostics": "`mlipspace platonic --diagnostics` (or a study with [diagnostics])",
}


# ----------------------------------------------------------------------------- tables


def write_table(df: pd.DataFrame, folder: str | Path, stem: str) -> list[Path]:
    """Write a tidy table as ``<stem>.parquet`` and ``<stem>.csv`` under ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{stem}.parquet", folder / f"{stem}.csv"]
    df.to_parquet(paths[0], index=False)
    df.to_csv(paths[1], index=False)
    return paths


def read_table(path: str | Path, required: Sequence[str] = (), **kwargs: Any) -> pd.DataFrame:
    """A CSV table, checked for the ``required`` columns.

    Raises
    ------
    ResultsError
        The file cannot be parsed or lacks a required column (named in the message).
    """
    path = Path(path)
    try:
        df = pd.read_csv(path, **kwargs)
    except (OSError, ValueError) as exc:
        raise ResultsError(f"{path}: unreadable table ({exc})") from exc
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ResultsError(f"{path}: missing columns {missing}")
    return df


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ResultsError(f"{path}: unreadable JSON ({exc})") from exc


def _write_json(path: Path, payload: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=float), encoding="utf-8")
    return path


def _safe(name: str) -> str:
    from .store.zarr_store import safe_name

    return safe_name(name)


# ----------------------------------------------------------------------------- sub-folders


@dataclass(frozen=True)
class CompareFiles:
    """``compare/``: one tidy table per layer (``compare_<layer>``)."""

    folder: Path

    def stem(self, layer: str) -> str:
        return f"compare_{layer}"

    def write(self, df: pd.DataFrame, stem: str) -> list[Path]:
        return write_table(df, self.folder, stem)

    def paths(self) -> list[Path]:
        return sorted(self.folder.glob("*.csv")) if self.folder.is_dir() else []

    def tables(self) -> list[tuple[str, pd.DataFrame]]:
        """Every table as (stem, table), sorted by file name."""
        required = ["source", "target", "measure", "value"]
        return [(p.stem, read_table(p, required)) for p in self.paths()]


@dataclass(frozen=True)
class CumulantFiles:
    """``cumulants/``: ``<model>/orders_<layer>`` tables and ``models/models_<layer>``."""

    folder: Path
    models_folder: str = "models"

    def write_orders(self, df: pd.DataFrame, model: str, layer: str) -> list[Path]:
        return write_table(df, self.folder / _safe(model), f"orders_{layer}")

    def write_models(self, df: pd.DataFrame, layer: str) -> list[Path]:
        return write_table(df, self.folder / self.models_folder, f"models_{layer}")

    def order_tables(self) -> list[tuple[str, str, pd.DataFrame]]:
        """(model folder, stem, table) of every order-by-order table."""
        required = ["source", "target", "measure", "value", "source_order", "target_order"]
        paths = sorted(self.folder.glob("*/orders_*.csv")) if self.folder.is_dir() else []
        return [(p.parent.name, p.stem, read_table(p, required)) for p in paths]

    def model_tables(self) -> list[tuple[str, pd.DataFrame]]:
        """(stem, table) of every cross-model table."""
        pattern = f"{self.models_folder}/models_*.csv"
        paths = sorted(self.folder.glob(pattern)) if self.folder.is_dir() else []
        return [(p.stem, read_table(p, ["source", "target", "measure", "value"])) for p in paths]


@dataclass
class PcaMaps:
    """2D PCA maps of a few models' raw and anchored spaces on one subsample of atoms.

    Attributes
    ----------
    models : list of str
    layer : str
    center : bool
        Whether the anchored space is centred on the anchors' mean.
    n_atoms, n_anchors : int
        Atoms of the common space and anchors.
    random_state : int
        Seed of the subsample.
    structure_hash, site, numbers, groups : ndarray
        Identity, atomic number and periodic group of each sampled atom.
    maps : dict
        ``maps[model][kind] = (coords (n, 2), explained variance ratios (2,))`` for kind
        ``"raw"`` and ``"anchored"``.
    """

    models: list[str]
    layer: str
    center: bool
    n_atoms: int
    n_anchors: int
    random_state: int
    structure_hash: np.ndarray
    site: np.ndarray
    numbers: np.ndarray
    groups: np.ndarray
    maps: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = field(default_factory=dict)

    KINDS = ("raw", "anchored")

    def to_frame(self) -> pd.DataFrame:
        """One row per sampled atom: identity, then ``<model> <kind> PC1/PC2`` columns."""
        columns: dict[str, Any] = {
            "structure_hash": self.structure_hash,
            "site": self.site,
            "number": self.numbers,
            "group": self.groups,
        }
        for m in self.models:
            for kind in self.KINDS:
                xy = self.maps[m][kind][0]
                columns[f"{m} {kind} PC1"] = xy[:, 0]
                columns[f"{m} {kind} PC2"] = xy[:, 1]
        return pd.DataFrame(columns)

    def meta(self) -> dict[str, Any]:
        return {
            "models": self.models,
            "layer": self.layer,
            "center": self.center,
            "n_atoms": self.n_atoms,
            "n_anchors": self.n_anchors,
            "random_state": self.random_state,
            "explained_variance_ratio": {
                m: {k: [float(v) for v in self.maps[m][k][1]] for k in self.KINDS}
                for m in self.models
            },
        }

    @classmethod
    def from_files(cls, frame: pd.DataFrame, meta: dict[str, Any]) -> PcaMaps:
        ratios = meta["explained_variance_ratio"]
        maps = {
            m: {
                k: (
                    frame[[f"{m} {k} PC1", f"{m} {k} PC2"]].to_numpy(dtype=np.float64),
                    np.asarray(ratios[m][k], dtype=np.float64),
                )
                for k in cls.KINDS
            }
            for m in meta["models"]
        }
        return cls(
            models=list(meta["models"]),
            layer=str(meta["layer"]),
            center=bool(meta["center"]),
            n_atoms=int(meta["n_atoms"]),
            n_anchors=int(meta["n_anchors"]),
            random_state=int(meta["random_state"]),
            structure_hash=frame["structure_hash"].astype(str).to_numpy(),
            site=frame["site"].to_numpy(dtype=int),
            numbers=frame["number"].to_numpy(dtype=int),
            groups=frame["group"].to_numpy(dtype=int),
            maps=maps,
        )


@dataclass(frozen=True)
class PlatonicFiles:
    """``platonic/``: the tables and summary of :func:`mlipspace.platonic.run_platonic`, and
    the figures drawn from them (:data:`W2_DENDROGRAM`, :data:`BIAS_FIGURE` and the heatmaps
    in :data:`AGREEMENT_FOLDER`: :func:`mlipspace.report.plots.write_platonic_figures`)."""

    folder: Path

    ANCHORS = "anchors.csv"
    ANCHOR_COVERAGE = "anchor_coverage.csv"
    AGREEMENT = "agreement.csv"
    AGREEMENT_UNCENTRED = "agreement_uncentred.csv"
    AGREEMENT_FOLDER = "agreement"
    AGREEMENT_LONG = "agreement"  # the stem of the tidy table (and its heatmaps) in that folder
    TRANSPORT = "transport.csv"
    TRANSPORT_BULK = "transport_bulk.csv"
    TRANSPORT_UNCENTRED = "transport_uncentred.csv"
    W2 = "w2.csv"
    W2_DENDROGRAM = "w2_dendrogram.png"
    BIAS = "bias_map.csv"
    BIAS_FIGURE = "bias_map.png"
    ATYPICAL = "atypical_structures.csv"
    STITCHING = "stitching.csv"
    STITCHING_BULK = "stitching_bulk.csv"
    STITCHING_UNCENTRED = "stitching_uncentred.csv"
    ARITHMETIC = "arithmetic.csv"
    ARITHMETIC_PARALLEL = "arithmetic_parallel.csv"
    ROBUSTNESS = "robustness.csv"
    CLAIMS = "claims.csv"
    CLAIMS_MD = "claims.md"
    PCA = "pca_maps.csv"
    PCA_META = "pca_maps.json"
    SUMMARY = "summary.json"

    def path(self, name: str) -> Path:
        return self.folder / name

    def exists(self, name: str) -> bool:
        return self.path(name).exists()

    # writers
    def write_csv(self, df: pd.DataFrame, name: str, index: bool = False) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        df.to_csv(self.path(name), index=index)
        return self.path(name)

    def write_agreement_long(self, df: pd.DataFrame) -> list[Path]:
        return write_table(df, self.folder / self.AGREEMENT_FOLDER, self.AGREEMENT_LONG)

    def write_claims(self, claims: pd.DataFrame, markdown: str) -> None:
        self.write_csv(claims, self.CLAIMS)
        self.path(self.CLAIMS_MD).write_text(markdown, encoding="utf-8")

    def write_pca_maps(self, maps: PcaMaps) -> None:
        self.write_csv(maps.to_frame(), self.PCA)
        _write_json(self.path(self.PCA_META), maps.meta())

    def write_summary(self, summary: dict[str, Any]) -> Path:
        return _write_json(self.path(self.SUMMARY), summary)

    @property
    def diagnostics(self) -> DiagnosticsFiles:
        """``diagnostics/`` inside this folder (``mlipspace platonic --diagnostics``)."""
        return DiagnosticsFiles(self.folder / "diagnostics")

    # readers
    def table(self, name: str, required: Sequence[str] = (), **kwargs: Any) -> pd.DataFrame | None:
        """``platonic/<name>`` (None when absent)."""
        path = self.path(name)
        return read_table(path, required, **kwargs) if path.exists() else None

    def matrix(self, name: str) -> pd.DataFrame | None:
        """A square table written with its index (``w2.csv``, ``bias_map.csv``)."""
        return self.table(name, index_col=0)

    def agreement_long(self) -> pd.DataFrame | None:
        """The agreement as a tidy (source, target, measure, value) table (None when absent)."""
        path = self.folder / self.AGREEMENT_FOLDER / f"{self.AGREEMENT_LONG}.csv"
        return read_table(path, ["source", "target", "measure", "value"]) if path.exists() else None

    def claims(self) -> pd.DataFrame | None:
        required = ["test", "claim", "evidence", "holds"]
        return self.table(self.CLAIMS, required, keep_default_na=False)

    def summary(self) -> dict[str, Any]:
        """``summary.json`` ({} when absent)."""
        return _read_json(self.path(self.SUMMARY)) or {}

    def pca_maps(self) -> PcaMaps | None:
        meta = _read_json(self.path(self.PCA_META))
        if meta is None or not self.exists(self.PCA):
            return None
        frame = read_table(self.path(self.PCA), ["structure_hash", "site", "number", "group"])
        try:
            return PcaMaps.from_files(frame, meta)
        except KeyError as exc:
            raise ResultsError(f"{self.path(self.PCA_META)}: no entry {exc} for the maps") from exc


@dataclass(frozen=True)
class DiagnosticsFiles:
    """``diagnostics/``: the tables and summary of :func:`mlipspace.diagnostics.run.run_diagnostics`."""

    folder: Path

    SYMMETRY = "symmetry.csv"
    DISPLACEMENT = "displacement.csv"
    MIRROR = "mirror_gap.csv"
    RELAX = "relax.csv"
    PHONONS = "phonons.csv"
    AUROC = "auroc.csv"
    SUMMARY = "summary.json"
    #: the known tables, in the order the report shows them after the displacement figure
    TABLES = (AUROC, SYMMETRY, MIRROR, RELAX, PHONONS)

    def path(self, name: str) -> Path:
        return self.folder / name

    def write_csv(self, df: pd.DataFrame, name: str) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        df.to_csv(self.path(name), index=False)
        return self.path(name)

    def write_summary(self, summary: dict[str, Any]) -> Path:
        return _write_json(self.path(self.SUMMARY), summary)

    def present(self) -> bool:
        return self.folder.is_dir() and any(self.folder.glob("*.csv"))

    def table(self, name: str, required: Sequence[str] = ()) -> pd.DataFrame | None:
        path = self.path(name)
        return read_table(path, required) if path.exists() else None

    def other_tables(self) -> list[tuple[str, pd.DataFrame]]:
        """Tables beside the known ones (a newer diagnostic), by file name."""
        known = {self.DISPLACEMENT, *self.TABLES}
        paths = sorted(self.folder.glob("*.csv")) if self.folder.is_dir() else []
        return [(p.name, read_table(p)) for p in paths if p.name not in known]

    def summary(self) -> dict[str, Any] | None:
        return _read_json(self.path(self.SUMMARY))


# ----------------------------------------------------------------------------- the folder


class _InFolder:
    """An attribute of a :class:`ResultsFolder` naming what lies at ``root / name``.

    ``folder.summary_path`` is ``folder.root / "summary.md"``; with ``kind``, the path is
    handed to it (``folder.compare`` is ``CompareFiles(folder.root / "compare")``).
    """

    def __init__(self, name: str, kind: Callable[[Path], Any] = Path):
        self.name, self.kind = name, kind

    def __get__(self, folder: Any, owner: Any = None) -> Any:
        return self if folder is None else self.kind(folder.root / self.name)


class ResultsFolder:
    """A results folder: where each file goes, and reading it back.

    Parameters
    ----------
    root : str or Path
    store : str or Path, optional
        A feature store kept elsewhere (default: ``root/store.zarr``).
    structures : sequence of str or Path, optional
        Structure files kept elsewhere (default: ``root/structures.extxyz``).
    """

    STRUCTURES = "structures.extxyz"
    STORE = "store.zarr"
    STAGES = "stages.json"
    SUMMARY = "summary.md"
    REPORT = "report.html"
    FIGURES = "figures"
    CHEMISCOPE = "chemiscope.json.gz"

    def __init__(
        self,
        root: str | Path,
        store: str | Path | None = None,
        structures: Sequence[str | Path] | None = None,
    ):
        self.root = Path(root)
        self.store_path = Path(store) if store is not None else self.root / self.STORE
        self.own_structures = bool(structures)
        self.structure_paths = (
            [Path(p) for p in structures] if structures else [self.root / self.STRUCTURES]
        )
        self._store: Any = None
        self._structures: dict[str, Any] | None = None

    # paths
    structures_path = _InFolder(STRUCTURES)
    stages_path = _InFolder(STAGES)
    summary_path = _InFolder(SUMMARY)
    report_path = _InFolder(REPORT)
    compare = _InFolder("compare", CompareFiles)
    cumulants = _InFolder("cumulants", CumulantFiles)
    platonic = _InFolder("platonic", PlatonicFiles)
    diagnostics = _InFolder("diagnostics", DiagnosticsFiles)  # where the diagnostics stage writes

    def find_diagnostics(self) -> DiagnosticsFiles:
        """The diagnostics to read: ``diagnostics/``, else ``platonic/diagnostics/`` (where
        ``mlipspace platonic --diagnostics --out RESULTS/platonic`` writes them)."""
        nested = PlatonicFiles(self.platonic.folder).diagnostics
        return nested if not self.diagnostics.present() and nested.present() else self.diagnostics

    def main_paths(self) -> list[Path]:
        """The parts a user opens first (report, summary, each stage's folder, the store)
        that exist, in that order."""
        parts = [
            self.report_path,
            self.summary_path,
            self.compare.folder,
            self.cumulants.folder,
            self.diagnostics.folder,
            self.platonic.folder,
            self.store_path,
        ]
        return [p for p in parts if p.exists()]

    # writers
    def write_structures(self, structures: Sequence[Any]) -> Path:
        from ase.io import write

        self.root.mkdir(parents=True, exist_ok=True)
        write(self.structures_path, list(structures))
        return self.structures_path

    def write_stages(self, record: dict[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.stages_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record, indent=2, default=str))
        tmp.replace(self.stages_path)

    def write_summary(self, text: str) -> Path:
        self.summary_path.write_text(text, encoding="utf-8")
        return self.summary_path

    # readers
    def stages(self) -> dict[str, Any]:
        return _read_json(self.stages_path) or {}

    def summary_text(self) -> str | None:
        path = self.summary_path
        return path.read_text(encoding="utf-8") if path.exists() else None

    def has_store(self) -> bool:
        return (self.store_path / "zarr.json").exists()

    def store(self) -> Any:
        """The feature store (read-only), or None when there is none."""
        if self._store is None and self.has_store():
            from .store import FeatureStore

            self._store = FeatureStore(self.store_path, mode="r")
        return self._store

    def has_structures(self) -> bool:
        # the user's own sources may be globs: reading them says what is wrong
        return self.own_structures or self.structures_path.exists()

    def structures(self) -> dict[str, Any] | None:
        """The structures keyed by structure hash (None when the files are absent)."""
        if self._structures is None and self.has_structures():
            from ase.io import read

            from .structures import structure_hash

            if not self.own_structures:
                frames = read(self.structures_path, index=":")
            else:  # the user's own files, read as every command reads structures
                from .structures import read_structures

                frames = list(read_structures(*self.structure_paths, deduplicate=False))
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
