"""The study file's schema: valid keys (typos reported with the closest key), the layers each
stage reads, model and layer names checked before anything runs, and the template that
``mlipspace init`` writes for a user's own structures."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Sequence
from typing import Any

from .errors import MlipspaceError

#: the keys each section of a study file may hold (anything else is a typo, reported with
#: the closest valid key when the file is loaded, not when a later stage reads it)
KEYS: dict[str, tuple[str, ...]] = {
    "study": ("name", "out", "random_state", "seed"),
    "structures": ("sources", "on_error", "skip_bad"),
    "featurize": ("models", "layers", "on_unsupported", "workers", "device"),
    "compare": (
        "models",
        "layer",
        "measures",
        "n_test",
        "common_dim",
        "bootstrap",
        "confidence",
        "permutations",
        "width_control",
        "common_width",
    ),
    "cumulants": ("models", "layer", "max_order", "order_measures", "model_measures"),
    "platonic": (
        "models",
        "layer",
        "anchors",
        "anchor_model",
        "method",
        "center",
        "atoms",
        "diagnostics",
        "pca_models",
        "pca_atoms",
        "standardize",
        "anchor_input",
    ),
    "diagnostics": (
        "enabled",
        "n_symmetric",
        "n_mirror",
        "n_phonon",
        "relax_steps",
        "rattle",
        "models",
    ),
    "report": ("enabled",),
}
#: keys of ``[platonic.diagnostics]`` (the older place of ``[diagnostics]``)
DIAGNOSTICS_KEYS = ("n_symmetric", "n_mirror", "n_phonon", "relax_steps", "rattle", "models")
#: the layer each later stage reads when the study does not say (featurize computes them all)
DEFAULT_LAYERS = {"compare": "ll", "cumulants": "ll", "platonic": "node"}


#: models of the template ``mlipspace init`` writes: the anchor descriptor and two cheap,
#: offline models of different architectures
TEMPLATE_MODELS = ("soap", "chgnet-0.3.0", "sevennet-0")

_TEMPLATE = """\
# mlipspace study file for your own structures: `mlipspace run {path}` runs every stage
# below, in order: structures -> featurize -> compare -> cumulants -> platonic -> report.
# Each stage is cached in the output folder and skipped when its inputs have not changed;
# `mlipspace run {path} --force compare` redoes one stage (and the stages after it).
# Unknown keys are reported when the file is loaded, with the closest valid key.

[study]
name = "my-study"
out = "results"               # output folder (relative to the working directory)
random_state = 0              # seed of every split, sample and anchor choice

[structures]
# Files, globs, folders or ASE databases (folders skip .txt, .csv, .png, .py ... files);
# "demo:small" / "demo:default" is the embedded demo set.
sources = {sources}
skip_bad = true               # list unreadable files and bad structures instead of stopping

[featurize]
# `mlipspace models` lists every model and the elements it supports.
models = {models}
# layers = ["ll", "node"]     # default: the layers the stages below read
on_unsupported = "skip"       # skip (and list) structures a model cannot take; "error" stops

[compare]
layer = "ll"
measures = ["gfre", "lfre", "cka", "mknn"]
n_test = 500                  # test atoms (capped at half the atoms of the data)

