"""Representation-similarity measures (symmetric): CKA, kNN alignment, CKNNA, SVCCA, Procrustes, RSA.

Definitions follow the reference code of *The Platonic Representation Hypothesis* (Huh et al.
2024, ``minyoungg/platonic-rep``, ``metrics.py``), re-written in numpy:

* inputs are ``(n_samples, n_features)`` arrays with the same rows (features may differ);
* by default every row is L2-normalised first (``normalize=True``), as the reference pipeline
  (``measure_alignment.compute_score``) does; kernels are then cosine kernels. This makes every
  measure invariant to isotropic scaling and orthogonal transforms of either side (except
  SVCCA, whose column z-scoring makes it depend on the feature basis);
* CKA and CKNNA divide by ``sqrt(HSIC_kk · HSIC_ll) + 1e-6`` as the reference does;
* kNN sets rank by inner product, ties by row index (exact copies of a row get bitwise-equal
  products, so the sets do not depend on row order). They exclude the sample itself, except in
  ``cknna(unbiased=False)`` where, as in the reference, each row is its own first neighbour;
* a side that is constant (every row the same after normalisation), complex, or non-finite
  raises :class:`~mlipspace.errors.MetricInputError`: every measure is 0/0 there.

CKA and the kNN measures take ``device`` (``None``/``"cpu"``: numpy; ``"cuda[:i]"`` or
``"torch-cpu"``: torch float64, see :mod:`mlipspace.metrics.backend`): the checks and the row
normalisation run in numpy, the kernels below on the backend's arrays, with the same code.

Deviations, all towards determinism: SVCCA uses an exact truncated SVD and exact canonical
correlations (the reference uses the randomised ``torch.svd_lowrank``, sklearn's iterative
``CCA`` and adds 1e-10 noise); with orthonormal inputs the canonical correlations are the
singular values of ``U_Aᵀ U_B``. The outlier clamp of the reference pipeline is available as
:func:`clip_outliers` but not applied by default (it is not rotation invariant).
"""

from __future__ import annotations

import numpy as np

from ..errors import MetricInputError
from . import backend as bk
from .neighbours import duplicate_representatives, k_smallest
from .scaling import power_of_two_scaled
from .validation import check_features, validate_params

__all__ = [
    "cka",
    "cknna",
    "clip_outliers",
    "hsic_biased",
    "hsic_unbiased",
    "knn_indices",
    "mutual_knn",
    "pointwise_mutual_knn",
    "procrustes_distance",
    "rsa",
    "svcca",
    "unbiased_cka",
]

_EPS = 1e-6  # the reference's denominator guard


# a side whose rows spread less than this (relative to their size) is constant: every
# similarity measure is 0/0 there, and rounding alone would decide the number
_CONSTANT_RTOL = 1e-10


def _check_pair(
    X, Y, normalize: bool, min_samples: int = 2, measure: str = "the measure", why: str = ""
) -> tuple[np.ndarray, np.ndarray]:
    """Checked, optionally L2-normalised ``X`` and ``Y``; errors name ``measure`` and, for too
    few rows, the minimum with the reason ``why`` (e.g. ``"k + 1"``)."""
    validate_params(normalize=normalize)
    out = []
    for A, name in ((X, "X"), (Y, "Y")):
        A = check_features(A, name)
        if normalize:
            (A,) = power_of_two_scaled(A)  # exact; keeps the norms from overflowing
            norms = np.linalg.norm(A, axis=1, keepdims=True)
            if np.any(norms == 0):
                raise MetricInputError(
                    f"{name} has {int(np.sum(norms == 0))} all-zero rows; they cannot be L2-normalised"
                )
            A = A / norms
        elif not np.isfinite(np.max(np.abs(A), initial=0.0) ** 2):
            raise MetricInputError(
                f"{name} holds values whose products overflow; use normalize=True or rescale"
            )
        spread = np.linalg.norm(A - A.mean(axis=0))
        if len(A) > 1 and spread <= _CONSTANT_RTOL * np.linalg.norm(A):
            after = " after L2 normalisation" if normalize else ""
            raise MetricInputError(
                f"{name} is constant (every row the same{after}): {measure} is undefined"
            )
        out.append(A)
    X, Y = out
    if X.shape[0] != Y.shape[0]:
        raise MetricInputError(f"X has {X.shape[0]} samples but Y has {Y.shape[0]}")
    if X.shape[0] < min_samples:
        reason = f" ({why})" if why else ""
        raise MetricInputError(
            f"{measure} needs at least {min_samples} samples{reason}, got {X.shape[0]}"
        )
    return X, Y


