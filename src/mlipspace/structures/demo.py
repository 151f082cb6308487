"""Embedded demo data: a diverse, deterministic set of structures generated offline.

The set is built for latent-space comparisons, where diversity matters more than size:
a set dominated by rattled copies of a few crystals makes local reconstruction errors
trivially small and same-atom retrieval ill-posed. So most structures are distinct
parents (elemental crystals across the periodic table, binary prototypes, ABO3
perovskites, substitutional alloys, random packings, molecules in vacuum boxes,
surface slabs, vacancies) and rattled or strained copies stay a minority, each
recording its parent's hash in ``info["parent"]``.

Lattice constants come from ASE's reference states where it has them, otherwise from
sums of covalent radii: they are plausible, not relaxed. All coordinates are snapped
onto the hash grid, so the structure hashes are stable under float noise.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Literal

import numpy as np
from ase import Atoms
from ase.build import bcc110, bulk, fcc100, fcc111, hcp0001, molecule
from ase.collections import g2
from ase.data import atomic_numbers, chemical_symbols, covalent_radii, reference_states
from ase.data.vdw_alvarez import vdw_radii

from ..errors import ParameterError
from .hashing import snap_to_hash_grid, structure_hash
from .records import StructureList, prepare_structure
from .validate import MIN_DISTANCE

# Elements every offline model in the zoo was trained on: H..Bi without noble gases
# and without Tc and Pm (missing or scarce in the training sets).
DEMO_ELEMENTS = tuple(
    s for s in chemical_symbols[1:84] if s not in {"He", "Ne", "Ar", "Kr", "Xe", "Tc", "Pm"}
)
METALS = tuple(
    s
    for s in DEMO_ELEMENTS
    if s not in {"H", "B", "C", "N", "O", "F", "Si", "P", "S", "Cl", "Se", "Br", "I", "As", "Te"}
)
DIATOMIC = ("H", "N", "O", "F", "Cl", "Br", "I")
ANIONS = ("O", "S", "Se", "Te", "N", "P", "F", "Cl", "Br", "I")
CATION_FOR_PROTOTYPE = {
    "rocksalt": (
        "Li",
        "Na",
        "K",
        "Rb",
        "Mg",
        "Ca",
        "Sr",
        "Ba",
        "Mn",
        "Fe",
        "Co",
        "Ni",
        "Zn",
        "Cd",
        "Pb",
    ),
    "cesiumchloride": ("Cs", "Rb", "Tl", "Ni", "Fe", "Co", "Cu", "Ag"),
    "zincblende": ("Zn", "Cd", "Ga", "In", "Al", "B", "Si", "Cu", "Hg"),
    "wurtzite": ("Zn", "Ga", "Al", "In", "Cd", "Be", "Mg"),
    "fluorite": ("Ca", "Sr", "Ba", "Ce", "Zr", "Hf", "Th", "U", "Li", "Na", "Pb"),
}
PEROVSKITE_A = ("Sr", "Ba", "Ca", "K", "Na", "La", "Pb", "Bi", "Y", "Cs")
PEROVSKITE_B = ("Ti", "Zr", "Nb", "Ta", "Mn", "Fe", "Co", "Ni", "Al", "Sn", "Cr", "V", "Ga", "Hf")
SIZES = {"small": 0.1, "default": 1.0}
#: info keys naming isostructural families (prototype, element on the varied site, the rest)
FAMILY_KEYS = ("prototype", "substituted", "host")


def _radius(symbol: str) -> float:
    return float(covalent_radii[atomic_numbers[symbol]])


def _elemental(symbol: str, rng: np.random.Generator) -> list[tuple[Atoms, str]]:
    """The element in its usual lattice (primitive cell, plus a conventional cell or supercell)."""
    state = reference_states[atomic_numbers[symbol]] or {}
    usual = state.get("symmetry") in {"fcc", "bcc", "hcp", "diamond", "sc"}
    try:
        prim = bulk(symbol) if usual else None
    except ValueError:  # reference state without the data bulk() needs
        usual, prim = False, None
    if prim is None:  # molecular or low-symmetry ground states: a plausible stand-in
        prim = _stand_in(symbol)
    if usual and state.get("symmetry") in {"fcc", "bcc", "diamond", "sc"}:
        second = bulk(symbol, cubic=True)
    else:
        second = prim.repeat((2, 1, 1))
    while len(second) < 8:
        second = second.repeat((2, 1, 1) if rng.random() < 0.5 else (1, 2, 1))
    return [(prim, "element"), (second, "element")]


def _stand_in(symbol: str) -> Atoms:
    """A plausible crystal for elements whose ground state ASE does not build.

    Diatomic gases become molecular crystals (dimers at the covalent bond length, van der
    Waals contacts between them); other non-metals a simple cubic lattice (6 neighbours,
    as in high-pressure P or Po); metals a close-packed fcc lattice. Squeezing molecular
    elements into a close-packed lattice at bonding distance would give every model
    absurd inputs (12 neighbours at 1.5 Å for N), and features thousands of times larger
    than usual.
    """
    r = _radius(symbol)
    if symbol in DIATOMIC:
        r_vdw = float(vdw_radii[atomic_numbers[symbol]])
        bond = 2 * r
        cell = [bond + 1.8 * r_vdw, 1.8 * r_vdw, 1.8 * r_vdw]
        return Atoms([symbol, symbol], positions=[[0, 0, 0], [bond, 0, 0]], cell=cell, pbc=True)
    if symbol not in METALS:
        return bulk(symbol, "sc", a=2.1 * r)
    return bulk(symbol, "fcc", a=2 * np.sqrt(2) * r * 1.05)


def _binary(prototype: str, cation: str, anion: str, rng: np.random.Generator) -> Atoms:
    d = _radius(cation) + _radius(anion)
    a = {
        "rocksalt": 2 * d,
        "cesiumchloride": 2 * d / np.sqrt(3),
        "zincblende": 4 * d / np.sqrt(3),
        "wurtzite": d * np.sqrt(8 / 3),
        "fluorite": 4 * d / np.sqrt(3),
    }[prototype]
    if prototype == "wurtzite":
        atoms = bulk(cation + anion, "wurtzite", a=a, c=a * np.sqrt(8 / 3))
        atoms = atoms.repeat((2, 2, 1)) if rng.random() < 0.5 else atoms
    else:
        formula = cation + anion + ("2" if prototype == "fluorite" else "")
        atoms = bulk(formula, prototype, a=a, cubic=bool(rng.random() < 0.7))
        atoms = atoms.repeat((2, 2, 2)) if len(atoms) <= 2 else atoms
    # isostructural families for embedding arithmetic: same prototype, cell and anion
    atoms.info.update(prototype=f"{prototype}-{len(atoms)}", substituted=cation, host=anion)
    return atoms


def _perovskite(a_site: str, b_site: str, tilt: float) -> Atoms:
    a = 2 * (_radius(b_site) + _radius("O")) * 0.93
    frac = [[0.5, 0.5, 0.5], [0, 0, 0], [0.5, 0, 0], [0, 0.5, 0], [0, 0, 0.5]]
    atoms = Atoms(
        [a_site, b_site, "O", "O", "O"],
        scaled_positions=frac,
        cell=np.diag([a, a, a * (1 + tilt)]),
        pbc=True,
    )
    atoms.info.update(prototype=f"perovskite-{tilt:g}", substituted=a_site, host=b_site)
    return atoms


def _alloy(rng: np.random.Generator) -> Atoms:
    n_species = int(rng.integers(2, 5))
    symbols = list(rng.choice(METALS, size=n_species, replace=False))
    lattice = str(rng.choice(["fcc", "bcc"]))
    r = np.mean([_radius(s) for s in symbols])
    a = 2 * np.sqrt(2) * r if lattice == "fcc" else 4 * r / np.sqrt(3)
    atoms = bulk("Cu", lattice, a=a, cubic=True).repeat(
        (2, 2, 2) if lattice == "fcc" else (3, 3, 2)
    )
    atoms.symbols = list(rng.choice(symbols, size=len(atoms)))
    return atoms


def _random_packing(rng: np.random.Generator) -> Atoms:
    """Atoms placed at random in a box at a plausible density (amorphous-like environments).

    At least one species is a metal and no pair is closer than 0.9 × the sum of covalent
    radii, with at least 10 Å³ per atom: pure non-metal packings at covalent density (F at
    0.9 Å from F, say) are so far outside every training set that some models return
    features 10⁸ times their median, which says nothing about the models on real matter.
    """
    n_species = int(rng.integers(1, 4))
    symbols = [str(rng.choice(METALS))]
    symbols += list(rng.choice([s for s in DEMO_ELEMENTS if s != symbols[0]], n_species - 1, False))
    n = int(rng.integers(12, 41))
    species = list(rng.choice(symbols, size=n))
    radii = np.array([_radius(s) for s in species])
    volume = max(float(np.sum(4 / 3 * np.pi * (1.25 * radii) ** 3) / 0.5), 10.0 * n)
    lengths = volume ** (1 / 3) * rng.uniform(0.85, 1.15, size=3)
    lengths *= (volume / np.prod(lengths)) ** (1 / 3)
    cell = np.diag(lengths)
    positions: list[np.ndarray] = []
    for k in range(n):
        for _ in range(2000):
            trial = rng.random(3) * lengths
            if all(
                np.linalg.norm(_mic(trial - p, lengths)) > 0.9 * (radii[k] + radii[j])
                for j, p in enumerate(positions)
            ):
                positions.append(trial)
                break
        else:
            species = species[: len(positions)]
            break
    return Atoms(species, positions=positions, cell=cell, pbc=True)


def _mic(vector: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    return vector - lengths * np.round(vector / lengths)


def _molecule(name: str, rng: np.random.Generator) -> Atoms:
    atoms = molecule(name)
    atoms.center(vacuum=float(rng.uniform(4.0, 6.0)))
    atoms.pbc = True
    return atoms


def _slab(rng: np.random.Generator) -> Atoms:
    builders: dict[str, tuple[Callable[..., Atoms], tuple[str, ...]]] = {
        "fcc111": (fcc111, ("Cu", "Ag", "Au", "Pt", "Pd", "Ni", "Al", "Ir", "Rh", "Pb")),
        "fcc100": (fcc100, ("Cu", "Ag", "Au", "Pt", "Pd", "Ni", "Al", "Ir", "Rh")),
        "bcc110": (bcc110, ("Fe", "W", "Mo", "Cr", "V", "Nb", "Ta")),
        "hcp0001": (hcp0001, ("Ti", "Zr", "Mg", "Co", "Zn", "Ru", "Re")),
    }
    kind = str(rng.choice(list(builders)))
    build, symbols = builders[kind]
    symbol = str(rng.choice(symbols))
    slab = build(symbol, size=(2, 2, int(rng.integers(3, 5))), vacuum=float(rng.uniform(5, 8)))
    if rng.random() < 0.5:  # an adsorbate makes the surface chemistry less trivial
        ads = str(rng.choice(["H", "O", "C", "N", "S", "Cl"]))
        top = slab.positions[:, 2].max()
        xy = slab.positions[np.argmax(slab.positions[:, 2]), :2]
        slab += Atoms(ads, positions=[[xy[0], xy[1], top + 1.2 + _radius(ads)]])
    slab.pbc = True
    return slab


def _vacancy(parent: Atoms, rng: np.random.Generator) -> Atoms:
    atoms = parent.repeat((2, 2, 2)) if len(parent) < 6 else parent.repeat((2, 1, 1))
    del atoms[int(rng.integers(len(atoms)))]
    return atoms


def _rattled(parent: Atoms, rng: np.random.Generator) -> Atoms:
    atoms = parent.copy()
    atoms.positions += rng.normal(scale=rng.uniform(0.02, 0.12), size=atoms.positions.shape)
    return atoms


def _strained(parent: Atoms, rng: np.random.Generator) -> Atoms:
    atoms = parent.copy()
    strain = np.eye(3) + np.triu(rng.uniform(-0.05, 0.05, size=(3, 3)))
    atoms.set_cell(atoms.cell.array @ strain, scale_atoms=True)
    return atoms


def _take(items: list, fraction: float, rng: np.random.Generator) -> list:
    n = max(1, round(len(items) * fraction))
    idx = np.sort(rng.choice(len(items), size=min(n, len(items)), replace=False))
    return [items[i] for i in idx]


def demo_structures(
    size: Literal["small", "default"] = "default",
    random_state: int = 0,
    *,
    seed: int | None = None,
) -> StructureList:
    """Generate the embedded demo set.

    Parameters
    ----------
    size : {"small", "default"}
        ``"default"``: about 1,000 structures and 15–30k atoms; ``"small"``: about
        100 structures, for tests.
    random_state : int
        Seed of every random choice; the same value gives the same structures.
    seed : int, optional
        Deprecated name of ``random_state``.

    Returns
    -------
    StructureList
        ``ase.Atoms`` with ``info["subset"]`` (element, binary, perovskite, alloy,
        random, molecule, surface, vacancy, rattled, strained), ``info["source"]``
        (``"demo:<subset>@<i>"``), ``info["parent"]`` and ``info["structure_hash"]``.
    """
    if size not in SIZES:
        raise ParameterError(f"size must be one of {sorted(SIZES)}, not {size!r}")
    fraction = SIZES[size]
    if seed is not None:
        warnings.warn(
            "demo_structures(seed=...) is deprecated; use random_state=",
            DeprecationWarning,
            stacklevel=2,
        )
        random_state = seed
    rng = np.random.default_rng(random_state)
    parents: list[tuple[Atoms, str]] = []

    for symbol in _take(list(DEMO_ELEMENTS), fraction, rng):
        parents += _elemental(symbol, rng)
    for prototype, cations in CATION_FOR_PROTOTYPE.items():
        pairs = [(c, a) for c in cations for a in ANIONS if c != a]
        for cation, anion in _take(pairs, 0.45 * fraction, rng):
            parents.append((_binary(prototype, cation, anion, rng), "binary"))
    perovskites = [(a, b) for a in PEROVSKITE_A for b in PEROVSKITE_B]
    for a_site, b_site in _take(perovskites, 0.5 * fraction, rng):
        atoms = _perovskite(a_site, b_site, tilt=float(rng.choice([0.0, 0.0, 0.03])))
        reps = [(1, 1, 1), (1, 1, 2), (2, 2, 2)][int(rng.choice(3, p=[0.4, 0.3, 0.3]))]
        supercell = atoms.repeat(reps)
        supercell.info["prototype"] += f"-{len(supercell)}"
        parents.append((supercell, "perovskite"))
    n = max(2, round(110 * fraction))
    parents += [(_alloy(rng), "alloy") for _ in range(n)]
    parents += [(_random_packing(rng), "random") for _ in range(n)]
    # single atoms in a box have no neighbours: most models cannot build their graph
    names = [name for name in sorted(g2.names) if len(molecule(name)) > 1]
    for name in _take(names, 0.3 * fraction, rng):
        parents.append((_molecule(name, rng), "molecule"))
    parents += [(_slab(rng), "surface") for _ in range(max(2, round(60 * fraction)))]
    crystals = [a for a, s in parents if s in {"element", "binary", "perovskite"}]
    for parent in _take(crystals, 0.2, rng):
        parents.append((_vacancy(parent, rng), "vacancy"))

    structures = StructureList()
    seen: set[str] = set()

    def add(atoms: Atoms, subset: str, parent_hash: str = "") -> str | None:
        snap_to_hash_grid(atoms)
        # only intact prototypes form families (vacancies and copies inherit info from parents)
        keep = subset in {"binary", "perovskite"}
        family = {k: atoms.info[k] for k in FAMILY_KEYS if k in atoms.info and keep}
        atoms.info = {"subset": subset, "parent": parent_hash, **family}
        key = structure_hash(atoms)
        if key in seen or _too_close(atoms):
            return None
        seen.add(key)
        prepare_structure(atoms, f"demo:{subset}", len(structures))
        structures.append(atoms)
        return key

    parent_keys = []
    for atoms, subset in parents:
        key = add(atoms, subset)
        if key is not None:
            parent_keys.append((key, len(structures) - 1))
    # copies stay a minority: about a fifth of the parents get one
    for key, index in _take(parent_keys, 0.2, rng):
        base = structures[index]
        if base.info["subset"] in {"molecule", "surface"}:
            continue
        if rng.random() < 0.6:
            add(_rattled(base, rng), "rattled", key)
        else:
            add(_strained(base, rng), "strained", key)
    return structures


def _too_close(atoms: Atoms) -> bool:
    from ase.neighborlist import neighbor_list

    return len(neighbor_list("i", atoms, max(MIN_DISTANCE, 0.5))) > 0
