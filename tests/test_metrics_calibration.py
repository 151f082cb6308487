"""Calibration of the measures: permutation nulls, structure bootstraps, the width control."""

from __future__ import annotations

import itertools
from functools import partial

import numpy as np
import pytest
from scipy.stats import kstest

from mlipspace.errors import MetricInputError
from mlipspace.metrics import (
    MEASURE_INFO,
    MEASURES,
    cka,
    gfrd,
    gfre,
    higher_is_similar,
    mutual_knn,
    permutation_test,
    pointwise_mutual_knn,
    random_features,
    structure_bootstrap,
)
from mlipspace.metrics import similarity as sim
from mlipspace.metrics.calibration import (
    group_rows,
    percentile_interval,
    permutation_indices,
    permutation_p_value,
    structure_resamples,
)
from mlipspace.metrics.registry import measure_function, measure_name


def _rotation(d, seed):
    return np.linalg.qr(np.random.default_rng(seed).standard_normal((d, d)))[0]


def _clustered(n_structures, atoms, d, rng, spread=0.3):
    """Atoms that share a random per-structure offset (atoms of a structure are not independent)."""
    offsets = rng.standard_normal((n_structures, d))
    X = np.repeat(offsets, atoms, axis=0) + spread * rng.standard_normal((n_structures * atoms, d))
    return X, np.repeat(np.arange(n_structures), atoms)


# ---------------------------------------------------------------------------------------------
# registry: one direction and one name per measure
# ---------------------------------------------------------------------------------------------


def test_every_measure_has_a_direction_label_and_preprocessing():
    assert set(MEASURE_INFO) == set(MEASURES)
    lower = {m for m in MEASURES if not higher_is_similar(m)}
    assert lower == {"gfre", "gfrd", "lfre", "procrustes"}
    assert MEASURE_INFO["mknn"].label == "mutual kNN (k=10, cosine)"
    assert MEASURE_INFO["cka"].label == "linear CKA (biased HSIC)"
    assert "unbiased" in MEASURE_INFO["cka_unbiased"].label
    assert "geomspace(1e-09, 0.9, 20)" in MEASURE_INFO["gfre"].preprocessing
    assert "L2-normalised" in MEASURE_INFO["cka"].preprocessing
    with pytest.raises(MetricInputError, match="unknown measure"):
        higher_is_similar("bogus")


def test_measure_name_of_library_functions():
    assert measure_name(gfre) == "gfre"
    assert measure_name(partial(sim.cka, kernel="rbf")) == "cka"
    assert measure_name(lambda a, b: 0.0) is None


# ---------------------------------------------------------------------------------------------
# permutation test
# ---------------------------------------------------------------------------------------------


def test_p_value_is_uniform_on_independent_data():
    rng = np.random.default_rng(0)
    ps = [
        permutation_test(
            "cka",
            rng.standard_normal((40, 6)),
            rng.standard_normal((40, 4)),
            n_permutations=99,
            random_state=i,
        ).p_value
        for i in range(60)
    ]
    assert kstest(ps, "uniform").pvalue > 0.05
    assert np.mean(np.array(ps) <= 0.05) < 0.15


@pytest.mark.parametrize("measure", ["cka", "mknn", "gfre", "procrustes", "lfre"])
def test_independent_gaussians_do_not_beat_their_null(measure):
    rng = np.random.default_rng(1)
    X, Y = rng.standard_normal((120, 6)), rng.standard_normal((120, 5))
    res = permutation_test(measure, X, Y, n_permutations=49, random_state=0)
    assert res.p_value > 0.05 and not res.beats_null
    assert res.n_permutations == 49 and res.null.shape == (49,)
    assert res.null_mean == pytest.approx(res.null.mean())


@pytest.mark.parametrize("measure", MEASURES)
def test_rotated_copy_gives_the_smallest_p_value(measure):
    rng = np.random.default_rng(2)
    X = rng.standard_normal((80, 12))
    res = permutation_test(measure, X, X @ _rotation(12, 3), n_permutations=39, random_state=0)
    assert res.p_value == pytest.approx(1 / 40)
    assert res.higher_is_similar == higher_is_similar(measure)
    # the score is beyond every null value, in the measure's own direction
    if res.higher_is_similar:
        assert res.score > res.null.max()
    else:
        assert res.score < res.null.min()


def test_gfre_null_shares_the_source_factorisation_and_equals_refitting():
    rng = np.random.default_rng(11)
    X = rng.standard_normal((70, 9))
    Y = np.tanh(X[:, :4]) + 0.3 * rng.standard_normal((70, 4))
    fast = permutation_test("gfre", X, Y, n_permutations=20, random_state=2)
    slow = permutation_test(
        lambda a, b: gfre(a, b), X, Y, n_permutations=20, random_state=2, higher_is_similar=False
    )
    np.testing.assert_allclose(fast.null, slow.null, rtol=1e-10)
    assert fast.p_value == slow.p_value == pytest.approx(1 / 21)


