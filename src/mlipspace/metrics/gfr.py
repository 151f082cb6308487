"""Global feature reconstruction in memory: GFRE and GFRD (Goscinski et al. 2021).

The definitions and the differences from scikit-matter are described in
:mod:`mlipspace.metrics.reconstruction` (the home of LFRE); the streamed and Dask paths
compute the same fit from sufficient statistics (:mod:`mlipspace.metrics.streamed`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .ridge import ridge2fold_fit, ridge_source
from .scaling import prepare, split_scaled
from .split import resolve_split
from .validation import check_features, check_finite_result, check_pair, rms

__all__ = [
    "fit_predict",
    "gfrd",
    "gfre",
    "pad",
    "pointwise_gfrd",
    "pointwise_gfre",
    "pointwise_gfre_targets",
    "procrustes_rotation",
]


def fit_predict(X_train, Y_train, X_eval_list, estimator=None):
    """Fit the regression on training rows, predict each array of ``X_eval_list``.

    The default is scikit-matter's cutoff ``Ridge2FoldCV`` (:func:`~.ridge.ridge2fold_fit`);
    ``estimator`` (anything with ``fit``/``predict``) is cloned and fitted instead when given.

    Returns
    -------
    list of ndarray
        One prediction per array of ``X_eval_list``.
    """
    if estimator is None:
        W = ridge2fold_fit(X_train, Y_train).W
        return [Xe @ W for Xe in X_eval_list]
    from sklearn.base import clone

    est = clone(estimator).fit(X_train, Y_train)
    return [np.asarray(est.predict(Xe)).reshape(len(Xe), -1) for Xe in X_eval_list]


def pointwise_gfre(X, Y, train_idx=None, test_idx=None, scaler=None, estimator=None) -> np.ndarray:
    """Per-test-sample global feature reconstruction error ``‖ỹ_i − x̃_i W‖``.

    Parameters
    ----------
    X : array of shape (n_samples, n_features_X)
        Source features (they reconstruct ``Y``).
    Y : array of shape (n_samples, n_features_Y)
        Target features.
    train_idx, test_idx : array of int, optional
        Rows to fit on and to evaluate; see :func:`resolve_split`.
    scaler : object with ``fit``/``transform``, optional
        Replaces the default flexible scaler (fitted on training rows, each side separately).
    estimator : object with ``fit``/``predict``, optional
        Replaces the default 2-fold cutoff ridge (cloned before fitting).

    Returns
    -------
    ndarray of shape (n_test,)
    """
    return pointwise_gfre_targets(X, {"Y": Y}, train_idx, test_idx, scaler, estimator)["Y"]


def pointwise_gfre_targets(
    X, targets: Mapping[Any, Any], train_idx=None, test_idx=None, scaler=None, estimator=None
) -> dict[Any, np.ndarray]:
    """:func:`pointwise_gfre` of every target in ``targets`` (name → array) from one source.

    The source's SVDs (both folds and all training rows) are computed once and shared by
    every target's fit, which is what the all-pairs comparison spends most of its GFRE time on.
    """
    X = check_features(X, "X")
    checked = {name: check_pair(X, Y)[1] for name, Y in targets.items()}
    train, test = resolve_split(len(X), train_idx, test_idx, "GFRE")
    # the source is scaled and (default estimator) factorised once
    X_train, X_test = split_scaled(X, train, test, scaler, "X")
    source = ridge_source(X_train) if estimator is None and checked else None
    out: dict[Any, np.ndarray] = {}
    for name, Y in checked.items():
        Y_train, Y_test = split_scaled(Y, train, test, scaler, "Y")
        if source is not None:
            pred = X_test @ ridge2fold_fit(X_train, Y_train, source=source).W
        else:
            (pred,) = fit_predict(X_train, Y_train, [X_test], estimator)
        out[name] = check_finite_result(np.linalg.norm(Y_test - pred, axis=1), "GFRE")
    return out


def gfre(X, Y, train_idx=None, test_idx=None, scaler=None, estimator=None) -> float:
    """Global feature reconstruction error of ``Y`` from ``X`` (RMS of :func:`pointwise_gfre`).

    ``0`` means ``Y`` is a linear function of ``X``; about ``1`` means ``X`` does no better than
    the mean. Same parameters as :func:`pointwise_gfre`.
    """
    return rms(pointwise_gfre(X, Y, train_idx, test_idx, scaler, estimator))


def pad(A: np.ndarray, width: int) -> np.ndarray:
    """``A`` with zero columns appended up to ``width`` (GFRD compares in the padded space)."""
    return A if A.shape[1] == width else np.pad(A, [(0, 0), (0, width - A.shape[1])])


def procrustes_rotation(M: np.ndarray) -> np.ndarray:
    """Orthogonal polar factor ``U Vᵀ`` of ``M`` (``scipy.linalg.orthogonal_procrustes``)."""
    U, _, Vt = np.linalg.svd(M)
    return U @ Vt


def pointwise_gfrd(X, Y, train_idx=None, test_idx=None, scaler=None, estimator=None) -> np.ndarray:
    """Per-test-sample global feature reconstruction distortion.

    The distance between the linear reconstruction ``x̃_i W`` and the orthogonal map
    ``x̃_i Q`` that best reproduces it on the training rows (Procrustes on zero-padded
    arrays). Works for ``dim X`` above or below ``dim Y`` (see the module docstring).
    Same parameters as :func:`pointwise_gfre`.
    """
    X, Y = check_pair(X, Y)
    train, test = resolve_split(len(X), train_idx, test_idx, "GFRD")
    X_train, X_test, Y_train, _ = prepare(X, Y, train, test, scaler)
    pred_train, pred_test = fit_predict(X_train, Y_train, [X_train, X_test], estimator)
    width = max(X.shape[1], pred_train.shape[1])
    Q = procrustes_rotation(pad(X_train, width).T @ pad(pred_train, width))
    distortion = pad(pred_test, width) - pad(X_test, width) @ Q
    return check_finite_result(np.linalg.norm(distortion, axis=1), "GFRD")


def gfrd(X, Y, train_idx=None, test_idx=None, scaler=None, estimator=None) -> float:
    """Global feature reconstruction distortion (RMS of :func:`pointwise_gfrd`).

    ``0`` means the linear map from ``X`` to ``Y`` is (a multiple of) an isometry.
    """
    return rms(pointwise_gfrd(X, Y, train_idx, test_idx, scaler, estimator))
