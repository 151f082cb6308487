"""Row-blocked dask arrays: any array as one, and a feature store as one without reading it.

A segment holds its structures one after the other, sites in order, so which rows of which
segment hold a structure follows from the segment's structure table alone. The row order is
that of :meth:`FeatureStore.read` (write order, a structure written twice read from its first
segment) and, for several (model, layer) pairs, that of :meth:`FeatureStore.aligned` (the
structures every pair holds, in the order of the first pair). Every block is a task that
reads its rows from the store (local or any fsspec URL) where it runs; blocks end at
structure boundaries, so a structure's atoms are never split.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..errors import MetricInputError, StoreError
from ..features import STRUCTURE_COLUMNS
from ..structures.hashing import structure_hash

if TYPE_CHECKING:
    import dask.array as da
    from ase import Atoms
    from distributed import Client

    from ..store import FeatureStore

#: target rows (atoms) of one block
CHUNK_ROWS = 65536


def as_dask(A: Any, chunk_rows: int = CHUNK_ROWS) -> da.Array:
    """A 2-D dask array in row blocks (full width): a dask array rechunked, or an array wrapped.

    Parameters
    ----------
    A : dask array or array-like of shape (n_rows, n_features)
    chunk_rows : int
        Rows per block when ``A`` is not a dask array yet.

    Returns
    -------
    dask.array.Array
    """
    import dask.array as da

    if isinstance(A, da.Array):
        if A.ndim != 2:
            raise MetricInputError(f"expected a 2-D array, got shape {A.shape}")
        return A.rechunk({1: -1}) if len(A.chunks[1]) > 1 else A
    A = np.asarray(A)
    if A.ndim != 2:
        raise MetricInputError(f"expected a 2-D array, got shape {A.shape}")
    return da.from_array(A, chunks=(max(1, int(chunk_rows)), A.shape[1]))


def row_bounds(chunks: Sequence[int]) -> list[tuple[int, int]]:
    """``[start, stop)`` rows of every block of a dask array's row ``chunks``."""
    stops = np.cumsum(chunks)
    return [(int(b - c), int(b)) for b, c in zip(stops, chunks, strict=True)]


def row_blocks(A: da.Array) -> list[Any]:
    """The row blocks of ``A`` as ``dask.delayed`` objects, in order."""
    # unoptimised: a task shared by X and Y (one read or one generator for both) stays shared
    return list(A.to_delayed(optimize_graph=False).ravel())


def compute_one(obj: Any, client: Client | None) -> Any:
    """Evaluate one dask object on ``client``, or in this process when it is ``None``."""
    if client is None:
        return obj.compute(scheduler="sync")
    return client.compute(obj).result()


def entry_index(store: FeatureStore, model: str, layer: str) -> pd.DataFrame:
    """Where every structure of (model, layer) lies: one row per structure, read order.

    Columns: the structure table (``structure_hash, n_atoms, subset, source, parent``),
    ``segment`` (key) and ``start`` (first row in that segment).
    """
    frames = []
    for segment in store.segments(model, layer):
        table = store.segment_structures(segment)
        table["segment"] = segment
        frames.append(table)
    if not frames:
        store.metadata(model, layer)  # raises the store's own "no features for ..." error
        raise StoreError(f"{store.path}: no features for model {model!r} layer {layer!r}")
    index = pd.concat(frames, ignore_index=True)
    return index.drop_duplicates("structure_hash", keep="first").reset_index(drop=True)


@dataclass
class StoreArrays:
    """Aligned dask arrays of several (model, layer) pairs, and what their rows are.

    Attributes
    ----------
    arrays : dict
        ``{(model, layer): dask.array}``, shape ``(n_atoms, dim)`` each, the same row blocks.
    structures : DataFrame
        One row per structure, in row order (``structure_hash, n_atoms, subset, source,
        parent``).
    metadata : dict
        ``{(model, layer): provenance}``.
    """

    arrays: dict[tuple[str, str], da.Array]
    structures: pd.DataFrame
    metadata: dict[tuple[str, str], dict[str, Any]]

    @property
    def n_rows(self) -> int:
        return int(self.structures["n_atoms"].sum())

    def row_values(self, column: str) -> np.ndarray:
        """A structure-table column repeated for every atom row (e.g. ``subset``)."""
        return np.repeat(self.structures[column].to_numpy(), self.structures["n_atoms"])

    def structure_index(self) -> np.ndarray:
        """Row of :attr:`structures` of every atom row."""
        return np.repeat(np.arange(len(self.structures)), self.structures["n_atoms"])


