"""The HTML report on a results folder made by the real pipeline stages on synthetic models.

A local descriptor stands in for the models (as in ``test_platonic``): ``model-b`` is
``model-a`` rotated and scaled, so their anchored spaces must coincide, and ``model-c`` is
another random map of the same descriptor. The real demo folder is reported by ``make demo``.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from ase.io import write as ase_write

import mlipspace
from conftest import local_descriptor, two_families
from mlipspace.report import ReportError, build_report
from mlipspace.results import ResultsFolder

MODELS = ["model-a", "model-b", "model-c"]
SECTION_IDS = (
    "findings",
    "overview",
    "claims",
    "models",
    "compare",
    "cumulants",
    "pca",
    "agreement",
    "transport",
    "bias",
    "atypical",
    "stitching",
    "diagnostics",
    "files",
    "provenance",
)


def make_results(root: Path, n_structures: int = 40) -> Path:
    """A results folder as ``run_demo`` writes it, from the real stages on synthetic features."""
    from mlipspace.diagnostics import symmetry_scores
    from mlipspace.metrics.compare import compare
    from mlipspace.platonic import run_platonic
    from mlipspace.pooling.information import cumulant_model_table, cumulant_order_table

    results = ResultsFolder(root)
    structures = list(mlipspace.demo_structures("small"))[:n_structures]
    results.write_structures(structures)
    desc = [local_descriptor(a) for a in structures]
    rng = np.random.default_rng(0)
    dim = desc[0].shape[1]
    W, W2 = rng.normal(size=(dim, 40)), rng.normal(size=(dim, 24))
    Q = np.linalg.qr(rng.normal(size=(40, 40)))[0]
    features = {
        "soap": desc,
        "model-a": [np.tanh(d @ W) for d in desc],
        "model-b": [2.5 * np.tanh(d @ W) @ Q for d in desc],
        "model-c": [np.tanh(0.5 * d @ W2) for d in desc],
    }
    store = mlipspace.FeatureStore(results.store_path)
    for name, feats in features.items():
        meta = {"package": "synthetic", "package_version": "1.0", "checkpoint": f"{name}.pt"}
        for layer in ("ll", "node"):
            store.write(name, layer, structures, feats, metadata=meta)
    df = compare(
        store, MODELS, layer="ll", measures=("gfre", "lfre", "cka", "mknn"), random_state=3
    )
    results.compare.write(df, results.compare.stem("ll"))
    orders = cumulant_order_table(
        store.read("model-a", "ll"), max_order=3, n_test=15, random_state=3
    )
    results.cumulants.write_orders(orders, "model-a", "ll")
    aligned = store.aligned([(m, "ll") for m in MODELS[:2]])
    cross = cumulant_model_table(
        {m: t for (m, _), t in aligned.items()}, order=3, n_test=15, random_state=3
    )
    results.cumulants.write_models(cross, "ll")
    run_platonic(
        store,
        MODELS,
        results.platonic.folder,
        structures=structures,
        layer="node",
        n_anchors=32,
        n_atoms=300,
        ot_atoms=120,
        random_state=5,
        pca_atoms=200,
    )
    diagnostics = results.diagnostics
    scores = symmetry_scores(structures[:8], {"model-a": store.read("model-a", "ll")})
    diagnostics.write_csv(scores, diagnostics.SYMMETRY)
    # a displacement series of the real SOAP descriptor (the report plots it)
    from ase.build import bulk

    from mlipspace.diagnostics import displacement_series

    series = displacement_series(bulk("NaCl", "rocksalt", a=5.64, cubic=True), "soap", layer="ll")
    diagnostics.write_csv(series, diagnostics.DISPLACEMENT)
    results.write_summary("# synthetic results\n")
    return root


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return make_results(tmp_path_factory.mktemp("results") / "res")


@pytest.fixture(scope="module")
def report(results, tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "report.html"
    return build_report(results, out, strict=True)


class _Tags(HTMLParser):
    """Every tag with its attributes, and the text of every <script>."""

    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"
        if self._in_script:
            self.scripts.append("")

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.scripts[-1] += data


def parse(path: Path) -> _Tags:
    parser = _Tags()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def plotly_figures(html: str) -> dict[str, list[dict]]:
    """The data of every plotly figure, by div id (typed arrays decoded)."""
    out = {}
    for match in re.finditer(r'Plotly\.newPlot\(\s*"([^"]+)",\s*(\[.*?\]),\s*\{', html, re.S):
        out[match.group(1)] = json.loads(match.group(2))
    return out


def decode(values) -> np.ndarray:
    if isinstance(values, dict) and "bdata" in values:
        arr = np.frombuffer(base64.b64decode(values["bdata"]), dtype=np.dtype(values["dtype"]))
        shape = [int(s) for s in str(values.get("shape", len(arr))).split(",")]
        return arr.reshape(shape)
    return np.asarray(values, dtype=float)


def test_every_section_is_there_and_nothing_is_fetched(report):
    tags = parse(report)
    ids = [a.get("id") for t, a in tags.tags if t == "section"]
    assert ids == list(SECTION_IDS)
    html = report.read_text(encoding="utf-8")
    # every input exists, so no section reports missing files
    notes = re.findall(r'<p class="note">(.*?)</p>', html)
    assert not [n for n in notes if "not found" in n], notes
    for tag, attrs in tags.tags:
        for key in ("src", "href"):
            value = attrs.get(key) or ""
            assert not re.match(r"\s*(https?:)?//", value), (tag, key, value)
        assert not (tag == "link" and attrs.get("rel") == "stylesheet"), attrs
    # plotly.js embedded exactly once, before every figure
    bundles = [i for i, s in enumerate(tags.scripts) if len(s) > 1_000_000]
    assert len(bundles) == 1
    figure_scripts = [i for i, s in enumerate(tags.scripts) if "Plotly.newPlot" in s]
    assert figure_scripts and min(figure_scripts) > bundles[0]
    assert "cdn.plot.ly" not in "".join(a.get("src", "") for t, a in tags.tags if t == "script")
    divs = [a["id"] for t, a in tags.tags if t == "div" and a.get("class") == "plotly-graph-div"]
    assert len(divs) == len(set(divs)) == len(plotly_figures(html))
    # the findings (GFRE, cumulant GFRE, agreement cosine, displacement), then 4 compare
    # measures, 2+2 cumulant tables, PCA, 5 agreement measures and the 3 of the uncentred
    # projection, W2, bias, 3 structures, the displacement series of the diagnostics
    assert len(divs) == 4 + 4 + 4 + 1 + 5 + 3 + 1 + 1 + 3 + 1
    assert "data:image/png;base64," in html  # the dendrogram


def test_heatmaps_hold_the_values_of_the_tables(report, results):
    figures = plotly_figures(report.read_text(encoding="utf-8"))
    df = pd.read_csv(results / "compare" / "compare_ll.csv")
    for measure in ("gfre", "lfre", "cka", "mknn"):
        (trace,) = figures[f"fig-compare_ll_{measure}"]
        expected = (
            df[df.measure == measure]
            .pivot(index="source", columns="target", values="value")
            .reindex(index=trace["y"], columns=trace["x"])
        )
        assert trace["y"] == MODELS  # row = source
        np.testing.assert_allclose(decode(trace["z"]), expected.to_numpy(), equal_nan=True)
    w2 = pd.read_csv(results / "platonic" / "w2.csv", index_col=0)
    (trace,) = figures["fig-w2"]
    np.testing.assert_allclose(decode(trace["z"]), w2.loc[trace["y"], trace["x"]].to_numpy())
    bias = pd.read_csv(results / "platonic" / "bias_map.csv", index_col=0)
    (trace,) = figures["fig-bias_map"]
    assert trace["y"] == list(bias.index)
    np.testing.assert_allclose(decode(trace["z"]), bias.to_numpy())
    orders = pd.read_csv(results / "cumulants" / "model-a" / "orders_ll.csv")
    (trace,) = figures["fig-cumulants_model-a_orders_ll_gfre"]
    row = orders[
        (orders.measure == "gfre") & (orders.source_order == 1) & (orders.target_order == 3)
    ]
    assert decode(trace["z"])[0, 2] == pytest.approx(row["value"].item())
    assert np.isnan(decode(trace["z"])[0, 0])  # no Φ(m) → Φ(m) entry


def test_every_pair_table_names_its_measure_and_split(report, results):
    html = report.read_text(encoding="utf-8")
    section = html[html.index('<section id="cumulants">') : html.index('<section id="pca">')]
    orders = pd.read_csv(results / "cumulants" / "model-a" / "orders_ll.csv")
    split = (
        f"split: {orders['n_train'].iloc[0]} training / {orders['n_test'].iloc[0]} test "
        "structures, stratified by subset, seed 3"
    )
    # the order table and the cross-model table each name GFRE and LFRE with the split
    assert section.count("GFRE (global linear reconstruction error, ridge)") == 2
    assert section.count("LFRE (local linear reconstruction error") == 2
    assert section.count(split) == 4
    compare = html[html.index('<section id="compare">') : html.index('<section id="cumulants">')]
    assert "test atoms, stratified by subset, seed 3" in compare


def test_atypical_structures_are_shown_in_3d(report, results):
    figures = plotly_figures(report.read_text(encoding="utf-8"))
    atypical = pd.read_csv(results / "platonic" / "atypical_structures.csv")
    frames = {
        a.info["structure_hash"]: a
        for a in mlipspace.read_structures(results / "structures.extxyz")
    }
    for rank in (1, 2, 3):
        traces = figures[f"fig-atypical-{rank}"]
        atoms = frames[atypical.structure_hash[rank - 1]]
        points = [t for t in traces if t["type"] == "scatter3d" and t["mode"] == "markers"]
        assert sum(len(decode(t["x"])) for t in points) == len(atoms)
        assert {t["name"] for t in points} == set(atoms.get_chemical_symbols())


def test_pca_maps_and_chemiscope_file(report, results):
    data = json.loads(gzip.decompress((report.parent / "chemiscope.json.gz").read_bytes()))
    props = data["properties"]
    n_atoms = sum(len(a) for a in mlipspace.read_structures(results / "structures.extxyz"))
    assert len(data["environments"]) == min(200, n_atoms) == len(props["Z"]["values"])

    def pc(name):
        return np.column_stack([props[f"{name}[1]"]["values"], props[f"{name}[2]"]["values"]])

    def same_up_to_sign(A, B, scale=1.0):
        signs = np.sign(np.sum(A * B, axis=0))
        return np.allclose(A * signs * scale, B, atol=1e-6 * np.abs(B).max())

    # the anchored space forgets rotations and scale: model-b's map is model-a's
    assert same_up_to_sign(pc("model-a anchored PCA"), pc("model-b anchored PCA"))
    # PCA of the raw features is rotation invariant but not scale invariant (× 2.5)
    assert same_up_to_sign(pc("model-a raw PCA"), pc("model-b raw PCA"), scale=2.5)
    assert not same_up_to_sign(pc("model-a anchored PCA"), pc("model-c anchored PCA"))
    groups = np.array(props["element group"]["values"])
    Z = np.array(props["Z"]["values"], dtype=int)
    from mlipspace.platonic.chemistry import element_group

    np.testing.assert_array_equal(groups, element_group(Z))


def test_static_figures_beside_the_report(report):
    figures = report.parent / "figures"
    for stem in (
        "compare_ll_gfre",
        "compare_ll_cka",
        "cumulants_model-a_orders_ll_gfre",
        "pca_maps",
        "w2",
        "w2_dendrogram",
        "bias_map",
        "agreement_cosine_mean",
        "agreement_uncentred_cosine_mean",
    ):
        for ext in ("png", "svg"):
            path = figures / f"{stem}.{ext}"
            assert path.stat().st_size > 1000, path
        assert (figures / f"{stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_claims_and_diagnostics_sections(report, results):
    html = report.read_text(encoding="utf-8")
    claims = pd.read_csv(results / "platonic" / "claims.csv")
    section = html[html.index('id="claims"') : html.index('id="models"')]
    for test in claims["test"].unique():
        assert f">{test}<" in section
    assert "does not hold" in section or "holds" in section
    # issue 16: each verdict with its interval, its threshold and where that comes from
    for heading in ("subset", "estimate (95% CI)", "threshold", "threshold_source"):
        assert f"<th>{heading}</th>" in section, heading
    row = claims.dropna(subset=["ci_low", "ci_high"]).iloc[0]
    interval = f"{row.estimate:.3g} [{row.ci_low:.3g}, {row.ci_high:.3g}]"
    assert f"<td>{interval}</td>" in section
    for source in claims["threshold_source"].dropna().unique():
        assert f"<td>{source}</td>" in section
    assert "<td>bulk crystals</td>" in section  # the checks repeated on the bulk crystals
    figures = plotly_figures(html)
    series = figures["fig-displacement"] if "fig-displacement" in figures else None
    assert series is not None, sorted(figures)
    spread = decode(series[0]["y"])
    assert np.all(np.diff(spread) > 0)  # SOAP's orbit spread grows as the site moves


def test_versions_and_seeds(report):
    html = report.read_text(encoding="utf-8")
    section = html[html.index('<section id="provenance">') :]
    assert f"<td>{mlipspace.__version__}</td>" in section
    assert "<td>synthetic</td>" in section and "model-a.pt" in section
    seeds = dict(re.findall(r"<td>([A-Za-z ]+)</td>\s*<td>([0-9, ]+)</td>", section))
    assert seeds == {"compare": "3", "cumulants": "3", "PCA maps": "5", "platonic": "5"}


def test_partial_results_render_with_notes(results, tmp_path):
    partial = tmp_path / "partial"
    (partial / "compare").mkdir(parents=True)
    for name in ("compare_ll.csv",):
        (partial / "compare" / name).write_bytes((results / "compare" / name).read_bytes())
    out = build_report(partial, strict=True)
    assert out == partial / "report.html"
    html = out.read_text(encoding="utf-8")
    assert len(plotly_figures(html)) == 4 + 1  # and the GFRE map again in the findings
    for missing in (
        "store.zarr",
        "cumulants/",
        "platonic/agreement.csv",
        "platonic/w2.csv",
        "diagnostics/*.csv",
        "structures.extxyz",
    ):
        assert re.search(rf'<p class="note">[^<]*{re.escape(missing)}', html), missing
    empty = build_report(tmp_path / "partial", tmp_path / "empty.html", strict=True)
    assert empty.exists()
    (tmp_path / "nothing").mkdir()
    html = build_report(tmp_path / "nothing", strict=True).read_text(encoding="utf-8")
    assert "Plotly.newPlot" not in html and html.count('class="note"') >= 10
    with pytest.raises(ReportError, match="results folder not found"):
        build_report(tmp_path / "absent")


def test_a_broken_table_is_reported_in_its_section(results, tmp_path):
    broken = tmp_path / "broken"
    (broken / "compare").mkdir(parents=True)
    (broken / "compare" / "compare_ll.csv").write_text("source,target\na,b\n")
    with pytest.raises(
        ReportError, match=r"compare_ll.csv: missing columns \['measure', 'value'\]"
    ):
        build_report(broken, strict=True)
    html = build_report(broken).read_text(encoding="utf-8")
    assert "This section could not be built: ReportError" in html


def test_cli_report(results, tmp_path):
    out = tmp_path / "r" / "index.html"
    args = ["report", str(results), "--out", str(out), "--no-chemiscope"]
    result = subprocess.run(
        [sys.executable, "-m", "mlipspace", *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert result.returncode == 0, result.stderr
    assert "report written to" in result.stderr
    assert out.exists() and (out.parent / "figures" / "pca_maps.png").exists()
    assert not (out.parent / "chemiscope.json.gz").exists()
    result = subprocess.run(
        [sys.executable, "-m", "mlipspace", "report", str(tmp_path / "absent")],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert result.returncode == 2 and "results folder not found" in result.stderr


# -- the results contract, the findings, the notes ---------------------------------------


def test_heatmap_files_beside_a_table(results, tmp_path):
    from mlipspace.report import write_heatmaps
    from mlipspace.results import write_table

    df = pd.read_csv(results / "compare" / "compare_ll.csv")
    paths = write_table(df, tmp_path, "compare") + write_heatmaps(df, tmp_path, "compare")
    names = {p.name for p in paths}
    assert {"compare.parquet", "compare.csv", "compare_gfre.png", "compare_cka.svg"} <= names
    assert "compare.html" in names and all(p.exists() for p in paths)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "compare.parquet"), df)
    html = (tmp_path / "compare.html").read_text()
    assert '<script src="http' not in html and "Plotly" in html and len(html) > 1_000_000
    # the page holds the same heatmaps as the report: row = source, the table's values
    page_gfre = next(iter(plotly_figures(html).values()))  # the first measure: gfre
    expected = (
        df[df.measure == "gfre"]
        .pivot(index="source", columns="target", values="value")
        .reindex(index=page_gfre[0]["y"], columns=page_gfre[0]["x"])
    )
    np.testing.assert_allclose(decode(page_gfre[0]["z"]), expected.to_numpy(), equal_nan=True)


def test_pca_maps_are_written_by_the_platonic_run(results):
    """The maps read back equal the PCA of the store's features projected on the anchors."""
    from sklearn.decomposition import PCA

    from mlipspace.platonic.space import project

    maps = ResultsFolder(results).platonic.pca_maps()
    assert maps.models == MODELS and maps.layer == "node" and len(maps.site) == 200
    store = mlipspace.FeatureStore(results / "store.zarr", mode="r")
    aligned = store.aligned([(m, "node") for m in [*MODELS, "soap"]])
    first = aligned[("model-a", "node")]
    rows = {
        (h, s): i for i, (h, s) in enumerate(zip(first.structure_hash, first.site, strict=True))
    }
    anchors = pd.read_csv(results / "platonic" / "anchors.csv")
    anchor_rows = np.array(
        [rows[(h, s)] for h, s in zip(anchors.structure_hash, anchors.site, strict=True)]
    )
    sample = np.array([rows[(h, s)] for h, s in zip(maps.structure_hash, maps.site, strict=True)])
    for model in MODELS:
        E = np.asarray(aligned[(model, "node")].X, dtype=np.float64)
        for kind, X in (("raw", E[sample]), ("anchored", project(E, anchor_rows)[sample])):
            reference = PCA(n_components=2, svd_solver="full").fit(X)
            coords, ratio = maps.maps[model][kind]
            np.testing.assert_allclose(ratio, reference.explained_variance_ratio_, rtol=1e-9)
            signs = np.sign(np.sum(coords * reference.transform(X), axis=0))
            np.testing.assert_allclose(coords, reference.transform(X) * signs, atol=1e-9)


