"""The papers' study files (examples/chorna2025.toml, examples/liwalsh2025.toml) parse and name
only registered model families, with the released checkpoint file names each loader expects.

Running them needs the downloaded checkpoints; the end-to-end test puts a random-init
checkpoint, built with each family's own package in its worker environment, at every
placeholder path and runs the study as written.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from families_probe import structures
from mlipspace.models import resolve
from mlipspace.models.orb import loader_from_file_name
from mlipspace.study import load_study, run_study

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
PAPERS = ("chorna2025.toml", "liwalsh2025.toml")


@pytest.mark.parametrize("paper", PAPERS)
def test_study_parses_and_every_model_is_registered(paper):
    study = load_study(EXAMPLES / paper)
    models = study.section("featurize")["models"]
    assert models
    for name in models:
        resolve(name)  # raises ModelError for an unknown family


def test_chorna_lists_the_pet_models_of_the_paper():
    models = load_study(EXAMPLES / "chorna2025.toml").section("featurize")["models"]
    pet = [Path(m.split(":", 1)[1]).name for m in models if m.startswith("pet:")]
    assert "pet-mad-v1.0.2.ckpt" in pet
    assert {f"pet-omat-{s}-v1.0.0.ckpt" for s in ("l", "m", "s", "xs")} <= set(pet)


def test_liwalsh_orb_files_name_their_loaders():
    models = load_study(EXAMPLES / "liwalsh2025.toml").section("featurize")["models"]
    loaders = sorted(loader_from_file_name(m) for m in models if m.startswith("orb:"))
    assert loaders == ["orb_v3_conservative_inf_omat", "orb_v3_direct_inf_omat"]


# -- the studies run end to end on random-init checkpoints ------------------------------------

TESTS = Path(__file__).resolve().parent


@dataclass(frozen=True)
class CheckpointBuilder:
    """How a family's random-init checkpoint is built with the package's own code.

    ``module`` (a file in ``tests/`` or an installed module) is imported in the family's
    worker environment (the one its model card names) and ``call`` evaluated there with
    ``out`` (the folder) bound; it gives a path or a dict of paths. ``pick`` chooses, from a model entry
    (``family:<path>[@task]``), which of those paths stands in for its file.
    """

    module: str
    call: str
    pick: Callable[[str], str] = lambda model: "ckpt"


#: one entry per family: adding a family to the papers' studies is one line here
CHECKPOINT_BUILDERS = {
    "orb": CheckpointBuilder(
        "families_probe",
        "build_orb(out)",
        lambda model: "direct" if "direct" in model else "conservative",
    ),
    "pet": CheckpointBuilder("families_probe", "build_pet(out)"),
    "mattersim": CheckpointBuilder("families_probe", "build_mattersim(out)"),
    # a ScaleShiftMACE pickled whole, as mace_mp downloads the foundation models
    "mace": CheckpointBuilder(
        "mlipspace.models.mace", "saved(build_random_mace(0), out / 'm.model')"
    ),
    "uma": CheckpointBuilder("uma_probe", "build_checkpoint(out / 'uma.pt')"),  # tasks omat, omol
    "dpa": CheckpointBuilder(
        "dpa_probe",
        "{'ckpt': build_checkpoint(out / 'dpa.pt'),"
        " 'heads': build_checkpoint(out / 'heads.pt', seed=1, heads=HEADS)}",
        lambda model: "heads" if "@" in model else "ckpt",
    ),
    # the checkpoint sevenn's wheel ships (SevenNet-0), as a user's file: real weights, as in
    # tests/test_models_sevennet.py
    "sevennet": CheckpointBuilder("sevenn.util", "copied(pretrained_name_to_path('7net-0'), out)"),
}

_BUILD = """
import json, sys, warnings
from pathlib import Path
sys.path.insert(0, {tests!r})
warnings.simplefilter("ignore")
from {module} import *
out = Path({out!r})
HEADS = ("Omat24", "MPtrj")


def saved(obj, path):
    import torch
    torch.save(obj, path)
    return path


def copied(source, folder):
    import shutil
    return shutil.copy(source, folder)


