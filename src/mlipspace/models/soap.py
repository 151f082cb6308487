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

featomic takes a structure periodic along all axes or along none. A slab as ASE builds it
(``fcc111(...)``: periodic in x and y, not z) is computed with its non-periodic axes made
periodic, after centring it with enough vacuum that no atom sees its images across them
(:func:`fully_periodic`): the features are those of the slab. A warning says so.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from ase import Atoms

from ..errors import ModelError
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


def _gap(atoms: Atoms, axis: int) -> float:
    """Empty space (Å) between the atoms and their periodic images along cell ``axis``."""
    cell = atoms.cell.array
    normal = np.cross(cell[(axis + 1) % 3], cell[(axis + 2) % 3])
    norm = np.linalg.norm(normal)
    if norm == 0 or atoms.cell.rank < 3:
        return 0.0
    normal /= norm
    height = abs(float(cell[axis] @ normal))
    heights = atoms.positions @ normal
    return height - float(heights.max() - heights.min())


def fully_periodic(atoms: Atoms, cutoff: float) -> tuple[Atoms, list[int]]:
    """``atoms`` made periodic along every axis without changing any atom's environment.

    For a structure periodic along some axes only (a slab): each non-periodic axis whose
    vacuum is shorter than ``cutoff`` is first padded (``Atoms.center``), so that no atom
    sees its images across it. Returns the copy and the axes changed (none for a structure
    periodic along all axes or along none).
    """
    if atoms.pbc.all() or not atoms.pbc.any():
        return atoms, []
    copy = atoms.copy()
    axes = [int(i) for i in np.flatnonzero(~atoms.pbc)]
    for axis in axes:
        if _gap(copy, axis) <= cutoff + 1.0:
            copy.center(vacuum=cutoff / 2 + 1.0, axis=axis)
    copy.pbc = True
    return copy, axes


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
        systems = []
        for atoms in structures:
            periodic, axes = fully_periodic(atoms, HYPERS["cutoff"]["radius"])
            if axes:
                warnings.warn(
                    f"soap: {_label(atoms)} is periodic along {atoms.pbc.tolist()}; computed "
                    f"with axes {axes} periodic, with vacuum wider than the "
                    f"{HYPERS['cutoff']['radius']:g} Å cutoff across them (same features)",
                    stacklevel=2,
                )
            systems.append(self.relabel(periodic))
        try:
            descriptor = self.calculator.compute(systems)
        except Exception as exc:  # featomic's own errors: say which structures, no traceback
            names = ", ".join(_label(a) for a in structures[:3])
            more = f" and {len(structures) - 3} more" if len(structures) > 3 else ""
            raise ModelError(f"soap cannot featurize {names}{more}: {exc}") from exc
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


def _label(atoms: Atoms) -> str:
    where = atoms.info.get("source") or atoms.info.get("structure_hash", "structure")
    return f"{where} ({atoms.get_chemical_formula()})"


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
