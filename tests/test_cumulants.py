"""Progressive cumulant features (mlipspace.pooling)."""

from __future__ import annotations

from functools import cache
from math import factorial

import numpy as np
import pandas as pd
import pytest
import scipy.stats as st

from mlipspace.errors import MetricInputError
from mlipspace.features import AtomFeatures
from mlipspace.pooling import (
    CumulantAccumulator,
    cumulants,
    cumulants_streaming,
    moments_to_cumulants,
    pool,
)

sp = pytest.importorskip("sympy")


def atom_features(X: np.ndarray, index: np.ndarray, model: str = "m", layer: str = "l"):
    n_struct = int(index.max()) + 1
    hashes = np.array([f"h{i:03d}" for i in range(n_struct)])
    counts = np.bincount(index, minlength=n_struct)
    site = np.zeros(len(index), dtype=np.int64)
    for s in range(n_struct):
        site[index == s] = np.arange(counts[s])
    structures = pd.DataFrame(
        {
            "structure_hash": hashes,
            "n_atoms": counts,
            "subset": [f"sub{i % 3}" for i in range(n_struct)],
            "source": "test",
            "parent": "",
        }
    )
    return AtomFeatures(
        X=X,
        structure_hash=hashes[index],
        site=site,
        numbers=np.ones(len(index), dtype=np.int64),
        structure_index=index.astype(np.int64),
        structures=structures,
        model=model,
        layer=layer,
        metadata={"dtype": str(X.dtype)},
    )


def unscale(block: np.ndarray, p: int) -> np.ndarray:
    return np.sign(block) * np.abs(block) ** p


# ------------------------------------------------------------------ the moment-to-cumulant map


def test_recursion_equals_log_mgf_series_symbolically():
    """κn from the recursion equals n!·[t^n] log M(t), M(t) = 1 + Σ μ_p t^p / p!, to order 8."""
    t = sp.Symbol("t")
    mu = sp.symbols("mu2:9")
    mgf = 1 + sum(mu[p - 2] * t**p / sp.factorial(p) for p in range(2, 9))
    series = sp.series(sp.log(mgf), t, 0, 9).removeO()
    moments = np.array([sp.Integer(1), sp.Integer(0), *mu], dtype=object)
    ours = moments_to_cumulants(moments)
    for n in range(2, 9):
        expected = sp.expand(series.coeff(t, n) * sp.factorial(n))
        assert sp.expand(ours[n] - expected) == 0, n


def test_kappa8_has_the_correct_not_the_published_coefficients():
    mu = sp.symbols("mu2:9")
    m2, m3, m4 = mu[0], mu[1], mu[2]
    k8 = sp.Poly(sp.expand(moments_to_cumulants(np.array([1, 0, *mu], dtype=object))[8]), *mu)
    assert k8.coeff_monomial(m2 * m3**2) == 560
    assert k8.coeff_monomial(m2**2 * m4) == 420
    assert k8.coeff_monomial(m2**4) == -630


def test_exponential_central_moments_give_factorials():
    # central moments of Exp(1) are the subfactorials !n; cumulants are (n-1)!
    subfactorial = [1, 0, 1, 2, 9, 44, 265, 1854, 14833]
    kappa = moments_to_cumulants(np.array(subfactorial, dtype=float))
    np.testing.assert_array_equal(kappa[2:], [factorial(n - 1) for n in range(2, 9)])
    # the published script's swapped κ8 would be off by 140(μ2²μ4 − μ2μ3²) = 700
    mu = subfactorial
    published = (
        mu[8] - 28 * mu[2] * mu[6] - 56 * mu[3] * mu[5] - 35 * mu[4] ** 2
        + 420 * mu[2] * mu[3] ** 2 + 560 * mu[2] ** 2 * mu[4] - 630 * mu[2] ** 4
    )  # fmt: skip
    assert published - kappa[8] == 700


