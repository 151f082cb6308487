"""The `mlipspace` command: structures summary, store info, help texts."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from ase.build import bulk
from ase.io import write

import mlipspace


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "mlipspace", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


@pytest.mark.parametrize("command", [[], ["structures"], ["store", "info"], ["demo"]])
def test_help(command):
    result = run_cli(*command, "--help")
    assert result.returncode == 0, result.stderr
    assert "Usage" in result.stdout


def test_structures_summary_reports_problems(tmp_path):
    write(tmp_path / "good.xyz", [bulk("Si"), bulk("NaCl", "rocksalt", a=5.6), bulk("Si")])
    (tmp_path / "bad.xyz").write_text("")
    result = run_cli("structures", str(tmp_path))
    assert result.returncode == 0, result.stderr
    text = result.stdout + result.stderr
    assert "structures" in text and "Cl Na Si" in text
    assert "duplicates dropped" in text and "bad.xyz" in text and "empty" in text


def test_structures_strict_fails_with_named_error(tmp_path):
    (tmp_path / "bad.xyz").write_text("")
    result = run_cli("structures", "--strict", str(tmp_path / "bad.xyz"))
    assert result.returncode == 2
    assert "bad.xyz" in result.stderr and "empty" in result.stderr


def test_store_info(tmp_path):
    store = mlipspace.FeatureStore(tmp_path / "s.zarr")
    structures = mlipspace.demo_structures("small")[:5]
    store.write("chgnet-0.3.0", "ll", structures, [np.ones((len(a), 4)) for a in structures])
    result = run_cli("store", "info", str(tmp_path / "s.zarr"))
    assert result.returncode == 0, result.stderr
    assert "chgnet-0.3.0" in result.stdout and "5 distinct structures" in result.stdout
    missing = run_cli("store", "info", str(tmp_path / "none.zarr"))
    assert missing.returncode == 2 and "no feature store" in missing.stderr


@pytest.mark.parametrize("command", ["compare", "cumulants", "platonic"])
def test_random_state_option_keeps_seed_as_its_old_name(command):
    from typer.testing import CliRunner

    from mlipspace.cli import _import_commands
    from mlipspace.cli.app import app

    _import_commands()
    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "--random-state" in result.output and "--seed" in result.output
    # the old name still parses: a bad value is reported against the option
    bad = CliRunner().invoke(app, [command, "--seed", "notanumber"], env={"COLUMNS": "200"})
    assert bad.exit_code == 2
    assert "Invalid value for '--random-state' / '--seed'" in bad.output