def clip_outliers(X, q: float = 0.95, exact: bool = False) -> np.ndarray:
    """Clamp every entry to ``±t`` (the reference's ``remove_outliers``).

    ``exact=True``: ``t`` is the global ``q``-quantile of ``|X|`` (sorted, index ``int(q·size)``);
    otherwise ``t`` is the mean over rows of each row's ``q``-quantile of ``|X|``.
    """
    validate_params(q=q)
    X = check_features(X, "X")
    if q == 1:
        return X
    if exact:
        t = np.sort(np.abs(X).ravel())[int(q * X.size)]
    else:
        t = np.quantile(np.abs(X), q, axis=1).mean()
    return np.clip(X, -t, t)


# ---------------------------------------------------------------------------------------------
# HSIC and CKA
# ---------------------------------------------------------------------------------------------


def hsic_biased(K: np.ndarray, L: np.ndarray) -> float:
    """``trace(K H L H)`` with ``H = I − 11ᵀ/n`` (no ``(n−1)⁻²`` factor, as the reference)."""
    Kc = K - K.mean(axis=0, keepdims=True)
    Kc = Kc - Kc.mean(axis=1, keepdims=True)
    Lc = L - L.mean(axis=0, keepdims=True)
    return float((Kc * Lc.T).sum())


def hsic_unbiased(K: np.ndarray, L: np.ndarray) -> float:
    """Unbiased HSIC of Song et al. (2012), Eq. 5, as in the reference code (``n ≥ 4``)."""
    m = K.shape[0]
    if m < 4:
        raise MetricInputError(f"unbiased HSIC needs at least 4 samples, got {m}")
    Kt = K.clone() if bk.is_torch(K) else K.copy()
    Lt = L.clone() if bk.is_torch(L) else L.copy()
    bk.fill_diagonal(Kt, 0.0)
    bk.fill_diagonal(Lt, 0.0)
    value = (
        float((Kt * Lt.T).sum())
        + float(Kt.sum()) * float(Lt.sum()) / ((m - 1) * (m - 2))
        - 2.0 * float(Kt.sum(axis=0) @ Lt.sum(axis=1)) / (m - 2)
    )
    return float(value / (m * (m - 3)))


def _rbf(A: np.ndarray, sigma: float) -> np.ndarray:
    sq = (A**2).sum(axis=1)
    d2 = bk.clip_min(sq[:, None] + sq[None, :] - 2.0 * A @ A.T, 0.0)
    bk.fill_diagonal(d2, 0.0)
    return bk.exp(-d2 / (2.0 * sigma**2))


def _linear_cka_biased(X: np.ndarray, Y: np.ndarray) -> float:
    """Biased linear CKA from feature cross-covariances in ``O(n d²)`` (Kornblith et al. 2019)."""
    Xc = X - X.mean(axis=0)
    Yc = Y - Y.mean(axis=0)
    kl = float(((Xc.T @ Yc) ** 2).sum())
    kk = float(((Xc.T @ Xc) ** 2).sum())
    ll = float(((Yc.T @ Yc) ** 2).sum())
    return float(kl / (np.sqrt(kk * ll) + _EPS))


