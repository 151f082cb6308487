"""The report's reading of a calibrated comparison (issue 17): cells that do not beat their
permutation null are marked "ns" in the pairs section and in the findings, and the bootstrap
interval, the movable fraction and the width control are shown beside each cell."""

from __future__ import annotations

import numpy as np
import pytest

import mlipspace
from conftest import local_descriptor
from mlipspace.results import ResultsFolder
from test_report import plotly_figures


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    """A results folder whose compare table has a permutation null, a structure bootstrap and
    the width control; ``noise`` is a model that beats its null nowhere."""
    from mlipspace.metrics.compare import compare

    structures = list(mlipspace.demo_structures("small"))[:40]
    desc = [local_descriptor(a) for a in structures]
    rng = np.random.default_rng(1)
    W = rng.normal(size=(desc[0].shape[1], 12))
    folder = ResultsFolder(tmp_path_factory.mktemp("calibrated") / "res")
    store = mlipspace.FeatureStore(folder.store_path)
    store.write("model-a", "ll", structures, [np.tanh(d @ W) for d in desc])
    store.write("model-c", "ll", structures, [np.tanh(0.5 * d @ W[:, :8]) for d in desc])
    store.write("noise", "ll", structures, [rng.normal(size=(len(a), 6)) for a in structures])
    names = ["model-a", "model-c", "noise"]
    df = compare(
        store,
        names,
        measures=("gfre", "cka"),
        n_test=100,
        n_permutations=19,
        n_bootstrap=10,
        width_control=True,
    )
    folder.compare.write(df, folder.compare.stem("ll"))
    return folder, df, names


def test_compare_section_marks_cells_that_do_not_beat_their_null(calibrated, tmp_path):
    from mlipspace.report.context import ReportContext
    from mlipspace.report.figures import FigureWriter, heatmap_figure, null_marks, pair_matrix
    from mlipspace.report.sections.pairs import compare as compare_section

    folder, df, names = calibrated
    sub = df[df.measure == "gfre"]
    marks = null_marks(sub, names)
    p = sub.set_index(["source", "target"])["p_value"]
    assert marks.loc["noise", "model-a"] == (p[("noise", "model-a")] > 0.05)
    assert not marks.loc["model-a", "model-c"] and p[("model-a", "model-c")] <= 0.05
    assert marks.to_numpy().any()  # the noise model does not beat its null somewhere
    (trace,) = heatmap_figure(pair_matrix(sub, names), "gfre", marks=marks).data
    for i, row in enumerate(names):
        for j, col in enumerate(names):
            assert trace.text[i][j].endswith(" ns") == bool(marks.loc[row, col])
    html = compare_section(ReportContext(folder, FigureWriter(tmp_path / "figs"))).html()
    assert "does not beat its permutation null" in html
    assert "linear CKA (biased HSIC); rows L2-normalised" in html  # each measure named
    assert "19 permutations of whole structures" in html
    # the bootstrap and the width control are reported beside each cell, and in the header
    assert "95% interval from 10 resamples of test structures" in html
    assert "width control: source replaced by Gaussian features of its width" in html
    from mlipspace.metrics.compare_calibration import below_random_baseline

    below = below_random_baseline(df)
    assert (
        below and f"No better than a random source of the same width: {'; '.join(below)}." in html
    )
    headers = ("CI low", "CI high", "null mean", "movable atoms", "random-source baseline")
    for header in (*headers, "at common width"):
        assert f"<th>{header}</th>" in html, header
    assert "each cell against its null and controls (18 cells)" in html


def test_findings_heatmap_marks_cells_that_do_not_beat_their_null(calibrated, tmp_path):
    from mlipspace.report.context import ReportContext
    from mlipspace.report.figures import FigureWriter, null_marks
    from mlipspace.report.sections.findings import findings
    from mlipspace.report.sections.pairs import compare as compare_section

    folder, df, names = calibrated
    ctx = ReportContext(folder, FigureWriter(tmp_path / "figs"))
    compare_section(ctx)  # records the GFRE map the findings open with
    html = findings(ctx).html()
    (trace,) = plotly_figures(html)["fig-findings-compare"]
    marks = null_marks(df[df.measure == "gfre"], names)
    assert trace["y"] == names and trace["x"] == names
    for i, row in enumerate(names):
        for j, col in enumerate(names):
            assert trace["text"][i][j].endswith(" ns") == bool(marks.loc[row, col]), (row, col)
    n = int(marks.to_numpy().sum())
    assert n > 0 and f"<b>ns</b> ({n} cells): does not beat its permutation null" in html
