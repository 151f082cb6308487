"""Featurization: per-atom features of structures from registered models.

The modules import in one direction::

    api ──> parent ──> envs ──> child ──> core ──> store, models
     │        └──────> protocol <──┘        ^
     └──────────────────────────────────────┘

* :mod:`.core`: the in-process featurizer (runs wherever the model runs);
* :mod:`.parent`: starts a worker in another family's environment and follows it;
* :mod:`.child`: the worker's entry point inside that environment;
* :mod:`.protocol`: what parent and child exchange;
* :mod:`.envs`: the per-family environments;
* :mod:`.api`: :func:`featurize` and :func:`featurize_models`, which choose between them.

The function :func:`mlipspace.featurize` is :func:`.api.featurize`; this package is
``mlipspace.featurization``, so neither name shadows the other.
"""

from .api import featurize, featurize_models
from .core import ProgressCallback, as_structures, features_table, featurize_with, load_model

__all__ = [
    "ProgressCallback",
    "as_structures",
    "features_table",
    "featurize",
    "featurize_models",
    "featurize_with",
    "load_model",
]
