"""Anchor sites and the relative (anchor) projection into a space shared by all models."""

from .projection import RelativeProjector, unit_rows
from .selection import (
    METHODS,
    direct_pca_features,
    direct_sample,
    farthest_point_sample,
    select_anchors,
)

__all__ = [
    "METHODS",
    "RelativeProjector",
    "direct_pca_features",
    "direct_sample",
    "farthest_point_sample",
    "select_anchors",
    "unit_rows",
]
