r"""Feature reconstruction measures: GFRE, GFRD and LFRE (Goscinski et al. 2021).

``gfre(X, Y)`` is the error of reconstructing the target features ``Y`` from the source
features ``X``. The definitions, defaults and numbers are those of scikit-matter 0.4.1
(``skmatter.metrics``):

* split: with neither ``train_idx`` nor ``test_idx`` given, a 50/50 shuffled split with
  ``random_state=0x5F3759DF``; with one given, the other is its complement;
* scaling: ``StandardFlexibleScaler`` fitted on the training rows of each side (centre every
  column, divide the matrix by the square root of its total variance), so the training target
  has total variance 1 and an error near 1 means "no better than the mean";
* regression: ``Ridge2FoldCV`` with relative cutoff alphas ``geomspace(1e-9, 0.9, 20)`` chosen
  by 2-fold CV on RMSE (a truncated-SVD pseudo-inverse; see :mod:`mlipspace.metrics._ridge`);
* GFRE = RMS over test rows of ``‖ỹ_i - x̃_i W‖``; GFRD = RMS of the distance between the
  linear prediction and the best orthogonal (Procrustes) map of ``X̃`` onto it; LFRE = RMS of
  the error of a local linear fit on the ``n_local_points`` training neighbours of each test
  row (neighbours found in the scaled source space, fit centred on their local means).

Differences from scikit-matter (all documented in ``docs/metrics.md``):

* GFRD when ``dim(X) > dim(Y)``: scikit-matter 0.4.1 raises (it compares a ``dim(X)``-wide
  orthogonal prediction with a ``dim(Y)``-wide linear one). Here both predictions live in the
  zero-padded space of width ``max(dim X, dim Y)``, where scikit-matter already fits its
  orthogonal map; the distortion norm is unique there (the freedom left in the polar factor only
  rotates the padding coordinates). For ``dim(X) <= dim(Y)`` nothing changes.
* Arithmetic is float64 whatever the input dtype (scikit-matter keeps float32 inputs in float32).
* LFRE is computed with batched neighbour search, stacked solvers and threads. Gram-matrix
  eigendecompositions decide the well-conditioned neighbourhoods; where a local spectrum is not
  resolved well enough to guarantee the same truncation as an SVD (real features are often
  locally rank-deficient), stacked SVDs of the neighbourhoods, reduced by a QR factorisation to
  ``k + 1`` columns, take over; the rare point where a cutoff or a CV score is too close to call
  takes the per-point SVD path. Results agree with scikit-matter to rounding.
* Bad input raises :class:`~mlipspace.errors.MetricInputError` (a ``ValueError``), never a NaN.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.linalg import cho_solve, lapack

from ..errors import MetricInputError
from . import _ridge as rr

__all__ = [
    "ReconstructionStats",
    "gfrd",
    "gfrd_streamed",
    "gfre",
    "gfre_streamed",
    "lfre",
    "pointwise_gfrd",
    "pointwise_gfre",
    "pointwise_gfre_targets",
    "pointwise_lfre",
    "reconstruction_stats",
    "resolve_split",
]


# --------------------------------------------------------------------------------------------
# input handling
# --------------------------------------------------------------------------------------------


def _as_2d_finite(A, name: str) -> np.ndarray:
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


def _check_pair(X, Y) -> tuple[np.ndarray, np.ndarray]:
    X = _as_2d_finite(X, "X")
    Y = _as_2d_finite(Y, "Y")
    if X.shape[0] != Y.shape[0]:
        raise MetricInputError(
            f"First dimension of X ({X.shape[0]}) and Y ({Y.shape[0]}) must match"
        )
    return X, Y


def _as_index(idx, n: int, name: str) -> np.ndarray:
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


def resolve_split(n: int, train_idx=None, test_idx=None) -> tuple[np.ndarray, np.ndarray]:
    """Train and test rows exactly as scikit-matter chooses them.

    Parameters
    ----------
    n : int
        Number of rows.
    train_idx, test_idx : array of int or bool, optional
        With neither, a shuffled 50/50 split (``random_state=0x5F3759DF``); with one, the
        other is its complement (sorted).

    Returns
    -------
    train_idx, test_idx : ndarray of int
    """
    if train_idx is None and test_idx is None:
        from sklearn.model_selection import train_test_split

        if n < 4:
            raise MetricInputError(f"need at least 4 samples for the default 50/50 split, got {n}")
        train, test = train_test_split(
            np.arange(n),
            test_size=0.5,
            train_size=0.5,
            random_state=rr.SKMATTER_RANDOM_STATE,
            shuffle=True,
        )
    elif train_idx is None:
        test = _as_index(test_idx, n, "test_idx")
        train = np.setdiff1d(np.arange(n), test)
    elif test_idx is None:
        train = _as_index(train_idx, n, "train_idx")
        test = np.setdiff1d(np.arange(n), train)
    else:
        train = _as_index(train_idx, n, "train_idx")
        test = _as_index(test_idx, n, "test_idx")
    if len(train) < 2:
        raise MetricInputError(f"need at least 2 training samples, got {len(train)}")
    if len(test) < 1:
        raise MetricInputError("the test set is empty")
    return np.asarray(train), np.asarray(test)


def _flexible_scale(A_train: np.ndarray, name: str) -> tuple[np.ndarray, float]:
    """Mean and scale of ``StandardFlexibleScaler(column_wise=False)`` fitted on ``A_train``."""
    mean = A_train.mean(axis=0)
    var_sum = float(((A_train - mean) ** 2).mean(axis=0).sum())
    if var_sum < 1e-12:  # scikit-matter's atol
        raise MetricInputError(
            f"{name} has zero total variance on the training rows (all features constant); "
            "it cannot be scaled"
        )
    return mean, np.sqrt(var_sum)


def _split_scaled(A, train, test, scaler, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Training and test rows of one side, scaled with statistics of its training rows."""
    A_train, A_test = A[train], A[test]
    if scaler is None:
        mean, scale = _flexible_scale(A_train, name)
        return (A_train - mean) / scale, (A_test - mean) / scale
    scaler.fit(A_train)
    return np.asarray(scaler.transform(A_train)), np.asarray(scaler.transform(A_test))


