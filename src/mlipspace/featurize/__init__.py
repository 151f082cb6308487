"""Featurization: per-atom features of structures from registered models.

:func:`featurize` runs models of the main environment in this process and the others
as workers inside their own environments (:mod:`mlipspace.featurize.worker`).
``mlipspace/__init__.py`` imports the function eagerly, so ``mlipspace.featurize`` is the
function, not this package, whatever submodules are imported later.
"""

from .api import (
    as_structures,
    features_table,
    featurize,
    featurize_models,
    featurize_with,
    load_model,
)

__all__ = [
    "as_structures",
    "features_table",
    "featurize",
    "featurize_models",
    "featurize_with",
    "load_model",
]
