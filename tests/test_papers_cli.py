"""The command line of issue 20's "Done when", on checkpoints built by each family's package:

    mlipspace featurize s.extxyz --models orb:a.ckpt,pet:b.ckpt,mattersim:c.pth,... \
        --layers ll,bb --store x.zarr

then ``compare``, ``cumulants`` and ``platonic`` on that store; and ``mlipspace env create
<family>`` / ``mlipspace models`` for the families.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from ase.io import write

from mlipspace.errors import EnvironmentSetupError
from mlipspace.featurization import envs
from mlipspace.models import model_card
from mlipspace.store import FeatureStore
from test_examples_papers import (
    CHECKPOINT_BUILDERS,
    N_ATOMS,
    build_checkpoints,
    small_structures,
)

#: the families of the "Done when" line, with the file name each is given there
FILE_NAMES = {"orb": "a.ckpt", "pet": "b.ckpt", "mattersim": "c.pth", "uma": "d.pt", "dpa": "e.pt"}


def mlipspace(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run the ``mlipspace`` command (its real entry point) in ``cwd``."""
    done = subprocess.run(
        [sys.executable, "-m", "mlipspace", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=dict(os.environ, OMP_NUM_THREADS="1", COLUMNS="250"),
        timeout=1800,
    )
    assert done.returncode == 0, (
        f"mlipspace {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    )
    return done


@pytest.mark.models
def test_featurize_compare_cumulants_platonic_on_each_familys_checkpoint(tmp_path):
    families = [f for f in FILE_NAMES if f in CHECKPOINT_BUILDERS]
    assert {"orb", "pet", "mattersim"} <= set(families)
    models = []
    for family in families:
        built = build_checkpoints(family, tmp_path / "built" / family)
        name = FILE_NAMES[family]
        model = f"{family}:{name}"
        (tmp_path / name).write_bytes(built[CHECKPOINT_BUILDERS[family].pick(model)].read_bytes())
        models.append(model)
    write(tmp_path / "s.extxyz", small_structures())
    listed = ",".join(models)
    mlipspace("featurize", "s.extxyz", "--models", listed, "--layers", "ll,bb", "--store", "x.zarr", cwd=tmp_path)  # fmt: skip
    info = FeatureStore(tmp_path / "x.zarr").info()
    expected = sorted((model, layer) for model in models for layer in ("ll", "bb"))
    assert sorted(zip(info.model, info.layer, strict=True)) == expected
    assert (info.atoms == N_ATOMS).all() and (info.skipped == 0).all()

    mlipspace("compare", "--store", "x.zarr", "--models", listed, "--out", "cmp", "--measures", "gfre,lfre,cka", "--n-test", "20", cwd=tmp_path)  # fmt: skip
    table = pd.read_csv(tmp_path / "cmp" / "compare.csv")
    assert set(table.source) == set(models) == set(table.target)
    assert set(table.measure) == {"gfre", "lfre", "cka"} and table.value.notna().all()

    mlipspace("cumulants", "--store", "x.zarr", "--model", models[0], "--models", listed, "--max-order", "2", "--n-test", "4", "--out", "cum", cwd=tmp_path)  # fmt: skip
    tables = [pd.read_csv(p) for p in (tmp_path / "cum").rglob("*.csv")]
    assert tables and all(t.value.notna().all() for t in tables)

    mlipspace("platonic", "--store", "x.zarr", "--models", listed, "--layer", "ll", "--anchor-model", models[0], "--anchors", "8", "--atoms", "40", "--ot-atoms", "40", "--pca-atoms", "40", "--out", "plat", "--structures", "s.extxyz", cwd=tmp_path)  # fmt: skip
    assert (tmp_path / "plat" / "summary.json").is_file()


# -- env create <family>, models ------------------------------------------------------------


#: the issue's `mlipspace env create orb|pet|mattersim|uma|dpa` and the environment each builds
ISSUE_FAMILIES = {
    "orb": "orb-pet-mattersim",
    "pet": "orb-pet-mattersim",
    "mattersim": "orb-pet-mattersim",
    "uma": "uma-dpa",
    "dpa": "uma-dpa",
    "mace": "mace",
}


@pytest.mark.parametrize("family", [*ISSUE_FAMILIES, "orb:", "uma:"])
def test_a_family_names_the_environment_of_its_card(family):
    expected = ISSUE_FAMILIES[family.rstrip(":")]
    assert (
        envs.environment_of(family) == expected == model_card(f"{family.rstrip(':')}:x").environment
    )
    assert envs.environment_of(expected) == expected


def test_an_environment_name_is_itself_and_an_unknown_name_is_an_error():
    assert envs.environment_of("mace") == "mace"
    assert envs.environment_of("chgnet-0.3.0") == model_card("chgnet-0.3.0").environment == "main"
    with pytest.raises(EnvironmentSetupError, match="nofamily"):
        envs.environment_of("nofamily")


def test_env_create_a_family_builds_its_cards_environment(tmp_path):
    """``env create pet`` goes to the shared environment; it is already ready here, so the
    command says so instead of building (a fresh environment is built by ``make install-envs``)."""
    envs.require_env("orb-pet-mattersim")
    for family in ("orb", "pet", "mattersim"):
        done = mlipspace("env", "create", family, cwd=tmp_path)
        said = done.stdout + done.stderr  # the console writes to stderr
        assert f"{family}: its models run in the 'orb-pet-mattersim' environment" in said
        assert "orb-pet-mattersim: already ready" in said, said
    done = subprocess.run(
        [sys.executable, "-m", "mlipspace", "env", "create", "nofamily"],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2 and "'nofamily' is neither" in done.stdout + done.stderr


def test_models_lists_the_new_families_with_their_cards(tmp_path):
    done = mlipspace("models", cwd=tmp_path)
    rows = {
        line.split("│")[1].strip(): line for line in done.stdout.splitlines() if line.count("│") > 3
    }
    for family in ("orb", "pet", "mattersim", "uma", "dpa", "mace", "sevennet", "chgnet"):
        card = model_card(f"{family}:x")
        row = rows[f"{family}:<arg>"]
        for value in (card.architecture, card.kind, card.symmetry, card.environment):
            assert value in row, (family, value, row)
