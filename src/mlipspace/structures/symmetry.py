"""The space-group symmetry of a structure, as spglib finds it.

The one place spglib is called: the diagnostics (orbit spread, symmetry lost on relaxation)
and the Platonic scoring (symmetry-equivalent atoms count as the same atom) both read it.
"""

from __future__ import annotations

import warnings
from typing import Any

from ase import Atoms

__all__ = ["spglib_dataset"]


def spglib_dataset(atoms: Atoms, symprec: float = 1e-3) -> Any | None:
    """spglib's symmetry dataset of a periodic structure, or None where it finds none.

    Parameters
    ----------
    atoms : ase.Atoms
        A structure; one without atoms or with a cell of zero volume gives None, as does one
        spglib cannot use (overlapping atoms, a degenerate cell).
    symprec : float, default=1e-3
        Distance tolerance in Å.

    Returns
    -------
    spglib.SpglibDataset or None
        With ``number``, ``international``, ``rotations`` and ``equivalent_atoms``.
    """
    import spglib

    if len(atoms) == 0 or abs(atoms.cell.volume) < 1e-8:
        return None
    cell = (atoms.cell.array, atoms.get_scaled_positions(wrap=True), atoms.numbers)
    with warnings.catch_warnings():  # spglib 2.x deprecates its None-on-failure mode
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            return spglib.get_symmetry_dataset(cell, symprec=float(symprec))
        except Exception:  # spglib.error.SpglibError when OLD_ERROR_HANDLING is off
            return None
