"""GFRE, GFRD and LFRE: equality with scikit-matter 0.4.1, its own tests, streaming, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import skmatter.metrics as sk

from mlipspace.errors import MetricInputError
from mlipspace.metrics import neighbours as nb
from mlipspace.metrics import reconstruction as rec
from mlipspace.metrics import ridge as rr
from mlipspace.metrics import scaling as sc
from mlipspace.metrics import split as sp
from mlipspace.metrics import streamed as st
from mlipspace.metrics.gfr import gfrd, gfre, pointwise_gfrd, pointwise_gfre
from mlipspace.metrics.reconstruction import lfre, pointwise_lfre
from mlipspace.metrics.streamed import gfrd_streamed, gfre_streamed

RTOL = 1e-6


def _data(n, dx, dy, noise, seed, rank=None):
    rng = np.random.default_rng(seed)
    Z = rng.standard_normal((n, rank or dx))
    X = Z @ rng.standard_normal((Z.shape[1], dx)) + 3.0
    Y = np.tanh(X @ rng.standard_normal((dx, dy)) / np.sqrt(dx)) + noise * rng.standard_normal(
        (n, dy)
    )
    return X, Y


CASES = [  # n, dx, dy, noise, rank
    (120, 4, 9, 0.05, None),
    (200, 12, 5, 0.3, None),
    (90, 30, 30, 0.0, None),
    (80, 60, 20, 0.1, None),  # more features than training rows
    (150, 16, 24, 0.1, 6),  # rank-deficient source
]


# scikit-learn and scikit-matter warn about their own futures; not what is tested here
pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::DeprecationWarning")


@pytest.mark.parametrize("case", CASES)
def test_gfre_equals_skmatter(case):
    X, Y = _data(*case[:4], seed=1, rank=case[4])
    assert gfre(X, Y) == pytest.approx(sk.global_reconstruction_error(X, Y), rel=RTOL)
    test = np.arange(0, len(X), 3)
    ours = pointwise_gfre(X, Y, test_idx=test)
    ref = sk.pointwise_global_reconstruction_error(X, Y, test_idx=test)
    np.testing.assert_allclose(ours, ref, rtol=RTOL, atol=1e-12)
    train = np.arange(len(X) // 3)
    assert gfre(Y, X, train_idx=train) == pytest.approx(
        sk.global_reconstruction_error(Y, X, train_idx=train), rel=RTOL
    )


@pytest.mark.parametrize("case", CASES)
def test_gfrd_equals_skmatter_where_it_runs(case):
    X, Y = _data(*case[:4], seed=2, rank=case[4])
    small, large = (X, Y) if X.shape[1] <= Y.shape[1] else (Y, X)
    np.testing.assert_allclose(
        pointwise_gfrd(small, large),
        sk.pointwise_global_reconstruction_distortion(small, large),
        rtol=RTOL,
        atol=1e-12,
    )
    assert gfrd(small, large) == pytest.approx(
        sk.global_reconstruction_distortion(small, large), rel=RTOL
    )


def test_gfrd_wider_source_is_defined_and_rotation_invariant():
    X, Y = _data(150, 20, 6, 0.1, seed=3)
    if X.shape[1] > Y.shape[1]:
        with pytest.raises(ValueError):  # scikit-matter 0.4.1 fails here
            sk.global_reconstruction_distortion(X, Y)
    value = gfrd(X, Y)
    assert np.isfinite(value) and value > 0
    Q = np.linalg.qr(np.random.default_rng(0).standard_normal((20, 20)))[0]
    assert gfrd(X @ Q, Y) == pytest.approx(value, rel=1e-8)
    # an isometric embedding of Y in a wider X has no distortion
    E = np.linalg.qr(np.random.default_rng(1).standard_normal((20, 6)))[0]
    assert gfrd(Y @ E.T, Y) < 1e-6


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("k", [5, 17, 40])
def test_lfre_equals_skmatter(case, k):
    X, Y = _data(*case[:4], seed=4, rank=case[4])
    test = np.arange(0, len(X), 4)[:12]
    ours = pointwise_lfre(X, Y, k, test_idx=test, n_jobs=2)
    ref = sk.pointwise_local_reconstruction_error(X, Y, k, test_idx=test)
    np.testing.assert_allclose(ours, ref, rtol=RTOL, atol=1e-10)


def test_lfre_default_split_and_fast_path_equal_exact_path():
    X, Y = _data(300, 10, 14, 0.2, seed=5)
    assert lfre(X, Y, 25) == pytest.approx(sk.local_reconstruction_error(X, Y, 25), rel=RTOL)
    train, test = sp.resolve_split(len(X))
    Xtr, Xte, Ytr, Yte = sc.prepare(X, Y, train, test)
    k = 25
    fast = rec.LocalProblem(folds=rr.fold_indices(k), rcond=rr.rcond_for((k, 10)))
    exact = rec.LocalProblem(folds=fast.folds, rcond=fast.rcond, exact=True)
    a = rec.pointwise_lfre_scaled(Xtr, Xte, Ytr, Yte, k, fast, None, 1, 64)
    b = rec.pointwise_lfre_scaled(Xtr, Xte, Ytr, Yte, k, exact, None, 1, 64)
    np.testing.assert_allclose(a, b, rtol=1e-8)


def _neighbourhoods(X, Y, k):
    """Scaled default split, the local problem and each test row's neighbours (fold order)."""
    train, test = sp.resolve_split(len(X))
    Xtr, Xte, Ytr, Yte = sc.prepare(X, Y, train, test)
    order, prob = rec.LocalProblem(
        folds=rr.fold_indices(k), rcond=rr.rcond_for((k, X.shape[1]))
    ).contiguous()
    neigh = nb.nearest_train_rows(Xtr, Xte, k)[:, order]
    return Xtr, Xte, Ytr, Yte, prob, neigh


