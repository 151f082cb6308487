"""The self-contained HTML report of a results folder: :func:`build_report`.

The parts: :mod:`.build` (the page and its order), :mod:`.sections` (one module per group of
sections), :mod:`.figures` (the one heatmap, the figure writer), :mod:`.plots` (PCA maps,
3D structures, the displacement series), :mod:`.chemiscope` and :mod:`.template` (HTML).
"""

from ..errors import ReportError
from .build import build_report
from .figures import heatmap_figure, static_heatmap, write_heatmaps
from .plots import structure_figure
from .sections.overview import package_versions

__all__ = [
    "ReportError",
    "build_report",
    "heatmap_figure",
    "package_versions",
    "static_heatmap",
    "structure_figure",
    "write_heatmaps",
]
