"""The self-contained HTML report of a results folder (issue 7): :func:`build_report`."""

from .html import ReportError, build_report, package_versions, pca_2d, structure_figure

__all__ = ["ReportError", "build_report", "package_versions", "pca_2d", "structure_figure"]
