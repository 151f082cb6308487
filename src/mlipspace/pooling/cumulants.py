"""Structure-level features from per-atom features: progressive cumulants and simple pools.

For one structure with atom features ``F`` of shape ``(n_atoms, d)`` and one feature
column ``x`` (the statistics are marginal, column by column, never joint):

* ``κ1`` is the mean of ``x`` over the atoms;
* ``κ2 .. κn`` are the cumulants of the empirical distribution of ``x`` (population
  moments, divisor ``n_atoms``), obtained from the central moments ``μp`` through the
  exact moment-to-cumulant recursion (:func:`moments_to_cumulants`);
* every block is brought back to the units of the feature by the root scaling
  ``sign(κp) |κp|^(1/p)``;
* the order-``n`` feature ``Φ(n)`` is the concatenation of the scaled ``κ1 .. κn``,
  ``n·d`` columns (Chorna et al. 2025, §4).

Note
----
The script published with Chorna et al. (``scripts/cumulants/calculate_cumulant.py``)
writes ``κ8 = μ8 − 28μ2μ6 − 56μ3μ5 − 35μ4² + 420μ2μ3² + 560μ2²μ4 − 630μ2⁴``: the
coefficients 420 and 560 are swapped. The correct relation, used here, is
``κ8 = μ8 − 28μ2μ6 − 56μ3μ5 − 35μ4² + 560μ2μ3² + 420μ2²μ4 − 630μ2⁴``. Orders 1 to 7 of
the script are correct, so only the 8th block differs from the paper's numbers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from math import comb
from typing import Any

import numpy as np
import pandas as pd

from ..errors import MetricInputError
from ..features import STRUCTURE_COLUMNS, AtomFeatures
from .moments import (
    Moments,
    check_atom_features,
    check_order,
    group_moments,
    keyed_moments,
    segments,
)

__all__ = [
    "CumulantAccumulator",
    "StructureFeatures",
    "cumulant_blocks",
    "cumulants",
    "cumulants_streaming",
    "moments_to_cumulants",
    "pool",
    "structures_frame",
]

POOLINGS = ("cumulants", "mean", "sum", "max")


@dataclass
class StructureFeatures:
    """Per-structure features pooled from per-atom features of one (model, layer).

    Attributes
    ----------
    X : ndarray of shape (n_structures, order * n_base_features)
        The pooled features. For cumulants, columns ``(p-1)·d .. p·d`` hold the scaled
        ``κp`` of the ``d`` atom features; :meth:`phi` gives ``Φ(n)``.
    structure_hash : ndarray of str, shape (n_structures,)
        Identity of the structure of every row.
    structures : DataFrame
        One row per structure (same order as ``X``): ``structure_hash, n_atoms, subset,
        source, parent``.
    order : int
        Number of cumulant blocks in ``X`` (1 for mean, sum and max pooling).
    model, layer : str
        What produced the atom features.
    pooling : str
        ``"cumulants"``, ``"mean"``, ``"sum"`` or ``"max"``.
    scaled : bool
        Whether the cumulant blocks carry the root scaling ``sign(κ)|κ|^(1/p)``.
    metadata : dict
        Provenance copied from the atom features.
    """

    X: np.ndarray
    structure_hash: np.ndarray
    structures: pd.DataFrame
    order: int
    model: str = ""
    layer: str = ""
    pooling: str = "cumulants"
    scaled: bool = True
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = self.X.shape[0]
        if len(self.structure_hash) != n or len(self.structures) != n:
            raise ValueError(
                f"StructureFeatures: X has {n} rows, structure_hash {len(self.structure_hash)}, "
                f"structures {len(self.structures)}"
            )
        if self.order < 1 or self.X.shape[1] % self.order:
            raise ValueError(
                f"StructureFeatures: {self.X.shape[1]} columns is not a multiple of "
                f"order {self.order}"
            )

    def __len__(self) -> int:
        return self.X.shape[0]

    @property
    def n_base_features(self) -> int:
        """Number ``d`` of atom features each block is computed from."""
        return self.X.shape[1] // self.order

    def block(self, p: int) -> np.ndarray:
        """The (scaled) cumulant of order ``p`` of every atom feature, shape (n, d)."""
        self._check_order(p)
        d = self.n_base_features
        return self.X[:, (p - 1) * d : p * d]

    def phi(self, n: int) -> np.ndarray:
        """The order-``n`` feature ``Φ(n)`` (blocks 1..n), shape (n_structures, n·d)."""
        self._check_order(n)
        return self.X[:, : n * self.n_base_features]

    def _check_order(self, p: int) -> None:
        if not 1 <= p <= self.order:
            raise MetricInputError(
                f"order {p} is outside 1..{self.order} of this {self.pooling} table"
            )


# --------------------------------------------------------------------------------------
# the mathematics


def moments_to_cumulants(moments: np.ndarray) -> np.ndarray:
    """Cumulants from moments through the exact recursion.

    ``κn = m_n − Σ_{j=1}^{n−1} C(n−1, j−1) κ_j m_{n−j}``.

    Parameters
    ----------
    moments : array of shape (n + 1, ...)
        ``moments[p]`` is the ``p``-th moment; ``moments[0]`` (which is 1) is not used.
        Raw moments give the cumulants; central moments (``moments[1] == 0``) give
        ``κ1 = 0`` and the same ``κ2 .. κn``, since cumulants of order two and above do
        not depend on the origin. Works on object arrays of symbols too.

    Returns
    -------
    array of shape (n + 1, ...)
        ``kappa[p]`` is the ``p``-th cumulant; ``kappa[0]`` is 0.
    """
    m = np.asarray(moments)
    kappa = np.zeros_like(m)
    for n in range(1, m.shape[0]):
        acc = m[n]
        for j in range(1, n):
            acc = acc - comb(n - 1, j - 1) * kappa[j] * m[n - j]
        kappa[n] = acc
    return kappa


def _root_scale(kappa: np.ndarray, p: int) -> np.ndarray:
    return np.sign(kappa) * np.abs(kappa) ** (1.0 / p)


def cumulant_blocks(m: Moments, max_order: int, scaled: bool) -> np.ndarray:
    """The (root-scaled) cumulant blocks ``[κ1, ..., κn]`` of every group, concatenated.

    Parameters
    ----------
    m : Moments
        Per-group moments up to ``max_order``.
    max_order : int
    scaled : bool
        Apply ``sign(κp)|κp|^(1/p)`` to the blocks of order ``p >= 2``.

    Returns
    -------
    ndarray of shape (n_groups, max_order · d)
    """
    mu = np.zeros((max_order + 1, *m.mean.shape))
    mu[0] = 1.0
    if max_order >= 2:
        mu[2:] = np.moveaxis(m.M / m.count[:, None, None], 1, 0)
    kappa = moments_to_cumulants(mu)
    kappa[1] = m.mean
    blocks = [
        _root_scale(kappa[p], p) if scaled and p > 1 else kappa[p] for p in range(1, max_order + 1)
    ]
    return np.concatenate(blocks, axis=1)


# --------------------------------------------------------------------------------------
# input handling


def structures_frame(hashes: np.ndarray, n_atoms: np.ndarray) -> pd.DataFrame:
    """A structure table (``STRUCTURE_COLUMNS``) for structures known only by label and size."""
    frame = pd.DataFrame({"structure_hash": hashes, "n_atoms": n_atoms.astype(np.int64)})
    for col in STRUCTURE_COLUMNS[2:]:
        frame[col] = ""
    return frame


def _grouping(
    features: AtomFeatures | np.ndarray, structure_index: Any
) -> tuple[np.ndarray, np.ndarray, int, np.ndarray, pd.DataFrame, dict[str, Any]]:
    """(X, inverse, n_groups, structure_hash, structures, provenance) for either input form."""
    if isinstance(features, AtomFeatures):
        if structure_index is not None:
            raise MetricInputError("structure_index is taken from the AtomFeatures; do not pass it")
        X = check_atom_features(features.X)
        structures = features.structures.reset_index(drop=True)
        hashes = structures["structure_hash"].to_numpy().astype(str)
        provenance = {
            "model": features.model,
            "layer": features.layer,
            "metadata": dict(features.metadata),
        }
        return (
            X,
            np.asarray(features.structure_index),
            len(structures),
            hashes,
            structures,
            provenance,
        )
    X = check_atom_features(features)
    if structure_index is None:
        raise MetricInputError("an X array needs structure_index: one structure label per row")
    labels = np.asarray(structure_index)
    if labels.ndim != 1 or len(labels) != X.shape[0]:
        raise MetricInputError(
            f"structure_index must hold one label per row: {labels.shape} for X of shape {X.shape}"
        )
    uniq, inverse = np.unique(labels, return_inverse=True)
    count = np.bincount(inverse, minlength=len(uniq))
    hashes = uniq.astype(str)
    return X, inverse, len(uniq), hashes, structures_frame(hashes, count), {}


# --------------------------------------------------------------------------------------
# public API


def cumulants(
    features: AtomFeatures | np.ndarray,
    max_order: int = 8,
    structure_index: Any = None,
    *,
    scaled: bool = True,
) -> StructureFeatures:
    """Progressive cumulant features ``Φ(max_order)`` of every structure.

    Parameters
    ----------
    features : AtomFeatures or array of shape (n_atoms, d)
        Per-atom features.
    max_order : int, default=8
        Highest cumulant order ``n``; the output has ``n·d`` columns.
    structure_index : array of shape (n_atoms,), optional
        Only with an array ``features``: the structure label of every row (integers or
        strings). Output rows follow the sorted unique labels and ``structure_hash``
        holds the labels as strings.
    scaled : bool, default=True
        Apply ``sign(κp)|κp|^(1/p)`` to the blocks of order ``p >= 2``. Without it the
        raw cumulants are returned.

    Returns
    -------
    StructureFeatures
        ``X[:, (p−1)d : pd]`` is the (scaled) ``κp``; rows follow
        ``features.structures`` for an :class:`~mlipspace.AtomFeatures`.

    Notes
    -----
    Moments are population moments (divisor ``n_atoms``), accumulated in float64 with a
    two-pass (mean first) scheme. A structure with a single atom has ``κp = 0`` for all
    ``p >= 2``; so do structures whose atoms all have the same value of a feature.
    κ8 uses the correct coefficients, not the swapped ones of the published script (see
    the module docstring).
    """
    max_order = check_order(max_order)
    X, inverse, n_groups, hashes, structures, prov = _grouping(features, structure_index)
    moments = group_moments(X, inverse, n_groups, max_order)
    return StructureFeatures(
        X=cumulant_blocks(moments, max_order, scaled),
        structure_hash=hashes,
        structures=structures,
        order=max_order,
        model=prov.get("model", ""),
        layer=prov.get("layer", ""),
        pooling="cumulants",
        scaled=scaled,
        metadata=prov.get("metadata", {}),
    )


def pool(
    features: AtomFeatures | np.ndarray,
    method: str = "mean",
    structure_index: Any = None,
) -> StructureFeatures:
    """Mean, sum or max of the atom features of every structure.

    Parameters
    ----------
    features, structure_index
        As in :func:`cumulants`.
    method : {"mean", "sum", "max"}
        The pooling. ``"mean"`` equals ``Φ(1)`` of :func:`cumulants`.

    Returns
    -------
    StructureFeatures
        ``d`` columns, ``order == 1``.
    """
    if method not in POOLINGS[1:]:
        raise MetricInputError(f"unknown pooling {method!r}; choose one of {POOLINGS[1:]}")
    X, inverse, n_groups, hashes, structures, prov = _grouping(features, structure_index)
    order, starts, count = segments(inverse, n_groups)
    if (count == 0).any():
        raise MetricInputError(
            f"structures {np.flatnonzero(count == 0)[:5].tolist()} have no atoms"
        )
    Xs = np.asarray(X[order], dtype=np.float64)
    if method == "max":
        out = np.maximum.reduceat(Xs, starts, axis=0)
    else:
        out = np.add.reduceat(Xs, starts, axis=0)
        if method == "mean":
            out /= count[:, None]
    return StructureFeatures(
        X=out,
        structure_hash=hashes,
        structures=structures,
        order=1,
        model=prov.get("model", ""),
        layer=prov.get("layer", ""),
        pooling=method,
        metadata=prov.get("metadata", {}),
    )


class CumulantAccumulator:
    """One-pass cumulants over chunks of atom rows.

    Rows of one structure may arrive in any number of chunks, in any order; the
    per-structure moments of the chunks are merged exactly (Pébay's update formulas for
    central power sums), so :meth:`result` equals :func:`cumulants` on all rows at once
    up to floating-point rounding. Memory is ``n_structures × max_order × d`` floats.

    Parameters
    ----------
    max_order : int, default=8
        Highest cumulant order.

    Examples
    --------
    >>> acc = CumulantAccumulator(max_order=4)
    >>> for X, keys in chunks:  # doctest: +SKIP
    ...     acc.update(X, keys)
    >>> table = acc.result()  # doctest: +SKIP
    """

    def __init__(self, max_order: int = 8):
        self.max_order = check_order(max_order)
        self._slots: dict[str, int] = {}
        self._state: Moments | None = None
        self._structure_rows: dict[str, dict[str, Any]] = {}
        self._provenance: dict[str, Any] = {}

    @property
    def n_structures(self) -> int:
        return len(self._slots)

    def _grow(self, n: int, d: int) -> None:
        if self._state is None:
            self._state = Moments.zeros(max(n, 16), d, self.max_order)
            return
        if self._state.mean.shape[1] != d:
            raise MetricInputError(
                f"chunk has {d} features, earlier chunks had {self._state.mean.shape[1]}"
            )
        capacity = len(self._state.count)
        if n > capacity:
            extra = Moments.zeros(max(n, 2 * capacity) - capacity, d, self.max_order)
            self._state = self._state.concatenate(extra)

    def update(self, X: np.ndarray, keys: Any) -> CumulantAccumulator:
        """Add rows ``X`` whose structures are named by ``keys`` (one label per row)."""
        chunk_keys, chunk = keyed_moments(X, keys, self.max_order)
        for key in chunk_keys.tolist():  # new structures get slots in order of appearance
            self._slots.setdefault(key, len(self._slots))
        self._grow(len(self._slots), chunk.mean.shape[1])
        self._state.merge_at(np.array([self._slots[k] for k in chunk_keys.tolist()]), chunk)
        return self

    def update_features(self, features: AtomFeatures) -> CumulantAccumulator:
        """Add an :class:`~mlipspace.AtomFeatures` chunk; structures are keyed by hash."""
        for row in features.structures.to_dict("records"):
            self._structure_rows.setdefault(str(row["structure_hash"]), row)
        if not self._provenance:
            self._provenance = {
                "model": features.model,
                "layer": features.layer,
                "metadata": dict(features.metadata),
            }
        return self.update(features.X, features.structure_hash)

    def result(self, scaled: bool = True) -> StructureFeatures:
        """The cumulant table of every structure seen so far, in order of first appearance."""
        if self._state is None:
            raise MetricInputError("no rows were added to the accumulator")
        n = self.n_structures
        state = self._state.take(np.arange(n))
        hashes = np.array(list(self._slots), dtype=str)
        if self._structure_rows and len(self._structure_rows) == n:
            structures = pd.DataFrame([self._structure_rows[h] for h in hashes]).reset_index(
                drop=True
            )
            mismatch = structures["n_atoms"].to_numpy() != state.count
            if mismatch.any():
                bad = hashes[mismatch][:3].tolist()
                raise MetricInputError(f"structures {bad}: the rows seen do not match n_atoms")
        else:
            structures = structures_frame(hashes, state.count)
        return StructureFeatures(
            X=cumulant_blocks(state, self.max_order, scaled),
            structure_hash=hashes,
            structures=structures,
            order=self.max_order,
            model=self._provenance.get("model", ""),
            layer=self._provenance.get("layer", ""),
            scaled=scaled,
            metadata=self._provenance.get("metadata", {}),
        )


def cumulants_streaming(
    chunks: Iterable[AtomFeatures | tuple[np.ndarray, Any]],
    max_order: int = 8,
    *,
    scaled: bool = True,
) -> StructureFeatures:
    """:func:`cumulants` in one pass over chunks of rows, e.g. read from a store.

    Parameters
    ----------
    chunks : iterable of AtomFeatures or of (X, keys)
        Each chunk holds some atom rows; ``keys`` (or the ``structure_hash`` of an
        ``AtomFeatures``) names the structure of every row. A structure may be split over
        several chunks.
    max_order : int, default=8
        Highest cumulant order.
    scaled : bool, default=True
        As in :func:`cumulants`.

    Returns
    -------
    StructureFeatures
        Rows in order of first appearance of each structure.
    """
    acc = CumulantAccumulator(max_order)
    for chunk in chunks:
        if isinstance(chunk, AtomFeatures):
            acc.update_features(chunk)
        else:
            X, keys = chunk
            acc.update(X, keys)
    return acc.result(scaled=scaled)
