"""``uma:<checkpoint>[@task]`` (fairchem-core), measured in the 'uma-dpa' environment.

fairchem-core cannot be installed next to the main environment's packages, so the numbers
come from ``tests/uma_probe.py`` run by that environment's Python (built with
``mlipspace env create uma-dpa``) on random-init checkpoints it builds with fairchem's own
code; the assertions run here. A missing environment is a failure naming the command, not
a skip. The adapter contract (shapes, dtypes, batching, symmetry) is checked for ``uma:``
by test_model_contract.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from family_checks import check_featurized_by_name, check_named_error, probe_fixture
from mlipspace.models import model_card

pytestmark = pytest.mark.models

ENVIRONMENT = "uma-dpa"


probe = probe_fixture(ENVIRONMENT, "uma_probe.py", folder=True)


def test_layers_of_the_test_built_checkpoint(probe):
    arrays, record, _ = probe
    assert record["dims"] == {
        "ll": 32, "node": 32, "bb": 64, "layer:0": 32, "layer:1": 32, "layer:2": 32
    }  # fmt: skip
    for s, n in enumerate(record["n_atoms"]):
        assert arrays[f"omat/{s}/bb"].shape == (n, 64)
        np.testing.assert_array_equal(
            arrays[f"omat/{s}/bb"],
            np.hstack([arrays[f"omat/{s}/layer:1"], arrays[f"omat/{s}/layer:2"]]),
        )
        np.testing.assert_array_equal(arrays[f"omat/{s}/ll"], arrays[f"omat/{s}/node"])


def test_features_equal_what_fairchems_calculator_computes(probe):
    """``node``/``ll`` are the backbone output fairchem's own FAIRChemCalculator computes on
    the same file (its full energy+forces+stress pass, hooked)."""
    arrays, record, _ = probe
    for s in range(len(record["n_atoms"])):
        ours = arrays[f"omat/{s}/node"]
        theirs = arrays[f"calc/{s}/node"]
        assert ours.shape == theirs.shape
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-5 * np.abs(theirs).max())
        assert np.isfinite(arrays[f"calc/{s}/energy"]).all()


def test_task_changes_the_features(probe):
    """The task sets the system embedding: from layer 0 on, omol differs from omat."""
    arrays, _, _ = probe
    for layer in ("layer:0", "layer:1", "ll"):
        assert np.abs(arrays[f"omol/0/{layer}"] - arrays[f"omat/0/{layer}"]).max() > 1e-3, layer


def test_relative_and_home_paths(probe):
    arrays, _, _ = probe
    scale = np.abs(arrays["omat/0/ll"]).max()
    for key in ("relative", "home"):  # one structure against a batch of four: round-off
        np.testing.assert_allclose(arrays[f"{key}/0/ll"], arrays["omat/0/ll"], atol=1e-5 * scale)


def test_provenance(probe):
    _, record, out = probe
    meta = record["metadata"]
    assert meta["checkpoint_path"] == str(out / "uma-small.pt")
    assert len(meta["checkpoint_sha256"]) == 64
    assert meta["task"] == "omat" and meta["tasks"] == "omat,omol"
    assert meta["package"] == "fairchem-core" and meta["package_version"] == "2.24.0"
    assert meta["dtype"] == "float32"
    # measured on a rattled cell: invariant under rotations and permutations (round-off)
    assert float(meta["rotation_sensitivity"]) < 1e-5
    assert float(meta["permutation_sensitivity"]) < 1e-5
    assert float(meta["mirror_sensitivity"]) >= 0


@pytest.mark.parametrize(
    ("case", "pattern"),
    [
        ("missing", r"uma:absent.pt: no such checkpoint file"),
        ("task", r"uma-small.pt has no task 'oc20'; it has omat, omol"),
        ("other", r"other.pt: not a fairchem inference checkpoint"),
        ("garbage", r"garbage.pt: fairchem cannot load the checkpoint"),
        ("mismatch", r"mismatch.pt: the weights do not match the architecture"),
    ],
)
def test_errors_are_named(probe, case, pattern):
    check_named_error(probe[1]["errors"], case, pattern)


def test_featurize_by_name_through_the_worker(probe, tmp_path):
    """From the main environment, ``uma:<file>`` runs in its worker and gives the probe's
    features (the loader path a user's checkpoint takes)."""
    arrays, _, out = probe
    name = f"uma:{out / 'uma-small.pt'}"
    check_featurized_by_name(name, arrays, "omat", tmp_path / "s.zarr", rtol=1e-5)


def test_card():
    card = model_card("uma:x.pt")
    assert card.architecture == "UMA" and card.environment == ENVIRONMENT
    assert card.symmetry == "SO(3)"  # eSCN tracks no parity: mirrors move the features
