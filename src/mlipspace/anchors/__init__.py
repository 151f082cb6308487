"""Anchor sites and the relative (anchor) projection into a space shared by all models."""

from .projection import CENTERS, RelativeProjector, center_mode, standardize_columns, unit_rows
from .selection import (
    METHODS,
    direct_pca_features,
    direct_sample,
    farthest_point_sample,
    select_anchors,
)

__all__ = [
    "CENTERS",
    "METHODS",
    "RelativeProjector",
    "center_mode",
    "direct_pca_features",
    "direct_sample",
    "farthest_point_sample",
    "select_anchors",
    "standardize_columns",
    "unit_rows",
]