def test_direction_is_read_from_the_measure_and_required_for_custom_callables():
    rng = np.random.default_rng(4)
    X = rng.standard_normal((60, 5))
    Y = X[:, :3] + 0.8 * rng.standard_normal((60, 3))
    up = permutation_test(cka, X, Y, n_permutations=99, random_state=5)
    down = permutation_test(
        lambda a, b: -cka(a, b), X, Y, n_permutations=99, random_state=5, higher_is_similar=False
    )
    assert up.p_value == pytest.approx(down.p_value)
    assert up.p_value < 0.05
    # the same data read in the wrong direction is "worse than chance"
    wrong = permutation_test(cka, X, Y, n_permutations=99, random_state=5, higher_is_similar=False)
    assert wrong.p_value > 0.9
    with pytest.raises(MetricInputError, match="higher_is_similar"):
        permutation_test(lambda a, b: 0.0, X, Y, n_permutations=9)


def _every_arrangement(groups):
    """Every permutation of whole units (rows of a structure stay together), as row orders."""
    blocks = group_rows(groups)
    return [
        np.concatenate([blocks[b] for b in order])
        for order in itertools.permutations(range(len(blocks)))
    ]


# tiny inputs whose null can be enumerated: 4 structures of 3 atoms (4! = 24 arrangements),
# or 6 single atoms (6! = 720); each seeded draw is one of them
ENUMERABLE = {"structures": np.repeat(np.arange(4), 3), "atoms": None}


@pytest.mark.parametrize("units", sorted(ENUMERABLE))
@pytest.mark.parametrize("related", [True, False], ids=["related", "unrelated"])
@pytest.mark.parametrize("measure", ["gfrd", "procrustes", "cka", "rsa"])
def test_p_value_is_one_plus_as_extreme_over_one_plus_n_in_the_measures_direction(
    measure, related, units
):
    groups = ENUMERABLE[units]
    n = 12 if groups is not None else 6
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, 3))
    Y = rng.standard_normal((n, 4))
    if related:  # an isometric embedding of X, slightly noisy: GFRD and Procrustes near 0
        Y = X @ _rotation(4, 5)[:3] + 0.05 * Y
    fn = measure_function(measure)
    # the measure on every arrangement of Y's units, computed here directly
    value = {
        tuple(p): fn(X, Y[p])
        for p in _every_arrangement(np.arange(n) if groups is None else groups)
    }
    score = value[tuple(range(n))]
    res = permutation_test(measure, X, Y, n_permutations=29, random_state=1, groups=groups)
    perms, movable = permutation_indices(n, 29, random_state=1, groups=groups)
    null = np.array([value[tuple(p)] for p in perms])
    np.testing.assert_allclose(res.null, null, rtol=1e-12)
    assert res.score == score and movable == 1.0
    # p = (1 + #{null at least as extreme}) / (n + 1), "as extreme" in the measure's direction:
    # >= where higher is more similar (CKA, RSA), <= for an error or distance (GFRD, Procrustes)
    higher = {"gfrd": False, "procrustes": False, "cka": True, "rsa": True}[measure]
    assert res.higher_is_similar is higher
    as_extreme = null >= score if higher else null <= score
    assert res.p_value == (1 + np.count_nonzero(as_extreme)) / 30
    reversed_p = (1 + np.count_nonzero(null <= score if higher else null >= score)) / 30
    assert reversed_p != res.p_value  # the direction decides it on these data
    if related and groups is not None:
        # the true pairing beats every other arrangement: only the draws that leave every
        # unit in place (ties with the score itself) count, whatever the direction's sign (on
        # 6 atoms GFRD fits 3 features on 3 training rows and need not prefer the true pairing)
        others = [v for key, v in value.items() if key != tuple(range(n))]
        assert score > max(others) if higher else score < min(others)
        in_place = sum(np.array_equal(p, np.arange(n)) for p in perms)
        assert res.p_value == (1 + in_place) / 30


def test_p_value_direction_of_a_function_is_that_of_its_name():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((12, 3))
    Y = rng.standard_normal((12, 4))
    groups = ENUMERABLE["structures"]
    for name, fn in (("gfrd", gfrd), ("cka", cka)):
        by_name = permutation_test(name, X, Y, n_permutations=29, random_state=4, groups=groups)
        by_fn = permutation_test(fn, X, Y, n_permutations=29, random_state=4, groups=groups)
        assert by_fn.higher_is_similar == by_name.higher_is_similar == (name == "cka")
        assert by_fn.p_value == by_name.p_value


