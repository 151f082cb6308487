"""DIEP adapter on the real diep_fold1 model shipped in the diep wheel.

The adapter contract (dimensions, batching, symmetry, errors) is checked for every model
in test_model_contract.py, the energies of the feature pass in test_models_energies.py;
these are DIEP's own checks.
"""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms

from conftest import calculator_energies, small_structure_set
from mlipspace.featurization import load_model

pytestmark = pytest.mark.models
pytest.importorskip("diep")


@pytest.fixture(scope="module")
def checked():
    return load_model("diep"), small_structure_set()


def test_node_features_equal_the_official_predict_structure(checked):
    adapter, structures = checked
    from pymatgen.io.ase import AseAtomsAdaptor

    atoms = structures[0]
    official = adapter.potential.model.predict_structure(
        AseAtomsAdaptor.get_structure(atoms), return_features=True
    )
    ours = adapter.compute([atoms], ["layer:1", "node"])
    np.testing.assert_allclose(
        ours["layer:1"][0], official["gc_1"]["node_feat"].detach(), atol=1e-4
    )
    np.testing.assert_allclose(ours["node"][0], official["gc_3"]["node_feat"].detach(), atol=1e-4)


def test_ll_reproduces_the_atomic_energies(checked):
    # the read-out is (w.a + b) * sigmoid(v.c + d) of ll = [a | c]
    import torch

    adapter, structures = checked
    gated = adapter.potential.model.final_layer.gated
    ll = torch.as_tensor(adapter.compute(structures[:1], ["ll"])["ll"][0])
    value, gate = ll[:, :64], ll[:, 64:]
    atomic = gated.layers[-1](value) * gated.gates[-1](gated.gates[-2](gate))
    node = torch.as_tensor(adapter.compute(structures[:1], ["node"])["node"][0])
    np.testing.assert_allclose(atomic.detach(), gated(node).detach(), atol=1e-5)


def test_isolated_atom_works():
    adapter = load_model("diep")
    lone = Atoms("Cu", positions=[[0, 0, 0]], cell=np.eye(3) * 15, pbc=True)
    features, energy = adapter.forward([lone], ["ll"])
    assert np.isfinite(features["ll"][0]).all()
    np.testing.assert_allclose(energy, calculator_energies(adapter.calculator(), [lone]), atol=1e-5)


def test_unsupported_elements():
    adapter = load_model("diep")
    assert 84 not in adapter.supported_elements()  # Po is excluded from DIEP's elements
    assert {1, 8, 26, 94} <= adapter.supported_elements()
