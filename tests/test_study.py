"""`mlipspace run STUDY.toml`: parsing, stage caching, --force, `mlipspace init`."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest
from ase.io import write

import mlipspace
from mlipspace.study import StudyError, demo_study_text, load_study, parse_study, run_study

STUDY = """
[study]
out = "{out}"
random_state = 1

[structures]
sources = ["{data}"]

[featurize]
models = ["soap", "chgnet-0.3.0"]
layers = ["ll", "node"]

[compare]
layer = "ll"
measures = ["gfre", "cka"]
n_test = 60
permutations = 19

[cumulants]
models = ["chgnet-0.3.0"]
max_order = 2
order_measures = ["gfre"]

[platonic]
anchors = 12
atoms = 200
"""


@pytest.fixture
def study_file(tmp_path):
    structures = mlipspace.demo_structures("small")[:24]
    write(tmp_path / "data.xyz", list(structures))
    path = tmp_path / "study.toml"
    path.write_text(STUDY.format(out=tmp_path / "out", data=tmp_path / "data.xyz"))
    return path


def test_bad_study_files_are_named(tmp_path):
    with pytest.raises(StudyError, match="no such study file"):
        load_study(tmp_path / "none.toml")
    with pytest.raises(StudyError, match="not valid TOML"):
        parse_study("[study\n")
    with pytest.raises(StudyError, match=r"unknown sections \['analysis'\]"):
        parse_study('[analysis]\n[structures]\nsources=["x"]\n[featurize]\nmodels=["soap"]\n')
    with pytest.raises(StudyError, match="needs sources"):
        parse_study('[featurize]\nmodels=["soap"]\n')


def test_old_seed_key_still_sets_random_state_with_a_warning():
    text = '[study]\nseed = 7\n[structures]\nsources=["x"]\n[featurize]\nmodels=["soap"]\n'
    study = parse_study(text)
    with pytest.warns(DeprecationWarning, match=r"\[study\] seed is deprecated"):
        assert study.random_state == 7
    new = parse_study(text.replace("seed", "random_state"))
    assert new.random_state == 7


def test_bundled_demo_study_parses():
    study = parse_study(demo_study_text())
    assert study.config["structures"]["sources"] == ["demo:default"]
    assert "chgnet-0.3.0" in study.config["featurize"]["models"]


def test_stages_are_cached_and_force_redoes_the_rest(study_file):
    study = load_study(study_file)
    out = run_study(study)
    record = json.loads((out / "stages.json").read_text())
    assert list(record) == ["structures", "featurize", "compare", "cumulants", "platonic"]
    table = pd.read_csv(out / "compare" / "compare_ll.csv")
    assert set(table["n_permutations"]) == {19} and table["p_value"].between(0.05, 1).all()
    orders = out / "cumulants" / "chgnet-0.3.0" / "orders_ll.csv"
    assert set(pd.read_csv(orders)["measure"]) == {"gfre"}  # order_measures of the study
    assert (out / "platonic" / "summary.json").exists()
    summary = (out / "summary.md").read_text()
    assert summary.startswith("# mlipspace results")
    assert "GFRE (global linear reconstruction error, ridge); each side centred" in summary

    again = load_study(study_file)
    run_study(again)
    assert again.timings == {}  # nothing re-ran
    forced = load_study(study_file)
    run_study(forced, force=["cumulants"])
    assert set(forced.timings) == {"cumulants", "platonic"}
    with pytest.raises(StudyError, match="unknown stage"):
        run_study(load_study(study_file), force=["nothing"])


def test_changed_settings_rerun_only_what_depends_on_them(study_file):
    run_study(load_study(study_file))
    study_file.write_text(
        study_file.read_text().replace('measures = ["gfre", "cka"]', 'measures = ["gfre"]')
    )
    changed = load_study(study_file)
    run_study(changed)
    assert set(changed.timings) == {"compare"}


def test_init_writes_example(tmp_path):
    target = tmp_path / "s.toml"
    result = subprocess.run(
        [sys.executable, "-m", "mlipspace", "init", str(target), "--demo"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert load_study(target).config["study"]["name"] == "demo"  # --demo: the demo's study
    again = subprocess.run(
        [sys.executable, "-m", "mlipspace", "init", str(target)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode != 0 and "exists" in again.stderr


def test_diagnostics_stage_then_platonic_then_a_report_showing_the_summary(study_file):
    study_file.write_text(
        study_file.read_text()
        + "\n[diagnostics]\nn_symmetric = 1\nn_mirror = 1\nn_phonon = 1\nrelax_steps = 10\n"
        + "\n[report]\nenabled = true\n"
    )
    out = run_study(load_study(study_file))
    record = json.loads((out / "stages.json").read_text())
    assert list(record) == [
        "structures",
        "featurize",
        "compare",
        "cumulants",
        "diagnostics",
        "platonic",
        "report",
    ]
    # the claims check the diagnostics of their own stage, read back from the results folder
    diagnostics = json.loads((out / "diagnostics" / "summary.json").read_text())
    assert json.loads((out / "platonic" / "summary.json").read_text())["diagnostics"] == (
        diagnostics
    )
    assert diagnostics["models"] == ["chgnet-0.3.0"] and diagnostics["relax_runs"] == 1
    claims = pd.read_csv(out / "platonic" / "claims.csv", keep_default_na=False)
    assert "diagnostics were not run" not in " ".join(claims.loc[claims.test == "T9", "evidence"])
    # summary.md is written before the report, which shows it
    html = (out / "report.html").read_text(encoding="utf-8")
    overview = html[html.index('<section id="overview">') : html.index('<section id="claims">')]
    assert "# mlipspace results" in overview and "not found" not in overview
    assert "**report**" in (out / "summary.md").read_text()  # rewritten after the report
    # the Platonic stage draws its figures beside its tables, as compare and cumulants do
    for name in ("w2_dendrogram.png", "bias_map.png", "agreement/agreement.html"):
        assert (out / "platonic" / name).exists(), name
    # new diagnostics settings redo the diagnostics and what reads them, nothing else
    study_file.write_text(study_file.read_text().replace("relax_steps = 10", "relax_steps = 12"))
    changed = load_study(study_file)
    run_study(changed)
    assert set(changed.timings) == {"diagnostics", "platonic", "report"}
