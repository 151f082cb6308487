"""GFRE, GFRD and LFRE on Dask, over chunked arrays or a feature store.

The global measures are tree reductions of sufficient statistics: every row block gives its
per-group sums (:func:`mlipspace.metrics.streamed.chunk_stats`: CV fold 1, fold 2 and test;
``x``, ``y``, ``xᵀx``, ``xᵀy``, ``y²``), partial sums are added in a fixed tree
(:func:`~mlipspace.metrics.streamed.merge_stats`), and the fit is solved once from the total
(:func:`~mlipspace.metrics.streamed.gfre_streamed`).

LFRE needs the ``k`` nearest training rows of every test row: each training block ("shard")
gives the top ``k`` of its own rows for every test row, and the shard lists are merged in a
tree, nearest first, ties broken by training-row position, with the distance and selection
kernels of :mod:`mlipspace.metrics.neighbours` that the in-process search uses. The scaling
is the flexible scaler's (:func:`mlipspace.metrics.scaling.total_variance`), and the local
fits run per chunk of test rows, on the union of their neighbourhoods, through
:func:`mlipspace.metrics.reconstruction.pointwise_lfre_scaled`.

Cumulants on Dask are in :mod:`mlipspace.distributed.pooled` (re-exported here).

Every function takes ``scheduler`` (see :func:`mlipspace.distributed.get_client`); with
``None`` the same task tree runs in this process, one block at a time, so memory stays at a
few blocks whatever the number of rows.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import MetricInputError
from ..metrics import streamed
from ..metrics.neighbours import duplicate_representatives, k_smallest, squared_distances
from ..metrics.reconstruction import local_points, pointwise_lfre_scaled
from ..metrics.scaling import total_variance
from ..metrics.split import resolve_split
from ..metrics.validation import check_finite_result, rms
from .arrays import CHUNK_ROWS, as_dask, compute_one, row_blocks, row_bounds
from .client import SPLIT_EVERY, ProgressCallback, compute_all, get_client, tree_reduce

if TYPE_CHECKING:
    import dask.array as da
    from distributed import Client

__all__ = [
    "DaskEngine",
    "engine_for",
    "gfrd",
    "gfre",
    "lfre",
    "nearest_rows",
    "pointwise_lfre",
    "reconstruction_stats",
    "take_rows",
]

#: float64 elements of one distance block in the neighbour search
_DISTANCE_ELEMENTS = 1 << 22


# -- inputs ------------------------------------------------------------------------------


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


def take_rows(A: Any, rows: np.ndarray, scheduler: Any = None) -> np.ndarray:
    """``A[rows]`` as a float64 NumPy array (only the blocks holding those rows are read)."""
    client = get_client(scheduler)
    rows = np.asarray(rows, dtype=np.int64)
    A = as_dask(A)
    order = np.argsort(rows, kind="stable")
    picked = np.asarray(compute_one(A[rows[order]], client), dtype=np.float64)
    out = np.empty_like(picked)
    out[order] = picked
    return out


# -- GFRE / GFRD -------------------------------------------------------------------------


def reconstruction_stats(
    X: Any,
    Y: Any,
    train_idx: Any = None,
    test_idx: Any = None,
    scheduler: Any = None,
    chunk_rows: int = CHUNK_ROWS,
    split_every: int = SPLIT_EVERY,
    progress: ProgressCallback | None = None,
) -> streamed.ReconstructionStats:
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
        Pass it to :func:`~mlipspace.metrics.streamed.gfre_streamed`; equal (to
        rounding) to :func:`~mlipspace.metrics.streamed.reconstruction_stats` read with
        the same blocks, the first block giving the shift.
    """
    import dask

    client = get_client(scheduler)
    X, Y = _pair(X, Y, chunk_rows)
    n = X.shape[0]
    groups = streamed.row_groups(n, train_idx, test_idx)
    xs, ys = row_blocks(X), row_blocks(Y)
    shift_x, shift_y = compute_one(dask.delayed(streamed.chunk_shift)(xs[0], ys[0]), client)
    leaves = [
        dask.delayed(streamed.chunk_stats, pure=True)(xb, yb, groups[a:b], shift_x, shift_y, a)
        for xb, yb, (a, b) in zip(xs, ys, row_bounds(X.chunks[0]), strict=True)
    ]
    stats = tree_reduce(leaves, streamed.merge_stats, client, split_every, progress)
    return streamed.ReconstructionStats(
        stats, X.shape[1], Y.shape[1], shift_x=np.asarray(shift_x), shift_y=np.asarray(shift_y)
    )


