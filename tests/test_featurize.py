"""The featurize API and the ``mlipspace models`` / ``mlipspace featurize`` commands."""

from __future__ import annotations

import ase.io
import numpy as np
import pytest
from ase.build import bulk

import mlipspace
from conftest import small_structure_set
from mlipspace import FeatureStore, featurize
from mlipspace.errors import ModelError, UnsupportedElementError
from mlipspace.featurization import api, load_model
from mlipspace.models.soap import SOAPAdapter

pytest.importorskip("featomic")


def _structures():
    return mlipspace.read_structures(small_structure_set())


class CountingSOAP(SOAPAdapter):
    """The SOAP adapter, counting the structures it is asked to compute."""

    seen = 0

    def compute(self, structures, layers):
        self.seen += len(structures)
        return super().compute(structures, layers)


def test_returns_atom_features_with_identities():
    structures = _structures()
    feats = featurize(structures, "soap")
    assert isinstance(feats, mlipspace.AtomFeatures)
    assert feats.X.shape == (sum(len(a) for a in structures), 640)
    assert (feats.model, feats.layer) == ("soap", "ll")
    first = structures[0]
    rows = feats.structure_hash == first.info["structure_hash"]
    np.testing.assert_array_equal(feats.site[rows], np.arange(len(first)))
    np.testing.assert_array_equal(feats.numbers[rows], first.numbers)
    assert list(feats.structures["structure_hash"]) == [
        a.info["structure_hash"] for a in structures
    ]
    direct = load_model("soap").compute([first], ["ll"])["ll"][0]
    np.testing.assert_array_equal(feats.X[rows], direct)


def test_layer_list_gives_dict_and_package_is_callable():
    result = mlipspace.featurize(_structures()[:2], "soap", layer=["ll", "bb"])
    assert set(result) == {"ll", "bb"}
    np.testing.assert_array_equal(result["ll"].X, result["bb"].X)


def test_batch_size_does_not_change_features():
    structures = _structures()
    one = featurize(structures, "chgnet-0.2.0", layer="bb", batch_size=1)
    all_ = featurize(structures, "chgnet-0.2.0", layer="bb", batch_size=len(structures))
    assert np.abs(one.X - all_.X).max() <= 1e-5 * np.abs(one.X).max()


def test_reads_files_and_raw_atoms(tmp_path):
    path = tmp_path / "s.extxyz"
    ase.io.write(path, [bulk("Cu"), bulk("Si")])
    from_file = featurize(str(path), "soap")
    from_atoms = featurize([bulk("Cu"), bulk("Si")], "soap")
    assert len(from_file.structures) == 2 and from_file.structures["subset"][0] == "s"
    np.testing.assert_allclose(from_file.X, from_atoms.X, atol=1e-6)


def test_store_writes_every_layer_and_resumes(tmp_path):
    structures = _structures()
    store = FeatureStore(tmp_path / "store.zarr")
    counting = CountingSOAP()
    calls = []
    first = featurize(structures[:2], counting, layer=["ll", "bb"], store=store)
    assert counting.seen == 2
    assert set(store.entries()) == {("soap", "ll"), ("soap", "bb")}
    assert store.metadata("soap", "ll")["package"] == "featomic"
    again = featurize(
        structures,
        counting,
        layer=["ll", "bb"],
        store=store,
        progress=lambda done, total: calls.append((done, total)),
    )
    assert counting.seen == 4  # only the two new structures were computed
    assert calls[0] == (2, 4) and calls[-1] == (4, 4)
    assert len(again["ll"].structures) == 4
    np.testing.assert_array_equal(again["ll"].X[: len(first["ll"])], first["ll"].X)
    # a path works as well as a FeatureStore
    third = featurize(structures, counting, layer="bb", store=tmp_path / "store.zarr")
    assert counting.seen == 4 and third.X.shape == again["bb"].X.shape


def _polonium():
    po = bulk("Po", "sc", a=3.35)
    po.info["source"] = "polonium-cube"
    return po


def test_unsupported_element_error_names_structure_and_element():
    with pytest.raises(
        UnsupportedElementError, match=r"Po \(Z=84\) found in structure 1 \(memory@1"
    ):
        featurize([bulk("Si"), _polonium()], "diep")


