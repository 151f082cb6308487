"""Anchor selection and the relative projection (mlipspace.anchors)."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pytest
from scipy.stats import ortho_group
from sklearn.cluster import Birch
from sklearn.utils.estimator_checks import parametrize_with_checks

from mlipspace.anchors import (
    RelativeProjector,
    direct_pca_features,
    direct_sample,
    farthest_point_sample,
    select_anchors,
)
from mlipspace.errors import MetricInputError


def correlated(n: int, d: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) + 3 * rng.normal(size=(n, 1))


def blobs(k: int, per: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=20.0, size=(k, d))
    labels = np.repeat(np.arange(k), per)
    return centres[labels] + rng.normal(size=(k * per, d)), labels


# ------------------------------------------------------------------ DIRECT


def maml_direct_transcribed(X: np.ndarray, n: int, threshold: float) -> np.ndarray:
    """maml 2025.4.3 DIRECTSampler(structure_encoder=None), step by step (sampling/*.py)."""
    from sklearn.cluster import Birch
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    Xs = StandardScaler().fit_transform(X)
    pca = PCA().fit(Xs)
    m = len([e for e in pca.explained_variance_ if e > 1])
    Z = pca.transform(Xs)[:, :m] * pca.explained_variance_ratio_[:m]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = Birch(n_clusters=n, threshold=threshold).fit(Z)
        while len(set(model.subcluster_labels_)) < n:
            threshold = threshold / n * len(set(model.subcluster_labels_))
            model = Birch(n_clusters=n, threshold=threshold).fit(Z)
    labels = model.predict(Z)
    label_centers = dict(zip(model.subcluster_labels_, model.subcluster_centers_, strict=False))
    selected = []
    for label in set(labels):
        idx = np.where(label == labels)[0]
        dist = np.linalg.norm(Z[idx] - label_centers[label], axis=1)
        ranks = np.array([int(i) for i in np.linspace(0, len(idx) - 1, 1)])
        selected.extend(idx[np.argpartition(dist, ranks)[ranks]])
    return np.array(sorted(set(selected)))


CASES = [(400, 10, 12, 0.5, 0), (1500, 24, 64, 0.5, 1), (300, 6, 40, 0.1, 2), (800, 16, 3, 0.5, 3)]


@pytest.mark.parametrize(("n", "d", "k", "threshold", "seed"), CASES)
def test_direct_equals_transcribed_maml(n, d, k, threshold, seed):
    X = correlated(n, d, seed)
    ours = direct_sample(X, k, threshold_init=threshold)
    np.testing.assert_array_equal(ours, maml_direct_transcribed(X, k, threshold))
    assert len(ours) == k


@pytest.mark.parametrize(("n", "d", "k", "threshold", "seed"), CASES)
def test_direct_equals_maml_direct_sampler(n, d, k, threshold, seed):
    direct = pytest.importorskip("maml.sampling.direct")
    logging.getLogger("maml").setLevel(logging.WARNING)
    for name in (
        "maml.sampling.pca",
        "maml.sampling.clustering",
        "maml.sampling.stratified_sampling",
    ):
        logging.getLogger(name).setLevel(logging.WARNING)
    X = correlated(n, d, seed)
    sampler = direct.DIRECTSampler(
        structure_encoder=None,
        clustering=direct.BirchClustering(n=k, threshold_init=threshold),
        select_k_from_clusters=direct.SelectKFromClusters(k=1),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # BIRCH's "fewer subclusters" while maml lowers t
        ref = sampler.fit_transform(X)["selected_indexes"]
    np.testing.assert_array_equal(select_anchors(X, k, threshold_init=threshold), np.sort(ref))


def test_direct_takes_one_anchor_per_separated_blob():
    X, labels = blobs(k=8, per=40, d=5, seed=0)
    chosen = select_anchors(X, 8, method="direct", threshold_init=50.0)  # forces refits
    assert len(chosen) == 8
    assert sorted(labels[chosen].tolist()) == list(range(8))
    # the chosen member is the one nearest its blob's centre in the weighted PC space
    np.testing.assert_array_equal(chosen, select_anchors(X, 8, method="direct"))


def test_direct_caps_the_number_of_birch_subclusters():
    X = correlated(1500, 10, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the maml path: no search, no warning
        maml_like = direct_sample(X, 10, threshold_init=1e-4, max_subclusters=None)
    with pytest.warns(RuntimeWarning, match="subclusters") as record:
        capped = direct_sample(X, 10, threshold_init=1e-4, max_subclusters=60)
    assert len(maml_like) == len(capped) == 10
    threshold = float(str(record[0].message).split("searched to threshold ")[1].split(" ")[0])
    n_sub = len(
        Birch(threshold=threshold, n_clusters=None).fit(direct_pca_features(X)).subcluster_centers_
    )
    assert 10 <= n_sub <= 60
    with pytest.raises(MetricInputError, match="below k"):
        direct_sample(X, 10, max_subclusters=5)


def test_direct_is_deterministic_and_ignores_random_state():
    X = correlated(300, 8, 5)
    a = select_anchors(X, 20, random_state=0)
    np.testing.assert_array_equal(a, select_anchors(X, 20, random_state=123))
    assert len(np.unique(a)) == 20


def test_direct_errors_are_clear():
    X = correlated(50, 4, 0)
    with pytest.raises(MetricInputError, match="k must be"):
        select_anchors(X, 51)
    with pytest.raises(MetricInputError, match="distinct rows"):
        select_anchors(np.repeat(X[:3], 10, axis=0), 5)
    with pytest.raises(MetricInputError, match="eigenvalue"):
        select_anchors(np.ones((10, 3)), 2)
    with pytest.raises(MetricInputError, match="unknown anchor selection"):
        select_anchors(X, 3, method="best")


# ------------------------------------------------------------------ FPS, k-means, random


def test_fps_equals_skmatter():
    from skmatter.sample_selection import FPS

    X = correlated(250, 6, 7)
    for start in (0, 17):
        ref = FPS(n_to_select=30, initialize=start).fit(X).selected_idx_
        np.testing.assert_array_equal(farthest_point_sample(X, 30, initialize=start), ref)


def test_fps_is_greedy_and_prefix_stable():
    X = correlated(200, 5, 8)
    chosen = select_anchors(X, 25, method="fps", random_state=3)
    assert chosen[0] == np.random.default_rng(3).integers(200)
    for i in range(1, 25):
        dist = np.min(np.linalg.norm(X[:, None] - X[chosen[:i]][None], axis=2), axis=1)
        assert dist[chosen[i]] == pytest.approx(dist.max())
    np.testing.assert_array_equal(select_anchors(X, 10, method="fps", random_state=3), chosen[:10])


@pytest.mark.parametrize("method", ["kmeans", "random"])
def test_seeded_methods_are_reproducible(method):
    X = correlated(300, 5, 9)
    a = select_anchors(X, 16, method=method, random_state=1)
    np.testing.assert_array_equal(a, select_anchors(X, 16, method=method, random_state=1))
    assert len(a) == len(np.unique(a)) == 16 and np.all(np.diff(a) > 0)


def test_random_depends_on_seed():
    X = correlated(300, 5, 9)
    assert not np.array_equal(
        select_anchors(X, 16, method="random", random_state=1),
        select_anchors(X, 16, method="random", random_state=2),
    )


def test_kmeans_covers_blobs():
    X, labels = blobs(k=6, per=30, d=4, seed=1)
    chosen = select_anchors(X, 6, method="kmeans", random_state=0)
    assert sorted(labels[chosen].tolist()) == list(range(6))


# ------------------------------------------------------------------ projection


@parametrize_with_checks([RelativeProjector(), RelativeProjector(center=True)])
def test_sklearn_compatible(estimator, check):
    check(estimator)


def test_projection_is_the_cosine_to_each_anchor():
    rng = np.random.default_rng(0)
    E, A = rng.normal(size=(50, 7)), rng.normal(size=(9, 7))
    Z = RelativeProjector().fit(A).transform(E)
    cos = (E @ A.T) / np.linalg.norm(E, axis=1)[:, None] / np.linalg.norm(A, axis=1)[None]
    np.testing.assert_allclose(Z, cos, rtol=1e-12)
    np.testing.assert_allclose(np.diag(RelativeProjector().fit_transform(A)), 1.0)
    assert RelativeProjector().fit(A).get_feature_names_out()[0] == "relativeprojector0"


@pytest.mark.parametrize("center", [False, True])
def test_projection_invariant_to_rotation_and_scale(center):
    rng = np.random.default_rng(1)
    d = 16
    E = rng.normal(size=(200, d)) + 2.0
    anchors = E[rng.choice(200, 20, replace=False)]
    Q = ortho_group.rvs(d, random_state=2)
    Z = RelativeProjector(center=center).fit(anchors).transform(E)
    Z_rot = RelativeProjector(center=center).fit(3.7 * anchors @ Q).transform(3.7 * E @ Q)
    np.testing.assert_allclose(Z_rot, Z, atol=1e-12)
    if not center:  # per-vector positive rescaling too
        s = rng.uniform(0.1, 10, size=(200, 1))
        np.testing.assert_allclose(RelativeProjector().fit(anchors).transform(s * E), Z, atol=1e-12)
    # a general linear map changes z
    M = rng.normal(size=(d, d))
    Z_lin = RelativeProjector(center=center).fit(anchors @ M).transform(E @ M)
    assert np.abs(Z_lin - Z).max() > 0.05


def test_centering_removes_a_common_offset():
    rng = np.random.default_rng(3)
    E = rng.normal(size=(100, 8))
    anchors = E[:12]
    shift = 50.0 * rng.normal(size=8)
    raw = RelativeProjector().fit(anchors + shift).transform(E + shift)
    centred = RelativeProjector(center=True).fit(anchors + shift).transform(E + shift)
    assert raw.min() > 0.9  # the offset dominates: cosines pile up near 1
    np.testing.assert_allclose(
        centred, RelativeProjector(center=True).fit(anchors).transform(E), atol=1e-10
    )
    mean = anchors.mean(axis=0)
    manual = RelativeProjector().fit(anchors - mean).transform(E - mean)
    np.testing.assert_allclose(RelativeProjector(center=True).fit(anchors).transform(E), manual)


def test_zero_vectors_project_to_zero():
    A = np.eye(3)
    Z = RelativeProjector().fit(A).transform(np.array([[0.0, 0.0, 0.0], [2.0, 0.0, 0.0]]))
    np.testing.assert_array_equal(Z, [[0, 0, 0], [1, 0, 0]])
