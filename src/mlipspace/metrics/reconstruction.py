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
  by 2-fold CV on RMSE (a truncated-SVD pseudo-inverse; see :mod:`mlipspace.metrics.ridge`);
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

The three measures live in three modules, each the one home of its code:
:mod:`~mlipspace.metrics.gfr` (GFRE/GFRD in memory), this module (LFRE: the local fits,
batched and exact) and :mod:`~mlipspace.metrics.streamed` (GFRE/GFRD from sufficient
statistics); :mod:`mlipspace.metrics` gathers them. They stand on the shared kernels of :mod:`~mlipspace.metrics.ridge`, :mod:`~mlipspace.metrics.scaling`,
:mod:`~mlipspace.metrics.split`, :mod:`~mlipspace.metrics.neighbours` and
:mod:`~mlipspace.metrics.validation`.
"""

from __future__ import annotations

import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.linalg import cho_solve, lapack

from ..errors import MetricInputError
from . import backend as bk
from . import ridge as rr
from .neighbours import duplicate_representatives, nearest_train_rows
from .scaling import prepare
from .split import resolve_split
from .validation import check_finite_result, check_pair, rms, validate_params

__all__ = [
    "LocalProblem",
    "lfre",
    "local_error",
    "local_errors_batched",
    "local_points",
    "pointwise_lfre",
    "pointwise_lfre_scaled",
]


def _cholesky(G: np.ndarray):
    c, info = lapack.dpotrf(G, lower=0, clean=1)
    return c if info == 0 else None


@dataclass
class LocalProblem:
    """The constants every local fit of one LFRE call shares.

    Attributes
    ----------
    folds : tuple of two index arrays (or slices)
        The 2-fold CV split over the ``k`` neighbours in distance order.
    rcond : float
        The absolute singular-value floor of a ``k × d`` problem.
    alphas : ndarray
        Relative cutoffs of the ridge CV.
    exact : bool
        Skip the batched solvers: every point takes the per-point SVD path (for tests).
    """

    folds: tuple[np.ndarray, np.ndarray]
    rcond: float
    alphas: np.ndarray = field(default_factory=lambda: rr.DEFAULT_ALPHAS)
    exact: bool = False  # skip the batched solver: every point on the SVD path (for tests)

    def contiguous(self) -> tuple[np.ndarray, LocalProblem]:
        """A row order that puts fold 1 before fold 2, and this problem with slice folds.

        Neighbourhoods gathered in that order give the same fits (the folds hold the same
        rows) while every fold block is a view instead of a copy.
        """
        f1, f2 = self.folds
        order = np.concatenate([f1, f2])
        folds = (slice(0, len(f1)), slice(len(f1), len(order)))
        return order, LocalProblem(folds, self.rcond, self.alphas, self.exact)

    @classmethod
    def for_neighbourhood(cls, k: int, n_features: int) -> LocalProblem:
        """The problem of neighbourhoods of ``k`` rows of ``n_features`` source features."""
        return cls(folds=rr.fold_indices(k), rcond=rr.rcond_for((k, n_features)))


def _local_cutoff(Xc, Yc, prob: LocalProblem) -> float:
    """Cutoff chosen by the 2-fold CV on one neighbourhood (SVD factors, as scikit-matter)."""
    f1, f2 = prob.folds
    A1, A2, y1, y2 = Xc[f1], Xc[f2], Yc[f1], Yc[f2]
    f12 = rr.factors_svd(A1, y1, A2)
    f21 = rr.factors_svd(A2, y2, A1)
    cutoffs = rr.scaled_cutoffs(f12.s, f21.s, prob.alphas)
    scores = rr.cv_scores(f12, y2, f21, y1, cutoffs, prob.rcond)
    return float(cutoffs[int(np.argmax(scores))])


def local_error(Xn, Yn, x, y, prob: LocalProblem) -> float:
    """Local reconstruction error of one test point from its neighbours, as scikit-matter.

    The path for points the batched solvers cannot decide: SVDs of the centred
    neighbourhood ``(Xn, Yn)`` (k, ·), the cutoff of the 2-fold CV, and the distance between
    ``y`` and the local prediction of ``x``.

    Returns
    -------
    float
    """
    xm, ym = Xn.mean(axis=0), Yn.mean(axis=0)
    Xc, Yc = Xn - xm, Yn - ym
    cutoff = _local_cutoff(Xc, Yc, prob)
    U, s, Vt = np.linalg.svd(Xc, full_matrices=False)
    n = int(np.sum(s > cutoff))
    pred = ((x - xm)[None, :] @ Vt.T[:, :n] / s[:n]) @ (U.T[:n] @ Yc)
    return float(np.linalg.norm(y - ym - pred[0]))


def _n_threads(n_jobs: int | None) -> int:
    if n_jobs is None:
        return 1
    if n_jobs < 0:
        return max(1, (os.cpu_count() or 1) + 1 + n_jobs)
    return max(1, int(n_jobs))


def local_points(n_samples: int, n_local_points: int, n_train: int | None = None) -> int:
    """The LFRE neighbourhood size for ``n_local_points``: checked, and capped by ``n_train``
    (with a warning) when that is given."""
    validate_params(n_local_points=n_local_points)
    k = int(n_local_points)
    if n_samples < k:
        raise MetricInputError(
            f"LFRE: X has {n_samples} samples but n_local_points={k}. "
            "Must have at least n_local_points samples"
        )
    if k < 2:
        raise MetricInputError(f"LFRE: n_local_points must be at least 2, got {k}")
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
    chunk_size: int | None = None,
    device: str | None = None,
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
    chunk_size : int, optional
        Test rows per neighbour-search block (memory ``chunk_size × n_train`` floats);
        default 64 on numpy, 1024 on torch.
    device : str, optional
        ``None``/``"cpu"``: numpy; ``"cuda[:i]"`` or ``"torch-cpu"``: the neighbour search
        and the stacked local problems on torch (see :func:`pointwise_lfre_scaled`).

    Returns
    -------
    ndarray of shape (n_test,)
    """
    backend = bk.get_backend(device)
    chunk_size = default_chunk_size(chunk_size, backend)
    validate_params(n_jobs=n_jobs, chunk_size=chunk_size)
    X, Y = check_pair(X, Y)
    k = local_points(len(X), n_local_points)
    train, test = resolve_split(len(X), train_idx, test_idx, "LFRE")
    k = local_points(len(X), k, len(train))
    X_train, X_test, Y_train, Y_test = prepare(X, Y, train, test, scaler)
    prob = LocalProblem.for_neighbourhood(k, X.shape[1])
    return pointwise_lfre_scaled(
        X_train, X_test, Y_train, Y_test, k, prob, estimator, n_jobs, chunk_size, backend
    )


