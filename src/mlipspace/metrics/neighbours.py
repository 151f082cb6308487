"""Exact nearest neighbours with one tie rule, for every kNN-based measure.

LFRE's neighbourhoods (:func:`nearest_train_rows`, and shard by shard in
:mod:`mlipspace.distributed.measures`), mutual kNN and CKNNA all select neighbours with
:func:`k_smallest`: the ``k`` smallest values of each row, ordered by value and then by label
(the row index), the tie rule applied at the boundary of the selection too. Rows that are exact
copies of each other (symmetry-equivalent atoms, supercells) are given bitwise-equal distances
(:func:`duplicate_representatives`), so which copy is chosen never depends on rounding and a
score does not depend on the order of the rows.

The kernels take numpy arrays or torch tensors (:mod:`mlipspace.metrics.backend`); on torch
the selection is a stable sort, which applies the same rule (value, then label).
"""

from __future__ import annotations

import numpy as np

from .backend import argsort_stable, is_torch

__all__ = [
    "duplicate_representatives",
    "k_smallest",
    "nearest_train_rows",
    "squared_distances",
]


def duplicate_representatives(A: np.ndarray) -> np.ndarray | None:
    """For every row, the first row with the same bytes; ``None`` when all rows differ.

    Parameters
    ----------
    A : ndarray of shape (n, d)

    Returns
    -------
    ndarray of int64, shape (n,), or None
    """
    A = np.ascontiguousarray(A)
    if len(A) < 2:
        return None
    rows = A.view(np.dtype((np.void, A.dtype.itemsize * A.shape[1]))).ravel()
    _, first, inverse = np.unique(rows, return_index=True, return_inverse=True)
    if len(first) == len(A):
        return None
    return first[inverse.ravel()].astype(np.int64)


def squared_distances(
    Q: np.ndarray,
    S: np.ndarray,
    sq: np.ndarray | None = None,
    representatives: np.ndarray | None = None,
) -> np.ndarray:
    """Squared Euclidean distances ``|q|² + |s|² − 2 q·s`` (as scikit-matter computes them).

    Parameters
    ----------
    Q : ndarray of shape (q, d)
        Query rows.
    S : ndarray of shape (n, d)
        Candidate rows.
    sq : ndarray of shape (n,), optional
        ``Σ S²`` per row, when already known.
    representatives : ndarray of shape (n,), optional
        :func:`duplicate_representatives` of ``S``: the column of every copy is made equal to
        that of its first row, bit for bit.

    Returns
    -------
    ndarray of shape (q, n)
    """
    if sq is None:
        sq = (S**2).sum(axis=1)
    d = sq + (Q**2).sum(axis=1)[:, None] - 2.0 * Q @ S.T
    if representatives is not None:
        copies = np.flatnonzero(representatives != np.arange(len(representatives)))
        d[:, copies] = d[:, representatives[copies]]
    return d


def k_smallest(
    values: np.ndarray, k: int, labels: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` smallest entries of every row, ordered by value, ties by label.

    Among entries equal to the ``k``-th smallest value, those with the smallest labels are
    kept, so the selection is a function of the (value, label) pairs alone.

    Parameters
    ----------
    values : ndarray of shape (q, n)
    k : int
        ``1 <= k <= n``.
    labels : ndarray of int, shape (n,) or (q, n), optional
        Tie-breaking labels (distinct within a row); default the column index.

    Returns
    -------
    values, labels : ndarray of shape (q, k)
        Sorted by value, then label.
    """
    if is_torch(values):
        return _k_smallest_sorted(values, k, labels)
    q, n = values.shape
    by_column = labels is None
    labels = np.broadcast_to(np.arange(n) if by_column else labels, values.shape)
    if k < n:
        kth = np.partition(values, k - 1, axis=1)[:, k - 1 : k]
        keep = values <= kth
        extra = np.flatnonzero(keep.sum(axis=1) > k)  # ties straddle the boundary
        if len(extra):
            v, kt = values[extra], kth[extra]
            if by_column:  # the first tied columns fill the free places
                tied = v == kt
                free = k - np.sum(v < kt, axis=1, keepdims=True)
                keep[extra] = (v < kt) | (tied & (np.cumsum(tied, axis=1) <= free))
            else:
                chosen = np.lexsort((labels[extra], v), axis=-1)[:, :k]
                keep[extra] = False
                keep[extra[:, None], chosen] = True
        cols = np.nonzero(keep)[1].reshape(q, k)
    else:
        cols = np.broadcast_to(np.arange(n), values.shape)
    v = np.take_along_axis(values, cols, axis=1)
    lab = np.take_along_axis(labels, cols, axis=1)
    order = np.lexsort((lab, v), axis=-1)
    return np.take_along_axis(v, order, axis=1), np.take_along_axis(lab, order, axis=1)


def _k_smallest_sorted(values, k: int, labels=None):
    """:func:`k_smallest` by stable sorts (the torch path): sorting by label, then stably by
    value, orders by (value, label); the first ``k`` are the selection."""
    import torch

    if labels is None:
        order = argsort_stable(values, axis=1)[:, :k]
        return torch.take_along_dim(values, order, dim=1), order
    labels = torch.as_tensor(labels, device=values.device).broadcast_to(values.shape)
    by_label = argsort_stable(labels, axis=1)
    by_value = argsort_stable(torch.take_along_dim(values, by_label, dim=1), axis=1)
    cols = torch.take_along_dim(by_label, by_value, dim=1)[:, :k]
    return torch.take_along_dim(values, cols, dim=1), torch.take_along_dim(labels, cols, dim=1)


def nearest_train_rows(
    X_train: np.ndarray,
    X_query: np.ndarray,
    k: int,
    representatives: np.ndarray | None = None,
) -> np.ndarray:
    """Indices of the ``k`` nearest training rows of each query row, nearest first.

    Distances by :func:`squared_distances`, selection and order by :func:`k_smallest` (ties
    by row index).

    Parameters
    ----------
    X_train : ndarray or tensor of shape (n, d)
    X_query : ndarray or tensor of shape (q, d)
    k : int
    representatives : ndarray, optional
        :func:`duplicate_representatives` of ``X_train`` when already known.

    Returns
    -------
    ndarray (or tensor, for tensors) of int, shape (q, k)
    """
    d = squared_distances(X_query, X_train, representatives=representatives)
    return k_smallest(d, k)[1]
