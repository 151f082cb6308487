"""A scientist's own data (issue 19): every command and the study, on data that is not the demo.

The data: a folder of mixed files (CIFs of bulk crystals, a rattled crystal, an ASE-built Pt(111)
slab, a water molecule without a cell, a custom-labelled extxyz, next to notes, a table, a figure,
a script and a README), run through the command line as a user runs it (``python -m mlipspace``
in a subprocess), with cheap models (SOAP and two CHGNets). The README's and the tutorial's Python
snippets run as written, as scripts.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from ase import Atoms
from ase.build import bulk, fcc111, molecule
from ase.io import write

import mlipspace
from mlipspace.errors import ModelError, StoreError
from mlipspace.structures import has_no_cell, is_slab, read_structures
from mlipspace.study import StudyError, parse_study
from mlipspace.studyfile import check_model_names, check_stored_names

ROOT = Path(__file__).resolve().parents[1]
MODELS = "soap,chgnet-0.3.0,chgnet-0.2.0"
NOT_STRUCTURES = ("notes.txt", "energies.csv", "plot.png", "analysis.py", "README")


def run_cli(*args: str, cwd: Path | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """``mlipspace ARGS`` as a user runs it; stdout and stderr as text."""
    env = {**os.environ, "COLUMNS": "200", "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run(
        [sys.executable, "-m", "mlipspace", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=env,
    )


def no_traceback(result: subprocess.CompletedProcess) -> str:
    text = result.stdout + result.stderr
    assert "Traceback" not in text, text
    return text


def own_folder(folder: Path) -> Path:
    """Structures of several kinds beside files that are not structures."""
    folder.mkdir(parents=True, exist_ok=True)
    write(folder / "cu.cif", bulk("Cu", "fcc", a=3.6, cubic=True))
    write(folder / "nacl.cif", bulk("NaCl", "rocksalt", a=5.64, cubic=True))
    silicon = bulk("Si", "diamond", a=5.43, cubic=True)
    silicon.rattle(0.05, seed=1)
    write(folder / "si_rattled.extxyz", silicon)
    write(folder / "pt111.extxyz", fcc111("Pt", (2, 2, 3), vacuum=6.0))
    write(folder / "water.xyz", molecule("H2O"))
    labelled = []
    for i, a in enumerate((3.52, 3.56)):
        ni = bulk("Ni", "fcc", a=a, cubic=True)
        ni.info["config_type"] = f"my-label-{i}"
        labelled.append(ni)
    write(folder / "nickel.extxyz", labelled)
    frames = []  # a short trajectory: enough atoms for the Platonic analyses' splits
    for i, (symbols, a) in enumerate((("Cu", 3.6), ("Al", 4.05), ("Ag", 4.09))):
        frame = bulk(symbols, "fcc", a=a, cubic=True).repeat(2)
        frame.rattle(0.05, seed=i)
        frame.info["config_type"] = "md"
        frames.append(frame)
    salt = bulk("KBr", "rocksalt", a=6.6, cubic=True)
    salt.rattle(0.05, seed=5)
    salt.info["config_type"] = "md"
    write(folder / "md.extxyz", [*frames, salt])
    (folder / "notes.txt").write_text("my notes\n")
    (folder / "energies.csv").write_text("structure,energy\ncu,-3.7\n")
    (folder / "plot.png").write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR")
    (folder / "analysis.py").write_text("print('hello')\n")
    (folder / "README").write_text("these are my structures\n")
    return folder


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return own_folder(tmp_path_factory.mktemp("own") / "data")


@pytest.fixture(scope="module")
def store(data) -> Path:
    """The folder featurized once with every cheap model, from the command line."""
    path = data.parent / "feats.zarr"
    result = run_cli("featurize", data, "--models", MODELS, "--store", path)
    text = no_traceback(result)
    assert result.returncode == 0, text
    return path


# -- reading a folder of mixed files ------------------------------------------------------


def test_folder_skips_and_lists_files_that_are_not_structures(data):
    result = read_structures(data)
    ignored = {Path(p).name for p, _ in result.report.ignored}
    assert ignored == set(NOT_STRUCTURES)
    assert not result.report.errors
    assert len(result) == 11
    assert "files that are not structures ignored" in result.report.summary()


def test_a_named_non_structure_file_is_an_error_naming_it(data):
    with pytest.raises(mlipspace.errors.ReadError, match=r"notes\.txt"):
        read_structures(data / "notes.txt")


def test_molecule_without_cell_and_slab_are_flagged(data):
    from pymatgen.core import Molecule

    pmg = Molecule(["O", "H", "H"], [[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])
    (water,) = read_structures(pmg)
    assert has_no_cell(water) and not is_slab(water)
    (slab,) = read_structures(data / "pt111.extxyz")
    assert is_slab(slab) and not has_no_cell(slab)


def test_demo_sets_are_structure_sources_everywhere():
    small = read_structures("demo:small")
    assert len(small) == len(mlipspace.demo_structures("small"))
    assert small[0].info["source"].startswith("demo:")
    with pytest.raises(mlipspace.errors.ParameterError, match="demo:small or demo:default"):
        read_structures("demo:huge")


def test_structures_command_on_the_folder(data):
    result = run_cli("structures", data)
    text = no_traceback(result)
    assert result.returncode == 0, text
    for name in NOT_STRUCTURES:
        assert f"ignored {data / name}" in text
    assert re.search(r"without a cell\s+.\s+1", text) and "no cell:" in text
    assert re.search(r"partly periodic \(slabs\)\s+.\s+1", text) and "slab:" in text
    assert "my-label-0" in text  # the custom labels are the subsets
    # --strict: files that are not structures are not problems, a folder still reads
    assert run_cli("structures", "--strict", data).returncode == 0


def test_strict_stops_on_a_bad_file_and_says_how_to_skip_it(tmp_path):
    write(tmp_path / "ok.cif", bulk("Cu"))
    (tmp_path / "broken.xyz").write_text("2\n\nCu 0 0 0\n")
    result = run_cli("featurize", tmp_path, "--models", "soap", "--store", tmp_path / "s.zarr")
    text = no_traceback(result)
    assert result.returncode == 2
    assert "broken.xyz" in text and "--skip-bad" in text
    assert not (tmp_path / "s.zarr").exists()
    skipped = run_cli(
        "featurize", tmp_path, "--models", "soap", "--store", tmp_path / "s.zarr", "--skip-bad"
    )
    text = no_traceback(skipped)
    assert skipped.returncode == 0, text
    assert "skipped:" in text and "broken.xyz" in text


# -- featurize -------------------------------------------------------------------------------


def test_featurize_every_kind_of_structure(store, data):
    fs = mlipspace.FeatureStore(store, mode="r")
    assert {("soap", "ll"), ("soap", "node"), ("chgnet-0.3.0", "node")} <= set(fs.entries())
    hashes = {a.info["structure_hash"] for a in read_structures(data)}
    for model in MODELS.split(","):
        assert set(fs.read(model, "ll").structure_hash) == hashes, model


def test_soap_features_of_a_slab_are_those_of_its_periodic_copy():
    from mlipspace.models import get_model

    soap = get_model("soap")
    slab = fcc111("Pt", (2, 2, 3), vacuum=2.0)  # less vacuum than the cutoff: padded
    periodic = fcc111("Pt", (2, 2, 3), vacuum=10.0)
    periodic.pbc = True
    with pytest.warns(UserWarning, match="periodic along"):
        got = soap.compute([slab], ["ll"])["ll"][0]
    want = soap.compute([periodic], ["ll"])["ll"][0]
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_soap_failure_on_one_structure_is_a_model_error():
    from mlipspace.models import get_model

    bad = Atoms("Cu2", positions=[[0, 0, 0], [1, 1, 1]], cell=np.diag([3.0, 3.0, 0.0]))
    bad.pbc = (True, True, True)  # a periodic axis of zero length: featomic refuses it
    with pytest.raises(ModelError, match="soap cannot featurize"):
        get_model("soap").compute([bad], ["ll"])


def test_unknown_model_and_layer_names_are_all_reported_before_anything_runs(tmp_path):
    result = run_cli(
        "featurize", "demo:small", "--models", "soap,chgnet-0.30,sevenet-0",
        "--layers", "ll,nod", "--store", tmp_path / "s.zarr",
    )  # fmt: skip
    text = no_traceback(result)
    assert result.returncode == 2
    assert "did you mean 'chgnet-0.3.0'" in text and "did you mean 'sevennet-0'" in text
    assert "did you mean 'node'" in text
    assert not (tmp_path / "s.zarr").exists()


def test_structures_a_model_cannot_take_are_skipped_and_listed(tmp_path):
    lone = Atoms("Ar", cell=np.eye(3) * 12.0, pbc=True)  # no neighbour within any cutoff
    write(tmp_path / "argon.extxyz", lone)
    write(tmp_path / "cu.cif", bulk("Cu", cubic=True))
    args = ("featurize", tmp_path, "--models", "chgnet-0.2.0", "--store", tmp_path / "s.zarr")
    stopped = run_cli(*args)
    text = no_traceback(stopped)
    assert stopped.returncode == 2 and "--on-unsupported skip" in text
    skipped = run_cli(*args, "--on-unsupported", "skip")
    text = no_traceback(skipped)
    assert skipped.returncode == 0, text
    assert "chgnet-0.2.0/ll: 1 structures skipped" in text and "argon.extxyz" in text
    help_text = run_cli("featurize", "--help").stdout
    assert "graph it cannot build" in help_text


# -- compare, cumulants, platonic ----------------------------------------------------------


def test_compare_default_out_split_sizes_and_thin_data(store, tmp_path):
    result = run_cli("compare", "--store", store, "--models", "soap,chgnet-0.3.0",
                     cwd=tmp_path)  # fmt: skip
    text = no_traceback(result)
    assert result.returncode == 0, text
    match = re.search(r"fitted on (\d+) training atoms, scored on \d+ test atoms", text)
    assert match and 64 < int(match[1]) < 640
    assert "warning: only" in text and "thin_data" in text
    table = pd.read_csv(tmp_path / "compare" / "compare.csv")
    # SOAP (640 dimensions) is fitted on fewer atoms than it has features, CHGNet (64) is not
    soap = (table.source == "soap") | (table.target == "soap")
    assert table.loc[soap, "thin_data"].all() and not table.loc[~soap, "thin_data"].any()


def test_cumulants_warn_on_thin_data(store, tmp_path):
    result = run_cli("cumulants", "--store", store, "--model", "chgnet-0.3.0",
                     "--measures", "gfre", cwd=tmp_path)  # fmt: skip
    text = no_traceback(result)
    assert result.returncode == 0, text
    assert "training structures" in text and "warning: only" in text


def test_platonic_takes_several_structure_paths_and_prints_a_table(store, data, tmp_path):
    out = tmp_path / "platonic"
    (out / "diagnostics").mkdir(parents=True)  # left by an earlier run
    (out / "diagnostics" / "summary.json").write_text("{}")
    result = run_cli(
        "platonic", "--store", store, "--models", "chgnet-0.3.0,chgnet-0.2.0", "--out", out,
        "--structures", data / "cu.cif", data / "nickel.extxyz", data / "si_rattled.extxyz",
        data / "pt111.extxyz", data / "water.xyz", data / "nacl.cif", data / "md.extxyz",
    )  # fmt: skip
    text = no_traceback(result)
    assert result.returncode == 0, text
    assert "Platonic agreement" in text and "trained models" in text
    assert "anchors: 256 asked for" in text  # capped at the distinct atoms
    assert len(result.stdout.splitlines()) < 40  # a table, not the JSON summary
    assert not (out / "diagnostics").exists() and "earlier run" in text
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["n_anchors"] < 256


def test_platonic_reports_a_missing_layer_with_the_fix(store):
    result = run_cli("platonic", "--store", store, "--models", "chgnet-0.3.0", "--layer", "bb")
    text = no_traceback(result)
    assert result.returncode == 2
    assert "holds no 'bb' features" in text and "--layers" in text


def test_diagnostics_without_any_high_symmetry_crystal_skip_with_a_note(store, data, tmp_path):
    """Item 1: custom labels, no cubic crystal: no KeyError, a note instead (the diagnostics
    stage of a study and of ``platonic --diagnostics``, on the store's common space)."""
    from mlipspace.diagnostics.run import diagnose_store

    fs = mlipspace.FeatureStore(store, mode="r")
    structures = read_structures(
        data / "si_rattled.extxyz", data / "pt111.extxyz", data / "water.xyz"
    )
    said = []
    summary = diagnose_store(
        fs,
        ["chgnet-0.3.0", "chgnet-0.2.0"],
        structures,
        tmp_path / "diagnostics",
        space={"layer": "node", "n_anchors": 8, "anchor_model": "soap", "method": "fps"},
        progress=said.append,
        relax_steps=3,
    )
    assert summary["symmetric_structures"] == [] and summary["mirror_structures"] == ["Si8"]
    assert any("no cubic crystal" in note for note in summary["notes"])
    assert any("no cubic crystal" in text for text in said)
    written = json.loads((tmp_path / "diagnostics" / "summary.json").read_text())
    assert written["notes"] == summary["notes"]


def test_high_symmetry_candidates_are_chosen_by_symmetry_not_labels(data):
    from mlipspace.diagnostics.run import high_symmetry_structures

    structures = read_structures(data)
    assert {a.info["subset"] for a in structures}.isdisjoint({"element", "binary", "perovskite"})
    picked = high_symmetry_structures(structures, 10)
    assert sorted(a.get_chemical_formula() for a in picked) == ["Cl4Na4", "Cu4", "Ni4"]


# -- the study --------------------------------------------------------------------------------


def test_init_writes_a_template_for_own_data_that_loads(tmp_path):
    result = run_cli("init", tmp_path / "study.toml")
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "study.toml").read_text()
    study = parse_study(text)
    assert "diagnostics" not in study.config and "diagnostics" not in study.config["platonic"]
    assert study.config["structures"]["sources"] == ["structures/"]
    with_diagnostics = run_cli("init", tmp_path / "d.toml", "--diagnostics")
    assert with_diagnostics.returncode == 0
    assert parse_study((tmp_path / "d.toml").read_text()).config["diagnostics"]


