"""Checks at the boundary of the measures: parameters, feature arrays, row indices, results.

Every check raises :class:`~mlipspace.errors.MetricInputError` (a ``ValueError``) naming the
argument at fault, so that no measure returns a silently wrong number. The parameters every
measure takes are described once, in :data:`PARAMETERS`, and checked by
:func:`validate_params` where a public function receives them.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

from ..errors import MetricInputError

__all__ = [
    "PARAMETERS",
    "Param",
    "check_features",
    "check_finite_result",
    "check_index",
    "check_pair",
    "rms",
    "validate_params",
]


@dataclass(frozen=True)
class Param:
    """What one parameter may be: an integer or a real number (never a bool) in a range.

    Attributes
    ----------
    kind : {"int", "real", "bool"}
    low, high : float, optional
        Bounds; ``low_open``/``high_open`` exclude them.
    none : bool
        Whether ``None`` is accepted.
    """

    kind: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    none: bool = False

    def describe(self) -> str:
        """The rule in words, for error messages."""
        what = {"int": "an integer", "real": "a finite real number", "bool": "a bool"}[self.kind]
        if self.low is not None:
            what += f" {'above' if self.low_open else 'at least'} {self.low:g}"
        if self.high is not None:
            what += f"{' and' if self.low is not None else ''} {'below' if self.high_open else 'at most'}"
            what += f" {self.high:g}"
        return what + (" or None" if self.none else "")

    def accepts(self, value) -> bool:
        """Whether ``value`` satisfies the rule."""
        if value is None:
            return self.none
        if self.kind == "bool":
            return isinstance(value, bool | np.bool_)
        if isinstance(value, bool | np.bool_):
            return False
        if self.kind == "int" and not isinstance(value, numbers.Integral):
            return False
        if not isinstance(value, numbers.Real) or not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)


#: every parameter of the measures that has a rule of its own (bounds that depend on the data,
#: such as ``k < n_samples``, are checked by the measure)
PARAMETERS: dict[str, Param] = {
    "k": Param("int", low=1),
    "n_local_points": Param("int", low=2),
    "cca_dim": Param("int", low=1),
    "sigma": Param("real", low=0, low_open=True),
    "max_samples": Param("int", low=3, none=True),
    "chunk_size": Param("int", low=1),
    "n_samples": Param("int", low=1),
    "n_jobs": Param("int", none=True),
    "q": Param("real", low=0, high=1, low_open=True),
    "normalize": Param("bool"),
    "unbiased": Param("bool"),
}


def validate_params(**values) -> None:
    """Check parameters against :data:`PARAMETERS`; the first one at fault is named.

    Examples
    --------
    >>> validate_params(k=10, normalize=True)
    >>> validate_params(cca_dim=0)
    Traceback (most recent call last):
    ...
    mlipspace.errors.MetricInputError: cca_dim must be an integer at least 1, got 0
    """
    for name, value in values.items():
        rule = PARAMETERS[name]
        if not rule.accepts(value):
            raise MetricInputError(f"{name} must be {rule.describe()}, got {value!r}")


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