def default_chunk_size(chunk_size: int | None, backend: bk.Backend) -> int:
    """Test rows per LFRE block: 64 on numpy (threads share the work), 1024 on torch (one
    large stack per kernel call keeps a GPU busy)."""
    if chunk_size is not None:
        return chunk_size
    return 64 if backend.is_numpy else 1024


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
    if bk.is_torch(G):
        return _truncated_pinv_predict_torch(G, left, right, cutoff)
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
        pred[partial], resolved[partial], cond[partial] = _eigen_pinv_predict(
            G[partial], left[partial], right[partial], cutoff[partial]
        )
    return pred, resolved, cond


def _eigen_pinv_predict(G, left, right, cutoff):
    """The truncated pseudo-inverse prediction of stacks through their eigendecompositions:
    predictions, whether each spectrum is resolved, condition bound of the kept part."""
    xp = bk.namespace(G)
    lam, V = rr.eigh_desc_batched(G)
    resolved = rr.gram_resolved_batched(lam, cutoff[:, None])
    keep = xp.sqrt(xp.clip(lam, 0.0, None)) > cutoff[:, None]
    weight = bk.reciprocal_where(lam, keep)
    cond = lam[:, 0] * xp.max(weight, axis=1, initial=0.0)
    # left to right: matrix-vector products only (left has one row)
    pred = ((left @ V) * weight[:, None, :]) @ V.mT @ right
    return pred, resolved, cond