@pytest.mark.parametrize(
    ("typo", "fix"),
    [
        ('layer = "node"', 'layers = "node"'),
        ("anchors = 256", "anchor = 256"),
        ('models = ["soap"', 'model = ["soap"'),
    ],
)
def test_study_typos_are_reported_with_the_closest_key(typo, fix):
    from mlipspace.studyfile import own_data_study_text

    text = own_data_study_text(models=["soap", "chgnet-0.3.0"])
    assert typo in text
    wrong = fix.split(" =")[0]
    right = typo.split(" =")[0]
    with pytest.raises(StudyError, match=f"unknown key '{wrong}'.*did you mean '{right}'"):
        parse_study(text.replace(typo, fix, 1))


def test_study_layers_agree_between_stages():
    from mlipspace.studyfile import own_data_study_text

    study = parse_study(own_data_study_text(models=["soap", "chgnet-0.3.0"]))
    from mlipspace.studyfile import featurize_layers

    assert featurize_layers(study.config) == ["ll", "node"]  # what compare and platonic read
    text = own_data_study_text(models=["soap"]).replace("# layers = [", 'layers = ["ll"]\n# [')
    with pytest.raises(StudyError, match="reads layer 'node'"):
        parse_study(text)


def test_model_names_are_checked_with_did_you_mean():
    problems = check_model_names(["chgnet-0.3.0", "chgnet030", "soap"], ["ll", "nodes"])
    text = "; ".join(problems)
    assert "unknown model 'chgnet030'" in text and "did you mean" in text
    assert "no layer 'nodes' (did you mean 'node'?)" in text