def _prepare(X, Y, train, test, scaler=None):
    """Split, then scale each side with statistics of its training rows."""
    X_train, X_test = _split_scaled(X, train, test, scaler, "X")
    Y_train, Y_test = _split_scaled(Y, train, test, scaler, "Y")
    return X_train, X_test, Y_train, Y_test


def _fit_predict(X_train, Y_train, X_eval_list, estimator=None):
    """Fit the regression on training rows, predict each array of ``X_eval_list``."""
    if estimator is None:
        W = rr.ridge2fold_fit(X_train, Y_train).W
        return [Xe @ W for Xe in X_eval_list]
    from sklearn.base import clone

    est = clone(estimator).fit(X_train, Y_train)
    return [np.asarray(est.predict(Xe)).reshape(len(Xe), -1) for Xe in X_eval_list]


def _rms(values: np.ndarray) -> float:
    return float(np.linalg.norm(values) / np.sqrt(len(values)))


def _finite_result(values: np.ndarray, what: str) -> np.ndarray:
    if not np.all(np.isfinite(values)):
        raise MetricInputError(f"{what} produced non-finite values; the inputs are degenerate")
    return values


# --------------------------------------------------------------------------------------------
# global measures
# --------------------------------------------------------------------------------------------


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
    X = _as_2d_finite(X, "X")
    checked = {name: _check_pair(X, Y)[1] for name, Y in targets.items()}
    train, test = resolve_split(len(X), train_idx, test_idx)
    # the source is scaled and (default estimator) factorised once
    X_train, X_test = _split_scaled(X, train, test, scaler, "X")
    source = rr.ridge_source(X_train) if estimator is None and checked else None
    out: dict[Any, np.ndarray] = {}
    for name, Y in checked.items():
        Y_train, Y_test = _split_scaled(Y, train, test, scaler, "Y")
        if source is not None:
            pred = X_test @ rr.ridge2fold_fit(X_train, Y_train, source=source).W
        else:
            (pred,) = _fit_predict(X_train, Y_train, [X_test], estimator)
        out[name] = _finite_result(np.linalg.norm(Y_test - pred, axis=1), "GFRE")
    return out


def gfre(X, Y, train_idx=None, test_idx=None, scaler=None, estimator=None) -> float:
    """Global feature reconstruction error of ``Y`` from ``X`` (RMS of :func:`pointwise_gfre`).

    ``0`` means ``Y`` is a linear function of ``X``; about ``1`` means ``X`` does no better than
    the mean. Same parameters as :func:`pointwise_gfre`.
    """
    return _rms(pointwise_gfre(X, Y, train_idx, test_idx, scaler, estimator))


def _pad(A: np.ndarray, width: int) -> np.ndarray:
    return A if A.shape[1] == width else np.pad(A, [(0, 0), (0, width - A.shape[1])])


def _procrustes(M: np.ndarray) -> np.ndarray:
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
    X, Y = _check_pair(X, Y)
    train, test = resolve_split(len(X), train_idx, test_idx)
    X_train, X_test, Y_train, _ = _prepare(X, Y, train, test, scaler)
    pred_train, pred_test = _fit_predict(X_train, Y_train, [X_train, X_test], estimator)
    width = max(X.shape[1], pred_train.shape[1])
    Q = _procrustes(_pad(X_train, width).T @ _pad(pred_train, width))
    distortion = _pad(pred_test, width) - _pad(X_test, width) @ Q
    return _finite_result(np.linalg.norm(distortion, axis=1), "GFRD")


def gfrd(X, Y, train_idx=None, test_idx=None, scaler=None, estimator=None) -> float:
    """Global feature reconstruction distortion (RMS of :func:`pointwise_gfrd`).

    ``0`` means the linear map from ``X`` to ``Y`` is (a multiple of) an isometry.
    """
    return _rms(pointwise_gfrd(X, Y, train_idx, test_idx, scaler, estimator))


