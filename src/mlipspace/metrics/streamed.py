"""Streamed GFRE and GFRD from sufficient statistics, in ``O(d²)`` memory.

Rows arrive in blocks; each block gives its per-group sums (:func:`chunk_stats`: CV fold 1,
fold 2 and test), blocks are added (:func:`merge_stats`) and the fit of
:mod:`mlipspace.metrics.ridge` is solved once from the total (:func:`gfre_streamed`,
:func:`gfrd_streamed`). The in-memory iterator (:func:`reconstruction_stats`) and the Dask tree
reduction (:mod:`mlipspace.distributed.measures`) call the same block kernels.

The block sums (``O(m d²)`` per block: all the work on long streams) run on the backend of
``device`` (:mod:`mlipspace.metrics.backend`; on a GPU with ``device="cuda"``); the totals come
back to numpy, where the ``d × d`` fit is solved once with LAPACK.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import MetricInputError
from . import backend as bk
from . import ridge as rr
from .gfr import pad, procrustes_rotation
from .scaling import total_variance
from .split import resolve_split
from .validation import check_features, check_finite_result, check_pair, validate_params

__all__ = [
    "GroupStats",
    "ReconstructionStats",
    "ScaledMoments",
    "add_chunk",
    "chunk_shift",
    "chunk_stats",
    "gfrd_streamed",
    "gfre_streamed",
    "iter_row_chunks",
    "merge_stats",
    "reconstruction_stats",
    "row_groups",
]

#: the groups of :func:`row_groups`: CV fold 1 and 2 of the training rows, test rows
FOLD1, FOLD2, TEST = 0, 1, 2


@dataclass
class GroupStats:
    """Sums over the rows of one group: count, ``Σx``, ``Σy``, ``xᵀx``, ``xᵀy`` and per-column
    ``Σy²`` (rows shifted by the first chunk's means)."""

    n: int
    sx: np.ndarray
    sy: np.ndarray
    xx: np.ndarray
    xy: np.ndarray
    yy: np.ndarray  # per-column sums of squares

    @classmethod
    def zeros(cls, dx: int, dy: int, like=None) -> GroupStats:
        """Empty sums for ``dx`` source and ``dy`` target features (on the backend of
        ``like``, numpy by default)."""

        def z(*shape):
            return np.zeros(shape) if like is None else bk.zeros(shape, like)

        return cls(0, z(dx), z(dy), z(dx, dx), z(dx, dy), z(dy))

    def add(self, X, Y, weight=None) -> None:
        """Add rows (already shifted, float64) in place, each ``weight`` times if given."""
        if weight is not None:
            Xw = X * weight[:, None]
            self.n += int(weight.sum())
            self.sx += weight @ X
            self.sy += weight @ Y
            self.xx += Xw.T @ X
            self.xy += Xw.T @ Y
            self.yy += weight @ (Y * Y)
            return
        self.n += len(X)
        self.sx += X.sum(axis=0)
        self.sy += Y.sum(axis=0)
        self.xx += X.T @ X
        self.xy += X.T @ Y
        self.yy += (Y * Y).sum(axis=0) if bk.is_torch(Y) else np.einsum("ij,ij->j", Y, Y)

    def to_numpy(self) -> GroupStats:
        """These sums as numpy arrays (copied from the device of a torch backend)."""
        return GroupStats(
            self.n, *(bk.to_numpy(a) for a in (self.sx, self.sy, self.xx, self.xy, self.yy))
        )

    def __add__(self, other: GroupStats) -> GroupStats:
        return GroupStats(
            self.n + other.n,
            self.sx + other.sx,
            self.sy + other.sy,
            self.xx + other.xx,
            self.xy + other.xy,
            self.yy + other.yy,
        )


@dataclass
class ScaledMoments:
    """Second moments of one row group in the scaled space: count, ``xᵀx``, ``xᵀy`` and
    per-column ``Σy²``."""

    n: int
    xx: np.ndarray
    xy: np.ndarray
    yy: np.ndarray


@dataclass
class ReconstructionStats:
    """Sufficient statistics of a streamed pair ``(X, Y)`` for GFRE and GFRD.

    Built by :func:`reconstruction_stats`; holds per-group sums (fold 1, fold 2, test) of
    ``x``, ``y``, ``xᵀx``, ``xᵀy`` and ``y²`` (float64, shifted by the first chunk's means).
    """

    groups: list[GroupStats]
    n_features_x: int
    n_features_y: int
    shift_x: np.ndarray | None = None  # subtracted from every row before summing
    shift_y: np.ndarray | None = None

    def _scaling(self) -> tuple[np.ndarray, np.ndarray, float, float]:
        """Training means (shifted frame) and total variances of ``X`` and ``Y``."""
        train = self.groups[FOLD1] + self.groups[FOLD2]
        mx, my = train.sx / train.n, train.sy / train.n
        var_x = (np.trace(train.xx) - train.n * mx @ mx) / train.n
        var_y = (train.yy.sum() - train.n * my @ my) / train.n
        return mx, my, total_variance(var_x, "X"), total_variance(var_y, "Y")

    def pointwise(self, X_rows, Y_rows, measure: str = "gfre") -> np.ndarray:
        """Per-row GFRE or GFRD of the streamed fit on some rows (e.g. the test rows).

        ``X_rows``, ``Y_rows`` are unscaled rows of the original arrays; the root mean square
        over the test rows is :func:`gfre_streamed` (or :func:`gfrd_streamed`) up to rounding.
        Needs the shifts recorded by :func:`reconstruction_stats`.
        """
        if self.shift_x is None or self.shift_y is None:
            raise MetricInputError(
                "these statistics carry no shifts; build them with reconstruction_stats"
            )
        X_rows, Y_rows = check_pair(X_rows, Y_rows)
        mx, my, var_x, var_y = self._scaling()
        Xs = (X_rows - self.shift_x - mx) / np.sqrt(var_x)
        W, (f1, f2, _) = _streamed_weights(self)
        pred = Xs @ W
        if measure == "gfre":
            Ys = (Y_rows - self.shift_y - my) / np.sqrt(var_y)
            return check_finite_result(np.linalg.norm(Ys - pred, axis=1), "GFRE")
        if measure != "gfrd":
            raise MetricInputError(f"measure must be 'gfre' or 'gfrd', not {measure!r}")
        Q = _streamed_procrustes(W, f1, f2)
        width = Q.shape[0]
        distortion = pad(pred, width) - pad(Xs, width) @ Q
        return check_finite_result(np.linalg.norm(distortion, axis=1), "GFRD")

    def scaled(self) -> list[ScaledMoments]:
        """Moments of fold 1, fold 2 and test in the space scaled by the training statistics."""
        mx, my, var_x, var_y = self._scaling()
        sx_, sy_ = np.sqrt(var_x), np.sqrt(var_y)
        out = []
        for g in self.groups:
            xx = g.xx - np.outer(mx, g.sx) - np.outer(g.sx, mx) + g.n * np.outer(mx, mx)
            xy = g.xy - np.outer(mx, g.sy) - np.outer(g.sx, my) + g.n * np.outer(mx, my)
            yy = g.yy - 2 * my * g.sy + g.n * my**2
            out.append(ScaledMoments(g.n, xx / var_x, xy / (sx_ * sy_), yy / var_y))
        return out


def reconstruction_stats(
    chunks: Iterable[tuple[np.ndarray, np.ndarray]],
    n_samples: int,
    train_idx=None,
    test_idx=None,
    device: str | None = None,
) -> ReconstructionStats:
    """Accumulate the statistics of a pair of arrays read chunk by chunk.

    Parameters
    ----------
    chunks : iterable of (X_chunk, Y_chunk)
        Consecutive row blocks of ``X`` and ``Y`` (any float dtype), ``n_samples`` rows in all.
    n_samples : int
        Total number of rows (needed up front for the default split and the CV folds).
    train_idx, test_idx : array of int, optional
        As in :func:`gfre`; rows in neither are ignored.
    device : str, optional
        Where the block sums run: ``None``/``"cpu"`` (numpy), ``"cuda[:i]"`` or
        ``"torch-cpu"`` (torch float64). The statistics returned are numpy arrays.

    Returns
    -------
    ReconstructionStats
    """
    validate_params(n_samples=n_samples)
    backend = bk.get_backend(device)
    group = row_groups(n_samples, train_idx, test_idx)
    stats: list[GroupStats] | None = None
    shift_x = shift_y = None
    start = 0
    for X_chunk, Y_chunk in chunks:
        if stats is None:
            shift_x, shift_y = chunk_shift(X_chunk, Y_chunk)
        stop = start + len(X_chunk)
        if stop > n_samples:
            raise MetricInputError(f"the chunks hold more than n_samples={n_samples} rows")
        part = chunk_stats(
            X_chunk, Y_chunk, group[start:stop], shift_x, shift_y, start, device=backend
        )
        stats = part if stats is None else merge_stats(stats, part)
        start = stop
    if stats is None or start != n_samples:
        raise MetricInputError(f"the chunks hold {start} rows, expected n_samples={n_samples}")
    if not backend.is_numpy:
        stats = [g.to_numpy() for g in stats]
    return ReconstructionStats(
        stats, stats[0].xx.shape[0], stats[0].xy.shape[1], shift_x=shift_x, shift_y=shift_y
    )


def row_groups(n_samples: int, train_idx=None, test_idx=None) -> np.ndarray:
    """How many times every row counts in each group of the streamed fit.

    The split is the one :func:`resolve_split` makes; the training rows are divided into the
    two CV folds by position, as :func:`~mlipspace.metrics.gfr.gfre` divides ``X[train_idx]``.
    A row in both ``train_idx`` and ``test_idx`` counts in both groups, and a row given twice
    counts twice, so the streamed fit is the in-memory fit on the same indices.

    Returns
    -------
    ndarray of int64, shape (n_samples, 3)
        Columns :data:`FOLD1`, :data:`FOLD2`, :data:`TEST`.
    """
    train, test = resolve_split(n_samples, train_idx, test_idx, "GFRE/GFRD")
    counts = np.zeros((n_samples, 3), dtype=np.int64)
    fold1, fold2 = rr.fold_indices(len(train))
    np.add.at(counts[:, FOLD1], train[fold1], 1)
    np.add.at(counts[:, FOLD2], train[fold2], 1)
    np.add.at(counts[:, TEST], test, 1)
    return counts


def add_chunk(
    stats: list[GroupStats],
    X_chunk: np.ndarray,
    Y_chunk: np.ndarray,
    groups: np.ndarray,
    shift_x: np.ndarray,
    shift_y: np.ndarray,
) -> None:
    """Add a block of (float64) rows to the per-group statistics ``stats`` (fold 1, fold 2,
    test); ``groups`` is the block's slice of :func:`row_groups` (numpy). The rows, shifts
    and sums may be torch tensors (all on one device)."""
    for gid in (FOLD1, FOLD2, TEST):
        weight = groups[:, gid]
        rows = weight > 0
        if rows.any():
            w = weight[rows]
            w = None if np.all(w == 1) else w.astype(np.float64)
            if bk.is_torch(X_chunk):
                rows = bk.index_array(np.flatnonzero(rows), like=X_chunk)
                w = None if w is None else bk.asarray(w, bk.backend_of(X_chunk))
            stats[gid].add(X_chunk[rows] - shift_x, Y_chunk[rows] - shift_y, w)


def chunk_shift(X_chunk, Y_chunk) -> tuple[np.ndarray, np.ndarray]:
    """The shift of the streamed sums: the column means of the first chunk (checked).

    Summing shifted rows keeps the second moments accurate when the features have a large
    mean.
    """
    X = check_features(X_chunk, "X rows 0+")
    Y = check_features(Y_chunk, "Y rows 0+")
    return X.mean(axis=0), Y.mean(axis=0)


def chunk_stats(
    X_chunk,
    Y_chunk,
    groups: np.ndarray,
    shift_x: np.ndarray,
    shift_y: np.ndarray,
    start: int = 0,
    device: str | bk.Backend | None = None,
) -> list[GroupStats]:
    """The per-group sums (fold 1, fold 2, test) of one block of rows.

    Parameters
    ----------
    X_chunk, Y_chunk : array of shape (m, d_X), (m, d_Y)
        Consecutive rows ``start .. start + m`` of ``X`` and ``Y`` (checked here).
    groups : ndarray of shape (m,)
        The block's slice of :func:`row_groups`.
    shift_x, shift_y : ndarray
        From :func:`chunk_shift` of the first block.
    start : int
        First row of the block (for error messages).
    device : str, optional
        Where the sums are computed (see :func:`reconstruction_stats`); on torch the sums
        stay on the device (merge them there, then :meth:`GroupStats.to_numpy`).

    Returns
    -------
    list of GroupStats
        Add blocks with :func:`merge_stats`.
    """
    backend = bk.get_backend(device)
    X = check_features(X_chunk, f"X rows {start}+")
    Y = check_features(Y_chunk, f"Y rows {start}+")
    if len(X) != len(Y):
        raise MetricInputError(f"chunk at row {start}: X has {len(X)} rows but Y has {len(Y)}")
    if (X.shape[1], Y.shape[1]) != (len(shift_x), len(shift_y)):
        raise MetricInputError(
            f"chunk at row {start} has {X.shape[1]} X and {Y.shape[1]} Y features; the first "
            f"chunk had {len(shift_x)} and {len(shift_y)}"
        )
    for A, shift, name in ((X, shift_x, "X"), (Y, shift_y, "Y")):
        # squares of the shifted rows must stay finite in the sums (about 1e154)
        if not np.max(np.abs(A - shift), initial=0.0) < 1e150:
            raise MetricInputError(
                f"{name} rows {start}+ hold values that overflow float64 in the streamed "
                "statistics (|x| near 1e150 or beyond); rescale it (the measures do not "
                "depend on the scale of a side)"
            )
    if not backend.is_numpy:
        X, Y = bk.asarray(X, backend), bk.asarray(Y, backend)
        shift_x, shift_y = bk.asarray(shift_x, backend), bk.asarray(shift_y, backend)
    like = None if backend.is_numpy else X
    stats = [GroupStats.zeros(X.shape[1], Y.shape[1], like) for _ in range(3)]
    add_chunk(stats, X, Y, groups, shift_x, shift_y)
    return stats


def merge_stats(*parts: list[GroupStats]) -> list[GroupStats]:
    """The per-group sums of several blocks, added in the order given."""
    out = parts[0]
    for part in parts[1:]:
        out = [a + b for a, b in zip(out, part, strict=True)]
    return out


def _gram_factors_from_stats(xx: np.ndarray, xy: np.ndarray):
    """Eigen-factors of a fold from its moments: ``s``, ``V`` and ``R / s = Vᵀ xy / s²``."""
    lam, V = rr.eigh_desc(xx)
    floor = 1e-12 * max(lam[0], 0.0)  # below this the normal equations cannot resolve a value
    keep = lam > floor
    s = np.where(keep, np.sqrt(np.clip(lam, 0.0, None)), 0.0)
    inv_lam = np.divide(1.0, lam, out=np.zeros_like(lam), where=keep)
    Rt = (V.T @ xy) * inv_lam[:, None]  # weights in the eigenbasis: W = V @ Rt
    return s, V, Rt


def _sse_by_count(V, Rt, other: ScaledMoments) -> np.ndarray:
    """Per-column SSE on ``other`` of the model truncated to ``n`` components, for every ``n``.

    Row ``n`` of the result is for the first ``n`` components (row 0: the zero model).
    """
    g = V.T @ other.xy
    H = V.T @ other.xx @ V
    cross = np.cumsum(g * Rt, axis=0)
    incr = 2.0 * Rt * (np.tril(H, -1) @ Rt) + np.diag(H)[:, None] * Rt**2
    quad = np.cumsum(incr, axis=0)
    sse = other.yy[None, :] - 2.0 * cross + quad
    return np.vstack([other.yy[None, :], sse])


def _streamed_weights(stats: ReconstructionStats) -> tuple[np.ndarray, list[ScaledMoments]]:
    f1, f2, test = stats.scaled()
    n_train = f1.n + f2.n
    rcond = rr.rcond_for((n_train, stats.n_features_x))
    s1, V1, R1 = _gram_factors_from_stats(f1.xx, f1.xy)
    s2, V2, R2 = _gram_factors_from_stats(f2.xx, f2.xy)
    cutoffs = rr.scaled_cutoffs(s1, s2)
    sse12 = _sse_by_count(V1, R1, f2)
    sse21 = _sse_by_count(V2, R2, f1)
    n1 = rr.counts_for(s1, cutoffs, rcond)
    n2 = rr.counts_for(s2, cutoffs, rcond)
    scores = np.array(
        [
            (rr.neg_rmse_from_sse(sse12[a], f2.n) + rr.neg_rmse_from_sse(sse21[b], f1.n)) / 2
            for a, b in zip(n1, n2, strict=True)
        ]
    )
    cutoff = cutoffs[int(np.argmax(scores))]
    xx = f1.xx + f2.xx
    xy = f1.xy + f2.xy
    s, V, Rt = _gram_factors_from_stats(xx, xy)
    n = int(np.sum(s > cutoff))
    W = V[:, :n] @ Rt[:n]
    return W, [f1, f2, test]


def _as_stats(chunks, *args: Any, **kwargs: Any) -> ReconstructionStats:
    """``chunks`` if it is already :class:`ReconstructionStats`, else their accumulation."""
    if isinstance(chunks, ReconstructionStats):
        return chunks
    return reconstruction_stats(chunks, *args, **kwargs)


def gfre_streamed(chunks, *args: Any, **kwargs: Any) -> float:
    """GFRE of ``Y`` from ``X`` read chunk by chunk, in ``O(d²)`` memory.

    Equal to :func:`gfre` on the concatenated arrays up to the precision of the normal
    equations (relative ~1e-8 for well-conditioned features; singular values below
    ``1e-6 · s_max`` are treated as zero). Parameters as in :func:`reconstruction_stats`
    (``chunks, n_samples, train_idx=None, test_idx=None, device=None``; ``device``: where
    the block sums run), or ``chunks`` the :class:`ReconstructionStats` they give.
    """
    W, (_, _, test) = _streamed_weights(_as_stats(chunks, *args, **kwargs))
    sse = test.yy.sum() - 2.0 * np.sum(W * test.xy) + np.sum(W * (test.xx @ W))
    return float(np.sqrt(max(sse, 0.0) / test.n))


def gfrd_streamed(chunks, *args: Any, **kwargs: Any) -> float:
    """GFRD of ``Y`` from ``X`` read chunk by chunk (parameters of :func:`gfre_streamed`)."""
    W, (f1, f2, test) = _streamed_weights(_as_stats(chunks, *args, **kwargs))
    dx, dy = W.shape
    Q = _streamed_procrustes(W, f1, f2)[:dx, :dy]
    total = np.sum(W * (test.xx @ W)) + np.trace(test.xx) - 2.0 * np.sum(W * (test.xx @ Q))
    return float(np.sqrt(max(total, 0.0) / test.n))


def _streamed_procrustes(W: np.ndarray, f1: ScaledMoments, f2: ScaledMoments) -> np.ndarray:
    """The orthogonal map (zero-padded, square) closest to ``W`` on the training rows."""
    dx, dy = W.shape
    width = max(dx, dy)
    M = np.zeros((width, width))
    M[:dx, :dy] = (f1.xx + f2.xx) @ W
    return procrustes_rotation(M)


def iter_row_chunks(X, Y, chunk_size: int = 65536) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(X[i:i+chunk], Y[i:i+chunk])`` blocks of in-memory arrays."""
    validate_params(chunk_size=chunk_size)
    for start in range(0, len(X), chunk_size):
        yield X[start : start + chunk_size], Y[start : start + chunk_size]
