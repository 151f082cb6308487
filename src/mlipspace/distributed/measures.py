"""GFRE, GFRD, LFRE and cumulants on Dask, over chunked arrays or a feature store.

The global measures are tree reductions of sufficient statistics: every row block gives its
per-group sums (:func:`mlipspace.metrics.reconstruction.add_chunk`: CV fold 1, fold 2 and
test; ``x``, ``y``, ``xᵀx``, ``xᵀy``, ``y²``), partial sums are added in a fixed tree, and the
fit is solved once from the total (:func:`~mlipspace.metrics.reconstruction.gfre_streamed`).
Cumulants reduce per-structure central moments the same way, merging a structure split over
blocks exactly (Pébay's formulas, :func:`mlipspace.pooling.cumulants._merge`).

LFRE needs the ``k`` nearest training rows of every test row: each training block ("shard")
gives the top ``k`` of its own rows for every test row, and the shard lists are merged in a
tree, nearest first, ties broken by training-row position, as
:func:`~mlipspace.metrics.reconstruction.nearest_train_rows` orders them. The local fits then
run per chunk of test rows, on the union of their neighbourhoods, through the in-process code.

Every function takes ``scheduler`` (see :func:`mlipspace.distributed.get_client`); with
``None`` the same task tree runs in this process, one block at a time, so memory stays at a
few blocks whatever the number of rows.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..errors import MetricInputError
from ..features import OUTLIER_FACTOR, AtomFeatures, drop_outlier_structures
from ..metrics import _ridge as rr
from ..metrics import reconstruction as rec
from ..pooling.cumulants import (
    StructureFeatures,
    _check_order,
    _check_X,
    _finish,
    _group_moments,
    _merge,
    _Moments,
    _structures_frame,
)
from .arrays import CHUNK_ROWS, store_arrays
from .client import SPLIT_EVERY, ProgressCallback, compute_all, get_client, tree_reduce

if TYPE_CHECKING:
    import dask.array as da
    from distributed import Client

    from ..store import FeatureStore

__all__ = [
    "DaskEngine",
    "as_dask",
    "cumulants",
    "gfrd",
    "gfre",
    "lfre",
    "nearest_rows",
    "pointwise_lfre",
    "reconstruction_stats",
    "store_cumulants",
    "take_rows",
]

#: float64 elements of one distance block in the neighbour search
_DISTANCE_ELEMENTS = 1 << 22


# -- inputs ------------------------------------------------------------------------------


def as_dask(A: Any, chunk_rows: int = CHUNK_ROWS) -> da.Array:
    """A 2-D dask array in row blocks (full width): a dask array rechunked, or an array wrapped."""
    import dask.array as da

    if isinstance(A, da.Array):
        if A.ndim != 2:
            raise MetricInputError(f"expected a 2-D array, got shape {A.shape}")
        return A.rechunk({1: -1}) if len(A.chunks[1]) > 1 else A
    A = np.asarray(A)
    if A.ndim != 2:
        raise MetricInputError(f"expected a 2-D array, got shape {A.shape}")
    return da.from_array(A, chunks=(max(1, int(chunk_rows)), A.shape[1]))


def _pair(X: Any, Y: Any, chunk_rows: int) -> tuple[da.Array, da.Array]:
    X = as_dask(X, chunk_rows)
    Y = as_dask(Y, chunk_rows)
    if X.shape[0] != Y.shape[0]:
        raise MetricInputError(
            f"First dimension of X ({X.shape[0]}) and Y ({Y.shape[0]}) must match"
        )
    if Y.chunks[0] != X.chunks[0]:
        Y = Y.rechunk({0: X.chunks[0]})
    return X, Y


def _bounds(chunks: Sequence[int]) -> list[tuple[int, int]]:
    stops = np.cumsum(chunks)
    return [(int(b - c), int(b)) for b, c in zip(stops, chunks, strict=True)]


def _blocks(A: da.Array) -> list[Any]:
    # unoptimised: a task shared by X and Y (one read or one generator for both) stays shared
    return list(A.to_delayed(optimize_graph=False).ravel())


def _compute(obj: Any, client: Client | None) -> Any:
    if client is None:
        return obj.compute(scheduler="sync")
    return client.compute(obj).result()


def take_rows(A: Any, rows: np.ndarray, scheduler: Any = None) -> np.ndarray:
    """``A[rows]`` as a float64 NumPy array (only the blocks holding those rows are read)."""
    client = get_client(scheduler)
    rows = np.asarray(rows, dtype=np.int64)
    A = as_dask(A)
    order = np.argsort(rows, kind="stable")
    picked = np.asarray(_compute(A[rows[order]], client), dtype=np.float64)
    out = np.empty_like(picked)
    out[order] = picked
    return out


# -- GFRE / GFRD -------------------------------------------------------------------------


def _first_means(x_block: np.ndarray, y_block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    X = rec._as_2d_finite(x_block, "X rows 0+")
    Y = rec._as_2d_finite(y_block, "Y rows 0+")
    return X.mean(axis=0), Y.mean(axis=0)


def _pair_stats(
    x_block: np.ndarray,
    y_block: np.ndarray,
    groups: np.ndarray,
    shift_x: np.ndarray,
    shift_y: np.ndarray,
    start: int,
) -> list[rec._GroupStats]:
    X = rec._as_2d_finite(x_block, f"X rows {start}+")
    Y = rec._as_2d_finite(y_block, f"Y rows {start}+")
    stats = [rec._GroupStats.zeros(X.shape[1], Y.shape[1]) for _ in range(3)]
    rec.add_chunk(stats, X, Y, groups, shift_x, shift_y)
    return stats


def _add_stats(*parts: list[rec._GroupStats]) -> list[rec._GroupStats]:
    out = parts[0]
    for part in parts[1:]:
        out = [a + b for a, b in zip(out, part, strict=True)]
    return out


def reconstruction_stats(
    X: Any,
    Y: Any,
    train_idx: Any = None,
    test_idx: Any = None,
    scheduler: Any = None,
    chunk_rows: int = CHUNK_ROWS,
    split_every: int = SPLIT_EVERY,
    progress: ProgressCallback | None = None,
) -> rec.ReconstructionStats:
    """Sufficient statistics of ``(X, Y)`` for GFRE/GFRD, as a tree reduction over row blocks.

    Parameters
    ----------
    X, Y : dask array or array of shape (n_samples, n_features)
        Source and target features, rows aligned (e.g. from :func:`store_arrays`). NumPy
        arrays are cut into blocks of ``chunk_rows`` rows.
    train_idx, test_idx : array of int, optional
        As in :func:`mlipspace.metrics.gfre` (default: its 50/50 split).
    scheduler : str, distributed.Client or None
        Where the blocks are reduced (:func:`get_client`); ``None``: in this process.
    chunk_rows : int
        Rows per block for NumPy inputs.
    split_every : int
        Partial results combined by one task.
    progress : callable, optional
        ``progress(done, total)`` in blocks.

    Returns
    -------
    ReconstructionStats
        Pass it to :func:`~mlipspace.metrics.reconstruction.gfre_streamed`; equal (to
        rounding) to :func:`~mlipspace.metrics.reconstruction.reconstruction_stats` read with
        the same blocks, the first block giving the shift.
    """
    import dask

    client = get_client(scheduler)
    X, Y = _pair(X, Y, chunk_rows)
    n = X.shape[0]
    groups = rec.row_groups(n, train_idx, test_idx)
    xs, ys = _blocks(X), _blocks(Y)
    shift_x, shift_y = _compute(dask.delayed(_first_means)(xs[0], ys[0]), client)
    leaves = [
        dask.delayed(_pair_stats, pure=True)(xb, yb, groups[a:b], shift_x, shift_y, a)
        for xb, yb, (a, b) in zip(xs, ys, _bounds(X.chunks[0]), strict=True)
    ]
    stats = tree_reduce(leaves, _add_stats, client, split_every, progress)
    return rec.ReconstructionStats(
        stats, X.shape[1], Y.shape[1], shift_x=np.asarray(shift_x), shift_y=np.asarray(shift_y)
    )


def gfre(X: Any, Y: Any, train_idx: Any = None, test_idx: Any = None, **kwargs: Any) -> float:
    """GFRE of ``Y`` from ``X`` by tree reduction (see :func:`reconstruction_stats`).

    Equal to :func:`mlipspace.metrics.reconstruction.gfre_streamed` to rounding; keywords go
    to :func:`reconstruction_stats` (``scheduler``, ``chunk_rows``, ...).
    """
    stats = reconstruction_stats(X, Y, train_idx, test_idx, **kwargs)
    return rec.gfre_streamed(stats, 0)


def gfrd(X: Any, Y: Any, train_idx: Any = None, test_idx: Any = None, **kwargs: Any) -> float:
    """GFRD of ``Y`` from ``X`` by tree reduction (see :func:`gfre`)."""
    stats = reconstruction_stats(X, Y, train_idx, test_idx, **kwargs)
    return rec.gfrd_streamed(stats, 0)


# -- LFRE --------------------------------------------------------------------------------


def _train_sums(x_block, y_block, mask) -> tuple[int, np.ndarray, np.ndarray]:
    X = np.asarray(x_block, dtype=np.float64)[mask]
    Y = np.asarray(y_block, dtype=np.float64)[mask]
    return int(mask.sum()), X.sum(axis=0), Y.sum(axis=0)


def _train_squares(x_block, y_block, mask, mean_x, mean_y) -> tuple[np.ndarray, np.ndarray]:
    X = np.asarray(x_block, dtype=np.float64)[mask]
    Y = np.asarray(y_block, dtype=np.float64)[mask]
    return ((X - mean_x) ** 2).sum(axis=0), ((Y - mean_y) ** 2).sum(axis=0)


def _add_tuples(*parts: tuple) -> tuple:
    return tuple(
        functools.reduce(lambda a, b: a + b, values) for values in zip(*parts, strict=True)
    )


def _flexible_scaling(
    X: da.Array, Y: da.Array, train: np.ndarray, client: Client | None, progress
) -> tuple[np.ndarray, float, np.ndarray, float]:
    """Means and scales of the flexible scaler fitted on the training rows (two passes)."""
    import dask

    n = X.shape[0]
    in_train = np.zeros(n, dtype=bool)
    in_train[train] = True
    xs, ys, bounds = _blocks(X), _blocks(Y), _bounds(X.chunks[0])
    sums = [
        dask.delayed(_train_sums, pure=True)(xb, yb, in_train[a:b])
        for xb, yb, (a, b) in zip(xs, ys, bounds, strict=True)
    ]
    count, sum_x, sum_y = tree_reduce(sums, _add_tuples, client, progress=progress)
    mean_x, mean_y = sum_x / count, sum_y / count
    squares = [
        dask.delayed(_train_squares, pure=True)(xb, yb, in_train[a:b], mean_x, mean_y)
        for xb, yb, (a, b) in zip(xs, ys, bounds, strict=True)
    ]
    ss_x, ss_y = tree_reduce(squares, _add_tuples, client, progress=progress)
    scales = []
    for ss, name in ((ss_x, "X"), (ss_y, "Y")):
        var_sum = float((ss / count).sum())
        if var_sum < 1e-12:  # as mlipspace.metrics.reconstruction._flexible_scale
            raise MetricInputError(
                f"{name} has zero total variance on the training rows (all features constant); "
                "it cannot be scaled"
            )
        scales.append(np.sqrt(var_sum))
    return mean_x, scales[0], mean_y, scales[1]


def _shard_topk(
    x_block: np.ndarray,
    positions: np.ndarray,
    mean: np.ndarray,
    scale: float,
    queries: np.ndarray,
    k: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest training rows of this block for every query: distances, positions.

    Distances as :func:`~mlipspace.metrics.reconstruction.nearest_train_rows` computes them;
    each row sorted nearest first, ties by position.
    """
    keep = positions >= 0
    q = len(queries)
    if not keep.any():
        return np.empty((q, 0)), np.empty((q, 0), dtype=np.int64)
    S = (np.asarray(x_block, dtype=np.float64)[keep] - mean) / scale
    pos = positions[keep]
    kk = min(k, len(S))
    sq = np.sum(S**2, axis=1)
    out_d = np.empty((q, kk))
    out_p = np.empty((q, kk), dtype=np.int64)
    step = max(1, _DISTANCE_ELEMENTS // len(S))
    for a in range(0, q, step):
        Q = queries[a : a + step]
        d = sq + np.sum(Q**2, axis=1)[:, None] - 2.0 * Q @ S.T
        if kk < len(S):
            cand = np.argpartition(d, kk - 1, axis=1)[:, :kk]
        else:
            cand = np.broadcast_to(np.arange(len(S)), d.shape)
        dc = np.take_along_axis(d, cand, axis=1)
        pc = pos[cand]
        order = np.lexsort((pc, dc), axis=-1)
        out_d[a : a + step] = np.take_along_axis(dc, order, axis=1)
        out_p[a : a + step] = np.take_along_axis(pc, order, axis=1)
    return out_d, out_p


def _merge_topk(k: int, *parts: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    d = np.concatenate([p[0] for p in parts], axis=1)
    p = np.concatenate([p[1] for p in parts], axis=1)
    order = np.lexsort((p, d), axis=-1)[:, :k]
    return np.take_along_axis(d, order, axis=1), np.take_along_axis(p, order, axis=1)


def nearest_rows(
    X_train: Any,
    X_query: np.ndarray,
    k: int,
    rows: np.ndarray | None = None,
    mean: Any = 0.0,
    scale: float = 1.0,
    scheduler: Any = None,
    split_every: int = SPLIT_EVERY,
    progress: ProgressCallback | None = None,
) -> np.ndarray:
    """Sharded exact ``k``-nearest-neighbour search: one shard per row block of ``X_train``.

    Parameters
    ----------
    X_train : dask array or array (n, d)
        Candidate rows (unscaled); only ``rows`` of them are candidates when given.
    X_query : array (q, d)
        Query rows, already in the scaled space.
    k : int
        Neighbours per query.
    rows : array of int, optional
        The candidate rows of ``X_train``; position ``i`` of this array is candidate ``i``.
    mean, scale
        Candidates are compared as ``(X_train[row] - mean) / scale``.

    Returns
    -------
    ndarray of shape (q, k)
        Candidate positions (indices into ``rows``), nearest first, ties by position: what
        :func:`~mlipspace.metrics.reconstruction.nearest_train_rows` returns for
        ``(X_train[rows] - mean) / scale``.
    """
    import dask

    client = get_client(scheduler)
    X = as_dask(X_train)
    n = X.shape[0]
    rows = np.arange(n) if rows is None else np.asarray(rows, dtype=np.int64)
    if not 1 <= k <= len(rows):
        raise MetricInputError(f"k={k} neighbours from {len(rows)} candidates")
    position = np.full(n, -1, dtype=np.int64)
    position[rows] = np.arange(len(rows))
    queries = dask.delayed(np.asarray(X_query, dtype=np.float64))
    mean = np.asarray(mean, dtype=np.float64)
    leaves = [
        dask.delayed(_shard_topk, pure=True)(xb, position[a:b], mean, scale, queries, int(k))
        for xb, (a, b) in zip(_blocks(X), _bounds(X.chunks[0]), strict=True)
        if (position[a:b] >= 0).any()
    ]
    _, neighbours = tree_reduce(
        leaves, functools.partial(_merge_topk, int(k)), client, split_every, progress
    )
    return neighbours


def _local_chunk(
    x_rows: np.ndarray,
    y_rows: np.ndarray,
    x_query: np.ndarray,
    y_query: np.ndarray,
    scaling: tuple[np.ndarray, float, np.ndarray, float],
    k: int,
) -> np.ndarray:
    """Pointwise LFRE of some test rows from the union of their neighbourhoods."""
    mean_x, scale_x, mean_y, scale_y = scaling
    X_train = (np.asarray(x_rows, dtype=np.float64) - mean_x) / scale_x
    Y_train = (np.asarray(y_rows, dtype=np.float64) - mean_y) / scale_y
    prob = rec._LocalProblem(folds=rr.fold_indices(k), rcond=rr.rcond_for((k, X_train.shape[1])))
    return rec._pointwise_lfre_scaled(X_train, x_query, Y_train, y_query, k, prob, None, 1, 64)


def pointwise_lfre(
    X: Any,
    Y: Any,
    n_local_points: int = 100,
    train_idx: Any = None,
    test_idx: Any = None,
    scheduler: Any = None,
    chunk_rows: int = CHUNK_ROWS,
    query_chunk: int = 128,
    progress: ProgressCallback | None = None,
) -> np.ndarray:
    """Per-test-row LFRE with a sharded neighbour search (see the module docstring).

    Same definition and parameters as :func:`mlipspace.metrics.pointwise_lfre` (default
    scaler and estimator); ``query_chunk`` test rows share one local-fit task. The test rows
    are gathered here (``n_test × d`` floats); the training rows stay in their blocks.

    Returns
    -------
    ndarray of shape (n_test,)
    """
    import dask

    client = get_client(scheduler)
    X, Y = _pair(X, Y, chunk_rows)
    n = X.shape[0]
    k = rec.local_points(n, n_local_points)
    train, test = rec.resolve_split(n, train_idx, test_idx)
    k = rec.local_points(n, k, len(train))
    scaling = _flexible_scaling(X, Y, train, client, None)
    mean_x, scale_x, mean_y, scale_y = scaling
    X_test = (take_rows(X, test, client) - mean_x) / scale_x
    Y_test = (take_rows(Y, test, client) - mean_y) / scale_y
    neighbours = nearest_rows(X, X_test, k, train, mean_x, scale_x, client)
    tasks = []
    for a in range(0, len(test), max(1, int(query_chunk))):
        b = min(a + max(1, int(query_chunk)), len(test))
        union = train[np.unique(neighbours[a:b])]  # in training-row order, as in one process
        tasks.append(
            dask.delayed(_local_chunk, pure=True)(
                X[union], Y[union], X_test[a:b], Y_test[a:b], scaling, k
            )
        )
    parts = compute_all(tasks, client, progress)
    return rec._finite_result(np.concatenate(parts), "LFRE")


def lfre(X: Any, Y: Any, n_local_points: int = 100, **kwargs: Any) -> float:
    """LFRE (RMS of :func:`pointwise_lfre`)."""
    return rec._rms(pointwise_lfre(X, Y, n_local_points, **kwargs))


# -- cumulants ---------------------------------------------------------------------------


def _block_moments(
    x_block: np.ndarray, keys: np.ndarray, max_order: int
) -> tuple[np.ndarray, _Moments, np.ndarray]:
    """Per-structure moments of one block (structures in order of appearance), row norms."""
    X = _check_X(x_block)
    uniq, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    moments = _group_moments(X, inverse, len(uniq), max_order)
    order = np.argsort(first)
    norms = np.linalg.norm(np.asarray(X, dtype=np.float64), axis=1)
    return uniq[order], moments.take(order), norms


def _merge_moments(*parts: tuple[np.ndarray, _Moments, np.ndarray]) -> tuple:
    """Union of per-structure moments; a structure in several parts is merged exactly."""
    norms = np.concatenate([part[2] for part in parts])
    keys = np.array(list(dict.fromkeys(k for part in parts for k in part[0].tolist())))
    if len(keys) == sum(len(part[0]) for part in parts):  # disjoint (whole structures)
        stacked = _Moments(
            *(
                np.concatenate([getattr(part[1], f) for part in parts])
                for f in ("count", "mean", "M")
            )
        )
        return keys, stacked, norms
    slot = {key: i for i, key in enumerate(keys.tolist())}
    first = parts[0][1]
    state = _Moments.zeros(len(keys), first.mean.shape[1], first.M.shape[1] + 1)
    for part_keys, moments, _ in parts:
        rows = np.array([slot[key] for key in part_keys.tolist()], dtype=np.int64)
        merged = _merge(state.take(rows), moments)
        state.count[rows] = merged.count
        state.mean[rows] = merged.mean
        state.M[rows] = merged.M
    return keys, state, norms


def _reduce_moments(
    X: Any,
    keys: np.ndarray,
    max_order: int,
    client: Client | None,
    chunk_rows: int,
    split_every: int,
    progress: ProgressCallback | None,
) -> tuple[np.ndarray, _Moments, np.ndarray]:
    import dask

    X = as_dask(X, chunk_rows)
    keys = np.asarray(keys).astype(str)
    if keys.shape != (X.shape[0],):
        raise MetricInputError(f"keys must hold one label per row: {keys.shape} vs {X.shape}")
    leaves = [
        dask.delayed(_block_moments, pure=True)(xb, keys[a:b], max_order)
        for xb, (a, b) in zip(_blocks(X), _bounds(X.chunks[0]), strict=True)
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
    max_order = _check_order(max_order)
    client = get_client(scheduler)
    hashes, state, _ = _reduce_moments(
        X, keys, max_order, client, chunk_rows, split_every, progress
    )
    return StructureFeatures(
        X=_finish(state, max_order, scaled),
        structure_hash=hashes.astype(str),
        structures=_structures_frame(hashes.astype(str), state.count),
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
    max_order = _check_order(max_order)
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
            X=_finish(state.take(rows), max_order, scaled),
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


# -- the engine of compare ---------------------------------------------------------------


class DaskEngine:
    """GFRE, GFRD and LFRE on a Dask cluster, for :func:`mlipspace.compare` (``engine=``).

    Has the signatures of :func:`~mlipspace.metrics.reconstruction.pointwise_gfre`,
    :func:`~mlipspace.metrics.reconstruction.pointwise_gfrd` and
    :func:`~mlipspace.metrics.reconstruction.pointwise_lfre`: every feature array is put on
    the cluster once (``persist``; a lost block is recomputed), GFRE/GFRD come from the tree
    reduction of :func:`reconstruction_stats` (one reduction serves both measures of a pair)
    and are evaluated on the test rows (:meth:`ReconstructionStats.pointwise`), LFRE from
    :func:`pointwise_lfre`.

    GFRE and GFRD solve the normal equations of the streamed fit, so they agree with the
    in-process SVD path to about 1e-8 (relative; see ``gfre_streamed``); LFRE agrees to
    rounding.

    Parameters
    ----------
    scheduler : str or distributed.Client
        See :func:`get_client`.
    chunk_rows : int
        Rows per block.
    """

    def __init__(self, scheduler: Any, chunk_rows: int = CHUNK_ROWS):
        self.client = get_client(scheduler)
        self.chunk_rows = int(chunk_rows)
        self._arrays: dict[int, tuple[Any, da.Array]] = {}
        self._stats: dict[tuple, rec.ReconstructionStats] = {}

    def _dask(self, A: Any) -> da.Array:
        held = self._arrays.get(id(A))
        if held is None or held[0] is not A:
            array = as_dask(A, self.chunk_rows)
            if self.client is not None:
                array = self.client.persist(array)
            held = (A, array)
            self._arrays[id(A)] = held
        return held[1]

    def _reconstruction(self, X, Y, train_idx, test_idx) -> rec.ReconstructionStats:
        key = (
            id(X),
            id(Y),
            None if train_idx is None else np.asarray(train_idx).tobytes(),
            None if test_idx is None else np.asarray(test_idx).tobytes(),
        )
        stats = self._stats.get(key)
        if stats is None:
            stats = reconstruction_stats(
                self._dask(X), self._dask(Y), train_idx, test_idx, scheduler=self.client
            )
            self._stats = {key: stats}  # one pair at a time: gfre then gfrd
        return stats

    def _pointwise(self, measure, X, Y, train_idx, test_idx, scaler, estimator) -> np.ndarray:
        if scaler is not None or estimator is not None:
            raise MetricInputError("the Dask engine uses the default scaler and estimator")
        stats = self._reconstruction(X, Y, train_idx, test_idx)
        _, test = rec.resolve_split(len(X), train_idx, test_idx)
        return stats.pointwise(np.asarray(X)[test], np.asarray(Y)[test], measure)

    def pointwise_gfre(
        self, X, Y, train_idx=None, test_idx=None, scaler=None, estimator=None
    ) -> np.ndarray:
        """Per-test-row GFRE (see the class docstring)."""
        return self._pointwise("gfre", X, Y, train_idx, test_idx, scaler, estimator)

    def pointwise_gfrd(
        self, X, Y, train_idx=None, test_idx=None, scaler=None, estimator=None
    ) -> np.ndarray:
        """Per-test-row GFRD (see the class docstring)."""
        return self._pointwise("gfrd", X, Y, train_idx, test_idx, scaler, estimator)

    def pointwise_lfre(
        self,
        X,
        Y,
        n_local_points: int = 100,
        train_idx=None,
        test_idx=None,
        scaler=None,
        estimator=None,
        n_jobs=None,
    ) -> np.ndarray:
        """Per-test-row LFRE with the sharded neighbour search (``n_jobs`` is unused)."""
        if scaler is not None or estimator is not None:
            raise MetricInputError("the Dask engine uses the default scaler and estimator")
        return pointwise_lfre(
            self._dask(X),
            self._dask(Y),
            n_local_points,
            train_idx,
            test_idx,
            scheduler=self.client,
        )


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


def engine_for(scheduler: Any) -> DaskEngine | None:
    """A :class:`DaskEngine` for ``scheduler``, or ``None`` (in-process measures) without one."""
    return None if scheduler is None else DaskEngine(scheduler)
