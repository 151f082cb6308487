"""The measures on torch tensors equal the numpy path (and so scikit-matter's numbers).

Every test runs the one implementation of a measure twice: on numpy (``device=None``) and on
torch (``"torch-cpu"`` here; ``"cuda"`` under the ``gpu`` marker, which ``make gpu-check``
runs on a machine with a GPU and ``make test`` deselects).
"""

from __future__ import annotations

import numpy as np
import pytest
import skmatter.metrics as sk

from mlipspace.devices import cuda_available
from mlipspace.errors import MetricInputError, ParameterError
from mlipspace.metrics import backend as bk
from mlipspace.metrics import reconstruction as rec
from mlipspace.metrics import similarity as sim
from mlipspace.metrics import streamed as st
from mlipspace.metrics.neighbours import k_smallest, nearest_train_rows

torch = pytest.importorskip("torch")

RTOL = 1e-6  # the bound; the paths agree far more closely (about 1e-12)

DEVICES = [
    "torch-cpu",
    pytest.param(
        "cuda",
        marks=[pytest.mark.gpu, pytest.mark.skipif(not cuda_available(), reason="no CUDA")],
    ),
]


# scikit-learn and scikit-matter warn about their own futures; not what is tested here
pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::DeprecationWarning")


def _data(n, dx, dy, seed, rank=None, copies=0):
    rng = np.random.default_rng(seed)
    Z = rng.standard_normal((n, rank or dx))
    X = Z @ rng.standard_normal((Z.shape[1], dx)) + 3.0
    Y = np.tanh(X @ rng.standard_normal((dx, dy)) / np.sqrt(dx)) + 0.1 * rng.standard_normal(
        (n, dy)
    )
    for i in range(copies):  # exact copies of rows: the tie rule decides
        X[2 * i + 1], Y[2 * i + 1] = X[2 * i], Y[2 * i]
    return X, Y


# -- the backend ----------------------------------------------------------------------------


def test_numpy_device_passes_arrays_through_untouched():
    A = np.arange(6.0).reshape(2, 3)
    for device in (None, "cpu", " CPU"):
        backend = bk.get_backend(device)
        assert backend.is_numpy and bk.asarray(A, backend) is A
    assert bk.namespace(A) is np


@pytest.mark.parametrize("bad", ["gpu", "torch", "cuda:x", "tpu:0"])
def test_bad_device_is_a_named_parameter_error(bad):
    with pytest.raises(ParameterError, match="device must be"):
        bk.get_backend(bad)
    with pytest.raises(ParameterError):
        sim.cka(np.eye(4), np.eye(4), device=bad)


@pytest.mark.skipif(cuda_available(), reason="this machine has CUDA")
def test_cuda_measures_without_cuda_fail_clearly():
    X, Y = _data(40, 4, 3, seed=0)
    for call in (
        lambda: sim.cka(X, Y, device="cuda"),
        lambda: sim.mutual_knn(X, Y, 3, device="cuda"),
        lambda: rec.lfre(X, Y, 10, device="cuda:0"),
        lambda: st.gfre_streamed(st.iter_row_chunks(X, Y, 16), len(X), device="cuda"),
    ):
        with pytest.raises(ParameterError, match="torch sees none"):
            call()


# -- neighbours: the tie rule -----------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
def test_k_smallest_keeps_the_tie_rule(device):
    rng = np.random.default_rng(3)
    values = rng.integers(0, 4, size=(30, 25)).astype(float)  # many ties
    labels = np.stack([rng.permutation(25) for _ in range(30)])
    t = bk.asarray(values, bk.get_backend(device))
    for k in (1, 5, 24, 25):
        v, idx = k_smallest(values, k)
        tv, tidx = k_smallest(t, k)
        np.testing.assert_array_equal(bk.to_numpy(tidx), idx)
        np.testing.assert_array_equal(bk.to_numpy(tv), v)
        v, lab = k_smallest(values, k, labels)
        tv, tlab = k_smallest(t, k, labels)
        np.testing.assert_array_equal(bk.to_numpy(tlab), lab)
        np.testing.assert_array_equal(bk.to_numpy(tv), v)


@pytest.mark.parametrize("device", DEVICES)
def test_nearest_train_rows_equal_with_copies(device):
    from mlipspace.metrics.neighbours import duplicate_representatives

    X, _ = _data(120, 6, 2, seed=1, copies=10)
    reps = duplicate_representatives(X[:80])
    ref = nearest_train_rows(X[:80], X[80:], 12, reps)
    backend = bk.get_backend(device)
    got = nearest_train_rows(bk.asarray(X[:80], backend), bk.asarray(X[80:], backend), 12, reps)
    np.testing.assert_array_equal(bk.to_numpy(got), ref)


# -- CKA and the kNN measures -----------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    "measure",
    [
        lambda X, Y, **kw: sim.cka(X, Y, **kw),
        lambda X, Y, **kw: sim.cka(X, Y, unbiased=True, **kw),
        lambda X, Y, **kw: sim.cka(X, Y, kernel="rbf", sigma=0.7, **kw),
        lambda X, Y, **kw: sim.cknna(X, Y, 6, **kw),
        lambda X, Y, **kw: sim.cknna(X, Y, 6, unbiased=False, **kw),
        lambda X, Y, **kw: sim.mutual_knn(X, Y, 6, **kw),
    ],
    ids=["cka", "unbiased-cka", "rbf-cka", "cknna", "biased-cknna", "mutual-knn"],
)
def test_similarity_measures_equal_numpy(measure, device):
    X, Y = _data(150, 12, 7, seed=2, copies=8)
    ref = measure(X, Y)
    got = measure(X, Y, device=device)
    assert got == pytest.approx(ref, rel=RTOL, abs=1e-12)


