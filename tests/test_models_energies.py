"""The energy of the feature pass is the package calculator's, for the shipped models.

CHGNet, SevenNet and DIEP compute their features in the pass that gives the energy
(``adapter.forward``, no forces): that energy must equal the one of the package's own ASE
calculator on the same weights (1e-5 eV/atom), and a float64 model's the float32 model's
(1e-4 eV/atom). Each family's own checks stay in ``tests/test_models_<family>.py``; the
adapter contract is checked for every model in test_model_contract.py.
"""

from __future__ import annotations

import importlib.util

import pytest

from conftest import (
    assert_energies_match_calculator,
    assert_float64_energies_match,
    small_structure_set,
)
from mlipspace.featurization import load_model

pytestmark = pytest.mark.models

#: the package each model needs -> the models whose energies are checked
MODELS = {
    "chgnet": ["chgnet-0.3.0", "chgnet-0.2.0", "chgnet-r2scan"],
    "sevenn": [
        "sevennet-0",
        "sevennet-0-22may2024",
        "sevennet-l3i5",
        "sevennet-mf-0:PBE",
        "sevennet-mf-0:R2SCAN",
    ],
    "diep": ["diep"],
}
#: one model per package in float64
FLOAT64 = {"chgnet": ["chgnet-0.3.0"], "sevenn": ["sevennet-0"], "diep": ["diep"]}


def _installed(models: dict[str, list[str]]) -> list:
    """``models`` as pytest params, skipped where their package is not installed."""
    return [
        pytest.param(
            name,
            marks=pytest.mark.skipif(
                importlib.util.find_spec(package) is None, reason=f"{package} not installed"
            ),
        )
        for package, names in models.items()
        for name in names
    ]


@pytest.mark.parametrize("name", _installed(MODELS))
def test_energy_of_the_feature_pass_equals_the_calculator(name):
    adapter = load_model(name)
    structures = small_structure_set()
    _, energies = adapter.forward(structures, ["ll"])
    assert_energies_match_calculator(adapter, structures, energies)


@pytest.mark.parametrize("name", _installed(FLOAT64))
def test_float64_energies_match_float32(name):
    import torch

    assert_float64_energies_match(name, small_structure_set())
    assert torch.get_default_dtype() == torch.float32  # restored after the float64 pass
