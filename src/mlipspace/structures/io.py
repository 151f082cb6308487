"""Read structures from anything: files, globs, folders, ASE databases, Atoms, pymatgen objects.

Every structure comes back as an :class:`ase.Atoms` with its metadata in ``atoms.info``:

``subset``
    A label used for stratified splits: the structure's own ``info["subset"]`` (or
    ``config_type``), otherwise the file name without extension (``"memory"`` for
    in-memory objects).
``source``
    Where it came from: ``"path@frame"`` for files, ``"db:path@id"`` for ASE
    databases, ``"memory@i"`` for objects passed directly.
``parent``
    The hash of the structure it was derived from when known (demo data), else ``""``.
``structure_hash``
    Its content hash (:func:`~mlipspace.structures.hashing.structure_hash`).
"""

from __future__ import annotations

import glob
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import ase.io
from ase import Atoms

from ..errors import (
    InputTypeError,
    ParameterError,
    ReadError,
    StructureError,
    UnknownElementError,
)
from .hashing import structure_hash
from .validate import validate_structure

logger = logging.getLogger(__name__)

DB_SUFFIXES = {".db", ".json", ".aselmdb"}
SKIP_NAMES = {".DS_Store", "Thumbs.db"}


@dataclass
class ReadReport:
    """What happened while reading: duplicates dropped and bad structures skipped."""

    n_read: int = 0
    duplicates: list[tuple[str, str]] = field(default_factory=list)
    """(source of the dropped copy, source of the structure kept)"""
    errors: list[StructureError] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.n_read} structures read, {len(self.duplicates)} duplicates dropped, "
            f"{len(self.errors)} problems"
        )


class StructureList(list):
    """A list of ``ase.Atoms`` that also carries the :class:`ReadReport` of how it was read."""

    report: ReadReport

    def __init__(self, items: Iterable[Atoms] = (), report: ReadReport | None = None):
        super().__init__(items)
        self.report = report if report is not None else ReadReport()


def _is_pymatgen(obj: Any) -> bool:
    return type(obj).__module__.startswith("pymatgen")


def _from_pymatgen(obj: Any) -> Atoms:
    from pymatgen.io.ase import AseAtomsAdaptor

    atoms = AseAtomsAdaptor.get_atoms(obj)
    # pymatgen properties are not useful metadata for us and may not be JSON-serialisable
    atoms.info = {k: v for k, v in atoms.info.items() if isinstance(v, str | int | float)}
    return atoms


def _expand_path(source: str | os.PathLike) -> list[Path]:
    text = os.fspath(source)
    if glob.has_magic(text):
        matches = sorted(Path(p) for p in glob.glob(text, recursive=True))
        if not matches:
            raise ReadError("glob pattern matched no file", text)
        return [p for m in matches for p in _expand_path(m)]
    path = Path(text)
    if path.is_dir():
        files = sorted(
            p
            for p in path.rglob("*")
            if p.is_file() and p.name not in SKIP_NAMES and not p.name.startswith(".")
        )
        if not files:
            raise ReadError("folder holds no file", text)
        return files
    if not path.exists():
        raise ReadError("no such file", text)
    return [path]


def _frames_from_file(path: Path) -> Iterator[tuple[Atoms, str, int]]:
    """Yield (atoms, source, frame) for every frame of a file or database."""
    if path.stat().st_size == 0:
        raise ReadError("file is empty", str(path))
    if path.suffix in DB_SUFFIXES and _looks_like_db(path):
        from ase.db import connect

        try:
            with connect(path) as db:
                rows = list(db.select())
        except Exception as exc:
            raise ReadError(f"cannot read ASE database: {exc}", str(path)) from exc
        if not rows:
            raise ReadError("database holds no structure", str(path))
        for row in rows:
            atoms = row.toatoms()
            atoms.info.update(row.key_value_pairs)
            yield atoms, f"db:{path}", int(row.id)
        return
    try:
        frames = ase.io.read(path, index=":")
    except Exception as exc:
        raise _read_failure(exc, path) from exc
    if isinstance(frames, Atoms):
        frames = [frames]
    if not frames:
        raise ReadError("file holds no structure", str(path))
    for i, atoms in enumerate(frames):
        yield atoms, str(path), i


