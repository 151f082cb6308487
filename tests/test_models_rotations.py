"""Rotational averaging (``+rot<N>``) and rotation sensitivity, on a toy adapter and SOAP."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk

from mlipspace.errors import ModelError
from mlipspace.models import get_model, resolve
from mlipspace.models.base import ModelAdapter
from mlipspace.models.rotations import (
    RotationAveraged,
    random_rotations,
    rotation_sensitivity,
    split_rotation_suffix,
)


class Positions(ModelAdapter):
    """Toy, not rotation-invariant: the features of an atom are its Cartesian position."""

    name = "positions"

    def layer_dims(self):
        return {"ll": 3}

    def compute(self, structures, layers):
        return {"ll": [a.positions.astype(np.float64) for a in structures]}


def test_suffix_parsing():
    assert split_rotation_suffix("orb:a.ckpt") == ("orb:a.ckpt", None, 0)
    assert split_rotation_suffix("orb:a.ckpt+rot16") == ("orb:a.ckpt", 16, 0)
    assert split_rotation_suffix("pet:~/m.ckpt+rot8-3") == ("pet:~/m.ckpt", 8, 3)
    with pytest.raises(ModelError, match="1 to"):
        split_rotation_suffix("orb:a.ckpt+rot0")


def test_average_is_the_mean_rotation_applied():
    """For linear features, averaging over rotations applies the mean rotation matrix."""
    atoms = bulk("NaCl", "rocksalt", a=5.64, cubic=True)
    atoms.rattle(0.1, seed=0)
    wrapped = RotationAveraged(Positions(), n_rotations=5, random_state=2)
    expected = atoms.positions @ random_rotations(5, 2).mean(axis=0).T
    np.testing.assert_allclose(wrapped.compute([atoms], ["ll"])["ll"][0], expected, atol=1e-12)
    assert wrapped.name == "positions+rot5-2"


def test_batch_order_kept():
    a, b = bulk("Si", cubic=True), bulk("Cu", cubic=True)
    wrapped = RotationAveraged(Positions(), n_rotations=3)
    both = wrapped.compute([a, b], ["ll"])["ll"]
    np.testing.assert_allclose(both[1], wrapped.compute([b], ["ll"])["ll"][0])
    assert [x.shape for x in both] == [(8, 3), (4, 3)]


def test_sensitivity_measured():
    assert rotation_sensitivity(Positions())["ll"] > 0.1
    soap = get_model("soap")
    assert rotation_sensitivity(soap, ("ll",))["ll"] < 1e-6


def test_suffix_through_the_registry_keeps_an_invariant_model_unchanged():
    atoms = bulk("NaCl", "rocksalt", a=5.64, cubic=True)
    atoms.rattle(0.05, seed=1)
    plain = get_model("soap").compute([atoms], ["ll"])["ll"][0]
    averaged_model = get_model("soap+rot3-1")
    assert averaged_model.name == "soap+rot3-1"
    averaged = averaged_model.compute([atoms], ["ll"])["ll"][0]
    np.testing.assert_allclose(averaged, plain, atol=1e-6 * np.abs(plain).max())
    assert resolve("soap+rot3")[0] is resolve("soap")[0]
    meta = averaged_model.metadata()
    assert meta["rotational_average"] == {"n_rotations": 3, "random_state": 1}
