"""Checks that a structure can be featurized, raising errors that say what is wrong."""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.neighborlist import neighbor_list

from ..errors import (
    DegenerateCellError,
    EmptyStructureError,
    NonFiniteError,
    OverlappingAtomsError,
    UnknownElementError,
)

#: atoms closer than this (Å) are taken as a broken structure
MIN_DISTANCE = 0.1
#: periodic cells with a smaller volume (Å^3) are taken as degenerate
MIN_CELL_VOLUME = 1e-6
MAX_ATOMIC_NUMBER = 118


def validate_structure(atoms: Atoms, source: str | None = None, frame: int | None = None) -> None:
    """Raise a :class:`~mlipspace.errors.StructureError` subclass if ``atoms`` is unusable.

    Checks, in order: at least one atom; known elements (1..118); finite positions
    and cell; a periodic direction has a cell of non-zero volume; no two atoms
    (periodic images included) closer than :data:`MIN_DISTANCE` Å.
    """
    if len(atoms) == 0:
        raise EmptyStructureError("structure has zero atoms", source, frame)
    numbers = atoms.numbers
    bad = (numbers < 1) | (numbers > MAX_ATOMIC_NUMBER)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise UnknownElementError(
            f"unknown element (atomic number {numbers[i]}) at site {i}", source, frame
        )
    if not np.isfinite(atoms.positions).all():
        i = int(np.flatnonzero(~np.isfinite(atoms.positions).all(axis=1))[0])
        raise NonFiniteError(f"NaN or inf position at site {i}", source, frame)
    if not np.isfinite(atoms.cell.array).all():
        raise NonFiniteError("NaN or inf in the cell", source, frame)
    if atoms.pbc.any() and abs(atoms.cell.volume) < MIN_CELL_VOLUME:
        if atoms.pbc.all() or atoms.cell.rank < int(atoms.pbc.sum()):
            raise DegenerateCellError(
                f"periodic cell has zero volume (pbc={atoms.pbc.tolist()}, "
                f"cell lengths {np.round(atoms.cell.lengths(), 4).tolist()})",
                source,
                frame,
            )
    if len(atoms) > 1 or atoms.pbc.any():
        first, second, dist = neighbor_list("ijd", atoms, MIN_DISTANCE, self_interaction=False)
        if len(dist):
            k = int(np.argmin(dist))
            raise OverlappingAtomsError(
                f"atoms {first[k]} ({atoms[first[k]].symbol}) and {second[k]} "
                f"({atoms[second[k]].symbol}) are {dist[k]:.4f} Å apart "
                f"(minimum {MIN_DISTANCE} Å)",
                source,
                frame,
            )
