"""SevenNet adapters on the real checkpoints shipped in the sevenn wheel.

The adapter contract (dimensions, batching, symmetry, errors) is checked for every model
in test_model_contract.py; these are SevenNet's own checks.
"""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms

from conftest import (
    assert_energies_match_calculator,
    assert_float64_energies_match,
    calculator_energies,
    run_model_checks,
    small_structure_set,
)
from mlipspace.errors import ModelError
from mlipspace.featurization import load_model
from mlipspace.models import get_model

pytestmark = pytest.mark.models
pytest.importorskip("sevenn")

NAMES = [
    "sevennet-0",
    "sevennet-0-22may2024",
    "sevennet-l3i5",
    "sevennet-mf-0:PBE",
    "sevennet-mf-0:R2SCAN",
]
LAYERS = ["ll", "node", "bb", "layer:0", "layer:2"]
TOL = 1e-4


@pytest.fixture(scope="module", params=NAMES)
def checked(request):
    adapter = load_model(request.param)
    structures = small_structure_set()
    return adapter, structures, run_model_checks(adapter, structures, LAYERS)


def test_mirror_sensitivity_is_measured(checked):
    # is_parity=False: the 0e channels are SO(3)- but not O(3)-invariant. Measured and
    # recorded in docs/models.md; here only: reflections move the deep features far more
    # than proper rotations do (round-off), while the element embedding does not move.
    _, _, checks = checked
    print(checks.name, "mirror", checks.mirror, "proper", checks.proper)
    assert checks.mirror["layer:0"] <= TOL
    assert checks.mirror["bb"] > 10 * checks.proper["bb"]


def test_energy_of_the_feature_pass_equals_the_calculator(checked):
    adapter, structures, checks = checked
    assert_energies_match_calculator(adapter, structures, checks.energies)


def test_features_equal_the_calculators_readout_input(checked):
    # hook the package's own calculator (full E+F+S pass) at the read-out input
    adapter, structures, _ = checked
    calc = adapter.calculator()
    captured = {}
    module = calc.model._modules["reduce_input_to_hidden"]
    handle = module.register_forward_pre_hook(
        lambda m, args: captured.__setitem__("x", args[0]["x"].detach().clone())
    )
    try:
        calculator_energies(calc, structures[:1])
    finally:
        handle.remove()
    ours = adapter.compute(structures[:1], ["node"])["node"][0]
    np.testing.assert_allclose(ours, captured["x"][:, :128].numpy(), atol=1e-4)


def test_fidelity_heads_differ():
    structures = small_structure_set()[:1]
    pbe = load_model("sevennet-mf-0:PBE").compute(structures, ["layer:0", "ll"])
    r2 = load_model("sevennet-mf-0:R2SCAN").compute(structures, ["layer:0", "ll"])
    np.testing.assert_array_equal(pbe["layer:0"][0], r2["layer:0"][0])  # element embedding
    assert np.abs(pbe["ll"][0] - r2["ll"][0]).max() > 0.1


def test_float64_energies_match_float32():
    assert_float64_energies_match("sevennet-0", small_structure_set())


def test_isolated_atom_works():
    adapter = load_model("sevennet-0")
    lone = Atoms("Cu", positions=[[0, 0, 0]], cell=np.eye(3) * 15, pbc=True)
    features, energy = adapter.forward([lone], ["ll", "layer:0"])
    assert np.isfinite(features["ll"][0]).all()
    reference = calculator_energies(adapter.calculator(), [lone])
    np.testing.assert_allclose(energy, reference, atol=1e-5)


def test_unknown_fidelity_and_metadata():
    with pytest.raises(ModelError, match="unknown model"):
        get_model("sevennet-mf-0:pbe")
    adapter = load_model("sevennet-0")
    assert 8 in adapter.supported_elements() and 84 not in adapter.supported_elements()
    meta = adapter.metadata()
    assert meta["package_version"] == "0.13.0" and meta["checkpoint"] == "checkpoint_sevennet_0.pth"


def test_structures_are_packed_into_passes_of_bounded_size():
    from mlipspace.models.torch_base import pack_by_atoms

    sizes = [len(g) for g in pack_by_atoms([Atoms("H" * n) for n in (100, 20, 10, 200, 5)], 128)]
    assert sizes == [2, 1, 1, 1]  # 120 | 10 (+200 would overflow) | 200 alone | 5
