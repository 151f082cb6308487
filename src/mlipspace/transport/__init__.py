"""Optimal transport between models' atoms in the common (anchor) space."""

from .ot import (
    METRICS,
    chance_accuracy,
    cost_matrix,
    gromov_wasserstein_match,
    gromov_wasserstein_plan,
    label_accuracy,
    match,
    matching_accuracy,
    plot_dendrogram,
    transport_plan,
    w2_distance,
    w2_matrix,
)

__all__ = [
    "METRICS",
    "chance_accuracy",
    "cost_matrix",
    "gromov_wasserstein_match",
    "gromov_wasserstein_plan",
    "label_accuracy",
    "match",
    "matching_accuracy",
    "plot_dendrogram",
    "transport_plan",
    "w2_distance",
    "w2_matrix",
]
