"""All-pairs comparison of the per-atom features of several models.

:func:`compare_tables` works on aligned :class:`~mlipspace.AtomFeatures`; :func:`compare` reads
them from a :class:`~mlipspace.FeatureStore`. The result is a tidy table with one row per
``(source, target, measure)``: reconstruction measures are asymmetric (``source`` reconstructs
``target``; row = source, column = target in the heatmaps), similarity measures are symmetric
and computed once per unordered pair. Reconstruction measures fit on the training atoms and
report on the test atoms; similarity measures are computed on the test atoms.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd

from ..errors import MetricInputError, random_state_or_seed
from ..features import OUTLIER_FACTOR, AtomFeatures, align, drop_outlier_structures
from .calibration import common_width as common_width_of
from .compare_calibration import ComparisonCalibration
from .gfr import pointwise_gfrd, pointwise_gfre, pointwise_gfre_targets
from .reconstruction import pointwise_lfre
from .registry import MEASURES, SYMMETRIC
from .split import stratified_split
from .validation import rms

__all__ = [
    "MEASURES",
    "compare",
    "compare_tables",
    "effective_rank",
    "pca_projection",
]

log = logging.getLogger(__name__)

#: The default ``engine`` of :func:`compare_tables`: GFRE, GFRD and LFRE in this process
#: (:class:`mlipspace.distributed.DaskEngine` has the same four functions on a cluster).
IN_MEMORY = SimpleNamespace(
    pointwise_gfre=pointwise_gfre,
    pointwise_gfrd=pointwise_gfrd,
    pointwise_gfre_targets=pointwise_gfre_targets,
    pointwise_lfre=pointwise_lfre,
)

COLUMNS = [
    "source",
    "target",
    "measure",
    "value",
    "uncertainty",
    "n_train",
    "n_test",
    "seed",
    "dim_source",
    "dim_target",
    "effective_rank_source",
    "effective_rank_target",
    "layer",
    "common_dim",
    "n_local_points",
    "n_bootstrap",
]


def effective_rank(X: np.ndarray) -> float:
    """``exp`` of the Shannon entropy of the normalised PCA eigenvalues (Roy & Vetterli 2007).

    Equals the dimension for isotropic features, 1 for features on a line, and lies between
    for anything else. Computed on the centred rows given.
    """
    X = np.asarray(X, dtype=np.float64)
    s = np.linalg.svd(X - X.mean(axis=0), compute_uv=False) ** 2
    total = s.sum()
    if total <= 0:
        return 0.0
    p = s[s > 0] / total
    return float(np.exp(-np.sum(p * np.log(p))))


def pca_projection(X: np.ndarray, train_idx: np.ndarray, n_components: int) -> np.ndarray:
    """Project all rows on the top ``n_components`` principal axes of the training rows."""
    X = np.asarray(X, dtype=np.float64)
    if n_components >= X.shape[1]:
        return X
    mean = X[train_idx].mean(axis=0)
    Vt = np.linalg.svd(X[train_idx] - mean, full_matrices=False)[2]
    return (X - mean) @ Vt[:n_components].T


def _lfre_k(n_local_points: int | None, A: np.ndarray, B: np.ndarray, n_train: int) -> int:
    k = n_local_points or min(A.shape[1], B.shape[1])
    return max(2, min(k, n_train))


def _evaluator(engine, train, test, n_local_points, n_jobs):
    """``evaluate(measure, A, B) -> (value, pointwise or None)``: one cell as compare computes it.

    Reconstruction measures fit on the training rows and return their per-test-atom errors;
    similarity measures are computed on the test rows (no pointwise values).
    """

    def evaluate(measure: str, A: np.ndarray, B: np.ndarray):
        if measure in ("gfre", "gfrd"):
            fn = engine.pointwise_gfre if measure == "gfre" else engine.pointwise_gfrd
            v = fn(A, B, train_idx=train, test_idx=test)
            return rms(v), v
        if measure == "lfre":
            k = _lfre_k(n_local_points, A, B, len(train))
            v = engine.pointwise_lfre(A, B, k, train_idx=train, test_idx=test, n_jobs=n_jobs)
            return rms(v), v
        return float(SYMMETRIC[measure](A[test], B[test])), None

    def evaluate_null(measure: str, A: np.ndarray, B: np.ndarray, perms) -> list[float]:
        """The measure with the rows of ``B`` permuted by each of ``perms``."""
        if measure == "gfre" and hasattr(engine, "pointwise_gfre_targets"):
            # one factorisation of the source serves every permuted target
            out = engine.pointwise_gfre_targets(
                A, {i: B[p] for i, p in enumerate(perms)}, train_idx=train, test_idx=test
            )
            return [rms(out[i]) for i in range(len(perms))]
        if measure in SYMMETRIC:  # only the test rows are needed: copy only those
            return [float(SYMMETRIC[measure](A[test], B[p[test]])) for p in perms]
        return [evaluate(measure, A, B[p])[0] for p in perms]

    return evaluate, evaluate_null


def compare_tables(
    tables: Mapping[str, AtomFeatures],
    measures: Sequence[str] = ("gfre", "lfre", "cka", "mknn"),
    n_test: int = 1000,
    random_state: int = 0,
    common_dim: int | None = None,
    n_bootstrap: int = 0,
    n_local_points: int | None = None,
    n_jobs: int | None = -1,
    progress: Callable[[str], None] | None = None,
    outlier_factor: float | None = OUTLIER_FACTOR,
    engine: Any = None,
    n_permutations: int = 0,
    confidence: float = 0.95,
    width_control: bool = False,
    common_width: int | None = None,
    seed: int | None = None,
) -> pd.DataFrame:
    """Asymmetric all-pairs comparison of feature tables.

    Parameters
    ----------
    tables : mapping of name to AtomFeatures
        One table per model; restricted to the atoms all hold (:func:`mlipspace.align`).
    measures : sequence of str
        Any of :data:`MEASURES`.
    n_test : int, default=1000
        Test atoms, stratified by subset (:func:`~mlipspace.metrics.stratified_split`); capped
        at half the atoms.
    random_state : int, default=0
        Seed of the split, of the permutations, of the bootstrap and of the random sources.
    common_dim : int, optional
        Project every model on its first ``common_dim`` principal components (fitted on the
        training atoms) first: a control for the effect of dimension.
    n_bootstrap : int, default=0
        Resamples of the test *structures* (drawn with replacement; atoms of one structure are
        not independent) for the ``uncertainty`` column (their standard deviation) and the
        ``ci_low``/``ci_high`` percentile interval at ``confidence`` (NaN / absent when 0).
        GFRE, GFRD and LFRE resample their per-test-atom errors (the fits are not redone),
        mutual kNN its per-atom overlaps; the other measures are recomputed on the resampled
        rows (:attr:`mlipspace.metrics.registry.MeasureInfo.bootstrap`).
    n_local_points : int, optional
        LFRE neighbourhood; default ``min(dim_source, dim_target)`` (capped by the training rows).
    n_jobs : int, optional
        Threads for LFRE (``-1``: all cores).
    progress : callable, optional
        Called with a short description before each pair.
    outlier_factor : float or None, default=100
        Structures where any model has an atom whose feature norm exceeds this multiple of
        that model's median are left out (:func:`mlipspace.features.drop_outlier_structures`),
        with a warning naming them; ``None`` keeps everything.
    engine : object, optional
        Where GFRE, GFRD and LFRE run: anything with ``pointwise_gfre``, ``pointwise_gfrd``
        and ``pointwise_lfre`` of the signatures of :mod:`mlipspace.metrics.gfr` and
        :mod:`mlipspace.metrics.reconstruction` (default :data:`IN_MEMORY`), e.g.
        :class:`mlipspace.distributed.DaskEngine` for a Dask cluster.
    n_permutations : int, default=0
        Permutation null of every cell (:func:`mlipspace.metrics.permutation_test`): the
        target's structures are permuted among structures of the same atom count, the measure
        recomputed (refitted for GFRE/GFRD/LFRE) ``n_permutations`` times; adds ``null_mean``,
        ``null_std``, ``p_value``, ``n_permutations``, ``null_unit``, ``null_movable``.
    confidence : float, default=0.95
        Level of the bootstrap interval.
    width_control : bool, default=False
        Add ``random_baseline`` (the source replaced by Gaussian features of its width, same
        rows: :func:`mlipspace.metrics.calibration.random_features`) and
        ``value_common_width`` (every model on ``common_width`` principal components).
    common_width : int, optional
        Width of the width control's PCA (default: the smallest width compared); giving it
        turns the width control on.
    seed : int, optional
        Deprecated name of ``random_state``.

    Returns
    -------
    DataFrame
        Columns :data:`COLUMNS`, ``measure_label`` and ``preprocessing`` (the measure's precise
        name and what was done to the features, :mod:`mlipspace.metrics.registry`), then the
        calibration columns asked for; ``attrs["excluded_structures"]`` lists the outliers
        left out.
    """
    random_state = random_state_or_seed(random_state, seed, "compare_tables")
    unknown = [m for m in measures if m not in MEASURES]
    if unknown:
        raise MetricInputError(f"unknown measures {unknown}; choose from {list(MEASURES)}")
    if len(tables) < 1:
        raise MetricInputError("no feature tables to compare")
    tables, excluded = drop_outlier_structures(align(dict(tables)), outlier_factor)
    if len(excluded):
        log.warning(
            "left out %d feature-outlier structure(s) (an atom above %g × its model's median "
            "feature norm): %s",
            excluded["structure_hash"].nunique(),
            outlier_factor,
            "; ".join(
                f"{r.source or r.structure_hash} ({r.model}, {r.ratio:.3g}×)"
                for r in excluded.head(10).itertuples()
            ),
        )
    names = list(tables)
    first = tables[names[0]]
    n = len(first)
    if n < 4:
        raise MetricInputError(f"the models share only {n} atoms; need at least 4")
    n_test_eff = min(int(n_test), n // 2)
    if n_test_eff < n_test:
        log.warning(
            "only %d shared atoms: using %d test atoms instead of %d", n, n_test_eff, n_test
        )
    train, test = stratified_split(first.subset, n_test=n_test_eff, random_state=random_state)
    feats: dict[str, np.ndarray] = {}
    for name in names:
        X = np.asarray(tables[name].X, dtype=np.float64)
        feats[name] = pca_projection(X, train, common_dim) if common_dim else X
    dims = {k: v.shape[1] for k, v in feats.items()}
    eff = {k: effective_rank(v[train]) for k, v in feats.items()}
    layer = first.layer
    engine = IN_MEMORY if engine is None else engine
    evaluate, evaluate_null = _evaluator(engine, train, test, n_local_points, n_jobs)
    width = None
    if width_control or common_width is not None:
        width = common_width_of(dims, common_width)
    calibration = ComparisonCalibration(
        feats,
        train,
        test,
        groups=first.structure_hash,
        n_permutations=n_permutations,
        n_bootstrap=n_bootstrap,
        confidence=confidence,
        width=width,
        common_feats=(
            {k: pca_projection(v, train, width) for k, v in feats.items()} if width else None
        ),
        random_state=random_state,
    )
    rows: list[dict[str, Any]] = []

    def add(src, tgt, measure, value, unc, k, extra):
        rows.append(
            dict(
                source=src,
                target=tgt,
                measure=measure,
                value=float(value),
                uncertainty=unc,
                n_train=len(train),
                n_test=len(test),
                seed=random_state,
                dim_source=dims[src],
                dim_target=dims[tgt],
                effective_rank_source=eff[src],
                effective_rank_target=eff[tgt],
                layer=layer,
                common_dim=common_dim,
                n_local_points=k,
                n_bootstrap=n_bootstrap,
                **extra,
            )
        )

    for src in names:
        shared = {}
        if "gfre" in measures and hasattr(engine, "pointwise_gfre_targets"):
            # one factorisation of the source serves every target
            shared = engine.pointwise_gfre_targets(
                feats[src], feats, train_idx=train, test_idx=test
            )
        for tgt in names:
            if progress:
                progress(f"{src} → {tgt}")
            A, B = feats[src], feats[tgt]
            for measure in measures:
                k = None
                if measure in SYMMETRIC and names.index(tgt) < names.index(src):
                    continue  # computed once per unordered pair, with (tgt, src)
                if measure == "lfre":
                    if src == tgt:
                        # a model reconstructs itself: the local fits cost the most there
                        # (k = its full width) and say nothing; the diagonal is left empty
                        continue
                    k = _lfre_k(n_local_points, A, B, len(train))
                try:
                    if measure == "gfre" and tgt in shared:
                        v = shared[tgt]
                        value = rms(v)
                    else:
                        value, v = evaluate(measure, A, B)
                    extra, unc = calibration.cell(
                        measure, evaluate, src, tgt, value, v, evaluate_null
                    )
                    mirrored = None
                    if measure in SYMMETRIC and tgt != src:
                        # the value, null, interval and value at common width are those of
                        # the pair; the random baseline replaces the row model, so it is
                        # drawn for each direction
                        mirrored = calibration.width_columns(
                            measure, evaluate, tgt, src, baseline_only=True
                        )
                except MetricInputError as exc:
                    # name the cell: the measure's own message only knows its rows
                    raise MetricInputError(
                        f"{measure} of {src} → {tgt} ({len(train)} training / {len(test)} "
                        f"test atoms): {exc}"
                    ) from exc
                add(src, tgt, measure, value, unc, k, extra)
                if mirrored is not None:
                    add(tgt, src, measure, value, unc, k, {**extra, **mirrored})
    df = pd.DataFrame(rows, columns=[*COLUMNS, *calibration.columns()])
    order = {m: i for i, m in enumerate(measures)}
    df = df.sort_values(
        ["measure", "source", "target"], key=lambda c: c.map(order) if c.name == "measure" else c
    ).reset_index(drop=True)
    df.attrs["excluded_structures"] = excluded.to_dict(orient="records")
    return df


def compare(
    store,
    models: Sequence[str],
    layer: str = "ll",
    measures: Sequence[str] = ("gfre", "lfre", "cka", "mknn"),
    n_test: int = 1000,
    random_state: int = 0,
    common_dim: int | None = None,
    n_bootstrap: int = 0,
    structures: Any = None,
    seed: int | None = None,
    **kwargs: Any,
) -> pd.DataFrame:
    """All-pairs comparison of ``models`` (one ``layer``) read from a feature store.

    ``store`` is a :class:`mlipspace.FeatureStore` or a path to one. Works on the atoms every
    model holds (``store.aligned``), restricted to ``structures`` (hashes or ``Atoms``) when
    given. Other keyword arguments go to :func:`compare_tables`; ``seed`` is the deprecated
    name of ``random_state``.
    """
    from ..store import open_store

    random_state = random_state_or_seed(random_state, seed, "compare")
    store = open_store(store)
    models = list(models)
    if not models:
        raise MetricInputError("no models given")
    tables = store.aligned([(m, layer) for m in models], structures)
    by_name = {key[0] if isinstance(key, tuple) else key: t for key, t in tables.items()}
    return compare_tables(
        by_name,
        measures=measures,
        n_test=n_test,
        random_state=random_state,
        common_dim=common_dim,
        n_bootstrap=n_bootstrap,
        **kwargs,
    )