def cka(
    X,
    Y,
    kernel: str = "linear",
    sigma: float = 1.0,
    unbiased: bool = False,
    normalize: bool = True,
    device: str | None = None,
) -> float:
    """Centred kernel alignment ``HSIC(K, L) / (sqrt(HSIC(K, K) HSIC(L, L)) + 1e-6)``.

    Parameters
    ----------
    X, Y : array of shape (n_samples, n_features_X / n_features_Y)
    kernel : {"linear", "rbf"}
        ``"linear"``: ``K = X Xᵀ``; ``"rbf"``: ``exp(−‖x − x'‖² / (2 sigma²))`` with a fixed
        ``sigma`` (no median heuristic), as the reference.
    sigma : float, default=1.0
    unbiased : bool, default=False
        Use the unbiased HSIC estimator (needs ``n ≥ 4``).
    normalize : bool, default=True
        L2-normalise rows first.
    device : str, optional
        ``None``/``"cpu"`` (numpy), ``"cuda[:i]"`` or ``"torch-cpu"`` (torch float64).

    Returns
    -------
    float
        1 for representations equal up to rotation and scale; about 0 for unrelated ones.
    """
    backend = bk.get_backend(device)
    validate_params(sigma=sigma, unbiased=unbiased)
    if kernel not in ("linear", "rbf"):
        raise MetricInputError(f"unknown kernel {kernel!r}; use 'linear' or 'rbf'")
    X, Y = _check_pair(
        X,
        Y,
        normalize,
        min_samples=4 if unbiased else 2,
        measure=f"{'unbiased ' if unbiased else ''}{'RBF' if kernel == 'rbf' else 'linear'} CKA",
        why="the unbiased HSIC" if unbiased else "",
    )
    X, Y = bk.asarray(X, backend), bk.asarray(Y, backend)
    if kernel == "linear":
        if not unbiased:
            return _linear_cka_biased(X, Y)
        K, L = X @ X.T, Y @ Y.T
    else:
        K, L = _rbf(X, sigma), _rbf(Y, sigma)
    hsic = hsic_unbiased if unbiased else hsic_biased
    kl, kk, ll = hsic(K, L), hsic(K, K), hsic(L, L)
    return float(kl / (np.sqrt(max(kk * ll, 0.0)) + _EPS))


def unbiased_cka(
    X,
    Y,
    kernel: str = "linear",
    sigma: float = 1.0,
    normalize: bool = True,
    device: str | None = None,
) -> float:
    """:func:`cka` with the unbiased HSIC estimator."""
    return cka(X, Y, kernel=kernel, sigma=sigma, unbiased=True, normalize=normalize, device=device)


# ---------------------------------------------------------------------------------------------
# nearest-neighbour measures
# ---------------------------------------------------------------------------------------------


def knn_indices(A, k: int, chunk_size: int = 2048, device: str | None = None) -> np.ndarray:
    """Indices of the ``k`` rows with the largest inner product with each row (itself excluded).

    Ordered by decreasing inner product; ties broken by row index
    (:func:`~mlipspace.metrics.neighbours.k_smallest`), copies of a row given bitwise-equal
    products, so the sets do not depend on the order of the rows. Memory ``chunk_size × n``.
    The products and the selection run on ``device``'s backend; the indices come back as a
    numpy array.
    """
    validate_params(k=k, chunk_size=chunk_size)
    backend = bk.get_backend(device)
    n = A.shape[0]
    if not 1 <= k < n:
        raise MetricInputError(
            f"k-nearest neighbours with k={k} need at least {k + 1} samples (k + 1), got {n}"
        )
    copies = duplicate_representatives(bk.to_numpy(A))
    A = bk.asarray(A, backend)
    out = np.empty((n, k), dtype=np.int64)
    for start in range(0, n, chunk_size):
        stop = min(start + chunk_size, n)
        S = _similarities(A[start:stop], A, copies)
        S[bk.arange(stop - start, S), bk.arange(n, S)[start:stop]] = -np.inf
        out[start:stop] = bk.to_numpy(k_smallest(-S, k)[1])
    return out


def _similarities(Q: np.ndarray, A: np.ndarray, copies: np.ndarray | None) -> np.ndarray:
    """Inner products ``Q Aᵀ``; the column of every copy of a row equals that row's, bitwise."""
    S = Q @ A.T
    if copies is not None:
        dup = np.flatnonzero(copies != np.arange(len(copies)))
        S[:, dup] = S[:, copies[dup]]
    return S


def mutual_knn(X, Y, k: int = 10, normalize: bool = True, device: str | None = None) -> float:
    """Mutual k-nearest-neighbour alignment: mean over samples of ``|N_X(i) ∩ N_Y(i)| / k``.

    Parameters
    ----------
    X, Y : array of shape (n_samples, ·)
    k : int, default=10
    normalize : bool, default=True
        L2-normalise rows first (neighbours by cosine similarity).
    device : str, optional
        Backend of the neighbour search (see :func:`cka`).
    """
    hits = _mutual_knn_hits(X, Y, k, normalize, device)
    return float(hits.sum() / (k * len(hits)))


