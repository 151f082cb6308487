"""PET adapter (``pet:<.ckpt or exported .pt>``), measured in the 'orb-pet-mattersim' env.

``tests/families_probe.py pet`` builds a random-init PET with metatrain's default hypers
(``metatrain.pet.PET``), saves its checkpoint (``get_checkpoint()``, as training writes
it) and its exported metatomic model (``export().save()``), and loads both back through
``pet:<path>``; it also loads every PET test checkpoint shipped in the metatrain wheel
(one per checkpoint format version). A missing environment fails the tests.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from families_probe import ENV
from family_checks import NotRotationInvariantChecks, kind_fixture, probe_fixture, scale

pytestmark = pytest.mark.models

KINDS = ("ckpt", "pt")
# metatrain's default PET hypers: d_head 128 (node + edge heads), d_node 256, 2 GNN layers
DIMS = {
    "ckpt": {"ll": 256, "node": 384, "bb": 512, "layer:0": 256, "layer:1": 256, "layer:2": 256},
    "pt": {"ll": 256, "node": 384},
}


probe = probe_fixture(ENV, "families_probe.py", "pet", timeout=1800)
kind = kind_fixture(KINDS)


class TestPETProbe(NotRotationInvariantChecks):
    family = "pet"
    others = ("orb", "mattersim")
    dims = DIMS
    main = "ckpt"


def test_checkpoint_and_exported_model_agree(probe):
    """The eager .ckpt path and the TorchScript .pt path give the same ll and node."""
    arrays, _ = probe
    for s in range(4):
        for layer in ("ll", "node"):
            ckpt = arrays[f"ckpt/batch/{s}/{layer}"]
            np.testing.assert_allclose(arrays[f"pt/batch/{s}/{layer}"], ckpt,
                                       atol=1e-5 * scale(ckpt))  # fmt: skip


def test_provenance(probe):
    _, record = probe
    ckpt, pt = record["ckpt"]["metadata"], record["pt"]["metadata"]
    assert ckpt["package"] == "metatrain" and ckpt["package_version"] == "2026.4.1"
    assert ckpt["metatomic_torch_version"] == "0.1.19"
    assert ckpt["format"] == "metatrain checkpoint" and pt["format"] == "exported metatomic model"
    assert ckpt["checkpoint"] == "pet-random.ckpt" and len(ckpt["checkpoint_sha256"]) == 64
    assert ckpt["checkpoint_path"] == os.path.realpath(record["paths"]["ckpt"])
    assert ckpt["dtype"] == "float32"


def test_bundled_metatrain_checkpoints(probe):
    """Every PET checkpoint format version shipped with metatrain loads, and its feature
    pass reproduces metatomic's calculator energy."""
    arrays, record = probe
    bundled = record["bundled"]
    assert len(bundled) >= 30
    for name, dims in bundled.items():
        assert dims["ll"] > 0 and dims["bb"] > 0, name
        ours, theirs = arrays[f"bundled/{name}/energy"]
        assert abs(ours - theirs) <= 1e-4 * max(1.0, abs(theirs)), (name, ours, theirs)
        assert np.isfinite(arrays[f"bundled/{name}/ll"]).all()
