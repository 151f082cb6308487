"""Model adapters (one module per family), their cards and their registry.

A model family registers :class:`ModelSpec` objects, each carrying the model's
:class:`ModelCard`; torch families subclass :class:`TorchAdapter`. See "Adding a model
family" in docs/architecture.md.
"""

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
    unregister,
)
from .torch_base import Capture, ForwardResult, TorchAdapter

__all__ = [
    "MODEL_KINDS",
    "STANDARD_LAYERS",
    "SYMMETRIES",
    "Capture",
    "ForwardResult",
    "ModelAdapter",
    "ModelCard",
    "ModelSpec",
    "TorchAdapter",
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
    "unregister",
]