def test_p_value_counts_ties_and_has_its_floor():
    assert permutation_p_value(1.0, [0.1, 0.2, 0.3], True) == 0.25
    assert permutation_p_value(1.0, [1.0, 1.0 - 1e-14, 0.3], True) == 0.75
    assert permutation_p_value(0.1, [0.1, 0.5, 0.9], False) == 0.5


def test_structure_permutations_move_whole_structures_of_equal_size():
    groups = np.array(["a"] * 3 + ["b"] * 2 + ["c"] * 3 + ["d"] * 3 + ["e"] * 2 + ["f"] * 4)
    perms, movable = permutation_indices(len(groups), 200, random_state=0, groups=groups)
    assert movable == pytest.approx(13 / 17)  # "f" is the only 4-atom structure
    blocks = {g: np.flatnonzero(groups == g) for g in "abcdef"}
    seen = set()
    for p in perms:
        assert sorted(p) == list(range(len(groups)))
        for rows in blocks.values():
            # a structure's rows receive, in order, all rows of one structure of its size
            donor = [g for g, r in blocks.items() if len(r) == len(rows) and set(p[rows]) == set(r)]
            assert len(donor) == 1 and list(p[rows]) == list(blocks[donor[0]])
            seen.add((tuple(rows), donor[0]))
        assert list(p[blocks["f"]]) == list(blocks["f"])
    assert len(seen) == 3 * 3 + 2 * 2 + 1  # every exchange within a size class happens
    assert [len(r) for r in group_rows(groups)] == [3, 2, 3, 3, 2, 4]


def test_structure_null_keeps_clustering_that_an_atom_null_counts_as_signal():
    # X and Y each cluster by structure, with unrelated cluster positions: an atom permutation
    # breaks the clustering of Y and calls the pair similar; a structure permutation keeps it.
    rng = np.random.default_rng(6)
    X, groups = _clustered(30, 6, 5, rng)
    Y, _ = _clustered(30, 6, 4, rng)
    atoms = permutation_test("cka", X, Y, n_permutations=99, random_state=0)
    structures = permutation_test("cka", X, Y, n_permutations=99, random_state=0, groups=groups)
    assert atoms.p_value == pytest.approx(0.01)
    assert structures.p_value > 0.05 and structures.unit == "structure"
    assert structures.null_mean > atoms.null_mean + 5 * atoms.null_std


def test_permutation_input_errors():
    X = np.zeros((10, 2))
    with pytest.raises(MetricInputError, match="n_permutations"):
        permutation_test("cka", X, X, n_permutations=0)
    with pytest.raises(MetricInputError, match="groups"):
        permutation_test("cka", X, X, n_permutations=5, groups=[0, 1])
    with pytest.raises(MetricInputError, match="same rows"):
        permutation_test("cka", X, X[:5], n_permutations=5)


# ---------------------------------------------------------------------------------------------
# structure bootstrap
# ---------------------------------------------------------------------------------------------


def test_pointwise_mutual_knn_averages_to_mutual_knn():
    rng = np.random.default_rng(7)
    X, Y = rng.standard_normal((90, 6)), rng.standard_normal((90, 3))
    v = pointwise_mutual_knn(X, Y, k=7)
    assert v.shape == (90,) and set(np.unique(v * 7)) <= set(range(8))
    assert v.mean() == pytest.approx(mutual_knn(X, Y, k=7), rel=1e-14)


def test_structure_resamples_take_whole_structures():
    groups = np.repeat(np.arange(10), [1, 2, 3, 4, 1, 2, 3, 4, 5, 5])
    rng = np.random.default_rng(0)
    for rows in structure_resamples(groups, 50, rng):
        labels, counts = np.unique(groups[rows], return_counts=True)
        sizes = np.bincount(groups)
        assert np.all(counts % sizes[labels] == 0)  # each draw brings all of a structure's atoms
    for rows in structure_resamples(groups, 20, rng, half=True):
        assert len(np.unique(rows)) == len(rows)
        assert len(np.unique(groups[rows])) == 5


@pytest.mark.parametrize("measure", ["cka", "gfre", "mknn", "cknna", "procrustes"])
def test_bootstrap_interval_covers_the_in_memory_value(measure):
    rng = np.random.default_rng(8)
    X, groups = _clustered(40, 5, 6, rng)
    Y = X[:, :4] @ rng.standard_normal((4, 4)) + 0.5 * rng.standard_normal((len(X), 4))
    res = structure_bootstrap(measure, X, Y, groups, n_bootstrap=200, random_state=0)
    assert res.score == pytest.approx(measure_function(measure)(X, Y), rel=1e-12)
    assert res.ci_low <= res.score <= res.ci_high
    assert res.ci_low < res.ci_high and res.std > 0 and res.unit == "structure"


