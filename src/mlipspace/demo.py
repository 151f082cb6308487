"""The main job on the embedded demo data: the bundled study ``examples/demo.toml``.

:func:`run_demo` runs that study (see :mod:`mlipspace.study`), optionally on the small
demo set or on fewer models, and writes under ``out``: ``structures.extxyz``,
``store.zarr`` (``ll``, ``node`` and ``bb`` features of every demo model), ``compare/``
(all-pairs GFRE, LFRE, CKA, mutual kNN), ``cumulants/`` (order tables and the cross-model
table), ``diagnostics/`` (the physical-failure diagnostics), ``platonic/`` (the common anchor
space and its analyses), ``summary.md`` and ``report.html`` (the layout:
:mod:`mlipspace.results`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from .study import demo_study_text, parse_study, run_study


def demo_study(
    out: str | Path = "demo-results", size: str = "default", models: Sequence[str] | None = None
):
    """The bundled demo study, with its output folder, set size and models overridden."""
    study = parse_study(demo_study_text())
    study.config["study"]["out"] = str(out)
    study.config["structures"]["sources"] = [f"demo:{size}"]
    if models:
        study.config["featurize"]["models"] = list(models)
        study.config["cumulants"]["models"] = [
            m for m in study.config["cumulants"]["models"] if m in models
        ]
    if size != "default":  # the small set has ~1,900 atoms: fewer anchors and test atoms
        study.config["platonic"]["anchors"] = 64
        study.config["platonic"]["atoms"] = 1000
        study.config["compare"]["n_test"] = 400
    return study


def run_demo(
    out: str | Path = "demo-results",
    size: str = "default",
    models: Sequence[str] | None = None,
    force: Iterable[str] = (),
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Run the demo study and return the output folder."""
    return run_study(demo_study(out, size, models), force=force, progress=progress)
