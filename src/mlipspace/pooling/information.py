"""How much information each cumulant order adds, and cross-model comparison at structure level.

The protocol of Chorna et al. (2025, §4.2–4.3): structure features ``Φ(n)`` (concatenated
scaled cumulants of orders 1..n, :func:`~mlipspace.pooling.cumulants`) are compared with
GFRE and LFRE on a test set of structures stratified by subset. Since ``Φ(m)`` is a
subset of the columns of ``Φ(n)`` for ``m < n``, reconstructing a lower order from a higher
one is exact; the informative direction is ``Φ(m) → Φ(n)`` with ``m < n``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from ..errors import MetricInputError, random_state_or_seed
from ..features import OUTLIER_FACTOR, AtomFeatures, drop_outlier_structures
from ..metrics.gfr import gfre
from ..metrics.reconstruction import lfre
from ..metrics.split import stratified_split
from .cumulants import StructureFeatures, cumulants

STRUCTURE_MEASURES: dict[str, Callable[..., float]] = {"gfre": gfre, "lfre": lfre}
#: at most this fraction of the structures is held out for testing
MAX_TEST_FRACTION = 0.25


def structure_split(
    structures: pd.DataFrame, n_test: int = 1000, random_state: int = 0, seed: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Train/test rows of a structure table, test stratified by subset.

    ``n_test`` is capped at :data:`MAX_TEST_FRACTION` of the structures, so small sets
    keep enough training structures for the regressions. ``seed`` is the deprecated name of
    ``random_state``.
    """
    random_state = random_state_or_seed(random_state, seed, "structure_split")
    n = len(structures)
    n_test = max(1, min(int(n_test), int(MAX_TEST_FRACTION * n)))
    if n - n_test < 4:
        raise MetricInputError(f"{n} structures are too few for a structure-level train/test split")
    return stratified_split(
        structures["subset"].to_numpy(), n_test=n_test, random_state=random_state
    )


def _measure_rows(
    source: np.ndarray,
    target: np.ndarray,
    measures: Sequence[str],
    train: np.ndarray,
    test: np.ndarray,
    n_local_points: int,
) -> dict[str, float]:
    out = {}
    for measure in measures:
        if measure == "lfre":
            k = min(n_local_points, len(train) - 1)
            out[measure] = lfre(
                source, target, n_local_points=k, train_idx=train, test_idx=test, n_jobs=-1
            )
        else:
            out[measure] = STRUCTURE_MEASURES[measure](
                source, target, train_idx=train, test_idx=test
            )
    return out


def _check_measures(measures: Sequence[str]) -> list[str]:
    unknown = [m for m in measures if m not in STRUCTURE_MEASURES]
    if unknown:
        raise MetricInputError(
            f"unknown structure-level measures {unknown}; use {sorted(STRUCTURE_MEASURES)}"
        )
    return list(measures)


def cumulant_order_table(
    features: AtomFeatures | StructureFeatures,
    max_order: int = 8,
    measures: Sequence[str] = ("gfre", "lfre"),
    n_test: int = 1000,
    random_state: int = 0,
    n_local_points: int = 100,
    progress: Callable[[str], None] | None = None,
    outlier_factor: float | None = OUTLIER_FACTOR,
    seed: int | None = None,
) -> pd.DataFrame:
    """GFRE/LFRE of ``Φ(m) → Φ(n)`` for every pair of orders ``m != n`` of one model.

    Parameters
    ----------
    features : AtomFeatures or StructureFeatures
        Atom features (pooled here) or cumulant features of order ``>= max_order``.
    max_order : int, default=8
    measures : sequence of {"gfre", "lfre"}
    n_test : int, default=1000
        Test structures, stratified by subset, capped at a quarter of the structures.
    random_state : int, default=0
        Seed of the train/test split.
    n_local_points : int, default=100
        LFRE neighbourhood (capped by the training structures).
    outlier_factor : float or None, default=100
        Atom features: structures with an atom whose feature norm exceeds this multiple of
        the median are left out first (:func:`mlipspace.features.drop_outlier_structures`).
    seed : int, optional
        Deprecated name of ``random_state``.

    Returns
    -------
    DataFrame
        Tidy rows ``source, target, measure, value, source_order, target_order, n_train,
        n_test, seed, model, layer`` with ``source = "Φ(m)"``.
    """
    random_state = random_state_or_seed(random_state, seed, "cumulant_order_table")
    measures = _check_measures(measures)
    if isinstance(features, StructureFeatures):
        pooled = features
    else:
        features = drop_outlier_structures({0: features}, outlier_factor)[0][0]
        pooled = cumulants(features, max_order)
    if pooled.order < max_order:
        raise MetricInputError(f"cumulant table has order {pooled.order} < max_order {max_order}")
    train, test = structure_split(pooled.structures, n_test, random_state)
    rows = []
    for m in range(1, max_order + 1):
        for n in range(1, max_order + 1):
            if m == n:
                continue
            if progress:
                progress(f"Φ({m}) → Φ({n})")
            values = _measure_rows(
                pooled.phi(m), pooled.phi(n), measures, train, test, n_local_points
            )
            for measure, value in values.items():
                rows.append(
                    {
                        "source": f"Φ({m})",
                        "target": f"Φ({n})",
                        "measure": measure,
                        "value": value,
                        "source_order": m,
                        "target_order": n,
                        "n_train": len(train),
                        "n_test": len(test),
                        "seed": random_state,
                        "model": pooled.model,
                        "layer": pooled.layer,
                    }
                )
    return pd.DataFrame(rows)


