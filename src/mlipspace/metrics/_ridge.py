"""Former name of :mod:`mlipspace.metrics.ridge`, kept so that older imports keep working."""

from .ridge import *  # noqa: F403
from .ridge import eigh_desc as _eigh_desc  # noqa: F401
