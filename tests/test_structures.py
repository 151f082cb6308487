"""Structure input, hashing, validation and demo data (foundation issue, points 2-5)."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule
from ase.io import write

import mlipspace
from mlipspace import errors
from mlipspace.structures import HASH_RESOLUTION, read_structures, structure_hash


@pytest.fixture
def crystals() -> list[Atoms]:
    si = bulk("Si", "diamond", a=5.43)
    nacl = bulk("NaCl", "rocksalt", a=5.64)
    cu = bulk("Cu", "fcc", a=3.61).repeat((2, 1, 1))
    return [si, nacl, cu]


# ---------------------------------------------------------------- reading
@pytest.mark.parametrize("fmt,suffix", [("extxyz", ".xyz"), ("traj", ".traj"), ("cif", ".cif")])
def test_reads_every_frame_of_multiframe_files(tmp_path, crystals, fmt, suffix):
    path = tmp_path / f"set{suffix}"
    write(path, crystals, format=fmt)
    result = read_structures(path)
    assert len(result) == 3
    assert [a.get_chemical_formula() for a in result] == [
        a.get_chemical_formula() for a in crystals
    ]
    assert [a.info["source"] for a in result] == [f"{path}@{i}" for i in range(3)]
    assert all(a.info["subset"] == "set" for a in result)


def test_reads_poscar_folder_glob_db_atoms_and_pymatgen(tmp_path, crystals):
    from ase.db import connect
    from pymatgen.core import Lattice, Molecule, Structure

    folder = tmp_path / "folder"
    folder.mkdir()
    write(folder / "POSCAR", crystals[0], format="vasp")
    write(folder / "b.cif", crystals[1])
    write(tmp_path / "c.xyz", crystals[2])
    with connect(tmp_path / "d.db") as db:
        db.write(molecule("H2O", vacuum=4.0), subset="water")
    structure = Structure(Lattice.cubic(4.2), ["Cs", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    mol = Molecule(["C", "O"], [[0, 0, 0], [0, 0, 1.13]])

    result = read_structures(
        folder, str(tmp_path / "*.xyz"), tmp_path / "d.db", crystals[0].copy(), structure, mol
    )
    formulas = [a.get_chemical_formula() for a in result]
    assert formulas == ["Si2", "ClNa", "Cu2", "H2O", "ClCs", "CO"]
    assert result[3].info["subset"] == "water"  # the file's own label wins
    assert result[3].info["source"].startswith("db:")
    assert result[0].info["subset"] == "POSCAR"
    # the in-memory Si is a duplicate of the POSCAR one: kept once and reported
    assert result.report.duplicates == [("memory@0", f"{folder / 'POSCAR'}@0")]
    assert result[4].info["source"] == "memory@1"


def test_subset_from_file_info(tmp_path, crystals):
    labelled = [a.copy() for a in crystals]
    for a, label in zip(labelled, ["x", "y", "x"], strict=True):
        a.info["subset"] = label
    write(tmp_path / "l.xyz", labelled)
    assert [a.info["subset"] for a in read_structures(tmp_path / "l.xyz")] == ["x", "y", "x"]


# ---------------------------------------------------------------- hashing
def test_hash_ignores_noise_below_resolution_and_sees_real_changes(crystals):
    rng = np.random.default_rng(1)
    for atoms in mlipspace.demo_structures("small")[:40]:
        noisy = atoms.copy()
        noisy.positions += rng.uniform(-1e-6, 1e-6, size=noisy.positions.shape)
        noisy.cell = noisy.cell.array + rng.uniform(-1e-6, 1e-6, size=(3, 3))
        assert structure_hash(noisy) == structure_hash(atoms)
        moved = atoms.copy()
        moved.positions[0, 0] += 2 * HASH_RESOLUTION
        assert structure_hash(moved) != structure_hash(atoms)
    si = crystals[0]
    variants = []
    other = si.copy()
    other.numbers[0] = 6
    variants.append(other)
    other = si.copy()
    other.pbc = [True, True, False]
    variants.append(other)
    other = si.copy()
    other.set_cell(si.cell * 1.001, scale_atoms=False)
    variants.append(other)
    variants.append(si[[1, 0]])  # site order is part of identity
    hashes = {structure_hash(v) for v in [si, *variants]}
    assert len(hashes) == 5


def test_hash_is_stable_text():
    h = structure_hash(bulk("Cu", "fcc", a=3.6))
    assert isinstance(h, str) and len(h) == 20 and int(h, 16) >= 0


# ---------------------------------------------------------------- bad input
def _write_text(path, text):
    path.write_text(text)
    return path


def test_bad_files_name_file_and_problem(tmp_path):
    empty = _write_text(tmp_path / "empty.xyz", "")
    with pytest.raises(errors.ReadError, match=r"empty\.xyz.*empty"):
        read_structures(empty)
    garbage = _write_text(tmp_path / "garbage.xyz", "this is\nnot a structure\n")
    with pytest.raises(errors.ReadError, match=r"garbage\.xyz"):
        read_structures(garbage)
    with pytest.raises(errors.ReadError, match="no such file"):
        read_structures(tmp_path / "missing.cif")
    with pytest.raises(errors.ReadError, match="matched no file"):
        read_structures(str(tmp_path / "*.nothing"))
    unknown = _write_text(tmp_path / "unknown.xyz", "2\n\nXx 0 0 0\nH 0 0 1\n")
    with pytest.raises(errors.UnknownElementError, match=r"unknown\.xyz.*Xx"):
        read_structures(unknown)


@pytest.mark.parametrize(
    "make,error,pattern",
    [
        (lambda: Atoms(), errors.EmptyStructureError, "zero atoms"),
        (
            lambda: Atoms("H2", positions=[[0, 0, 0], [np.nan, 0, 0]]),
            errors.NonFiniteError,
            "NaN or inf position at site 1",
        ),
        (
            lambda: Atoms("H2", positions=[[0, 0, 0], [np.inf, 0, 0]]),
            errors.NonFiniteError,
            "site 1",
        ),
        (
            lambda: Atoms("CuO", positions=[[0, 0, 0], [0.05, 0, 0]], cell=[5, 5, 5], pbc=True),
            errors.OverlappingAtomsError,
            r"atoms 0 \(Cu\) and 1 \(O\) are 0.0500",
        ),
        (
            lambda: Atoms(
                "Cu", positions=[[0, 0, 0]], cell=[[1, 0, 0], [2, 0, 0], [0, 0, 3]], pbc=True
            ),
            errors.DegenerateCellError,
            "zero volume",
        ),
        (
            lambda: Atoms(numbers=[0, 1], positions=[[0, 0, 0], [1, 0, 0]]),
            errors.UnknownElementError,
            "site 0",
        ),
    ],
)
def test_bad_structures_raise_named_errors(tmp_path, make, error, pattern):
    atoms = make()
    with pytest.raises(error, match=pattern) as info:
        read_structures(atoms)
    assert isinstance(info.value, errors.MlipspaceError)
    assert "memory (frame 0)" in str(info.value)


def test_overlap_across_periodic_boundary_is_caught():
    atoms = Atoms("Cu2", positions=[[0.01, 0, 0], [4.95, 0, 0]], cell=[5, 5, 5], pbc=True)
    with pytest.raises(errors.OverlappingAtomsError):
        read_structures(atoms)


def test_bad_frame_is_named_and_skip_collects(tmp_path, crystals):
    bad = Atoms("H2", positions=[[0, 0, 0], [0.01, 0, 0]], cell=[6, 6, 6], pbc=True)
    path = tmp_path / "mixed.xyz"
    write(path, [crystals[0], bad, crystals[1]])
    with pytest.raises(errors.OverlappingAtomsError, match=r"mixed\.xyz \(frame 1\)"):
        read_structures(path)
    empty = _write_text(tmp_path / "empty.xyz", "")
    result = read_structures(path, empty, on_error="skip")
    assert [a.get_chemical_formula() for a in result] == ["Si2", "ClNa"]
    assert len(result.report.errors) == 2
    assert {type(e) for e in result.report.errors} == {
        errors.OverlappingAtomsError,
        errors.ReadError,
    }
    assert result.report.errors[0].frame == 1


def test_isolated_molecule_without_cell_is_accepted():
    result = read_structures(molecule("CH4"))
    assert len(result) == 1 and result[0].info["subset"] == "memory"


# ---------------------------------------------------------------- demo data
def test_demo_small_is_deterministic_diverse_and_valid():
    first = mlipspace.demo_structures("small", random_state=0)
    again = mlipspace.demo_structures("small", random_state=0)
    other = mlipspace.demo_structures("small", random_state=1)
    hashes = [a.info["structure_hash"] for a in first]
    assert hashes == [a.info["structure_hash"] for a in again]
    assert hashes != [a.info["structure_hash"] for a in other]
    assert 80 <= len(first) <= 130
    assert len(set(hashes)) == len(hashes)
    subsets = {a.info["subset"] for a in first}
    assert {
        "element",
        "binary",
        "perovskite",
        "molecule",
        "surface",
        "vacancy",
        "rattled",
    } <= subsets
    n_atoms = sum(len(a) for a in first)
    copies = [a for a in first if a.info["subset"] in {"rattled", "strained"}]
    assert sum(len(a) for a in copies) < 0.25 * n_atoms  # copies stay a minority
    by_hash = set(hashes)
    assert all(a.info["parent"] in by_hash for a in copies)
    assert len({z for a in first for z in a.numbers}) >= 40
    # every generated structure passes the same checks as user input
    assert len(read_structures(first)) == len(first)


@pytest.mark.slow
def test_demo_default_size():
    structures = mlipspace.demo_structures("default")
    n_atoms = sum(len(a) for a in structures)
    assert 900 <= len(structures) <= 1200
    assert 15_000 <= n_atoms <= 30_000
