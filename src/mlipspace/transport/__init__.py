"""Optimal transport between models' atoms in the common (anchor) space."""

from .ot import (
    METRICS,
    cost_matrix,
    gromov_wasserstein_match,
    match,
    matching_accuracy,
    plot_dendrogram,
    transport_plan,
    w2_distance,
    w2_matrix,
)

__all__ = [
    "METRICS",
    "cost_matrix",
    "gromov_wasserstein_match",
    "match",
    "matching_accuracy",
    "plot_dendrogram",
    "transport_plan",
    "w2_distance",
    "w2_matrix",
]
