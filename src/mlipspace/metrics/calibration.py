"""Reading a score against its null: permutation tests, structure bootstraps, width controls.

A similarity or reconstruction score means little on its own: biased CKA of unrelated features
grows with their width, a wide source reconstructs a narrow target better than a narrow one
whatever either holds, and atoms of one structure are not independent samples. This module gives
every score of :mod:`mlipspace.metrics` three references:

* :func:`permutation_test`: the score of ``X`` against ``Y`` with the rows of ``Y`` permuted (by
  whole structures when ``groups`` are given): the null's mean and spread and a p-value;
* :func:`structure_bootstrap`: a percentile confidence interval from resampling structures
  (not atoms) with replacement;
* :func:`random_features`: the featureless source of the width control (a score next to the
  score of Gaussian features of the source's width, same rows) — and
  :func:`mlipspace.metrics.pca_projection` for the score at a common PCA width.

:func:`mlipspace.compare` applies them to every cell of its table when asked
(``n_permutations``, ``n_bootstrap``, ``width_control``). Each measure's direction (whether
higher means more similar) is read from :mod:`mlipspace.metrics.registry`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import MetricInputError
from .gfr import gfre, pointwise_gfre_targets
from .registry import measure_function, measure_info, measure_name
from .split import resolve_split
from .validation import rms

__all__ = [
    "NULL_ALPHA",
    "BootstrapResult",
    "PermutationResult",
    "beats_null",
    "bootstrap_draws",
    "common_width",
    "group_rows",
    "iter_permutations",
    "percentile_interval",
    "permutation_indices",
    "permutation_p_value",
    "permutation_test",
    "random_features",
    "structure_bootstrap",
    "structure_resamples",
    "summarize_draws",
    "summarize_null",
]

# the level below which a p-value "beats its null" in tables and the report (one cell at a time:
# no correction for the many cells of a comparison; see docs/metrics.md)
NULL_ALPHA = 0.05
# null values within this relative distance of the score count as ties ("at least as extreme"),
# so that a permutation that leaves every row in place gives p = 1 despite rounding
_TIE_RTOL = 1e-10


# ---------------------------------------------------------------------------------------------
# structures as blocks of rows
# ---------------------------------------------------------------------------------------------


def group_rows(groups) -> list[np.ndarray]:
    """Rows of each group (structure), groups in order of first appearance, rows ascending."""
    labels = np.asarray(groups)
    if labels.ndim != 1:
        raise MetricInputError(f"groups must be 1-D (one label per row), got shape {labels.shape}")
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rows = np.argsort(inverse, kind="stable")
    bounds = np.cumsum(np.bincount(inverse, minlength=len(first)))[:-1]
    blocks = np.split(rows, bounds)
    return [blocks[i] for i in order]


def _direction(measure, higher_is_similar: bool | None) -> bool:
    if higher_is_similar is not None:
        return bool(higher_is_similar)
    name = measure if isinstance(measure, str) else measure_name(measure)
    if name is None:
        raise MetricInputError(
            "higher_is_similar must be given for a measure that is not one of mlipspace's "
            "(True when a higher value means more similar, False for errors and distances)"
        )
    return measure_info(name).higher_is_similar


def _resolve(measure) -> Callable[[np.ndarray, np.ndarray], float]:
    if isinstance(measure, str):
        return measure_function(measure)
    if not callable(measure):
        raise MetricInputError(f"measure must be a name or a callable, got {type(measure)}")
    return measure


def _check_xy(X, Y, groups) -> tuple[np.ndarray, np.ndarray]:
    X, Y = np.asarray(X), np.asarray(Y)
    if X.ndim != 2 or Y.ndim != 2 or len(X) != len(Y):
        raise MetricInputError(
            f"X and Y must be 2-D with the same rows, got shapes {X.shape} and {Y.shape}"
        )
    if groups is not None and len(groups) != len(X):
        raise MetricInputError(f"groups has {len(groups)} labels but X has {len(X)} rows")
    return X, Y


# ---------------------------------------------------------------------------------------------
# permutation null
# ---------------------------------------------------------------------------------------------


def permutation_indices(
    n: int, n_permutations: int, random_state=0, groups=None
) -> tuple[np.ndarray, float]:
    """Row permutations of the null, and the fraction of rows they can move.

    Without ``groups`` every row is exchangeable: plain uniform permutations. With ``groups``
    (one structure label per row) rows of one structure move together: the structures of each
    atom count are permuted among themselves and structure ``g``'s rows receive, in order, the
    rows of the structure that takes its place. Under the null of no association between the
    structures of ``X`` and those of ``Y``, structures of the same size are exchangeable, while
    atoms of one structure are not (they share a composition and a cell). A structure whose atom
    count no other structure has is never moved: it keeps its own pairing in every permutation,
    which makes the test conservative (its real association stays in the null).

    Returns
    -------
    perms : ndarray of shape (n_permutations, n)
        ``Y[perms[b]]`` is the ``b``-th permuted ``Y`` (:func:`iter_permutations` yields them
        one at a time).
    movable : float
        Fraction of rows that can be moved (1 without ``groups``).
    """
    movable, perms = iter_permutations(n, n_permutations, random_state, groups)
    return np.stack(list(perms)), movable


def iter_permutations(
    n: int, n_permutations: int, random_state=0, groups=None
) -> tuple[float, Iterator[np.ndarray]]:
    """:func:`permutation_indices` one permutation at a time (memory ``O(n)``).

    Returns the fraction of rows that can move and an iterator over the permutations; the same
    ``random_state`` gives the same permutations.
    """
    if int(n_permutations) != n_permutations or n_permutations < 1:
        raise MetricInputError(f"n_permutations must be a positive integer, got {n_permutations}")
    if groups is None:
        classes, movable = None, 1.0
    else:
        if len(groups) != n:
            raise MetricInputError(f"groups has {len(groups)} labels for {n} rows")
        by_size: dict[int, list[np.ndarray]] = {}
        for rows in group_rows(groups):
            by_size.setdefault(len(rows), []).append(rows)
        # one array (structures of this size, atoms per structure) per exchangeable class
        classes = [np.stack(b) for b in by_size.values() if len(b) > 1]
        movable = sum(c.size for c in classes) / n if n else 0.0

    def generate() -> Iterator[np.ndarray]:
        rng = np.random.default_rng(random_state)
        for _ in range(int(n_permutations)):
            if classes is None:
                yield rng.permutation(n)
                continue
            perm = np.arange(n)
            for R in classes:
                perm[R] = R[rng.permutation(len(R))]
            yield perm

    return float(movable), generate()


def permutation_p_value(score: float, null, higher_is_similar: bool) -> float:
    """``(1 + #{null at least as extreme as score}) / (1 + len(null))``.

    "At least as extreme" is ``>=`` for measures where higher means more similar and ``<=``
    for errors and distances; values within ``1e-10`` (relative) of the score count as ties.
    """
    null = np.asarray(null, dtype=np.float64)
    tol = _TIE_RTOL * max(1.0, abs(score))
    hits = null >= score - tol if higher_is_similar else null <= score + tol
    return float((1 + np.count_nonzero(hits)) / (1 + len(null)))


def beats_null(p_value: float, alpha: float = NULL_ALPHA) -> bool:
    """Whether a permutation p-value is at most ``alpha`` (NaN: no test, False)."""
    return bool(np.isfinite(p_value) and p_value <= alpha)


@dataclass(frozen=True)
class PermutationResult:
    """A score and its permutation null.

    Attributes
    ----------
    score : float
        The measure on the rows as paired.
    null_mean, null_std : float
        Mean and standard deviation (``ddof=1``) of the measure over the permutations.
    p_value : float
        ``(1 + #null at least as extreme) / (1 + n_permutations)``: at least
        ``1 / (1 + n_permutations)``.
    n_permutations : int
    higher_is_similar : bool
        The direction the p-value was taken in.
    unit : {"atom", "structure"}
        What was permuted.
    movable : float
        Fraction of rows the permutations could move (structures with a unique atom count
        stay paired).
    null : ndarray of shape (n_permutations,)
    """

    score: float
    null_mean: float
    null_std: float
    p_value: float
    n_permutations: int
    higher_is_similar: bool
    unit: str
    movable: float
    null: np.ndarray = field(repr=False)

    @property
    def beats_null(self) -> bool:
        """``p_value <= NULL_ALPHA``."""
        return beats_null(self.p_value)


def permutation_test(
    measure: str | Callable[[np.ndarray, np.ndarray], float],
    X,
    Y,
    n_permutations: int = 999,
    random_state: int | None = 0,
    groups=None,
    higher_is_similar: bool | None = None,
) -> PermutationResult:
    """Permutation test of a measure: is ``measure(X, Y)`` beyond what unpaired rows give?

    Parameters
    ----------
    measure : str or callable
        A name of :data:`mlipspace.metrics.MEASURES` (computed as
        :func:`mlipspace.metrics.registry.measure_function` says: reconstruction measures on
        scikit-matter's default 50/50 split), or any ``f(X, Y) -> float``.
    X, Y : array of shape (n_samples, ·)
        Same rows. The rows of ``Y`` are permuted against those of ``X``.
    n_permutations : int, default=999
    random_state : int, optional
    groups : array of shape (n_samples,), optional
        Structure of every row: permute whole structures among structures of equal atom count
        (:func:`permutation_indices`) instead of single rows.
    higher_is_similar : bool, optional
        Direction of the test; read from the registry for mlipspace's measures (names or
        functions), required for any other callable.

    Returns
    -------
    PermutationResult
    """
    X, Y = _check_xy(X, Y, groups)
    higher = _direction(measure, higher_is_similar)
    fn = _resolve(measure)
    movable, perms = iter_permutations(len(X), n_permutations, random_state, groups)
    score = float(fn(X, Y))
    if measure == "gfre" or measure is gfre:
        null = _gfre_null(X, Y, perms)
    else:
        null = np.array([float(fn(X, Y[p])) for p in perms])
    return summarize_null(
        score, null, higher, "structure" if groups is not None else "atom", movable
    )


def _gfre_null(X: np.ndarray, Y: np.ndarray, perms: Iterator[np.ndarray]) -> np.ndarray:
    """``gfre(X, Y[p])`` for every permutation, the source factorised once per batch."""
    train, test = resolve_split(len(X))
    null: list[float] = []
    while batch := list(itertools.islice(perms, 16)):
        out = pointwise_gfre_targets(
            X, {i: Y[p] for i, p in enumerate(batch)}, train_idx=train, test_idx=test
        )
        null.extend(rms(out[i]) for i in range(len(batch)))
    return np.array(null)


def summarize_null(
    score: float, null, higher_is_similar: bool, unit: str, movable: float = 1.0
) -> PermutationResult:
    """A :class:`PermutationResult` from a score and its null values."""
    null = np.asarray(null, dtype=np.float64)
    return PermutationResult(
        score=float(score),
        null_mean=float(null.mean()),
        null_std=float(null.std(ddof=1)) if len(null) > 1 else float("nan"),
        p_value=permutation_p_value(score, null, higher_is_similar),
        n_permutations=len(null),
        higher_is_similar=higher_is_similar,
        unit=unit,
        movable=float(movable),
        null=null,
    )


# ---------------------------------------------------------------------------------------------
# structure bootstrap
# ---------------------------------------------------------------------------------------------


def structure_resamples(
    groups, n_bootstrap: int, rng: np.random.Generator, half: bool = False
) -> list[np.ndarray]:
    """Row indices of ``n_bootstrap`` resamples of the structures.

    Each resample draws as many structures as ``groups`` holds, with replacement, and takes all
    rows of each draw (a structure drawn twice gives its rows twice). With ``half=True`` it
    draws half of the structures (rounded up) without replacement instead.
    """
    if int(n_bootstrap) != n_bootstrap or n_bootstrap < 1:
        raise MetricInputError(f"n_bootstrap must be a positive integer, got {n_bootstrap}")
    blocks = group_rows(groups)
    out = []
    for _ in range(int(n_bootstrap)):
        if half:
            draw = np.sort(rng.choice(len(blocks), size=(len(blocks) + 1) // 2, replace=False))
        else:
            draw = rng.integers(0, len(blocks), size=len(blocks))
        out.append(np.concatenate([blocks[i] for i in draw]))
    return out


def bootstrap_draws(
    mode: str,
    groups,
    n_bootstrap: int,
    rng: np.random.Generator,
    pointwise: np.ndarray | None = None,
    fn: Callable[[np.ndarray, np.ndarray], float] | None = None,
    X: np.ndarray | None = None,
    Y: np.ndarray | None = None,
) -> np.ndarray:
    """The measure on each structure resample, by the measure's bootstrap ``mode``.

    ``"rms"`` / ``"mean"``: re-aggregate the ``pointwise`` values (one per row of ``groups``);
    ``"rows"``: ``fn(X[rows], Y[rows])`` with repeated structures repeated; ``"half"``:
    ``fn`` on half of the structures drawn without replacement
    (:attr:`mlipspace.metrics.registry.MeasureInfo.bootstrap`).
    """
    if mode in ("rms", "mean"):
        values = np.asarray(pointwise, dtype=np.float64)
        out = []
        for rows in structure_resamples(groups, n_bootstrap, rng):
            v = values[rows]
            out.append(np.sqrt(np.mean(v**2)) if mode == "rms" else np.mean(v))
        return np.array(out)
    if mode not in ("rows", "half"):
        raise MetricInputError(f"unknown bootstrap mode {mode!r}")
    draws = []
    for rows in structure_resamples(groups, n_bootstrap, rng, half=mode == "half"):
        try:
            draws.append(float(fn(X[rows], Y[rows])))
        except MetricInputError as exc:
            what = "half of the structures" if mode == "half" else "structures drawn again"
            raise MetricInputError(
                f"on a bootstrap resample ({what}: {len(rows)} of {len(X)} rows): {exc}"
            ) from exc
    return np.array(draws)


def percentile_interval(draws, confidence: float = 0.95) -> tuple[float, float]:
    """The equal-tailed percentile interval of bootstrap draws at level ``confidence``."""
    if not 0 < confidence < 1:
        raise MetricInputError(f"confidence must lie in (0, 1), got {confidence}")
    tail = 50.0 * (1.0 - confidence)
    low, high = np.percentile(np.asarray(draws, dtype=np.float64), [tail, 100.0 - tail])
    return float(low), float(high)


@dataclass(frozen=True)
class BootstrapResult:
    """A score with its structure-bootstrap spread and percentile interval.

    Attributes
    ----------
    score : float
        The measure on all rows.
    std : float
        Standard deviation (``ddof=1``) of the measure over the resamples.
    bias : float
        Mean of the resamples minus the score: the bootstrap's estimate of the measure's bias
        (for half-samples, the shift of the measure at half the structures).
    ci_low, ci_high : float
        Percentile interval at ``confidence`` of the resamples with ``bias`` removed (so the
        interval shows the spread around the score, not the resampling's own shift: biased
        CKA of nearly unrelated features, for one, rises on resamples with repeated rows).
    confidence : float
    n_bootstrap : int
    unit : str
        What was resampled (``"structure"``).
    draws : ndarray of shape (n_bootstrap,)
    """

    score: float
    std: float
    bias: float
    ci_low: float
    ci_high: float
    confidence: float
    n_bootstrap: int
    unit: str
    draws: np.ndarray = field(repr=False)


def summarize_draws(
    score: float, draws, confidence: float, unit: str = "structure"
) -> BootstrapResult:
    """A :class:`BootstrapResult` from a score and its bootstrap draws (see its attributes)."""
    draws = np.asarray(draws, dtype=np.float64)
    bias = float(draws.mean() - score)
    low, high = percentile_interval(draws - bias, confidence)
    return BootstrapResult(
        score=float(score),
        std=float(draws.std(ddof=1)) if len(draws) > 1 else float("nan"),
        bias=bias,
        ci_low=low,
        ci_high=high,
        confidence=float(confidence),
        n_bootstrap=len(draws),
        unit=unit,
        draws=draws,
    )


def structure_bootstrap(
    measure: str | Callable[[np.ndarray, np.ndarray], float],
    X,
    Y,
    groups,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    random_state: int | None = 0,
) -> BootstrapResult:
    """Percentile bootstrap interval of ``measure(X, Y)`` over structures drawn with replacement.

    Atoms of one structure are not independent (they share a composition, a cell and often
    symmetry-equivalent environments), so resampling atoms understates the spread; whole
    structures are resampled instead (the cluster bootstrap).

    Parameters
    ----------
    measure : str or callable
        A name of :data:`mlipspace.metrics.MEASURES` or any ``f(X, Y) -> float``. Similarity
        measures and callables are recomputed on each resample (repeated structures repeated;
        mutual kNN re-averages its per-atom overlaps, the neighbour graph fixed; CKNNA, where a
        repeated row would be its own nearest neighbour, is recomputed on half of the
        structures drawn without replacement, whose spread matches the full sample's for a
        smooth statistic). Reconstruction measures are fitted once on scikit-matter's default
        split (:func:`mlipspace.metrics.resolve_split`); the test atoms' errors are then
        resampled by test structure and re-aggregated (RMS): the interval is that of the test
        error of the fitted map, not of refitting. Give reconstruction measures by name: a
        callable is recomputed on each resample, which would put copies of a structure on
        both sides of the split. In every case the interval is the percentile interval of the
        resamples after removing their mean shift from the score (``bias``).
    X, Y : array of shape (n_samples, ·)
    groups : array of shape (n_samples,)
        Structure of every row.
    n_bootstrap : int, default=1000
    confidence : float, default=0.95
    random_state : int, optional

    Returns
    -------
    BootstrapResult
    """
    from . import similarity as sim
    from .gfr import pointwise_gfrd, pointwise_gfre
    from .reconstruction import pointwise_lfre
    from .registry import KNN_K

    X, Y = _check_xy(X, Y, groups)
    groups = np.asarray(groups)
    rng = np.random.default_rng(random_state)
    name = measure if isinstance(measure, str) else None
    mode = measure_info(name).bootstrap if name else "rows"
    if mode == "rms":
        train, test = resolve_split(len(X))
        pointwise = {"gfre": pointwise_gfre, "gfrd": pointwise_gfrd}.get(name)
        if pointwise is None:
            k = max(2, min(X.shape[1], Y.shape[1], len(train)))
            v = pointwise_lfre(X, Y, k, train_idx=train, test_idx=test)
        else:
            v = pointwise(X, Y, train_idx=train, test_idx=test)
        score = float(np.sqrt(np.mean(v**2)))
        draws = bootstrap_draws(mode, groups[test], n_bootstrap, rng, pointwise=v)
    elif mode == "mean":
        v = sim.pointwise_mutual_knn(X, Y, k=KNN_K)
        score = float(np.mean(v))
        draws = bootstrap_draws(mode, groups, n_bootstrap, rng, pointwise=v)
    else:
        fn = _resolve(measure)
        score = float(fn(X, Y))
        draws = bootstrap_draws(mode, groups, n_bootstrap, rng, fn=fn, X=X, Y=Y)
    return summarize_draws(score, draws, confidence)


# ---------------------------------------------------------------------------------------------
# width control
# ---------------------------------------------------------------------------------------------


def random_features(n_samples: int, width: int, random_state=0) -> np.ndarray:
    """The featureless source of the width control: i.i.d. standard Gaussian features.

    The width control scores a source of the same width and on the same rows (split, test
    atoms) as the real one, but holding no information about the atoms. Whatever it reaches is
    what width and sample count buy alone: biased CKA of independent features grows with
    ``width / n``, a ridge fit of a wide source overfits its training rows, kNN overlaps have a
    chance level ``k / n``. Isotropic features are the widest a source of that width can be
    (effective rank = width), so the baseline bounds the width effect from the generous side.
    ``random_state`` is anything :func:`numpy.random.default_rng` takes.
    """
    if int(n_samples) != n_samples or int(width) != width or n_samples < 1 or width < 1:
        raise MetricInputError(
            f"random features need positive integer sizes, got {n_samples} × {width}"
        )
    return np.random.default_rng(random_state).standard_normal((int(n_samples), int(width)))


def common_width(widths: Mapping[str, int] | Sequence[int], requested: int | None = None) -> int:
    """The PCA width of the width control: ``requested`` or the smallest width compared.

    ``widths`` maps model names to widths (or lists the widths). A ``requested`` width above
    the narrowest model's raises: that model would keep its own width, so the widths would
    not be common.
    """
    named = dict(widths) if isinstance(widths, Mapping) else dict(enumerate(widths))
    narrowest = min(named, key=named.get)
    smallest = int(named[narrowest])
    if requested is None:
        return smallest
    if int(requested) != requested or requested < 1:
        raise MetricInputError(f"common width must be a positive integer, got {requested}")
    if requested > smallest:
        who = f"{narrowest} " if isinstance(widths, Mapping) else "the narrowest model "
        raise MetricInputError(
            f"common width {requested} exceeds the width of {who}({smallest}): it would keep "
            f"its own width; choose at most {smallest}"
        )
    return int(requested)