def test_stored_names_are_checked_against_the_store_with_did_you_mean():
    held = [("my-plugin", "ll"), ("my-plugin", "node"), ("chgnet-0.3.0", "ll")]
    assert check_stored_names(held, ["my-plugin", "chgnet-0.3.0"], "ll", "s.zarr") == []
    problems = "; ".join(check_stored_names(held, ["my-plugn", "chgnet-0.3.0"], "node", "s.zarr"))
    assert "no features of 'my-plugn' (did you mean 'my-plugin'?)" in problems
    assert "no 'node' features of chgnet-0.3.0 (it holds: ll)" in problems


def test_study_from_init_with_one_typo_then_fixed_runs_every_stage(data, tmp_path):
    study = tmp_path / "study.toml"
    result = run_cli("init", study, "--structures", data, "--models", MODELS, "--diagnostics",
                     cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    text = study.read_text()
    for slow, quick in (
        ("relax_steps = 100", "relax_steps = 3"),
        ("n_phonon = 1", "n_phonon = 0"),
        ("n_symmetric = 3", "n_symmetric = 1"),
        ("anchors = 256", "anchors = 32"),
    ):
        assert slow in text
        text = text.replace(slow, quick, 1)  # fmt: skip
    text = text.replace("[platonic]\nlayer =", "[platonic]\nlayers =", 1)  # the typo
    study.write_text(text)
    typo = run_cli("run", study, cwd=tmp_path)
    out = no_traceback(typo)
    assert typo.returncode == 2 and "did you mean 'layer'" in out
    assert not (tmp_path / "results").exists()  # stopped before anything ran

    study.write_text(text.replace("[platonic]\nlayers =", "[platonic]\nlayer =", 1))
    result = run_cli("run", study, cwd=tmp_path)
    out = no_traceback(result)
    assert result.returncode == 0, out
    results = tmp_path / "results"
    assert (results / "report.html").exists() and (results / "summary.md").exists()
    assert "ignored" in out and "notes.txt" in out
    assert "training atoms" in out
    diagnostics = json.loads((results / "diagnostics" / "summary.json").read_text())
    assert diagnostics["symmetric_structures"]  # chosen by spglib among custom-labelled data
    stages = json.loads((results / "stages.json").read_text())
    assert set(stages) >= {"structures", "featurize", "compare", "platonic", "report"}

    # diagnostics turned off: the folder of the run above is not read as this run's result
    off = study.read_text()
    off = off[: off.index("[diagnostics]")] + off[off.index("[report]") :]
    study.write_text(off)
    rerun = run_cli("run", study, cwd=tmp_path)
    out = no_traceback(rerun)
    assert rerun.returncode == 0, out
    assert not (results / "diagnostics").exists() and "earlier run" in out


# -- Python conveniences ------------------------------------------------------------------------


def test_per_structure_features(store, data):
    fs = mlipspace.FeatureStore(store, mode="r")
    table = fs.read("chgnet-0.3.0", "ll")
    per = table.per_structure()
    structures = read_structures(data)
    assert set(per) == {a.info["structure_hash"] for a in structures}
    for atoms in structures:
        rows = np.flatnonzero(table.structure_hash == atoms.info["structure_hash"])
        want = table.X[rows[np.argsort(table.site[rows])]]
        np.testing.assert_array_equal(per[atoms.info["structure_hash"]], want)
        np.testing.assert_array_equal(table.structure(atoms), want)
        assert want.shape == (len(atoms), 64)
    rotated = structures[0].copy()
    rotated.rotate(30, "z", rotate_cell=True)
    rotated.info.pop("structure_hash")
    with pytest.raises(StoreError, match="another hash"):
        table.structure(rotated)


def test_models_command_lists_elements():
    result = run_cli("models", "soap", "chgnet-0.3.0", "--elements")
    text = no_traceback(result)
    assert result.returncode == 0, text
    assert "elements" in text and "94: H–Pu" in text  # soap's row


# -- the README and the tutorial, as written --------------------------------------------------


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(encoding="utf-8"), re.S)


