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
import warnings
from collections.abc import Iterable, Iterator
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
from .records import (
    DEMO_PREFIX,
    ReadReport,
    StructureList,
    prepare_structure,
)

logger = logging.getLogger(__name__)

DB_SUFFIXES = {".db", ".json", ".aselmdb"}
SKIP_NAMES = {".DS_Store", "Thumbs.db"}
#: extensions of files that are never structures: a folder or glob that holds them (notes,
#: tables, figures, scripts next to the data) skips them and lists them in
#: ``report.ignored``; named one by one, they are read (and fail) like any other file
NOT_STRUCTURE_SUFFIXES = {
    ".txt", ".csv", ".tsv", ".md", ".rst", ".pdf", ".doc", ".docx", ".xlsx", ".xls",
    ".png", ".jpg", ".jpeg", ".gif", ".svg", ".tif", ".tiff", ".bmp", ".webp",
    ".py", ".ipynb", ".sh", ".toml", ".yaml", ".yml", ".ini", ".cfg", ".html", ".htm",
    ".parquet", ".npy", ".npz", ".pkl", ".pickle", ".zip", ".tar", ".log", ".out", ".err",
}  # fmt: skip


def _is_pymatgen(obj: Any) -> bool:
    return type(obj).__module__.startswith("pymatgen")


def _from_pymatgen(obj: Any) -> Atoms:
    from pymatgen.io.ase import AseAtomsAdaptor

    atoms = AseAtomsAdaptor.get_atoms(obj)
    # pymatgen properties are not useful metadata for us and may not be JSON-serialisable
    atoms.info = {k: v for k, v in atoms.info.items() if isinstance(v, str | int | float)}
    return atoms


def not_structure_reason(path: Path) -> str | None:
    """Why a file met in a folder or glob is not a structure file, or ``None`` if it may be.

    Judged by extension (:data:`NOT_STRUCTURE_SUFFIXES`) and, for files without an
    extension ASE recognises, by content: binary files other than databases are skipped.
    """
    suffix = path.suffix.lower()
    if suffix in NOT_STRUCTURE_SUFFIXES:
        return f"{suffix} file, not a structure format"
    if suffix in DB_SUFFIXES:
        return None
    try:
        with open(path, "rb") as fh:
            head = fh.read(512)
    except OSError as exc:
        return f"unreadable ({exc})"
    if b"\0" in head and not head.startswith(b"SQLite format"):
        return "binary file of no structure format"
    return None


def _expand_path(source: str | os.PathLike, ignored: list[tuple[str, str]]) -> list[Path]:
    """Files named by ``source``; files of folders and globs that are not structures are
    appended to ``ignored`` as ``(path, reason)`` instead."""
    text = os.fspath(source)
    if glob.has_magic(text):
        matches = sorted(Path(p) for p in glob.glob(text, recursive=True))
        if not matches:
            raise ReadError("glob pattern matched no file", text)
        files = [p for m in matches for p in _expand_path(m, ignored)]
        return _drop_non_structures(files, ignored) if len(matches) > 1 else files
    path = Path(text)
    if path.is_dir():
        files = sorted(
            p
            for p in path.rglob("*")
            if p.is_file() and p.name not in SKIP_NAMES and not p.name.startswith(".")
        )
        if not files:
            raise ReadError("folder holds no file", text)
        kept = _drop_non_structures(files, ignored)
        if not kept:
            raise ReadError(f"folder holds no structure file ({len(files)} other files)", text)
        return kept
    if not path.exists():
        raise ReadError("no such file", text)
    return [path]


