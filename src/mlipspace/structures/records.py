"""What every structure read by mlipspace carries, and the report of a read.

Kept apart from :mod:`.io` so that the demo generator (which :mod:`.io` reads for
``demo:small``/``demo:default``) can use it without an import cycle.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ase import Atoms

from ..errors import StructureError
from .hashing import structure_hash
from .validate import validate_structure

#: prefix of the embedded demo sets among structure sources: ``demo:small``, ``demo:default``
DEMO_PREFIX = "demo:"


@dataclass
class ReadReport:
    """What happened while reading: duplicates dropped and bad structures skipped."""

    n_read: int = 0
    duplicates: list[tuple[str, str]] = field(default_factory=list)
    """(source of the dropped copy, source of the structure kept)"""
    errors: list[StructureError] = field(default_factory=list)
    ignored: list[tuple[str, str]] = field(default_factory=list)
    """(path, reason) of the files of folders and globs skipped as not structures"""

    def summary(self) -> str:
        text = (
            f"{self.n_read} structures read, {len(self.duplicates)} duplicates dropped, "
            f"{len(self.errors)} problems"
        )
        if self.ignored:
            text += f", {len(self.ignored)} files that are not structures ignored"
        return text

    def extend(self, other: ReadReport) -> None:
        """Add what ``other`` (the report of another read) recorded."""
        self.n_read += other.n_read
        self.duplicates.extend(other.duplicates)
        self.errors.extend(other.errors)
        self.ignored.extend(other.ignored)


class StructureList(list):
    """A list of ``ase.Atoms`` that also carries the :class:`ReadReport` of how it was read."""

    report: ReadReport

    def __init__(self, items: Iterable[Atoms] = (), report: ReadReport | None = None):
        super().__init__(items)
        self.report = report if report is not None else ReadReport()


def _default_subset(source: str) -> str:
    if source == "memory":
        return "memory"
    return Path(source.removeprefix("db:")).stem or "default"


def prepare_structure(atoms: Atoms, source: str, frame: int | None) -> Atoms:
    """Validate ``atoms`` and fill in the ``info`` keys every mlipspace structure carries."""
    validate_structure(atoms, source, frame)
    info = atoms.info
    subset = info.get("subset", info.get("config_type"))
    info["subset"] = str(subset) if subset is not None else _default_subset(source)
    if not source.startswith(DEMO_PREFIX) or "source" not in info:
        info["source"] = source if frame is None else f"{source}@{frame}"
    info["parent"] = str(info.get("parent", ""))
    info["structure_hash"] = structure_hash(atoms)
    return atoms


def has_no_cell(atoms: Atoms) -> bool:
    """Whether a structure is non-periodic without a full cell (a molecule from ``.xyz`` or
    a pymatgen ``Molecule``): models that need a cell featurize it in a vacuum box."""
    return not atoms.pbc.any() and atoms.cell.rank < 3


def is_slab(atoms: Atoms) -> bool:
    """Whether a structure is periodic along some axes only (a surface slab, a wire)."""
    return bool(atoms.pbc.any() and not atoms.pbc.all())