def test_findings_open_the_report(report, results):
    html = report.read_text(encoding="utf-8")
    section = html[html.index('<section id="findings">') : html.index('<section id="overview">')]
    claims = pd.read_csv(results / "platonic" / "claims.csv", keep_default_na=False)
    verdict = {"True": "holds", "False": "does not hold", "": "undecided"}
    counts = pd.Series([verdict[str(v)] for v in claims["holds"]]).value_counts()
    for word, n in counts.items():
        assert f"{n} {word}" in section, (word, n)
    assert f"of {len(claims)} checks" in section
    for key in ("claims", "compare", "cumulants", "agreement", "diagnostics"):
        assert f'href="#{key}"' in section, key
    figures = plotly_figures(section)
    assert set(figures) == {
        "fig-findings-compare",
        "fig-findings-cumulants",
        "fig-findings-agreement",
        "fig-findings-diagnostics",
    }
    # the GFRE map of the findings is the one of the compare section
    full = plotly_figures(html)
    np.testing.assert_array_equal(
        decode(full["fig-findings-compare"][0]["z"]), decode(full["fig-compare_ll_gfre"][0]["z"])
    )


def test_every_not_found_note_says_what_writes_the_file(tmp_path):
    (tmp_path / "nothing").mkdir()
    html = build_report(tmp_path / "nothing", strict=True).read_text(encoding="utf-8")
    notes = re.findall(r'<p class="note">(.*?)</p>', html)
    missing = [n for n in notes if "not found" in n]
    assert len(missing) >= 10
    for note in missing:
        assert "run `mlipspace " in note, note


