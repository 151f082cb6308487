"""PET adapter (``pet:<.ckpt or exported .pt>``), measured in the 'orb-pet-mattersim' env.

``tests/families_probe.py pet`` builds a random-init PET with metatrain's default hypers
(``metatrain.pet.PET``), saves its checkpoint (``get_checkpoint()``, as training writes
it) and its exported metatomic model (``export().save()``), and loads both back through
``pet:<path>``; it also loads every PET test checkpoint shipped in the metatrain wheel
(one per checkpoint format version). A missing environment fails the tests.
"""

from __future__ import annotations

import numpy as np
import pytest

from families_probe import run_probe, structures
from family_checks import (
    check_batch_equals_single,
    check_dims_and_dtypes,
    check_energy_equals_calculator,
    check_errors,
    check_featurize_through_worker,
    check_paths,
    check_permutation,
    check_rotation_averaging,
    rotation_change,
    scale,
)

pytestmark = pytest.mark.models

KINDS = ("ckpt", "pt")
# metatrain's default PET hypers: d_head 128 (node + edge heads), d_node 256, 2 GNN layers
DIMS = {
    "ckpt": {"ll": 256, "node": 384, "bb": 512, "layer:0": 256, "layer:1": 256, "layer:2": 256},
    "pt": {"ll": 256, "node": 384},
}


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    return run_probe("pet", tmp_path_factory.mktemp("pet_probe"))


@pytest.mark.parametrize("kind", KINDS)
def test_dims_dtypes_and_finite(probe, kind):
    check_dims_and_dtypes(probe, kind, DIMS[kind])
    assert set(probe[1][kind]["dims"]) == set(DIMS[kind])


@pytest.mark.parametrize("kind", KINDS)
def test_batch_equals_one_by_one_in_any_order(probe, kind):
    check_batch_equals_single(probe, kind)


@pytest.mark.parametrize("kind", KINDS)
def test_permutation_equivariant(probe, kind):
    check_permutation(probe, kind)


@pytest.mark.parametrize("kind", KINDS)
def test_energy_of_the_feature_pass_equals_metatomic_calculator(probe, kind):
    check_energy_equals_calculator(probe, kind)


def test_checkpoint_and_exported_model_agree(probe):
    """The eager .ckpt path and the TorchScript .pt path give the same ll and node."""
    arrays, _ = probe
    for s in range(4):
        for layer in ("ll", "node"):
            ckpt = arrays[f"ckpt/batch/{s}/{layer}"]
            np.testing.assert_allclose(arrays[f"pt/batch/{s}/{layer}"], ckpt,
                                       atol=1e-5 * scale(ckpt))  # fmt: skip


@pytest.mark.parametrize("kind", KINDS)
def test_not_rotation_invariant_and_recorded(probe, kind):
    change = rotation_change(probe, kind, "ll")
    assert change > 1e-3, change
    meta = probe[1][kind]["metadata"]
    assert 1e-3 < meta["rotation_sensitivity"]["ll"] < 10.0
    assert meta["symmetry"].startswith("none")


def test_provenance(probe):
    _, record = probe
    ckpt, pt = record["ckpt"]["metadata"], record["pt"]["metadata"]
    assert ckpt["package"] == "metatrain" and ckpt["package_version"] == "2026.4.1"
    assert ckpt["metatomic_torch_version"] == "0.1.19"
    assert ckpt["format"] == "metatrain checkpoint" and pt["format"] == "exported metatomic model"
    assert ckpt["checkpoint"] == "pet-random.ckpt" and len(ckpt["checkpoint_sha256"]) == 16
    assert ckpt["dtype"] == "float32"


def test_float64_close_to_float32(probe):
    arrays, _ = probe
    for s in range(4):
        wide = arrays[f"ckpt/float64/{s}/ll"]
        assert wide.dtype == np.float64
        narrow = arrays[f"ckpt/batch/{s}/ll"]
        assert np.abs(wide - narrow).max() <= 1e-3 * np.abs(wide).max()


def test_bundled_metatrain_checkpoints(probe):
    """Every PET checkpoint format version shipped with metatrain loads, and its feature
    pass reproduces metatomic's calculator energy."""
    arrays, record = probe
    bundled = record["bundled"]
    assert len(bundled) >= 30
    for name, dims in bundled.items():
        assert dims["ll"] > 0 and dims["bb"] > 0, name
        ours, theirs = arrays[f"bundled/{name}/energy"]
        assert abs(ours - theirs) <= 1e-4 * max(1.0, abs(theirs)), (name, ours, theirs)
        assert np.isfinite(arrays[f"bundled/{name}/ll"]).all()


def test_named_errors(probe):
    check_errors(probe, "pet", others=("orb", "mattersim"))


def test_relative_and_home_paths(probe):
    check_paths(probe)


def test_rotational_averaging(probe):
    check_rotation_averaging(probe, "pet")


def test_featurize_through_the_worker(probe):
    check_featurize_through_worker(probe, "pet", "ckpt", structures())
