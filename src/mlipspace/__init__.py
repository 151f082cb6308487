"""mlipspace: compare and unify the latent spaces of universal ML interatomic potentials."""

from __future__ import annotations

from typing import Any

from . import errors
from .features import AtomFeatures, align

# ``mlipspace.featurize`` is the function; its package is ``mlipspace.featurization``.
from .featurization import featurize, featurize_models
from .structures import demo_structures, read_structures, structure_hash
from .version import __version__

__all__ = [
    "AtomFeatures",
    "FeatureStore",
    "__version__",
    "align",
    "available_models",
    "compare",
    "demo_structures",
    "errors",
    "featurize",
    "featurize_models",
    "read_structures",
    "structure_hash",
]


def __getattr__(name: str) -> Any:
    # Heavier parts are imported on first use so `import mlipspace` stays fast.
    if name == "FeatureStore":
        from .store import FeatureStore

        return FeatureStore
    if name == "available_models":
        from .models import available_models

        return available_models
    if name == "compare":
        from .metrics.compare import compare

        return compare
    raise AttributeError(f"module 'mlipspace' has no attribute {name!r}")
