"""Measurements of the MACE adapters, run inside the 'mace' environment by test_models_mace.py.

Usage: ``<mace env>/bin/python tests/mace_probe.py OUT_DIR``. It builds a small MACE
model, saves it to ``OUT_DIR/small.model`` with ``torch.save``, loads it back through
``mace:<path>``, and writes every number the tests assert on to ``OUT_DIR/probe.npz``
(the assertions themselves run in the main environment's pytest, which has no mace).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.build import bulk, molecule

LAYERS = ("ll", "node", "bb", "layer:0", "layer:1", "layer:2")


def structures() -> list[Atoms]:
    """Tiny test structures: a rattled Si cell (chiral, for the mirror test), NaCl, Cu, H2O."""
    si = bulk("Si", cubic=True)
    si.rattle(0.05, seed=42)
    water = molecule("H2O")
    water.cell = [12.0, 12.0, 12.0]
    water.pbc = True
    water.center()
    return [si, bulk("NaCl", "rocksalt", a=5.64), bulk("Cu"), water]


#: elements of the small test-built models
NUMBERS = [1, 6, 7, 8, 11, 14, 17, 29]


def _small(kind: str, seed: int, **extra):
    """A small MACE of ``mace.modules.<kind>`` (16x0e+16x1o, 2 interactions), seeded."""
    import torch

    from mlipspace.models.mace import import_mace

    import_mace()
    from e3nn import o3
    from mace import modules

    interaction = modules.interaction_classes["RealAgnosticResidualInteractionBlock"]
    torch.manual_seed(seed)
    model = getattr(modules, kind)(
        r_max=4.5,
        num_bessel=6,
        num_polynomial_cutoff=5,
        max_ell=2,
        interaction_cls=interaction,
        interaction_cls_first=interaction,
        num_interactions=2,
        num_elements=len(NUMBERS),
        hidden_irreps=o3.Irreps("16x0e + 16x1o"),
        MLP_irreps=o3.Irreps("8x0e"),
        avg_num_neighbors=12.0,
        atomic_numbers=NUMBERS,
        correlation=2,
        gate=torch.nn.functional.silu,
        **extra,
    )
    return model.float().eval()


def small_model(seed: int = 3):
    """A small plain MACE (not ScaleShift) with non-zero reference energies, built here."""
    return _small("MACE", seed, atomic_energies=np.linspace(-3.0, -0.5, len(NUMBERS)))


def main(out_dir: str) -> None:
    import torch

    from family_checks import save_probe, start_probe
    from mlipspace.models import get_model

    out, results, record = start_probe(out_dir)

    path = out / "small.model"
    torch.save(small_model(), path)
    adapter = get_model(f"mace:{path}")
    record["small_dims"] = adapter.layer_dims()
    record["small_metadata"] = {k: str(v) for k, v in adapter.metadata().items()}
    base = structures()
    calc = adapter.calculator(model_path=str(path))
    for s, atoms in enumerate(base):
        features, energy = adapter.forward([atoms], LAYERS)
        for layer, arrays in features.items():
            results[f"base/{s}/{layer}"] = arrays[0]
        results[f"base/{s}/energy"] = energy
        reference = atoms.copy()
        reference.calc = calc
        results[f"calc_energy/{s}"] = np.array([reference.get_potential_energy()])
        results[f"descriptors/{s}"] = calc.get_descriptors(atoms, invariants_only=True)
        results[f"n_atoms/{s}"] = np.array([len(atoms)])
    # the card says has_calculator: the diagnostics' calculator of the same names
    from mlipspace.diagnostics import calculator_for

    for key, name in (("file", f"mace:{path}"), ("random", "mace-random:0")):
        named = calculator_for(name)
        for s, atoms in enumerate(base):
            reference = atoms.copy()
            reference.calc = named
            results[f"named_calc/{key}/{s}/energy"] = np.array([reference.get_potential_energy()])
            results[f"named_calc/{key}/{s}/forces"] = reference.get_forces()
    f64 = get_model(f"mace:{path}", dtype="float64")
    for s, atoms in enumerate(base):
        features, energy = f64.forward([atoms], ["ll", "bb"])
        results[f"f64/{s}/ll"] = features["ll"][0]
        results[f"f64/{s}/bb"] = features["bb"][0]
        results[f"f64/{s}/energy"] = energy

    for key, seed in (("random0", 0), ("random0b", 0), ("random1", 1)):
        random = get_model(f"mace-random:{seed}")
        record["random_dims"] = random.layer_dims()
        features, _ = random.forward(base[:1], ["ll", "bb"])
        results[f"{key}/ll"] = features["ll"][0]
        results[f"{key}/bb"] = features["bb"][0]
    # the same seed after other random draws must not depend on the global RNG state
    torch.rand(10)
    results["random0c/ll"] = get_model("mace-random:0").forward(base[:1], ["ll"])[0]["ll"][0]

    # timing of the feature pass against the calculator's energy (+forces) on 64 atoms
    big = bulk("Si", cubic=True) * (2, 2, 2)
    big.rattle(0.05, seed=1)
    random = get_model("mace-random:0")
    random.forward([big], ["ll"])
    t0 = time.perf_counter()
    for _ in range(3):
        random.forward([big], ["ll", "bb"])
    record["seconds_features_64"] = (time.perf_counter() - t0) / 3
    rcalc = random.calculator()
    big.calc = rcalc
    big.get_potential_energy()
    t0 = time.perf_counter()
    for _ in range(3):
        big.rattle(1e-4, seed=2)
        big.get_potential_energy()
    record["seconds_calculator_64"] = (time.perf_counter() - t0) / 3

    checkpoint_cases(out, base, results, record)
    save_probe(out, results, record)


def checkpoint_cases(out: Path, base: list[Atoms], results: dict, record: dict) -> None:
    """``mace:<file>`` on the checkpoint formats users bring, and the named errors.

    A foundation-like file (a ``ScaleShiftMACE`` pickled whole with ``torch.save``, as
    ``mace_mp`` downloads them), the same weights as a state dict with its config, a
    relative and a ``~`` path, a multi-head model, and files that must be refused.
    """
    import os

    import torch
    from mace.calculators import mace_mp
    from mace.tools.scripts_utils import extract_config_mace_model

    from family_checks import load_error
    from mlipspace.models import get_model
    from mlipspace.models.mace import build_random_mace

    foundation = build_random_mace(0)
    whole = out / "foundation.model"
    torch.save(foundation, whole)
    config = extract_config_mace_model(foundation)
    torch.save({"config": config, "model": foundation.state_dict()}, out / "state.pt")
    os.environ["HOME"] = str(out)  # so that "~/foundation.model" is this file
    cwd = os.getcwd()
    os.chdir(out)
    try:
        for key, name in (
            ("whole", f"mace:{whole}"),
            ("state", "mace:state.pt"),
            ("home", "mace:~/foundation.model"),
            ("random", "mace-random:0"),
        ):
            adapter = get_model(name)
            features, energy = adapter.forward(base, ["ll", "bb", "node"])
            for layer, arrays in features.items():
                for s, x in enumerate(arrays):
                    results[f"ckpt/{key}/{s}/{layer}"] = x
            results[f"ckpt/{key}/energy"] = energy
            record[f"ckpt_metadata/{key}"] = {k: str(v) for k, v in adapter.metadata().items()}
        # the package's own loader of foundation models on the same file
        calc = mace_mp(model=str(whole), device="cpu", default_dtype="float32")
        results["ckpt/mace_mp/energy"] = np.array(
            [calc.get_potential_energy(a.copy()) for a in base]
        )

        # a two-head model (as the multi-head fine-tunes are) picks its head with @
        record["ckpt_heads"] = {}
        two = two_head_model()
        torch.save(two, out / "two.model")
        for head in ("pbe", "r2scan"):
            adapter = get_model(f"mace:two.model@{head}")
            record["ckpt_heads"][head] = adapter.head
            feats, energy = adapter.forward(base[:1], ["ll", "bb"])
            results[f"ckpt/head/{head}/ll"] = feats["ll"][0]
            results[f"ckpt/head/{head}/bb"] = feats["bb"][0]
            results[f"ckpt/head/{head}/energy"] = energy
            theirs = mace_mp(model=str(out / "two.model"), device="cpu", default_dtype="float32",
                             head=head)  # fmt: skip
            results[f"ckpt/head/{head}/calc"] = np.array(
                [theirs.get_potential_energy(base[0].copy())]
            )

        # files that must be refused, each with a named error
        torch.save(foundation.state_dict(), out / "bare.pt")
        other = extract_config_mace_model(build_random_mace(0, num_elements=10))
        torch.save({"config": other, "model": foundation.state_dict()}, out / "mismatch.pt")
        torch.save({"model_state_dict": {}, "config": 3}, out / "foreign.pth")
        (out / "notorch.model").write_text("not a checkpoint")
        record["ckpt_errors"] = {
            "missing": load_error("mace:nowhere/absent.model"),
            "bare": load_error("mace:bare.pt"),
            "mismatch": load_error("mace:mismatch.pt"),
            "foreign": load_error("mace:foreign.pth"),
            "garbage": load_error("mace:notorch.model"),
            "head": load_error("mace:two.model@pbe0"),
            "nohead": load_error("mace:foundation.model@r2scan"),
        }
    finally:
        os.chdir(cwd)


def two_head_model():
    """A small ScaleShiftMACE with two read-out heads ("pbe", "r2scan")."""
    return _small(
        "ScaleShiftMACE",
        5,
        atomic_energies=np.zeros((2, len(NUMBERS))),
        heads=["pbe", "r2scan"],
        atomic_inter_scale=[1.0, 2.0],
        atomic_inter_shift=[0.0, 0.1],
    )


if __name__ == "__main__":
    main(sys.argv[1])
