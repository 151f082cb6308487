"""CHGNet adapters on the real checkpoints shipped in the chgnet wheel.

The adapter contract (dimensions, batching, symmetry, errors) is checked for every model
in test_model_contract.py; these are CHGNet's own checks.
"""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms

from conftest import (
    assert_energies_match_calculator,
    assert_float64_energies_match,
    small_structure_set,
)
from mlipspace.errors import ModelError
from mlipspace.featurization import load_model

pytestmark = pytest.mark.models
pytest.importorskip("chgnet")

NAMES = ["chgnet-0.3.0", "chgnet-0.2.0", "chgnet-r2scan"]


@pytest.fixture(scope="module", params=NAMES)
def checked(request):
    adapter = load_model(request.param)
    structures = small_structure_set()
    _, energies = adapter.forward(structures, ["ll"])
    return adapter, structures, energies


def test_energy_of_the_feature_pass_equals_the_calculator(checked):
    adapter, structures, energies = checked
    assert_energies_match_calculator(adapter, structures, energies)


def test_official_atom_and_crystal_features_agree(checked):
    # chgnet's own return_atom_feas is the output of the 3rd conv; crystal_fea the sum of
    # the read-out input over atoms
    adapter, structures, _ = checked
    from pymatgen.io.ase import AseAtomsAdaptor

    atoms = structures[0]
    official = adapter.model.predict_structure(
        AseAtomsAdaptor.get_structure(atoms), task="e", return_atom_feas=True,
        return_crystal_feas=True,
    )  # fmt: skip
    ours = adapter.compute([atoms], ["layer:3", "node"])
    np.testing.assert_allclose(ours["layer:3"][0], official["atom_fea"], atol=1e-5)
    np.testing.assert_allclose(ours["node"][0].sum(0), official["crystal_fea"], atol=1e-4)


def test_float64_energies_match_float32():
    assert_float64_energies_match("chgnet-0.3.0", small_structure_set())


def test_isolated_atom_fails_clearly():
    adapter = load_model("chgnet-0.2.0")
    lone = Atoms("Cu", positions=[[0, 0, 0]], cell=np.eye(3) * 15, pbc=True)
    lone.info["source"] = "lone-copper"
    with pytest.raises(ModelError, match=r"lone-copper.*isolated"):
        adapter.compute([lone], ["ll"])


def test_supported_elements_and_metadata():
    adapter = load_model("chgnet-0.2.0")
    assert adapter.supported_elements() == set(range(1, 95))
    meta = adapter.metadata()
    assert meta["package_version"] == "0.4.2"
    assert meta["checkpoint"] == "chgnet_0.2.0_e30f77s348m32.pth.tar"
    assert len(meta["checkpoint_sha256"]) == 16