def _drop_non_structures(files: list[Path], ignored: list[tuple[str, str]]) -> list[Path]:
    kept = []
    for path in files:
        reason = not_structure_reason(path)
        if reason is None:
            kept.append(path)
        else:
            ignored.append((str(path), reason))
    return kept


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
        with warnings.catch_warnings():
            # ASE's note on slabs it built itself (adsorbate_info) means nothing to a user
            warnings.filterwarnings("ignore", "Skipping unhashable information")
            frames = ase.io.read(path, index=":")
    except Exception as exc:
        raise _read_failure(exc, path) from exc
    if isinstance(frames, Atoms):
        frames = [frames]
    if not frames:
        raise ReadError("file holds no structure", str(path))
    for i, atoms in enumerate(frames):
        yield atoms, str(path), i


def _unknown_format(exc: ReadError) -> bool:
    from ase.io.formats import UnknownFileTypeError

    return isinstance(exc.__cause__, UnknownFileTypeError)


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


def _demo(source: str, random_state: int) -> list[Atoms]:
    from .demo import demo_structures

    size = source.removeprefix(DEMO_PREFIX) or "default"
    if size not in ("small", "default"):
        raise ParameterError(
            f"{source!r}: unknown demo set; use {DEMO_PREFIX}small or {DEMO_PREFIX}default"
        )
    return demo_structures(size, random_state=random_state)


def _iter_sources(
    sources: Iterable[Any], ignored: list[tuple[str, str]], random_state: int = 0
) -> Iterator[tuple[Any, str, int | None]]:
    """Yield (atoms-or-error, source, frame) lazily, so one bad file does not hide the rest."""
    memory_index = 0
    for source in sources:
        if isinstance(source, Atoms) or _is_pymatgen(source):
            atoms = source.copy() if isinstance(source, Atoms) else _from_pymatgen(source)
            yield atoms, "memory", memory_index
            memory_index += 1
        elif isinstance(source, str) and source.startswith(DEMO_PREFIX):
            for i, atoms in enumerate(_demo(source, random_state)):
                yield atoms, source, i
        elif isinstance(source, str | os.PathLike):
            try:
                paths = _expand_path(source, ignored)
            except ReadError as exc:
                yield exc, os.fspath(source), None
                continue
            named = len(paths) == 1 and paths[0] == Path(os.fspath(source))
            for path in paths:
                try:
                    yield from _frames_from_file(path)
                except ReadError as exc:
                    if not named and _unknown_format(exc):
                        # a file of a folder or glob in no format ASE knows: not a structure
                        ignored.append((str(path), "not a structure format ASE recognises"))
                        continue
                    yield exc, str(path), None
        elif isinstance(source, Iterable):
            yield from _iter_sources(source, ignored, random_state)
        else:
            raise InputTypeError(
                f"cannot read structures from {type(source).__name__}: give paths, globs, folders, "
                "ase.Atoms or pymatgen Structure/Molecule objects"
            )


def read_structures(
    *sources: Any,
    on_error: Literal["raise", "skip"] = "raise",
    deduplicate: bool = True,
    random_state: int = 0,
) -> StructureList:
    """Read structures from any mix of sources.

    Parameters
    ----------
    *sources
        File paths (every format ``ase.io.read`` knows, all frames), glob patterns,
        folders (read recursively), ASE databases (``.db``), ``ase.Atoms``, pymatgen
        ``Structure``/``Molecule``, the embedded demo sets ``"demo:small"`` and
        ``"demo:default"``, or iterables of these. Folders and globs skip files that are
        not structures (by extension: ``.txt``, ``.csv``, ``.png``, ``.py``...; or binary
        content) and list them in ``result.report.ignored``.
    on_error : {"raise", "skip"}
        ``"raise"`` stops at the first bad file or structure with a
        :class:`~mlipspace.errors.StructureError` naming file, frame and problem;
        ``"skip"`` collects them in ``result.report.errors`` and goes on.
    deduplicate : bool
        Keep only the first copy of structures with equal content hash (the others
        are listed in ``result.report.duplicates``).
    random_state : int, default=0
        Seed of the demo sets' random structures (other sources ignore it).

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
    for item, source, frame in _iter_sources(sources, report.ignored, random_state):
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
    if report.ignored:
        logger.info("%d files that are not structures ignored", len(report.ignored))
    return out