def run_script(code: str, cwd: Path) -> subprocess.CompletedProcess:
    script = cwd / "snippet.py"
    script.write_text(code, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, cwd=cwd, env=env,
        timeout=900,
    )  # fmt: skip


def test_readme_python_snippet_runs_as_a_script(tmp_path):
    (block,) = python_blocks(ROOT / "README.md")
    result = run_script(block, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "(3, 64)" in result.stdout  # the water molecule's features
    assert "cannot build a graph" in result.stdout  # chgnet-0.2.0 on isolated atoms, listed


def test_tutorial_python_snippet_runs_on_own_data(tmp_path):
    folder = own_folder(tmp_path / "data")
    big = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(3)
    big.rattle(0.05, seed=0)  # distinct environments for the 64 anchors
    write(folder / "cu_rattled.extxyz", big)
    (block,) = python_blocks(ROOT / "docs" / "tutorial.md")
    result = run_script(block, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "files that are not structures ignored" in result.stdout


def test_report_of_a_step_by_step_run(store, data, tmp_path):
    """Item 3 as a user meets it: featurize → compare → cumulants → platonic into one folder,
    then ``report --store --structures`` (the store and the structures are kept elsewhere)."""
    results = tmp_path / "results"
    models = "chgnet-0.3.0,chgnet-0.2.0"
    for args in (
        ("compare", "--store", store, "--models", models, "--out", results / "compare"),
        ("cumulants", "--store", store, "--model", "chgnet-0.3.0", "--measures", "gfre",
         "--out", results / "cumulants"),
        ("platonic", "--store", store, "--models", models, "--out", results / "platonic",
         "--structures", data),
    ):  # fmt: skip
        step = run_cli(*args)
        assert step.returncode == 0, no_traceback(step)
    report = run_cli("report", results, "--store", store, "--structures", data)
    text = no_traceback(report)
    assert report.returncode == 0, text
    assert (results / "report.html").exists()
    html = (results / "report.html").read_text(encoding="utf-8")
    assert "store.zarr not found" not in html and "structures.extxyz not found" not in html


def test_ctrl_c_on_own_data_says_what_was_saved_and_the_rerun_resumes(tmp_path):
    """Item 10 on a folder of one's own: a trajectory beside notes; Ctrl-C (SIGINT to the
    process group) after the first commit, then the same command again."""
    import signal
    import time

    folder = tmp_path / "traj"
    folder.mkdir()
    base = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(2)
    frames = []
    for i in range(800):
        frame = base.copy()
        frame.rattle(0.03, seed=i)
        frames.append(frame)
    write(folder / "md.extxyz", frames)
    (folder / "notes.txt").write_text("NVT at 300 K\n")
    store = tmp_path / "s.zarr"
    command = [sys.executable, "-m", "mlipspace", "featurize", str(folder), "-m",
               "chgnet-0.3.0", "-l", "ll", "-s", str(store)]  # fmt: skip
    env = {**os.environ, "COLUMNS": "300", "PYTHONPATH": str(ROOT / "src")}
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True, env=env,
    )  # fmt: skip
    deadline = time.monotonic() + 300
    while not (store / "features").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGINT)
    _, err = process.communicate(timeout=120)
    text = " ".join(err.split())
    assert "Traceback" not in text, text[-3000:]
    assert process.returncode == 130, text[-3000:]
    match = re.search(r"chgnet-0.3.0: (\d+) of 800 structures are saved", text)
    assert match and 0 < int(match[1]) < 800, text[-3000:]
    assert "run the same command again to resume" in text
    rerun = run_cli(*command[3:])
    out = " ".join(no_traceback(rerun).split())
    assert rerun.returncode == 0, out
    assert f"{match[1]} of 800 structures already stored" in out


def test_every_key_a_stage_reads_is_a_valid_study_key():
    """The schema that rejects typos must not reject a key a stage reads (they drift apart
    when a stage learns a new setting)."""
    from mlipspace.studyfile import KEYS

    source = (ROOT / "src" / "mlipspace" / "study.py").read_text(encoding="utf-8")
    sections = {"f": "featurize", "c": "compare", "k": "cumulants", "p": "platonic",
                "d": "diagnostics"}  # fmt: skip
    read = re.findall(r"\b([fckpd])cfg\.(?:get|pop)\(\"(\w+)\"", source)
    assert len(read) > 20
    missing = {(sections[s], key) for s, key in read if key not in KEYS[sections[s]]}
    assert not missing