# --------------------------------------------------------------------------------------------
# local measure
# --------------------------------------------------------------------------------------------


def _cholesky(G: np.ndarray):
    c, info = lapack.dpotrf(G, lower=0, clean=1)
    return c if info == 0 else None


@dataclass
class _LocalProblem:
    """Shared per-call constants of the local fits."""

    folds: tuple[np.ndarray, np.ndarray]
    rcond: float
    alphas: np.ndarray = field(default_factory=lambda: rr.DEFAULT_ALPHAS)
    exact: bool = False  # skip the batched solver: every point on the SVD path (for tests)

    def contiguous(self) -> tuple[np.ndarray, _LocalProblem]:
        """A row order that puts fold 1 before fold 2, and this problem with slice folds.

        Neighbourhoods gathered in that order give the same fits (the folds hold the same
        rows) while every fold block is a view instead of a copy.
        """
        f1, f2 = self.folds
        order = np.concatenate([f1, f2])
        folds = (slice(0, len(f1)), slice(len(f1), len(order)))
        return order, _LocalProblem(folds, self.rcond, self.alphas, self.exact)


def _local_cutoff(Xc, Yc, prob: _LocalProblem) -> float:
    """Cutoff chosen by the 2-fold CV on one neighbourhood (SVD factors, as scikit-matter)."""
    f1, f2 = prob.folds
    A1, A2, y1, y2 = Xc[f1], Xc[f2], Yc[f1], Yc[f2]
    f12 = rr.factors_svd(A1, y1, A2)
    f21 = rr.factors_svd(A2, y2, A1)
    cutoffs = rr.scaled_cutoffs(f12.s, f21.s, prob.alphas)
    scores = rr.cv_scores(f12, y2, f21, y1, cutoffs, prob.rcond)
    return float(cutoffs[int(np.argmax(scores))])


def _local_error(Xn, Yn, x, y, prob: _LocalProblem) -> float:
    """Local reconstruction error of one test point from its neighbours ``(Xn, Yn)``, exactly
    as scikit-matter computes it (the path for points the batched solver cannot decide)."""
    xm, ym = Xn.mean(axis=0), Yn.mean(axis=0)
    Xc, Yc = Xn - xm, Yn - ym
    cutoff = _local_cutoff(Xc, Yc, prob)
    U, s, Vt = np.linalg.svd(Xc, full_matrices=False)
    n = int(np.sum(s > cutoff))
    pred = ((x - xm)[None, :] @ Vt.T[:, :n] / s[:n]) @ (U.T[:n] @ Yc)
    return float(np.linalg.norm(y - ym - pred[0]))


