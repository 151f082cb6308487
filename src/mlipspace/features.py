"""The per-atom feature table shared by the store, the featurizers and the measures."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

STRUCTURE_COLUMNS = ("structure_hash", "n_atoms", "subset", "source", "parent")


@dataclass
class AtomFeatures:
    """Per-atom features of one (model, layer), with the identity of every row.

    An atom is identified by ``(structure_hash[i], site[i])``; row order carries no
    meaning of its own, so two ``AtomFeatures`` are compared only after alignment
    (:meth:`mlipspace.FeatureStore.aligned` or :func:`align`).

    Attributes
    ----------
    X : ndarray of shape (n_atoms, n_features)
        The features.
    structure_hash : ndarray of str, shape (n_atoms,)
        Content hash of the structure each atom belongs to.
    site : ndarray of int, shape (n_atoms,)
        Index of the atom within its structure.
    numbers : ndarray of int, shape (n_atoms,)
        Atomic numbers.
    structure_index : ndarray of int, shape (n_atoms,)
        Row of :attr:`structures` each atom belongs to.
    structures : DataFrame
        One row per structure: ``structure_hash, n_atoms, subset, source, parent``.
    model, layer : str
        What produced the features.
    metadata : dict
        Provenance (package and checkpoint versions, dtype, time, ...).
    """

    X: np.ndarray
    structure_hash: np.ndarray
    site: np.ndarray
    numbers: np.ndarray
    structure_index: np.ndarray
    structures: pd.DataFrame
    model: str = ""
    layer: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = self.X.shape[0]
        for name in ("structure_hash", "site", "numbers", "structure_index"):
            if len(getattr(self, name)) != n:
                raise ValueError(
                    f"AtomFeatures.{name} has {len(getattr(self, name))} rows, X has {n}"
                )

    def __len__(self) -> int:
        return self.X.shape[0]

    @property
    def n_features(self) -> int:
        return int(self.X.shape[1])

    @property
    def subset(self) -> np.ndarray:
        """Subset label of every atom (from its structure)."""
        return self.structures["subset"].to_numpy()[self.structure_index]

    @property
    def atom_ids(self) -> pd.MultiIndex:
        """The (structure_hash, site) identity of every row."""
        return pd.MultiIndex.from_arrays(
            [self.structure_hash, self.site], names=["structure_hash", "site"]
        )

    def per_structure(self) -> dict[str, np.ndarray]:
        """The features of each structure as one array, rows in site order.

        Returns
        -------
        dict
            ``{structure_hash: ndarray (n_atoms_held, n_features)}`` in the order of
            :attr:`structures`; a structure whose atoms are only partly held (after
            :meth:`take`) gets the rows it has, sorted by site.

        Examples
        --------
        >>> table = store.read("soap", "ll")                       # doctest: +SKIP
        >>> table.per_structure()[atoms.info["structure_hash"]]    # doctest: +SKIP
        """
        order = np.lexsort((self.site, self.structure_index))
        index = self.structure_index[order]
        starts = np.searchsorted(index, np.arange(len(self.structures) + 1))
        hashes = self.structures["structure_hash"].to_numpy()
        return {
            str(hashes[i]): self.X[order[starts[i] : starts[i + 1]]]
            for i in range(len(self.structures))
        }

    def structure(self, key: Any) -> np.ndarray:
        """The features of one structure, rows in site order.

        Parameters
        ----------
        key : str or ase.Atoms
            A structure hash, or a structure (its ``info["structure_hash"]``, or the hash
            computed from its content: the hash depends on positions *and* cell orientation,
            so a rotated copy or a CIF round trip that re-orients the cell is another
            structure).
        """
        from .errors import StoreError

        if not isinstance(key, str):
            from .structures import structure_hash

            key = key.info.get("structure_hash") or structure_hash(key)
        rows = np.flatnonzero(self.structure_hash == key)
        if not len(rows):
            raise StoreError(
                f"structure {key} is not in the {self.model or 'feature'}/{self.layer} table "
                "(a rotated or re-oriented copy has another hash; look it up by "
                "`structures` row, source or formula instead)"
            )
        return self.X[rows[np.argsort(self.site[rows])]]

    def take(self, rows: np.ndarray) -> AtomFeatures:
        """A new table with the given rows (indices or boolean mask).

        Structures are re-indexed in the order their atoms first appear in ``rows``.
        """
        rows = np.asarray(rows)
        if rows.dtype == bool:
            rows = np.flatnonzero(rows)
        new_index, used = pd.factorize(self.structure_index[rows])
        return AtomFeatures(
            X=self.X[rows],
            structure_hash=self.structure_hash[rows],
            site=self.site[rows],
            numbers=self.numbers[rows],
            structure_index=new_index.astype(np.int64),
            structures=self.structures.iloc[used].reset_index(drop=True),
            model=self.model,
            layer=self.layer,
            metadata=dict(self.metadata),
        )

    @classmethod
    def concatenate(cls, parts: list[AtomFeatures]) -> AtomFeatures:
        """Stack tables of the same (model, layer); structures are not de-duplicated."""
        if not parts:
            raise ValueError("nothing to concatenate")
        offsets = np.cumsum([0] + [len(p.structures) for p in parts[:-1]])
        return cls(
            X=np.concatenate([p.X for p in parts]),
            structure_hash=np.concatenate([p.structure_hash for p in parts]),
            site=np.concatenate([p.site for p in parts]),
            numbers=np.concatenate([p.numbers for p in parts]),
            structure_index=np.concatenate(
                [p.structure_index + o for p, o in zip(parts, offsets, strict=True)]
            ),
            structures=pd.concat([p.structures for p in parts], ignore_index=True),
            model=parts[0].model,
            layer=parts[0].layer,
            metadata=dict(parts[0].metadata),
        )


def feature_array_problem(array: np.ndarray, n_atoms: int, width: int | None = None) -> str | None:
    """What is wrong with one structure's per-atom feature array, in words; None if nothing.

    The array must have one row per atom (and ``width`` columns when given) and hold finite
    numbers only. The featurizer (checking a model's output) and the store (checking what it
    is asked to write) both ask this, and each names the model, layer and structure.
    """
    array = np.asarray(array)
    if array.ndim != 2 or array.shape[0] != n_atoms or width not in (None, array.shape[1]):
        expected = "" if width is None else f", expected {(n_atoms, width)}"
        return f"{n_atoms} atoms but features of shape {array.shape}{expected}"
    if not np.isfinite(array).all():
        return "NaN or inf features"
    return None


def align(tables: Mapping[Any, AtomFeatures]) -> dict[Any, AtomFeatures]:
    """Restrict several tables to the atoms they all hold, in one shared row order.

    The shared order is that of the first table. Raises ``ValueError`` when two
    tables disagree on a structure's atom count or an atom's element.
    """
    from .errors import StoreError

    keys = list(tables)
    if not keys:
        return {}
    first = tables[keys[0]]
    common = first.atom_ids
    for key in keys[1:]:
        common = common.intersection(tables[key].atom_ids, sort=False)
    # intersection() may reorder; restore the first table's order
    order = first.atom_ids.get_indexer(common)
    order.sort()
    reference_ids = first.atom_ids[order]
    out = {}
    for key in keys:
        t = tables[key]
        rows = t.atom_ids.get_indexer(reference_ids)
        if (rows < 0).any():  # duplicate ids in a table make get_indexer fail silently
            raise StoreError(f"{key}: atom identities are not unique")
        sub = t.take(rows)
        if not np.array_equal(sub.numbers, first.numbers[order]):
            raise StoreError(f"{key}: atomic numbers disagree with {keys[0]} for the same atoms")
        out[key] = sub
    return out


#: an atom whose feature norm exceeds this multiple of its model's median atom norm marks its
#: structure as a feature outlier (see :func:`drop_outlier_structures`)
OUTLIER_FACTOR = 100.0


def outlier_structures(table: AtomFeatures, factor: float = OUTLIER_FACTOR) -> pd.DataFrame:
    """Structures holding an atom whose feature norm exceeds ``factor`` × the median atom norm.

    Far outside its training data a model can return features many orders of magnitude
    above their usual size (measured here: SevenNet-0 gave 10⁹ on compressed fluorine where
    its median is 11). One such atom carries all the variance of a linear measure and makes
    every other atom look constant.

    Returns
    -------
    DataFrame
        ``structure_hash, source, model, ratio`` (largest atom norm over the median), one row
        per outlier structure, largest ratio first.
    """
    norms = np.linalg.norm(np.asarray(table.X, dtype=np.float64), axis=1)
    median = float(np.median(norms)) if len(norms) else 0.0
    if median <= 0:
        return pd.DataFrame(columns=["structure_hash", "source", "model", "ratio"])
    ratio = pd.Series(norms / median).groupby(table.structure_index).max()
    bad = ratio[ratio > factor]
    source = table.structures.get("source", pd.Series([""] * len(table.structures)))
    return pd.DataFrame(
        {
            "structure_hash": table.structures["structure_hash"].to_numpy()[bad.index],
            "source": np.asarray(source)[bad.index],
            "model": table.model,
            "ratio": bad.to_numpy(),
        }
    ).sort_values("ratio", ascending=False, ignore_index=True)


def drop_outlier_structures(
    tables: Mapping[Any, AtomFeatures], factor: float | None = OUTLIER_FACTOR
) -> tuple[dict[Any, AtomFeatures], pd.DataFrame]:
    """Remove from every table the structures that are feature outliers of any table.

    ``factor=None`` keeps everything. Returns the tables and the report of
    :func:`outlier_structures` over all tables (what was removed and why).
    """
    tables = dict(tables)
    if factor is None or not tables:
        return tables, pd.DataFrame(columns=["structure_hash", "source", "model", "ratio"])
    report = pd.concat([outlier_structures(t, factor) for t in tables.values()], ignore_index=True)
    if report.empty:
        return tables, report
    drop = set(report["structure_hash"])
    kept = {k: t.take(~np.isin(t.structure_hash, list(drop))) for k, t in tables.items()}
    return kept, report
