"""Featurization: per-atom features of structures from registered models.

:func:`featurize` runs models of the main environment in this process and the others
as workers inside their own environments (:mod:`mlipspace.featurize.worker`).
"""

from .api import as_structures, featurize, featurize_with, features_table, load_model

__all__ = ["as_structures", "featurize", "features_table", "featurize_with", "load_model"]
