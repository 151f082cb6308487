"""Model adapters (one module per family) and their registry."""

from .base import MODEL_KINDS, STANDARD_LAYERS, SYMMETRIES, ModelAdapter, ModelCard, ModelSpec
from .registry import (
    available_models,
    calculator_models,
    find_card,
    fine_tune_pairs,
    get_model,
    model_card,
    model_specs,
    register,
    related_by_construction,
    resolve,
)

__all__ = [
    "MODEL_KINDS",
    "STANDARD_LAYERS",
    "SYMMETRIES",
    "ModelAdapter",
    "ModelCard",
    "ModelSpec",
    "available_models",
    "calculator_models",
    "find_card",
    "fine_tune_pairs",
    "get_model",
    "model_card",
    "model_specs",
    "register",
    "related_by_construction",
    "resolve",
]
