"""What every section of the report shares: the results folder, the figure writer, the seeds
found in the results, and the highlights the findings section opens with."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..results import WRITTEN_BY, ResultsFolder
from .figures import FigureWriter
from .template import Section


@dataclass
class Highlight:
    """The one figure of an analysis that the findings section shows, with a line of text.

    ``marks`` (a boolean matrix like a matrix ``figure``, see
    :func:`mlipspace.report.figures.null_marks`) marks the cells that do not beat their null.
    """

    key: str
    title: str
    figure: Any = None
    text: str = ""
    marks: Any = None


@dataclass
class ReportContext:
    """The state a report is built with.

    Attributes
    ----------
    results : ResultsFolder
    figures : FigureWriter
    n_structures_3d : int
        Atypical structures shown in 3D.
    seeds : dict of str to set of int
        Seeds found in the results, by stage (shown in the provenance section).
    highlights : dict of str to Highlight
        The main figure of each analysis, by section key, in the order they were found.
    """

    results: ResultsFolder
    figures: FigureWriter
    n_structures_3d: int = 3
    seeds: dict[str, set] = field(default_factory=dict)
    highlights: dict[str, Highlight] = field(default_factory=dict)

    def seed(self, what: str, values: Any) -> None:
        values = np.atleast_1d(np.asarray(values)).ravel()
        self.seeds.setdefault(what, set()).update(
            int(v) for v in values if pd.notna(v) and str(v) != ""
        )

    def highlight(
        self, key: str, title: str, figure: Any = None, text: str = "", marks: Any = None
    ) -> None:
        """Record the main result of section ``key`` (the first one recorded is kept)."""
        self.highlights.setdefault(key, Highlight(key, title, figure, text, marks))


def missing(sec: Section, name: str, part: str, what: str = "") -> Section:
    """Mark ``sec`` missing with a note naming the absent ``name`` and the command writing it.

    ``part`` is a key of :data:`mlipspace.results.WRITTEN_BY`; ``what`` says what is lost.
    """
    sec.missing = True
    lost = f" ({what})" if what else ""
    sec.note(f"{name} not found{lost}: run {WRITTEN_BY[part]} to write it.")
    return sec


def absent_note(sec: Section, name: str, part: str, what: str = "") -> None:
    """Like :func:`missing`, for a part of a section that still shows the rest."""
    lost = f" ({what})" if what else ""
    sec.note(f"{name} not found{lost}: run {WRITTEN_BY[part]} to write it.")
