"""Cumulants on Dask: per-structure moments reduced over the row blocks of an array or store.

Every block gives the moments of its structures (:func:`mlipspace.pooling.moments.keyed_moments`);
partial results are merged in a fixed tree (:func:`mlipspace.pooling.moments.merge_keyed_moments`,
Pébay's exact formulas), so a structure split over blocks is merged exactly, as
:class:`~mlipspace.pooling.CumulantAccumulator` merges the chunks of a stream.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..errors import MetricInputError
from ..features import OUTLIER_FACTOR, AtomFeatures, drop_outlier_structures
from ..pooling.cumulants import StructureFeatures, cumulant_blocks, structures_frame
from ..pooling.moments import (
    Moments,
    check_atom_features,
    check_order,
    keyed_moments,
    merge_keyed_moments,
)
from .arrays import CHUNK_ROWS, as_dask, row_blocks, row_bounds, store_arrays
from .client import SPLIT_EVERY, ProgressCallback, get_client, tree_reduce

if TYPE_CHECKING:
    from distributed import Client

    from ..store import FeatureStore

__all__ = ["cumulant_input", "cumulants", "store_cumulants"]


def _block_moments(
    x_block: np.ndarray, keys: np.ndarray, max_order: int
) -> tuple[np.ndarray, Moments, np.ndarray]:
    """Per-structure moments of one block (structures in order of appearance), row norms."""
    X = check_atom_features(x_block)
    block_keys, moments = keyed_moments(X, keys, max_order)
    return block_keys, moments, np.linalg.norm(np.asarray(X, dtype=np.float64), axis=1)


def _merge_moments(*parts: tuple[np.ndarray, Moments, np.ndarray]) -> tuple:
    """Union of per-structure moments (merged exactly) and the concatenated row norms."""
    keys, moments = merge_keyed_moments(*((part[0], part[1]) for part in parts))
    return keys, moments, np.concatenate([part[2] for part in parts])


def _reduce_moments(
    X: Any,
    keys: np.ndarray,
    max_order: int,
    client: Client | None,
    chunk_rows: int,
    split_every: int,
    progress: ProgressCallback | None,
) -> tuple[np.ndarray, Moments, np.ndarray]:
    import dask

    X = as_dask(X, chunk_rows)
    keys = np.asarray(keys).astype(str)
    if keys.shape != (X.shape[0],):
        raise MetricInputError(f"keys must hold one label per row: {keys.shape} vs {X.shape}")
    leaves = [
        dask.delayed(_block_moments, pure=True)(xb, keys[a:b], max_order)
        for xb, (a, b) in zip(row_blocks(X), row_bounds(X.chunks[0]), strict=True)
    ]
    return tree_reduce(leaves, _merge_moments, client, split_every, progress)


def cumulants(
    X: Any,
    keys: Any,
    max_order: int = 8,
    *,
    scaled: bool = True,
    scheduler: Any = None,
    chunk_rows: int = CHUNK_ROWS,
    split_every: int = SPLIT_EVERY,
    progress: ProgressCallback | None = None,
) -> StructureFeatures:
    """:func:`mlipspace.pooling.cumulants_streaming` as a tree reduction over row blocks.

    Parameters
    ----------
    X : dask array or array (n_atoms, d)
        Atom features.
    keys : array (n_atoms,)
        Structure label of every row; a structure may span several blocks.
    max_order, scaled
        As in :func:`mlipspace.pooling.cumulants`.

    Returns
    -------
    StructureFeatures
        Rows in order of first appearance of each structure.
    """
    max_order = check_order(max_order)
    client = get_client(scheduler)
    hashes, state, _ = _reduce_moments(
        X, keys, max_order, client, chunk_rows, split_every, progress
    )
    return StructureFeatures(
        X=cumulant_blocks(state, max_order, scaled),
        structure_hash=hashes.astype(str),
        structures=structures_frame(hashes.astype(str), state.count),
        order=max_order,
        scaled=scaled,
    )


def store_cumulants(
    store: FeatureStore,
    pairs: Sequence[tuple[str, str]],
    max_order: int = 8,
    structures: Any = None,
    *,
    scaled: bool = True,
    outlier_factor: float | None = OUTLIER_FACTOR,
    scheduler: Any = None,
    chunk_rows: int = CHUNK_ROWS,
    split_every: int = SPLIT_EVERY,
    progress: ProgressCallback | None = None,
) -> tuple[dict[tuple[str, str], StructureFeatures], pd.DataFrame]:
    """Cumulant features of (model, layer) pairs read from a store block by block.

    The result equals :func:`mlipspace.pooling.cumulants` of
    ``drop_outlier_structures(store.aligned(pairs, structures), outlier_factor)``: the
    structures every pair holds, feature outliers of any pair left out (atom norms are
    gathered in the same pass, ``8 n_atoms`` bytes per pair).

    Returns
    -------
    tables : dict
        ``{(model, layer): StructureFeatures}``, rows in the order of the first pair.
    excluded : DataFrame
        The outliers left out (:func:`mlipspace.features.drop_outlier_structures`).
    """
    max_order = check_order(max_order)
    client = get_client(scheduler)
    sa = store_arrays(store, pairs, chunk_rows, structures=structures)
    keys = sa.row_values("structure_hash").astype(str)
    index = sa.structure_index()
    reduced, norm_tables = {}, {}
    for pair, X in sa.arrays.items():
        hashes, state, norms = _reduce_moments(
            X, keys, max_order, client, chunk_rows, split_every, progress
        )
        reduced[pair] = (hashes, state)
        norm_tables[pair] = AtomFeatures(
            X=norms[:, None],
            structure_hash=keys,
            site=np.zeros(len(keys), dtype=np.int64),
            numbers=np.zeros(len(keys), dtype=np.int64),
            structure_index=index,
            structures=sa.structures,
            model=pair[0],
            layer=pair[1],
        )
    _, excluded = drop_outlier_structures(norm_tables, outlier_factor)
    drop = set(excluded["structure_hash"]) if len(excluded) else set()
    kept = ~sa.structures["structure_hash"].isin(drop).to_numpy()
    table = sa.structures[kept].reset_index(drop=True)
    out = {}
    for pair, (hashes, state) in reduced.items():
        rows = pd.Index(hashes).get_indexer(table["structure_hash"])
        out[pair] = StructureFeatures(
            X=cumulant_blocks(state.take(rows), max_order, scaled),
            structure_hash=table["structure_hash"].to_numpy().astype(str),
            structures=table.copy(),
            order=max_order,
            model=pair[0],
            layer=pair[1],
            pooling="cumulants",
            scaled=scaled,
            metadata=dict(sa.metadata[pair]),
        )
    return out, excluded


def cumulant_input(
    store: FeatureStore,
    pairs: Sequence[tuple[str, str]],
    structures: Any,
    max_order: int,
    scheduler: Any,
) -> list[AtomFeatures | StructureFeatures]:
    """Tables for the cumulant analyses of ``pairs``, in order: the aligned atom features
    (``scheduler=None``), or their cumulant features reduced on Dask (:func:`store_cumulants`)."""
    if scheduler is None:
        tables = store.aligned(list(pairs), structures)
        return [tables[tuple(p)] for p in pairs]
    pooled, _ = store_cumulants(store, pairs, max_order, structures, scheduler=scheduler)
    return [pooled[tuple(p)] for p in pairs]