def test_normal_central_moments_give_zero_higher_cumulants():
    sigma2 = 2.5
    mu = [1.0, 0.0] + [
        0.0 if p % 2 else float(np.prod(np.arange(p - 1, 0, -2))) * sigma2 ** (p // 2)
        for p in range(2, 9)
    ]
    kappa = moments_to_cumulants(np.array(mu))
    assert kappa[2] == pytest.approx(sigma2)
    np.testing.assert_allclose(kappa[3:], 0.0, atol=1e-9)


def test_raw_moments_give_the_same_cumulants_as_central():
    x = np.array([0.0, 1.0, 1.0, 3.0, 7.0, 2.0])
    raw = np.array([np.mean(x**p) for p in range(9)])
    central = np.array([np.mean((x - x.mean()) ** p) for p in range(9)])
    k_raw, k_central = moments_to_cumulants(raw), moments_to_cumulants(central)
    assert k_raw[1] == pytest.approx(x.mean())
    np.testing.assert_allclose(k_raw[2:], k_central[2:], rtol=1e-9)


# ------------------------------------------------------------------ exact values on data


@cache
def cumulants_of_raw_moments(order: int) -> tuple:
    """κ1..κn as polynomials in raw moments m1..mn: n!·[t^n] log(1 + Σ_p m_p t^p / p!)."""
    t = sp.Symbol("t")
    m = sp.symbols(f"m1:{order + 1}")
    mgf = 1 + sum(m[p - 1] * t**p / sp.factorial(p) for p in range(1, order + 1))
    series = sp.series(sp.log(mgf), t, 0, order + 1).removeO()
    return m, tuple(sp.expand(series.coeff(t, n) * sp.factorial(n)) for n in range(1, order + 1))


def exact_cumulants(values: list[int], order: int) -> list:
    """Cumulants of the empirical distribution of integers, in exact rational arithmetic."""
    m, kappa = cumulants_of_raw_moments(order)
    raw = {
        m[p - 1]: sp.Rational(sum(v**p for v in values), len(values)) for p in range(1, order + 1)
    }
    return [k.subs(raw) for k in kappa]


def test_cumulants_equal_exact_rational_cumulants():
    rng = np.random.default_rng(3)
    sizes = [5, 9, 2, 14]
    data = [rng.integers(-4, 6, size=(n, 2)) for n in sizes]
    X = np.concatenate(data).astype(float)
    index = np.repeat(np.arange(len(sizes)), sizes)
    raw = cumulants(X, 8, index, scaled=False)
    scaled = cumulants(X, 8, index)
    for s, block in enumerate(data):
        for j in range(2):
            exact = np.array(exact_cumulants(block[:, j].tolist(), 8), dtype=float)
            got = np.array([raw.block(p)[s, j] for p in range(1, 9)])
            np.testing.assert_allclose(got, exact, rtol=1e-9, atol=1e-9 * np.abs(exact).max())
            roots = np.sign(exact[1:]) * np.abs(exact[1:]) ** (1 / np.arange(2, 9))
            got_scaled = np.array([scaled.block(p)[s, j] for p in range(2, 9)])
            np.testing.assert_allclose(got_scaled, roots, rtol=1e-9, atol=1e-12)


def test_agrees_with_scipy_moments_up_to_order_4():
    rng = np.random.default_rng(0)
    X = rng.gamma(2.0, size=(600, 4)) * 3 - 5
    index = rng.integers(0, 6, size=600)
    table = cumulants(X, 4, index)
    for s in range(6):
        rows = X[index == s]
        m2, m3, m4 = (st.moment(rows, order=k, axis=0) for k in (2, 3, 4))
        np.testing.assert_allclose(table.block(1)[s], rows.mean(axis=0), rtol=1e-12)
        np.testing.assert_allclose(unscale(table.block(2)[s], 2), m2, rtol=1e-10)
        np.testing.assert_allclose(unscale(table.block(3)[s], 3), m3, rtol=1e-9)
        np.testing.assert_allclose(unscale(table.block(4)[s], 4), m4 - 3 * m2**2, rtol=1e-9)
        np.testing.assert_allclose(table.block(2)[s], np.sqrt(m2), rtol=1e-12)
        np.testing.assert_allclose(table.block(3)[s], np.cbrt(m3), rtol=1e-9)


# ------------------------------------------------------------------ known distributions, sampled


def test_normal_sample_has_vanishing_higher_cumulants():
    n_struct, n_atoms = 20, 20_000
    rng = np.random.default_rng(1)
    X = rng.normal(loc=3.0, scale=2.0, size=(n_struct * n_atoms, 2))
    index = np.repeat(np.arange(n_struct), n_atoms)
    k = cumulants(X, 8, index, scaled=False)
    np.testing.assert_allclose(k.block(1), 3.0, atol=6 * 2 / np.sqrt(n_atoms))
    np.testing.assert_allclose(k.block(2), 4.0, atol=6 * 4 * np.sqrt(2 / n_atoms))
    for p in range(3, 9):  # asymptotic sd of a sample cumulant of a normal: σ^p sqrt(p!/N)
        sd = 2.0**p * np.sqrt(factorial(p) / n_atoms)
        assert np.abs(k.block(p)).max() < 6 * sd, p
        assert abs(k.block(p).mean()) < 6 * sd / np.sqrt(k.block(p).size), p


def test_exponential_sample_has_factorial_cumulants():
    # each structure is an independent sample; the spread across structures calibrates the test
    n_struct, n_atoms = 40, 25_000
    rng = np.random.default_rng(2)
    X = rng.exponential(1.0, size=(n_struct * n_atoms, 1))
    k = cumulants(X, 5, np.repeat(np.arange(n_struct), n_atoms), scaled=False)
    for p in range(1, 6):
        values = k.block(p)[:, 0]
        stderr = values.std(ddof=1) / np.sqrt(n_struct)
        assert abs(values.mean() - factorial(p - 1)) < 5 * stderr, (p, values.mean(), stderr)
        assert stderr < 0.1 * factorial(p - 1)  # the test has resolution


# ------------------------------------------------------------------ invariances


def test_permuting_atoms_changes_nothing():
    rng = np.random.default_rng(4)
    feats = atom_features(rng.normal(size=(300, 5)), rng.integers(0, 12, size=300))
    perm = rng.permutation(len(feats))
    a = cumulants(feats)
    b = cumulants(feats.take(perm))
    order = pd.Index(b.structure_hash).get_indexer(a.structure_hash)
    np.testing.assert_allclose(b.X[order], a.X, rtol=1e-10, atol=1e-12)


def environment_features(atoms) -> np.ndarray:
    """A simple per-atom descriptor from the periodic neighbour list."""
    from ase.neighborlist import neighbor_list

    i, d = neighbor_list("id", atoms, 4.0)
    n = len(atoms)
    count = np.bincount(i, minlength=n)
    return np.column_stack(
        [
            atoms.numbers,
            count,
            np.bincount(i, weights=d, minlength=n) / count,
            np.bincount(i, weights=1 / d**2, minlength=n),
            np.bincount(i, weights=np.exp(-d), minlength=n),
        ]
    ).astype(float)


def test_supercell_has_the_cumulants_of_its_cell():
    from ase.build import bulk

    cell = bulk("NaCl", "rocksalt", a=5.64, cubic=True)
    cell.rattle(0.05, seed=0)  # break the symmetry so the features vary over atoms
    supercell = cell.repeat((2, 2, 2))
    Fc, Fs = environment_features(cell), environment_features(supercell)
    assert np.ptp(Fc, axis=0)[1:].min() > 0
    X = np.concatenate([Fc, Fs])
    index = np.repeat([0, 1], [len(Fc), len(Fs)])
    table = cumulants(X, 8, index)
    np.testing.assert_allclose(table.X[1], table.X[0], rtol=1e-8, atol=1e-10)
    assert np.abs(table.block(3)).max() > 0


def test_one_atom_structure_has_zero_higher_cumulants():
    X = np.array([[1.0, -2.0], [3.0, 4.0], [5.0, 0.5]])
    table = cumulants(X, 8, np.array([0, 1, 1]))
    np.testing.assert_array_equal(table.block(1)[0], [1.0, -2.0])
    np.testing.assert_array_equal(table.phi(8)[0, 2:], 0.0)
    np.testing.assert_allclose(table.block(2)[1], [1.0, 1.75])  # sqrt of population variance


# ------------------------------------------------------------------ streaming


@pytest.mark.parametrize("chunk", [1, 7, 64, 10_000])
def test_streaming_equals_in_memory(chunk):
    rng = np.random.default_rng(5)
    X = rng.normal(size=(500, 6)) * rng.uniform(0.1, 50, size=6) + rng.uniform(-100, 100, size=6)
    feats = atom_features(X, rng.integers(0, 23, size=500))
    feats = feats.take(rng.permutation(len(feats)))  # structures interleaved over chunks
    ref = cumulants(feats)
    parts = (
        feats.take(np.arange(i, min(i + chunk, len(feats)))) for i in range(0, len(feats), chunk)
    )
    got = cumulants_streaming(parts)
    order = pd.Index(got.structure_hash).get_indexer(ref.structure_hash)
    np.testing.assert_allclose(got.X[order], ref.X, rtol=1e-9, atol=1e-9)
    pd.testing.assert_frame_equal(
        got.structures.iloc[order].reset_index(drop=True), ref.structures, check_dtype=False
    )
    assert (got.model, got.layer, got.order) == ("m", "l", 8)


def test_streaming_over_arrays_and_keys():
    rng = np.random.default_rng(6)
    X = rng.exponential(size=(400, 3))
    keys = rng.choice(["a", "b", "c", "d"], size=400)
    acc = CumulantAccumulator(max_order=6)
    for lo in range(0, 400, 33):
        acc.update(X[lo : lo + 33], keys[lo : lo + 33])
    got = acc.result(scaled=False)
    ref = cumulants(X, 6, keys, scaled=False)
    order = pd.Index(got.structure_hash).get_indexer(ref.structure_hash)
    np.testing.assert_allclose(got.X[order], ref.X, rtol=1e-9)
    assert acc.n_structures == 4
    with pytest.raises(MetricInputError, match="features"):
        acc.update(X[:5, :2], keys[:5])


# ------------------------------------------------------------------ table, pools, errors


def test_atomfeatures_input_keeps_identity_and_layout():
    rng = np.random.default_rng(7)
    feats = atom_features(rng.normal(size=(90, 4)).astype(np.float32), rng.integers(0, 9, 90))
    table = cumulants(feats, max_order=3)
    assert table.X.shape == (9, 12) and table.X.dtype == np.float64
    assert table.n_base_features == 4
    np.testing.assert_array_equal(table.structure_hash, feats.structures["structure_hash"])
    assert table.structures["subset"].tolist() == feats.structures["subset"].tolist()
    assert (table.model, table.layer) == ("m", "l")
    np.testing.assert_array_equal(table.phi(2), table.X[:, :8])
    ref = cumulants(feats.X.astype(np.float64), 3, feats.structure_index)
    np.testing.assert_array_equal(table.X, ref.X)
    with pytest.raises(MetricInputError, match="order 4"):
        table.phi(4)


def test_mean_sum_max_pooling():
    rng = np.random.default_rng(8)
    X = rng.normal(size=(200, 3))
    index = rng.integers(0, 10, size=200)
    frame = pd.DataFrame(X).groupby(index)
    np.testing.assert_allclose(pool(X, "mean", index).X, frame.mean().to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(pool(X, "sum", index).X, frame.sum().to_numpy(), rtol=1e-12)
    np.testing.assert_array_equal(pool(X, "max", index).X, frame.max().to_numpy())
    np.testing.assert_allclose(pool(X, "mean", index).X, cumulants(X, 1, index).X, rtol=1e-12)
    with pytest.raises(MetricInputError, match="unknown pooling"):
        pool(X, "median", index)


def test_invalid_inputs_are_named():
    X = np.ones((4, 2))
    with pytest.raises(MetricInputError, match="NaN"):
        cumulants(np.array([[np.nan, 1.0]]), 2, np.array([0]))
    with pytest.raises(MetricInputError, match="structure_index"):
        cumulants(X)
    with pytest.raises(MetricInputError, match="one label per row"):
        cumulants(X, 2, np.array([0, 1]))
    with pytest.raises(MetricInputError, match="max_order"):
        cumulants(X, 0, np.zeros(4, dtype=int))
    with pytest.raises(MetricInputError, match="2-D"):
        cumulants(np.ones(4), 2, np.zeros(4, dtype=int))
