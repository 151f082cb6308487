"""The defects of issue 17 (found by running the peers' tests and bad inputs), one test each.

Every test here failed before its fix.
"""

from __future__ import annotations

import numpy as np
import pytest

from mlipspace.errors import MetricInputError
from mlipspace.metrics import gfr
from mlipspace.metrics import neighbours as nb
from mlipspace.metrics import reconstruction as rec
from mlipspace.metrics import similarity as sim
from mlipspace.metrics import streamed as st
from mlipspace.pooling import cumulants


def _pair(n=300, dx=8, dy=6, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, dx))
    Y = np.tanh(X @ rng.standard_normal((dx, dy))) + 0.2 * rng.standard_normal((n, dy))
    return X, Y


def _repeated(n_distinct=120, copies=3, seed=1):
    """Rows that repeat exactly, in both spaces (symmetry-equivalent atoms, supercells)."""
    X, Y = _pair(n_distinct, seed=seed)
    return np.repeat(X, copies, axis=0), np.repeat(Y, copies, axis=0)


# -- 1. overlapping train_idx / test_idx in the streamed and Dask GFRE/GFRD -------------------


def _overlap_cases(n):
    every = np.arange(n)
    return [
        (every[: 2 * n // 3], every[n // 3 :]),  # partial overlap
        (every, every),  # full overlap: crashed with a bare LinAlgError
        (np.concatenate([every[: n // 2], every[:20]]), every[n // 2 :]),  # repeated rows
    ]


@pytest.mark.parametrize("case", range(3))
def test_streamed_overlap_equals_in_memory(case):
    X, Y = _pair()
    train, test = _overlap_cases(len(X))[case]
    for streamed, in_memory in ((st.gfre_streamed, gfr.gfre), (st.gfrd_streamed, gfr.gfrd)):
        value = streamed(st.iter_row_chunks(X, Y, 70), len(X), train, test)
        assert value == pytest.approx(in_memory(X, Y, train, test), rel=1e-7)


def test_dask_overlap_equals_in_memory():
    import mlipspace.distributed as dd

    X, Y = _pair()
    for train, test in _overlap_cases(len(X))[:2]:
        assert dd.gfre(X, Y, train, test, chunk_rows=70) == pytest.approx(
            gfr.gfre(X, Y, train, test), rel=1e-7
        )
        assert dd.gfrd(X, Y, train, test, chunk_rows=70) == pytest.approx(
            gfr.gfrd(X, Y, train, test), rel=1e-7
        )
    train, test = _overlap_cases(len(X))[0]
    np.testing.assert_allclose(
        dd.pointwise_lfre(X, Y, 15, train, test, chunk_rows=70),
        rec.pointwise_lfre(X, Y, 15, train, test),
        rtol=1e-9,
    )
    with pytest.raises(MetricInputError, match="repeats rows"):
        dd.pointwise_lfre(X, Y, 15, _overlap_cases(len(X))[2][0], chunk_rows=70)


# -- 2. kNN ties broken by row index: scores independent of row order --------------------------


@pytest.mark.parametrize(
    "measure",
    [
        lambda X, Y: sim.mutual_knn(X, Y, k=10),
        lambda X, Y: sim.cknna(X, Y, k=10),
        lambda X, Y: sim.cknna(X, Y, k=10, unbiased=False),
    ],
    ids=["mutual_knn", "cknna", "cknna_biased"],
)
def test_knn_measures_do_not_depend_on_row_order(measure):
    X, Y = _repeated()
    reference = measure(X, Y)
    for seed in range(3):
        perm = np.random.default_rng(seed).permutation(len(X))
        assert measure(X[perm], Y[perm]) == pytest.approx(reference, rel=1e-12)


def test_lfre_with_repeated_rows_does_not_depend_on_row_order():
    # a regression guard (it held before too: copies equal in X and Y fit the same whichever
    # copy is chosen); rows equal in X but not in Y are ordered by row index (docs/metrics.md)
    X, Y = _repeated(n_distinct=100)
    train, test = np.arange(0, len(X), 2), np.arange(1, len(X), 2)
    reference = rec.lfre(X, Y, 12, train, test)
    perm = np.random.default_rng(3).permutation(len(X))
    inverse = np.argsort(perm)  # row r of the original is row inverse[r] of the permuted
    value = rec.lfre(X[perm], Y[perm], 12, np.sort(inverse[train]), np.sort(inverse[test]))
    assert value == pytest.approx(reference, rel=1e-10)


def test_neighbour_ties_go_to_the_lowest_row():
    # five training rows at the same distance from the query: the two kept are rows 0 and 1
    X_train = np.array([[1.0, 0], [0, 1], [-1, 0], [0, -1], [3, 0]])
    for k in (1, 2, 3, 4):
        assert nb.nearest_train_rows(X_train, np.zeros((1, 2)), k)[0].tolist() == list(range(k))
    tied = np.repeat(np.eye(3), 300, axis=0)  # 900 rows, three values
    for k in (7, 25, 60):
        assert nb.nearest_train_rows(tied, tied[:1], k)[0].tolist() == list(range(k))


def test_knn_ties_go_to_the_lowest_row():
    tied = np.repeat(np.eye(3), 40, axis=0)
    got = sim.knn_indices(tied, 5)
    for i in range(len(tied)):
        same = np.flatnonzero((tied == tied[i]).all(axis=1))
        assert got[i].tolist() == [j for j in same if j != i][:5]


def test_dask_neighbours_tie_like_in_memory():
    import mlipspace.distributed as dd

    X, _ = _repeated(n_distinct=60, copies=4)
    queries = X[::7] + 0.0
    expected = nb.nearest_train_rows(X, queries, 9)
    np.testing.assert_array_equal(dd.nearest_rows(X, queries, 9, scheduler=None), expected)


# -- 3. parameters checked at the boundary, by one table -----------------------------------------

X0, Y0 = _pair(60)
BAD_PARAMETERS = [
    ("cca_dim", lambda: sim.svcca(X0, Y0, cca_dim=0)),
    ("cca_dim", lambda: sim.svcca(X0, Y0, cca_dim=-1)),
    ("n_local_points", lambda: rec.lfre(X0, Y0, n_local_points=2.7)),
    ("k", lambda: sim.mutual_knn(X0, Y0, k=2.5)),
    ("k", lambda: sim.mutual_knn(X0, Y0, k="10")),
    ("k", lambda: sim.cknna(X0, Y0, k=3.0)),
    ("sigma", lambda: sim.cka(X0, Y0, kernel="rbf", sigma=float("nan"))),
    ("sigma", lambda: sim.cka(X0, Y0, kernel="rbf", sigma=0.0)),
    ("max_samples", lambda: sim.rsa(X0, Y0, max_samples=1)),
    ("chunk_size", lambda: rec.pointwise_lfre(X0, Y0, 10, chunk_size=0)),
    ("chunk_size", lambda: list(st.iter_row_chunks(X0, Y0, chunk_size=0))),
    ("chunk_size", lambda: sim.knn_indices(X0, 3, chunk_size=0)),
    ("normalize", lambda: sim.cka(X0, Y0, normalize="yes")),
    ("q", lambda: sim.clip_outliers(X0, q=1.5)),
]


@pytest.mark.parametrize("name, call", BAD_PARAMETERS, ids=[b[0] for b in BAD_PARAMETERS])
def test_bad_parameters_are_named(name, call):
    with pytest.raises(MetricInputError, match=rf"^{name} must be"):
        call()


# every measure's error on too few rows names the measure, its parameter and the numbers
# (rows given, rows needed): one case per measure of the comparison, run as compare runs it
TOO_FEW_ROWS = {
    "gfre": (3, r"GFRE needs at least 4 samples for the default 50/50 split, got 3"),
    "gfrd": (3, r"GFRD needs at least 4 samples for the default 50/50 split, got 3"),
    "lfre": (3, r"LFRE needs at least 4 samples for the default 50/50 split, got 3"),
    "cka": (1, r"linear CKA needs at least 2 samples, got 1"),
    "cka_unbiased": (
        3,
        r"unbiased linear CKA needs at least 4 samples \(the unbiased HSIC\), got 3",
    ),
    "cka_rbf": (1, r"RBF CKA needs at least 2 samples, got 1"),
    "mknn": (8, r"mutual kNN with k=10 needs at least 11 samples \(k \+ 1\), got 8"),
    "cknna": (8, r"CKNNA with k=10 needs at least 11 samples \(k \+ 1\), got 8"),
    "svcca": (8, r"SVCCA with cca_dim=10 needs at least 11 samples \(cca_dim \+ 1\), got 8"),
    "procrustes": (1, r"the Procrustes distance needs at least 2 samples, got 1"),
    "rsa": (2, r"RSA needs at least 3 samples \(3 pairwise distances to rank\), got 2"),
}


def test_every_measure_has_a_too_few_rows_case():
    from mlipspace.metrics import MEASURES

    assert set(TOO_FEW_ROWS) == set(MEASURES)


@pytest.mark.parametrize("measure", sorted(TOO_FEW_ROWS))
def test_too_few_rows_name_the_measure_and_the_numbers(measure):
    from mlipspace.metrics.registry import measure_function

    n, message = TOO_FEW_ROWS[measure]
    X, Y = _pair(n, dx=12, dy=11)
    with pytest.raises(MetricInputError, match=rf"^{message}$"):
        measure_function(measure)(X, Y)


TOO_FEW_ROWS_CALLS = [
    (
        lambda X, Y: sim.mutual_knn(X, Y, k=5),
        r"mutual kNN with k=5 needs at least 6 samples \(k \+ 1\), got 5",
    ),
    (
        lambda X, Y: sim.pointwise_mutual_knn(X, Y, k=7),
        r"mutual kNN with k=7 needs at least 8 samples \(k \+ 1\), got 5",
    ),
    (
        lambda X, Y: sim.cknna(X, Y, k=2),
        None,  # 5 rows are enough for k=2: a number
    ),
    (
        lambda X, Y: sim.cknna(X[:3], Y[:3], k=2),
        r"CKNNA with k=2 needs at least 4 samples \(k \+ 1, and at least 4\), got 3",
    ),
    (
        lambda X, Y: sim.cknna(X[:2], Y[:2], k=None),
        r"CKNNA requires k >= 2, got k=1 \(k=None: every other row of 2 samples\)",
    ),
    (
        lambda X, Y: sim.knn_indices(X, 5),
        r"k-nearest neighbours with k=5 need at least 6 samples \(k \+ 1\), got 5",
    ),
    (
        lambda X, Y: sim.svcca(X, Y, cca_dim=5),
        r"SVCCA with cca_dim=5 needs at least 6 samples \(cca_dim \+ 1\), got 5",
    ),
    (
        lambda X, Y: sim.svcca(X[:, :2], Y, cca_dim=3),
        r"SVCCA: cca_dim=3 exceeds the smaller feature dimension \(2\)",
    ),
    (
        lambda X, Y: rec.lfre(X, Y, n_local_points=6),
        r"LFRE: X has 5 samples but n_local_points=6\. Must have at least n_local_points samples",
    ),
    (
        lambda X, Y: gfr.gfre(X, Y, train_idx=[0]),
        r"GFRE needs at least 2 training samples, got 1 of 5",
    ),
    (
        lambda X, Y: gfr.gfrd(X, Y, train_idx=np.arange(5)),
        r"GFRD: the test set is empty \(5 training of 5\)",
    ),
    (
        lambda X, Y: st.gfre_streamed(st.iter_row_chunks(X[:3], Y[:3], 2), 3),
        r"GFRE/GFRD needs at least 4 samples for the default 50/50 split, got 3",
    ),
]


@pytest.mark.parametrize("index", range(len(TOO_FEW_ROWS_CALLS)))
def test_too_few_rows_for_a_parameter_are_named(index):
    call, message = TOO_FEW_ROWS_CALLS[index]
    X, Y = _pair(5, dx=6, dy=5)
    if message is None:
        assert np.isfinite(call(X, Y))
        return
    with pytest.raises(MetricInputError, match=rf"^{message}$"):
        call(X, Y)


def test_streamed_chunks_of_unequal_width():
    X, Y = _pair(100)
    chunks = [(X[:50], Y[:50]), (X[50:, :5], Y[50:])]
    with pytest.raises(MetricInputError, match="chunk at row 50 has 5 X"):
        st.gfre_streamed(iter(chunks), 100)


# -- 4. degenerate input: a named error or the right number ------------------------------------


@pytest.mark.parametrize(
    "measure",
    [
        sim.cka,
        sim.unbiased_cka,
        lambda a, b: sim.cka(a, b, kernel="rbf"),
        sim.mutual_knn,
        sim.cknna,
        sim.procrustes_distance,
        lambda a, b: sim.svcca(a, b, cca_dim=3),
        sim.rsa,
    ],
)
def test_constant_features_are_named(measure):
    _, Y = _pair(60)
    with pytest.raises(MetricInputError, match="X is constant"):
        measure(np.full((60, 4), 2.5), Y)


@pytest.mark.parametrize("measure", [sim.cka, sim.mutual_knn, sim.procrustes_distance])
def test_constant_features_without_normalisation(measure):
    _, Y = _pair(60)
    with pytest.raises(MetricInputError, match="X is constant"):
        measure(np.full((60, 4), 2.5), Y, normalize=False)


def test_huge_features_give_the_unscaled_numbers():
    X, Y = _pair(200)
    for measure in (gfr.gfre, gfr.gfrd):
        assert measure(X * 1e200, Y) == pytest.approx(measure(X, Y), rel=1e-12)
        assert measure(X, Y * 1e-200) == pytest.approx(measure(X, Y), rel=1e-12)
    assert rec.lfre(X * 1e200, Y, 20) == pytest.approx(rec.lfre(X, Y, 20), rel=1e-10)
    assert sim.cka(X * 1e200, Y) == pytest.approx(sim.cka(X, Y), rel=1e-12)
    assert sim.mutual_knn(X * 1e200, Y) == sim.mutual_knn(X, Y)


def test_huge_streamed_features_are_named():
    X, Y = _pair(200)
    with pytest.raises(MetricInputError, match="overflow"):
        st.gfre_streamed(st.iter_row_chunks(X * 1e200, Y, 50), 200)


def test_complex_input_is_named():
    X, Y = _pair(60)
    for call in (
        lambda: sim.cka(X + 1j, Y),
        lambda: sim.mutual_knn(X, Y + 0j),
        lambda: gfr.gfre(X + 0j, Y),
        lambda: cumulants(X + 0j, 2, np.repeat(np.arange(6), 10)),
    ):
        with pytest.raises(MetricInputError, match="real"):
            call()


def test_cknna_k_none_is_every_other_row():
    X, Y = _pair(50)
    assert sim.cknna(X, Y, k=None) == sim.cknna(X, Y, k=49)


# -- 5. what the docs say about CKNNA is what the code does -----------------------------------


def _reference_cknna_hsic(A, k, unbiased):
    """The reference's masked self-HSIC: top-k of K (diagonal included unless unbiased)."""
    A = A / np.linalg.norm(A, axis=1, keepdims=True)
    K = A @ A.T
    Kh = K.copy()
    if unbiased:
        np.fill_diagonal(Kh, -np.inf)
    mask = np.zeros_like(K)
    np.put_along_axis(mask, np.argsort(-Kh, axis=1, kind="stable")[:, :k], 1.0, axis=1)
    hsic = sim.hsic_unbiased if unbiased else sim.hsic_biased
    return hsic(mask * K, mask * K), mask


@pytest.mark.parametrize("unbiased", [True, False])
def test_cknna_self_neighbour_and_self_similarity(unbiased):
    X, _ = _pair(150)
    kk, mask = _reference_cknna_hsic(X, 10, unbiased)
    # biased: each row is its own first neighbour (the docs say so); unbiased: never
    assert np.all(np.diag(mask) == (0.0 if unbiased else 1.0))
    # CKNNA(X, X) = HSIC_kk / (HSIC_kk + 1e-6): below 1 by the reference's epsilon only
    value = sim.cknna(X, X, k=10, unbiased=unbiased)
    assert value == pytest.approx(kk / (kk + 1e-6), rel=1e-12)
    if unbiased:  # the docs give 1e-4 to 1e-3 below 1 for a few hundred rows
        assert 1e-5 < 1 - value < 1e-2
