"""The common anchor space and its analyses, on synthetic models with known relations.

A local descriptor stands in for a model here (plumbing test); the analyses run on the real
models in the demo (`make demo`) and in the real-model tests of each adapter.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import mlipspace
from conftest import local_descriptor
from mlipspace.platonic import (
    common_space_from_store,
    dispersion,
    embedding_arithmetic,
    pair_agreement,
    retrieval_ranks,
    run_platonic,
    stitching,
    transport_agreement,
    with_controls,
)
from mlipspace.platonic.chemistry import element_group
from mlipspace.transport import w2_matrix


@pytest.fixture(scope="module")
def synthetic_store(tmp_path_factory):
    structures = mlipspace.demo_structures("small")
    desc = [local_descriptor(a) for a in structures]
    dim = desc[0].shape[1]
    rng = np.random.default_rng(0)
    W = rng.normal(size=(dim, 48))
    Q = np.linalg.qr(rng.normal(size=(48, 48)))[0]
    W_random = rng.normal(size=(dim, 32))
    models = {
        "soap": [d for d in desc],
        "model-a": [np.tanh(d @ W) for d in desc],
        "model-b": [2.5 * np.tanh(d @ W) @ Q for d in desc],  # same information, rotated and scaled
        "mace-random:0": [
            np.tanh(rng.normal(size=(len(d), 32)) + 0.1 * d @ W_random) for d in desc
        ],
    }
    store = mlipspace.FeatureStore(tmp_path_factory.mktemp("p") / "s.zarr")
    for name, feats in models.items():
        store.write(name, "node", structures, feats)
    return store, structures


MODELS = ["model-a", "model-b", "mace-random:0"]


def _run(store, out, structures, **settings) -> dict:
    """:func:`run_platonic` on the synthetic models :data:`MODELS`."""
    return run_platonic(store, MODELS, out, structures=structures, **settings)


def test_retrieval_ranks_hand_case():
    A = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    B = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.1]])
    ranks, nearest = retrieval_ranks(A, B)
    assert ranks.tolist() == [3, 3, 1]
    assert nearest.tolist() == [1, 0, 2]


def test_rotated_model_agrees_perfectly_and_controls_do_not(synthetic_store):
    store, _ = synthetic_store
    base = common_space_from_store(store, ["model-a", "model-b", "mace-random:0"], n_anchors=64)
    assert base.Z["model-a"].shape == (len(base.atoms), 64)
    np.testing.assert_allclose(base.Z["model-a"], base.Z["model-b"], atol=1e-10)
    space = with_controls(base, shuffled=["model-a"])
    df = pair_agreement(space, n_atoms=600).set_index(["source", "target"])
    ab = df.loc[("model-a", "model-b")]
    assert ab.cosine_mean == pytest.approx(1.0)
    assert ab.top1 == 1.0
    # the descriptor sees periodic groups, not elements: Na and K in equal sites can tie
    assert ab.top1_element > 0.98
    assert ab.raw_top1 > 0.95  # Procrustes on the anchors recovers a pure rotation
    assert df.loc[("model-a", "mace-random:0")].cosine_mean < ab.cosine_mean - 0.05
    assert df.loc[("model-a", "shuffled:model-a")].top10 < 0.2
    # the one-hot baseline finds the element far more often than a random atom would
    _, counts = np.unique(base.atoms.numbers, return_counts=True)
    chance = np.sum((counts / counts.sum()) ** 2)
    assert df.loc[("element-onehot", "model-a")].top1_element > 5 * chance


def test_space_settings_are_named_and_checked(synthetic_store):
    from mlipspace.errors import ParameterError
    from mlipspace.platonic.space import SpaceSettings

    store, _ = synthetic_store
    with pytest.raises(ParameterError, match="n_anchor"):
        common_space_from_store(store, ["model-a"], n_anchor=8)
    space = common_space_from_store(store, ["model-a"], n_anchors=8, method="fps", center="none")
    assert space.settings["n_anchors"] == 8 and space.settings["center"] == "none"
    assert SpaceSettings().center == "data" and SpaceSettings().standardize
    # the store's path serves as well as the store (as in compare and cumulants)
    by_path = common_space_from_store(
        str(store.path), ["model-a"], n_anchors=8, method="fps", center="none"
    )
    np.testing.assert_array_equal(by_path.anchor_rows, space.anchor_rows)


def test_transport_recovers_rotated_model(synthetic_store):
    store, _ = synthetic_store
    space = common_space_from_store(store, ["model-a", "model-b", "mace-random:0"], n_anchors=64)
    pairs, w2 = transport_agreement(space, n_atoms=120)
    ab = pairs.set_index(["source", "target"]).loc[("model-a", "model-b")]
    assert ab.emd_element_accuracy > 0.98  # group-level descriptor: Na and K sites can tie
    assert ab.emd_accuracy > 0.5  # symmetry-equivalent atoms have identical features: ties
    # like for like: every method on the same atoms, the same number
    assert (pairs.n_atoms == 120).all() and (pairs.gw_atoms == 120).all()
    rows = pairs.attrs["rows"]
    assert len(rows) == 120 and not np.isin(rows, space.anchor_rows).any()
    # identical projections: every match lands on an interchangeable atom, for every method
    # but the entropic plan, whose argmax may pick among equal-cost twins too
    for method in ("emd", "gw_z", "sinkhorn"):
        assert ab[f"{method}_equivalent_accuracy"] >= ab[f"{method}_accuracy"]
    assert ab.emd_equivalent_accuracy == 1.0
    assert ab.chance == pytest.approx(1 / 120)
    assert ab.chance <= ab.chance_equivalent <= ab.chance_class
    assert ab.chance_equivalent <= ab.chance_element
    # per-atom hits, in sample order, reproduce every accuracy
    hits = pairs.attrs["hits"]
    for (source, target, key), hit in hits.items():
        row = pairs.set_index(["source", "target"]).loc[(source, target)]
        assert np.mean(hit) == pytest.approx(row[f"{key}_accuracy"])
    assert w2.loc["model-a", "model-b"] < 1e-6
    assert w2.loc["model-a", "mace-random:0"] > 0.1
    np.testing.assert_allclose(w2.to_numpy(), w2.to_numpy().T)
    # one plan per unordered pair: W2 as computed from scratch, both directions from it
    reference = w2_matrix({m: space.Z[m][rows] for m in space.models})
    np.testing.assert_allclose(w2.to_numpy(), reference.to_numpy(), rtol=1e-9, atol=1e-12)
    ba = pairs.set_index(["source", "target"]).loc[("model-b", "model-a")]
    assert ba.emd_element_accuracy > 0.98
    # pairs run in threads with every random draw made up front: one thread gives the same
    serial, w2_serial = transport_agreement(space, n_atoms=120, n_threads=1)
    pd.testing.assert_frame_equal(serial, pairs)
    pd.testing.assert_frame_equal(w2_serial, w2)
    assert ba.emd_accuracy == pytest.approx(ab.emd_accuracy)  # a permutation, read backwards


def test_stitching_and_dispersion(synthetic_store):
    store, _ = synthetic_store
    space = common_space_from_store(store, ["model-a", "model-b", "mace-random:0"], n_anchors=64)
    labels = {"element_group": element_group(space.atoms.numbers)}
    df = stitching(space, labels, n_atoms=1200).set_index(["source", "target"])
    ab = df.loc[("model-a", "model-b")]
    assert ab.zero_shot == pytest.approx(ab.in_model)
    assert ab.in_model > ab.chance
    d = dispersion(space, ["model-a", "model-b"])
    assert np.abs(d).max() < 1e-9


def _alkali_halide_store(path, scales: dict[str, float]):
    """Sixteen rocksalt alkali halides (prototype families for the arithmetic) and a store
    in which every model of ``scales`` has the same features, times its scale: a descriptor
    term and an element one-hot, so that the mean over the other pairs carries the
    substitution."""
    from mlipspace.structures.demo import _binary

    rng = np.random.default_rng(0)
    structures = mlipspace.read_structures(
        [
            _binary("rocksalt", cation, anion, rng)
            for cation in ("Li", "Na", "K", "Rb")
            for anion in ("F", "Cl", "Br", "I")
        ]
    )
    store = mlipspace.FeatureStore(path / "s.zarr")
    W = np.random.default_rng(1).normal(size=(local_descriptor(structures[0]).shape[1], 24))
    for name, scale in scales.items():
        feats = []
        for atoms in structures:
            onehot = np.zeros((len(atoms), 120))
            onehot[np.arange(len(atoms)), atoms.numbers] = 1.0
            feats.append(scale * np.hstack([local_descriptor(atoms) @ W, onehot]))
        store.write(name, "node", structures, feats)
    return store, structures


def test_arithmetic_on_alkali_halides(tmp_path):
    store, structures = _alkali_halide_store(
        tmp_path, {"model-a": 1.0, "model-b": 3.0, "soap": 1.0}
    )
    assert all("prototype" in a.info for a in structures)
    space = common_space_from_store(store, ["model-a", "model-b"], n_anchors=16, method="fps")
    accuracy, parallel = embedding_arithmetic(space, structures)
    row = accuracy.set_index(["source", "target"]).loc[("model-a", "model-b")]
    assert row.n_tests >= 8
    assert row.top1 > row.baseline_top1
    assert parallel.loc[0, "delta_cosine"] == pytest.approx(1.0)


def test_run_platonic_writes_everything(synthetic_store, tmp_path):
    store, structures = synthetic_store
    summary = _run(
        store,
        tmp_path,
        structures,
        n_anchors=64,
        n_atoms=500,
        ot_atoms=200,
    )
    for name in (
        "anchors.csv",
        "agreement.csv",
        "transport.csv",
        "w2.csv",
        "bias_map.csv",
        "atypical_structures.csv",
        "stitching.csv",
        "summary.json",
        "agreement/agreement.csv",
    ):
        assert (tmp_path / name).exists(), name
    # the analysis writes data only: the figures are drawn by mlipspace.report (test_report)
    drawn = [p for ext in ("png", "svg", "html") for p in tmp_path.rglob(f"*.{ext}")]
    assert drawn == []
    assert (
        json.loads((tmp_path / "summary.json").read_text())["trained_pairs"]["cosine_mean"] > 0.99
    )
    assert summary["settings"]["n_anchors"] == 64
    # the paper's checks: the rotated copy converges, the random control does not
    claims = pd.read_csv(tmp_path / "claims.csv")
    verdict = claims.groupby("test")["holds"].first()
    assert verdict["T2"] and verdict["T3"] and verdict["T10"]
    assert set(claims["test"]) >= {"T1", "T2", "T3", "T4", "T5", "T6", "T7", "T8", "T9", "T10"}
    assert "\\|" in (tmp_path / "claims.md").read_text()  # pipes in cells are escaped
    robust = pd.read_csv(tmp_path / "robustness.csv")
    assert (robust["trained_cosine"] > robust["random_cosine"]).all()
    # the small demo set has too few isostructural pairs; the reason is reported, not hidden
    assert "skipped" in summary["arithmetic"] or (tmp_path / "arithmetic.csv").exists()


def test_tiny_data_runs_what_it_can_and_names_what_it_skipped(tmp_path):
    from ase.build import bulk

    # 40 atoms in two single-element crystals: one parent structure per side of any split,
    # so no label has two classes to learn from, and every sample is under 50 atoms
    crystals = [
        bulk("Cu", "fcc", a=3.6, cubic=True) * (2, 2, 2),
        bulk("Al", "fcc", a=4.05) * (2, 2, 2),
    ]
    for k, atoms in enumerate(crystals):  # rattled: distinct environments to choose anchors from
        atoms.rattle(0.05, seed=k)
    structures = mlipspace.read_structures(crystals)
    assert sum(len(a) for a in structures) == 40
    store = mlipspace.FeatureStore(tmp_path / "s.zarr")
    desc = [local_descriptor(a) for a in structures]
    W = np.random.default_rng(0).normal(size=(desc[0].shape[1], 12))
    rng = np.random.default_rng(1)
    for name, feats in {
        "soap": desc,
        "model-a": [np.tanh(d @ W) + 0.01 * rng.normal(size=(len(d), 12)) for d in desc],
        "model-b": [2 * np.tanh(d @ W) for d in desc],
        "mace-random:0": [rng.normal(size=(len(d), 8)) for d in desc],
    }.items():
        store.write(name, "node", structures, feats)
    out = tmp_path / "out"
    summary = _run(
        store,
        out,
        structures,
        n_anchors=8,
        n_atoms=40,
        ot_atoms=40,
    )
    skipped = summary["skipped"]
    # one crystal trains, the other tests: one element each, so the group probe is skipped;
    # the rattled crystal has two coordination numbers, so that label is learnt (and judged
    # undecided below: 29 test atoms)
    assert "single class" in skipped["stitching of element_group"]
    stitched = pd.read_csv(out / "stitching.csv")
    assert set(stitched.label) == {"coordination"} and (stitched.n_train < 10).all()
    assert "the sample has 0" in skipped["optimal transport on bulk crystals"]  # none here
    assert "embedding arithmetic" in skipped
    # what could run, ran
    for name in ("agreement.csv", "transport.csv", "w2.csv", "bias_map.csv", "robustness.csv"):
        assert (out / name).exists(), name
    claims = pd.read_csv(out / "claims.csv", keep_default_na=False)
    t6 = claims[(claims.test == "T6") & (claims.subset == "all")].iloc[0]
    assert t6.holds == "" and "element_group skipped: a single class" in t6.note
    assert "group probe skipped" in claims[claims.test == "T3"].iloc[0].note
    for test in ("T2", "T5"):
        row = claims[(claims.test == test) & (claims.subset == "all")].iloc[0]
        assert row.holds == "" and "fewer than 50 atoms" in row.note, test
    assert "fewer than 4 elements" in claims[claims.test == "T4"].iloc[0].evidence


# ------------------------------------------------------------------ issue 16: like for like


def test_uncentred_transport_reuses_raw_gw_on_the_same_atoms(synthetic_store):
    from mlipspace.errors import MetricInputError
    from mlipspace.platonic.space import reprojected, subspace

    store, _ = synthetic_store
    space = common_space_from_store(store, ["model-a", "model-b", "mace-random:0"], n_anchors=64)
    pairs, _ = transport_agreement(space, n_atoms=80)
    uncentred = reprojected(subspace(space, ["model-a", "model-b"]), "none", False)
    reused, _ = transport_agreement(uncentred, n_atoms=80, raw_from=pairs)
    fresh, _ = transport_agreement(uncentred, n_atoms=80)
    # the raw spaces do not depend on the projection: the reused GW equals a fresh run
    cols = sorted(c for c in fresh if c.startswith("gw_raw"))
    assert cols and sorted(c for c in reused if c.startswith("gw_raw")) == cols
    merged = reused.merge(fresh, on=["source", "target"], suffixes=("", "_fresh"))
    for c in cols:
        np.testing.assert_allclose(merged[c], merged[f"{c}_fresh"])
    assert reused.attrs["rows"] == pairs.attrs["rows"]
    key = ("model-a", "model-b", "gw_raw_equivalent")
    assert reused.attrs["hits"][key] == pairs.attrs["hits"][key]
    with pytest.raises(MetricInputError, match="other atoms"):
        transport_agreement(uncentred, n_atoms=60, raw_from=pairs)


def test_symmetry_equivalent_atoms_count_as_correct(synthetic_store):
    from mlipspace.diagnostics.symmetry import equivalent_sites
    from mlipspace.platonic.equivalence import equivalence_classes, orbit_labels

    store, structures = synthetic_store
    space = common_space_from_store(store, ["model-a", "mace-random:0"], n_anchors=32)
    orbits = orbit_labels(space, structures)
    by_hash = {a.info["structure_hash"]: a for a in structures}
    for h in list(by_hash)[:40]:
        rows = np.flatnonzero(space.atoms.structure_hash == h)
        atoms = by_hash[h]
        if not atoms.pbc.any() or len(rows) < 2:
            continue
        expected = equivalent_sites(atoms)[space.atoms.site[rows]]
        same_label = orbits[rows][:, None] == orbits[rows][None, :]
        np.testing.assert_array_equal(same_label, expected[:, None] == expected[None, :])
    # mace-random's noise makes no two atoms feature-identical: only orbits join them
    rows = space.evaluation_rows(300)
    alone = equivalence_classes(space, rows, None, models=["mace-random:0"])
    assert len(np.unique(alone)) == len(rows)
    joined = equivalence_classes(space, rows, orbits, models=["mace-random:0"])
    assert len(np.unique(joined)) < len(rows)
    pairs, _ = transport_agreement(space, n_atoms=100, orbits=orbits)
    assert (pairs.chance_equivalent >= pairs.chance).all()


def test_stitching_uses_each_models_own_statistics(synthetic_store):
    from mlipspace.platonic.chemistry import RIDGE_ALPHAS, group_split

    store, _ = synthetic_store
    space = common_space_from_store(store, ["model-a", "model-b"], n_anchors=64)
    # model-b's coordinates with their own offsets and scales per column: a head trained on
    # model-a must still work, since each model is standardised with its own statistics
    rng = np.random.default_rng(0)
    space.Z["model-b"] = space.Z["model-a"] * rng.uniform(0.5, 3, 64) + rng.normal(3, 1, 64)
    labels = {"element_group": element_group(space.atoms.numbers)}
    df = stitching(space, labels, n_atoms=1200).set_index(["source", "target"])
    ab = df.loc[("model-a", "model-b")]
    assert ab.zero_shot == pytest.approx(ab.in_model)
    assert ab.alpha in RIDGE_ALPHAS
    # the split keeps every parent structure on one side
    groups = space.parent_groups()
    train, test = group_split(space.evaluation_rows(1200), groups)
    assert not set(groups[train]) & set(groups[test])
    assert abs(len(train) - len(test)) < 0.3 * (len(train) + len(test))
    # two parents, the larger over half the atoms: neither side is left empty
    few = np.array(["big"] * 30 + ["small"] * 8)
    for random_state in range(4):
        train, test = group_split(np.arange(38), few, random_state)
        assert set(few[train]) == {"small"} and set(few[test]) == {"big"}
    test_rows = np.asarray(df.attrs["rows"])
    copies = space.atoms.structures["parent"].astype(str).to_numpy()[space.atoms.structure_index]
    trained_parents = set(groups[np.setdiff1d(space.evaluation_rows(1200), test_rows)])
    assert not trained_parents & set(groups[test_rows])
    assert (copies != "").any()  # the small demo set has copies to keep apart


def test_arithmetic_leaves_controls_out_and_rescales_delta(tmp_path):
    from mlipspace.platonic.chemistry import spread

    store, structures = _alkali_halide_store(
        tmp_path, {"model-a": 1.0, "mace-random:0": 1.0, "soap": 1.0}
    )
    space = common_space_from_store(store, ["model-a", "mace-random:0"], n_anchors=16, method="fps")
    accuracy, parallel = embedding_arithmetic(space, structures)
    assert set(accuracy.source) == set(accuracy.target) == {"model-a"}
    assert parallel.empty  # one trained model: no pair to compare
    # a model whose coordinates are model-a's, three times larger: Δ from model-a, rescaled
    # to its spread, retrieves exactly as on model-a itself
    space.Z["model-b"] = 3.0 * space.Z["model-a"] + 1.0
    assert spread(space.Z["model-b"]) == pytest.approx(3 * spread(space.Z["model-a"]))
    accuracy, _ = embedding_arithmetic(space, structures, models=["model-a", "model-b"])
    acc = accuracy.set_index(["source", "target"])
    assert acc.loc[("model-a", "model-b")].top1 == acc.loc[("model-b", "model-b")].top1


def test_t1_raw_correspondence_against_a_permutation_null():
    from mlipspace.platonic.claims import raw_correspondence

    rng = np.random.default_rng(0)
    E = rng.normal(size=(400, 16)) + 5.0
    stat, null, p = raw_correspondence(E, 2 * E + 1, n_perm=200)
    assert stat == pytest.approx(1.0) and p < 0.01 and abs(null) < 0.2
    # positive activations of unrelated models: large uncentred cosines, no correspondence
    other = np.abs(rng.normal(size=(400, 16))) + 3.0
    assert (
        np.mean(np.sum(E * other, 1) / np.linalg.norm(E, axis=1) / np.linalg.norm(other, axis=1))
        > 0.9
    )
    stat, null, p = raw_correspondence(E, other, n_perm=200)
    assert abs(stat) < 0.1 and p > 0.05


def test_t1_identity_map_against_a_procrustes_map_on_held_out_atoms():
    from mlipspace.platonic.claims import procrustes_gain

    rng = np.random.default_rng(0)
    E = rng.normal(size=(600, 12)) @ rng.normal(size=(12, 12)) + 4.0
    fit, held = np.arange(300), np.arange(300, 600)
    # a rotated copy: the identity map fails, a rotation fitted elsewhere recovers every atom
    Q = np.linalg.qr(rng.normal(size=(12, 12)))[0]
    identity, procrustes = procrustes_gain(E, E @ Q, fit, held)
    np.testing.assert_allclose(procrustes, 1.0, atol=1e-6)
    assert identity.mean() < 0.5
    # equal coordinates: nothing to gain
    identity, procrustes = procrustes_gain(E, 2 * E + 1, fit, held)
    np.testing.assert_allclose(identity, 1.0, atol=1e-9)
    np.testing.assert_allclose(procrustes, 1.0, atol=1e-6)
    # unrelated models: a map fitted on other atoms does not carry over
    identity, procrustes = procrustes_gain(E, rng.normal(size=(600, 12)), fit, held)
    assert abs(identity.mean()) < 0.1 and abs(procrustes.mean()) < 0.15
    # unequal widths: no identity map, Procrustes still defined (zero padding)
    identity, procrustes = procrustes_gain(E, (E @ Q)[:, :8], fit, held)
    assert np.isnan(identity).all() and procrustes.mean() > 0.5


def test_model_facts_come_from_the_cards():
    from mlipspace.models import ModelCard, ModelSpec, register
    from mlipspace.platonic.facts import (
        family,
        fine_tune_pairs,
        level_of_theory,
        model_relation,
        pair_relation,
    )

    def spec(name, **card):
        return ModelSpec(name=name, factory=lambda *a, **k: None, card=ModelCard(**card))

    register(spec("t16-alpha", architecture="A", training_data="MPtrj", level_of_theory="PBE"))
    register(spec("t16-beta", architecture="A", training_data="MPtrj", level_of_theory="PBE"))
    register(spec("t16-gamma", architecture="G", training_data="MPtrj", level_of_theory="PBE"))
    register(
        spec("t16-tuned", architecture="A", training_data="MP r2SCAN", level_of_theory="r2SCAN",
             fine_tuned_from="t16-alpha")
    )  # fmt: skip
    register(
        spec("t16-mf:", architecture="M", training_data="MPtrj+MatPES", level_of_theory="PBE+r2SCAN")
    )  # fmt: skip
    assert pair_relation("t16-alpha", "t16-beta") == "same family and data"
    assert pair_relation("t16-alpha", "t16-gamma") == "same data"
    assert pair_relation("t16-alpha", "t16-tuned") == "different data or fidelity"
    assert pair_relation("t16-alpha", "model-x") == "unknown"
    assert model_relation("t16-tuned", "t16-alpha") == "fine-tune"
    assert model_relation("t16-alpha", "t16-beta") == ""
    assert model_relation("t16-mf:PBE", "t16-mf:R2SCAN") == "shared initialisation"
    assert level_of_theory("t16-mf:R2SCAN") == "r2SCAN"
    assert level_of_theory("t16-mf:PBE") == "PBE"
    assert family("t16-gamma") == "G" and family("unknown-model") == ""
    assert fine_tune_pairs(["t16-alpha", "t16-tuned", "t16-beta"]) == [("t16-tuned", "t16-alpha")]


def test_claims_carry_intervals_thresholds_and_subsets(synthetic_store, tmp_path):
    store, structures = synthetic_store
    _run(
        store,
        tmp_path,
        structures,
        n_anchors=64,
        n_atoms=500,
        ot_atoms=120,
        robustness=False,
    )
    from mlipspace.platonic.verdicts import COLUMNS

    claims = pd.read_csv(tmp_path / "claims.csv", keep_default_na=False)
    assert list(claims.columns) == COLUMNS
    judged = claims[claims.threshold != ""]
    assert set(judged.threshold_source) <= {"paper", "toolkit"}
    assert len(judged) >= 8
    for test in ("T2", "T5", "T6"):
        rows = claims[(claims.test == test) & (claims.estimate != "")]
        assert {"all", "bulk crystals"} <= set(rows.subset), test
    t2 = claims[(claims.test == "T2") & (claims.subset == "all")].iloc[0]
    assert float(t2.ci_low) <= float(t2.estimate) <= float(t2.ci_high)
    assert "uncentred projection" in t2.evidence
    assert (tmp_path / "agreement_uncentred.csv").exists()
    assert (tmp_path / "transport_bulk.csv").exists()
    coverage = pd.read_csv(tmp_path / "anchor_coverage.csv")
    assert coverage[coverage.kind == "element"].anchors.sum() == 64
    # the bulk rows are bulk crystals only
    bulk = pd.read_csv(tmp_path / "transport_bulk.csv")
    assert (bulk.n_atoms <= 120).all()
    # T1 twice: the dimension-permutation null and the held-out Procrustes map, with verdicts
    t1 = claims[claims.test == "T1"]
    assert len(t1) == 2 and t1.claim.str.contains("Procrustes").sum() == 1
    procrustes = t1[t1.claim.str.contains("Procrustes")].iloc[0]
    assert procrustes.threshold_source == "toolkit"
    # model-b is model-a rotated: a map fitted on other structures beats the identity
    assert procrustes.holds == "True" and float(procrustes.ci_low) > 0.3
    # every transport and stitching figure under the uncentred projection too, same atoms
    for test, name in (("T5", "transport"), ("T6", "stitching")):
        uncentred = pd.read_csv(tmp_path / f"{name}_uncentred.csv")
        default = pd.read_csv(tmp_path / f"{name}.csv")
        assert set(uncentred.columns) == set(default.columns), name
        size = "n_atoms" if test == "T5" else "n_test"
        assert (uncentred[size] == default[size].iloc[0]).all(), name
        rows = claims[(claims.test == test) & (claims.subset == "all, uncentred projection")]
        assert len(rows) == 1 and rows.iloc[0].threshold != "", test
    assert (claims.subset == "all, uncentred projection").sum() == 3  # T2, T5, T6


@pytest.mark.parametrize("n_classes", [2, 4])
def test_ridge_classifier_path_predicts_as_scikit_learns_ridge_classifier(n_classes):
    from sklearn.linear_model import RidgeClassifier

    from mlipspace.platonic.chemistry import RIDGE_ALPHAS, ridge_classifier_path

    rng = np.random.default_rng(n_classes)
    X = rng.standard_normal((300, 40)) + 3.0  # off-centre: the intercept matters
    y = (X[:, :3] @ rng.standard_normal(3) + 0.5 * rng.standard_normal(300)).argsort().argsort()
    y = (y * n_classes // 300) * 7 + 2  # n_classes labels, not 0..n-1
    X_eval = rng.standard_normal((120, 40)) + 3.0
    path = ridge_classifier_path(X[:200], y[:200], X_eval, RIDGE_ALPHAS)
    for alpha, predicted in zip(RIDGE_ALPHAS, path, strict=True):
        expected = RidgeClassifier(alpha=alpha).fit(X[:200], y[:200]).predict(X_eval)
        np.testing.assert_array_equal(predicted, expected)
    assert len({tuple(p) for p in path}) > 1  # the strengths do change the predictions
