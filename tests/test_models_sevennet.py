"""SevenNet adapters on the real checkpoints shipped in the sevenn wheel.

The adapter contract (dimensions, batching, symmetry, errors) is checked for every model
in test_model_contract.py, the energies of the feature pass in test_models_energies.py;
these are SevenNet's own checks.
"""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms

from conftest import calculator_energies, run_model_checks, small_structure_set
from mlipspace.errors import ModelError
from mlipspace.featurization import load_model
from mlipspace.models import get_model, model_specs

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


# -- a user's checkpoint: sevennet:<file>[@modal] ------------------------------------------


def _resave(name: str, path, perturb: float = 0.0, random_state: int = 0):
    """Save the shipped checkpoint of ``name`` again, as a user's file (weights optionally
    moved by ``perturb`` x N(0, 1): a stand-in for a fine-tune)."""
    import torch

    from mlipspace.models.sevennet import _checkpoint_path

    raw = torch.load(_checkpoint_path(name), map_location="cpu", weights_only=False)
    if perturb:
        generator = torch.Generator().manual_seed(random_state)
        for value in raw["model_state_dict"].values():
            if torch.is_floating_point(value) and value.ndim == 2:
                value.add_(perturb * torch.randn(value.shape, generator=generator))
    torch.save(raw, path)
    return path


def _featurize(structures, name, layers):
    import mlipspace

    out = mlipspace.featurize(structures, name, layer=layers)
    return {layer: [f.X[f.structure_index == i] for i in range(len(structures))]
            for layer, f in out.items()}  # fmt: skip


def test_user_checkpoint_equals_the_shipped_model(tmp_path, monkeypatch):
    """A re-saved SevenNet-0 loaded by name (absolute, relative and ~ paths) through
    mlipspace's featurize gives sevennet-0's features exactly."""
    structures = small_structure_set()
    path = _resave("sevennet-0", tmp_path / "checkpoint_mine.pth")
    reference = load_model("sevennet-0").compute(structures, ["ll", "bb"])
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in (
        f"sevennet:{path}",
        "sevennet:checkpoint_mine.pth",
        "sevennet:~/checkpoint_mine.pth",
    ):
        ours = _featurize(structures, name, ["ll", "bb"])
        for layer in ("ll", "bb"):
            for x, y in zip(ours[layer], reference[layer], strict=True):
                np.testing.assert_array_equal(x, y)


def test_fine_tuned_checkpoint_matches_the_packages_calculator(tmp_path):
    """Moved weights: features change, and the feature pass's energy equals that of
    sevenn's own calculator loading the same file."""
    from sevenn.calculator import SevenNetCalculator

    structures = small_structure_set()
    path = _resave("sevennet-0", tmp_path / "tuned.pth", perturb=1e-2)
    adapter = get_model(f"sevennet:{path}")
    features, energies = adapter.forward(structures, ["bb"])
    reference = load_model("sevennet-0").compute(structures, ["bb"])["bb"]
    assert max(np.abs(x - y).max() for x, y in zip(features["bb"], reference, strict=True)) > 1e-3
    theirs = calculator_energies(SevenNetCalculator(str(path), device="cpu"), structures)
    np.testing.assert_allclose(energies / [len(a) for a in structures],
                               theirs / [len(a) for a in structures], atol=1e-5)  # fmt: skip


def test_multi_fidelity_user_checkpoint_takes_its_modal(tmp_path):
    structures = small_structure_set()[:2]
    path = _resave("sevennet-mf-0", tmp_path / "mf.pth")
    ours = get_model(f"sevennet:{path}@R2SCAN").compute(structures, ["ll"])["ll"]
    shipped = load_model("sevennet-mf-0:R2SCAN").compute(structures, ["ll"])["ll"]
    for x, y in zip(ours, shipped, strict=True):
        np.testing.assert_array_equal(x, y)
    meta = get_model(f"sevennet:{path}@PBE").metadata()
    assert meta["modal"] == "PBE" and meta["checkpoint_path"] == str(path)
    assert len(meta["checkpoint_sha256"]) == 64 and meta["is_parity"] is False


def test_user_checkpoint_errors_are_named(tmp_path):
    import torch

    from mlipspace.errors import CheckpointError

    mf = _resave("sevennet-mf-0", tmp_path / "mf.pth")
    single = _resave("sevennet-0", tmp_path / "single.pth")
    with pytest.raises(CheckpointError, match=r"mf.pth needs a modal: .*PBE, R2SCAN"):
        get_model(f"sevennet:{mf}")
    with pytest.raises(CheckpointError, match=r"mf.pth has no modal 'HSE'; it has PBE, R2SCAN"):
        get_model(f"sevennet:{mf}@HSE")
    with pytest.raises(CheckpointError, match=r"single.pth has a single fidelity"):
        get_model(f"sevennet:{single}@PBE")
    with pytest.raises(CheckpointError, match=r"absent.pth: no such checkpoint file"):
        get_model(f"sevennet:{tmp_path}/absent.pth")
    torch.save({"model": {"state_dict": {}, "model_args": {}}}, tmp_path / "chgnet.pth.tar")
    with pytest.raises(CheckpointError, match=r"chgnet.pth.tar: not a SevenNet checkpoint"):
        get_model(f"sevennet:{tmp_path}/chgnet.pth.tar")
    raw = torch.load(single, weights_only=False)
    raw["config"]["num_convolution_layer"] = 4  # the weights hold 5 interactions
    torch.save(raw, tmp_path / "mismatch.pth")
    with pytest.raises(CheckpointError, match=r"mismatch.pth: the weights do not match"):
        get_model(f"sevennet:{tmp_path}/mismatch.pth")
    assert model_specs()["sevennet:"].card.architecture == "SevenNet"
