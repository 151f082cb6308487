"""CHGNet adapters on the real checkpoints shipped in the chgnet wheel.

The adapter contract (dimensions, batching, symmetry, errors) is checked for every model
in test_model_contract.py, the energies of the feature pass in test_models_energies.py;
these are CHGNet's own checks.
"""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms

from conftest import calculator_energies, small_structure_set
from mlipspace.errors import ModelError
from mlipspace.featurization import load_model
from mlipspace.models import get_model, model_specs

pytestmark = pytest.mark.models
pytest.importorskip("chgnet")

NAMES = ["chgnet-0.3.0", "chgnet-0.2.0", "chgnet-r2scan"]


@pytest.mark.parametrize("name", NAMES)
def test_official_atom_and_crystal_features_agree(name):
    # chgnet's own return_atom_feas is the output of the 3rd conv; crystal_fea the sum of
    # the read-out input over atoms
    from pymatgen.io.ase import AseAtomsAdaptor

    adapter = load_model(name)
    atoms = small_structure_set()[0]
    official = adapter.model.predict_structure(
        AseAtomsAdaptor.get_structure(atoms), task="e", return_atom_feas=True,
        return_crystal_feas=True,
    )  # fmt: skip
    ours = adapter.compute([atoms], ["layer:3", "node"])
    np.testing.assert_allclose(ours["layer:3"][0], official["atom_fea"], atol=1e-5)
    np.testing.assert_allclose(ours["node"][0].sum(0), official["crystal_fea"], atol=1e-4)


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


# -- a user's checkpoint: chgnet:<file> ----------------------------------------------------


def _save_like_the_trainer(path, perturb: float = 0.0, random_state: int = 0):
    """CHGNet 0.3.0 saved as chgnet's ``Trainer.save`` writes it (``{"model": as_dict()}``),
    weights optionally moved by ``perturb`` x N(0, 1) (a stand-in for a fine-tune)."""
    import torch
    from chgnet.model import CHGNet

    model = CHGNet.load(model_name="0.3.0", use_device="cpu", verbose=False)
    if perturb:
        generator = torch.Generator().manual_seed(random_state)
        with torch.no_grad():
            for p in model.parameters():
                if p.ndim == 2:
                    p.add_(perturb * torch.randn(p.shape, generator=generator))
    torch.save({"model": model.as_dict(), "optimizer": {}, "trainer_args": {}}, path)
    return path


def test_user_checkpoint_equals_the_shipped_model(tmp_path, monkeypatch):
    import mlipspace

    structures = small_structure_set()
    _save_like_the_trainer(tmp_path / "mine.pth.tar")
    reference = load_model("chgnet-0.3.0").compute(structures, ["ll", "bb"])
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("chgnet:mine.pth.tar", "chgnet:~/mine.pth.tar"):
        ours = mlipspace.featurize(structures, name, layer=["ll", "bb"])
        for layer in ("ll", "bb"):
            for i, y in enumerate(reference[layer]):
                np.testing.assert_array_equal(ours[layer].X[ours[layer].structure_index == i], y)
    meta = get_model("chgnet:mine.pth.tar").metadata()
    assert meta["checkpoint_path"] == str(tmp_path / "mine.pth.tar")
    assert len(meta["checkpoint_sha256"]) == 64 and meta["package_version"] == "0.4.2"


def test_fine_tuned_checkpoint_matches_the_packages_calculator(tmp_path):
    from chgnet.model import CHGNet
    from chgnet.model.dynamics import CHGNetCalculator

    structures = small_structure_set()
    path = _save_like_the_trainer(tmp_path / "tuned.pth.tar", perturb=1e-2)
    adapter = get_model(f"chgnet:{path}")
    features, energies = adapter.forward(structures, ["ll"])
    reference = load_model("chgnet-0.3.0").compute(structures, ["ll"])["ll"]
    assert max(np.abs(x - y).max() for x, y in zip(features["ll"], reference, strict=True)) > 1e-3
    calc = CHGNetCalculator(model=CHGNet.from_file(str(path)), use_device="cpu")
    theirs = calculator_energies(calc, structures)
    counts = [len(a) for a in structures]
    np.testing.assert_allclose(energies / counts, theirs / counts, rtol=1e-5, atol=1e-5)


def test_user_checkpoint_errors_are_named(tmp_path):
    import torch

    from mlipspace.errors import CheckpointError

    with pytest.raises(CheckpointError, match=r"absent.pth.tar: no such checkpoint file"):
        get_model(f"chgnet:{tmp_path}/absent.pth.tar")
    torch.save({"config": {}, "model_state_dict": {}}, tmp_path / "sevennet.pth")
    with pytest.raises(CheckpointError, match=r"sevennet.pth: not a CHGNet checkpoint"):
        get_model(f"chgnet:{tmp_path}/sevennet.pth")
    raw = torch.load(_save_like_the_trainer(tmp_path / "ok.pth.tar"), weights_only=False)
    raw["model"]["model_args"]["atom_fea_dim"] = 32  # the weights are 64 wide
    torch.save(raw, tmp_path / "mismatch.pth.tar")
    with pytest.raises(CheckpointError, match=r"mismatch.pth.tar: the weights do not match"):
        get_model(f"chgnet:{tmp_path}/mismatch.pth.tar")
    assert model_specs()["chgnet:"].card.architecture == "CHGNet"