@pytest.mark.parametrize("device", DEVICES)
def test_pointwise_mutual_knn_and_knn_indices_equal_numpy(device):
    X, Y = _data(100, 5, 5, seed=6, copies=12)
    np.testing.assert_array_equal(
        sim.knn_indices(X, 7, chunk_size=32, device=device), sim.knn_indices(X, 7)
    )
    np.testing.assert_array_equal(
        sim.pointwise_mutual_knn(X, Y, 5, device=device), sim.pointwise_mutual_knn(X, Y, 5)
    )


# -- GFRE and GFRD from streamed statistics -----------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", [(400, 8, 6, None), (300, 20, 30, 5), (250, 40, 10, None)])
def test_streamed_gfre_gfrd_equal_numpy(case, device):
    n, dx, dy, rank = case
    X, Y = _data(n, dx, dy, seed=7, rank=rank)
    for measure in (st.gfre_streamed, st.gfrd_streamed):
        ref = measure(st.iter_row_chunks(X, Y, 64), n)
        got = measure(st.iter_row_chunks(X, Y, 64), n, device=device)
        assert got == pytest.approx(ref, rel=RTOL, abs=1e-12), measure.__name__


@pytest.mark.parametrize("device", DEVICES)
def test_chunk_stats_on_torch_merge_to_the_numpy_sums(device):
    X, Y = _data(200, 6, 4, seed=8)
    train = np.arange(0, 200, 3)
    train = np.concatenate([train, train[:5]])  # rows counted twice: weighted sums
    groups = st.row_groups(200, train_idx=train)
    sx, sy = st.chunk_shift(X[:50], Y[:50])
    parts = [
        (st.chunk_stats(X[a:b], Y[a:b], groups[a:b], sx, sy, a),
         st.chunk_stats(X[a:b], Y[a:b], groups[a:b], sx, sy, a, device=device))
        for a, b in ((0, 50), (50, 130), (130, 200))
    ]  # fmt: skip
    ref = st.merge_stats(*(p[0] for p in parts))
    got = [g.to_numpy() for g in st.merge_stats(*(p[1] for p in parts))]
    for r, g in zip(ref, got, strict=True):
        assert g.n == r.n
        for name in ("sx", "sy", "xx", "xy", "yy"):
            np.testing.assert_allclose(getattr(g, name), getattr(r, name), rtol=1e-12, atol=1e-9)


# -- LFRE -------------------------------------------------------------------------------------

LFRE_CASES = [  # n, dx, dy, rank
    (160, 6, 9, None),
    (200, 12, 5, None),
    (120, 40, 12, None),  # more features than neighbours: the QR reduction
    (150, 16, 24, 6),  # rank-deficient source: every neighbourhood on the SVD path
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", LFRE_CASES)
@pytest.mark.parametrize("k", [5, 25])
def test_lfre_on_torch_equals_numpy_and_skmatter(case, k, device):
    n, dx, dy, rank = case
    X, Y = _data(n, dx, dy, seed=4, rank=rank, copies=3)
    test = np.arange(0, n, 3)[:20]
    ref = rec.pointwise_lfre(X, Y, k, test_idx=test)
    got = rec.pointwise_lfre(X, Y, k, test_idx=test, device=device, chunk_size=7)
    np.testing.assert_allclose(got, ref, rtol=RTOL, atol=1e-10)
    sk_ref = sk.pointwise_local_reconstruction_error(X, Y, k, test_idx=test)
    np.testing.assert_allclose(got, sk_ref, rtol=RTOL, atol=1e-10)


@pytest.mark.parametrize("device", DEVICES)
def test_lfre_default_split_on_torch(device):
    X, Y = _data(300, 10, 14, seed=5)
    assert rec.lfre(X, Y, 25, device=device) == pytest.approx(rec.lfre(X, Y, 25), rel=1e-10)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("svd", [False, True])
@pytest.mark.parametrize("shape", [(12, 5), (12, 30), (40, 8)])  # k > d, k <= d, QR reduction
def test_local_errors_batched_paths_equal_numpy(shape, svd, device):
    """Each batched path alone (Gram with eigh/Cholesky, stacked SVD): the same points decided
    or NaN (up to the torch Cholesky's looser condition bound), equal values where decided."""
    k, d = shape
    rng = np.random.default_rng(11)
    b = 50
    Xn = rng.standard_normal((b, k, d)) * np.geomspace(1, 1e-3, d)
    Yn = np.tanh(Xn @ rng.standard_normal((d, 6))) + 0.05 * rng.standard_normal((b, k, 6))
    x, y = rng.standard_normal((b, d)), rng.standard_normal((b, 6))
    prob = rec.LocalProblem.for_neighbourhood(k, d).contiguous()[1]
    ref = rec.local_errors_batched(Xn, Yn, x, y, prob, svd=svd)
    backend = bk.get_backend(device)
    got = bk.to_numpy(
        rec.local_errors_batched(*(bk.asarray(A, backend) for A in (Xn, Yn, x, y)), prob, svd)
    )
    both = ~np.isnan(ref) & ~np.isnan(got)
    assert both.sum() >= 0.8 * (~np.isnan(ref)).sum() > 0
    np.testing.assert_allclose(got[both], ref[both], rtol=1e-9)
    if svd:  # the SVD path has no condition bound: the same points are decided
        np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))


def test_estimators_are_numpy_only():
    X, Y = _data(60, 4, 3, seed=9)
    from sklearn.linear_model import Ridge

    with pytest.raises(MetricInputError, match="numpy only"):
        rec.pointwise_lfre(X, Y, 10, estimator=Ridge(), device="torch-cpu")
