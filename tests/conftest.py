"""Shared fixtures and model checks.

Model packages write into ``$HOME`` on import (diep creates ``~/.cache/diep``,
matplotlib ``~/.config/matplotlib``), so HOME and the cache variables point at a
scratch folder for the whole session, before anything imports them.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pytest
from ase import Atoms

# shared with the contract suite's probe (tests/model_contract_probe.py): one definition
from model_contract_probe import contract_structures
from model_contract_probe import transformed as transform

_SCRATCH = tempfile.mkdtemp(prefix="mlipspace-test-home-")
os.environ["HOME"] = _SCRATCH
os.environ["XDG_CACHE_HOME"] = os.path.join(_SCRATCH, ".cache")
os.environ["XDG_CONFIG_HOME"] = os.path.join(_SCRATCH, ".config")
os.environ["MPLCONFIGDIR"] = os.path.join(_SCRATCH, "matplotlib")
os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("TORCHANI_NO_WARN_EXTENSIONS", "1")


@pytest.fixture(autouse=True)
def _registry_left_as_found():
    """A model a test registers (a fake family, an interrupting adapter) is dropped after
    the test, so that no later test sees it among the built-in models."""
    from mlipspace.models import model_specs, unregister

    before = set(model_specs())
    yield
    for name in set(model_specs()) - before:
        unregister(name)


# -- structures ----------------------------------------------------------------------


def local_descriptor(atoms: Atoms, shells=(0.0, 2.2, 2.8, 3.4, 4.2, 5.0)) -> np.ndarray:
    """A model-free per-atom descriptor: neighbour counts per periodic group in radial shells,
    plus the atom's own group (stands in for a model's features in plumbing tests)."""
    from ase.neighborlist import neighbor_list

    from mlipspace.platonic.chemistry import element_group

    groups = element_group(atoms.numbers) - 1
    i, j, d = neighbor_list("ijd", atoms, shells[-1])
    shell = np.digitize(d, shells) - 1
    desc = np.zeros((len(atoms), 18 * (len(shells) - 1) + 18))
    np.add.at(desc, (i, groups[j] * (len(shells) - 1) + shell), np.exp(-d))
    desc[np.arange(len(atoms)), 18 * (len(shells) - 1) + groups] = 3.0
    return desc


def two_families(seed: int = 10) -> dict[str, np.ndarray]:
    """Point clouds of two families: far-apart clouds ``a1``, ``b1`` and a slightly
    perturbed copy of each (``a2``, ``b2``), for W2 distances and their dendrogram."""
    rng = np.random.default_rng(seed)
    base1, base2 = rng.normal(size=(50, 6)), rng.normal(size=(50, 6)) + 4.0
    return {
        "a1": base1,
        "b1": base2,
        "a2": base1 + 0.1 * rng.normal(size=base1.shape),
        "b2": base2 + 0.1 * rng.normal(size=base2.shape),
    }


def perovskite(a: float = 3.905) -> Atoms:
    """Cubic SrTiO3 (5 atoms)."""
    return Atoms(
        "SrTiO3",
        scaled_positions=[[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]],
        cell=np.eye(3) * a,
        pbc=True,
    )


def small_structure_set() -> list[Atoms]:
    """Four small, generic (rattled, hence chiral) structures of varied chemistry."""
    si, nacl, water, _ = contract_structures()  # the contract suite's, with SrTiO3 for Cu
    sto = perovskite()
    sto.rattle(0.05, seed=4)
    for i, atoms in enumerate((si, nacl, water, sto)):
        atoms.info["source"] = f"test@{i}"
    return [si, nacl, water, sto]


@pytest.fixture
def small_structures() -> list[Atoms]:
    return small_structure_set()


# -- symmetry operations -------------------------------------------------------------

# transform: rotate (positions and cell), translate, then reorder the atoms


def random_rotation(seed: int, proper: bool = True) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    rotation = Rotation.random(random_state=seed).as_matrix()
    return rotation if proper else rotation @ np.diag([1.0, 1.0, -1.0])


@dataclass
class ModelChecks:
    """Symmetry and consistency measurements of one model, from one batched forward."""

    name: str
    scale: dict[str, float] = field(default_factory=dict)
    proper: dict[str, float] = field(default_factory=dict)
    mirror: dict[str, float] = field(default_factory=dict)
    supercell: dict[str, float] = field(default_factory=dict)
    finite: bool = True
    energies: np.ndarray | None = None


def run_model_checks(
    adapter, structures: Sequence[Atoms], layers: Sequence[str], seed: int = 7
) -> ModelChecks:
    """Featurize originals, rotated+translated+permuted copies, mirrored copies and 2×2×2
    supercells of the first two structures in one call; report relative max differences."""
    rng = np.random.default_rng(seed)
    proper, mirrored, perms = [], [], []
    for i, atoms in enumerate(structures):
        perm = rng.permutation(len(atoms))
        shift = rng.normal(size=3) * 3.0
        perms.append(perm)
        proper.append(transform(atoms, random_rotation(seed + i), shift, perm))
        mirrored.append(transform(atoms, random_rotation(seed + i, proper=False), shift, perm))
    supercells = [a.repeat((2, 2, 2)) for a in structures[:2]]
    batch = [*structures, *proper, *mirrored, *supercells]
    if hasattr(adapter, "forward"):
        features, energies = adapter.forward(batch, layers)
    else:
        features, energies = adapter.compute(batch, layers), None
    n = len(structures)
    checks = ModelChecks(adapter.name)
    if energies is not None:
        checks.energies = energies[:n]
    for layer in layers:
        f = features[layer]
        checks.finite &= all(np.isfinite(x).all() for x in f)
        scale = max(float(np.abs(x).max()) for x in f[:n])
        checks.scale[layer] = scale
        checks.proper[layer] = (
            max(float(np.abs(f[n + i] - f[i][perms[i]]).max()) for i in range(n)) / scale
        )
        checks.mirror[layer] = (
            max(float(np.abs(f[2 * n + i] - f[i][perms[i]]).max()) for i in range(n)) / scale
        )
        checks.supercell[layer] = (
            max(
                float(np.abs(f[3 * n + j] - np.tile(f[j], (8, 1))).max())
                for j in range(len(supercells))
            )
            / scale
        )
    return checks


def calculator_energies(calculator, structures: Sequence[Atoms]) -> np.ndarray:
    """Energies (eV) from the package's own ASE calculator, one structure at a time."""
    out = []
    for atoms in structures:
        atoms = atoms.copy()
        atoms.calc = calculator
        out.append(atoms.get_potential_energy())
    return np.array(out)


def assert_energies_match_calculator(adapter, structures: Sequence[Atoms], energies) -> None:
    """The energies of the feature pass equal the package's own calculator's (1e-5 eV/atom)."""
    reference = calculator_energies(adapter.calculator(), structures)
    per_atom = np.abs(np.asarray(energies) - reference) / [len(a) for a in structures]
    assert per_atom.max() <= 1e-5, per_atom


def assert_float64_energies_match(name: str, structures: Sequence[Atoms]) -> None:
    """A float64 model gives the float32 model's energies to 1e-4 eV per atom.

    (The features of both precisions are compared for every model in
    test_model_contract.py.)
    """
    from mlipspace.models import get_model

    _, e32 = get_model(name).forward(structures, ["ll"])
    _, e64 = get_model(name, dtype="float64").forward(structures, ["ll"])
    np.testing.assert_allclose(e32, e64, atol=1e-4 * max(len(a) for a in structures))
