"""Orb-v3 adapter (``orb:<checkpoint>``), measured in the 'orb-pet-mattersim' environment.

``tests/families_probe.py orb`` builds released-size random-init Orb-v3 conservative
and direct models with orb-models' own architecture functions, saves their state dicts
as a user's download would be, and loads them back through ``orb:<path>`` (which calls
the package's ``pretrained.orb_v3_*`` loader). A missing environment fails the tests.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from families_probe import ENV
from family_checks import NotRotationInvariantChecks, kind_fixture, probe_fixture

pytestmark = pytest.mark.models

KINDS = ("conservative", "direct")
# released architecture: 256-wide latents, encoder + 5 message-passing steps
DIMS = {"ll": 256, "node": 256, "bb": 1280, **{f"layer:{i}": 256 for i in range(6)}}


probe = probe_fixture(ENV, "families_probe.py", "orb", timeout=1800)
kind = kind_fixture(KINDS)


class TestOrbProbe(NotRotationInvariantChecks):
    """Orb has no equivariant layers: a rotation changes its features, metadata says how much."""

    family = "orb"
    others = ("pet", "mattersim")
    dims = dict.fromkeys(KINDS, DIMS)
    main = "conservative"


def test_node_and_ll_are_the_last_layer(probe):
    arrays, _ = probe
    for s in range(4):
        np.testing.assert_array_equal(arrays[f"conservative/batch/{s}/ll"],
                                      arrays[f"conservative/batch/{s}/node"])  # fmt: skip


def test_loader_chosen_from_file_name_and_weights(probe):
    _, record = probe
    assert record["conservative"]["metadata"]["loader"] == "orb_v3_conservative_inf_omat"
    assert record["direct"]["metadata"]["loader"] == "orb_v3_direct_inf_omat"
    assert record["conservative"]["metadata"]["training_data"] == "OMat24"
    assert record["conservative"]["metadata"]["max_num_neighbors"] == 120


def test_provenance(probe):
    _, record = probe
    meta = record["conservative"]["metadata"]
    assert meta["package"] == "orb-models" and meta["package_version"] == "0.5.5"
    assert meta["checkpoint"] == "orb-v3-conservative-inf-omat-random.ckpt"
    assert len(meta["checkpoint_sha256"]) == 64
    assert meta["checkpoint_path"] == os.path.realpath(record["paths"]["conservative"])
    assert meta["dtype"] == "float32"
