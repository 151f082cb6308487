"""Measures comparing two feature spaces on the same atoms.

Reconstruction (asymmetric, scikit-matter definitions): :func:`gfre`, :func:`gfrd`,
:func:`lfre` and their pointwise and streamed variants. Similarity (symmetric, Platonic
Representation Hypothesis definitions): :func:`cka`, :func:`mutual_knn`, :func:`cknna`,
:func:`svcca`, :func:`procrustes_distance`, :func:`rsa`. The all-pairs runner is
:func:`compare_tables` / :func:`mlipspace.compare`.
"""

from .compare import (
    MEASURES,
    compare,
    compare_tables,
    effective_rank,
    pca_projection,
    write_comparison,
)
from .reconstruction import (
    gfrd,
    gfrd_streamed,
    gfre,
    gfre_streamed,
    lfre,
    pointwise_gfrd,
    pointwise_gfre,
    pointwise_gfre_targets,
    pointwise_lfre,
    reconstruction_stats,
    resolve_split,
)
from .similarity import (
    cka,
    cknna,
    clip_outliers,
    mutual_knn,
    procrustes_distance,
    rsa,
    svcca,
    unbiased_cka,
)
from .split import stratified_split

__all__ = [
    "MEASURES",
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
    "lfre",
    "mutual_knn",
    "pca_projection",
    "pointwise_gfrd",
    "pointwise_gfre",
    "pointwise_gfre_targets",
    "pointwise_lfre",
    "procrustes_distance",
    "reconstruction_stats",
    "resolve_split",
    "rsa",
    "stratified_split",
    "svcca",
    "unbiased_cka",
    "write_comparison",
]
