"""Model cards and the registry: built-in cards, plugin cards, and the facts read from them."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlipspace.errors import ModelError
from mlipspace.models import (
    MODEL_KINDS,
    SYMMETRIES,
    ModelCard,
    ModelSpec,
    calculator_models,
    find_card,
    fine_tune_pairs,
    model_card,
    model_specs,
    registry,
    related_by_construction,
)

REPO = Path(__file__).resolve().parents[1]


def test_every_builtin_card_is_complete():
    specs = model_specs()
    for name, spec in specs.items():
        card = spec.card
        assert card.architecture, name
        assert card.kind in MODEL_KINDS and card.symmetry in SYMMETRIES, name
        assert spec.family == card.environment, name
        if card.environment != "main":
            assert (REPO / "envs" / f"{card.environment}.txt").is_file(), name
        if card.kind == "mlip" and not spec.parametrised:
            assert card.training_data and card.level_of_theory, name
        for other in (card.fine_tuned_from, card.shared_initialisation):
            assert other is None or find_card(other) is not None, (name, other)


def test_parametrised_names_share_their_prefix_card():
    assert model_card("mace-random:3") is model_specs()["mace-random:"].card
    assert model_card("mace-random:3").kind == "control"
    assert find_card("no-such-model") is None
    with pytest.raises(ModelError, match="unknown model"):
        model_card("no-such-model")


def test_facts_read_from_the_cards():
    names = ["chgnet-0.3.0", "chgnet-r2scan", "sevennet-mf-0:PBE", "soap"]
    assert fine_tune_pairs(names) == [("chgnet-r2scan", "chgnet-0.3.0")]
    assert related_by_construction("chgnet-0.3.0", "chgnet-r2scan")
    assert related_by_construction("sevennet-mf-0:R2SCAN", "sevennet-mf-0:PBE")
    assert not related_by_construction("chgnet-0.3.0", "sevennet-0")
    assert "diep" in calculator_models() and "soap" not in calculator_models()
    assert not any(name.endswith(":") for name in calculator_models())


def test_card_rejects_unknown_kind_and_symmetry():
    with pytest.raises(ValueError, match="kind"):
        ModelCard(kind="potential")
    with pytest.raises(ValueError, match="symmetry"):
        ModelCard(symmetry="E(3)")


class _EntryPoint:
    """Stands in for an installed plugin's ``importlib.metadata`` entry point."""

    name = "fake-plugin"
    value = "fake_plugin:specs"

    def __init__(self, obj):
        self._obj = obj

    def load(self):
        return self._obj


@pytest.fixture
def plugin(monkeypatch):
    """A plugin registering two specs through the entry-point group, cards filled."""
    card = ModelCard(
        architecture="FakeNet",
        training_data="MPtrj",
        level_of_theory="PBE",
        kind="mlip",
        has_calculator=True,
        symmetry="SO(3)",
        environment="fakeenv",
    )
    specs = [
        ModelSpec(name="fakenet-base", factory=lambda *a, **k: None, card=card),
        ModelSpec(
            name="fakenet-tuned",
            factory=lambda *a, **k: None,
            card=ModelCard(
                architecture="FakeNet",
                training_data="MatPES",
                level_of_theory="r2SCAN",
                fine_tuned_from="fakenet-base",
                environment="fakeenv",
            ),
        ),
        ModelSpec(
            name="fake-control",
            factory=lambda *a, **k: None,
            card=ModelCard(architecture="FakeNet", kind="control"),
        ),
    ]
    monkeypatch.setattr(registry, "_SPECS", {})
    monkeypatch.setattr(registry, "_LOADED", False)
    monkeypatch.setattr(
        registry,
        "entry_points",
        lambda group: [_EntryPoint(lambda: specs)] if group == registry.ENTRY_POINT_GROUP else [],
    )
    return specs


def test_plugin_cards_are_read_everywhere(plugin):
    from mlipspace.platonic.claims import pair_relation
    from mlipspace.platonic.space import is_control

    assert model_card("fakenet-base").architecture == "FakeNet"
    assert model_specs()["fakenet-base"].family == "fakeenv"
    assert "chgnet-0.3.0" in model_specs()  # built-ins are still there
    assert "fakenet-base" in calculator_models() and "fakenet-tuned" not in calculator_models()
    assert fine_tune_pairs(["fakenet-base", "fakenet-tuned"]) == [("fakenet-tuned", "fakenet-base")]
    assert is_control("fake-control") and not is_control("fakenet-base")
    assert pair_relation("fakenet-base", "chgnet-0.3.0") == "same data"
    assert pair_relation("fakenet-base", "fakenet-tuned") == "different data or fidelity"


def test_plugin_giving_something_else_is_named(monkeypatch):
    monkeypatch.setattr(registry, "_SPECS", {})
    monkeypatch.setattr(registry, "_LOADED", False)
    monkeypatch.setattr(registry, "entry_points", lambda group: [_EntryPoint(["not a spec"])])
    with pytest.raises(ModelError, match="fake-plugin"):
        model_specs()


def test_controls_that_are_not_registered_models():
    from mlipspace.platonic.space import ONEHOT, SHUFFLED_PREFIX, is_control

    assert is_control(ONEHOT) and is_control(SHUFFLED_PREFIX + "sevennet-0")
    assert is_control("soap") and is_control("mace-random:0")
    assert not is_control("sevennet-0") and not is_control("an-unregistered-model")


def test_cli_lists_the_cards():
    from typer.testing import CliRunner

    import mlipspace.cli.models  # noqa: F401  (attaches the commands)
    from mlipspace.cli.app import app

    listing = CliRunner().invoke(app, ["models"], env={"COLUMNS": "300"})
    assert listing.exit_code == 0, listing.output
    row = next(line for line in listing.output.splitlines() if "chgnet-r2scan" in line)
    for text in ("CHGNet", "MP-r2SCAN / r2SCAN", "mlip", "O(3)", "main"):
        assert text in row, (text, row)
    row = next(line for line in listing.output.splitlines() if "mace-random" in line)
    assert "control" in row and "mace" in row


def test_weights_check(tmp_path):
    from mlipspace.models.torch_base import weights_check

    def missing_package():
        raise ModelError("somepackage is not installed")

    (tmp_path / "model.pt").write_text("weights")
    assert weights_check(lambda: tmp_path / "model.pt")()
    assert weights_check(lambda: tmp_path, files=["model.pt"])()
    assert not weights_check(lambda: tmp_path, files=["model.pt", "state.pt"])()
    assert not weights_check(lambda: tmp_path / "other.pt")()
    assert not weights_check(missing_package)()
    assert not weights_check(lambda: tmp_path, modules=["no_such_module_here"])()
