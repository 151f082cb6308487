"""Truncated-SVD ridge regression with 2-fold cross-validation (scikit-matter's ``Ridge2FoldCV``).

The one implementation of the regression behind GFRE, GFRD and LFRE. It reproduces
``skmatter.linear_model.Ridge2FoldCV(alphas=geomspace(1e-9, 0.9, 20), alpha_type="relative",
regularization_method="cutoff", scoring="neg_root_mean_squared_error")``:

* the training rows are split in two folds by ``KFold(2, shuffle=True, random_state=0x5F3759DF)``;
* each fold ``A = U S Vᵀ`` predicts the other fold ``B`` as ``(B V[:, :n] / s[:n]) @ (Uᵀ y)[:n]``,
  keeping the ``n`` singular values above ``alpha * max(s_fold1[0], s_fold2[0])`` (and above the
  absolute ``rcond = max(n, d) * eps``);
* the score of an alpha is the mean over the two directions of the negative RMSE (sklearn's
  ``root_mean_squared_error``: per-column RMSE averaged over columns); the first best alpha wins;
* the final weights are the truncated pseudo-inverse of all training rows at the chosen cutoff.

A fold is described by its *factors* ``(s, P, R)``: singular values ``s`` (descending),
``P = B V`` for the rows ``B`` to predict and ``R = Uᵀ y``. They come either from an SVD of the
rows (exact, what scikit-matter does; stacked for LFRE's many small problems) or from an
eigendecomposition of the smaller Gram matrix (faster; used by LFRE when the spectrum is well
resolved) or from sufficient statistics (streamed GFRE/GFRD). The scoring and selection code below
is shared by all of them.

The batched kernels (:func:`factors_svd_batched`, :func:`factors_gram_batched`,
:func:`select_cutoffs_batched` and the functions they call) take numpy arrays or torch tensors: they call the
functions of ``xp = backend.namespace(A)``, which is ``numpy`` itself for numpy arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import lapack

from . import backend as bk

DEFAULT_ALPHAS = np.geomspace(1e-9, 0.9, 20)
SKMATTER_RANDOM_STATE = 0x5F3759DF

# Gram-based factors are trusted only if every eigenvalue kept is at least this fraction of the
# largest one (singular values >= 1e-4 * s_max), so that they carry ~1e-8 relative error at most.
GRAM_RESOLUTION = 1e-8
# A cutoff closer than this (relative) to a singular value is ambiguous for Gram factors.
CUTOFF_MARGIN = 1e-7
# Singular values from any backward-stable SVD carry an absolute error of a few eps * s_max; a
# cutoff closer than this to one (relative to s_max) could be decided either way.
SVD_NOISE = 1e3 * np.spacing(np.float64(1))


def fold_indices(
    n: int, random_state: int = SKMATTER_RANDOM_STATE
) -> tuple[np.ndarray, np.ndarray]:
    """The two folds of ``KFold(2, shuffle=True, random_state)`` on ``n`` rows (first split)."""
    from sklearn.model_selection import KFold

    if n < 2:
        raise ValueError(f"2-fold cross-validation needs at least 2 rows, got {n}")
    fold1, fold2 = next(
        KFold(n_splits=2, shuffle=True, random_state=random_state).split(np.empty(n))
    )
    return fold1, fold2


def rcond_for(shape: tuple[int, int]) -> float:
    """scikit-matter's absolute singular-value floor: ``max(shape) * eps`` (float64)."""
    return float(max(shape) * np.spacing(np.float64(1)))


