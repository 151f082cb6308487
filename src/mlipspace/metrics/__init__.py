"""Measures comparing two feature spaces on the same atoms.

Reconstruction (asymmetric, scikit-matter definitions): :func:`gfre`, :func:`gfrd`,
:func:`lfre` and their pointwise and streamed variants. Similarity (symmetric, Platonic
Representation Hypothesis definitions): :func:`cka`, :func:`mutual_knn`, :func:`cknna`,
:func:`svcca`, :func:`procrustes_distance`, :func:`rsa`. The all-pairs runner is
:func:`compare_tables` / :func:`mlipspace.compare`. Calibration (:mod:`.calibration`): a
score against its permutation null (:func:`permutation_test`), a structure-bootstrap interval
(:func:`structure_bootstrap`) and a random-feature width control (:func:`random_features`);
each measure's name, preprocessing and direction live in :mod:`.registry`.
"""

from .calibration import (
    BootstrapResult,
    PermutationResult,
    permutation_test,
    random_features,
    structure_bootstrap,
)
from .compare import (
    MEASURES,
    compare,
    compare_tables,
    effective_rank,
    pca_projection,
)
from .gfr import gfrd, gfre, pointwise_gfrd, pointwise_gfre, pointwise_gfre_targets
from .reconstruction import lfre, pointwise_lfre
from .registry import MEASURE_INFO, higher_is_similar
from .similarity import (
    cka,
    cknna,
    clip_outliers,
    mutual_knn,
    pointwise_mutual_knn,
    procrustes_distance,
    rsa,
    svcca,
    unbiased_cka,
)
from .split import resolve_split, stratified_split
from .streamed import gfrd_streamed, gfre_streamed, reconstruction_stats

__all__ = [
    "MEASURES",
    "MEASURE_INFO",
    "BootstrapResult",
    "PermutationResult",
    "cka",
    "cknna",
    "clip_outliers",
    "compare",
    "compare_tables",
    "effective_rank",
    "gfrd",
    "gfrd_streamed",
    "gfre",
    "gfre_streamed",
    "higher_is_similar",
    "lfre",
    "mutual_knn",
    "pca_projection",
    "permutation_test",
    "pointwise_gfrd",
    "pointwise_gfre",
    "pointwise_gfre_targets",
    "pointwise_lfre",
    "pointwise_mutual_knn",
    "procrustes_distance",
    "random_features",
    "reconstruction_stats",
    "resolve_split",
    "rsa",
    "stratified_split",
    "structure_bootstrap",
    "svcca",
    "unbiased_cka",
]
