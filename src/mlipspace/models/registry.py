"""Registry of model specs: built-in families plus the ``mlipspace.models`` entry points."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from importlib.metadata import entry_points

from ..errors import ModelError
from .base import ModelAdapter, ModelCard, ModelSpec
from .rotations import split_rotation_suffix, with_rotation_suffix

# Built-in family modules; each defines ``SPECS: list[ModelSpec]`` and imports its
# heavy dependencies (torch, the model package) only inside the factories.
BUILTIN_FAMILY_MODULES = (
    "mlipspace.models.chgnet",
    "mlipspace.models.sevennet",
    "mlipspace.models.diep",
    "mlipspace.models.hienet",
    "mlipspace.models.mace",
    "mlipspace.models.soap",
    "mlipspace.models.orb",
    "mlipspace.models.pet",
    "mlipspace.models.mattersim",
    "mlipspace.models.uma",
    "mlipspace.models.dpa",
)

ENTRY_POINT_GROUP = "mlipspace.models"

_SPECS: dict[str, ModelSpec] = {}
_LOADED = False


def register(spec: ModelSpec) -> None:
    """Add a model spec; a later registration of the same name replaces the earlier one."""
    _SPECS[spec.name] = spec


def unregister(name: str) -> None:
    """Remove a registered model spec (no error when the name is not registered)."""
    _SPECS.pop(name, None)


def _load_all() -> None:
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    for module_name in BUILTIN_FAMILY_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:  # family module not written yet
                continue
            raise
        for spec in module.SPECS:
            register(spec)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        obj = ep.load()
        specs = obj() if callable(obj) and not isinstance(obj, ModelSpec) else obj
        if isinstance(specs, ModelSpec):
            specs = [specs]
        for spec in specs:
            if not isinstance(spec, ModelSpec):
                raise ModelError(
                    f"entry point {ep.name!r} ({ep.value}) gave {spec!r}, not a ModelSpec"
                )
            register(spec)


def model_specs() -> dict[str, ModelSpec]:
    """All registered specs by name (parametrised names end in ``":"``)."""
    _load_all()
    return dict(_SPECS)


def available_models() -> list[str]:
    """Names of every registered model; parametrised ones are listed as ``prefix:<arg>``."""
    return sorted(
        name + "<arg>" if spec.parametrised else name for name, spec in model_specs().items()
    )


def resolve(name: str) -> tuple[ModelSpec, str | None]:
    """The spec serving ``name`` and the argument after ``":"`` for parametrised names.

    A rotational-averaging suffix ``+rot<N>[-<random_state>]`` (see
    :mod:`mlipspace.models.rotations`) is not part of the argument.
    """
    name, _, _ = split_rotation_suffix(name)
    specs = model_specs()
    if name in specs and not specs[name].parametrised:
        return specs[name], None
    if ":" in name:
        prefix, argument = name.split(":", 1)
        spec = specs.get(prefix + ":")
        if spec is not None:
            return spec, argument
    raise ModelError(
        f"unknown model {name!r}; known models: {', '.join(available_models()) or '(none)'}"
    )


def get_model(name: str, dtype: str = "float32", device: str = "cpu") -> ModelAdapter:
    """Load the model registered as ``name`` (rotationally averaged with ``+rot<N>``)."""

    def load(base: str) -> ModelAdapter:
        spec, argument = resolve(base)
        adapter = spec.factory(argument, dtype=dtype, device=device)
        adapter.name = base
        return adapter

    return with_rotation_suffix(name, load)


def model_card(name: str) -> ModelCard:
    """The card of the model registered as ``name`` (parametrised names share their prefix's).

    Raises
    ------
    ModelError
        If no registered spec serves ``name``.
    """
    spec, _ = resolve(name)
    return spec.card


def find_card(name: str) -> ModelCard | None:
    """The card of ``name``, or ``None`` when no registered spec serves it.

    For analyses that meet names which are not registered models: the Platonic
    analysis's own baselines, or models of a store whose plugin is not installed here.
    """
    try:
        return model_card(name)
    except ModelError:
        return None


def fine_tune_pairs(names: Sequence[str]) -> list[tuple[str, str]]:
    """``(fine-tuned, base)`` pairs among ``names``, from the cards' ``fine_tuned_from``."""
    present = set(names)
    pairs = []
    for name in names:
        card = find_card(name)
        if card is not None and card.fine_tuned_from in present:
            pairs.append((name, card.fine_tuned_from))
    return pairs


def related_by_construction(a: str, b: str) -> bool:
    """Whether one of ``a``, ``b`` was fine-tuned from, or shares weights with, the other."""
    for x, y in ((a, b), (b, a)):
        card = find_card(x)
        if card is not None and y in (card.fine_tuned_from, card.shared_initialisation):
            return True
    return False


def calculator_models() -> tuple[str, ...]:
    """Registered (non-parametrised) names whose card says ``has_calculator``."""
    return tuple(
        name
        for name, spec in model_specs().items()
        if spec.card.has_calculator and not spec.parametrised
    )