def test_unsupported_element_skip_is_recorded(tmp_path):
    store = FeatureStore(tmp_path / "store.zarr")
    structures = mlipspace.read_structures([bulk("Si"), _polonium()])
    feats = featurize(structures, "diep", layer="node", store=store, on_unsupported="skip")
    assert len(feats.structures) == 1 and set(feats.numbers) == {14}
    skipped = store.skipped("diep", "node")
    assert list(skipped["structure_hash"]) == [structures[1].info["structure_hash"]]
    assert "Po" in skipped["reason"][0]
    memory = featurize(structures, "diep", layer="node", on_unsupported="skip")
    np.testing.assert_allclose(memory.X, feats.X, atol=1e-6)


def test_clear_errors():
    structures = [bulk("Cu")]
    with pytest.raises(ModelError, match="unknown model"):
        featurize(structures, "no-such-model")
    with pytest.raises(ModelError, match="no layer 'layer:9'"):
        featurize(structures, "soap", layer="layer:9")
    with pytest.raises(ModelError, match="on_unsupported"):
        featurize(structures, "soap", on_unsupported="ignore")
    with pytest.raises(ModelError, match="dtype"):
        featurize(structures, "soap", dtype="float16")


def test_float64_features():
    feats = featurize([bulk("Si")], "chgnet-0.2.0", dtype="float64")
    assert feats.X.dtype == np.float64


def test_models_of_other_families_go_to_a_worker(monkeypatch):
    from mlipspace.models import ModelCard, ModelSpec, register

    card = ModelCard(environment="fake")
    register(ModelSpec(name="fake-family-model", factory=lambda *a, **k: None, card=card))
    seen = {}

    def fake_in_env(structures, model, layers, **kwargs):
        seen.update(model=model, layers=layers, n=len(structures), **kwargs)
        return {layer: f"table {layer}" for layer in layers}

    monkeypatch.setattr(api, "runs_here", lambda family: family != "fake")
    monkeypatch.setattr(api, "featurize_in_env", fake_in_env)
    out = featurize([bulk("Cu"), bulk("Si")], "fake-family-model", layer="bb", batch_size=3)
    assert out == "table bb"
    assert seen["model"] == "fake-family-model" and seen["layers"] == ["bb"] and seen["n"] == 2
    assert seen["batch_size"] == 3


