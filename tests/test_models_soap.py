"""The class-compressed SOAP reference descriptor (featomic).

The adapter contract (dimensions, batching, symmetry, errors) is checked for every model
in test_model_contract.py; these are SOAP's own checks.
"""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from mlipspace.featurization import load_model
from mlipspace.models.soap import DIM, PAIRS, element_classes

pytest.importorskip("featomic")


@pytest.fixture(scope="module")
def adapter():
    return load_model("soap")


def test_every_element_has_a_class():
    classes = element_classes()
    assert set(classes[1:]) == {1, 2, 3, 4}
    assert classes[1] == 1 and classes[11] == 2 and classes[26] == 3 and classes[8] == 4
    assert classes[94] == 3 and classes[2] == 4


def test_fixed_dimension_whatever_the_elements(adapter):
    sets = [
        [bulk("Cu")],
        [bulk("NaCl", "rocksalt", a=5.64)],
        [Atoms("H2", positions=[[0, 0, 0], [0.74, 0, 0]])],
    ]
    for structures in sets:
        assert adapter.compute(structures, ["ll"])["ll"][0].shape[1] == DIM == 640


def test_equals_plain_featomic_soap_when_classes_are_elements(adapter):
    # Na (class 2) and Cl (class 4): the (2, 4) pair block must be featomic's (11, 17) block
    from featomic import SoapPowerSpectrum

    from mlipspace.models.soap import HYPERS

    nacl = bulk("NaCl", "rocksalt", a=5.64)
    nacl.rattle(0.05, seed=0)
    ours = adapter.compute([nacl], ["ll"])["ll"][0].astype(np.float64)
    reference = SoapPowerSpectrum(**HYPERS).compute(nacl).keys_to_samples("center_type")
    width = DIM // len(PAIRS)
    for a, b in PAIRS:
        block = ours[:, PAIRS.index((a, b)) * width : (PAIRS.index((a, b)) + 1) * width]
        if (a, b) in {(2, 2), (2, 4), (4, 4)}:
            z = {2: 11, 4: 17}
            ref = reference.block(neighbor_1_type=z[a], neighbor_2_type=z[b])
            values = np.zeros((len(nacl), width))
            atom = np.asarray(ref.samples.column("atom"))
            values[atom] = ref.values
            np.testing.assert_allclose(block, values, rtol=1e-5, atol=1e-7)
        else:
            assert not block.any()


def test_float64():
    f = load_model("soap", dtype="float64").compute([bulk("Si")], ["ll"])["ll"][0]
    assert f.dtype == np.float64 and np.isfinite(f).all()