def cumulant_model_table(
    tables: Mapping[str, AtomFeatures | StructureFeatures],
    order: int = 8,
    measures: Sequence[str] = ("gfre", "lfre"),
    n_test: int = 1000,
    random_state: int = 0,
    n_local_points: int = 100,
    progress: Callable[[str], None] | None = None,
    outlier_factor: float | None = OUTLIER_FACTOR,
    seed: int | None = None,
) -> pd.DataFrame:
    """GFRE/LFRE between models at structure level, on ``Φ(order)`` of each.

    Only the structures every model holds are used, matched by structure hash; feature
    outliers of any model are left out first (see :func:`cumulant_order_table`). Tables of
    cumulant features (order ``>= order``, e.g. from
    :func:`mlipspace.distributed.store_cumulants`) are used as they are. ``seed`` is the
    deprecated name of ``random_state``.
    """
    random_state = random_state_or_seed(random_state, seed, "cumulant_model_table")
    measures = _check_measures(measures)
    if len(tables) < 2:
        raise MetricInputError("cross-model comparison needs at least two models")
    if not all(isinstance(t, StructureFeatures) for t in tables.values()):
        tables, _ = drop_outlier_structures(tables, outlier_factor)
    pooled = {
        name: t if isinstance(t, StructureFeatures) else cumulants(t, order)
        for name, t in tables.items()
    }
    pooled = {name: _phi_table(p, order) for name, p in pooled.items()}
    common = set.intersection(*(set(p.structure_hash) for p in pooled.values()))
    if not common:
        raise MetricInputError("the models share no structure")
    first = next(iter(pooled.values()))
    keep = [h for h in first.structure_hash if h in common]
    phis = {}
    for name, p in pooled.items():
        rows = pd.Index(p.structure_hash).get_indexer(keep)
        phis[name] = p.X[rows]
    structures = first.structures.set_index("structure_hash").loc[keep].reset_index()
    train, test = structure_split(structures, n_test, random_state)
    rows = []
    for source, X in phis.items():
        for target, Y in phis.items():
            if source == target:
                continue
            if progress:
                progress(f"{source} → {target}")
            for measure, value in _measure_rows(
                X, Y, measures, train, test, n_local_points
            ).items():
                rows.append(
                    {
                        "source": source,
                        "target": target,
                        "measure": measure,
                        "value": value,
                        "order": order,
                        "n_train": len(train),
                        "n_test": len(test),
                        "seed": random_state,
                    }
                )
    return pd.DataFrame(rows)


def _phi_table(pooled: StructureFeatures, order: int) -> StructureFeatures:
    """``Φ(order)`` of a cumulant table of that order or higher."""
    if pooled.order == order:
        return pooled
    if pooled.order < order:
        raise MetricInputError(f"cumulant table has order {pooled.order} < order {order}")
    return StructureFeatures(
        X=pooled.phi(order),
        structure_hash=pooled.structure_hash,
        structures=pooled.structures,
        order=order,
        model=pooled.model,
        layer=pooled.layer,
        pooling=pooled.pooling,
        scaled=pooled.scaled,
        metadata=pooled.metadata,
    )