def test_skipped_structures_are_grouped_by_model_and_reason():
    from mlipspace.report.sections.overview import skipped_table

    rows = []
    for layer in ("ll", "node", "bb"):
        for i in range(40):  # one reason, worded per structure, on every layer
            rows.append(
                {
                    "model": "chgnet-0.2.0",
                    "layer": layer,
                    "structure_hash": f"h{i}",
                    "source": f"demo:isolated-{i}",
                    "reason": f"chgnet-0.2.0 cannot build a graph for structure {i} "
                    f"(demo:isolated-{i}, H{i}): {1 + i % 3} isolated atom(s)",
                }
            )
    for i in range(2):
        rows.append(
            {
                "model": "diep",
                "layer": "ll",
                "structure_hash": f"x{i}",
                "source": "",
                "reason": f"diep does not support element Pu (Z=94) found in structure {i} "
                f"(x{i}, Pu)",
            }
        )
    table = skipped_table(pd.DataFrame(rows))
    assert len(table) == 2  # was one row per structure and layer: 122
    chgnet = table.set_index("model").loc["chgnet-0.2.0"]
    assert chgnet["structures"] == 40 and chgnet["layers"] == "ll, node, bb"
    assert chgnet["reason"] == (
        "chgnet-0.2.0 cannot build a graph for a structure: N isolated atom(s)"
    )
    assert chgnet["examples"] == "demo:isolated-0, demo:isolated-1, demo:isolated-2, … (+37)"
    diep = table.set_index("model").loc["diep"]
    assert diep["structures"] == 2 and diep["examples"] == "x0, x1"  # the hash without a source
    assert "element Pu" in diep["reason"]