def pointwise_mutual_knn(
    X, Y, k: int = 10, normalize: bool = True, device: str | None = None
) -> np.ndarray:
    """``|N_X(i) ∩ N_Y(i)| / k`` for every sample ``i``; :func:`mutual_knn` is their mean."""
    return _mutual_knn_hits(X, Y, k, normalize, device) / k


def _mutual_knn_hits(X, Y, k: int, normalize: bool, device: str | None = None) -> np.ndarray:
    validate_params(k=k)
    bk.get_backend(device)  # a bad device fails before the checks of the data
    X, Y = _check_pair(
        X, Y, normalize, min_samples=k + 1, measure=f"mutual kNN with k={k}", why="k + 1"
    )
    nx, ny = knn_indices(X, k, device=device), knn_indices(Y, k, device=device)
    nx.sort(axis=1)
    ny.sort(axis=1)
    return np.array(
        [np.intersect1d(a, b, assume_unique=True).size for a, b in zip(nx, ny, strict=True)]
    )


def _knn_mask(K, k: int, unbiased: bool, copies: np.ndarray | None):
    """The reference's top-``k`` mask of each row of ``K`` (the row itself excluded only when
    ``unbiased``), ties by row index as in :func:`knn_indices`."""
    Kh = K.clone() if bk.is_torch(K) else K.copy()
    if copies is not None:
        dup = np.flatnonzero(copies != np.arange(len(copies)))
        Kh[:, dup] = Kh[:, copies[dup]]
    if unbiased:
        bk.fill_diagonal(Kh, -np.inf)
    n = K.shape[0]
    idx = k_smallest(-Kh, k)[1]
    mask = bk.zeros((n, n), like=K)
    mask[bk.arange(n, K)[:, None], idx] = 1.0
    return mask


def cknna(
    X,
    Y,
    k: int | None = 10,
    unbiased: bool = True,
    normalize: bool = True,
    device: str | None = None,
) -> float:
    """Centred kernel nearest-neighbour alignment (CKNNA) of the reference code.

    HSIC of the kernels restricted to mutual k-nearest-neighbour pairs, normalised by the same
    quantity of each kernel with itself. Builds ``n × n`` matrices (keep ``n`` ≲ 10⁴).

    Parameters
    ----------
    X, Y : array of shape (n_samples, ·)
    k : int or None, default=10
        Neighbours per row, at least 2; ``None``: every other row (``n − 1``), the reference's
        ``topk=None``.
    unbiased : bool, default=True
        Unbiased HSIC, and each row excluded from its own neighbours. With ``False`` (as in
        the reference) the row itself is one of its ``k`` neighbours: it has the largest
        inner product with itself.
    normalize : bool, default=True
        L2-normalise rows first.
    device : str, optional
        Backend of the kernels and masks (see :func:`cka`).

    Returns
    -------
    float
        ``HSIC_kl / (sqrt(HSIC_kk HSIC_ll) + 1e-6)``. The reference's ``1e-6`` is kept, so
        ``cknna(X, X) = HSIC_kk / (HSIC_kk + 1e-6)``. The unbiased HSIC of the masked
        kernels is small (it carries a ``1 / n²`` factor and only ``k`` entries per row), which
        puts the unbiased ``cknna(X, X)`` 1e-4 to 1e-3 below 1 on a few hundred rows; the
        biased HSIC has no such factor, so there it is about 1e-9 below 1.
    """
    every = k is None
    if every:
        k = len(X) - 1
    validate_params(k=k, unbiased=unbiased)
    if k < 2:
        rows = f" (k=None: every other row of {len(X)} samples)" if every else ""
        raise MetricInputError(f"CKNNA requires k >= 2, got k={k}{rows}")
    backend = bk.get_backend(device)
    X, Y = _check_pair(
        X,
        Y,
        normalize,
        min_samples=max(k + 1, 4),
        measure=f"CKNNA with k={k}",
        why="k + 1" if k >= 3 else "k + 1, and at least 4",
    )
    copies_x, copies_y = duplicate_representatives(X), duplicate_representatives(Y)
    X, Y = bk.asarray(X, backend), bk.asarray(Y, backend)
    K, L = X @ X.T, Y @ Y.T
    hsic = hsic_unbiased if unbiased else hsic_biased
    mk = _knn_mask(K, k, unbiased, copies_x)
    ml = _knn_mask(L, k, unbiased, copies_y)

    def sim(A, B, mask):
        return hsic(mask * A, mask * B)

    kl = sim(K, L, mk * ml)
    kk = sim(K, K, mk)
    ll = sim(L, L, ml)
    return float(kl / (np.sqrt(max(kk * ll, 0.0)) + _EPS))


