"""Optimal transport between models' atoms in the common (anchor) space.

The package is its one module, :mod:`mlipspace.transport.ot`: its ``__all__`` is the list of
public names, kept there only. The dendrogram of a W2 matrix is drawn by the report:
:func:`mlipspace.report.plots.plot_dendrogram`.
"""

from .ot import *  # noqa: F403
from .ot import __all__  # noqa: F401
