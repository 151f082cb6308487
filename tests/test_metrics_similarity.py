"""Similarity measures: hand-computed cases, explicit n×n definitions, invariances, identity."""

from __future__ import annotations

import numpy as np
import pytest

from mlipspace.errors import MetricInputError
from mlipspace.metrics import similarity as sim


def _pair(n=60, dx=12, dy=9, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, dx))
    Y = np.tanh(X @ rng.standard_normal((dx, dy))) + 0.3 * rng.standard_normal((n, dy))
    return X, Y


def _unit(A):
    return A / np.linalg.norm(A, axis=1, keepdims=True)


def _hsic_explicit(K, L):
    n = len(K)
    H = np.eye(n) - np.ones((n, n)) / n
    return np.trace(K @ H @ L @ H)


def _hsic_unbiased_explicit(K, L):
    n = len(K)
    Kt, Lt = K - np.diag(np.diag(K)), L - np.diag(np.diag(L))
    one = np.ones(n)
    return (
        np.trace(Kt @ Lt)
        + (one @ Kt @ one) * (one @ Lt @ one) / ((n - 1) * (n - 2))
        - 2 / (n - 2) * one @ Kt @ Lt @ one
    ) / (n * (n - 3))


MEASURES = {
    "cka": sim.cka,
    "cka_unbiased": sim.unbiased_cka,
    "cka_rbf": lambda a, b: sim.cka(a, b, kernel="rbf"),
    "mknn": sim.mutual_knn,
    "cknna": sim.cknna,
    "svcca": lambda a, b: sim.svcca(a, b, cca_dim=5),
    "rsa": sim.rsa,
}


def test_hand_computed_linear_cka():
    # X: 4 points on the axes; Y = X with the second coordinate doubled.
    X = np.array([[1.0, 0], [0, 1], [-1, 0], [0, -1]])
    Y = X * [1, 2]
    # centred cross-covariances: XᵀX = diag(2, 2), YᵀY = diag(2, 8), XᵀY = diag(2, 4)
    expected = (2**2 + 4**2) / np.sqrt((2**2 + 2**2) * (2**2 + 8**2))
    assert sim.cka(X, Y, normalize=False) == pytest.approx(expected, rel=1e-6)


def test_hand_computed_mutual_knn():
    # 1-D points: neighbours of 0 are {1}, of 1 {0 or 2}, ... with k=1 on the line
    X = np.array([[0.0], [1.0], [3.0], [7.0]])
    Y = np.array([[0.0], [5.0], [6.0], [20.0]])
    # neighbours are ranked by inner product when normalize=False: compute them by hand
    # X inner products: row 3 (7) has largest product with 3 (21) -> each row's top-1 is row 3
    # except row 3 itself whose top-1 is row 2; same structure in Y (row 3 is largest).
    assert sim.mutual_knn(X, Y, k=1, normalize=False) == 1.0
    Y2 = np.array([[0.0], [20.0], [6.0], [5.0]])  # now row 1 is the largest
    # X top-1: [3, 3, 3, 2]; Y2 top-1: [1, 2... ] -> row0: 1 (products 0), compute explicitly
    knn_x = sim.knn_indices(X, 1)[:, 0]
    knn_y = sim.knn_indices(Y2, 1)[:, 0]
    assert knn_x.tolist() == [1, 3, 3, 2]  # row 0 has all-zero products: ties -> lowest index
    assert knn_y.tolist() == [1, 2, 1, 1]
    assert sim.mutual_knn(X, Y2, k=1, normalize=False) == pytest.approx(1 / 4)


@pytest.mark.parametrize("unbiased", [False, True])
@pytest.mark.parametrize("kernel", ["linear", "rbf"])
def test_cka_equals_explicit_definition(unbiased, kernel):
    X, Y = _pair()
    A, B = _unit(X), _unit(Y)
    if kernel == "linear":
        K, L = A @ A.T, B @ B.T
    else:
        sq = lambda M: ((M[:, None, :] - M[None, :, :]) ** 2).sum(-1)  # noqa: E731
        K, L = np.exp(-sq(A) / 2), np.exp(-sq(B) / 2)
    h = _hsic_unbiased_explicit if unbiased else _hsic_explicit
    expected = h(K, L) / (np.sqrt(h(K, K) * h(L, L)) + 1e-6)
    assert sim.cka(X, Y, kernel=kernel, unbiased=unbiased) == pytest.approx(expected, rel=1e-9)
    assert sim.hsic_unbiased(K, L) == pytest.approx(_hsic_unbiased_explicit(K, L), rel=1e-9)


