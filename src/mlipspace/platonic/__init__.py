"""The Platonic representation (Li & Walsh 2025): a common anchor space for all models and its analyses."""

from .agreement import pair_agreement, retrieval_ranks, rowwise_cosine, transport_agreement
from .chemistry import (
    atypical_structures,
    bias_map,
    consensus,
    dispersion,
    element_group,
    embedding_arithmetic,
    fine_tune_report,
    stitching,
)
from .run import run_platonic
from .space import CommonSpace, build_common_space, common_space_from_store, with_controls

__all__ = [
    "CommonSpace",
    "atypical_structures",
    "bias_map",
    "build_common_space",
    "common_space_from_store",
    "consensus",
    "dispersion",
    "element_group",
    "embedding_arithmetic",
    "fine_tune_report",
    "pair_agreement",
    "retrieval_ranks",
    "rowwise_cosine",
    "run_platonic",
    "stitching",
    "transport_agreement",
    "with_controls",
]
