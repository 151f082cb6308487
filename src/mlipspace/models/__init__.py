"""Model adapters (one module per family) and their registry."""

from .base import STANDARD_LAYERS, ModelAdapter, ModelSpec
from .registry import available_models, get_model, model_specs, register, resolve

__all__ = [
    "STANDARD_LAYERS",
    "ModelAdapter",
    "ModelSpec",
    "available_models",
    "get_model",
    "model_specs",
    "register",
    "resolve",
]
