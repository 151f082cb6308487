"""Structure-level features pooled from per-atom features."""

from .cumulants import (
    CumulantAccumulator,
    StructureFeatures,
    cumulants,
    cumulants_streaming,
    moments_to_cumulants,
    pool,
)

__all__ = [
    "CumulantAccumulator",
    "StructureFeatures",
    "cumulants",
    "cumulants_streaming",
    "moments_to_cumulants",
    "pool",
]
