"""Checks at the boundary of the measures: feature arrays, row indices and results.

Every check raises :class:`~mlipspace.errors.MetricInputError` (a ``ValueError``) naming the
argument at fault, so that no measure returns a silently wrong number.
"""

from __future__ import annotations

import numpy as np

from ..errors import MetricInputError

__all__ = ["check_features", "check_finite_result", "check_index", "check_pair", "rms"]


def check_features(A, name: str) -> np.ndarray:
    """A real, finite 2-D feature array with at least one column, as float64.

    Parameters
    ----------
    A : array-like of shape (n_samples, n_features)
    name : str
        How the error messages name the array (e.g. ``"X"`` or ``"X rows 1000+"``).

    Returns
    -------
    ndarray of float64
        ``A`` itself when it already is float64.
    """
    A = np.asarray(A)
    if A.ndim != 2:
        raise MetricInputError(
            f"{name} must be a 2-D array (samples × features), got shape {A.shape}"
        )
    if not np.issubdtype(A.dtype, np.number) or np.iscomplexobj(A):
        raise MetricInputError(f"{name} must be a real numeric array, got dtype {A.dtype}")
    if A.shape[1] == 0:
        raise MetricInputError(f"{name} has no features (shape {A.shape})")
    bad = ~np.isfinite(A)
    if bad.any():
        rows = np.unique(np.nonzero(bad)[0])
        raise MetricInputError(
            f"{name} contains {int(bad.sum())} NaN/inf values (first rows: {rows[:5].tolist()})"
        )
    return A.astype(np.float64, copy=False)


def check_pair(X, Y) -> tuple[np.ndarray, np.ndarray]:
    """:func:`check_features` of a source ``X`` and a target ``Y`` with the same rows.

    Returns
    -------
    X, Y : ndarray of float64
    """
    X = check_features(X, "X")
    Y = check_features(Y, "Y")
    if X.shape[0] != Y.shape[0]:
        raise MetricInputError(
            f"First dimension of X ({X.shape[0]}) and Y ({Y.shape[0]}) must match"
        )
    return X, Y


def check_index(idx, n: int, name: str) -> np.ndarray:
    """Row indices (integers, negative ones counted from the end, or a boolean mask) in ``[0, n)``.

    Parameters
    ----------
    idx : array-like of int or bool
    n : int
        Number of rows indexed.
    name : str
        The argument's name for error messages (``"train_idx"``).

    Returns
    -------
    ndarray of int64
    """
    idx = np.asarray(idx)
    if idx.dtype == bool:
        if idx.shape != (n,):
            raise MetricInputError(f"boolean {name} must have length {n}, got {idx.shape}")
        return np.flatnonzero(idx)
    if idx.ndim != 1 or (idx.size and not np.issubdtype(idx.dtype, np.integer)):
        raise MetricInputError(f"{name} must be a 1-D array of integer row indices")
    idx = idx.astype(np.int64)
    if idx.size and (idx.min() < -n or idx.max() >= n):
        raise MetricInputError(f"{name} holds indices outside [0, {n})")
    return np.where(idx < 0, idx + n, idx)


def rms(values: np.ndarray) -> float:
    """Root mean square of pointwise errors: the global value of a pointwise measure."""
    return float(np.linalg.norm(values) / np.sqrt(len(values)))


def check_finite_result(values: np.ndarray, what: str) -> np.ndarray:
    """``values`` unchanged if all finite; otherwise a named error instead of a NaN result."""
    if not np.all(np.isfinite(values)):
        raise MetricInputError(f"{what} produced non-finite values; the inputs are degenerate")
    return values
