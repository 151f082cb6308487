"""The feature store: per-atom features of many (model, layer) pairs in one Zarr v3 directory.

Layout (every level is a Zarr v3 group, so ``zarr.open_group(path)`` browses it)::

    store.zarr/
      zarr.json                         root group, attributes: format version, creator
      features/<model>/<layer>/
        zarr.json                       group, attributes: model, layer (original names)
        <segment>/                      one committed write: a group with arrays
          X          float32|float64 (n_atoms, d), chunked along rows
          site       int32 (n_atoms,)
          numbers    int16 (n_atoms,)
          structure  int32 (n_atoms,)   row in this segment's structure table
          attributes: metadata (model, package/checkpoint versions, layer, dim, dtype,
                      time, mlipspace version) and the structure table (hash, n_atoms,
                      subset, source, parent)
        skipped-<segment>.json          structures the model could not featurize, and why
      .staging/                         segments being written (ignored when reading)

**Crash safety.** A segment is written completely under ``.staging/`` and then moved
into place with one ``rename``, which is atomic on a POSIX file system. A process
killed at any moment leaves either the whole segment or none of it in the store (plus
an orphaned staging folder, removed by :meth:`FeatureStore.clean_staging`). Several
processes may write at once, even to the same (model, layer): segments have unique
names, and a structure written twice is read once (the earliest segment wins), so a
re-run after a crash resumes without duplicates.

**Stores at a URL.** ``FeatureStore`` also takes an fsspec URL: ``file://`` (a local path,
same as above), ``memory://`` (in-process, for tests), ``s3://``, ``gs://``, ``az://``,
... (with the matching fsspec package installed; credentials through ``storage_options``
or the usual environment variables). Object stores have no atomic rename, so such a store
commits by **marker** instead, and says so in its root attributes (``"commit": "marker"``):

* a writer writes the segment group under its final name ``features/<model>/<layer>/<segment>/``
  and then, last, a small object ``features/<model>/<layer>/<segment>.committed``;
* **readers ignore every segment without its ``.committed`` marker** (a writer still busy,
  or one that died half-way), so a segment becomes visible all at once, when its marker
  appears;
* :meth:`FeatureStore.clean_staging` removes marker-less segments older than ``max_age``
  seconds (their writers are presumed dead; the age comes from the time stamp in the name).

There is no ``.staging/`` folder in such a store. The marker rule can be chosen for a local
directory too (``commit="marker"``, e.g. for a bucket mounted with a FUSE driver whose
``rename`` copies); a store keeps the rule it was created with. Stores created on a local path
without ``commit`` carry no ``commit`` attribute and are laid out exactly as described above.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import zarr
from ase import Atoms

from ..errors import ParameterError, StoreError
from ..features import STRUCTURE_COLUMNS, AtomFeatures, align, feature_array_problem
from ..structures.hashing import structure_hash
from .files import (
    FsspecFiles,
    LocalFiles,
    creator,
    group_json,
    is_url,
    now,
    pid_alive,
    safe_name,
    structure_record,
    version,
)

FORMAT_VERSION = 1
ROW_CHUNK = 16384
COMMIT_RENAME, COMMIT_MARKER = "rename", "marker"
MARKER_SUFFIX = ".committed"
#: marker-less segments older than this (seconds) are removed by ``clean_staging``
STALE_SEGMENT_AGE = 6 * 3600.0


def _hash_of(structure: str | Atoms) -> str:
    """A structure hash as given, or the hash of a structure (its own if it carries one)."""
    if isinstance(structure, str):
        return structure
    return structure.info.get("structure_hash") or structure_hash(structure)


def open_store(
    store: str | os.PathLike | FeatureStore,
    mode: str = "a",
    storage_options: dict[str, Any] | None = None,
) -> FeatureStore:
    """``store`` itself if it is a :class:`FeatureStore`, else the store at that path or URL.

    The one opener of every caller that accepts "a store or where one is".
    """
    if isinstance(store, FeatureStore):
        return store
    return FeatureStore(store, mode=mode, storage_options=storage_options)


def _reopen(url: str, mode: str, storage_options: dict[str, Any] | None) -> FeatureStore:
    return FeatureStore(url, mode=mode, storage_options=storage_options)


class FeatureStore:
    """Per-atom features of many models and layers, keyed by (structure hash, site).

    Parameters
    ----------
    path : str, Path or fsspec URL
        The store directory (created on first use unless ``mode="r"``): a local path, a
        ``file://`` URL, or any other fsspec URL (``s3://bucket/feats.zarr``,
        ``memory://feats.zarr``, ...), see the module docstring.
    mode : {"a", "r", "r+"}
        ``"a"`` opens or creates; ``"r"`` requires an existing store; ``"r+"`` requires an
        existing store and writes into it (what a Dask worker uses: a worker that cannot see
        the store fails instead of starting an empty one).
    storage_options : dict, optional
        Passed to fsspec for a URL (credentials, endpoint, ...).
    commit : {"rename", "marker"}, optional
        How a new store commits segments (ignored for an existing store, which keeps its
        own rule). Default: ``"rename"`` on a local path, ``"marker"`` at any other URL.

    Attributes
    ----------
    path : Path or str
        The local directory (a ``Path``), or the URL for a store elsewhere.
    url : str
        A string that reopens the store: the local path or the URL.

    Examples
    --------
    >>> store = FeatureStore("features.zarr")                       # doctest: +SKIP
    >>> store.write("chgnet-0.3.0", "ll", structures, arrays)       # doctest: +SKIP
    >>> table = store.read("chgnet-0.3.0", "ll")                    # doctest: +SKIP
    >>> remote = FeatureStore("s3://bucket/features.zarr")          # doctest: +SKIP
    """

    def __init__(
        self,
        path: str | os.PathLike,
        mode: str = "a",
        storage_options: dict[str, Any] | None = None,
        commit: str | None = None,
    ):
        text = os.fspath(path)
        if isinstance(text, bytes):
            text = text.decode()
        self._files: LocalFiles | FsspecFiles
        if is_url(text):
            self._files = FsspecFiles(text, storage_options)
            self.path: Path | str = self._files.url
            self.url = self._files.url
        else:
            local = Path(text[len("file://") :] if text.startswith("file://") else text)
            self._files = LocalFiles(local)
            self.path = local
            self.url = os.path.abspath(local)  # the same store from any working directory
        self.storage_options = dict(storage_options or {})
        if mode not in ("a", "r", "r+"):
            raise ParameterError(f"mode must be 'a', 'r' or 'r+', not {mode!r}")
        if commit not in (None, COMMIT_RENAME, COMMIT_MARKER):
            raise StoreError(f"commit must be 'rename' or 'marker', not {commit!r}")
        if commit == COMMIT_RENAME and not self._files.local:
            raise StoreError(f"{self.path}: commit by rename needs a local file system")
        self.read_only = mode == "r"
        self._attrs_cache: dict[str, dict[str, Any]] = {}
        files = self._files
        if files.exists("zarr.json"):
            self.commit = self._check_root()
        elif mode in ("r", "r+"):
            raise StoreError(f"{self.path}: no feature store here (no zarr.json)")
        else:
            if files.exists("") and files.listdir(""):
                raise StoreError(f"{self.path}: exists and is not a feature store")
            files.mkdir("", parents=True)
            self.commit = commit or (COMMIT_RENAME if files.local else COMMIT_MARKER)
            attrs: dict[str, Any] = {
                "mlipspace_store_format": FORMAT_VERSION,
                "created": now(),
                "creator": creator(),
            }
            if self.commit != COMMIT_RENAME:
                attrs["commit"] = self.commit
            files.write_json("zarr.json", group_json(attrs))

    def _check_root(self) -> str:
        try:
            attrs = json.loads(self._files.read_text("zarr.json")).get("attributes", {})
        except (OSError, json.JSONDecodeError) as exc:
            raise StoreError(f"{self.path}: unreadable store metadata ({exc})") from exc
        version = attrs.get("mlipspace_store_format")
        if version is None:
            raise StoreError(f"{self.path}: a Zarr group, but not an mlipspace feature store")
        if version > FORMAT_VERSION:
            raise StoreError(
                f"{self.path}: store format {version} is newer than this mlipspace ({FORMAT_VERSION})"
            )
        commit = attrs.get("commit", COMMIT_RENAME)
        if commit not in (COMMIT_RENAME, COMMIT_MARKER):
            raise StoreError(f"{self.path}: unknown commit rule {commit!r}")
        if commit == COMMIT_RENAME and not self._files.local:
            raise StoreError(
                f"{self.path}: this store commits by rename (it was made on a local file "
                "system); open it through its local path"
            )
        return commit

    def __repr__(self) -> str:
        return f"FeatureStore({str(self.path)!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        # reopened by URL where unpickled (a Dask worker): file handles and caches stay here
        mode = "r" if self.read_only else "r+"
        return (_reopen, (self.url, mode, self.storage_options or None))

    def __dask_tokenize__(self) -> tuple[str, str, str]:
        # the same store gives the same task keys (segments never change once committed)
        return (
            "mlipspace.FeatureStore",
            self.url,
            json.dumps(self.storage_options, sort_keys=True, default=str),
        )

    # ------------------------------------------------------------------ layout
    def _entry_dir(self, model: str, layer: str) -> str:
        return f"features/{safe_name(model)}/{safe_name(layer)}"

    def _ensure_entry(self, model: str, layer: str) -> str:
        model_dir = f"features/{safe_name(model)}"
        entry = f"{model_dir}/{safe_name(layer)}"
        for directory, attrs in (
            ("features", {}),
            (model_dir, {"model": model}),
            (entry, {"model": model, "layer": layer}),
        ):
            self._files.mkdir(directory)
            if not self._files.exists(f"{directory}/zarr.json"):
                self._files.write_json(f"{directory}/zarr.json", group_json(attrs))
        return entry

    def _segments(self, model: str, layer: str) -> list[str]:
        """Keys of the committed segments of (model, layer), in write order."""
        entry = self._entry_dir(model, layer)
        names = self._files.listdir(entry)
        # names start with a time stamp, so sorting gives write order
        if self.commit == COMMIT_MARKER:
            return [
                f"{entry}/{n[: -len(MARKER_SUFFIX)]}" for n in names if n.endswith(MARKER_SUFFIX)
            ]
        return [
            f"{entry}/{n}"
            for n in names
            if self._files.isdir(f"{entry}/{n}") and self._files.exists(f"{entry}/{n}/zarr.json")
        ]

    def segments(self, model: str, layer: str) -> list[str]:
        """Keys (paths relative to the store) of the committed segments of (model, layer).

        In write order; for :meth:`segment_structures` and :meth:`read_segment_rows`, which
        let a scheduler read a store chunk by chunk.
        """
        return self._segments(model, layer)

    def entries(self) -> list[tuple[str, str]]:
        """Every (model, layer) with at least one committed segment."""
        out = []
        files = self._files
        for model_dir in files.listdir("features"):
            for layer_dir in files.listdir(f"features/{model_dir}"):
                key = f"features/{model_dir}/{layer_dir}/zarr.json"
                if not files.exists(key):
                    continue
                attrs = json.loads(files.read_text(key))["attributes"]
                if self._segments(attrs["model"], attrs["layer"]):
                    out.append((attrs["model"], attrs["layer"]))
        return out

    # ------------------------------------------------------------------ write
    def write(
        self,
        model: str,
        layer: str,
        structures: Sequence[Atoms],
        features: Sequence[np.ndarray],
        metadata: dict[str, Any] | None = None,
    ) -> int:
        """Append the features of ``structures`` as one atomic segment.

        Parameters
        ----------
        model, layer : str
            What produced the features.
        structures : sequence of ase.Atoms
            The structures (their ``info`` gives subset, source and parent).
        features : sequence of ndarray
            One ``(len(structures[i]), d)`` array per structure; one dtype and ``d``.
        metadata : dict, optional
            Provenance stored with the segment (package, checkpoint, ...).

        Returns
        -------
        int
            Number of structures written; those already stored for (model, layer)
            are skipped.
        """
        if self.read_only:
            raise StoreError(f"{self.path}: opened read-only")
        if len(structures) != len(features):
            raise StoreError(
                f"{model}/{layer}: {len(structures)} structures but {len(features)} feature arrays"
            )
        records = [structure_record(a) for a in structures]
        stored = self.hashes(model, layer)
        keep = []
        for i, (rec, feats) in enumerate(zip(records, features, strict=True)):
            problem = feature_array_problem(feats, rec["n_atoms"])
            if problem:
                raise StoreError(f"{model}/{layer}: structure {rec['source'] or i} has {problem}")
            if rec["structure_hash"] in stored:
                continue
            stored.add(rec["structure_hash"])
            keep.append(i)
        if not keep:
            return 0
        dims = {np.asarray(features[i]).shape[1] for i in keep}
        if len(dims) != 1:
            raise StoreError(
                f"{model}/{layer}: feature dimensions differ between structures: {sorted(dims)}"
            )
        dim = dims.pop()
        known = self._known_dim(model, layer)
        if known is not None and known != dim:
            raise StoreError(
                f"{model}/{layer}: store holds dimension {known}, new features have {dim}"
            )
        X = np.concatenate([np.asarray(features[i]) for i in keep])
        if X.dtype not in (np.float32, np.float64):
            X = X.astype(np.float32)
        kept_records = [records[i] for i in keep]
        site = np.concatenate([np.arange(records[i]["n_atoms"], dtype=np.int32) for i in keep])
        numbers = np.concatenate([structures[i].numbers.astype(np.int16) for i in keep])
        row = np.repeat(np.arange(len(keep), dtype=np.int32), [r["n_atoms"] for r in kept_records])
        attrs = {
            "metadata": {
                "model": model,
                "layer": layer,
                "dim": int(dim),
                "dtype": str(X.dtype),
                "time": now(),
                "mlipspace_version": version(),
                **(metadata or {}),
            },
            "structures": {c: [r[c] for r in kept_records] for c in STRUCTURE_COLUMNS},
        }
        entry = self._ensure_entry(model, layer)
        name = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"
        files = self._files
        if self.commit == COMMIT_MARKER:
            target = f"{entry}/{name}"  # invisible to readers until its marker exists
        else:
            target = f".staging/{socket.gethostname()}-{os.getpid()}-{name}"
            if not files.isdir(".staging"):
                files.mkdir(".staging")
                files.write_json(
                    ".staging/zarr.json",
                    group_json({"purpose": "segments being written; not part of the store"}),
                )
        group = zarr.open_group(files.zarr_store(target, read_only=False), mode="w", zarr_format=3)
        for key, values, chunks in (
            ("X", X, (min(ROW_CHUNK, len(X)), dim)),
            ("site", site, (min(ROW_CHUNK * 4, len(X)),)),
            ("numbers", numbers, (min(ROW_CHUNK * 4, len(X)),)),
            ("structure", row, (min(ROW_CHUNK * 4, len(X)),)),
        ):
            arr = group.create_array(key, shape=values.shape, chunks=chunks, dtype=values.dtype)
            arr[...] = values
        group.attrs.update(attrs)
        if self.commit == COMMIT_MARKER:  # the commit point: the marker, written last
            files.write_json(
                f"{entry}/{name}{MARKER_SUFFIX}",
                {"segment": name, "structures": len(keep), "atoms": len(X), "time": now()},
            )
        else:
            os.rename(files.full(target), files.full(f"{entry}/{name}"))  # the commit point
        return len(keep)

    def write_skipped(
        self, model: str, layer: str, structures: Sequence[Atoms], reasons: Sequence[str]
    ) -> None:
        """Record structures the model could not featurize, with the reason for each."""
        if self.read_only:
            raise StoreError(f"{self.path}: opened read-only")
        entry = self._ensure_entry(model, layer)
        payload = {
            "structures": [
                {**structure_record(a), "reason": str(r)}
                for a, r in zip(structures, reasons, strict=True)
            ]
        }
        self._files.write_json(
            f"{entry}/skipped-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.json", payload
        )

    def skipped(self, model: str, layer: str) -> pd.DataFrame:
        """Structures recorded as skipped for (model, layer), with reasons."""
        rows = []
        entry = self._entry_dir(model, layer)
        for name in self._files.listdir(entry):
            if name.startswith("skipped-") and name.endswith(".json"):
                rows += json.loads(self._files.read_text(f"{entry}/{name}"))["structures"]
        frame = pd.DataFrame(rows, columns=[*STRUCTURE_COLUMNS, "reason"])
        return frame.drop_duplicates("structure_hash").reset_index(drop=True)

    def clean_staging(self, max_age: float = STALE_SEGMENT_AGE) -> int:
        """Remove what writers that are no longer running left half-written; returns how many.

        In a rename store, the staging folders of writers that are no longer running (on
        this host; another host's folders are removed too). In a marker store, the
        segments without a commit marker older than ``max_age`` seconds.
        """
        if self.commit == COMMIT_MARKER:
            return self._clean_unmarked(max_age)
        staging = Path(self._files.full(".staging"))
        removed = 0
        if not staging.is_dir():
            return 0
        host = socket.gethostname()
        for folder in staging.iterdir():
            if not folder.is_dir():
                continue
            parts = folder.name.rsplit("-", 3)
            if (
                len(parts) == 4
                and parts[0] == host
                and parts[1].isdigit()
                and pid_alive(int(parts[1]))
            ):
                continue
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
        return removed

    def _clean_unmarked(self, max_age: float) -> int:
        files = self._files
        removed = 0
        now = time.time_ns()
        for model_dir in files.listdir("features"):
            for layer_dir in files.listdir(f"features/{model_dir}"):
                entry = f"features/{model_dir}/{layer_dir}"
                names = files.listdir(entry)
                marked = {n[: -len(MARKER_SUFFIX)] for n in names if n.endswith(MARKER_SUFFIX)}
                for name in names:
                    stamp = name.split("-", 1)[0]
                    if name in marked or not stamp.isdigit() or "." in name:
                        continue
                    if (now - int(stamp)) / 1e9 >= max_age:
                        files.rmtree(f"{entry}/{name}")
                        removed += 1
        return removed

    # ------------------------------------------------------------------ read
    def _segment_attrs(self, segment: str) -> dict[str, Any]:
        # committed segments never change, so their attributes are read once
        attrs = self._attrs_cache.get(segment)
        if attrs is None:
            attrs = json.loads(self._files.read_text(f"{segment}/zarr.json"))["attributes"]
            self._attrs_cache[segment] = attrs
        return attrs

    def _open_segment(self, segment: str) -> zarr.Group:
        return zarr.open_group(
            self._files.zarr_store(segment, read_only=True), mode="r", zarr_format=3
        )

    def segment_structures(self, segment: str) -> pd.DataFrame:
        """The structure table of one segment (a key from :meth:`segments`), with row spans.

        Columns ``structure_hash, n_atoms, subset, source, parent, start``: the atoms of the
        structure in row ``i`` are rows ``start[i] .. start[i] + n_atoms[i]`` of the
        segment, sites in order (a segment is written structure by structure).
        """
        table = pd.DataFrame(
            self._segment_attrs(segment)["structures"], columns=list(STRUCTURE_COLUMNS)
        )
        counts = table["n_atoms"].to_numpy(dtype=np.int64)
        table["start"] = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        return table

    def read_segment_rows(self, segment: str, start: int, stop: int) -> np.ndarray:
        """Rows ``start .. stop`` of the features ``X`` of one segment (its stored dtype)."""
        return self._open_segment(segment)["X"][int(start) : int(stop)]

    def _known_dim(self, model: str, layer: str) -> int | None:
        segments = self._segments(model, layer)
        return self._segment_attrs(segments[0])["metadata"]["dim"] if segments else None

    def hashes(self, model: str, layer: str) -> set[str]:
        """Hashes of the structures stored for (model, layer)."""
        out: set[str] = set()
        for segment in self._segments(model, layer):
            out.update(self._segment_attrs(segment)["structures"]["structure_hash"])
        return out

    def missing(
        self,
        model: str,
        layers: str | Sequence[str],
        structures: Iterable[str | Atoms],
        retry_skipped: bool = False,
    ) -> list[str]:
        """Hashes of ``structures`` that some layer of ``model`` still lacks, in input order.

        The one "what is left to compute" query of featurization (in-process, worker and
        Dask): a structure is missing when a layer holds neither its features nor a record
        that the model skipped it (:meth:`write_skipped`). With ``retry_skipped`` a skipped
        structure counts as missing too.
        """
        layers = [layers] if isinstance(layers, str) else list(layers)
        wanted = list(dict.fromkeys(_hash_of(s) for s in structures))
        done: set[str] | None = None
        for layer in layers:
            have = self.hashes(model, layer)
            if not retry_skipped:
                have |= set(self.skipped(model, layer)["structure_hash"])
            done = have if done is None else done & have
        return [h for h in wanted if h not in (done or set())]

    def has(self, model: str, layer: str, structure_hash: str) -> bool:
        """Whether (model, layer) holds the structure with this hash."""
        return structure_hash in self.hashes(model, layer)

    def metadata(self, model: str, layer: str) -> dict[str, Any]:
        """Provenance of (model, layer), from its first segment."""
        segments = self._segments(model, layer)
        if not segments:
            raise StoreError(self._missing(model, layer))
        return dict(self._segment_attrs(segments[0])["metadata"])

    def _missing(self, model: str, layer: str) -> str:
        have = ", ".join(f"{m}/{lay}" for m, lay in self.entries()) or "nothing"
        return f"{self.path}: no features for model {model!r} layer {layer!r} (store has {have})"

    def read(
        self,
        model: str,
        layer: str,
        structures: Iterable[str | Atoms] | None = None,
    ) -> AtomFeatures:
        """Features of (model, layer), optionally restricted to some structures.

        Parameters
        ----------
        structures : iterable of str or ase.Atoms, optional
            Structure hashes (or structures) to read, in this order; by default all,
            in write order. A structure written twice is returned once.
        """
        segments = self._segments(model, layer)
        if not segments:
            raise StoreError(self._missing(model, layer))
        wanted: list[str] | None = None
        if structures is not None:
            wanted = [_hash_of(s) for s in structures]
        seen: set[str] = set()
        parts = []
        metadata = self._segment_attrs(segments[0])["metadata"]
        for segment in segments:
            attrs = self._segment_attrs(segment)
            table = pd.DataFrame(attrs["structures"], columns=list(STRUCTURE_COLUMNS))
            fresh = ~table["structure_hash"].isin(seen)
            if wanted is not None:
                fresh &= table["structure_hash"].isin(wanted)
            if not fresh.any():
                continue
            seen.update(table["structure_hash"][fresh])
            group = self._open_segment(segment)
            row = group["structure"][:]
            atom_mask = fresh.to_numpy()[row]
            keep_rows = np.flatnonzero(fresh.to_numpy())
            new_index = np.full(len(table), -1, dtype=np.int64)
            new_index[keep_rows] = np.arange(len(keep_rows))
            X = group["X"][:]
            kept_table = table.iloc[keep_rows].reset_index(drop=True)
            parts.append(
                AtomFeatures(
                    X=X[atom_mask],
                    structure_hash=kept_table["structure_hash"].to_numpy()[
                        new_index[row[atom_mask]]
                    ],
                    site=group["site"][:][atom_mask].astype(np.int64),
                    numbers=group["numbers"][:][atom_mask].astype(np.int64),
                    structure_index=new_index[row[atom_mask]],
                    structures=kept_table,
                    model=model,
                    layer=layer,
                    metadata=metadata,
                )
            )
        if wanted is not None:
            missing = [h for h in dict.fromkeys(wanted) if h not in seen]
            if missing:
                raise StoreError(
                    f"{self.path}: {model}/{layer} lacks {len(missing)} of the requested structures "
                    f"(first: {missing[0]})"
                )
        table = AtomFeatures.concatenate(parts)
        if wanted is not None:
            order = {h: i for i, h in enumerate(dict.fromkeys(wanted))}
            rows = np.lexsort((table.site, np.array([order[h] for h in table.structure_hash])))
            table = table.take(rows)
        return table

    def aligned(
        self,
        pairs: Sequence[tuple[str, str]],
        structures: Iterable[str | Atoms] | None = None,
    ) -> dict[tuple[str, str], AtomFeatures]:
        """The atoms that every (model, layer) in ``pairs`` holds, in one shared row order."""
        tables = {(m, lay): self.read(m, lay) for m, lay in pairs}
        if structures is not None:
            hashes = {_hash_of(s) for s in structures}
            tables = {k: t.take(np.isin(t.structure_hash, list(hashes))) for k, t in tables.items()}
        return align(tables)

    def structures(self) -> pd.DataFrame:
        """One row per structure held for any (model, layer): hash, n_atoms, subset, source, parent."""
        frames = []
        for model, layer in self.entries():
            for segment in self._segments(model, layer):
                frames.append(pd.DataFrame(self._segment_attrs(segment)["structures"]))
        if not frames:
            return pd.DataFrame(columns=list(STRUCTURE_COLUMNS))
        return (
            pd.concat(frames, ignore_index=True)
            .drop_duplicates("structure_hash")
            .reset_index(drop=True)
        )

    def info(self) -> pd.DataFrame:
        """A summary row per (model, layer): structures, atoms, dimension, dtype, skipped, segments."""
        rows = []
        for model, layer in self.entries():
            segments = self._segments(model, layer)
            hashes: set[str] = set()
            n_atoms = 0
            for segment in segments:
                table = self._segment_attrs(segment)["structures"]
                for h, n in zip(table["structure_hash"], table["n_atoms"], strict=True):
                    if h not in hashes:
                        hashes.add(h)
                        n_atoms += n
            meta = self.metadata(model, layer)
            rows.append(
                {
                    "model": model,
                    "layer": layer,
                    "structures": len(hashes),
                    "atoms": n_atoms,
                    "dim": meta["dim"],
                    "dtype": meta["dtype"],
                    "skipped": len(self.skipped(model, layer)),
                    "segments": len(segments),
                }
            )
        return pd.DataFrame(
            rows,
            columns=[
                "model",
                "layer",
                "structures",
                "atoms",
                "dim",
                "dtype",
                "skipped",
                "segments",
            ],
        )