built = {call}
built = built if isinstance(built, dict) else {{"ckpt": built}}
print(json.dumps({{key: str(path) for key, path in built.items()}}))
"""


def build_checkpoints(family: str, out: Path) -> dict[str, Path]:
    """Random-init checkpoints of ``family``, built in its worker environment under ``out``."""
    from mlipspace.errors import EnvironmentSetupError
    from mlipspace.featurization import envs

    builder = CHECKPOINT_BUILDERS[family]
    environment = envs.environment_of(family)
    try:
        python = (
            sys.executable if environment == envs.MAIN_FAMILY else envs.require_env(environment)
        )
    except EnvironmentSetupError as exc:
        pytest.fail(f"building {family} checkpoints needs its environment: {exc}", pytrace=False)
    out.mkdir(parents=True, exist_ok=True)
    code = _BUILD.format(tests=str(TESTS), module=builder.module, out=str(out), call=builder.call)
    done = subprocess.run(
        [str(python), "-c", code],
        capture_output=True,
        text=True,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
        timeout=1800,
    )
    assert done.returncode == 0, f"building {family} checkpoints failed:\n{done.stderr[-4000:]}"
    return {key: Path(path) for key, path in json.loads(done.stdout.splitlines()[-1]).items()}


def small_structures() -> list:
    """Eight small rattled structures of H, O, Na, Si, Cl (elements every family's
    random-init checkpoint knows): 59 atoms."""
    from ase.build import bulk

    out = [a for a in structures() if set(a.get_chemical_symbols()) <= {"H", "O", "Na", "Si", "Cl"}]
    for seed in range(5):
        atoms = bulk("Si", cubic=True) if seed % 2 else bulk("NaCl", "rocksalt", a=5.64, cubic=True)
        atoms.rattle(0.08, seed=10 + seed)
        out.append(atoms)
    return out


N_ATOMS = sum(len(atoms) for atoms in small_structures())


def family_of(model: str) -> str | None:
    """The family prefix of a ``family:<path>`` entry (``None`` for a plain name)."""
    return model.split(":", 1)[0] if ":" in model else None


def checkpoint_of(model: str) -> str:
    """The checkpoint path of ``family:<path>[@task]``."""
    return model.split(":", 1)[1].split("@", 1)[0]


def substitute_checkpoints(models: list[str], folder: Path, built: dict[str, dict]) -> None:
    """Put a random-init checkpoint at each placeholder path of ``models`` (relative to
    ``folder``), built once per family, so the study file's model names run as written."""
    for model in models:
        family = family_of(model)
        if family is None:
            continue
        assert family in CHECKPOINT_BUILDERS, f"no random-init builder for {model!r}: add one"
        if family not in built:
            built[family] = build_checkpoints(family, folder / "built" / family)
        target = folder / checkpoint_of(model)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(built[family][CHECKPOINT_BUILDERS[family].pick(model)], target)


@pytest.fixture(scope="module")
def built_checkpoints():
    """Checkpoints built so far, by family (shared by both studies)."""
    return {}


@pytest.mark.models
@pytest.mark.parametrize("paper", PAPERS)
def test_study_runs_end_to_end_on_random_init_checkpoints(
    paper, tmp_path, monkeypatch, built_checkpoints
):
    """Every stage of the paper's study (plus cumulants and the report) runs on the study's
    own model names, each placeholder file replaced by a random-init checkpoint."""
    from ase.io import write

    from mlipspace.results import ResultsFolder
    from mlipspace.store import FeatureStore

    study = load_study(EXAMPLES / paper)
    models = study.section("featurize")["models"]
    substitute_checkpoints(models, tmp_path, built_checkpoints)
    monkeypatch.chdir(tmp_path)  # the study's paths are relative, as a user runs it
    write(tmp_path / "small.extxyz", small_structures())
    config = study.config
    config["structures"]["sources"] = ["small.extxyz"]
    config["study"]["out"] = "results"
    trained = [m for m in models if m != "soap"]
    config.setdefault("compare", {"layer": config["featurize"]["layers"][0]})
    config["compare"]["n_test"] = 20
    layer = config["compare"]["layer"]
    config["cumulants"] = {"models": trained[:2], "layer": layer, "max_order": 2}
    if "platonic" in config:
        config["platonic"].update(anchors=8, atoms=40, pca_atoms=40)
    config["report"] = {}
    out = run_study(study)

    results = ResultsFolder(out)
    info = FeatureStore(results.store_path).info()
    for model in models:
        for stored_layer in config["featurize"]["layers"]:
            rows = info[(info.model == model) & (info.layer == stored_layer)]
            assert len(rows) == 1 and rows.atoms.iloc[0] == N_ATOMS, (model, stored_layer, info)
    tables = dict(results.compare.tables())
    assert tables, "no compare table"
    for table in tables.values():
        assert set(table.source) == set(trained) == set(table.target)
        assert table.value.notna().all()
    assert any(results.cumulants.folder.rglob("*.csv"))
    if "platonic" in config:
        assert any(results.platonic.folder.rglob("*.csv"))
    assert (out / "summary.md").is_file()
    assert set(json.loads((out / "stages.json").read_text())) >= {"featurize", "compare", "report"}
