"""Choosing anchor rows: DIRECT sampling, farthest-point sampling, k-means, random.

DIRECT (DImensionality REduction – Clustering – sTratified sampling, Qi et al. 2024,
arXiv:2307.13710) follows maml's ``DIRECTSampler`` with ``structure_encoder=None``
(``maml/sampling/{pca,clustering,stratified_sampling}.py``), step for step:

1. standardise every column (``StandardScaler``);
2. full PCA; keep the first ``m`` components whose eigenvalue (``explained_variance_``)
   exceeds 1 (Kaiser's rule) and multiply their scores by ``explained_variance_ratio_``;
3. ``Birch(n_clusters=k, threshold=t)``; while fewer than ``k`` distinct subcluster labels
   come out, ``t ← t / k × n_found`` and refit; every row gets ``Birch.predict``'s label;
4. per cluster, the member nearest the cluster's "centre". As in maml, the centre of a
   label is the *last* subcluster centre carrying that label (maml builds a dict from
   ``zip(subcluster_labels_, subcluster_centers_)``), not the true centroid.

One guard departs from maml, with a warning when it acts: a threshold giving more than
``max_subclusters`` BIRCH subclusters is replaced by a searched one (see
:func:`direct_sample`), since the final agglomerative step is quadratic in their number.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from ..errors import MetricInputError

__all__ = [
    "METHODS",
    "direct_pca_features",
    "direct_sample",
    "farthest_point_sample",
    "select_anchors",
]

METHODS = ("direct", "fps", "kmeans", "random")


def _check_X(X: Any) -> np.ndarray:
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        raise MetricInputError(f"features must be a non-empty 2-D array, got shape {X.shape}")
    if not np.issubdtype(X.dtype, np.number) or not np.isfinite(X).all():
        raise MetricInputError("features must be finite numbers")
    return np.asarray(X, dtype=np.float64)


def _check_k(k: Any, n: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 1 <= k <= n:
        raise MetricInputError(f"k must be an integer in 1..{n} (the number of rows), got {k!r}")
    return int(k)


def direct_pca_features(X: np.ndarray, weighting_pcs: bool = True) -> np.ndarray:
    """Steps 1–2 of DIRECT: standardised, Kaiser-truncated, variance-weighted PC scores."""
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    Xs = StandardScaler().fit_transform(X)
    if not Xs.any():
        raise MetricInputError(
            "DIRECT: no principal component has eigenvalue > 1 (every feature is constant)"
        )
    pca = PCA().fit(Xs)
    m = int(np.sum(pca.explained_variance_ > 1))
    if m == 0:
        raise MetricInputError(
            "DIRECT: no principal component has eigenvalue > 1 (are all features constant?)"
        )
    scores = pca.transform(Xs)[:, :m]
    return scores * pca.explained_variance_ratio_[:m] if weighting_pcs else scores


def _n_subclusters(Z: np.ndarray, threshold: float) -> int:
    """Leaves of the BIRCH CF-tree at ``threshold`` (the tree does not depend on n_clusters)."""
    from sklearn.cluster import Birch

    return len(
        Birch(n_clusters=None, threshold=threshold, compute_labels=False).fit(Z).subcluster_centers_
    )


def _bisect_threshold(
    Z: np.ndarray, k: int, max_subclusters: int, lo: float, hi: float | None, max_steps: int
) -> tuple[float, int]:
    """A threshold giving k..max_subclusters subclusters; too many at ``lo``, too few at ``hi``."""
    steps = 0
    while hi is None:  # no upper bracket yet: grow the threshold
        t = 2.0 * lo
        n_sub = _n_subclusters(Z, t)
        if k <= n_sub <= max_subclusters:
            return t, n_sub
        lo, hi = (t, None) if n_sub > max_subclusters else (lo, t)
        steps += 1
        if steps > max_steps:
            break
    while steps <= max_steps:
        t = 0.5 * (lo + hi)
        n_sub = _n_subclusters(Z, t)
        if k <= n_sub <= max_subclusters:
            return t, n_sub
        lo, hi = (t, hi) if n_sub > max_subclusters else (lo, t)
        steps += 1
    raise MetricInputError(f"DIRECT: no BIRCH threshold gives {k}..{max_subclusters} subclusters")


def direct_sample(
    X: np.ndarray,
    k: int,
    threshold_init: float = 0.5,
    weighting_pcs: bool = True,
    max_subclusters: int | None = 8000,
    max_refits: int = 200,
) -> np.ndarray:
    """DIRECT sampling as in maml's ``DIRECTSampler`` (see the module docstring).

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
        Features to sample from.
    k : int
        Number of BIRCH clusters; one row is taken from each.
    threshold_init : float, default=0.5
        Initial BIRCH threshold, lowered automatically until ``k`` clusters form.
        Variance-weighted PC scores are small, so with many rows a smaller start (0.01 to
        0.1) often avoids the refits.
    weighting_pcs : bool, default=True
        Weight the kept PC scores by their explained-variance ratio.
    max_subclusters : int or None, default=8000
        maml's rule ``t ← t · n_found / k`` can overshoot to a threshold where every row
        is its own subcluster, and the final agglomerative step then needs time and
        memory quadratic in the number of subclusters (a crash for 10⁵ atoms). If the
        threshold reached (or ``threshold_init`` itself) gives more than
        ``max_subclusters`` subclusters, it is searched instead (doubling, then
        bisection) to give ``k..max_subclusters``, with a ``RuntimeWarning``: the
        selection then differs from maml's. ``None`` follows maml whatever the cost.
    max_refits : int, default=200
        Give up (with an error) after this many threshold changes.

    Returns
    -------
    ndarray of int
        Sorted selected rows: ``k`` of them, fewer only when ``Birch.predict`` leaves a
        cluster without members (as maml would).
    """
    from sklearn.cluster import Birch
    from sklearn.exceptions import ConvergenceWarning

    X = _check_X(X)
    k = _check_k(k, X.shape[0])
    Z = direct_pca_features(X, weighting_pcs)
    n_distinct = len(np.unique(Z, axis=0))
    if k > n_distinct:
        raise MetricInputError(f"DIRECT: k={k} exceeds the {n_distinct} distinct rows")
    if max_subclusters is not None and max_subclusters < k:
        raise MetricInputError(f"DIRECT: max_subclusters={max_subclusters} is below k={k}")

    # maml's loop, counting subclusters on the cheap CF-tree alone (identical counts:
    # with n_clusters=k, len(set(subcluster_labels_)) is min(n_subclusters, k))
    threshold, too_high = float(threshold_init), None
    n_sub = _n_subclusters(Z, threshold)
    refits = 0
    while n_sub < k:
        refits += 1
        if refits > max_refits:
            raise MetricInputError(
                f"DIRECT: BIRCH did not reach {k} clusters after {max_refits} refits"
            )
        too_high, threshold = threshold, threshold / k * n_sub
        n_sub = _n_subclusters(Z, threshold)
    if max_subclusters is not None and n_sub > max_subclusters:
        threshold, n_sub = _bisect_threshold(Z, k, max_subclusters, threshold, too_high, max_refits)
        warnings.warn(
            f"DIRECT: the BIRCH threshold reached by maml's rule gave more than "
            f"{max_subclusters} subclusters; searched to threshold {threshold:.6g} ({n_sub} "
            "subclusters), so the anchors differ from maml's. Pass threshold_init="
            f"{threshold:.6g} to start there, or max_subclusters=None to follow maml.",
            RuntimeWarning,
            stacklevel=2,
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = Birch(n_clusters=k, threshold=threshold).fit(Z)
    labels = model.predict(Z)
    centres = dict(zip(model.subcluster_labels_, model.subcluster_centers_, strict=True))
    selected = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        distance = np.linalg.norm(Z[members] - centres[label], axis=1)
        selected.append(members[np.argpartition(distance, [0])[0]])
    return np.unique(np.array(selected, dtype=np.int64))


def farthest_point_sample(X: np.ndarray, k: int, initialize: int = 0) -> np.ndarray:
    """Greedy farthest-point sampling in Euclidean distance, in selection order.

    Starting from row ``initialize``, each step adds the row farthest from all rows chosen
    so far (ties go to the lowest row). Same selections as ``skmatter``'s sample ``FPS``.
    """
    X = _check_X(X)
    k = _check_k(k, X.shape[0])
    selected = np.empty(k, dtype=np.int64)
    selected[0] = initialize
    d2 = np.sum((X - X[initialize]) ** 2, axis=1)
    for i in range(1, k):
        selected[i] = np.argmax(d2)
        np.minimum(d2, np.sum((X - X[selected[i]]) ** 2, axis=1), out=d2)
    return selected


def _kmeans_sample(X: np.ndarray, k: int, random_state: int | None) -> np.ndarray:
    from sklearn.cluster import KMeans

    km = KMeans(n_clusters=k, random_state=random_state, n_init=4).fit(X)
    selected = []
    for c in range(k):
        members = np.flatnonzero(km.labels_ == c)
        if len(members):
            distance = np.linalg.norm(X[members] - km.cluster_centers_[c], axis=1)
            selected.append(members[np.argmin(distance)])
    return np.unique(np.array(selected, dtype=np.int64))


def select_anchors(
    X: np.ndarray,
    k: int,
    method: str = "direct",
    random_state: int | None = 0,
    **kwargs: Any,
) -> np.ndarray:
    """Indices of ``k`` anchor rows of ``X``.

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
        Features the anchors are chosen on (by default a model-agnostic descriptor).
    k : int
        Number of anchors.
    method : {"direct", "fps", "kmeans", "random"}, default="direct"
        * ``"direct"``: DIRECT sampling (:func:`direct_sample`, maml's algorithm);
          deterministic, ``random_state`` unused. ``kwargs`` go to :func:`direct_sample`.
        * ``"fps"``: farthest-point sampling on the raw features, starting from a row
          drawn with ``random_state`` (from row 0 when ``random_state`` is None); returned
          in selection order, so the first ``j`` entries are the FPS set of size ``j``.
        * ``"kmeans"``: the member nearest each k-means centre.
        * ``"random"``: uniform without replacement.
    random_state : int or None, default=0
        Seed for the randomised methods.

    Returns
    -------
    ndarray of int
        Row indices, sorted except for ``"fps"``.
    """
    X = _check_X(X)
    k = _check_k(k, X.shape[0])
    if method == "direct":
        return direct_sample(X, k, **kwargs)
    if kwargs:
        raise MetricInputError(f"method {method!r} takes no options, got {sorted(kwargs)}")
    if method == "fps":
        start = (
            0 if random_state is None else int(np.random.default_rng(random_state).integers(len(X)))
        )
        return farthest_point_sample(X, k, initialize=start)
    if method == "kmeans":
        return _kmeans_sample(X, k, random_state)
    if method == "random":
        return np.sort(np.random.default_rng(random_state).choice(len(X), size=k, replace=False))
    raise MetricInputError(f"unknown anchor selection method {method!r}; choose one of {METHODS}")
