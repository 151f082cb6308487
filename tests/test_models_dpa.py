"""``dpa:<checkpoint>[@head]`` (deepmd-kit DPA-3), measured in the 'uma-dpa' environment.

deepmd-kit runs in its worker environment, so the numbers come from ``tests/dpa_probe.py``
run by that environment's Python (built with ``mlipspace env create uma-dpa``) on
random-init models it builds with deepmd-kit's own code; the assertions run here. A
missing environment is a failure naming the command, not a skip. The adapter contract
(shapes, dtypes, batching, symmetry) is checked for ``dpa:`` by test_model_contract.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from family_checks import check_featurized_by_name, check_named_error, probe_fixture
from mlipspace.models import model_card

pytestmark = pytest.mark.models

ENVIRONMENT = "uma-dpa"


probe = probe_fixture(ENVIRONMENT, "dpa_probe.py", folder=True)


def test_layers_of_the_test_built_model(probe):
    """n_dim 32, 2 RepFlow layers, fitting net 48-48: ll 48, node 32, bb 2 x 32."""
    arrays, record, _ = probe
    assert record["dims"] == {
        "ll": 48, "node": 32, "bb": 64, "layer:0": 32, "layer:1": 32, "layer:2": 32
    }  # fmt: skip
    for s, n in enumerate(record["n_atoms"]):
        assert arrays[f"pt/{s}/ll"].shape == (n, 48) and arrays[f"pt/{s}/ll"].dtype == np.float32
        np.testing.assert_array_equal(
            arrays[f"pt/{s}/bb"],
            np.hstack([arrays[f"pt/{s}/layer:1"], arrays[f"pt/{s}/layer:2"]]),
        )


def test_ll_and_node_are_deepmds_fitting_last_layer_and_descriptor(probe):
    """deepmd's own per-output functions (eval_fitting_last_layer, eval_descriptor) agree."""
    arrays, record, _ = probe
    for s in range(len(record["n_atoms"])):
        np.testing.assert_allclose(arrays[f"pt/{s}/ll"], arrays[f"fitting/{s}"], atol=1e-6)
        np.testing.assert_allclose(arrays[f"pt/{s}/node"], arrays[f"descriptor/{s}"], atol=1e-6)
        assert np.isfinite(arrays[f"calc/{s}/energy"]).all()  # deepmd's DP on the same file


def test_the_last_repflow_layer_feeds_the_descriptor(probe):
    """The descriptor is the last RepFlow layer's node embedding (concat_output_tebd off)."""
    arrays, record, _ = probe
    for s in range(len(record["n_atoms"])):
        np.testing.assert_allclose(arrays[f"pt/{s}/layer:2"], arrays[f"pt/{s}/node"], atol=1e-6)
        assert np.abs(arrays[f"pt/{s}/layer:1"] - arrays[f"pt/{s}/node"]).max() > 1e-3


def test_frozen_model_gives_the_same_ll_and_node(probe):
    arrays, record, _ = probe
    assert record["frozen_dims"] == {"ll": 48, "node": 32}  # TorchScript: no layer hooks
    for s in range(2):
        for layer in ("ll", "node"):
            np.testing.assert_allclose(arrays[f"pth/{s}/{layer}"], arrays[f"pt/{s}/{layer}"],
                                       atol=1e-6)  # fmt: skip


def test_multi_task_heads(probe):
    arrays, record, _ = probe
    assert record["head/omat"] == record["head/omat_lower"] == "Omat24"
    assert record["head/mptrj"] == "MPtrj"
    np.testing.assert_array_equal(arrays["omat/0/ll"], arrays["omat_lower/0/ll"])
    assert np.abs(arrays["omat/0/ll"] - arrays["mptrj/0/ll"]).max() > 1e-3


def test_relative_and_home_paths(probe):
    arrays, _, _ = probe
    for key in ("relative", "home"):
        np.testing.assert_array_equal(arrays[f"{key}/0/ll"], arrays["pt/0/ll"])


def test_provenance(probe):
    _, record, out = probe
    meta = record["metadata"]
    assert meta["checkpoint_path"] == str(out / "dpa-small.pt")
    assert len(meta["checkpoint_sha256"]) == 64
    assert meta["package"] == "deepmd-kit" and meta["package_version"] == "3.2.0"
    assert meta["head"] == "Default" and meta["dtype"] == "float32"
    assert meta["type_map"] == "H,C,N,O,Na,Si,Cl,Cu"
    for kind in ("rotation", "mirror", "permutation"):
        assert float(meta[f"{kind}_sensitivity"]) < 1e-5, kind


@pytest.mark.parametrize(
    ("case", "pattern"),
    [
        ("missing", r"dpa:absent.pt: no such checkpoint file"),
        ("nohead", r"dpa-multi.pt needs a head: append @<head> with one of Omat24, MPtrj"),
        ("badhead", r"dpa-multi.pt has no head 'PBE'; it has Omat24, MPtrj"),
        ("single_head", r"dpa-small.pt is single-task; drop '@Omat24'"),
        ("mismatch", r"mismatch.pt: the weights do not match the architecture"),
        ("garbage", r"garbage.pt: cannot read the checkpoint"),
        ("other", r"sevennet.pth: deepmd cannot build the model"),
    ],
)
def test_errors_are_named(probe, case, pattern):
    check_named_error(probe[1]["errors"], case, pattern)


def test_featurize_by_name_through_the_worker(probe, tmp_path):
    arrays, _, out = probe
    name = f"dpa:{out / 'dpa-small.pt'}"
    check_featurized_by_name(name, arrays, "pt", tmp_path / "s.zarr")


def test_card():
    card = model_card("dpa:x.pt")
    assert card.architecture == "DPA-3" and card.environment == ENVIRONMENT
    assert card.symmetry == "O(3)"
