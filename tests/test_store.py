"""The feature store: layout, identity, alignment, crash safety (foundation issue, point 6)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import zarr

import mlipspace
from mlipspace import FeatureStore, errors


@pytest.fixture(scope="module")
def structures():
    return mlipspace.demo_structures("small")[:30]


def fake_features(structures, dim=6, seed=0):
    """Per-atom arrays that encode (structure, site), so misalignment cannot go unnoticed."""
    rng = np.random.default_rng(seed)
    out = []
    for atoms in structures:
        base = int(atoms.info["structure_hash"][:6], 16) % 1000
        feats = rng.normal(size=(len(atoms), dim)).astype(np.float32)
        feats[:, 0] = base
        feats[:, 1] = np.arange(len(atoms))
        out.append(feats)
    return out


def test_write_read_roundtrip_with_identity_and_metadata(tmp_path, structures):
    store = FeatureStore(tmp_path / "s.zarr")
    feats = fake_features(structures)
    assert store.write("m", "ll", structures, feats, metadata={"package": "x 1.0"}) == len(
        structures
    )
    table = store.read("m", "ll")
    assert table.X.dtype == np.float32
    np.testing.assert_array_equal(table.X, np.concatenate(feats))
    assert list(table.structures["structure_hash"]) == [
        a.info["structure_hash"] for a in structures
    ]
    np.testing.assert_array_equal(table.numbers, np.concatenate([a.numbers for a in structures]))
    np.testing.assert_array_equal(
        table.site, np.concatenate([np.arange(len(a)) for a in structures])
    )
    assert list(table.structures["subset"]) == [a.info["subset"] for a in structures]
    assert table.structures["n_atoms"].tolist() == [len(a) for a in structures]
    meta = store.metadata("m", "ll")
    assert meta["dim"] == 6 and meta["dtype"] == "float32" and meta["package"] == "x 1.0"
    assert meta["mlipspace_version"] == mlipspace.__version__ and "time" in meta
    assert store.has("m", "ll", structures[3].info["structure_hash"])
    assert not store.has("m", "bb", structures[3].info["structure_hash"])
    # the store is a Zarr v3 hierarchy
    root = zarr.open_group(tmp_path / "s.zarr", mode="r")
    assert root.metadata.zarr_format == 3


def test_append_skips_stored_structures_and_reads_subsets_in_order(tmp_path, structures):
    store = FeatureStore(tmp_path / "s.zarr")
    feats = fake_features(structures)
    assert store.write("m", "ll", structures[:20], feats[:20]) == 20
    assert store.write("m", "ll", structures[10:], feats[10:]) == 10
    assert store.write("m", "ll", structures, feats) == 0
    table = store.read("m", "ll")
    assert len(table.structures) == 30
    wanted = [structures[i].info["structure_hash"] for i in (25, 2, 14)]
    part = store.read("m", "ll", wanted)
    assert list(part.structures["structure_hash"]) == wanted
    np.testing.assert_array_equal(part.X, np.concatenate([feats[i] for i in (25, 2, 14)]))
    with pytest.raises(errors.StoreError, match="lacks 1 of the requested"):
        store.read("m", "ll", ["0" * 20])


def test_float64_is_kept_on_request(tmp_path, structures):
    store = FeatureStore(tmp_path / "s.zarr")
    feats = [f.astype(np.float64) for f in fake_features(structures[:3])]
    store.write("m", "ll", structures[:3], feats)
    assert store.read("m", "ll").X.dtype == np.float64


def test_aligned_uses_identity_not_position(tmp_path, structures):
    store = FeatureStore(tmp_path / "s.zarr")
    feats = fake_features(structures)
    store.write("a", "ll", structures[:20], feats[:20])
    order = list(range(29, 4, -1))  # another model, other structures, reversed order
    store.write("b", "bb", [structures[i] for i in order], [feats[i] + 1 for i in order])
    aligned = store.aligned([("a", "ll"), ("b", "bb")])
    a, b = aligned[("a", "ll")], aligned[("b", "bb")]
    assert len(a.structures) == 15
    np.testing.assert_array_equal(a.X + 1, b.X)
    np.testing.assert_array_equal(a.structure_hash, b.structure_hash)
    np.testing.assert_array_equal(a.site, b.site)


def test_feature_array_problem_names_shape_width_and_non_finite_values():
    from mlipspace.features import feature_array_problem

    assert feature_array_problem(np.zeros((3, 4)), 3) is None
    assert feature_array_problem(np.zeros((3, 4)), 3, width=4) is None
    assert feature_array_problem(np.zeros((3, 4)), 3, width=5) == (
        "3 atoms but features of shape (3, 4), expected (3, 5)"
    )
    assert feature_array_problem(np.zeros(3), 3) == "3 atoms but features of shape (3,)"
    assert feature_array_problem(np.full((3, 4), np.inf), 3) == "NaN or inf features"


def test_bad_writes_are_refused_with_names(tmp_path, structures):
    store = FeatureStore(tmp_path / "s.zarr")
    feats = fake_features(structures[:2])
    with pytest.raises(errors.StoreError, match="atoms but features of shape"):
        store.write("m", "ll", structures[:2], [feats[0], feats[0][:1]])
    broken = [feats[0].copy(), feats[1]]
    broken[0][0, 0] = np.nan
    with pytest.raises(errors.StoreError, match="NaN or inf features"):
        store.write("m", "ll", structures[:2], broken)
    store.write("m", "ll", structures[:1], feats[:1])
    with pytest.raises(errors.StoreError, match="dimension 6"):
        store.write("m", "ll", structures[1:2], [np.zeros((len(structures[1]), 3))])
    with pytest.raises(errors.StoreError, match="no features for model 'x'"):
        store.read("x", "ll")
    with pytest.raises(errors.StoreError, match="no feature store"):
        FeatureStore(tmp_path / "nothing.zarr", mode="r")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "file.txt").write_text("hi")
    with pytest.raises(errors.StoreError, match="not a feature store"):
        FeatureStore(tmp_path / "other")


def test_awkward_model_names_and_skipped_records(tmp_path, structures):
    store = FeatureStore(tmp_path / "s.zarr")
    name = "mace:/some/dir/my.model"
    store.write(name, "layer:2", structures[:2], fake_features(structures[:2]))
    assert store.entries() == [(name, "layer:2")]
    store.write_skipped(name, "layer:2", structures[2:4], ["element Xx unsupported", "too big"])
    skipped = store.skipped(name, "layer:2")
    assert skipped["reason"].tolist() == ["element Xx unsupported", "too big"]
    assert store.info().loc[0, "skipped"] == 2


WRITER = textwrap.dedent(
    """
    import sys, numpy as np, mlipspace
    from mlipspace import FeatureStore
    path, model, start = sys.argv[1], sys.argv[2], int(sys.argv[3])
    structures = mlipspace.read_structures(sys.argv[4])
    store = FeatureStore(path)
    done = set(store.hashes(model, "ll")) if (model, "ll") in store.entries() else set()
    print("ready", flush=True)
    for i, atoms in enumerate(structures[start:], start):
        if atoms.info["structure_hash"] in done:
            continue  # resume: only what is missing
        feats = np.full((len(atoms), 512), float(i), dtype=np.float32)
        store.write(model, "ll", [atoms], [feats])
        print("wrote", i, flush=True)
    print("finished", flush=True)
    """
)


def _start_writer(tmp_path, store_path, model, xyz, start=0):
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    return subprocess.Popen(
        [sys.executable, str(script), str(store_path), model, str(start), str(xyz)],
        stdout=subprocess.PIPE,
        text=True,
    )


@pytest.fixture(scope="module")
def structures_file(tmp_path_factory):
    from ase.io import write

    path = tmp_path_factory.mktemp("data") / "demo.xyz"
    write(path, mlipspace.demo_structures("small")[:40])
    return path


def _check_consistent(store, model, expected_hashes):
    table = store.read(model, "ll")
    # every structure present is complete and carries the values its writer gave it
    for index, row in table.structures.iterrows():
        rows = table.structure_index == index
        assert rows.sum() == row["n_atoms"]
        assert np.unique(table.X[rows]).size == 1
    assert len(set(table.structure_hash)) == len(table.structures)
    assert set(table.structures["structure_hash"]) <= set(expected_hashes)
    return table


def test_sigkill_mid_write_leaves_a_consistent_store_and_rerun_resumes(tmp_path, structures_file):
    expected = [a.info["structure_hash"] for a in mlipspace.read_structures(structures_file)]
    store_path = tmp_path / "s.zarr"
    FeatureStore(store_path)
    kills = 0
    # kill after a fixed number of commits, not after a delay, so a fast machine cannot
    # finish before the kill; the signal lands while the next segment is being written
    for commits in (2, 5, 9):
        proc = _start_writer(tmp_path, store_path, "m", structures_file)
        assert proc.stdout.readline().strip() == "ready"
        for _ in range(commits):
            assert proc.stdout.readline().startswith("wrote")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += proc.returncode == -signal.SIGKILL
        _check_consistent(FeatureStore(store_path), "m", expected)
    assert kills >= 1
    partial = len(FeatureStore(store_path).hashes("m", "ll"))
    assert 0 < partial < len(expected)
    # a re-run resumes: writes only what is missing, ends with everything exactly once
    proc = _start_writer(tmp_path, store_path, "m", structures_file)
    proc.wait(timeout=300)
    assert proc.returncode == 0
    store = FeatureStore(store_path)
    table = _check_consistent(store, "m", expected)
    assert sorted(table.structures["structure_hash"]) == sorted(expected)
    assert store.clean_staging() >= 0
    assert not any(p.is_dir() for p in (store_path / ".staging").iterdir())


def test_two_processes_write_different_models_concurrently(tmp_path, structures_file):
    expected = [a.info["structure_hash"] for a in mlipspace.read_structures(structures_file)]
    store_path = tmp_path / "s.zarr"
    FeatureStore(store_path)
    procs = [_start_writer(tmp_path, store_path, m, structures_file) for m in ("a", "b")]
    for proc in procs:
        proc.wait(timeout=300)
        assert proc.returncode == 0
    store = FeatureStore(store_path)
    for model in ("a", "b"):
        table = _check_consistent(store, model, expected)
        assert len(table.structures) == len(expected)
    assert len(store.aligned([("a", "ll"), ("b", "ll")])[("a", "ll")]) == sum(
        store.read("a", "ll").structures["n_atoms"]
    )
    assert {json.loads((store_path / "zarr.json").read_text())["node_type"]} == {"group"}


def test_clean_staging_keeps_live_writers(tmp_path):
    store = FeatureStore(tmp_path / "s.zarr")
    staging = tmp_path / "s.zarr" / ".staging"
    staging.mkdir(exist_ok=True)
    import socket

    alive = staging / f"{socket.gethostname()}-{os.getpid()}-000-abc"
    dead = staging / f"{socket.gethostname()}-999999999-000-abc"
    alive.mkdir()
    dead.mkdir()
    assert store.clean_staging() == 1
    assert alive.exists() and not dead.exists()