def _exact_local_errors(Xtr, Xte, Ytr, Yte, prob, neigh):
    """Every test row on the per-point SVD path (what scikit-matter computes)."""
    exact = rec.LocalProblem(folds=prob.folds, rcond=prob.rcond, exact=True)
    return np.array(
        [
            rec.local_error(Xtr[r], Ytr[r], x, y, exact)
            for r, x, y in zip(neigh, Xte, Yte, strict=True)
        ]
    )


@pytest.mark.parametrize(("d", "k"), [(24, 16), (24, 24), (10, 25), (6, 40)])
def test_batched_local_fits_decide_most_points_and_equal_the_exact_path(d, k):
    # both branches of the batched path: one k × k Gram (k <= d) and feature-side Grams (k > d)
    X, Y = _data(400, d, 9, 0.2, seed=11)
    Xtr, Xte, Ytr, Yte, prob, neigh = _neighbourhoods(X, Y, k)
    batched = rec.local_errors_batched(Xtr[neigh], Ytr[neigh], Xte, Yte, prob)
    decided = ~np.isnan(batched)
    assert decided.mean() > 0.9
    reference = _exact_local_errors(Xtr, Xte, Ytr, Yte, prob, neigh)
    np.testing.assert_allclose(batched[decided], reference[decided], rtol=1e-8)


def _locally_rank_deficient(n=500, d=48, seed=12):
    """Features like real models' last layers: many atoms share an environment exactly
    (duplicate rows in both models), and the rest of the spectrum decays over ten decades.

    Duplicates are duplicated in ``Y`` too: rows at exactly equal distance with different
    targets would make the neighbourhood depend on how ties are broken (scikit-matter's
    unstable argsort breaks them arbitrarily, mlipspace by training-row order).
    """
    rng = np.random.default_rng(seed)
    prototypes = rng.standard_normal((60, 12)) * np.logspace(0, -10, 12)
    hidden = rng.standard_normal((60, 20))  # what Y knows of an environment and X does not
    which = rng.integers(0, 60, n)
    Z = prototypes[which]
    Z[::3] += 1e-6 * rng.standard_normal((len(Z[::3]), 12))
    X = Z @ rng.standard_normal((12, d))
    Y = np.tanh(Z @ rng.standard_normal((12, 20))) + 0.1 * hidden[which]
    return X, Y


