"""Former name of :mod:`mlipspace.models.torch_base`, kept so older imports still work.

Everything is defined in :mod:`mlipspace.models.torch_base`; import from there.
"""

from .torch_base import *  # noqa: F403
from .torch_base import __all__  # noqa: F401