def _truncated_pinv_predict_torch(G, left, right, cutoff):
    """:func:`_truncated_pinv_predict_batched` on torch: the same proof by a shifted
    Cholesky factorisation, stacked (``cholesky_ex``), and the same eigen path for the rest.

    The backend switch of LFRE: torch has no LAPACK condition estimate (``dpocon``), so a
    Cholesky solution's condition is bounded by ``trace / shift`` alone. The bound is looser,
    so more points fail the accuracy test and take the SVD path: only the time changes.
    """
    import torch

    b, m = G.shape[:2]
    eye = torch.eye(m, dtype=G.dtype, device=G.device)
    trace = torch.diagonal(G, 0, 1, 2).sum(dim=-1)
    shift = torch.maximum(cutoff**2 * (1.0 + 1e-6), rr.GRAM_RESOLUTION * trace)
    proven = torch.linalg.cholesky_ex(G - shift[:, None, None] * eye).info == 0
    pred = torch.empty((b, left.shape[1], right.shape[2]), dtype=G.dtype, device=G.device)
    resolved = torch.ones(b, dtype=torch.bool, device=G.device)
    cond = torch.empty(b, dtype=G.dtype, device=G.device)
    chol = proven.nonzero().reshape(-1)
    if len(chol):
        factor = torch.linalg.cholesky_ex(G[chol]).L
        pred[chol] = torch.cholesky_solve(left[chol].mT, factor).mT @ right[chol]
        cond[chol] = trace[chol] / shift[chol]
    partial = (~proven).nonzero().reshape(-1)
    if len(partial):
        pred[partial], resolved[partial], cond[partial] = _eigen_pinv_predict(
            G[partial], left[partial], right[partial], cutoff[partial]
        )
    return pred, resolved, cond


def _truncated_svd_predict_batched(A, left, right, cutoff) -> tuple[np.ndarray, np.ndarray]:
    """``left @ pinv_cutoff(A) @ right`` for stacks ``A`` (b, k, d), ``left`` (b, 1, d),
    ``right`` (b, k, t) through stacked SVDs (exact for any spectrum), and whether each cutoff
    is clear of the singular values."""
    U, s, Vt = bk.svd(A)
    keep = s > cutoff[:, None]
    weight = bk.reciprocal_where(s, keep)
    pred = ((left @ Vt.mT) * weight[:, None, :]) @ U.mT @ right
    return pred, rr.cutoffs_clear_batched(s, cutoff[:, None])


