"""Model adapters (one module per family) and their registry."""

from .base import MODEL_KINDS, STANDARD_LAYERS, SYMMETRIES, ModelAdapter, ModelCard, ModelSpec
from .registry import (
    available_models,
    get_model,
    model_card,
    model_specs,
    register,
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
    "get_model",
    "model_card",
    "model_specs",
    "register",
    "resolve",
]