def neg_rmse(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """``-root_mean_squared_error(y_true, y_pred)`` with uniform averaging over columns."""
    return -float(np.mean(np.sqrt(np.mean((y_true - y_pred) ** 2, axis=0))))


def neg_rmse_from_sse(sse: np.ndarray, n_rows: int) -> float:
    """Same as :func:`neg_rmse` from per-column sums of squared errors."""
    return -float(np.mean(np.sqrt(np.maximum(sse, 0.0) / n_rows)))


def counts_for(s: np.ndarray, cutoffs: np.ndarray, rcond: float | None) -> np.ndarray:
    """Number of singular values (descending ``s``) strictly above each cutoff (and ``rcond``)."""
    n_max = len(s) if rcond is None else int(np.sum(s > rcond))
    return np.minimum(n_max, np.sum(s[None, :] > np.asarray(cutoffs)[:, None], axis=1))


def truncated_predictions(P: np.ndarray, s: np.ndarray, R: np.ndarray, counts):
    """Yield ``(n, (P[:, :n] / s[:n]) @ R[:n])`` for the distinct ``counts``, cumulatively."""
    pred = np.zeros((P.shape[0], R.shape[1]))
    prev = 0
    for n in np.unique(counts):
        if n > prev:
            pred = pred + (P[:, prev:n] / s[prev:n]) @ R[prev:n]
            prev = n
        yield int(n), pred


def scores_explicit(P, s, R, y, counts) -> np.ndarray:
    """Negative RMSE of predicting the rows ``y`` for every entry of ``counts``."""
    by_count = {n: neg_rmse(y, pred) for n, pred in truncated_predictions(P, s, R, counts)}
    return np.array([by_count[int(n)] for n in counts])


@dataclass
class Factors:
    """Spectral factors of one fold: ``s`` descending, ``P = B V``, ``R = Uᵀ y``."""

    s: np.ndarray
    P: np.ndarray
    R: np.ndarray


def _fold_svd(A: np.ndarray, B: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(U, s, B V)`` of the SVD ``A = U S Vᵀ``: a fold's factors before any target."""
    U, s, Vt = np.linalg.svd(A, full_matrices=False)
    return U, s, B @ Vt.T


def factors_svd(A: np.ndarray, y: np.ndarray, B: np.ndarray) -> Factors:
    """Exact factors from ``numpy.linalg.svd`` (what scikit-matter computes)."""
    U, s, P = _fold_svd(A, B)
    return Factors(s=s, P=P, R=U.T @ y)


def eigh_desc(G: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenpairs of a symmetric matrix, largest first (LAPACK dsyevd; releases the GIL)."""
    w, v, info = lapack.dsyevd(G, compute_v=1, lower=1)
    if info != 0:
        raise np.linalg.LinAlgError(f"dsyevd failed (info={info})")
    return w[::-1], v[:, ::-1]


def cv_scores(f12: Factors, y2, f21: Factors, y1, cutoffs, rcond) -> np.ndarray:
    """Mean over both directions of the negative RMSE, one value per cutoff (explicit rows).

    ``f12`` are the factors of fold 1 with ``P`` the fold-2 rows, ``f21`` the reverse.
    """
    s1 = scores_explicit(f12.P, f12.s, f12.R, y2, counts_for(f12.s, cutoffs, rcond))
    s2 = scores_explicit(f21.P, f21.s, f21.R, y1, counts_for(f21.s, cutoffs, rcond))
    return (s1 + s2) / 2


def scaled_cutoffs(
    s1: np.ndarray, s2: np.ndarray, alphas: np.ndarray = DEFAULT_ALPHAS
) -> np.ndarray:
    """Relative alphas times the largest singular value of the two folds."""
    return np.asarray(alphas) * max(np.max(s1, initial=0.0), np.max(s2, initial=0.0))


@dataclass
class RidgeFit:
    """Result of :func:`ridge2fold_fit`: weights ``W`` (d × t) and the chosen alpha."""

    W: np.ndarray
    alpha: float
    cutoff: float
    cv_scores: np.ndarray


@dataclass
class RidgeSource:
    """The SVDs of a source ``X`` that the fits of every target share (see
    :func:`ridge_source`): per fold ``(U, s, P)`` with ``P`` the other fold's rows times ``V``,
    and the SVD of all rows."""

    folds: tuple[np.ndarray, np.ndarray]
    fold1: tuple[np.ndarray, np.ndarray, np.ndarray]
    fold2: tuple[np.ndarray, np.ndarray, np.ndarray]
    full: tuple[np.ndarray, np.ndarray, np.ndarray]
    rcond: float


def ridge_source(X: np.ndarray, random_state: int = SKMATTER_RANDOM_STATE) -> RidgeSource:
    """Factorise ``X`` (n, d) once for :func:`ridge2fold_fit` of many targets."""
    fold1, fold2 = fold_indices(X.shape[0], random_state)
    return RidgeSource(
        folds=(fold1, fold2),
        fold1=_fold_svd(X[fold1], X[fold2]),
        fold2=_fold_svd(X[fold2], X[fold1]),
        full=np.linalg.svd(X, full_matrices=False),
        rcond=rcond_for(X.shape),
    )


def ridge2fold_fit(
    X: np.ndarray,
    y: np.ndarray,
    alphas: np.ndarray = DEFAULT_ALPHAS,
    random_state: int = SKMATTER_RANDOM_STATE,
    source: RidgeSource | None = None,
) -> RidgeFit:
    """Fit scikit-matter's cutoff ``Ridge2FoldCV`` on ``(X, y)`` exactly (SVD based).

    Parameters
    ----------
    X : ndarray of shape (n, d)
    y : ndarray of shape (n, t)
    alphas : ndarray
        Relative cutoffs in ``[0, 1)``.
    random_state : int
        Seed of the 2-fold split.
    source : RidgeSource, optional
        ``ridge_source(X, random_state)`` when already computed (fits of several targets).

    Returns
    -------
    RidgeFit
    """
    alphas = np.asarray(alphas, dtype=float)
    if np.any(alphas < 0) or np.any(alphas >= 1):
        raise ValueError("relative alphas must lie in [0, 1)")
    if source is None:
        source = ridge_source(X, random_state)
    fold1, fold2 = source.folds
    (U1, s1, P1), (U2, s2, P2) = source.fold1, source.fold2
    f12 = Factors(s=s1, P=P1, R=U1.T @ y[fold1])
    f21 = Factors(s=s2, P=P2, R=U2.T @ y[fold2])
    cutoffs = scaled_cutoffs(f12.s, f21.s, alphas)
    scores = cv_scores(f12, y[fold2], f21, y[fold1], cutoffs, source.rcond)
    best = int(np.argmax(scores))
    U, s, Vt = source.full
    n = int(np.sum(s > cutoffs[best]))
    W = (Vt.T[:, :n] / s[:n]) @ (U.T[:n] @ y)
    return RidgeFit(W=W, alpha=float(alphas[best]), cutoff=float(cutoffs[best]), cv_scores=scores)


# --------------------------------------------------------------------------------------------
# batched versions (many small independent problems at once, as LFRE needs)
# --------------------------------------------------------------------------------------------


def eigh_desc_batched(G: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenpairs of a stack of symmetric matrices, largest first (contiguous arrays)."""
    if bk.is_torch(G):
        import torch

        lam, vecs = torch.linalg.eigh(G)
        return lam.flip(-1).contiguous(), vecs.flip(-1).contiguous()
    lam, vecs = np.linalg.eigh(G)
    # copies: products with reversed (negative-stride) views skip BLAS and run 1.5-3x slower
    return np.ascontiguousarray(lam[..., ::-1]), np.ascontiguousarray(vecs[..., ::-1])


def cutoffs_clear_batched(s: np.ndarray, cutoffs: np.ndarray) -> np.ndarray:
    """Whether no singular value lies so close to a cutoff that rounding could move it across.

    ``s`` (b, r) descending, ``cutoffs`` (b, c). Close means within :data:`CUTOFF_MARGIN`
    relative, or within :data:`SVD_NOISE` ``* s[0]`` absolute.
    """
    xp = bk.namespace(s)
    sv = s[:, None, :]
    c = xp.asarray(cutoffs)[:, :, None]
    tol = xp.maximum(CUTOFF_MARGIN * xp.maximum(c, sv), SVD_NOISE * s[:, :1, None])
    return ~(xp.abs(sv - c) <= tol).any(axis=(1, 2))


def gram_resolved_batched(lam: np.ndarray, cutoffs: np.ndarray) -> np.ndarray:
    """Whether Gram eigenvalues decide every cutoff count as an SVD would, for stacks.

    ``lam`` (b, r) descending, ``cutoffs`` (b, c). A Gram eigenvalue carries an absolute
    rounding error of order ``eps * lam[0]``, so it is trusted only above
    :data:`GRAM_RESOLUTION` ``* lam[0]``. A problem is resolved when either every eigenvalue is
    trusted, or the smallest cutoff is itself above that level (then the untrusted eigenvalues
    are certainly truncated, whatever their exact value); and the cutoffs are clear of the
    singular values (:func:`cutoffs_clear_batched`).
    """
    xp = bk.namespace(lam)
    if lam.shape[1] == 0:
        return xp.asarray(np.zeros(len(lam), dtype=bool))
    top, low = lam[:, 0], lam[:, -1]
    floor = GRAM_RESOLUTION * xp.maximum(top, 0)
    c_min = xp.min(cutoffs, axis=1)
    ok = (top > 0) & ((low >= floor) | (c_min * c_min >= floor))
    return ok & cutoffs_clear_batched(xp.sqrt(xp.clip(lam, 0.0, None)), cutoffs)


def factors_svd_batched(A: np.ndarray, y: np.ndarray, B: np.ndarray):
    """Exact fold factors of stacks ``A`` (b, m, d), ``y`` (b, m, t), ``B`` (b, m', d): a stacked
    :func:`factors_svd`. Returns ``(s, Pe, R)`` with ``Pe = P / s`` as
    :func:`factors_gram_batched` does."""
    U, s, Vt = bk.svd(A)
    inv = bk.reciprocal_where(s, s > 0)
    Pe = (B @ Vt.mT) * inv[:, None, :]
    return s, Pe, U.mT @ y


def factors_gram_batched(A: np.ndarray, y: np.ndarray, B: np.ndarray, grams=None):
    """Fold factors of stacks ``A`` (b, m, d), ``y`` (b, m, t), ``B`` (b, m', d) from the
    eigendecomposition of the smaller of ``A Aᵀ`` and ``Aᵀ A``.

    ``grams = (A Aᵀ, B Aᵀ)`` may be given when already known (blocks of a larger Gram matrix);
    they are used when ``m <= d``. Returns ``(s, Pe, R, lam)`` where ``Pe = P / s`` (the
    per-component prediction directions already divided by their singular value, zero where
    ``s = 0``).
    """
    xp = bk.namespace(A)
    m, d = A.shape[1:]
    At = A.mT
    if m <= d:
        gaa, gba = grams if grams is not None else (A @ At, B @ At)
        lam, U = eigh_desc_batched(gaa)
        s = xp.sqrt(xp.clip(lam, 0.0, None))
        inv = bk.reciprocal_where(s, s > 0)
        Pe = (gba @ U) * (inv * inv)[:, None, :]
        R = U.mT @ y
    else:
        lam, V = eigh_desc_batched(At @ A)
        s = xp.sqrt(xp.clip(lam, 0.0, None))
        inv = bk.reciprocal_where(s, s > 0)
        Pe = (B @ V) * inv[:, None, :]
        R = (V.mT @ (At @ y)) * inv[:, :, None]
    return s, Pe, R, lam


def sse_at_counts_batched(Pe: np.ndarray, R: np.ndarray, y: np.ndarray, counts: np.ndarray):
    """Per-column squared errors of ``y`` predicted with the first ``n`` components, for each
    ``n`` in ``counts`` (b, c).

    With ``c_j = Pe[:, j]`` and ``r_j = R[j]`` the prediction from ``n`` components is
    ``Σ_{j<n} c_j r_jᵀ``; its squared error expands into Gram terms summed over ``j < n``, so
    every count costs matrix products instead of an explicit prediction. Returns
    ``(sse, bound)``, both (b, c, t): ``bound`` is an upper bound of the rounding error of the
    expansion (used to detect selections it cannot decide).
    """
    xp = bk.namespace(Pe)
    Pt = Pe.mT
    Q = Pt @ Pe
    yy = xp.einsum("bij,bij->bj", y, y)[:, None, :]
    # inc_j = r_j ∘ (Q_jj r_j + 2 (Σ_{l<j} Q_jl r_l − (Peᵀy)_j)) = cross_j + diag_j, where the
    # diagonal part Q_jj r_j² is never negative: |inc_j| <= |cross_j| + diag_j bounds its rounding
    cross = xp.tril(Q, -1) @ R
    cross -= Pt @ y
    cross *= R
    cross *= 2.0
    diag = xp.diagonal(Q, axis1=1, axis2=2)[:, :, None] * (R * R)
    # (b, c, r) indicator of the components each count keeps: the sums over j < n are products
    upto = xp.asarray(xp.arange(R.shape[1])[None, None, :] < counts[:, :, None], dtype=R.dtype)
    sse = upto @ (cross + diag)
    sse += yy
    xp.abs(cross, out=cross)
    cross += diag
    scale = upto @ cross
    scale += yy
    return sse, 1e-12 * Pe.shape[2] * scale


def counts_for_batched(s: np.ndarray, cutoffs: np.ndarray, rcond: float) -> np.ndarray:
    """:func:`counts_for` for stacks: ``s`` (b, r) descending, ``cutoffs`` (b, c) → (b, c)."""
    xp = bk.namespace(s)
    n_max = xp.sum(s > rcond, axis=1)
    return xp.minimum(n_max[:, None], xp.sum(s[:, None, :] > cutoffs[:, :, None], axis=2))


def select_cutoffs_batched(
    Xc: np.ndarray,
    Yc: np.ndarray,
    folds,
    rcond: float,
    alphas: np.ndarray = DEFAULT_ALPHAS,
    gram: np.ndarray | None = None,
    svd: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """The 2-fold CV cutoff of many centred problems ``(Xc, Yc)`` (b, k, ·) at once.

    The fold factors come from the Gram matrices, or with ``svd=True`` from stacked SVDs
    (slower, but as exact as scikit-matter's for any spectrum). ``gram`` is ``Xc Xcᵀ``
    (b, k, k) if already known: the folds' Gram blocks are cut from it.
    Returns ``(cutoff, decided)``: ``decided`` is False where Gram factors are not resolved or
    where rounding could change which cutoff wins; those problems must be solved otherwise.
    """
    xp = bk.namespace(Xc)
    f1, f2 = folds
    A1, A2, y1, y2 = Xc[:, f1], Xc[:, f2], Yc[:, f1], Yc[:, f2]
    if svd:
        s12, P12, R12 = factors_svd_batched(A1, y1, A2)
        s21, P21, R21 = factors_svd_batched(A2, y2, A1)
    else:
        g12 = g21 = None
        if gram is not None:
            g12 = (gram[:, f1][:, :, f1], gram[:, f2][:, :, f1])
            g21 = (gram[:, f2][:, :, f2], gram[:, f1][:, :, f2])
        s12, P12, R12, lam1 = factors_gram_batched(A1, y1, A2, g12)
        s21, P21, R21, lam2 = factors_gram_batched(A2, y2, A1, g21)
    top = xp.maximum(s12[:, 0], s21[:, 0])
    cutoffs = top[:, None] * xp.asarray(alphas)[None, :]
    if svd:
        decided = cutoffs_clear_batched(s12, cutoffs) & cutoffs_clear_batched(s21, cutoffs)
    else:
        decided = gram_resolved_batched(lam1, cutoffs) & gram_resolved_batched(lam2, cutoffs)
    n12 = counts_for_batched(s12, cutoffs, rcond)
    n21 = counts_for_batched(s21, cutoffs, rcond)
    a, ea = sse_at_counts_batched(P12, R12, y2, n12)
    b, eb = sse_at_counts_batched(P21, R21, y1, n21)

    def score(sse, n_rows):
        return -xp.mean(xp.sqrt(xp.maximum(sse, 0.0) / n_rows), axis=-1)

    m1, m2 = y1.shape[1], y2.shape[1]
    scores = (score(a, m2) + score(b, m1)) / 2
    low = (score(a + ea, m2) + score(b + eb, m1)) / 2
    high = (score(a - ea, m2) + score(b - eb, m1)) / 2
    best = xp.argmax(scores, axis=1)
    rows = xp.arange(len(best))
    # the winner is certain if its worst case beats every other distinct choice's best case
    same = (n12 == n12[rows, best][:, None]) & (n21 == n21[rows, best][:, None])
    margin = low[rows, best] - xp.max(xp.where(same, -np.inf, high), axis=1)
    tie = 1e-9 * xp.abs(scores[rows, best])
    decided &= margin > tie  # margin is +inf when every choice has the same counts
    return cutoffs[rows, best], decided