def test_cli_models_and_featurize(tmp_path):
    from typer.testing import CliRunner

    import mlipspace.cli.models  # noqa: F401  (attaches the commands)
    from mlipspace.cli.app import app

    runner = CliRunner()
    listing = runner.invoke(app, ["models"])
    assert listing.exit_code == 0, listing.output
    for name in ("chgnet-0.3.0", "sevennet-mf-0:R2SCAN", "diep", "soap"):
        assert name in listing.output
    path = tmp_path / "s.extxyz"
    ase.io.write(path, [bulk("Cu"), bulk("Si"), _polonium()])
    store = tmp_path / "store.zarr"
    args = [
        "featurize",
        str(path),
        "--models",
        "soap,diep",
        "--layers",
        "ll,bb",
        "--store",
        str(store),
        "--on-unsupported",
        "skip",
    ]
    result = runner.invoke(app, args, env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    # every skipped structure is listed with its reason (once, not once per layer)
    assert result.output.count("does not support element Po (Z=84)") == 1
    assert f"{path}@2" in result.output  # the structure at fault: file and frame
    fs = FeatureStore(store)
    assert set(fs.entries()) == {("soap", "ll"), ("soap", "bb"), ("diep", "ll"), ("diep", "bb")}
    assert len(fs.read("soap", "ll").structures) == 3
    assert len(fs.read("diep", "bb").structures) == 2 and len(fs.skipped("diep", "bb")) == 1
    assert runner.invoke(app, args).exit_code == 0  # resumes: nothing left to do


def test_structures_a_model_cannot_take_are_skipped_and_recorded(tmp_path):
    """CHGNet 0.2.0 (cutoff 5 Å) cannot build a graph for bcc Cs (neighbours at 5.3 Å)."""
    from ase.build import bulk

    import mlipspace
    from mlipspace.errors import ModelError

    structures = mlipspace.read_structures(
        [bulk("Cs", "bcc", a=6.14), bulk("Si", "diamond", a=5.43)]
    )
    with pytest.raises(ModelError, match="isolated"):
        mlipspace.featurize(structures, "chgnet-0.2.0")
    store = mlipspace.FeatureStore(tmp_path / "s.zarr")
    table = mlipspace.featurize(structures, "chgnet-0.2.0", store=store, on_unsupported="skip")
    assert list(table.structures["structure_hash"]) == [structures[1].info["structure_hash"]]
    skipped = store.skipped("chgnet-0.2.0", "ll")
    assert skipped["structure_hash"].tolist() == [structures[0].info["structure_hash"]]
    assert "isolated" in skipped.loc[0, "reason"]
    alone = mlipspace.featurize(structures, "chgnet-0.2.0", on_unsupported="skip")
    assert len(alone) == 2  # the two Si atoms


def test_models_side_by_side_in_worker_processes(tmp_path):
    # two real models in two spawned workers write one store; the features equal an
    # in-process run, and a second call finds everything stored
    structures = _structures()
    store = FeatureStore(tmp_path / "store.zarr")
    done = []
    api.featurize_models(
        structures,
        ["soap", "chgnet-0.3.0"],
        ["ll", "bb"],
        store,
        n_workers=2,
        progress=done.append,
    )
    assert sorted(t.split()[0] for t in done) == ["chgnet-0.3.0", "soap"]
    assert {("soap", "ll"), ("soap", "bb"), ("chgnet-0.3.0", "ll")} <= set(store.entries())
    here = featurize(structures, "chgnet-0.3.0", layer="ll")
    stored = store.read("chgnet-0.3.0", "ll")
    np.testing.assert_allclose(stored.X, here.X, rtol=1e-5, atol=1e-6)
    before = len(store.read("soap", "ll"))
    done.clear()
    api.featurize_models(structures, ["soap"], "ll", store, n_workers=1, progress=done.append)
    assert len(store.read("soap", "ll")) == before
    assert done[0] == "soap: 4 of 4 structures already stored; 0 left to compute"


def test_featurize_models_needs_a_store():
    with pytest.raises(ModelError, match="store"):
        api.featurize_models(_structures(), ["soap"], "ll", None)


def test_featurize_models_starts_the_slowest_models_first():
    # longest-processing-time order keeps both workers busy to the end; unknown names
    # (which fail in their own job) count as average
    names = ["soap", "chgnet-0.3.0", "hienet-v3", "nonexistent-model", "sevennet-l3i5", "diep"]
    assert api._slowest_first(names) == [
        "hienet-v3",
        "sevennet-l3i5",
        "diep",
        "nonexistent-model",
        "chgnet-0.3.0",
        "soap",
    ]


# -- Ctrl-C: finished work is kept, and the user is told -----------------------------------


class InterruptingSOAP(SOAPAdapter):
    """The SOAP adapter, interrupted (as by Ctrl-C) on its ``interrupt_at``-th forward pass."""

    def __init__(self, *args, interrupt_at: int | None = 3, **kwargs):
        super().__init__(*args, **kwargs)
        self.interrupt_at = interrupt_at
        self.calls = 0

    def compute(self, structures, layers):
        self.calls += 1
        if self.calls == self.interrupt_at:
            raise KeyboardInterrupt
        return super().compute(structures, layers)


def test_ctrl_c_keeps_finished_structures_and_says_so(tmp_path):
    structures = _structures()
    store = FeatureStore(tmp_path / "store.zarr")
    with pytest.raises(KeyboardInterrupt) as info:
        featurize(structures, InterruptingSOAP(), layer=["ll", "bb"], store=store, batch_size=1)
    notes = "\n".join(info.value.__notes__)
    assert f"soap: 2 of 4 structures are saved in {store.url}" in notes
    assert "run the same command again to resume" in notes
    # the two finished structures were committed although far below FLUSH_ATOMS
    assert store.hashes("soap", "ll") == {a.info["structure_hash"] for a in structures[:2]}
    counting = CountingSOAP()
    again = featurize(structures, counting, layer="ll", store=store, batch_size=1)
    assert counting.seen == 2 and len(again.structures) == 4
    alone = featurize(structures, "soap")
    np.testing.assert_allclose(again.X, alone.X, atol=1e-6)


@pytest.mark.parametrize(("flush_seconds", "segments"), [(0.0, 4), (3600.0, 1)])
def test_commits_come_by_time_as_well_as_by_size(tmp_path, flush_seconds, segments):
    """Small structures (far below FLUSH_ATOMS) still reach the store as time passes."""
    from mlipspace.featurization import featurize_with

    store = FeatureStore(tmp_path / "store.zarr")
    featurize_with(
        SOAPAdapter(), _structures(), ["ll"], store=store, batch_size=1,
        flush_seconds=flush_seconds,
    )  # fmt: skip
    assert len(store.segments("soap", "ll")) == segments
    assert len(store.hashes("soap", "ll")) == 4


def test_cli_ctrl_c_says_what_was_saved_and_the_rerun_what_was_stored(tmp_path, capsys):
    from mlipspace.cli import main
    from mlipspace.models import ModelSpec, register

    adapter = InterruptingSOAP()
    register(ModelSpec(name="interrupting-soap", factory=lambda *a, **k: adapter))
    path = tmp_path / "s.extxyz"
    ase.io.write(path, _structures())
    store = tmp_path / "store.zarr"
    args = ["featurize", str(path), "-m", "interrupting-soap", "-s", str(store),
            "--batch-size", "1"]  # fmt: skip
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 130
    err = capsys.readouterr().err
    assert "interrupted" in err
    assert "interrupting-soap: 2 of 4 structures are saved" in " ".join(err.split())
    adapter.interrupt_at = None
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "interrupting-soap: 2 of 4 structures already stored; 2 left to compute" in err
    assert len(FeatureStore(store).hashes("interrupting-soap", "ll")) == 4


# -- structures without a cell --------------------------------------------------------------


def test_a_structure_without_a_cell_gets_a_vacuum_box_where_the_model_needs_one():
    """CHGNet builds its graph through a periodic cell ("Singular matrix" without one): a
    molecule as read from an .xyz file is featurized in a vacuum box, with a warning."""
    import warnings

    from ase.build import molecule

    water = molecule("H2O")  # no cell, no pbc
    with pytest.warns(UserWarning, match=r"structure memory@0 \(H2O\) has no cell; featurized"):
        feats = featurize([water], "chgnet-0.3.0", layer="node")
    assert feats.X.shape[0] == 3 and np.isfinite(feats.X).all()
    assert feats.structures["structure_hash"][0] == mlipspace.structure_hash(water)
    boxed = water.copy()
    boxed.center(vacuum=10.0)
    np.testing.assert_allclose(feats.X, featurize([boxed], "chgnet-0.3.0", layer="node").X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a model that takes the molecule as it is: no box
        featurize([water], "soap")


@pytest.mark.slow
def test_ctrl_c_in_a_terminal_run(tmp_path):
    """A real SIGINT to the process group of `mlipspace featurize` (what Ctrl-C sends) while
    CHGNet runs: the command says how many structures it saved, and they are in the store."""
    import os
    import re
    import signal
    import subprocess
    import sys
    import time

    store = tmp_path / "store.zarr"
    path = tmp_path / "demo.extxyz"
    # three rattled copies of the demo set: a fast machine must not finish before the first
    # commit (FLUSH_SECONDS) and the interrupt; the run is stopped long before its end
    demo = list(mlipspace.demo_structures("default"))
    copies = []
    for copy in range(3):
        for atoms in demo:
            atoms = atoms.copy()
            atoms.rattle(0.01, seed=copy)
            copies.append(atoms)
    ase.io.write(path, copies)
    command = [sys.executable, "-m", "mlipspace", "featurize", str(path), "-m",
               "chgnet-0.3.0", "-s", str(store), "--on-unsupported", "skip"]  # fmt: skip
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env={**os.environ, "COLUMNS": "300", "OMP_NUM_THREADS": "1"},
    )
    deadline = time.monotonic() + 240
    # interrupt once the first structures are committed (after at most FLUSH_SECONDS)
    while not (store / "features").exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(2)
    os.killpg(process.pid, signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err[-3000:]
    text = " ".join(err.split())
    match = re.search(r"chgnet-0.3.0: (\d+) of (\d+) structures are saved", text)
    assert match, text[-3000:]
    saved = int(match[1])
    assert 0 < saved < int(match[2])
    assert "run the same command again to resume" in text
    kept = FeatureStore(store)
    skipped = set(kept.skipped("chgnet-0.3.0", "ll")["structure_hash"])
    assert len(kept.hashes("chgnet-0.3.0", "ll") | skipped) == saved


def test_ctrl_c_in_distributed_featurization_counts_the_whole_set(tmp_path):
    """Chunked (Dask-style) featurization, run here: the note counts every structure of the
    run, not only those of the chunk that was interrupted."""
    from mlipspace.distributed import featurize_distributed
    from mlipspace.models import ModelSpec, register

    adapter = InterruptingSOAP()
    register(ModelSpec(name="interrupting-soap-chunks", factory=lambda *a, **k: adapter))
    store = tmp_path / "store.zarr"
    with pytest.raises(KeyboardInterrupt) as info:
        featurize_distributed(_structures(), "interrupting-soap-chunks", store=store, chunk_size=1)
    assert len(info.value.__notes__) == 1
    assert "interrupting-soap-chunks: 2 of 4 structures are saved" in info.value.__notes__[0]
