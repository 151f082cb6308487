"""The measures of the all-pairs comparison: how each is computed, named and read.

One entry per measure name of :func:`mlipspace.compare`. Each fact about a measure lives here
once: the function and its fixed parameters, its direction (whether a higher value means more
similar), its precise name and preprocessing as printed in every table, and how a bootstrap
resamples it. :mod:`mlipspace.metrics.compare` computes with it and
:mod:`mlipspace.metrics.calibration` reads its direction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..errors import MetricInputError
from . import gfr
from . import reconstruction as rec
from . import ridge as rr
from . import similarity as sim

__all__ = [
    "ASYMMETRIC",
    "MEASURES",
    "MEASURE_INFO",
    "SYMMETRIC",
    "MeasureInfo",
    "describe_measure",
    "higher_is_similar",
    "measure_function",
    "measure_info",
    "measure_name",
]

# fixed parameters of the similarity measures as compare runs them (also named in the labels)
KNN_K = 10
CCA_DIM = 10
RBF_SIGMA = 1.0
RSA_MAX_SAMPLES = 2000

ASYMMETRIC = ("gfre", "gfrd", "lfre")
SYMMETRIC: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "cka": lambda a, b: sim.cka(a, b),
    "cka_unbiased": lambda a, b: sim.cka(a, b, unbiased=True),
    "cka_rbf": lambda a, b: sim.cka(a, b, kernel="rbf", sigma=RBF_SIGMA),
    "mknn": lambda a, b: sim.mutual_knn(a, b, k=KNN_K),
    "cknna": lambda a, b: sim.cknna(a, b, k=KNN_K),
    "svcca": lambda a, b: sim.svcca(a, b, cca_dim=CCA_DIM),
    "procrustes": lambda a, b: sim.procrustes_distance(a, b),
    "rsa": lambda a, b: sim.rsa(a, b, max_samples=RSA_MAX_SAMPLES),
}
MEASURES = (*ASYMMETRIC, *SYMMETRIC)

_ALPHAS = rr.DEFAULT_ALPHAS
_RECONSTRUCTION_PREP = (
    "each side centred and divided by the square root of its total variance on the training "
    "rows (StandardFlexibleScaler); ridge with relative singular-value cutoffs "
    f"geomspace({_ALPHAS[0]:g}, {_ALPHAS[-1]:g}, {len(_ALPHAS)}) chosen by 2-fold CV "
    f"(random_state {rr.SKMATTER_RANDOM_STATE:#x}) on the training rows; error on the test "
    "rows; no clipping"
)
_SIMILARITY_PREP = "rows L2-normalised (cosine kernels); no clipping; test atoms only"


@dataclass(frozen=True)
class MeasureInfo:
    """What the tables say about one measure.

    Attributes
    ----------
    name : str
        The key in :data:`MEASURES`.
    label : str
        Its precise name (estimator, kernel, neighbours, metric).
    preprocessing : str
        What is done to the features before it (scaling, clipping, fitting grid, rows used).
    higher_is_similar : bool
        True when a higher value means more similar representations (CKA, kNN overlaps);
        False for errors and distances (GFRE, GFRD, LFRE, Procrustes), where lower is better.
    bootstrap : {"rms", "mean", "rows", "half"}
        How a structure bootstrap resamples it (:mod:`mlipspace.metrics.calibration`):
        ``"rms"`` / ``"mean"``, the per-test-atom values of the fitted measure are resampled and
        re-aggregated by their root mean square / mean, as the measure itself aggregates them
        (the fit or neighbour graph is not redone); ``"rows"``, the measure is
        recomputed on the resampled rows, repeated structures repeated; ``"half"``, recomputed
        on half of the structures drawn without replacement, the deviations from their mean
        added to the score (a repeated row would be its own nearest neighbour; the spread of
        half-samples matches the full sample's for a smooth statistic).
    """

    name: str
    label: str
    preprocessing: str
    higher_is_similar: bool
    bootstrap: str


MEASURE_INFO: dict[str, MeasureInfo] = {
    info.name: info
    for info in (
        MeasureInfo(
            "gfre",
            "GFRE (global linear reconstruction error, ridge)",
            _RECONSTRUCTION_PREP,
            False,
            "rms",
        ),
        MeasureInfo(
            "gfrd",
            "GFRD (distortion of the global linear map from an orthogonal one)",
            _RECONSTRUCTION_PREP,
            False,
            "rms",
        ),
        MeasureInfo(
            "lfre",
            "LFRE (local linear reconstruction error on n_local_points training neighbours, "
            "Euclidean in the scaled source)",
            _RECONSTRUCTION_PREP,
            False,
            "rms",
        ),
        MeasureInfo("cka", "linear CKA (biased HSIC)", _SIMILARITY_PREP, True, "rows"),
        MeasureInfo(
            "cka_unbiased",
            "linear CKA (unbiased HSIC, Song et al. 2012)",
            _SIMILARITY_PREP,
            True,
            "rows",
        ),
        MeasureInfo(
            "cka_rbf",
            f"RBF CKA (biased HSIC, sigma={RBF_SIGMA:g})",
            _SIMILARITY_PREP,
            True,
            "rows",
        ),
        MeasureInfo("mknn", f"mutual kNN (k={KNN_K}, cosine)", _SIMILARITY_PREP, True, "mean"),
        MeasureInfo(
            "cknna",
            f"CKNNA (k={KNN_K}, cosine, unbiased HSIC)",
            _SIMILARITY_PREP,
            True,
            "half",
        ),
        MeasureInfo(
            "svcca",
            f"SVCCA (cca_dim={CCA_DIM}, z-scored columns, exact SVD)",
            _SIMILARITY_PREP,
            True,
            "rows",
        ),
        MeasureInfo(
            "procrustes",
            "orthogonal Procrustes distance (Ding et al. 2021; 0 = equal up to rotation)",
            _SIMILARITY_PREP,
            False,
            "rows",
        ),
        MeasureInfo(
            "rsa",
            f"RSA (Spearman of Euclidean distances, at most {RSA_MAX_SAMPLES} atoms)",
            _SIMILARITY_PREP,
            True,
            "rows",
        ),
    )
}


def measure_info(measure: str) -> MeasureInfo:
    """The :class:`MeasureInfo` of a measure name; unknown names raise ``MetricInputError``."""
    try:
        return MEASURE_INFO[measure]
    except KeyError:
        raise MetricInputError(
            f"unknown measure {measure!r}; choose from {list(MEASURES)}"
        ) from None


def higher_is_similar(measure: str) -> bool:
    """Whether a higher value of ``measure`` means more similar (False for errors/distances)."""
    return measure_info(measure).higher_is_similar


def measure_function(measure: str) -> Callable[[np.ndarray, np.ndarray], float]:
    """``f(X, Y) -> float`` of a measure name, with compare's fixed parameters.

    Similarity measures use all rows given; reconstruction measures use scikit-matter's default
    50/50 split of the rows (``gfre(X, Y)``) and, for LFRE, ``n_local_points = min(dim X, dim Y)``
    as compare does (capped by the training rows).
    """
    measure_info(measure)
    if measure in SYMMETRIC:
        return SYMMETRIC[measure]
    if measure == "gfre":
        return gfr.gfre
    if measure == "gfrd":
        return gfr.gfrd

    def lfre(X, Y):
        k = max(2, min(np.shape(X)[1], np.shape(Y)[1], len(X) // 2))
        return rec.lfre(X, Y, n_local_points=k)

    return lfre


_FUNCTION_NAMES = {
    gfr.gfre: "gfre",
    gfr.gfrd: "gfrd",
    rec.lfre: "lfre",
    sim.cka: "cka",
    sim.unbiased_cka: "cka_unbiased",
    sim.mutual_knn: "mknn",
    sim.cknna: "cknna",
    sim.svcca: "svcca",
    sim.procrustes_distance: "procrustes",
    sim.rsa: "rsa",
}


def measure_name(fn: Callable) -> str | None:
    """The measure name of one of mlipspace's own measure functions (``sim.cka`` → ``"cka"``).

    Used to read the direction of a function passed where a measure is expected; ``None`` for
    any other callable (``functools.partial`` objects are unwrapped).
    """
    while hasattr(fn, "func"):
        fn = fn.func
    return _FUNCTION_NAMES.get(fn)


def describe_measure(table, measure: str, rows: str = "atoms") -> str:
    """One line naming a measure of a comparison table and everything done before it.

    The header of every printed table of ``measure`` (terminal, report, ``summary.md``): its
    :attr:`MeasureInfo.label` and :attr:`MeasureInfo.preprocessing`, then the split and the
    calibration read from the table's columns (``n_train``, ``n_test``, ``seed``,
    ``common_dim``, ``n_local_points``, ``n_bootstrap`` and ``bootstrap_unit``,
    ``n_permutations``, ``common_width``) where present. ``rows`` says what the table's rows
    are (``"atoms"`` for :func:`mlipspace.compare`, ``"structures"`` for the cumulant tables).
    """
    info = measure_info(measure)
    cells = table[table["measure"] == measure] if "measure" in table else table

    def first(column):
        if column not in cells or cells[column].dropna().empty:
            return None
        return cells[column].dropna().iloc[0]

    parts = [f"{info.label}; {info.preprocessing}"]
    if first("n_test") is not None:
        parts.append(
            f"split: {first('n_train')} training / {first('n_test')} test {rows}, stratified "
            f"by subset, seed {first('seed')}"
        )
    if first("common_dim") is not None:
        parts.append(f"every model first projected on {int(first('common_dim'))} PCs")
    if first("n_local_points") is not None and measure == "lfre":
        parts.append("n_local_points per cell in the table (default min of the two widths)")
    if (first("n_bootstrap") or 0) > 0 and first("confidence") is not None:
        parts.append(
            f"{first('confidence'):.0%} interval from {int(first('n_bootstrap'))} resamples of "
            f"test {first('bootstrap_unit') or 'structure'}s"
        )
    if first("n_permutations") is not None:
        parts.append(
            f"null: {int(first('n_permutations'))} permutations of whole structures of equal size"
        )
    if first("common_width") is not None:
        parts.append(
            f"width control: source replaced by Gaussian features of its width; common PCA "
            f"width {int(first('common_width'))}"
        )
    return "; ".join(parts)