def _runs(segments: np.ndarray, starts: np.ndarray, counts: np.ndarray) -> list[tuple]:
    """Merge consecutive row spans of one segment into ``(segment, start, stop)`` reads."""
    runs: list[list] = []
    for segment, start, count in zip(segments, starts, counts, strict=True):
        if runs and runs[-1][0] == segment and runs[-1][2] == start:
            runs[-1][2] = start + count
        else:
            runs.append([segment, int(start), int(start + count)])
    return [tuple(r) for r in runs]


def read_runs(store: FeatureStore, runs: Sequence[tuple[str, int, int]]) -> np.ndarray:
    """The rows of ``runs`` (``(segment, start, stop)``) stacked: one block of a store array."""
    parts = [store.read_segment_rows(segment, start, stop) for segment, start, stop in runs]
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def block_bounds(counts: np.ndarray, chunk_rows: int) -> list[tuple[int, int]]:
    """Consecutive structure ranges ``[a, b)`` holding about ``chunk_rows`` atoms each."""
    bounds, start, rows = [], 0, 0
    for i, count in enumerate(counts):
        rows += int(count)
        if rows >= chunk_rows:
            bounds.append((start, i + 1))
            start, rows = i + 1, 0
    if start < len(counts):
        bounds.append((start, len(counts)))
    return bounds


def store_arrays(
    store: FeatureStore,
    pairs: Sequence[tuple[str, str]],
    chunk_rows: int = CHUNK_ROWS,
    structures: Iterable[str | Atoms] | None = None,
) -> StoreArrays:
    """The features of ``pairs`` as aligned, lazily read dask arrays.

    Parameters
    ----------
    store : FeatureStore
        Local or at a URL; the workers must reach it at the same path or URL.
    pairs : sequence of (model, layer)
        With several, the atoms all of them hold, in the order of the first
        (as :meth:`FeatureStore.aligned`).
    chunk_rows : int
        Target atoms per block (blocks end at structure boundaries).
    structures : iterable of str or ase.Atoms, optional
        Only these structures (hashes or structures), as in :meth:`FeatureStore.aligned`.

    Returns
    -------
    StoreArrays
    """
    import dask
    import dask.array as da

    pairs = [tuple(p) for p in pairs]
    if not pairs:
        raise StoreError("no (model, layer) pairs given")
    indexes = {pair: entry_index(store, *pair) for pair in pairs}
    reference = indexes[pairs[0]]
    common = set(reference["structure_hash"])
    if structures is not None:
        common &= {
            s if isinstance(s, str) else (s.info.get("structure_hash") or structure_hash(s))
            for s in structures
        }
    for pair in pairs[1:]:
        common &= set(indexes[pair]["structure_hash"])
    reference = reference[reference["structure_hash"].isin(common)].reset_index(drop=True)
    if reference.empty:
        raise StoreError(f"{store.path}: the pairs {pairs} share no structure")
    hashes = reference["structure_hash"]
    counts = reference["n_atoms"].to_numpy(dtype=np.int64)
    bounds = block_bounds(counts, int(chunk_rows))
    arrays, metadata = {}, {}
    for pair in pairs:
        where = indexes[pair].set_index("structure_hash").loc[hashes]
        if not np.array_equal(where["n_atoms"].to_numpy(dtype=np.int64), counts):
            bad = hashes[where["n_atoms"].to_numpy() != counts].iloc[0]
            raise StoreError(f"{pair}: atom count of structure {bad} disagrees with {pairs[0]}")
        meta = store.metadata(*pair)
        metadata[pair] = meta
        segments = where["segment"].to_numpy()
        starts = where["start"].to_numpy(dtype=np.int64)
        blocks = []
        for a, b in bounds:
            runs = _runs(segments[a:b], starts[a:b], counts[a:b])
            rows = int(counts[a:b].sum())
            task = dask.delayed(read_runs, pure=True)(store, runs)
            blocks.append(
                da.from_delayed(task, shape=(rows, int(meta["dim"])), dtype=np.dtype(meta["dtype"]))
            )
        arrays[pair] = da.concatenate(blocks, axis=0)
    structures = reference[list(STRUCTURE_COLUMNS)].reset_index(drop=True)
    return StoreArrays(arrays=arrays, structures=structures, metadata=metadata)
