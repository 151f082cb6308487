"""The adapter contract, checked on every registered model (built-in or plugin).

Like scikit-learn's ``parametrize_with_checks``, every check below runs once per
registered spec (``mlipspace.models.model_specs()``); a new family is covered as soon as
its specs are registered. For each spec:

1. ``tests/model_instances.py`` gives the model name to load. A plain spec is loaded
   under its own name; a parametrised spec (``"mace:"``, ``"orb:"`` ...) needs a provider
   there that builds a small random-init checkpoint with the package's own code and
   returns e.g. ``"mace:<tmp>/small.model"``. A parametrised spec without a provider
   fails here, naming the file to edit.
2. ``tests/model_contract_probe.py`` loads it and measures everything on four small
   structures (14 atoms). Specs whose card's ``environment`` is ``"main"`` are measured
   in this process; the others by the probe run with their environment's Python (built
   by ``mlipspace env create <environment>``; a missing environment fails, naming the
   command), exactly as features are computed for them.
3. The checks below assert on that record:

* layer dimensions equal ``layer_dims()`` and the spec's listed layers, every standard
  layer is offered, ``bb`` is ``layer:1..n`` side by side;
* arrays are float32 by default and float64 on request (agreeing to 1e-4), finite, of
  shape ``(n_atoms, dim)``; an empty batch gives empty lists;
* a batch gives what one structure at a time gives, whatever the order of the batch;
* permuting the atoms permutes the features;
* rotations, per the card's ``symmetry``: ``O(3)`` models are invariant under proper
  and improper rotations, ``SO(3)`` models under proper rotations (the mirror value is
  printed, not asserted), ``"none"`` models are not checked (the value is printed);
* a site of a 2x2x2 supercell has the primitive cell's features;
* an element outside ``supported_elements()`` raises ``UnsupportedElementError`` naming
  model, structure and element; an unknown layer raises ``ModelError``;
* no gradient is taken (no forces, no stress): torch's autograd is never called.

Tolerances are relative to the largest feature magnitude of the layer.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from family_checks import run_in_env
from mlipspace.featurization import envs
from mlipspace.models import STANDARD_LAYERS, model_specs

pytestmark = pytest.mark.models

SPECS = sorted(model_specs())
#: round-off of float32 features relative to their largest magnitude
TOL = 1e-4
#: a batch against one structure at a time: the same operations, summed in other orders
BATCH_TOL = 1e-5
#: float32 against float64, by architecture, where round-off measurably exceeds TOL: Orb-v3
#: (5 steps, MLP hidden 1024, RMS norms) differs by 0.8-1.04e-4 of the scale on every
#: contract structure, whatever the graph-construction dtype (measured 2026-12-07)
FLOAT64_TOL = {"Orb-v3": 3e-4}


def _probe_in_env(spec_name: str, environment: str, out: Path) -> dict:
    run_in_env(environment, "model_contract_probe.py", spec_name, out)
    return json.loads((out / "contract.json").read_text())


@pytest.fixture(scope="module", params=SPECS)
def record(request, tmp_path_factory) -> dict:
    """The contract measurements of one registered spec's test instance."""
    spec = model_specs()[request.param]
    if spec.weights_available is not None and not spec.weights_available():
        pytest.skip(f"{request.param}: weights or package not installed here")
    out = tmp_path_factory.mktemp("contract")
    environment = spec.card.environment
    if environment == envs.MAIN_FAMILY or envs.runs_here(environment):
        from model_contract_probe import measure

        result = measure(request.param, out)
    else:
        result = _probe_in_env(request.param, environment, out)
    result["card"] = spec.card
    return result


def test_layer_dims(record):
    dims = record["dims"]
    assert set(STANDARD_LAYERS) <= set(dims), dims
    if record["spec_layers"]:  # parametrised specs may not know them before loading
        assert dims == record["spec_layers"]
    for layer, shapes in record["shapes"].items():
        assert shapes == [[n, dims[layer]] for n in record["n_atoms"]], layer
    if "bb_is_layers_concatenated" in record:
        assert record["bb_is_layers_concatenated"] == 0.0