def _read_failure(exc: Exception, path: Path) -> StructureError:
    """Turn a parser exception into our error, naming an unknown element when that is the cause."""
    from ase.data import chemical_symbols

    if isinstance(exc, KeyError) and exc.args and isinstance(exc.args[0], str):
        symbol = exc.args[0]
        if symbol not in chemical_symbols:
            return UnknownElementError(f"unknown element {symbol!r}", str(path))
    return ReadError(f"cannot read as a structure file ({type(exc).__name__}: {exc})", str(path))


def _looks_like_db(path: Path) -> bool:
    if path.suffix != ".json":
        return True
    # ASE's JSON database starts with a mapping of row ids; plain JSON is left to ase.io
    with open(path, "rb") as fh:
        head = fh.read(200).lstrip()
    return head.startswith(b'{"1"') or b'"ids"' in head or b'"nextid"' in head


def _iter_sources(sources: Iterable[Any]) -> Iterator[tuple[Any, str, int | None]]:
    """Yield (atoms-or-error, source, frame) lazily, so one bad file does not hide the rest."""
    memory_index = 0
    for source in sources:
        if isinstance(source, Atoms) or _is_pymatgen(source):
            atoms = source.copy() if isinstance(source, Atoms) else _from_pymatgen(source)
            yield atoms, "memory", memory_index
            memory_index += 1
        elif isinstance(source, str | os.PathLike):
            try:
                paths = _expand_path(source)
            except ReadError as exc:
                yield exc, os.fspath(source), None
                continue
            for path in paths:
                try:
                    yield from _frames_from_file(path)
                except ReadError as exc:
                    yield exc, str(path), None
        elif isinstance(source, Iterable):
            yield from _iter_sources(source)
        else:
            raise InputTypeError(
                f"cannot read structures from {type(source).__name__}: give paths, globs, folders, "
                "ase.Atoms or pymatgen Structure/Molecule objects"
            )


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
    info["source"] = source if frame is None else f"{source}@{frame}"
    info["parent"] = str(info.get("parent", ""))
    info["structure_hash"] = structure_hash(atoms)
    return atoms


def read_structures(
    *sources: Any,
    on_error: Literal["raise", "skip"] = "raise",
    deduplicate: bool = True,
) -> StructureList:
    """Read structures from any mix of sources.

    Parameters
    ----------
    *sources
        File paths (every format ``ase.io.read`` knows, all frames), glob patterns,
        folders (read recursively), ASE databases (``.db``), ``ase.Atoms``, pymatgen
        ``Structure``/``Molecule``, or iterables of these.
    on_error : {"raise", "skip"}
        ``"raise"`` stops at the first bad file or structure with a
        :class:`~mlipspace.errors.StructureError` naming file, frame and problem;
        ``"skip"`` collects them in ``result.report.errors`` and goes on.
    deduplicate : bool
        Keep only the first copy of structures with equal content hash (the others
        are listed in ``result.report.duplicates``).

    Returns
    -------
    StructureList
        A list of ``ase.Atoms`` with ``.report`` (:class:`ReadReport`).
    """
    if on_error not in ("raise", "skip"):
        raise ParameterError(f"on_error must be 'raise' or 'skip', not {on_error!r}")
    report = ReadReport()
    out = StructureList(report=report)
    seen: dict[str, str] = {}
    for item, source, frame in _iter_sources(sources):
        try:
            if isinstance(item, StructureError):
                raise item
            atoms = prepare_structure(item, source, frame)
        except StructureError as exc:
            if on_error == "raise":
                raise
            report.errors.append(exc)
            continue
        report.n_read += 1
        key = atoms.info["structure_hash"]
        if deduplicate and key in seen:
            report.duplicates.append((atoms.info["source"], seen[key]))
            continue
        seen[key] = atoms.info["source"]
        out.append(atoms)
    if report.duplicates:
        logger.warning("%d duplicated structures kept once", len(report.duplicates))
    return out
