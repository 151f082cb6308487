"""Featurization: per-atom features of structures from registered models.

:func:`featurize` runs models of the main environment in this process and the others
as workers inside their own environments (:mod:`mlipspace.featurize.worker`).

``mlipspace.featurize`` names both this package and the function: once the package is
imported, Python binds the attribute ``mlipspace.featurize`` to the package, so the
package itself is made callable and forwards to :func:`featurize`.
"""

import sys
import types
from typing import Any

from .api import as_structures, features_table, featurize, featurize_with, load_model

__all__ = ["as_structures", "features_table", "featurize", "featurize_with", "load_model"]


class _CallablePackage(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return featurize(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
