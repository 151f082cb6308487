"""MatterSim adapter (``mattersim:<checkpoint>``), measured in the 'orb-pet-mattersim' env.

``tests/families_probe.py mattersim`` builds mattersim's default ``M3Gnet`` (the size of
MatterSim-v1.0.0-1M) with seeded random weights, saves it with ``Potential.save`` and
loads it back through ``mattersim:<path>`` (which calls ``Potential.from_checkpoint``).
A missing environment fails the tests.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from families_probe import ENV
from family_checks import (
    N_STRUCTURES,
    FamilyProbeChecks,
    kind_fixture,
    probe_fixture,
    rotation_change,
    scale,
)
from mlipspace.featurization.envs import parse_requirements, repo_root

pytestmark = pytest.mark.models

KEY = "ckpt"
DIMS = {KEY: {"ll": 256, "node": 128, "bb": 512, **{f"layer:{i}": 128 for i in range(5)}}}


probe = probe_fixture(ENV, "families_probe.py", "mattersim", timeout=1800)
kind = kind_fixture((KEY,))


class TestMatterSimProbe(FamilyProbeChecks):
    """float64 runs the model in float64 (cell and periodic offsets stay float32, as M3Gnet
    casts them): close to float32 (1e-4), not identical. MatterSim is O(3)-invariant, so
    ``+rot2`` through the worker changes nothing."""

    family = "mattersim"
    others = ("orb", "pet")
    dims = DIMS
    main = KEY
    float64_rtol = 1e-4
    invariant = True


def test_rotation_invariant(probe):
    for layer in ("ll", "node", "bb", "layer:1"):
        assert rotation_change(probe, KEY, layer) <= 1e-4, layer


def test_mirror_invariant(probe):
    """M3GNet sees distances and angles only: a reflection is a symmetry (O(3))."""
    arrays, _ = probe
    for s in range(N_STRUCTURES):
        perm = arrays[f"{KEY}/perm/{s}"]
        for layer in ("ll", "bb"):
            base = arrays[f"{KEY}/batch/{s}/{layer}"]
            diff = np.abs(arrays[f"{KEY}/mirrored/{s}/{layer}"] - base[perm]).max()
            assert diff <= 1e-4 * scale(base), (s, layer, diff)


def test_node_is_the_last_layer_and_ll_is_wider(probe):
    arrays, _ = probe
    for s in range(N_STRUCTURES):
        node = arrays[f"{KEY}/batch/{s}/node"]
        np.testing.assert_array_equal(node, arrays[f"{KEY}/batch/{s}/bb"][:, -node.shape[1] :])
        assert arrays[f"{KEY}/batch/{s}/ll"].shape[1] == 2 * node.shape[1]


def test_provenance(probe):
    _, record = probe
    meta = record[KEY]["metadata"]
    assert meta["package"] == "mattersim" and meta["package_version"] == "1.2.3"
    assert meta["checkpoint"] == "mattersim-random.pth" and len(meta["checkpoint_sha256"]) == 64
    assert meta["checkpoint_path"] == os.path.realpath(record["paths"]["ckpt"])
    assert meta["cutoff"] == 5.0 and meta["threebody_cutoff"] == 4.0
    assert meta["symmetry"].startswith("O(3)")


def test_weights_missing_from_the_file_are_named(probe):
    """mattersim's strict=False would ignore them; the adapter names them."""
    assert "missing" in probe[1]["errors"]["broken"][1]


def test_mattersim_pinned_without_its_dependencies():
    """mattersim's declared dependencies pull PyPI torchvision, which breaks the import on the
    CPU torch: the shared pin file installs it with ``# no-deps`` (and torchvision nowhere)."""
    pins = {p.name: p for p in parse_requirements(repo_root() / "envs" / "orb-pet-mattersim.txt")}
    assert pins["mattersim"].no_deps and not pins["mattersim"].no_build_isolation
    assert not any(p.no_deps for name, p in pins.items() if name != "mattersim")
    assert "torchvision" not in pins and "torchaudio" not in pins