def _row_space_coordinates(Xc: np.ndarray, xq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows of ``Xc`` (b, k, d) and ``xq`` (b, 1, d) in an orthonormal basis of their span.

    With ``[Xc; xq]ᵀ = Q R`` (a QR factorisation, backward stable like the SVD), the rows of
    ``Rᵀ`` have the same inner products as the rows of ``[Xc; xq]``, so every singular value,
    fold fit and prediction is unchanged while ``d`` shrinks to ``k + 1``.
    """
    xp = bk.namespace(Xc)
    k, d = Xc.shape[1:]
    if d <= k + 1:
        return Xc, xq
    R = xp.linalg.qr(xp.concatenate([Xc, xq], axis=1).mT, mode="r")
    Z = R.mT
    return Z[:, :k], Z[:, k:]


# largest estimated relative rounding of a local error accepted from a Gram solution (the
# estimate overstated the deviations measured on real demo features by 1.6e3-1.3e4)
_GRAM_ACCURACY = 1e-6


def local_errors_batched(Xn, Yn, x, y, prob: LocalProblem, svd: bool = False) -> np.ndarray:
    """:func:`local_error` for a stack of neighbourhoods ``Xn`` (b, k, d), ``Yn`` (b, k, t).

    By default cutoff selection and final prediction use stacked Gram matrices; with
    ``svd=True`` they use stacked SVDs of the neighbourhoods (reduced to ``k + 1`` columns
    first), which resolve any spectrum as scikit-matter's SVDs do. Where a point still cannot
    be decided as an SVD would decide it, the entry is NaN and the caller solves that test
    point on the next path.

    Both paths take numpy arrays or torch tensors (on one device; see
    :mod:`~mlipspace.metrics.backend`; the Gram path's one backend switch is
    :func:`_truncated_pinv_predict_torch`). The errors are on the inputs' backend.
    """
    xp = bk.namespace(Xn)
    xm, ym = Xn.mean(axis=1, keepdims=True), Yn.mean(axis=1, keepdims=True)
    Xc, Yc = Xn - xm, Yn - ym
    xq = x[:, None, :] - xm  # (b, 1, d)
    k, d = Xc.shape[1:]
    Xt = Xc.mT
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
            mu = xp.trace(g, axis1=1, axis2=2) / k
            g += (mu / k)[:, None, None]
            return _truncated_pinv_predict_batched(g, xq[i] @ Xt[i], Yc[i], cutoff[i])

    else:
        cutoff, decided = rr.select_cutoffs_batched(Xc, Yc, prob.folds, prob.rcond, prob.alphas)

        def final(i):
            return _truncated_pinv_predict_batched(Xt[i] @ Xc[i], xq[i], Xt[i] @ Yc[i], cutoff[i])

    # the final fit only where the cutoff is decided: the rest go to the next path anyway
    errors = xp.full(len(Xn), np.nan)
    done = xp.flatnonzero(decided)
    if len(done):
        pred, resolved, cond = final(done)
        target = y[done] - ym[done, 0]
        err = xp.linalg.norm(target - pred[:, 0], axis=1)
        if cond is not None:
            # A Gram solution carries a rounding error of about eps·cond·|y| in the prediction
            # (an SVD's: eps·sqrt(cond)·|y|), so a nearly perfect local fit (real features
            # often give them) can lose its relative accuracy: those go to the SVD path
            scale = xp.linalg.norm(target, axis=1) + xp.linalg.norm(pred[:, 0], axis=1)
            resolved &= float(np.spacing(1.0)) * cond * scale <= _GRAM_ACCURACY * err
        errors[done] = xp.where(resolved, err, np.nan)
    return errors


def pointwise_lfre_scaled(
    X_train: np.ndarray,
    X_test: np.ndarray,
    Y_train: np.ndarray,
    Y_test: np.ndarray,
    k: int,
    prob: LocalProblem | None = None,
    estimator=None,
    n_jobs: int | None = None,
    chunk_size: int | None = None,
    device: str | bk.Backend | None = None,
) -> np.ndarray:
    """Per-test-row LFRE of rows already split and scaled: the kernel of every LFRE path.

    Parameters
    ----------
    X_train, Y_train : ndarray of shape (n_train, d_X), (n_train, d_Y)
        Scaled training rows; the neighbours of a test row are taken among them.
    X_test, Y_test : ndarray of shape (n_test, d_X), (n_test, d_Y)
        Scaled test rows.
    k : int
        Neighbourhood size (``2 <= k <= n_train``).
    prob : LocalProblem, optional
        Default ``LocalProblem.for_neighbourhood(k, d_X)``.
    estimator : object with ``fit``/``predict``, optional
        Replaces the cutoff ridge (fitted per point).
    n_jobs : int, optional
        Threads (``None``: 1, ``-1``: all cores); numpy only.
    chunk_size : int, optional
        Test rows per neighbour-search block (default: :func:`default_chunk_size`).
    device : str, optional
        The backend (:mod:`~mlipspace.metrics.backend`). On torch the neighbour search and
        the stacked local problems (Gram matrices with batched ``eigh`` and Cholesky, then
        stacked SVDs for what they cannot decide) run on the device, and the rare undecided
        point takes the per-point numpy SVD path on the host, so the results equal the
        numpy path's to rounding.

    Returns
    -------
    ndarray of shape (n_test,)
    """
    backend = bk.get_backend(device)
    chunk_size = default_chunk_size(chunk_size, backend)
    if estimator is not None and not backend.is_numpy:
        raise MetricInputError("LFRE with an estimator runs on numpy only (device=None)")
    if prob is None:
        prob = LocalProblem.for_neighbourhood(k, X_train.shape[1])
    # copies of a training row get bitwise-equal distances: the tie rule then decides
    representatives = duplicate_representatives(X_train)
    # the arrays the batched kernels see: the inputs themselves on numpy
    Xb_train, Xb_test, Yb_train, Yb_test = (
        bk.asarray(A, backend) for A in (X_train, X_test, Y_train, Y_test)
    )
    xp = bk.namespace(Xb_train)
    order = None
    if estimator is None:
        order, prob = prob.contiguous()
    # test rows the Gram path was tried on, and decided (shared by the threads: a heuristic)
    gram_tried = gram_decided = 0

    def run(start: int) -> np.ndarray:
        nonlocal gram_tried, gram_decided
        stop = min(start + chunk_size, len(X_test))
        neigh = nearest_train_rows(Xb_train, Xb_test[start:stop], k, representatives)
        if order is not None:
            neigh = neigh[:, order]
        out = xp.full(stop - start, np.nan)
        if estimator is None and not prob.exact:
            # Gram path first (fast, decides well-conditioned neighbourhoods); stacked SVDs
            # for the rest (real features are often locally rank-deficient). Once the Gram
            # path has failed on most rows of this pair, it is not tried any more: only the
            # time changes, never a value.
            skip_gram = gram_tried >= 2 * chunk_size and gram_decided < 0.25 * gram_tried
            for svd in (True,) if skip_gram else (False, True):
                todo = xp.flatnonzero(xp.isnan(out))
                if len(todo):
                    rows, pts = neigh[todo], start + todo
                    out[todo] = local_errors_batched(
                        Xb_train[rows], Yb_train[rows], Xb_test[pts], Yb_test[pts], prob, svd
                    )
                    if not svd:
                        gram_tried += len(todo)
                        gram_decided += int((~xp.isnan(out[todo])).sum())
        out, neigh = bk.to_numpy(out), bk.to_numpy(neigh)  # the same arrays on numpy
        for j in np.flatnonzero(np.isnan(out)):
            i, rows = start + j, neigh[j]
            if estimator is None:
                out[j] = local_error(X_train[rows], Y_train[rows], X_test[i], Y_test[i], prob)
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
        if threads == 1 or not backend.is_numpy:
            parts = [run(s) for s in starts]
        else:
            with ThreadPoolExecutor(threads) as pool:
                parts = list(pool.map(run, starts))
    return check_finite_result(np.concatenate(parts), "LFRE")


def _local_error_estimator(Xn, Yn, x, y, estimator) -> float:
    from sklearn.base import clone

    xm, ym = Xn.mean(axis=0), Yn.mean(axis=0)
    est = clone(estimator).fit(Xn - xm, Yn - ym)
    pred = ym + np.asarray(est.predict((x - xm)[None, :])).reshape(1, -1)
    return float(np.linalg.norm(y[None, :] - pred))


def lfre(X, Y, n_local_points: int = 100, *args: Any, **kwargs: Any) -> float:
    """Local feature reconstruction error: the RMS of :func:`pointwise_lfre`.

    The parameters are those of :func:`pointwise_lfre`: ``X, Y, n_local_points=100,
    train_idx=None, test_idx=None, scaler=None, estimator=None, n_jobs=None, chunk_size=None,
    device=None``.
    """
    return rms(pointwise_lfre(X, Y, n_local_points, *args, **kwargs))