def test_dtypes_and_values(record):
    assert record["finite"]
    assert all(d == ["float32"] for d in record["dtypes"].values()), record["dtypes"]
    assert all(d == ["float64"] for d in record["float64_dtypes"].values())
    tol = FLOAT64_TOL.get(record["card"].architecture, TOL)
    for layer, err in record["float64"].items():
        assert err <= tol, (layer, err)
    assert set(record["empty"]) == set(record["dims"]) and not any(record["empty"].values())


def test_batch_equals_one_by_one(record):
    for layer, err in record["batch_vs_single"].items():
        assert err <= BATCH_TOL, (layer, err)


def test_features_do_not_depend_on_the_order_of_the_batch(record):
    for layer, err in record["order"].items():
        assert err <= BATCH_TOL, (layer, err)


def test_permutation_equivariance(record):
    for layer, err in record["permutation"].items():
        assert err <= TOL, (layer, err)


def test_rotation_invariance_per_symmetry(record):
    symmetry = record["card"].symmetry
    print(f"{record['name']} ({symmetry}): proper {record['proper']}, mirror {record['mirror']}")
    if symmetry == "none":
        pytest.skip(
            f"{record['name']} is not rotation-invariant by construction; measured: "
            f"{max(record['proper'].values()):.2e}"
        )
    checked = {"proper": record["proper"]}
    if symmetry == "O(3)":
        checked["mirror"] = record["mirror"]
    for kind, errors in checked.items():
        for layer, err in errors.items():
            assert err <= TOL, (kind, layer, err)


def test_supercell_site_has_the_primitive_features(record):
    for layer, err in record["supercell"].items():
        assert err <= TOL, (layer, err)


def test_unsupported_element_is_named(record):
    z = record["unsupported_element"]
    if z is None:
        pytest.skip(f"{record['name']} accepts every element up to Z=118")
    error = record["unsupported_error"]
    assert error["ok"], error
    for part in (record["name"], "contract-stranger", f"Z={z}"):
        assert part in error["message"], error


def test_unknown_layer_is_an_error(record):
    error = record["unknown_layer_error"]
    assert error["ok"] and "layer:99" in error["message"], error


def test_no_gradient_is_computed(record):
    assert record["autograd_calls"] == []


# -- the checks themselves can fail ----------------------------------------------------


def test_the_checks_catch_a_broken_adapter(tmp_path, monkeypatch):
    """A toy adapter whose features are positions minus the batch's mean position:
    permutation-equivariant, but neither batch-independent nor rotation-invariant."""
    import numpy as np
    import torch

    from mlipspace.models import ModelCard, ModelSpec, registry
    from mlipspace.models.torch_base import ForwardResult, TorchAdapter, layer_dims, torch_dtype
    from model_contract_probe import measure

    class Centred(TorchAdapter):
        name = "broken-toy"

        def layer_dims(self):
            return layer_dims(3, 3, [3, 3])

        def build_batch(self, structures):
            positions = np.concatenate([a.positions for a in structures])
            return torch.as_tensor(positions, dtype=torch_dtype(self.dtype))

        def run_model(self, batch, structures):
            h = batch - batch.mean(0)
            return ForwardResult(ll=h, node=h, per_layer=[h, h])

    spec = ModelSpec(
        name="broken-toy",
        factory=lambda argument=None, dtype="float32", device="cpu": Centred(dtype, device),
        layers=layer_dims(3, 3, [3, 3]),
        card=ModelCard(architecture="Toy", kind="control", symmetry="O(3)"),
    )
    monkeypatch.setattr(registry, "_SPECS", {**model_specs(), spec.name: spec})
    record = dict(measure("broken-toy", tmp_path), card=spec.card)
    test_layer_dims(record)
    test_permutation_equivariance(record)
    test_no_gradient_is_computed(record)
    for check in (
        test_batch_equals_one_by_one,
        test_features_do_not_depend_on_the_order_of_the_batch,
        test_rotation_invariance_per_symmetry,
        test_supercell_site_has_the_primitive_features,
    ):
        with pytest.raises(AssertionError):
            check(record)
