"""compare(): plumbing on a small FeatureStore with synthetic per-atom features."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mlipspace
from mlipspace.errors import MetricInputError
from mlipspace.metrics import (
    compare_tables,
    effective_rank,
    gfre,
    stratified_split,
)
from mlipspace.metrics.compare import compare
from mlipspace.metrics.compare_calibration import below_random_baseline


def _descriptor(atoms, dim, seed):
    """A smooth per-atom function of the environment (distances to neighbours), random mixing."""
    rng = np.random.default_rng(seed)
    centres = np.linspace(0.8, 5.0, 12)
    d = atoms.get_all_distances(mic=any(atoms.pbc))
    np.fill_diagonal(d, np.inf)
    radial = np.exp(-((d[:, :, None] - centres) ** 2) / 0.3).sum(axis=1)  # (n_atoms, 12)
    z = np.eye(100)[atoms.numbers][:, :60] @ rng.standard_normal((60, 4))
    base = np.hstack([radial, z])
    return np.tanh(base @ rng.standard_normal((base.shape[1], dim)) / 4)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    structures = mlipspace.demo_structures("small")
    fs = mlipspace.FeatureStore(tmp_path_factory.mktemp("store") / "features")
    for name, dim, seed in (("wide", 24, 0), ("narrow", 8, 1), ("mid", 12, 2)):
        fs.write(name, "ll", structures, [_descriptor(a, dim, seed) for a in structures])
    rng = np.random.default_rng(7)
    # "noise" misses the last 5 structures: compare must use the atoms every model shares
    fs.write(
        "noise", "ll", structures[:-5], [rng.standard_normal((len(a), 6)) for a in structures[:-5]]
    )
    return fs, structures


def test_compare_table(store):
    fs, structures = store
    df = compare(
        fs,
        ["wide", "narrow", "noise"],
        measures=("gfre", "lfre", "cka", "mknn"),
        n_test=300,
        n_bootstrap=20,
    )
    assert isinstance(df, pd.DataFrame)
    assert len(df) == 4 * 9 - 3  # no LFRE diagonal
    assert not (df[df.measure == "lfre"].source == df[df.measure == "lfre"].target).any()
    shared = sum(len(a) for a in structures[:-5])
    assert set(df["n_train"] + df["n_test"]) == {shared}
    assert set(df["n_test"]) == {300}
    assert df["value"].notna().all() and df["uncertainty"].notna().all()
    g = df[df.measure == "gfre"].set_index(["source", "target"])["value"]
    # self-reconstruction is exact; the 24-wide mixture reconstructs the 8-wide one better
    assert g[("wide", "wide")] < 1e-6
    assert g[("wide", "narrow")] < g[("narrow", "wide")]
    # noise neither reconstructs nor is reconstructed
    assert g[("noise", "wide")] > 0.8 and g[("wide", "noise")] > 0.8
    # symmetric measures are symmetric, asymmetric ones are not forced to be
    c = df[df.measure == "cka"].set_index(["source", "target"])["value"]
    assert c[("wide", "narrow")] == c[("narrow", "wide")]
    lf = df[df.measure == "lfre"]
    assert (lf["n_local_points"] == np.minimum(lf["dim_source"], lf["dim_target"])).all()
    dims = df.drop_duplicates("source").set_index("source")
    assert dims.loc["wide", "dim_source"] == 24
    assert 1 <= dims.loc["narrow", "effective_rank_source"] <= 8


def test_compare_matches_direct_measure_and_seed_changes_split(store):
    fs, _ = store
    tables = fs.aligned([("wide", "ll"), ("narrow", "ll")])
    by_name = {k[0]: v for k, v in tables.items()}
    df = compare_tables(by_name, measures=("gfre",), n_test=200, random_state=3)
    train, test = stratified_split(by_name["wide"].subset, n_test=200, random_state=3)
    direct = gfre(by_name["wide"].X, by_name["narrow"].X, train_idx=train, test_idx=test)
    got = df.set_index(["source", "target"]).loc[("wide", "narrow"), "value"]
    assert got == pytest.approx(direct, rel=1e-12)
    other = compare_tables(by_name, measures=("gfre",), n_test=200, random_state=4)
    assert not np.allclose(df["value"], other["value"])
    assert set(df["seed"]) == {3}
    with pytest.warns(DeprecationWarning, match=r"compare_tables\(seed=\.\.\.\) is deprecated"):
        old = compare_tables(by_name, measures=("gfre",), n_test=200, seed=3)
    pd.testing.assert_frame_equal(old, df)


def test_common_dim_control(store):
    fs, _ = store
    full = compare(fs, ["wide", "narrow"], measures=("gfre",), n_test=200)
    cut = compare(fs, ["wide", "narrow"], measures=("gfre",), n_test=200, common_dim=4)
    assert set(cut["dim_source"]) == {4}
    g_full = full.set_index(["source", "target"])["value"]
    g_cut = cut.set_index(["source", "target"])["value"]
    assert g_cut[("wide", "narrow")] > g_full[("wide", "narrow")]


def test_stratified_split_proportions():
    labels = np.array(["a"] * 800 + ["b"] * 200 + ["c"])
    train, test = stratified_split(labels, n_test=100, random_state=0)
    assert len(test) == 100 and len(train) == 901
    assert np.intersect1d(train, test).size == 0
    assert np.sum(labels[test] == "a") == 80
    with pytest.raises(MetricInputError):
        stratified_split(labels, n_test=1000)
    with pytest.warns(DeprecationWarning, match="use random_state="):
        old_train, old_test = stratified_split(labels, n_test=100, seed=0)
    assert np.array_equal(old_test, test) and np.array_equal(old_train, train)


def test_effective_rank():
    rng = np.random.default_rng(0)
    assert effective_rank(rng.standard_normal((20000, 5))) == pytest.approx(5, rel=0.01)
    line = np.outer(rng.standard_normal(100), rng.standard_normal(7))
    assert effective_rank(line) == pytest.approx(1, abs=1e-6)


def test_unknown_measure(store):
    fs, _ = store
    with pytest.raises(MetricInputError, match="unknown measures"):
        compare(fs, ["wide"], measures=("gfre", "bogus"))


def _compare_cli(fs, out, models, *options):
    """``mlipspace compare`` of gfre and mknn on 100 test atoms, run in-process."""
    from typer.testing import CliRunner

    from mlipspace.cli import _import_commands
    from mlipspace.cli.app import app

    _import_commands()  # with one command only, typer would treat the app as that command
    common = ["--measures", "gfre,mknn", "--out", str(out), "--n-test", "100"]
    return CliRunner().invoke(
        app, ["compare", "--store", str(fs.path), "--models", models, *common, *options]
    )


def test_cli(store, tmp_path):
    fs, _ = store
    result = _compare_cli(fs, tmp_path / "out", "wide,narrow", "--bootstrap", "5")
    assert result.exit_code == 0, result.output
    df = pd.read_csv(tmp_path / "out" / "compare.csv")
    assert len(df) == 8 and set(df["n_bootstrap"]) == {5}


def test_feature_outlier_structures_are_left_out_and_named(caplog):
    from mlipspace.features import drop_outlier_structures, outlier_structures
    from mlipspace.featurization import features_table

    rng = np.random.default_rng(0)
    structures = mlipspace.demo_structures("small")[:30]
    tables = {}
    for name in ("a", "b"):
        store_feats = [rng.normal(size=(len(s), 6)) for s in structures]
        if name == "b":  # one structure far outside the model's range, as SevenNet on F at 3 Å³
            store_feats[4] *= 1e6
        tables[name] = features_table(structures, store_feats, name, "ll")
    report = outlier_structures(tables["b"])
    assert report["structure_hash"].tolist() == [structures[4].info["structure_hash"]]
    assert report.loc[0, "ratio"] > 1e5
    kept, dropped = drop_outlier_structures(tables)
    assert set(dropped["model"]) == {"b"}
    assert all(structures[4].info["structure_hash"] not in t.structure_hash for t in kept.values())
    assert len(kept["a"]) == len(tables["a"]) - len(structures[4])
    with caplog.at_level("WARNING"):
        df = compare_tables(tables, measures=("gfre",), n_test=20)
    assert "feature-outlier" in caplog.text and structures[4].info["source"] in caplog.text
    assert df.attrs["excluded_structures"][0]["model"] == "b"
    kept_all = compare_tables(tables, measures=("gfre",), n_test=20, outlier_factor=None)
    assert kept_all.attrs["excluded_structures"] == []


# ---------------------------------------------------------------------------------------------
# calibration: permutation null, structure bootstrap, width control, measure names
# ---------------------------------------------------------------------------------------------


def test_defaults_add_only_the_measure_names(store):
    fs, _ = store
    df = compare(fs, ["wide", "narrow"], measures=("gfre", "mknn", "cka"), n_test=100)
    from mlipspace.metrics.compare import COLUMNS

    assert list(df.columns) == [*COLUMNS, "measure_label", "preprocessing"]
    labels = df.drop_duplicates("measure").set_index("measure")["measure_label"]
    assert labels["mknn"] == "mutual kNN (k=10, cosine)"
    assert labels["cka"] == "linear CKA (biased HSIC)"
    assert df["uncertainty"].isna().all()


def test_compare_permutation_null(store):
    fs, _ = store
    df = compare(
        fs,
        ["wide", "narrow", "noise"],
        measures=("gfre", "cka", "mknn"),
        n_test=200,
        n_permutations=19,
    )
    assert set(df["n_permutations"]) == {19} and set(df["null_unit"]) == {"structure"}
    assert (df["null_movable"] > 0.5).all()  # the small demo set has many equal-size structures
    cell = df.set_index(["measure", "source", "target"])
    # two descriptors of the same environments beat their null in every measure...
    for measure in ("gfre", "cka", "mknn"):
        assert cell.loc[(measure, "wide", "narrow"), "p_value"] == pytest.approx(1 / 20)
    # ...random features do not
    assert cell.loc[("gfre", "noise", "wide"), "p_value"] > 0.05
    assert cell.loc[("cka", "noise", "wide"), "p_value"] > 0.05
    # an error's null lies above the score (lower is better), a similarity's below
    assert (
        cell.loc[("gfre", "wide", "narrow"), "null_mean"]
        > cell.loc[("gfre", "wide", "narrow"), "value"]
    )
    assert (
        cell.loc[("cka", "wide", "narrow"), "null_mean"]
        < cell.loc[("cka", "wide", "narrow"), "value"]
    )
    # a symmetric measure has one null per pair
    assert (
        cell.loc[("cka", "wide", "noise"), "p_value"]
        == cell.loc[("cka", "noise", "wide"), "p_value"]
    )
    # the null of a GFRE cell equals refitting on the permuted target
    from mlipspace.metrics.calibration import permutation_indices

    tables = {
        k[0]: v for k, v in fs.aligned([(m, "ll") for m in ("wide", "narrow", "noise")]).items()
    }
    train, test = stratified_split(tables["wide"].subset, n_test=200, random_state=0)
    perms, _ = permutation_indices(
        len(train) + len(test),
        19,
        np.random.SeedSequence(0).spawn(3)[0],
        tables["wide"].structure_hash,
    )
    null = [
        gfre(tables["wide"].X, tables["narrow"].X[p], train_idx=train, test_idx=test) for p in perms
    ]
    assert cell.loc[("gfre", "wide", "narrow"), "null_mean"] == pytest.approx(np.mean(null))


def test_compare_p_values_follow_each_measures_direction(store):
    # every cell's p-value is (1 + #{null at least as extreme}) / (1 + N), with the null
    # recomputed here on the permuted target: <= for GFRD (lower is better), >= for CKA
    from mlipspace.metrics import cka, gfrd
    from mlipspace.metrics.calibration import permutation_indices

    fs, _ = store
    names = ["narrow", "noise"]
    df = compare(fs, names, measures=("gfrd", "cka"), n_test=150, n_permutations=19, random_state=2)
    tables = {k[0]: v for k, v in fs.aligned([(m, "ll") for m in names]).items()}
    A, B = tables["narrow"].X, tables["noise"].X
    train, test = stratified_split(tables["narrow"].subset, n_test=150, random_state=2)
    perms, _ = permutation_indices(
        len(A), 19, np.random.SeedSequence(2).spawn(3)[0], tables["narrow"].structure_hash
    )
    cell = df.set_index(["measure", "source", "target"])
    nulls = {
        ("gfrd", "narrow", "noise"): [gfrd(A, B[p], train, test) for p in perms],
        ("gfrd", "noise", "narrow"): [gfrd(B, A[p], train, test) for p in perms],
        ("cka", "narrow", "noise"): [cka(A[test], B[p[test]]) for p in perms],
    }
    for key, null in nulls.items():
        null, value = np.array(null), cell.loc[key, "value"]
        np.testing.assert_allclose(cell.loc[key, "null_mean"], null.mean(), rtol=1e-10)
        as_extreme = null >= value if key[0] == "cka" else null <= value
        reverse = null <= value if key[0] == "cka" else null >= value
        assert cell.loc[key, "p_value"] == (1 + np.count_nonzero(as_extreme)) / 20, key
        assert np.count_nonzero(as_extreme) != np.count_nonzero(reverse), key


def test_compare_structure_bootstrap_interval(store):
    fs, _ = store
    df = compare(
        fs,
        ["wide", "narrow", "noise"],
        measures=("gfre", "lfre", "cka", "mknn", "cknna"),
        n_test=200,
        n_bootstrap=40,
        confidence=0.9,
    )
    assert set(df["bootstrap_unit"]) == {"structure"} and set(df["confidence"]) == {0.9}
    off = df[df.source != df.target]
    assert (off["ci_low"] <= off["value"]).all() and (off["value"] <= off["ci_high"]).all()
    assert np.isfinite(off["bootstrap_bias"]).all()
    assert (off["ci_high"] > off["ci_low"]).all() and (off["uncertainty"] > 0).all()
    with pytest.raises(MetricInputError, match="confidence"):
        compare(fs, ["wide"], measures=("cka",), n_test=100, n_bootstrap=5, confidence=95)


def test_compare_width_control(store):
    fs, _ = store
    names = ["wide", "narrow", "noise"]
    df = compare(fs, names, measures=("gfre", "cka"), n_test=200, width_control=True)
    assert set(df["common_width"]) == {6}  # the narrowest model
    # the value at common width is the comparison run on 6 principal components
    cut = compare(fs, names, measures=("gfre", "cka"), n_test=200, common_dim=6)
    key = ["measure", "source", "target"]
    merged = df.merge(cut[[*key, "value"]], on=key, suffixes=("", "_cut"))
    assert np.allclose(merged["value_common_width"], merged["value_cut"], rtol=1e-10)
    cell = df.set_index(key)
    # a random source of the wide model's width reconstructs nothing; the wide model does
    assert cell.loc[("gfre", "wide", "narrow"), "random_baseline"] > 0.9
    assert cell.loc[("gfre", "wide", "narrow"), "value"] < 0.5
    # the random noise "model" sits on its own baseline
    assert cell.loc[("gfre", "noise", "wide"), "value"] == pytest.approx(
        cell.loc[("gfre", "noise", "wide"), "random_baseline"], abs=0.05
    )
    # a symmetric measure's baseline replaces the row model: one per direction
    assert (
        cell.loc[("cka", "wide", "narrow"), "random_baseline"]
        != cell.loc[("cka", "narrow", "wide"), "random_baseline"]
    )
    explicit = compare(fs, names, measures=("gfre",), n_test=200, common_width=4)
    assert set(explicit["common_width"]) == {4}


def test_every_measure_gets_its_null_interval_and_width_control(store):
    # SVCCA (cca_dim=10) needs two models of width 10 or more
    from mlipspace.metrics import MEASURES

    fs, _ = store
    names = ["wide", "mid"]
    kwargs = dict(measures=MEASURES, n_test=150, random_state=1)
    df = compare(fs, names, n_permutations=19, n_bootstrap=20, width_control=True, **kwargs)
    assert set(df["measure"]) == set(MEASURES)
    assert set(df["bootstrap_unit"]) == {"structure"} and set(df["null_unit"]) == {"structure"}
    assert set(df["common_width"]) == {12}
    calibration = ["uncertainty", "ci_low", "ci_high", "bootstrap_bias", "null_mean"]
    calibration += ["null_std", "p_value", "random_baseline", "value_common_width"]
    assert np.isfinite(df[calibration].to_numpy(dtype=float)).all()
    off = df[df.source != df.target]
    # two descriptors of the same environments beat their null in every measure
    assert (off["p_value"] == 1 / 20).all(), off[["measure", "source", "p_value"]]
    assert (off["ci_low"] <= off["value"]).all() and (off["value"] <= off["ci_high"]).all()
    assert (off["uncertainty"] > 0).all()
    # a symmetric measure has one interval and one null per pair, a baseline per direction
    sym = off[~off.measure.isin(["gfre", "gfrd", "lfre"])].set_index(["measure", "source"])
    for measure in sym.index.levels[0]:
        a, b = sym.loc[(measure, "wide")], sym.loc[(measure, "mid")]
        assert a["uncertainty"] == b["uncertainty"] and a["p_value"] == b["p_value"]
        assert a["random_baseline"] != b["random_baseline"], measure
    # the value at common width is the comparison run on that many principal components
    cut = compare(fs, names, common_dim=12, **kwargs)
    key = ["measure", "source", "target"]
    merged = df.merge(cut[[*key, "value"]], on=key, suffixes=("", "_cut"))
    assert len(merged) == len(df)
    np.testing.assert_allclose(merged["value_common_width"], merged["value_cut"], rtol=1e-9)


def test_cells_below_their_random_baseline_follow_the_measures_direction():
    table = pd.DataFrame(
        {
            "measure": ["gfre", "gfre", "cka", "cka", "procrustes", "cka"],
            "source": ["a", "b", "a", "b", "a", "a"],
            "target": ["b", "a", "b", "a", "b", "a"],
            "value": [0.5, 0.99, 0.3, 0.1, 1.2, 1.0],
            "random_baseline": [0.98, 0.97, 0.2, 0.2, 1.1, 1.0],
        }
    )
    # an error must lie below its baseline, a similarity above; the diagonal is not a cell
    assert below_random_baseline(table) == [
        "gfre: b → a (0.99; random source 0.97)",
        "cka: b → a (0.1; random source 0.2)",
        "procrustes: a → b (1.2; random source 1.1)",
    ]
    assert below_random_baseline(table.drop(columns="random_baseline")) == []


def test_common_width_above_the_narrowest_model_is_named(store):
    fs, _ = store
    with pytest.raises(MetricInputError, match=r"common width 7 exceeds the width of noise \(6\)"):
        compare(fs, ["wide", "noise"], measures=("gfre",), n_test=100, common_width=7)


def test_errors_name_the_cell_and_the_calibration_step(store):
    fs, _ = store
    # 8 test atoms: too few for mutual kNN's 10 neighbours
    with pytest.raises(
        MetricInputError,
        match=r"^mknn of wide → wide \(\d+ training / 8 test atoms\): mutual kNN with k=10 "
        r"needs at least 11 samples \(k \+ 1\), got 8$",
    ):
        compare(fs, ["wide", "narrow"], measures=("mknn",), n_test=8)
    # SVCCA runs on the 24- and 12-wide models but not at their common width 8
    with pytest.raises(
        MetricInputError,
        match=r"svcca of wide → wide .*: the width control at common width 8: SVCCA: cca_dim=10 "
        r"exceeds the smaller feature dimension \(8\)",
    ):
        compare(fs, ["wide", "mid"], measures=("svcca",), n_test=100, common_width=8)


def test_cli_calibration_columns(store, tmp_path):
    fs, _ = store
    options = ["--permutations", "9", "--bootstrap", "5", "--width-control"]
    result = _compare_cli(fs, tmp_path / "out", "wide,noise", *options)
    assert result.exit_code == 0, result.output
    assert "mutual kNN (k=10, cosine)" in result.output and " ns" in result.output
    df = pd.read_csv(tmp_path / "out" / "compare.csv")
    # the cells a random source of the same width matches are named (noise is such a model)
    below = below_random_baseline(df)
    assert below and all(cell.startswith(("gfre: noise", "mknn:")) for cell in below), below
    output = " ".join(result.output.split())
    assert f"{len(below)} cell(s) do no better than a random source of the same width" in output
    assert below[0] in output
    for column in ("p_value", "null_mean", "ci_low", "random_baseline", "measure_label"):
        assert df[column].notna().all(), column


def test_structures_of_unique_size_stay_paired_and_are_flagged(store, caplog):
    # one structure per atom count: no structure can move, every permutation is the identity,
    # so every null value is the score itself and every p-value is 1
    fs, structures = store
    by_size = {len(a): a for a in structures[:-5]}
    with caplog.at_level("WARNING"):
        df = compare(
            fs,
            ["wide", "noise"],
            measures=("gfre", "cka"),
            n_test=20,
            n_permutations=19,
            structures=list(by_size.values()),
        )
    assert "only 0% of the atoms are in structures that share their atom count" in caplog.text
    assert (df["null_movable"] == 0).all() and (df["p_value"] == 1).all()
    np.testing.assert_allclose(df["null_mean"], df["value"], rtol=1e-10, atol=1e-15)


def test_too_few_permutations_are_flagged(store, caplog):
    fs, _ = store
    with caplog.at_level("WARNING"):
        df = compare(fs, ["wide", "narrow"], measures=("cka",), n_test=100, n_permutations=5)
    assert "cannot give a p-value below 0.05" in caplog.text
    assert (df["p_value"] >= 1 / 6).all()
