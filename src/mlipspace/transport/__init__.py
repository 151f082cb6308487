"""Optimal transport between models' atoms in the common (anchor) space.

The dendrogram of a W2 matrix is drawn by the report:
:func:`mlipspace.report.plots.plot_dendrogram`.
"""

from .ot import (
    METRICS,
    chance_accuracy,
    cost_matrix,
    gromov_wasserstein_match,
    gromov_wasserstein_plan,
    label_accuracy,
    match,
    matching_accuracy,
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
    "transport_plan",
    "w2_distance",
    "w2_matrix",
]
