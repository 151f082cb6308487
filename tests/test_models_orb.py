"""Orb-v3 adapter (``orb:<checkpoint>``), measured in the 'orb-pet-mattersim' environment.

``tests/families_probe.py orb`` builds released-size random-init Orb-v3 conservative
and direct models with orb-models' own architecture functions, saves their state dicts
as a user's download would be, and loads them back through ``orb:<path>`` (which calls
the package's ``pretrained.orb_v3_*`` loader). A missing environment fails the tests.
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
)

pytestmark = pytest.mark.models

KINDS = ("conservative", "direct")
# released architecture: 256-wide latents, encoder + 5 message-passing steps
DIMS = {"ll": 256, "node": 256, "bb": 1280, **{f"layer:{i}": 256 for i in range(6)}}


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    return run_probe("orb", tmp_path_factory.mktemp("orb_probe"))


@pytest.mark.parametrize("kind", KINDS)
def test_dims_dtypes_and_finite(probe, kind):
    check_dims_and_dtypes(probe, kind, DIMS)


@pytest.mark.parametrize("kind", KINDS)
def test_batch_equals_one_by_one_in_any_order(probe, kind):
    check_batch_equals_single(probe, kind)


@pytest.mark.parametrize("kind", KINDS)
def test_permutation_equivariant(probe, kind):
    check_permutation(probe, kind)


@pytest.mark.parametrize("kind", KINDS)
def test_not_rotation_invariant_and_recorded(probe, kind):
    """Orb has no equivariant layers: a rotation changes its features, and metadata says how much."""
    change = rotation_change(probe, kind, "ll")
    assert change > 1e-3, change
    sensitivity = probe[1][kind]["metadata"]["rotation_sensitivity"]
    assert set(sensitivity) == {"ll", "bb"}
    assert 1e-3 < sensitivity["ll"] < 10.0
    assert probe[1][kind]["metadata"]["symmetry"].startswith("none")


@pytest.mark.parametrize("kind", KINDS)
def test_energy_of_the_feature_pass_equals_orb_calculator(probe, kind):
    check_energy_equals_calculator(probe, kind)


def test_node_and_ll_are_the_last_layer(probe):
    arrays, _ = probe
    for s in range(4):
        np.testing.assert_array_equal(arrays[f"conservative/batch/{s}/ll"],
                                      arrays[f"conservative/batch/{s}/node"])  # fmt: skip


def test_loader_chosen_from_file_name_and_weights(probe):
    _, record = probe
    assert record["conservative"]["metadata"]["loader"] == "orb_v3_conservative_inf_omat"
    assert record["direct"]["metadata"]["loader"] == "orb_v3_direct_inf_omat"
    assert record["conservative"]["metadata"]["training_data"] == "OMat24"
    assert record["conservative"]["metadata"]["max_num_neighbors"] == 120


def test_provenance(probe):
    _, record = probe
    meta = record["conservative"]["metadata"]
    assert meta["package"] == "orb-models" and meta["package_version"] == "0.5.5"
    assert meta["checkpoint"] == "orb-v3-conservative-inf-omat-random.ckpt"
    assert len(meta["checkpoint_sha256"]) == 16
    assert meta["dtype"] == "float32"


def test_float64_close_to_float32(probe):
    arrays, _ = probe
    for s in range(4):
        wide = arrays[f"conservative/float64/{s}/ll"]
        assert wide.dtype == np.float64
        narrow = arrays[f"conservative/batch/{s}/ll"]
        assert np.abs(wide - narrow).max() <= 1e-3 * np.abs(wide).max()


def test_named_errors(probe):
    check_errors(probe, "orb", others=("pet", "mattersim"))


def test_relative_and_home_paths(probe):
    check_paths(probe)


def test_rotational_averaging(probe):
    check_rotation_averaging(probe, "orb")


def test_featurize_through_the_worker(probe):
    check_featurize_through_worker(probe, "orb", "conservative", structures())
