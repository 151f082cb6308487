"""Featurization: per-atom features of structures from registered models.

The modules import in one direction (``tests/test_architecture.py`` checks it):

* :mod:`.core`: the in-process featurizer; runs wherever the model runs and knows nothing
  of processes or environments (imports the store and the models);
* :mod:`.protocol`: what parent and child exchange (structures on disk, progress lines);
* :mod:`.child`: the worker's entry point inside a family's environment (imports
  ``protocol`` and ``core`` only);
* :mod:`.envs`: the per-family environments (imports ``child`` only to check that an
  environment can run it);
* :mod:`.parent`: starts a child in another family's environment and follows it (imports
  ``envs``, ``protocol``, ``core``);
* :mod:`.api`: :func:`featurize` and :func:`featurize_models`, which choose between
  ``core`` and ``parent``.

Progress is a callback ``progress(done, total)``; the library draws no bar (the command
line passes its own in).

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