def _cli(*args, timeout=600):
    result = subprocess.run(
        [sys.executable, "-m", "mlipspace", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert result.returncode == 0, (args, result.stderr[-3000:])
    return result


def test_report_of_a_step_by_step_cli_run(tmp_path):
    """featurize → compare → cumulants → platonic into results/, the store and the
    structures kept elsewhere: the report finds every part (issue 19, item 3)."""
    data = tmp_path / "data.extxyz"
    ase_write(data, list(mlipspace.demo_structures("small"))[:16])
    store, out = tmp_path / "feats.zarr", tmp_path / "results"
    _cli(
        "featurize", data, "--models", "soap,chgnet-0.3.0", "--layers", "ll,node", "--store", store
    )
    _cli(
        "compare", "--store", store, "--models", "soap,chgnet-0.3.0",
        "--measures", "gfre,cka", "--n-test", "40", "--out", out / "compare",
    )  # fmt: skip
    _cli(
        "cumulants", "--store", store, "--model", "chgnet-0.3.0", "--max-order", "2",
        "--measures", "gfre", "--out", out / "cumulants",
    )  # fmt: skip
    _cli(
        "platonic", "--store", store, "--models", "chgnet-0.3.0", "--structures", data,
        "--anchors", "16", "--atoms", "120", "--ot-atoms", "60", "--pca-atoms", "50",
        "--out", out / "platonic",
    )  # fmt: skip
    _cli("report", out, "--store", store, "--structures", data)
    html = (out / "report.html").read_text(encoding="utf-8")
    notes = re.findall(r'<p class="note">(.*?)</p>', html)
    assert not [n for n in notes if "store.zarr" in n or "structures.extxyz" in n], notes
    assert "fig-pca-maps" in plotly_figures(html)
    assert len(ResultsFolder(out).platonic.pca_maps().site) == 50  # platonic --pca-atoms
    for name in ("w2_dendrogram.png", "bias_map.svg", "agreement/agreement.html"):
        assert (out / "platonic" / name).exists(), name  # the command draws beside the tables
    assert (out / "chemiscope.json.gz").stat().st_size > 1000
    provenance = html[html.index('<section id="provenance">') :]
    assert "Model packages recorded at extraction time" in provenance and "chgnet" in provenance
    # without the options, each absent part says how to point the report at it
    bare = build_report(out, tmp_path / "bare.html").read_text(encoding="utf-8")
    assert re.search(r'<p class="note">store.zarr not found[^<]*--store', bare)
    assert re.search(r'<p class="note">structures.extxyz not found[^<]*--structures', bare)


def test_findings_heatmap_without_a_null_has_no_marks(report):
    html = report.read_text(encoding="utf-8")
    section = html[html.index('<section id="findings">') : html.index('<section id="overview">')]
    (trace,) = plotly_figures(section)["fig-findings-compare"]
    assert not any(t.endswith(" ns") for row in trace["text"] for t in row)
    assert "permutation null" not in section


# -- issue 15 item 4: the analyses write data, the report draws -------------------------


def test_claims_table_takes_the_columns_present():
    from mlipspace.report.sections.platonic import claims_table

    older = pd.DataFrame(
        {"test": ["T1"], "claim": ["c"], "evidence": ["e"], "holds": ["True"], "note": [""]}
    )
    assert list(claims_table(older).columns) == ["test", "claim", "evidence", "verdict", "note"]
    newer = older.assign(
        subset="all",
        estimate=["0.5"],  # read as text (keep_default_na=False), as the report reads it
        ci_low=["0.25"],
        ci_high=[""],
        threshold="> 0.4",
        threshold_source="toolkit",
        p_value=0.01,  # a column added later is shown too, last
        holds=[""],
    )
    shown = claims_table(newer)
    assert list(shown.columns) == [
        "test", "subset", "claim", "evidence", "verdict", "estimate (95% CI)", "threshold",
        "threshold_source", "note", "p_value",
    ]  # fmt: skip
    assert shown.loc[0, "verdict"] == "undecided"
    assert shown.loc[0, "estimate (95% CI)"] == "0.5"  # no interval without both ends
    both = claims_table(newer.assign(ci_high=["0.75"], holds=["False"]))
    assert both.loc[0, "estimate (95% CI)"] == "0.5 [0.25, 0.75]"
    assert both.loc[0, "verdict"] == "does not hold"


def test_agreement_section_shows_the_uncentred_projection_and_the_anchors(report, results):
    html = report.read_text(encoding="utf-8")
    section = html[html.index('<section id="agreement">') : html.index('<section id="transport">')]
    figures = plotly_figures(section)
    uncentred = pd.read_csv(results / "platonic" / "agreement_uncentred.csv")
    (trace,) = figures["fig-agreement_uncentred_cosine_mean"]
    M = decode(trace["z"])
    for row in uncentred.itertuples():
        i, j = trace["y"].index(row.source), trace["x"].index(row.target)
        assert M[i, j] == pytest.approx(row.cosine_mean) == pytest.approx(M[j, i])
    coverage = pd.read_csv(results / "platonic" / "anchor_coverage.csv")
    assert "anchor_coverage.csv" in section
    for value in coverage["value"]:
        assert f"<td>{value}</td>" in section, value


def test_bulk_and_uncentred_repeats_are_shown_beside_their_section(report, results):
    html = report.read_text(encoding="utf-8")
    sections = {
        "transport": ("transport_bulk.csv", "transport_uncentred.csv"),
        "stitching": ("stitching_bulk.csv", "stitching_uncentred.csv"),
    }
    for key, names in sections.items():
        start = html.index(f'<section id="{key}">')
        section = html[start : html.index("</section>", start)]
        for name in names:
            assert (results / "platonic" / name).exists(), name
            assert f"({name})</h3>" in section, name


def test_dendrogram_groups_the_families():
    from mlipspace.errors import MetricInputError
    from mlipspace.report import plot_dendrogram
    from mlipspace.transport import w2_matrix

    spaces = two_families()
    fig = plot_dendrogram(w2_matrix(spaces))
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert sorted(labels) == sorted(spaces)
    families = [name[0] for name in labels]
    assert families[0] == families[1] and families[2] == families[3]
    with pytest.raises(MetricInputError, match="symmetric"):
        plot_dendrogram(pd.DataFrame([[0.0, 1.0], [2.0, 0.0]]))


def test_platonic_figures_are_drawn_beside_the_tables_from_the_tables(results, tmp_path):
    import shutil

    from mlipspace.report import write_platonic_figures
    from mlipspace.results import PlatonicFiles

    folder = tmp_path / "platonic"
    shutil.copytree(results / "platonic", folder)
    assert not list(folder.rglob("*.png"))  # the analysis drew nothing
    written = write_platonic_figures(PlatonicFiles(folder))
    names = {p.relative_to(folder).as_posix() for p in written}
    assert {
        "w2_dendrogram.png",
        "w2_dendrogram.svg",
        "bias_map.png",
        "bias_map.svg",
        "agreement/agreement_cosine_mean.png",
        "agreement/agreement_cka_z.svg",
        "agreement/agreement.html",
    } <= names
    for path in written:
        assert path.stat().st_size > 1000, path
    # the agreement page draws the tidy table the analysis wrote, row = source
    long = pd.read_csv(folder / "agreement" / "agreement.csv")
    page = plotly_figures((folder / "agreement" / "agreement.html").read_text(encoding="utf-8"))
    (trace,) = next(iter(page.values()))  # the first measure: cosine_mean
    expected = (
        long[long.measure == "cosine_mean"]
        .pivot(index="source", columns="target", values="value")
        .reindex(index=trace["y"], columns=trace["x"])
    )
    np.testing.assert_allclose(decode(trace["z"]), expected.to_numpy(), equal_nan=True)
    # a folder without the tables: nothing drawn, nothing raised
    assert write_platonic_figures(PlatonicFiles(tmp_path / "empty")) == []
