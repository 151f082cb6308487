"""Where a feature store's files live: a local folder or an fsspec URL.

Both back ends address files by ``/``-joined keys relative to the store root ("" is the
root), so :class:`~mlipspace.store.zarr_store.FeatureStore` reads and writes either the
same way.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from datetime import UTC, datetime
from hashlib import blake2b
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from ..structures.hashing import structure_hash


def write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=json_default))
    os.replace(tmp, path)


def json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


def is_url(text: str) -> bool:
    return "://" in text and not text.startswith("file://")


class LocalFiles:
    """Files of a store on a local path, addressed by ``/``-joined keys ("" is the root)."""

    local = True

    def __init__(self, root: Path):
        self.root = root

    def full(self, key: str) -> Path:
        return self.root / key if key else self.root

    def exists(self, key: str) -> bool:
        return self.full(key).exists()

    def isdir(self, key: str) -> bool:
        return self.full(key).is_dir()

    def read_text(self, key: str) -> str:
        return self.full(key).read_text()

    def write_json(self, key: str, payload: dict[str, Any]) -> None:
        write_json_atomic(self.full(key), payload)

    def mkdir(self, key: str, parents: bool = False) -> None:
        self.full(key).mkdir(parents=parents, exist_ok=True)

    def listdir(self, key: str) -> list[str]:
        folder = self.full(key)
        return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []

    def rmtree(self, key: str) -> None:
        shutil.rmtree(self.full(key), ignore_errors=True)

    def zarr_store(self, key: str, read_only: bool) -> Any:
        return self.full(key)


class FsspecFiles:
    """Files of a store at an fsspec URL (object storage has no rename: markers commit)."""

    local = False

    def __init__(self, url: str, storage_options: dict[str, Any] | None):
        from fsspec.core import url_to_fs

        self.url = url.rstrip("/")
        self.storage_options = dict(storage_options or {})
        self.fs, root = url_to_fs(self.url, **self.storage_options)
        self.root = root.rstrip("/")

    def full(self, key: str) -> str:
        return f"{self.root}/{key}" if key else self.root

    def exists(self, key: str) -> bool:
        return bool(self.fs.exists(self.full(key)))

    def isdir(self, key: str) -> bool:
        return bool(self.fs.isdir(self.full(key)))

    def read_text(self, key: str) -> str:
        return self.fs.cat_file(self.full(key)).decode()

    def write_json(self, key: str, payload: dict[str, Any]) -> None:
        # one PUT: an object appears whole or not at all
        data = json.dumps(payload, indent=2, default=json_default).encode()
        self.fs.pipe_file(self.full(key), data)

    def mkdir(self, key: str, parents: bool = False) -> None:
        self.fs.makedirs(self.full(key), exist_ok=True)

    def listdir(self, key: str) -> list[str]:
        path = self.full(key)
        self.fs.invalidate_cache(path)  # other writers add segments: never trust a cached listing
        try:
            names = self.fs.ls(path, detail=False)
        except FileNotFoundError:
            return []
        return sorted({str(n).rstrip("/").rsplit("/", 1)[-1] for n in names})

    def rmtree(self, key: str) -> None:
        try:
            self.fs.rm(self.full(key), recursive=True)
        except FileNotFoundError:
            pass

    def zarr_store(self, key: str, read_only: bool) -> Any:
        from zarr.storage import FsspecStore

        url = f"{self.url}/{key}" if key else self.url
        return FsspecStore.from_url(
            url, storage_options=self.storage_options or None, read_only=read_only
        )


def group_json(attributes: dict[str, Any]) -> dict[str, Any]:
    return {"zarr_format": 3, "node_type": "group", "attributes": attributes}


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def creator() -> str:
    return f"mlipspace {version()}"


def version() -> str:
    from ..version import __version__

    return __version__


_SAFE = re.compile(r"[^A-Za-z0-9._+-]")


def safe_name(name: str) -> str:
    """A directory name for a model or layer name (``mace:/a/b.model`` has slashes)."""
    clean = _SAFE.sub("_", name)
    if clean != name or clean.startswith("."):
        clean = f"{clean.lstrip('.')}-{blake2b(name.encode(), digest_size=4).hexdigest()}"
    return clean


def structure_record(atoms: Atoms) -> dict[str, Any]:
    info = atoms.info
    return {
        "structure_hash": info.get("structure_hash") or structure_hash(atoms),
        "n_atoms": len(atoms),
        "subset": str(info.get("subset", "default")),
        "source": str(info.get("source", "")),
        "parent": str(info.get("parent", "")),
    }