# ---------------------------------------------------------------------------------------------
# subspace and geometry measures
# ---------------------------------------------------------------------------------------------


def svcca(X, Y, cca_dim: int = 10, normalize: bool = True) -> float:
    """SVCCA: mean canonical correlation between the top ``cca_dim`` left singular subspaces.

    Columns are z-scored (``std + 1e-8``) as in the reference; the canonical correlations of
    two orthonormal bases are the singular values of ``U_Xᵀ U_Y``.
    """
    validate_params(cca_dim=cca_dim)
    X, Y = _check_pair(
        X,
        Y,
        normalize,
        min_samples=cca_dim + 1,
        measure=f"SVCCA with cca_dim={cca_dim}",
        why="cca_dim + 1",
    )
    if cca_dim > min(X.shape[1], Y.shape[1]):
        raise MetricInputError(
            f"SVCCA: cca_dim={cca_dim} exceeds the smaller feature dimension "
            f"({min(X.shape[1], Y.shape[1])})"
        )
    bases = []
    for A in (X, Y):
        A = A - A.mean(axis=0)
        A = A / (A.std(axis=0) + 1e-8)
        U = np.linalg.svd(A, full_matrices=False)[0][:, :cca_dim]
        bases.append(U)
    rho = np.linalg.svd(bases[0].T @ bases[1], compute_uv=False)
    return float(np.mean(np.clip(rho, 0.0, 1.0)))


def procrustes_distance(X, Y, normalize: bool = True) -> float:
    """Orthogonal Procrustes distance of Ding et al. (2021): ``2 − 2 ‖X̃ᵀ Ỹ‖_*``.

    ``X̃`` and ``Ỹ`` are column-centred and scaled to unit Frobenius norm, so the value is the
    smallest squared Frobenius distance between ``X̃ Q`` and ``Ỹ`` over orthogonal ``Q``
    (widths zero-padded): 0 for representations equal up to rotation and scale, at most 2.
    """
    X, Y = _check_pair(X, Y, normalize, measure="the Procrustes distance")
    out = []
    for A in (X, Y):
        A = A - A.mean(axis=0)
        out.append(A / np.linalg.norm(A))
    nuclear = np.linalg.svd(out[0].T @ out[1], compute_uv=False).sum()
    return float(max(2.0 - 2.0 * nuclear, 0.0))


def rsa(
    X, Y, normalize: bool = True, max_samples: int | None = 2000, random_state: int = 0
) -> float:
    """Representational similarity analysis: Spearman correlation of pairwise Euclidean distances.

    Uses the upper triangle of both distance matrices. With more than ``max_samples`` rows a
    random subset of that size (``random_state``) is used.
    """
    from scipy.spatial.distance import pdist
    from scipy.stats import spearmanr

    validate_params(max_samples=max_samples)
    X, Y = _check_pair(
        X, Y, normalize, min_samples=3, measure="RSA", why="3 pairwise distances to rank"
    )
    if max_samples is not None and len(X) > max_samples:
        rows = np.sort(
            np.random.default_rng(random_state).choice(len(X), max_samples, replace=False)
        )
        X, Y = X[rows], Y[rows]
    dx, dy = pdist(X), pdist(Y)
    if np.ptp(dx) <= _CONSTANT_RTOL * np.max(dx) or np.ptp(dy) <= _CONSTANT_RTOL * np.max(dy):
        raise MetricInputError("all pairwise distances are equal on one side; RSA is undefined")
    return float(spearmanr(dx, dy).statistic)