@pytest.mark.parametrize(("d", "k"), [(48, 32), (48, 48), (12, 30)])
def test_svd_path_decides_rank_deficient_neighbourhoods_and_equals_skmatter(d, k):
    X, Y = _locally_rank_deficient(d=d)
    Xtr, Xte, Ytr, Yte, prob, neigh = _neighbourhoods(X, Y, k)
    args = (Xtr[neigh], Ytr[neigh], Xte, Yte, prob)
    # the Gram path cannot resolve these spectra; stacked SVDs decide nearly all of them
    assert np.isnan(rec.local_errors_batched(*args)).mean() > 0.5
    by_svd = rec.local_errors_batched(*args, svd=True)
    decided = ~np.isnan(by_svd)
    assert decided.mean() > 0.9
    reference = _exact_local_errors(Xtr, Xte, Ytr, Yte, prob, neigh)
    np.testing.assert_allclose(by_svd[decided], reference[decided], rtol=1e-8, atol=1e-10)
    # and the whole measure equals scikit-matter's
    ours = pointwise_lfre(X, Y, k, n_jobs=2)
    ref = sk.pointwise_local_reconstruction_error(X, Y, k)
    np.testing.assert_allclose(ours, ref, rtol=RTOL, atol=1e-10)


def test_nearly_perfect_local_fits_leave_the_gram_path(monkeypatch):
    # targets linear in the sources up to 1e-11: every local error is a tiny difference of
    # O(1) numbers, and Gram solutions (condition number squared) lose its relative accuracy
    rng = np.random.default_rng(3)
    X = rng.standard_normal((400, 8)) * np.logspace(0, -3, 8)
    Y = X @ rng.standard_normal((8, 6)) + 1e-11 * rng.standard_normal((400, 6))
    Xtr, Xte, Ytr, Yte, prob, neigh = _neighbourhoods(X, Y, 30)
    args = (Xtr[neigh], Ytr[neigh], Xte, Yte, prob)
    reference = _exact_local_errors(Xtr, Xte, Ytr, Yte, prob, neigh)
    assert np.median(reference) < 1e-10
    # the accuracy test sends them to the SVD path (without it the Gram path decides them)
    assert np.isnan(rec.local_errors_batched(*args)).mean() > 0.9
    monkeypatch.setattr(rec, "_GRAM_ACCURACY", np.inf)
    assert not np.isnan(rec.local_errors_batched(*args)).any()
    monkeypatch.undo()
    # equal to scikit-matter down to the rounding of O(1) numbers (no SVD does better here)
    ours = pointwise_lfre(X, Y, 30)
    ref = sk.pointwise_local_reconstruction_error(X, Y, 30)
    np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=1e-14)


def test_float32_input_matches_float64_reference():
    X, Y = _data(200, 8, 8, 0.1, seed=6)
    X32, Y32 = X.astype(np.float32), Y.astype(np.float32)
    ref = sk.global_reconstruction_error(X32.astype(np.float64), Y32.astype(np.float64))
    assert gfre(X32, Y32) == pytest.approx(ref, rel=RTOL)


def test_custom_estimator_and_scaler_are_used():
    from sklearn.linear_model import LinearRegression
    from sklearn.preprocessing import StandardScaler

    X, Y = _data(200, 8, 5, 0.1, seed=7)
    ours = gfre(X, Y, scaler=StandardScaler(), estimator=LinearRegression(fit_intercept=False))
    ref = sk.global_reconstruction_error(
        X, Y, scaler=StandardScaler(), estimator=LinearRegression(fit_intercept=False)
    )
    assert ours == pytest.approx(ref, rel=RTOL)


# -- scikit-matter's own tests (tests/test_metrics.py, ReconstructionMeasuresTest), ported ----


@pytest.fixture
def iris():
    from sklearn.datasets import load_iris
    from sklearn.utils.extmath import randomized_range_finder

    features = load_iris().data
    small = features[:20, [0, 1]]
    large = features[:20, [0, 1, 0, 1]]
    rotation = randomized_range_finder(
        np.random.RandomState(0).rand(2, 2), size=2, n_iter=10, random_state=0
    )
    return small, large, small @ rotation


EPS = 1e-5
N_LOCAL = 15


def test_skmatter_gfre(iris):
    small, large, _ = iris
    assert abs(gfre(small, small)) < EPS
    assert abs(gfre(small, large)) < EPS
    assert abs(gfre(large, small)) < EPS


def test_skmatter_gfrd(iris):
    small, large, rotated = iris
    assert abs(gfrd(small, small)) < EPS
    assert abs(gfrd(small, rotated)) < EPS
    # skmatter's "should just run" tests (which call GFRE by mistake); ours really run GFRD
    assert np.isfinite(gfrd(small, large))
    assert np.isfinite(gfrd(large, small))


