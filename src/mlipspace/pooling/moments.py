"""Per-group central moments of atom features and their exact merge (Pébay 2008).

A structure's atoms may be read in several chunks (a stream, or blocks of a Dask array): the
moments of every chunk (:func:`keyed_moments`) are merged exactly (:func:`merge_moments`,
:meth:`Moments.merge_at`), so :func:`mlipspace.pooling.cumulants`,
:class:`~mlipspace.pooling.CumulantAccumulator` and :func:`mlipspace.distributed.cumulants`
all reduce the same per-structure moments with the same formulas.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from math import comb
from typing import Any

import numpy as np

from ..errors import MetricInputError

__all__ = [
    "Moments",
    "check_atom_features",
    "check_order",
    "group_moments",
    "keyed_moments",
    "merge_keyed_moments",
    "merge_moments",
]

# upper bound on the number of float64 elements in one temporary (rows x feature block)
_BLOCK_ELEMENTS = 1 << 22


def check_order(max_order: int) -> int:
    """``max_order`` as an int, checked to be an integer >= 1."""
    if isinstance(max_order, bool) or not isinstance(max_order, int | np.integer) or max_order < 1:
        raise MetricInputError(f"max_order must be an integer >= 1, got {max_order!r}")
    return int(max_order)


def check_atom_features(X: Any) -> np.ndarray:
    """``X`` as an array, checked to be a non-empty, finite, numeric 2-D table of atom rows."""
    X = np.asarray(X)
    if X.ndim != 2:
        raise MetricInputError(
            f"atom features must be 2-D (n_atoms, n_features), got shape {X.shape}"
        )
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise MetricInputError(f"atom features are empty, shape {X.shape}")
    if not np.issubdtype(X.dtype, np.number) or np.iscomplexobj(X):
        raise MetricInputError(f"atom features must be real numbers, got dtype {X.dtype}")
    if not np.isfinite(X).all():
        raise MetricInputError("atom features hold NaN or infinite values")
    return X


@dataclass
class Moments:
    """Per-group count, mean and central power sums ``M_p = Σ (x − mean)^p``, p = 2..n."""

    count: np.ndarray  # (G,)
    mean: np.ndarray  # (G, d)
    M: np.ndarray  # (G, n - 1, d), M[:, p - 2] = M_p

    @classmethod
    def zeros(cls, n_groups: int, d: int, max_order: int) -> Moments:
        """Empty moments (count 0) of ``n_groups`` groups of ``d`` features."""
        return cls(
            np.zeros(n_groups),
            np.zeros((n_groups, d)),
            np.zeros((n_groups, max(max_order - 1, 0), d)),
        )

    def take(self, rows: np.ndarray) -> Moments:
        """The moments of the groups ``rows`` (a copy)."""
        return Moments(self.count[rows], self.mean[rows], self.M[rows])

    def concatenate(self, other: Moments) -> Moments:
        """The groups of ``self`` followed by those of ``other``."""
        return Moments(
            np.concatenate([self.count, other.count]),
            np.concatenate([self.mean, other.mean]),
            np.concatenate([self.M, other.M]),
        )

    def merge_at(self, rows: np.ndarray, other: Moments) -> None:
        """Merge the groups of ``other`` into the groups ``rows`` of ``self``, in place.

        ``rows`` (distinct) gives, for every group of ``other``, the group of ``self`` that
        holds the same structure; an empty group (count 0) simply takes ``other``'s moments.
        """
        merged = merge_moments(self.take(rows), other)
        self.count[rows] = merged.count
        self.mean[rows] = merged.mean
        self.M[rows] = merged.M


def segments(inverse: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row order that makes groups contiguous, the start of each group, and the counts."""
    order = np.argsort(inverse, kind="stable")
    count = np.bincount(inverse, minlength=n_groups)
    starts = np.concatenate([[0], np.cumsum(count)[:-1]])
    return order, starts, count


