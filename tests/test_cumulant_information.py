"""Order-by-order information of cumulant features and the `mlipspace cumulants` command."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import mlipspace
from mlipspace.features import AtomFeatures
from mlipspace.pooling.information import (
    cumulant_model_table,
    cumulant_order_table,
    structure_split,
)


def synthetic_atoms(n_structures=120, d=4, seed=0, shared=None):
    """Atom features whose per-structure distributions differ in shape, not only in mean."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(3, 12, size=n_structures)
    X, index = [], []
    for s, size in enumerate(sizes):
        shape = rng.gamma(2.0, size=d)
        block = rng.gamma(shape, size=(size, d)) + rng.normal(size=d)
        X.append(block if shared is None else block @ shared)
        index.append(np.full(size, s))
    X = np.concatenate(X)
    index = np.concatenate(index)
    hashes = np.array([f"{s:020x}" for s in range(n_structures)])
    structures = pd.DataFrame(
        {
            "structure_hash": hashes,
            "n_atoms": sizes,
            "subset": np.where(np.arange(n_structures) % 3 == 0, "a", "b"),
            "source": "",
            "parent": "",
        }
    )
    return AtomFeatures(
        X=X,
        structure_hash=hashes[index],
        site=np.concatenate([np.arange(n) for n in sizes]),
        numbers=np.ones(len(X), dtype=int),
        structure_index=index,
        structures=structures,
        model="synthetic",
        layer="ll",
    )


def test_order_table_directions():
    df = cumulant_order_table(synthetic_atoms(), max_order=4, n_test=1000, random_state=0)
    assert len(df) == 4 * 3 * 2
    gfre = df[df.measure == "gfre"].set_index(["source_order", "target_order"])["value"]
    # higher orders contain the lower ones exactly
    for m in range(2, 5):
        for n in range(1, m):
            assert gfre[(m, n)] < 1e-6
    # lower orders do not predict higher ones, and Φ(1) → Φ(n) grows with n
    assert gfre[(1, 2)] > 0.2
    assert gfre[(1, 2)] < gfre[(1, 3)] < gfre[(1, 4)]
    assert set(df["n_test"]) == {30}  # capped at a quarter of 120 structures


def test_structure_split_is_stratified_and_capped():
    structures = synthetic_atoms().structures
    train, test = structure_split(structures, n_test=1000, random_state=0)
    assert len(test) == 30 and len(train) == 90
    assert not set(train) & set(test)
    labels = structures["subset"].to_numpy()
    assert abs((labels[test] == "a").mean() - (labels == "a").mean()) < 0.05
    with pytest.warns(DeprecationWarning, match=r"structure_split\(seed=\.\.\.\)"):
        assert np.array_equal(structure_split(structures, n_test=1000, seed=0)[1], test)


def test_model_table_identical_and_linear_models_reconstruct_each_other():
    base = synthetic_atoms(seed=1)
    rotated = synthetic_atoms(seed=1)
    q = np.linalg.qr(np.random.default_rng(3).normal(size=(4, 4)))[0]
    rotated.X = base.X @ q
    df = cumulant_model_table({"a": base, "b": base, "c": rotated}, order=1, measures=["gfre"])
    values = df.set_index(["source", "target"])["value"]
    assert values[("a", "b")] < 1e-6
    # the mean (order 1) commutes with a linear map, so it is reconstructed exactly
    assert values[("a", "c")] < 1e-6


def test_cumulants_command_writes_tables(tmp_path):
    structures = mlipspace.demo_structures("small")
    store = mlipspace.FeatureStore(tmp_path / "s.zarr")
    rng = np.random.default_rng(0)
    for model in ("m1", "m2"):
        feats = [rng.gamma(2.0, size=(len(a), 3)) for a in structures]
        store.write(model, "ll", structures, feats)
    env = {**os.environ, "COLUMNS": "200"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlipspace",
            "cumulants",
            "--store",
            str(tmp_path / "s.zarr"),
            "--model",
            "m1",
            "--models",
            "m1,m2",
            "--max-order",
            "3",
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert "Φ(1)" in result.stdout
    table = pd.read_csv(tmp_path / "out" / "m1" / "orders_ll.csv")
    # each printed table names its measure, preprocessing and split (rows are structures)
    caption = " ".join(result.stdout.split())
    assert caption.count("GFRE (global linear reconstruction error, ridge)") == 2
    assert (
        f"split: {table['n_train'].iloc[0]} training / {table['n_test'].iloc[0]} test "
        "structures, stratified by subset, seed 0" in caption
    )
    assert len(table) == 3 * 2 * 2 and table["value"].notna().all()
    assert (tmp_path / "out" / "m1" / "orders_ll_gfre.png").exists()
    assert (tmp_path / "out" / "models" / "models_ll.html").exists()


def test_bad_measure_is_named():
    with pytest.raises(mlipspace.errors.MetricInputError, match="unknown structure-level measures"):
        cumulant_order_table(synthetic_atoms(), max_order=2, measures=["cka"])