[platonic]
layer = "node"
anchors = 256                 # capped, with a note, at the distinct atoms of the data
anchor_model = "soap"
{diagnostics}
[report]
enabled = true
"""

_DIAGNOSTICS_OFF = """\
# Failure diagnostics (relaxations, phonons, mirror images: they run the models again) are
# off; `mlipspace init --diagnostics` writes a study with them, or add:
# [diagnostics]
# n_symmetric = 3             # high-symmetry crystals (chosen by spglib) relaxed per model
"""

_DIAGNOSTICS_ON = """\
[diagnostics]
# They run the models again: orbit spread of stored high-symmetry structures (chosen by
# spglib: cubic cells of up to 8 atoms), spread as one site moves, mirror-image gap,
# relaxation and phonons; a diagnostic with no suitable structure is skipped with a note.
n_symmetric = 3               # high-symmetry crystals relaxed per model
n_mirror = 2                  # low-symmetry structures mirrored per model
n_phonon = 1                  # crystals whose phonons are computed per model
relax_steps = 100
"""


def own_data_study_text(
    sources: Sequence[str] = ("structures/",),
    models: Sequence[str] = TEMPLATE_MODELS,
    diagnostics: bool = False,
    path: str = "study.toml",
) -> str:
    """A commented study template for the user's own structures (``mlipspace init``).

    Diagnostics are off unless ``diagnostics`` is true (they run every model again).
    """
    return _TEMPLATE.format(
        path=path,
        sources=json.dumps(list(sources)),
        models=json.dumps(list(models)),
        diagnostics=_DIAGNOSTICS_ON if diagnostics else _DIAGNOSTICS_OFF,
    )


def did_you_mean(name: str, valid: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest valid name, or an empty string."""
    close = difflib.get_close_matches(name, list(valid), n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""


def unknown_keys(config: dict[str, Any]) -> list[str]:
    """Every unknown section and key of a parsed study, each with the closest valid name."""
    problems = []
    unknown = sorted(set(config) - set(KEYS))
    if unknown:
        hints = "".join(did_you_mean(name, KEYS) for name in unknown)
        problems.append(f"unknown sections {unknown}{hints}; known: {list(KEYS)}")
    for section, body in config.items():
        if section not in KEYS:
            continue
        if not isinstance(body, dict):
            problems.append(f"[{section}] must be a table, not {type(body).__name__}")
            continue
        for key in body:
            if key not in KEYS[section]:
                problems.append(
                    f"unknown key {key!r} in [{section}]{did_you_mean(key, KEYS[section])}; "
                    f"valid keys: {', '.join(KEYS[section])}"
                )
    diagnostics = config.get("platonic", {}).get("diagnostics")
    if isinstance(diagnostics, dict):
        for key in diagnostics:
            if key not in DIAGNOSTICS_KEYS:
                problems.append(
                    f"unknown key {key!r} in [platonic.diagnostics]"
                    f"{did_you_mean(key, DIAGNOSTICS_KEYS)}; valid keys: "
                    + ", ".join(DIAGNOSTICS_KEYS)
                )
    return problems


def featurize_layers(config: dict[str, Any]) -> list[str]:
    """The layers the featurize stage computes: ``[featurize] layers`` when given, otherwise
    every layer the later stages of the study read (``ll`` for compare and cumulants,
    ``node`` for platonic, unless they name another)."""
    given = config.get("featurize", {}).get("layers")
    if given:
        return list(given)
    needed = [
        config[stage].get("layer", default)
        for stage, default in DEFAULT_LAYERS.items()
        if stage in config
    ]
    if config.get("diagnostics", {}).get("enabled", True) and "diagnostics" in config:
        # the diagnostics project on the Platonic space
        needed.append(config.get("platonic", {}).get("layer", DEFAULT_LAYERS["platonic"]))
    return list(dict.fromkeys(needed or ["ll"]))


def missing_layers(config: dict[str, Any]) -> list[str]:
    """Later stages that read a layer ``[featurize] layers`` does not compute."""
    computed = featurize_layers(config)
    return [
        f"[{stage}] reads layer {layer!r} but [featurize] layers = {computed}: add it there "
        f"(or set layer = {computed[0]!r} in [{stage}])"
        for stage, default in DEFAULT_LAYERS.items()
        if stage in config
        for layer in [config[stage].get("layer", default)]
        if layer not in computed
    ]


def check_model_names(names: Iterable[str], layers: Iterable[str] = ()) -> list[str]:
    """Every unknown model name and every layer a named model lacks, each with a "did you
    mean"; checked from the registry's specs, before any model is loaded."""
    from .models.registry import available_models, model_specs, resolve

    specs = model_specs()
    known = [n.removesuffix("<arg>") for n in available_models()]
    problems = []
    for name in names:
        try:
            spec, _ = resolve(name)
        except MlipspaceError:
            problems.append(f"unknown model {name!r}{did_you_mean(name, known)}")
            continue
        offered = spec.layers or specs[spec.name].layers
        for layer in layers:
            if offered and layer not in offered:
                problems.append(
                    f"{name} has no layer {layer!r}{did_you_mean(layer, offered)}; it offers "
                    + ", ".join(n for n in offered if not n.startswith("layer:"))
                    + (", layer:<i>" if any(n.startswith("layer:") for n in offered) else "")
                )
    if problems and any(p.startswith("unknown model") for p in problems):
        problems.append("`mlipspace models` lists every model")
    return problems


def check_stored_names(
    held: Iterable[tuple[str, str]], names: Iterable[str], layer: str, store: str
) -> list[str]:
    """Every model of ``names`` whose ``layer`` the store does not hold, with a "did you
    mean" among the models it does hold and the layers it holds of that model.

    A store is the authority for the commands that only read it (compare, cumulants,
    platonic): its models may be plugins or names no registry knows.
    """
    held = set(held)
    models = sorted({model for model, _ in held})
    problems = []
    for name in dict.fromkeys(names):
        if (name, layer) in held:
            continue
        layers = sorted(lay for model, lay in held if model == name)
        if layers:
            problems.append(
                f"{store} holds no {layer!r} features of {name} (it holds: {', '.join(layers)}); "
                f"featurize with --layers {layer} or pass --layer {layers[0]}"
            )
        else:
            problems.append(
                f"{store} holds no features of {name!r}{did_you_mean(name, models)} "
                f"(it holds: {', '.join(models) or 'nothing'})"
            )
    return problems