def _column_blocks(n_rows: int, d: int) -> Iterable[slice]:
    width = max(1, _BLOCK_ELEMENTS // max(n_rows, 1))
    for lo in range(0, d, width):
        yield slice(lo, min(lo + width, d))


def group_moments(X: np.ndarray, inverse: np.ndarray, n_groups: int, max_order: int) -> Moments:
    """Two-pass (mean, then central power sums) statistics of every group, in float64."""
    order, starts, count = segments(inverse, n_groups)
    if (count == 0).any():
        empty = np.flatnonzero(count == 0)[:5].tolist()
        raise MetricInputError(f"structures {empty} have no atoms")
    out = Moments.zeros(n_groups, X.shape[1], max_order)
    out.count[:] = count
    for cols in _column_blocks(X.shape[0], X.shape[1]):
        Xs = np.asarray(X[order, cols], dtype=np.float64)
        mean = np.add.reduceat(Xs, starts, axis=0) / count[:, None]
        out.mean[:, cols] = mean
        D = Xs - np.repeat(mean, count, axis=0)
        P = D * D
        for p in range(2, max_order + 1):
            out.M[:, p - 2, cols] = np.add.reduceat(P, starts, axis=0)
            if p < max_order:
                P *= D
    return out


def merge_moments(a: Moments, b: Moments) -> Moments:
    """Exact moments of the union of two disjoint sets of rows (Pébay 2008, eq. 2.1).

    ``M_p = Σ_k C(p, k) [M^a_{p−k} (−n_b δ / n)^k + M^b_{p−k} (n_a δ / n)^k]`` with
    ``δ = mean_b − mean_a``, ``M_0 = count`` and ``M_1 = 0``. An empty ``a`` (count 0)
    leaves ``b`` unchanged.
    """
    na, nb = a.count[:, None], b.count[:, None]
    n = na + nb
    delta = b.mean - a.mean
    mean = a.mean + delta * (nb / n)
    da, db = -nb * delta / n, na * delta / n  # shift of each part's mean to the joint mean
    max_order = a.M.shape[1] + 1

    def power_sum(m: Moments, cnt: np.ndarray, q: int) -> np.ndarray | float:
        if q == 0:
            return cnt
        if q == 1:
            return 0.0
        return m.M[:, q - 2]

    M = np.zeros_like(a.M)
    for p in range(2, max_order + 1):
        acc = np.zeros_like(mean)
        for k in range(p + 1):
            c = comb(p, k)
            acc += c * power_sum(a, na, p - k) * da**k
            acc += c * power_sum(b, nb, p - k) * db**k
        M[:, p - 2] = acc
    return Moments(n[:, 0], mean, M)


def keyed_moments(X: Any, keys: Any, max_order: int) -> tuple[np.ndarray, Moments]:
    """The moments of every structure in a chunk of atom rows.

    Parameters
    ----------
    X : array of shape (n_rows, d)
        Atom features (checked).
    keys : array of shape (n_rows,)
        Structure label of every row (compared as strings).
    max_order : int
        Highest power sum kept.

    Returns
    -------
    keys : ndarray of str
        The structures of the chunk, in order of first appearance.
    moments : Moments
        One group per key, same order.
    """
    X = check_atom_features(X)
    keys = np.asarray(keys).astype(str)
    if keys.shape != (X.shape[0],):
        raise MetricInputError(f"keys must hold one label per row: {keys.shape} vs {X.shape}")
    uniq, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    moments = group_moments(X, inverse, len(uniq), max_order)
    order = np.argsort(first)
    return uniq[order], moments.take(order)


def merge_keyed_moments(*parts: tuple[np.ndarray, Moments]) -> tuple[np.ndarray, Moments]:
    """The union of keyed moments (from :func:`keyed_moments`); a structure in several parts
    is merged exactly, in the order of the parts.

    Returns
    -------
    keys : ndarray of str
        In order of first appearance over the parts.
    moments : Moments
    """
    keys = np.array(list(dict.fromkeys(k for part in parts for k in part[0].tolist())))
    if len(keys) == sum(len(part[0]) for part in parts):  # disjoint (whole structures)
        stacked = parts[0][1]
        for _, moments in parts[1:]:
            stacked = stacked.concatenate(moments)
        return keys, stacked
    slot = {key: i for i, key in enumerate(keys.tolist())}
    first = parts[0][1]
    state = Moments.zeros(len(keys), first.mean.shape[1], first.M.shape[1] + 1)
    for part_keys, moments in parts:
        state.merge_at(np.array([slot[key] for key in part_keys.tolist()], dtype=np.int64), moments)
    return keys, state