def test_cknna_equals_explicit_definition():
    X, Y = _pair(n=40)
    A, B = _unit(X), _unit(Y)
    K, L = A @ A.T, B @ B.T
    k = 5

    def mask(M):
        Mh = M.copy()
        np.fill_diagonal(Mh, -np.inf)
        out = np.zeros_like(M)
        for i, row in enumerate(Mh):
            out[i, np.argsort(-row)[:k]] = 1
        return out

    def s(P, Q, m):
        return _hsic_unbiased_explicit(m * P, m * Q)

    mk, ml = mask(K), mask(L)
    expected = s(K, L, mk * ml) / (np.sqrt(s(K, K, mk) * s(L, L, ml)) + 1e-6)
    assert sim.cknna(X, Y, k=k) == pytest.approx(expected, rel=1e-9)


def test_svcca_matches_sklearn_cca():
    from sklearn.cross_decomposition import CCA

    X, Y = _pair(n=200, dx=20, dy=15)
    A, B = _unit(X), _unit(Y)
    bases = []
    for M in (A, B):
        M = (M - M.mean(0)) / (M.std(0) + 1e-8)
        bases.append(np.linalg.svd(M, full_matrices=False)[0][:, :10])
    u, v = CCA(n_components=10, max_iter=5000, tol=1e-12).fit(*bases).transform(*bases)
    ref = np.mean([np.corrcoef(u[:, i], v[:, i])[0, 1] for i in range(10)])
    assert sim.svcca(X, Y) == pytest.approx(ref, abs=1e-3)


@pytest.mark.parametrize("name", list(MEASURES))
def test_identical_inputs_score_one(name):
    X, _ = _pair()
    # the reference's "+ 1e-6" in the CKA/CKNNA denominators keeps the value just below 1
    assert MEASURES[name](X, X) == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize("name", [*MEASURES, "procrustes"])
def test_invariant_to_rotation_and_scale(name):
    fn = sim.procrustes_distance if name == "procrustes" else MEASURES[name]
    X, Y = _pair()
    Q = np.linalg.qr(np.random.default_rng(1).standard_normal((X.shape[1], X.shape[1])))[0]
    base = fn(X, Y)
    assert fn(X, 0.01 * Y) == pytest.approx(base, rel=1e-7, abs=1e-9)
    if name == "svcca":  # column z-scoring before the truncated SVD: not rotation invariant
        assert fn(X @ Q, Y) != pytest.approx(base, rel=1e-3)
        return
    assert fn(3.7 * X @ Q, Y) == pytest.approx(base, rel=1e-7, abs=1e-9)


def test_unrelated_inputs_score_low():
    rng = np.random.default_rng(3)
    X, Y = rng.standard_normal((300, 20)), rng.standard_normal((300, 20))
    assert sim.cka(X, Y) < 0.15
    assert sim.mutual_knn(X, Y) < 0.1
    assert abs(sim.rsa(X, Y)) < 0.1


def test_procrustes_distance_zero_for_rotations_and_positive_otherwise():
    X, Y = _pair()
    Q = np.linalg.qr(np.random.default_rng(2).standard_normal((12, 12)))[0]
    assert sim.procrustes_distance(X, X @ Q) == pytest.approx(0.0, abs=1e-10)
    assert 0 < sim.procrustes_distance(X, Y) <= 2


def test_bad_input():
    X, Y = _pair()
    with pytest.raises(MetricInputError, match="samples"):
        sim.cka(X, Y[:-1])
    Xn = X.copy()
    Xn[0, 0] = np.nan
    with pytest.raises(MetricInputError, match="NaN"):
        sim.mutual_knn(Xn, Y)
    with pytest.raises(MetricInputError, match="all-zero rows"):
        sim.cka(np.zeros_like(X), Y)
    with pytest.raises(
        MetricInputError, match=r"mutual kNN with k=10 needs at least 11 samples \(k \+ 1\), got 5"
    ):
        sim.mutual_knn(X[:5], Y[:5], k=10)
    with pytest.raises(MetricInputError, match="unknown kernel"):
        sim.cka(X, Y, kernel="poly")
    with pytest.raises(MetricInputError, match="k >= 2"):
        sim.cknna(X, Y, k=1)
