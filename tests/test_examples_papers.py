"""The papers' study files (examples/chorna2025.toml, examples/liwalsh2025.toml) parse and name
only registered model families, with the released checkpoint file names each loader expects.

Running them needs the downloaded checkpoints; the families' own tests run the same loaders on
random-init checkpoints.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mlipspace.models import resolve
from mlipspace.models.orb import loader_from_file_name
from mlipspace.study import load_study

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
