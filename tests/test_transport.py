"""Optimal transport between point clouds (mlipspace.transport)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import linear_sum_assignment
from scipy.stats import ortho_group

from conftest import two_families
from mlipspace.errors import MetricInputError
from mlipspace.transport import (
    cost_matrix,
    gromov_wasserstein_match,
    match,
    matching_accuracy,
    transport_plan,
    w2_distance,
    w2_matrix,
)

ot = pytest.importorskip("ot")


def cloud(n: int = 200, d: int = 12, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d))


@pytest.mark.parametrize("metric", ["sqeuclidean", "cosine"])
def test_emd_recovers_a_permutation_exactly(metric):
    Z = cloud()
    perm = np.random.default_rng(1).permutation(len(Z))
    assignment = match(Z, Z[perm], method="emd", metric=metric)
    np.testing.assert_array_equal(perm[assignment], np.arange(len(Z)))
    assert matching_accuracy(assignment, np.argsort(perm)) == 1.0


def test_emd_is_optimal_and_equals_pot():
    rng = np.random.default_rng(2)
    Z = cloud(150)
    noisy = Z + 0.6 * rng.normal(size=Z.shape)
    perm = rng.permutation(len(Z))
    ZB = noisy[perm]
    plan = transport_plan(Z, ZB, "emd")
    C = cost_matrix(Z, ZB)
    n = len(Z)
    ref = ot.emd(np.full(n, 1 / n), np.full(n, 1 / n), C)
    np.testing.assert_allclose(plan, ref, atol=1e-15)
    assert np.sum(plan * C) == pytest.approx(ot.emd2([], [], C), rel=1e-12)
    # equal sizes, uniform weights: OT is the assignment problem; compare with scipy's solver
    assignment = match(Z, ZB)
    assert sorted(assignment.tolist()) == list(range(n))
    rows, cols = linear_sum_assignment(C)
    assert C[np.arange(n), assignment].sum() == pytest.approx(C[rows, cols].sum(), rel=1e-12)
    accuracy = matching_accuracy(assignment, np.argsort(perm))
    assert 0.5 < accuracy < 1.0  # noisy enough to make mistakes, far above chance (1/150)


def test_sinkhorn_is_close_to_emd():
    rng = np.random.default_rng(3)
    Z = cloud(150)
    perm = rng.permutation(len(Z))
    ZB = (Z + 0.3 * rng.normal(size=Z.shape))[perm]
    exact = match(Z, ZB, "emd")
    plan = transport_plan(Z, ZB, "sinkhorn", reg=0.05)
    np.testing.assert_allclose(plan.sum(), 1.0, rtol=1e-9)
    np.testing.assert_allclose(plan.sum(axis=0), 1 / len(Z), atol=1e-6)
    np.testing.assert_allclose(plan.sum(axis=1), 1 / len(Z), atol=1e-6)
    entropic = match(Z, ZB, "sinkhorn", reg=0.05)
    assert np.mean(entropic == exact) > 0.95
    truth = np.argsort(perm)
    assert matching_accuracy(entropic, truth) > matching_accuracy(exact, truth) - 0.05
    # the entropic cost is above the exact optimum and approaches it as reg shrinks
    C = cost_matrix(Z, ZB)
    optimum = np.sum(transport_plan(Z, ZB, "emd") * C)
    costs = [np.sum(transport_plan(Z, ZB, "sinkhorn", reg=r) * C) for r in (1.0, 0.2, 0.05)]
    assert costs[0] > costs[1] > costs[2] > optimum


def test_sinkhorn_warns_when_it_stops_early():
    Z, other = cloud(60), cloud(60, seed=1)
    with pytest.warns(RuntimeWarning, match="marginal error"):
        transport_plan(Z, other, "sinkhorn", reg=0.01, num_iter_max=20)


def test_unequal_sizes_give_an_assignment_into_the_larger_set():
    rng = np.random.default_rng(8)
    Z = cloud(60)
    twins = np.concatenate([Z, Z + 1e-3 * rng.normal(size=Z.shape)])  # two near copies each
    assignment = match(Z, twins)
    assert assignment.shape == (60,)
    assert np.all((assignment == np.arange(60)) | (assignment == np.arange(60) + 60))
    plan = transport_plan(Z, twins)
    np.testing.assert_allclose(plan.sum(axis=0), 1 / 120)
    np.testing.assert_allclose(plan.sum(axis=1), 1 / 60)


def test_w2_properties():
    A, B = cloud(80, seed=4), cloud(100, seed=5) * 1.5
    assert w2_distance(A, A) == 0.0
    assert w2_distance(A, A[::-1]) == 0.0
    assert w2_distance(A, B) == pytest.approx(w2_distance(B, A), rel=1e-12)
    shift = np.full(A.shape[1], 0.7)
    assert w2_distance(A, A + shift) == pytest.approx(np.linalg.norm(shift), rel=1e-10)
    C = cloud(90, seed=6) - 1.0
    assert w2_distance(A, C) <= w2_distance(A, B) + w2_distance(B, C) + 1e-12
    cost = ot.emd2([], [], ot.dist(A, B))
    assert w2_distance(A, B) == pytest.approx(np.sqrt(cost), rel=1e-9)


def test_w2_matrix_separates_the_families():
    """(The dendrogram of this matrix is drawn by the report: test_report.)"""
    spaces = two_families()
    D = w2_matrix(spaces)
    assert isinstance(D, pd.DataFrame) and list(D.index) == list(spaces)
    np.testing.assert_array_equal(D.to_numpy(), D.to_numpy().T)
    np.testing.assert_array_equal(np.diag(D), 0.0)
    assert D.loc["a1", "b2"] == pytest.approx(w2_distance(spaces["a1"], spaces["b2"]))
    assert D.loc["a1", "a2"] < D.loc["a1", "b1"] / 5


def test_gromov_wasserstein_matches_an_isometric_copy_in_another_dimension():
    rng = np.random.default_rng(13)
    X = rng.normal(size=(80, 4)) @ rng.normal(size=(4, 6))
    Q = ortho_group.rvs(9, random_state=14)
    Y = np.hstack([X, np.zeros((80, 3))]) @ Q  # same distances, 9-D, rotated
    perm = rng.permutation(80)
    assignment = gromov_wasserstein_match(X, Y[perm])
    assert matching_accuracy(assignment, np.argsort(perm)) > 0.9
    with pytest.raises(MetricInputError, match="same anchors"):
        match(X, Y)


def test_errors_name_the_problem():
    Z = cloud(10)
    with pytest.raises(MetricInputError, match="unknown OT method"):
        match(Z, Z, method="greedy")
    with pytest.raises(MetricInputError, match="unknown OT cost"):
        match(Z, Z, metric="manhattan")
    with pytest.raises(MetricInputError, match="reg > 0"):
        match(Z, Z, method="sinkhorn", reg=0)
    with pytest.raises(MetricInputError, match="finite"):
        match(Z, np.full_like(Z, np.nan))
    with pytest.raises(MetricInputError, match="shape"):
        matching_accuracy(np.arange(3), np.arange(4))


# ------------------------------------------------------------------ scoring against chance


def test_label_accuracy_and_chance():
    from mlipspace.transport import chance_accuracy, label_accuracy

    labels = np.array([0, 0, 1, 1, 1, 2])
    # a random permutation lands in the own class with probability n_c / n
    assert chance_accuracy(labels) == pytest.approx((2 * 2 + 3 * 3 + 1) / 36)
    assert chance_accuracy(np.arange(7)) == pytest.approx(1 / 7)
    rng = np.random.default_rng(0)
    simulated = np.mean([label_accuracy(rng.permutation(6), labels, labels) for _ in range(20_000)])
    assert simulated == pytest.approx(chance_accuracy(labels), abs=0.01)
    swap = np.array([1, 0, 3, 4, 2, 5])  # every atom sent to a twin of its class
    assert label_accuracy(swap, labels, labels) == 1.0
    assert matching_accuracy(swap) == pytest.approx(1 / 6)
    with pytest.raises(MetricInputError):
        label_accuracy(swap[:3], labels, labels)


def test_gromov_wasserstein_plan_is_pots():
    import ot

    from mlipspace.transport import gromov_wasserstein_plan

    rng = np.random.default_rng(2)
    XA = rng.normal(size=(30, 4))
    XB = np.hstack([XA @ np.linalg.qr(rng.normal(size=(4, 4)))[0], np.zeros((30, 2))])
    T = gromov_wasserstein_plan(XA, XB)
    CA, CB = ot.dist(XA, XA, metric="euclidean"), ot.dist(XB, XB, metric="euclidean")
    p = np.full(30, 1 / 30)
    ref = ot.gromov.gromov_wasserstein(CA / CA.max(), CB / CB.max(), p, p, "square_loss")
    np.testing.assert_allclose(T, ref, atol=1e-12)
    np.testing.assert_allclose(T.sum(axis=1), p, atol=1e-8)
    # the objective is symmetric: the transposed plan serves the reverse direction
    np.testing.assert_array_equal(np.argmax(T, axis=1), gromov_wasserstein_match(XA, XB))