def nearest_train_rows(X_train: np.ndarray, X_query: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` nearest training rows of each query row, nearest first.

    Distances are computed as scikit-matter does (``|a|² + |b|² − 2 a·b``); ties are broken by
    row index.
    """
    sq = np.sum(X_train**2, axis=1)
    d = sq + np.sum(X_query**2, axis=1)[:, None] - 2.0 * X_query @ X_train.T
    if k < X_train.shape[0]:
        cand = np.sort(np.argpartition(d, k - 1, axis=1)[:, :k], axis=1)
    else:
        cand = np.broadcast_to(np.arange(X_train.shape[0]), d.shape)
    dc = np.take_along_axis(d, cand, axis=1)
    order = np.argsort(dc, axis=1, kind="stable")
    return np.take_along_axis(cand, order, axis=1)


def _n_threads(n_jobs: int | None) -> int:
    if n_jobs is None:
        return 1
    if n_jobs < 0:
        return max(1, (os.cpu_count() or 1) + 1 + n_jobs)
    return max(1, int(n_jobs))


def local_points(n_samples: int, n_local_points: int, n_train: int | None = None) -> int:
    """The LFRE neighbourhood size for ``n_local_points``: checked, and capped by ``n_train``
    (with a warning) when that is given."""
    k = int(n_local_points)
    if n_samples < k:
        raise MetricInputError(
            f"X has {n_samples} samples but n_local_points={k}. "
            "Must have at least n_local_points samples"
        )
    if k < 2:
        raise MetricInputError(f"n_local_points must be at least 2, got {k}")
    if n_train is not None and n_train < k:
        # scikit-matter silently uses every training row then; we do the same, loudly
        warnings.warn(
            f"only {n_train} training samples but n_local_points={k}: every neighbourhood "
            f"is the whole training set (k={n_train})",
            stacklevel=3,
        )
        k = n_train
    return k


def pointwise_lfre(
    X,
    Y,
    n_local_points: int = 100,
    train_idx=None,
    test_idx=None,
    scaler=None,
    estimator=None,
    n_jobs: int | None = None,
    chunk_size: int = 64,
) -> np.ndarray:
    """Per-test-sample local feature reconstruction error.

    For each test row, the ``n_local_points`` nearest training rows (in the scaled source
    space) are centred on their means and ``Y`` is regressed on ``X`` there; the error is the
    distance between the test row's target and its local prediction.

    Parameters
    ----------
    X, Y, train_idx, test_idx, scaler, estimator
        As in :func:`pointwise_gfre`.
    n_local_points : int, default=100
        Neighbourhood size ``k``, at least 2 and at most the number of rows. With fewer
        training rows than ``k``, every training row is used (as scikit-matter does) and a
        ``UserWarning`` says so.
    n_jobs : int, optional
        Threads (``None``: 1, ``-1``: all cores).
    chunk_size : int, default=64
        Test rows per neighbour-search block (memory ``chunk_size × n_train`` floats).

    Returns
    -------
    ndarray of shape (n_test,)
    """
    X, Y = _check_pair(X, Y)
    k = local_points(len(X), n_local_points)
    train, test = resolve_split(len(X), train_idx, test_idx)
    k = local_points(len(X), k, len(train))
    X_train, X_test, Y_train, Y_test = _prepare(X, Y, train, test, scaler)
    prob = _LocalProblem(folds=rr.fold_indices(k), rcond=rr.rcond_for((k, X.shape[1])))
    return _pointwise_lfre_scaled(
        X_train, X_test, Y_train, Y_test, k, prob, estimator, n_jobs, chunk_size
    )


def _truncated_pinv_predict_batched(
    G, left, right, cutoff
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``left @ pinv_cutoff(G) @ right`` for stacks of Gram matrices ``G`` (b, m, m).

    ``pinv_cutoff`` keeps the eigenvalues whose square root is above ``cutoff`` (the singular
    values of the matrix behind ``G``). Where a Cholesky factorisation of ``G - shift·I``
    proves all of them above the cutoff and well resolved, this is a Cholesky solve; the rest
    go through a stacked eigendecomposition. Returns the predictions, whether each
    spectrum is resolved well enough to truncate as an SVD would, and a bound on the condition
    number of the kept spectrum (the rounding of a Gram solution grows with it).
    """
    b, m = G.shape[:2]
    pred = np.empty((b, left.shape[1], right.shape[2]))
    resolved = np.ones(b, dtype=bool)
    cond = np.empty(b)
    eye = np.eye(m)
    partial = []
    for i in range(b):
        trace = float(np.trace(G[i]))
        shift = max(cutoff[i] ** 2 * (1.0 + 1e-6), rr.GRAM_RESOLUTION * trace)
        if _cholesky(G[i] - shift * eye) is None:
            partial.append(i)
            continue
        factor = _cholesky(G[i])
        pred[i] = cho_solve((factor, False), left[i].T).T @ right[i]
        # every eigenvalue is above the shift; LAPACK's 1-norm estimate is usually far tighter
        rcond, _ = lapack.dpocon(factor, np.linalg.norm(G[i], 1))
        cond[i] = min(trace / shift, 1.0 / rcond if rcond > 0 else np.inf)
    if partial:
        lam, V = rr.eigh_desc_batched(G[partial])
        resolved[partial] = rr.gram_resolved_batched(lam, cutoff[partial, None])
        keep = np.sqrt(np.clip(lam, 0.0, None)) > cutoff[partial, None]
        weight = np.divide(1.0, lam, out=np.zeros_like(lam), where=keep)
        cond[partial] = lam[:, 0] * np.max(weight, axis=1, initial=0.0)
        # left to right: matrix-vector products only (left has one row)
        pred[partial] = (
            ((left[partial] @ V) * weight[:, None, :]) @ V.transpose(0, 2, 1) @ right[partial]
        )
    return pred, resolved, cond


def _truncated_svd_predict_batched(A, left, right, cutoff) -> tuple[np.ndarray, np.ndarray]:
    """``left @ pinv_cutoff(A) @ right`` for stacks ``A`` (b, k, d), ``left`` (b, 1, d),
    ``right`` (b, k, t) through stacked SVDs (exact for any spectrum), and whether each cutoff
    is clear of the singular values."""
    U, s, Vt = np.linalg.svd(A, full_matrices=False)
    keep = s > cutoff[:, None]
    weight = np.divide(1.0, s, out=np.zeros_like(s), where=keep)
    pred = ((left @ Vt.transpose(0, 2, 1)) * weight[:, None, :]) @ U.transpose(0, 2, 1) @ right
    return pred, rr.cutoffs_clear_batched(s, cutoff[:, None])


def _row_space_coordinates(Xc: np.ndarray, xq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows of ``Xc`` (b, k, d) and ``xq`` (b, 1, d) in an orthonormal basis of their span.

    With ``[Xc; xq]ᵀ = Q R`` (a QR factorisation, backward stable like the SVD), the rows of
    ``Rᵀ`` have the same inner products as the rows of ``[Xc; xq]``, so every singular value,
    fold fit and prediction is unchanged while ``d`` shrinks to ``k + 1``.
    """
    k, d = Xc.shape[1:]
    if d <= k + 1:
        return Xc, xq
    R = np.linalg.qr(np.concatenate([Xc, xq], axis=1).transpose(0, 2, 1), mode="r")
    Z = R.transpose(0, 2, 1)
    return Z[:, :k], Z[:, k:]


# largest estimated relative rounding of a local error accepted from a Gram solution (the
# estimate overstated the deviations measured on real demo features by 1.6e3-1.3e4)
_GRAM_ACCURACY = 1e-6


def _local_errors_batched(Xn, Yn, x, y, prob: _LocalProblem, svd: bool = False) -> np.ndarray:
    """:func:`_local_error` for a stack of neighbourhoods ``Xn`` (b, k, d), ``Yn`` (b, k, t).

    By default cutoff selection and final prediction use stacked Gram matrices; with
    ``svd=True`` they use stacked SVDs of the neighbourhoods (reduced to ``k + 1`` columns
    first), which resolve any spectrum as scikit-matter's SVDs do. Where a point still cannot
    be decided as an SVD would decide it, the entry is NaN and the caller solves that test
    point on the next path.
    """
    xm, ym = Xn.mean(axis=1, keepdims=True), Yn.mean(axis=1, keepdims=True)
    Xc, Yc = Xn - xm, Yn - ym
    xq = x[:, None, :] - xm  # (b, 1, d)
    k, d = Xc.shape[1:]
    Xt = Xc.transpose(0, 2, 1)
    if svd:
        Xr, xr = _row_space_coordinates(Xc, xq)
        cutoff, decided = rr.select_cutoffs_batched(
            Xr, Yc, prob.folds, prob.rcond, prob.alphas, svd=True
        )

        def final(i):
            # an SVD solution rounds as scikit-matter's does: no condition number to check
            return (*_truncated_svd_predict_batched(Xr[i], xr[i], Yc[i], cutoff[i]), None)

    elif k <= d:
        # one k × k Gram serves both folds and the final fit. Centring leaves the all-ones
        # direction in its null space; adding mu·11ᵀ/k gives that direction the eigenvalue
        # mu and changes nothing else, so the final Gram can be proved well resolved (or
        # Cholesky-factorised). That component adds nothing to the prediction: the test
        # row's Gram vector and the centred targets are orthogonal to the ones vector.
        gram = Xc @ Xt
        cutoff, decided = rr.select_cutoffs_batched(
            Xc, Yc, prob.folds, prob.rcond, prob.alphas, gram=gram
        )

        def final(i):
            g = gram[i]
            mu = np.trace(g, axis1=1, axis2=2) / k
            g += (mu / k)[:, None, None]
            return _truncated_pinv_predict_batched(g, xq[i] @ Xt[i], Yc[i], cutoff[i])

    else:
        cutoff, decided = rr.select_cutoffs_batched(Xc, Yc, prob.folds, prob.rcond, prob.alphas)

        def final(i):
            return _truncated_pinv_predict_batched(Xt[i] @ Xc[i], xq[i], Xt[i] @ Yc[i], cutoff[i])

    # the final fit only where the cutoff is decided: the rest go to the next path anyway
    errors = np.full(len(Xn), np.nan)
    done = np.flatnonzero(decided)
    if len(done):
        pred, resolved, cond = final(done)
        target = y[done] - ym[done, 0]
        err = np.linalg.norm(target - pred[:, 0], axis=1)
        if cond is not None:
            # A Gram solution carries a rounding error of about eps·cond·|y| in the prediction
            # (an SVD's: eps·sqrt(cond)·|y|), so a nearly perfect local fit (real features
            # often give them) can lose its relative accuracy: those go to the SVD path
            scale = np.linalg.norm(target, axis=1) + np.linalg.norm(pred[:, 0], axis=1)
            resolved &= np.spacing(1.0) * cond * scale <= _GRAM_ACCURACY * err
        errors[done] = np.where(resolved, err, np.nan)
    return errors


def _pointwise_lfre_scaled(
    X_train, X_test, Y_train, Y_test, k, prob, estimator, n_jobs, chunk_size
):
    order = None
    if estimator is None:
        order, prob = prob.contiguous()
    # test rows the Gram path was tried on, and decided (shared by the threads: a heuristic)
    gram_tried = gram_decided = 0

    def run(start: int) -> np.ndarray:
        nonlocal gram_tried, gram_decided
        stop = min(start + chunk_size, len(X_test))
        neigh = nearest_train_rows(X_train, X_test[start:stop], k)
        if order is not None:
            neigh = neigh[:, order]
        out = np.full(stop - start, np.nan)
        if estimator is None and not prob.exact:
            # Gram path first (fast, decides well-conditioned neighbourhoods); stacked SVDs
            # for the rest (real features are often locally rank-deficient). Once the Gram
            # path has failed on most rows of this pair, it is not tried any more: only the
            # time changes, never a value.
            skip_gram = gram_tried >= 2 * chunk_size and gram_decided < 0.25 * gram_tried
            for svd in (True,) if skip_gram else (False, True):
                todo = np.flatnonzero(np.isnan(out))
                if len(todo):
                    rows, pts = neigh[todo], start + todo
                    out[todo] = _local_errors_batched(
                        X_train[rows], Y_train[rows], X_test[pts], Y_test[pts], prob, svd=svd
                    )
                    if not svd:
                        gram_tried += len(todo)
                        gram_decided += int(np.sum(~np.isnan(out[todo])))
        for j in np.flatnonzero(np.isnan(out)):
            i, rows = start + j, neigh[j]
            if estimator is None:
                out[j] = _local_error(X_train[rows], Y_train[rows], X_test[i], Y_test[i], prob)
            else:
                out[j] = _local_error_estimator(
                    X_train[rows], Y_train[rows], X_test[i], Y_test[i], estimator
                )
        return out

    from threadpoolctl import threadpool_limits

    starts = range(0, len(X_test), chunk_size)
    threads = _n_threads(n_jobs)
    # the local problems are small: one BLAS thread each, parallelism over test rows instead
    with threadpool_limits(limits=1, user_api="blas"):
        if threads == 1:
            parts = [run(s) for s in starts]
        else:
            with ThreadPoolExecutor(threads) as pool:
                parts = list(pool.map(run, starts))
    return _finite_result(np.concatenate(parts), "LFRE")


def _local_error_estimator(Xn, Yn, x, y, estimator) -> float:
    from sklearn.base import clone

    xm, ym = Xn.mean(axis=0), Yn.mean(axis=0)
    est = clone(estimator).fit(Xn - xm, Yn - ym)
    pred = ym + np.asarray(est.predict((x - xm)[None, :])).reshape(1, -1)
    return float(np.linalg.norm(y[None, :] - pred))


def lfre(
    X,
    Y,
    n_local_points: int = 100,
    train_idx=None,
    test_idx=None,
    scaler=None,
    estimator=None,
    n_jobs: int | None = None,
) -> float:
    """Local feature reconstruction error (RMS of :func:`pointwise_lfre`)."""
    return _rms(
        pointwise_lfre(X, Y, n_local_points, train_idx, test_idx, scaler, estimator, n_jobs)
    )


# --------------------------------------------------------------------------------------------
# streamed GFRE / GFRD from sufficient statistics
# --------------------------------------------------------------------------------------------

_FOLD1, _FOLD2, _TEST = 0, 1, 2


@dataclass
class _GroupStats:
    n: int
    sx: np.ndarray
    sy: np.ndarray
    xx: np.ndarray
    xy: np.ndarray
    yy: np.ndarray  # per-column sums of squares

    @classmethod
    def zeros(cls, dx: int, dy: int) -> _GroupStats:
        return cls(
            0, np.zeros(dx), np.zeros(dy), np.zeros((dx, dx)), np.zeros((dx, dy)), np.zeros(dy)
        )

    def add(self, X: np.ndarray, Y: np.ndarray) -> None:
        self.n += len(X)
        self.sx += X.sum(axis=0)
        self.sy += Y.sum(axis=0)
        self.xx += X.T @ X
        self.xy += X.T @ Y
        self.yy += np.einsum("ij,ij->j", Y, Y)

    def __add__(self, other: _GroupStats) -> _GroupStats:
        return _GroupStats(
            self.n + other.n,
            self.sx + other.sx,
            self.sy + other.sy,
            self.xx + other.xx,
            self.xy + other.xy,
            self.yy + other.yy,
        )


@dataclass
class _Scaled:
    """Second moments of one row group in the scaled space."""

    n: int
    xx: np.ndarray
    xy: np.ndarray
    yy: np.ndarray


@dataclass
class ReconstructionStats:
    """Sufficient statistics of a streamed pair ``(X, Y)`` for GFRE and GFRD.

    Built by :func:`reconstruction_stats`; holds per-group sums (fold 1, fold 2, test) of
    ``x``, ``y``, ``xᵀx``, ``xᵀy`` and ``y²`` (float64, shifted by the first chunk's means).
    """

    groups: list[_GroupStats]
    n_features_x: int
    n_features_y: int
    shift_x: np.ndarray | None = None  # subtracted from every row before summing
    shift_y: np.ndarray | None = None

    def _scaling(self) -> tuple[np.ndarray, np.ndarray, float, float]:
        """Training means (shifted frame) and total variances of ``X`` and ``Y``."""
        train = self.groups[_FOLD1] + self.groups[_FOLD2]
        mx, my = train.sx / train.n, train.sy / train.n
        var_x = (np.trace(train.xx) - train.n * mx @ mx) / train.n
        var_y = (train.yy.sum() - train.n * my @ my) / train.n
        for var, name in ((var_x, "X"), (var_y, "Y")):
            if var < 1e-12:
                raise MetricInputError(f"{name} has zero total variance on the training rows")
        return mx, my, var_x, var_y

    def pointwise(self, X_rows, Y_rows, measure: str = "gfre") -> np.ndarray:
        """Per-row GFRE or GFRD of the streamed fit on some rows (e.g. the test rows).

        ``X_rows``, ``Y_rows`` are unscaled rows of the original arrays; the root mean square
        over the test rows is :func:`gfre_streamed` (or :func:`gfrd_streamed`) up to rounding.
        Needs the shifts recorded by :func:`reconstruction_stats`.
        """
        if self.shift_x is None or self.shift_y is None:
            raise MetricInputError(
                "these statistics carry no shifts; build them with reconstruction_stats"
            )
        X_rows, Y_rows = _check_pair(X_rows, Y_rows)
        mx, my, var_x, var_y = self._scaling()
        Xs = (X_rows - self.shift_x - mx) / np.sqrt(var_x)
        W, (f1, f2, _) = _streamed_weights(self)
        pred = Xs @ W
        if measure == "gfre":
            Ys = (Y_rows - self.shift_y - my) / np.sqrt(var_y)
            return _finite_result(np.linalg.norm(Ys - pred, axis=1), "GFRE")
        if measure != "gfrd":
            raise MetricInputError(f"measure must be 'gfre' or 'gfrd', not {measure!r}")
        Q = _streamed_procrustes(W, f1, f2)
        width = Q.shape[0]
        distortion = _pad(pred, width) - _pad(Xs, width) @ Q
        return _finite_result(np.linalg.norm(distortion, axis=1), "GFRD")

    def scaled(self) -> list[_Scaled]:
        """Moments of fold 1, fold 2 and test in the space scaled by the training statistics."""
        mx, my, var_x, var_y = self._scaling()
        sx_, sy_ = np.sqrt(var_x), np.sqrt(var_y)
        out = []
        for g in self.groups:
            xx = g.xx - np.outer(mx, g.sx) - np.outer(g.sx, mx) + g.n * np.outer(mx, mx)
            xy = g.xy - np.outer(mx, g.sy) - np.outer(g.sx, my) + g.n * np.outer(mx, my)
            yy = g.yy - 2 * my * g.sy + g.n * my**2
            out.append(_Scaled(g.n, xx / var_x, xy / (sx_ * sy_), yy / var_y))
        return out


def reconstruction_stats(
    chunks: Iterable[tuple[np.ndarray, np.ndarray]],
    n_samples: int,
    train_idx=None,
    test_idx=None,
) -> ReconstructionStats:
    """Accumulate the statistics of a pair of arrays read chunk by chunk.

    Parameters
    ----------
    chunks : iterable of (X_chunk, Y_chunk)
        Consecutive row blocks of ``X`` and ``Y`` (any float dtype), ``n_samples`` rows in all.
    n_samples : int
        Total number of rows (needed up front for the default split and the CV folds).
    train_idx, test_idx : array of int, optional
        As in :func:`gfre`; rows in neither are ignored.

    Returns
    -------
    ReconstructionStats
    """
    group = row_groups(n_samples, train_idx, test_idx)
    stats: list[_GroupStats] | None = None
    shift_x = shift_y = None
    start = 0
    for X_chunk, Y_chunk in chunks:
        X_chunk = _as_2d_finite(X_chunk, f"X rows {start}+")
        Y_chunk = _as_2d_finite(Y_chunk, f"Y rows {start}+")
        if len(X_chunk) != len(Y_chunk):
            raise MetricInputError(
                f"chunk at row {start}: X has {len(X_chunk)} rows but Y has {len(Y_chunk)}"
            )
        if stats is None:
            stats = [_GroupStats.zeros(X_chunk.shape[1], Y_chunk.shape[1]) for _ in range(3)]
            shift_x, shift_y = X_chunk.mean(axis=0), Y_chunk.mean(axis=0)
        stop = start + len(X_chunk)
        if stop > n_samples:
            raise MetricInputError(f"the chunks hold more than n_samples={n_samples} rows")
        add_chunk(stats, X_chunk, Y_chunk, group[start:stop], shift_x, shift_y)
        start = stop
    if stats is None or start != n_samples:
        raise MetricInputError(f"the chunks hold {start} rows, expected n_samples={n_samples}")
    return ReconstructionStats(
        stats, stats[0].xx.shape[0], stats[0].xy.shape[1], shift_x=shift_x, shift_y=shift_y
    )


def row_groups(n_samples: int, train_idx=None, test_idx=None) -> np.ndarray:
    """The group of every row for the streamed fit: CV fold 1 or 2 of the training rows
    (0, 1), test (2), or neither (-1); the split as :func:`resolve_split` makes it."""
    train, test = resolve_split(n_samples, train_idx, test_idx)
    group = np.full(n_samples, -1, dtype=np.int8)
    fold1, fold2 = rr.fold_indices(len(train))
    group[train[fold1]] = _FOLD1
    group[train[fold2]] = _FOLD2
    group[test] = _TEST
    return group


def add_chunk(
    stats: list[_GroupStats],
    X_chunk: np.ndarray,
    Y_chunk: np.ndarray,
    groups: np.ndarray,
    shift_x: np.ndarray,
    shift_y: np.ndarray,
) -> None:
    """Add a block of (float64) rows to the per-group statistics ``stats`` (fold 1, fold 2,
    test); ``groups`` is the block's slice of :func:`row_groups`."""
    for gid in (_FOLD1, _FOLD2, _TEST):
        rows = groups == gid
        if rows.any():
            stats[gid].add(X_chunk[rows] - shift_x, Y_chunk[rows] - shift_y)


def _gram_factors_from_stats(xx: np.ndarray, xy: np.ndarray):
    """Eigen-factors of a fold from its moments: ``s``, ``V`` and ``R / s = Vᵀ xy / s²``."""
    lam, V = rr._eigh_desc(xx)
    floor = 1e-12 * max(lam[0], 0.0)  # below this the normal equations cannot resolve a value
    keep = lam > floor
    s = np.where(keep, np.sqrt(np.clip(lam, 0.0, None)), 0.0)
    inv_lam = np.divide(1.0, lam, out=np.zeros_like(lam), where=keep)
    Rt = (V.T @ xy) * inv_lam[:, None]  # weights in the eigenbasis: W = V @ Rt
    return s, V, Rt


def _sse_by_count(V, Rt, other: _Scaled) -> np.ndarray:
    """Per-column SSE on ``other`` of the model truncated to ``n`` components, for every ``n``.

    Row ``n`` of the result is for the first ``n`` components (row 0: the zero model).
    """
    g = V.T @ other.xy
    H = V.T @ other.xx @ V
    cross = np.cumsum(g * Rt, axis=0)
    incr = 2.0 * Rt * (np.tril(H, -1) @ Rt) + np.diag(H)[:, None] * Rt**2
    quad = np.cumsum(incr, axis=0)
    sse = other.yy[None, :] - 2.0 * cross + quad
    return np.vstack([other.yy[None, :], sse])


def _streamed_weights(stats: ReconstructionStats) -> tuple[np.ndarray, list[_Scaled]]:
    f1, f2, test = stats.scaled()
    n_train = f1.n + f2.n
    rcond = rr.rcond_for((n_train, stats.n_features_x))
    s1, V1, R1 = _gram_factors_from_stats(f1.xx, f1.xy)
    s2, V2, R2 = _gram_factors_from_stats(f2.xx, f2.xy)
    cutoffs = rr.scaled_cutoffs(s1, s2)
    sse12 = _sse_by_count(V1, R1, f2)
    sse21 = _sse_by_count(V2, R2, f1)
    n1 = rr.counts_for(s1, cutoffs, rcond)
    n2 = rr.counts_for(s2, cutoffs, rcond)
    scores = np.array(
        [
            (rr.neg_rmse_from_sse(sse12[a], f2.n) + rr.neg_rmse_from_sse(sse21[b], f1.n)) / 2
            for a, b in zip(n1, n2, strict=True)
        ]
    )
    cutoff = cutoffs[int(np.argmax(scores))]
    xx = f1.xx + f2.xx
    xy = f1.xy + f2.xy
    s, V, Rt = _gram_factors_from_stats(xx, xy)
    n = int(np.sum(s > cutoff))
    W = V[:, :n] @ Rt[:n]
    return W, [f1, f2, test]


def gfre_streamed(
    chunks: Iterable[tuple[np.ndarray, np.ndarray]],
    n_samples: int,
    train_idx=None,
    test_idx=None,
) -> float:
    """GFRE of ``Y`` from ``X`` read chunk by chunk, in ``O(d²)`` memory.

    Equal to :func:`gfre` on the concatenated arrays up to the precision of the normal
    equations (relative ~1e-8 for well-conditioned features; singular values below
    ``1e-6 · s_max`` are treated as zero). Parameters as in :func:`reconstruction_stats`.
    """
    stats = (
        chunks
        if isinstance(chunks, ReconstructionStats)
        else reconstruction_stats(chunks, n_samples, train_idx, test_idx)
    )
    W, (_, _, test) = _streamed_weights(stats)
    sse = test.yy.sum() - 2.0 * np.sum(W * test.xy) + np.sum(W * (test.xx @ W))
    return float(np.sqrt(max(sse, 0.0) / test.n))


def gfrd_streamed(
    chunks: Iterable[tuple[np.ndarray, np.ndarray]],
    n_samples: int,
    train_idx=None,
    test_idx=None,
) -> float:
    """GFRD of ``Y`` from ``X`` read chunk by chunk (see :func:`gfre_streamed`)."""
    stats = (
        chunks
        if isinstance(chunks, ReconstructionStats)
        else reconstruction_stats(chunks, n_samples, train_idx, test_idx)
    )
    W, (f1, f2, test) = _streamed_weights(stats)
    dx, dy = W.shape
    Q = _streamed_procrustes(W, f1, f2)[:dx, :dy]
    total = np.sum(W * (test.xx @ W)) + np.trace(test.xx) - 2.0 * np.sum(W * (test.xx @ Q))
    return float(np.sqrt(max(total, 0.0) / test.n))


def _streamed_procrustes(W: np.ndarray, f1: _Scaled, f2: _Scaled) -> np.ndarray:
    """The orthogonal map (zero-padded, square) closest to ``W`` on the training rows."""
    dx, dy = W.shape
    width = max(dx, dy)
    M = np.zeros((width, width))
    M[:dx, :dy] = (f1.xx + f2.xx) @ W
    return _procrustes(M)


def iter_row_chunks(X, Y, chunk_size: int = 65536) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(X[i:i+chunk], Y[i:i+chunk])`` blocks of in-memory arrays."""
    for start in range(0, len(X), chunk_size):
        yield X[start : start + chunk_size], Y[start : start + chunk_size]