def test_structure_bootstrap_is_wider_than_an_atom_bootstrap_on_clustered_atoms():
    rng = np.random.default_rng(9)
    X, groups = _clustered(30, 8, 5, rng, spread=0.5)
    Y = X @ rng.standard_normal((5, 3)) + rng.standard_normal((len(X), 3))
    by_structure = structure_bootstrap("cka", X, Y, groups, n_bootstrap=300, random_state=0)
    by_atom = structure_bootstrap("cka", X, Y, np.arange(len(X)), n_bootstrap=300, random_state=0)
    assert by_structure.std > 1.5 * by_atom.std


def test_bootstrap_resample_too_small_for_the_measure_is_named():
    # 14 rows in 7 structures: CKNNA (k=10) runs on all of them, not on half of the structures
    rng = np.random.default_rng(12)
    X, groups = _clustered(7, 2, 5, rng)
    Y = X + 0.1 * rng.standard_normal(X.shape)
    assert np.isfinite(measure_function("cknna")(X, Y))
    with pytest.raises(
        MetricInputError,
        match=r"^on a bootstrap resample \(half of the structures: 8 of 14 rows\): CKNNA with "
        r"k=10 needs at least 11 samples",
    ):
        structure_bootstrap("cknna", X, Y, groups, n_bootstrap=5)


def test_common_width_is_the_narrowest_or_at_most_it():
    from mlipspace.metrics.calibration import common_width

    widths = {"a": 24, "b": 6, "c": 12}
    assert common_width(widths) == 6 and common_width(widths, 4) == 4
    assert common_width([24, 6, 12], 6) == 6
    with pytest.raises(MetricInputError, match=r"exceeds the width of b \(6\)"):
        common_width(widths, 7)
    with pytest.raises(MetricInputError, match="positive integer"):
        common_width(widths, 0)


def test_percentile_interval():
    draws = np.arange(101.0)
    assert percentile_interval(draws, 0.9) == pytest.approx((5.0, 95.0))
    with pytest.raises(MetricInputError, match="confidence"):
        percentile_interval(draws, 1.5)


# ---------------------------------------------------------------------------------------------
# width control
# ---------------------------------------------------------------------------------------------


def test_wide_random_source_scores_as_its_random_baseline():
    # a "model" that is in fact 256 random columns: its GFRE and CKA to a 6-wide target sit on
    # the random-feature baseline of its width, while an informative 6-wide source is far below
    rng = np.random.default_rng(10)
    n = 400
    latent = rng.standard_normal((n, 6))
    target = np.tanh(latent @ rng.standard_normal((6, 6)))
    wide = rng.standard_normal((n, 256))
    train, test = np.arange(300), np.arange(300, n)
    baseline = random_features(n, 256, random_state=1)
    g_wide = gfre(wide, target, train_idx=train, test_idx=test)
    g_base = gfre(baseline, target, train_idx=train, test_idx=test)
    g_informative = gfre(latent, target, train_idx=train, test_idx=test)
    assert abs(g_wide - g_base) < 0.05
    assert g_informative < g_base - 0.5
    c_wide, c_base = cka(wide[test], target[test]), cka(baseline[test], target[test])
    assert c_base > 0.1  # width alone inflates biased CKA on 100 rows...
    assert abs(c_wide - c_base) < 0.1  # ...and the baseline shows by how much


def test_random_features_are_seeded_and_checked():
    a = random_features(5, 3, random_state=0)
    assert a.shape == (5, 3) and np.array_equal(a, random_features(5, 3, random_state=0))
    with pytest.raises(MetricInputError):
        random_features(5, 0)


def test_percentile_uses_confidence_level():
    lo, hi = percentile_interval(np.linspace(0, 1, 1001), 0.5)
    assert lo == pytest.approx(0.25) and hi == pytest.approx(0.75)


def test_describe_measure_names_measure_split_and_calibration():
    import pandas as pd

    from mlipspace.metrics.registry import describe_measure

    table = pd.DataFrame(
        {
            "measure": ["mknn", "gfre"],
            "n_train": [90, 90],
            "n_test": [10, 10],
            "seed": [3, 3],
            "common_dim": [None, None],
            "n_bootstrap": [50, 50],
            "confidence": [0.9, 0.9],
            "bootstrap_unit": ["structure", "structure"],
            "n_permutations": [99, 99],
        }
    )
    text = describe_measure(table, "mknn")
    assert text.startswith("mutual kNN (k=10, cosine); rows L2-normalised")
    assert "90 training / 10 test atoms" in text and "seed 3" in text
    assert "90% interval from 50 resamples of test structures" in text
    assert "99 permutations" in text and "width" not in text
    assert "geomspace" in describe_measure(table, "gfre")
