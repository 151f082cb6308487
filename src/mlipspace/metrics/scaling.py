"""The flexible scaling of the reconstruction measures (scikit-matter's
``StandardFlexibleScaler(column_wise=False)``), fitted on the training rows of each side.

Every column is centred and the whole matrix divided by the square root of its total
variance, so that the training target has total variance 1. The in-memory, streamed and Dask
paths all decide "this side cannot be scaled" with :func:`total_variance`.
"""

from __future__ import annotations

import numpy as np

from ..errors import MetricInputError

__all__ = [
    "flexible_scale",
    "power_of_two_scaled",
    "prepare",
    "split_scaled",
    "total_variance",
]

#: below this total variance a side cannot be scaled (scikit-matter's ``atol``)
MIN_TOTAL_VARIANCE = 1e-12


def total_variance(column_variances, name: str) -> float:
    """The total variance ``Σ_j Var(A_j)`` of one side, checked to be scalable.

    Parameters
    ----------
    column_variances : array-like or float
        Population variance of every column on the training rows (or their sum).
    name : str
        The side (``"X"`` or ``"Y"``) for the error message.

    Returns
    -------
    float

    Raises
    ------
    MetricInputError
        When the total variance is below :data:`MIN_TOTAL_VARIANCE`.
    """
    var_sum = float(np.sum(column_variances))
    if not np.isfinite(var_sum):
        raise MetricInputError(
            f"{name}'s total variance overflows float64 (values near 1e154 or beyond); "
            "rescale it (the measures do not depend on the scale of a side)"
        )
    if not var_sum >= MIN_TOTAL_VARIANCE:
        raise MetricInputError(
            f"{name} has zero total variance on the training rows (all features constant); "
            "it cannot be scaled"
        )
    return var_sum


def flexible_scale(A_train: np.ndarray, name: str) -> tuple[np.ndarray, float]:
    """Mean and scale of the flexible scaler fitted on ``A_train``.

    Returns
    -------
    mean : ndarray of shape (n_features,)
    scale : float
        ``sqrt`` of the total variance; scaled rows are ``(A - mean) / scale``.
    """
    mean = A_train.mean(axis=0)
    return mean, np.sqrt(total_variance(((A_train - mean) ** 2).mean(axis=0), name))


def power_of_two_scaled(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """The arrays times one power of two that brings their largest entry near 1, when their
    squares would overflow or underflow; unchanged otherwise.

    Multiplying by a power of two is exact, so the flexibly scaled rows are the same bits as
    without it wherever both can be computed: the scaler is invariant to the factor.
    """
    top = max(float(np.max(np.abs(A), initial=0.0)) for A in arrays)
    if top == 0.0 or 2.0**-400 < top < 2.0**400:
        return arrays
    exponent = np.frexp(top)[1]
    return tuple(np.ldexp(A, -exponent) for A in arrays)


def split_scaled(A, train, test, scaler, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Training and test rows of one side, scaled with statistics of its training rows.

    ``scaler`` (anything with ``fit``/``transform``) replaces the flexible scaler when given.
    """
    A_train, A_test = A[train], A[test]
    if scaler is None:
        A_train, A_test = power_of_two_scaled(A_train, A_test)
        mean, scale = flexible_scale(A_train, name)
        return (A_train - mean) / scale, (A_test - mean) / scale
    scaler.fit(A_train)
    return np.asarray(scaler.transform(A_train)), np.asarray(scaler.transform(A_test))


def prepare(X, Y, train, test, scaler=None):
    """Split, then scale each side with statistics of its training rows.

    Returns
    -------
    X_train, X_test, Y_train, Y_test : ndarray
    """
    X_train, X_test = split_scaled(X, train, test, scaler, "X")
    Y_train, Y_test = split_scaled(Y, train, test, scaler, "Y")
    return X_train, X_test, Y_train, Y_test
