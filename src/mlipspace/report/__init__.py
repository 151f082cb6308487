"""The self-contained HTML report of a results folder: :func:`build_report`.

The parts: :mod:`.build` (the page and its order), :mod:`.sections` (one module per group of
sections), :mod:`.figures` (the one heatmap, the figure writer), :mod:`.plots` (PCA maps,
the W2 dendrogram, 3D structures, the displacement series, and the Platonic figures beside
their tables), :mod:`.chemiscope` and :mod:`.template` (HTML). Analyses write data only; every
figure of mlipspace is drawn here.
"""

from ..errors import ReportError
from .build import build_report
from .figures import Heatmap, heatmap_figure, write_heatmaps
from .plots import plot_dendrogram, structure_figure, write_platonic_figures
from .sections.overview import package_versions

__all__ = [
    "Heatmap",
    "ReportError",
    "build_report",
    "heatmap_figure",
    "package_versions",
    "plot_dendrogram",
    "structure_figure",
    "write_heatmaps",
    "write_platonic_figures",
]
