"""SOAP power spectrum (featomic): a classical, model-agnostic reference descriptor.

A plain multi-species SOAP has one block per pair of neighbour species, so its
dimension depends on which elements a data set holds (and with all 94 elements and any
useful basis it has hundreds of thousands of columns). To get **one fixed dimension for
every structure and every element**, neighbours are grouped into four chemical classes
before the density is built (a coarse "alchemical" compression of the species axis):

====== =========================================================================
class  elements
====== =========================================================================
1      H
2      s-block metals: Li Be Na Mg K Ca Rb Sr Cs Ba Fr Ra
3      d- and f-block: Sc–Zn, Y–Cd, La–Hg (with the lanthanides), Ac–Pu
4      p-block and noble gases: He, B–Ne, Al–Ar, Ga–Kr, In–Xe, Tl–Rn
====== =========================================================================

Fixed hyperparameters (:data:`HYPERS`): cutoff 5 Å with a 0.5 Å shifted-cosine
smoothing, Gaussian density of width 0.3 Å, GTO radial basis ``max_radial=3`` (4
functions), ``max_angular=3`` (l = 0…3), featomic's defaults otherwise (the centre atom
contributes to its own density with weight 1). Features are the power spectrum
``p[a, b, n1, n2, l]`` of every class pair ``a ≤ b`` (10 pairs) → 10 × 4 × 4 × 4 =
**640** columns, laid out in the fixed order of :data:`PAIRS` (zeros for absent classes).
The centre's own class is present only through its self-density. The descriptor is
invariant under rotations, reflections, translations and permutations of atoms.

SOAP has no layers: ``ll``, ``node`` and ``bb`` all return this descriptor.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
from ase import Atoms

from .base import ModelAdapter, ModelCard, ModelSpec
from .torch_base import check_dtype, check_layers, package_version

HYPERS: dict[str, Any] = {
    "cutoff": {"radius": 5.0, "smoothing": {"type": "ShiftedCosine", "width": 0.5}},
    "density": {"type": "Gaussian", "width": 0.3},
    "basis": {
        "type": "TensorProduct",
        "max_angular": 3,
        "radial": {"type": "Gto", "max_radial": 3},
    },
}
S_BLOCK = (3, 4, 11, 12, 19, 20, 37, 38, 55, 56, 87, 88)
DF_BLOCK = (*range(21, 31), *range(39, 49), *range(57, 81), *range(89, 95))
MAX_Z = 94


def element_classes() -> np.ndarray:
    """Class (1–4) of every atomic number 0…94 (index 0 unused)."""
    classes = np.full(MAX_Z + 1, 4, dtype=np.int32)
    classes[0] = 0
    classes[1] = 1
    classes[list(S_BLOCK)] = 2
    classes[list(DF_BLOCK)] = 3
    return classes


N_CLASSES = 4
PAIRS = tuple(itertools.combinations_with_replacement(range(1, N_CLASSES + 1), 2))
N_RADIAL = HYPERS["basis"]["radial"]["max_radial"] + 1
N_ANGULAR = HYPERS["basis"]["max_angular"] + 1
DIM = len(PAIRS) * N_RADIAL * N_RADIAL * N_ANGULAR


class SOAPAdapter(ModelAdapter):
    """Class-compressed SOAP power spectrum with fixed hyperparameters (dimension 640).

    Parameters
    ----------
    dtype : {"float32", "float64"}
        Precision of the returned arrays (featomic computes in float64).
    device : str
        Ignored (featomic runs on CPU).
    """

    name = "soap"

    def __init__(self, dtype: str = "float32", device: str = "cpu"):
        from featomic import SoapPowerSpectrum

        self.dtype = check_dtype(dtype)
        self.calculator = SoapPowerSpectrum(**HYPERS)
        self._classes = element_classes()

    def layer_dims(self) -> dict[str, int]:
        return {"ll": DIM, "node": DIM, "bb": DIM}

    def supported_elements(self) -> set[int]:
        return set(range(1, MAX_Z + 1))

    def metadata(self) -> dict[str, Any]:
        return {
            "package": "featomic",
            "package_version": package_version("featomic"),
            "hypers": HYPERS,
            "element_classes": "H | s-block metals | d/f-block | p-block+noble gases",
            "dtype": self.dtype,
        }

    def preferred_batch_size(self) -> int:
        return 64

    def relabel(self, atoms: Atoms) -> Atoms:
        """A copy of ``atoms`` whose atomic numbers are replaced by their class (1–4)."""
        copy = Atoms(
            numbers=self._classes[atoms.numbers],
            positions=atoms.positions,
            cell=atoms.cell,
            pbc=atoms.pbc,
        )
        return copy

    def compute(
        self, structures: Sequence[Atoms], layers: Sequence[str]
    ) -> dict[str, list[np.ndarray]]:
        from metatensor import Labels

        layers = check_layers(layers, self.layer_dims(), self.name)
        self.check_elements(structures)
        if not structures:
            return {name: [] for name in layers}
        descriptor = self.calculator.compute([self.relabel(a) for a in structures])
        descriptor = descriptor.keys_to_samples("center_type")
        pairs = Labels(["neighbor_1_type", "neighbor_2_type"], np.array(PAIRS, dtype=np.int32))
        descriptor = descriptor.keys_to_properties(pairs)
        block = descriptor.block()
        values = np.asarray(block.values)
        if values.shape[1] != DIM:
            raise AssertionError(f"SOAP gave {values.shape[1]} columns, expected {DIM}")
        samples = block.samples
        system = np.asarray(samples.column("system"))
        atom = np.asarray(samples.column("atom"))
        out = []
        for i, atoms in enumerate(structures):
            rows = np.flatnonzero(system == i)
            array = np.empty((len(atoms), DIM))
            array[atom[rows]] = values[rows]
            if len(rows) != len(atoms):
                raise AssertionError(f"SOAP gave {len(rows)} centres for {len(atoms)} atoms")
            out.append(array.astype(self.dtype))
        return {name: list(out) for name in layers}


def _factory(
    argument: str | None = None, dtype: str = "float32", device: str = "cpu"
) -> SOAPAdapter:
    return SOAPAdapter(dtype=dtype, device=device)


def _weights() -> bool:
    import importlib.util

    return importlib.util.find_spec("featomic") is not None


SPECS = [
    ModelSpec(
        name="soap",
        factory=_factory,
        layers={"ll": DIM, "node": DIM, "bb": DIM},
        description="SOAP power spectrum (featomic), 4 element classes, rc 5 Å, n 4, l 3: 640",
        weights_available=_weights,
        relative_cost=0.1,  # demo: 2-4 s against SevenNet-0's 32 s
        card=ModelCard(architecture="SOAP", kind="descriptor", symmetry="O(3)"),
    )
]