def gfre(X: Any, Y: Any, train_idx: Any = None, test_idx: Any = None, **kwargs: Any) -> float:
    """GFRE of ``Y`` from ``X`` by tree reduction (see :func:`reconstruction_stats`).

    Equal to :func:`mlipspace.metrics.streamed.gfre_streamed` to rounding; keywords go
    to :func:`reconstruction_stats` (``scheduler``, ``chunk_rows``, ...).
    """
    stats = reconstruction_stats(X, Y, train_idx, test_idx, **kwargs)
    return streamed.gfre_streamed(stats, 0)


def gfrd(X: Any, Y: Any, train_idx: Any = None, test_idx: Any = None, **kwargs: Any) -> float:
    """GFRD of ``Y`` from ``X`` by tree reduction (see :func:`gfre`)."""
    stats = reconstruction_stats(X, Y, train_idx, test_idx, **kwargs)
    return streamed.gfrd_streamed(stats, 0)


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
    xs, ys, bounds = row_blocks(X), row_blocks(Y), row_bounds(X.chunks[0])
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
    scale_x = np.sqrt(total_variance(ss_x / count, "X"))
    scale_y = np.sqrt(total_variance(ss_y / count, "Y"))
    return mean_x, scale_x, mean_y, scale_y


def _shard_topk(
    x_block: np.ndarray,
    positions: np.ndarray,
    mean: np.ndarray,
    scale: float,
    queries: np.ndarray,
    k: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest training rows of this block for every query: distances, positions.

    Distances as :func:`~mlipspace.metrics.neighbours.nearest_train_rows` computes them;
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
    representatives = duplicate_representatives(S)
    out_d = np.empty((q, kk))
    out_p = np.empty((q, kk), dtype=np.int64)
    step = max(1, _DISTANCE_ELEMENTS // len(S))
    for a in range(0, q, step):
        d = squared_distances(queries[a : a + step], S, sq, representatives)
        out_d[a : a + step], out_p[a : a + step] = k_smallest(d, kk, pos)
    return out_d, out_p


def _merge_topk(k: int, *parts: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest of several shards' lists, by the same rule as within a shard."""
    d = np.concatenate([p[0] for p in parts], axis=1)
    p = np.concatenate([p[1] for p in parts], axis=1)
    return k_smallest(d, min(k, d.shape[1]), p)


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
        :func:`~mlipspace.metrics.neighbours.nearest_train_rows` returns for
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
        for xb, (a, b) in zip(row_blocks(X), row_bounds(X.chunks[0]), strict=True)
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
    return pointwise_lfre_scaled(X_train, x_query, Y_train, y_query, k)


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
    k = local_points(n, n_local_points)
    train, test = resolve_split(n, train_idx, test_idx, "LFRE")
    if len(np.unique(train)) != len(train):
        # a training row given twice would be two candidates in memory, one shard row here
        raise MetricInputError("train_idx repeats rows; the Dask LFRE takes each row once")
    k = local_points(n, k, len(train))
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
    return check_finite_result(np.concatenate(parts), "LFRE")


def lfre(X: Any, Y: Any, n_local_points: int = 100, **kwargs: Any) -> float:
    """LFRE (RMS of :func:`pointwise_lfre`)."""
    return rms(pointwise_lfre(X, Y, n_local_points, **kwargs))


# -- the engine of compare ---------------------------------------------------------------


class DaskEngine:
    """GFRE, GFRD and LFRE on a Dask cluster, for :func:`mlipspace.compare` (``engine=``).

    Has the signatures of :func:`~mlipspace.metrics.gfr.pointwise_gfre`,
    :func:`~mlipspace.metrics.gfr.pointwise_gfrd` and
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
        self._stats: dict[tuple, streamed.ReconstructionStats] = {}

    def _dask(self, A: Any) -> da.Array:
        held = self._arrays.get(id(A))
        if held is None or held[0] is not A:
            array = as_dask(A, self.chunk_rows)
            if self.client is not None:
                array = self.client.persist(array)
            held = (A, array)
            self._arrays[id(A)] = held
        return held[1]

    def _reconstruction(self, X, Y, train_idx, test_idx) -> streamed.ReconstructionStats:
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
        _, test = resolve_split(len(X), train_idx, test_idx)
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


def engine_for(scheduler: Any) -> DaskEngine | None:
    """A :class:`DaskEngine` for ``scheduler``, or ``None`` (in-process measures) without one."""
    return None if scheduler is None else DaskEngine(scheduler)