def test_skmatter_lfre(iris):
    small, large, _ = iris
    assert abs(lfre(small, small, N_LOCAL)) < EPS
    assert abs(lfre(small, large, N_LOCAL)) < EPS
    assert abs(lfre(large, small, N_LOCAL)) < EPS


def test_skmatter_lfre_indices(iris):
    small, large, _ = iris
    n = len(small)
    train = np.arange(n // 4)
    assert len(pointwise_lfre(small, large, n // 4, train_idx=train)) == n - n // 4
    test = np.arange(n // 4)
    assert len(pointwise_lfre(small, large, N_LOCAL, test_idx=test)) == n // 4


def test_skmatter_errors():
    X = np.array([[1, 2], [3, 4]], dtype=float)
    with pytest.raises(ValueError, match=r"First dimension of X \(2\) and Y \(1\) must match"):
        gfre(X, X[:1])
    with pytest.raises(
        ValueError,
        match=r"X has 2 samples but n_local_points=10. Must have at least n_local_points samples",
    ):
        lfre(X, X, 10)


# -- streaming ------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(3000, 16, 24), (2500, 30, 7)])
def test_streamed_equals_in_memory(shape):
    n, dx, dy = shape
    X, Y = _data(n, dx, dy, 0.2, seed=8)
    X, Y = X.astype(np.float32), Y.astype(np.float32)
    test = np.random.default_rng(0).choice(n, 400, replace=False)
    chunks = lambda: st.iter_row_chunks(X, Y, chunk_size=333)  # noqa: E731
    assert gfre_streamed(chunks(), n, test_idx=test) == pytest.approx(
        gfre(X, Y, test_idx=test), rel=1e-7
    )
    assert gfrd_streamed(chunks(), n, test_idx=test) == pytest.approx(
        gfrd(X, Y, test_idx=test), rel=1e-7
    )
    assert gfre_streamed(chunks(), n) == pytest.approx(gfre(X, Y), rel=1e-7)


def test_streamed_row_count_checked():
    X, Y = _data(100, 4, 4, 0.1, seed=9)
    with pytest.raises(MetricInputError, match="expected n_samples=120"):
        gfre_streamed(st.iter_row_chunks(X, Y, 30), 120)


# -- bad input ------------------------------------------------------------------------------


def test_nan_and_inf_rejected():
    X, Y = _data(50, 4, 4, 0.1, seed=10)
    X[3, 1] = np.nan
    with pytest.raises(MetricInputError, match="NaN/inf"):
        gfre(X, Y)
    X[3, 1] = 0
    Y[7, 0] = np.inf
    with pytest.raises(MetricInputError, match="NaN/inf"):
        lfre(X, Y, 5)


def test_constant_features():
    X, Y = _data(100, 5, 5, 0.1, seed=11)
    with pytest.raises(MetricInputError, match="zero total variance"):
        gfre(np.ones_like(X), Y)
    Xc = X.copy()
    Xc[:, 2] = 4.0  # one constant column: fine, equals skmatter
    assert gfre(Xc, Y) == pytest.approx(sk.global_reconstruction_error(Xc, Y), rel=RTOL)
    assert lfre(Xc, Y, 10) == pytest.approx(sk.local_reconstruction_error(Xc, Y, 10), rel=RTOL)


def test_too_few_training_rows_for_neighbourhood():
    X, Y = _data(60, 4, 4, 0.1, seed=12)
    with pytest.warns(UserWarning, match="30 training samples but n_local_points=40"):
        value = lfre(X, Y, 40)  # 60 rows, but the default split keeps 30 for training
    assert value == pytest.approx(sk.local_reconstruction_error(X, Y, 40), rel=RTOL)
    with pytest.raises(MetricInputError, match="at least 2"):
        lfre(X, Y, 1)


def test_bad_shapes_and_indices():
    X, Y = _data(40, 4, 4, 0.1, seed=13)
    with pytest.raises(MetricInputError, match="2-D"):
        gfre(X[:, 0], Y)
    with pytest.raises(MetricInputError, match="outside"):
        gfre(X, Y, test_idx=[0, 99])
    with pytest.raises(MetricInputError, match="empty"):
        gfre(X, Y, train_idx=np.arange(40))
