"""Measurements of the Orb, PET and MatterSim adapters, run inside their worker environment.

Usage: ``<env>/bin/python tests/families_probe.py FAMILY OUT_DIR`` with FAMILY one of
``orb``, ``pet``, ``mattersim``. It builds random-init checkpoints with the package's own
code, saves them to ``OUT_DIR`` and loads them back through ``<family>:<path>`` (the
loader a real checkpoint takes), then writes every number the tests assert on to
``OUT_DIR/probe.npz`` and ``OUT_DIR/probe.json``. The assertions run in the main
environment's pytest (``tests/test_models_{orb,pet,mattersim}.py``), which also loads the
saved checkpoints through ``mlipspace.featurize`` and its worker.

Importing this module is light (numpy, ase, scipy): the test files run it through
``family_checks.probe_fixture`` and use :func:`structures`.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.build import bulk, molecule

from model_contract_probe import boxed_water, rattled_si, transformed

ENV = "orb-pet-mattersim"
LAYERS = ("ll", "node", "bb", "layer:0", "layer:1")
#: elements of :func:`structures` (H, O, Na, Si, Cl, Ti, Sr)
ELEMENTS = [1, 8, 11, 14, 17, 22, 38]


def structures() -> list[Atoms]:
    """Rattled Si (8), NaCl (8), H2O in a 10 A box (3), SrTiO3 (5): varied, chiral."""
    nacl = bulk("NaCl", "rocksalt", a=5.64, cubic=True)
    nacl.rattle(0.05, seed=2)
    sto = Atoms(
        "SrTiO3",
        scaled_positions=[[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]],
        cell=np.eye(3) * 3.905,
        pbc=True,
    )
    sto.rattle(0.05, seed=4)
    return [rattled_si(), nacl, boxed_water(), sto]


# -- random-init checkpoints built with each package's own code --------------------------


def build_orb(out: Path) -> dict[str, Path]:
    """Released-size Orb-v3 conservative and direct models with seeded random weights."""
    import torch
    from orb_models.forcefield import pretrained
    from orb_models.forcefield.atomic_system import SystemConfig

    paths = {}
    for kind in ("conservative", "direct"):
        torch.manual_seed(0)
        build = getattr(pretrained, f"orb_v3_{kind}_architecture")
        model = build(device="cpu", system_config=SystemConfig(radius=6.0, max_num_neighbors=120))
        paths[kind] = out / f"orb-v3-{kind}-inf-omat-random.ckpt"
        torch.save(model.state_dict(), paths[kind])
    state = torch.load(paths["conservative"], weights_only=True)
    state.pop(next(k for k in state if k.startswith("model.gnn_stacks.4.")))
    paths["broken"] = out / "orb-broken.ckpt"
    torch.save(state, paths["broken"])
    return paths


def build_pet(out: Path, elements: list[int] | None = None) -> dict[str, Path]:
    """metatrain's default PET hypers, random weights; its .ckpt and the exported .pt."""
    import torch
    from metatrain.pet import PET
    from metatrain.utils.architectures import get_default_hypers
    from metatrain.utils.data import DatasetInfo
    from metatrain.utils.data.target_info import get_energy_target_info

    torch.manual_seed(0)
    info = DatasetInfo(
        length_unit="Angstrom",
        atomic_types=sorted(elements or ELEMENTS),
        targets={"energy": get_energy_target_info("energy", {"quantity": "energy", "unit": "eV"})},
    )
    model = PET(get_default_hypers("pet")["model"], info)
    paths = {"ckpt": out / "pet-random.ckpt", "pt": out / "pet-random.pt"}
    torch.save(model.get_checkpoint(), paths["ckpt"])
    model.export().save(str(paths["pt"]))
    broken = model.get_checkpoint()
    for weights in (broken["model_state_dict"], broken["best_model_state_dict"]):
        weights.pop(next(k for k in weights if "gnn_layers" in k))
    paths["broken"] = out / "pet-broken.ckpt"
    torch.save(broken, paths["broken"])
    return paths


def build_mattersim(out: Path) -> dict[str, Path]:
    """mattersim's default M3GNet (the v1-1M size), random weights, saved by Potential."""
    import torch
    from mattersim.forcefield.m3gnet.m3gnet import M3Gnet
    from mattersim.forcefield.potential import Potential

    torch.manual_seed(0)
    paths = {"ckpt": out / "mattersim-random.pth", "broken": out / "mattersim-broken.pth"}
    Potential(M3Gnet(device="cpu"), device="cpu").save(str(paths["ckpt"]))
    checkpoint = torch.load(paths["ckpt"], weights_only=False)
    checkpoint["model"].pop(next(k for k in checkpoint["model"] if "graph_conv" in k))
    torch.save(checkpoint, paths["broken"])
    return paths


BUILDERS = {"orb": build_orb, "pet": build_pet, "mattersim": build_mattersim}


# -- measurements ------------------------------------------------------------------------


def measure(name: str, results: dict[str, np.ndarray], prefix: str) -> dict[str, Any]:
    """Contract and symmetry numbers of the model ``name``, stored under ``prefix/``."""
    from scipy.spatial.transform import Rotation

    from mlipspace.models import get_model

    adapter = get_model(name)
    record: dict[str, Any] = {"dims": adapter.layer_dims(), "name": adapter.name}
    record["metadata"] = json.loads(json.dumps(adapter.metadata(), default=str))
    base = structures()
    layers = [layer for layer in LAYERS if layer in record["dims"]]
    batch, energies = adapter.forward(base, layers)
    single = [adapter.forward([a], layers) for a in base]
    reverse = adapter.compute(base[::-1], layers)
    rng = np.random.default_rng(0)
    rotation = Rotation.random(random_state=7).as_matrix()
    calc = adapter.calculator()
    for s, atoms in enumerate(base):
        perm = rng.permutation(len(atoms))
        results[f"{prefix}/perm/{s}"] = perm
        permuted = adapter.compute([transformed(atoms, np.eye(3), np.zeros(3), perm)], layers)
        rotated = adapter.compute(
            [transformed(atoms, rotation, rng.normal(size=3) * 3.0, perm)], layers
        )
        mirror = np.diag([1.0, 1.0, -1.0]) @ rotation
        mirrored = adapter.compute([transformed(atoms, mirror, np.zeros(3), perm)], layers)
        for layer in layers:
            results[f"{prefix}/batch/{s}/{layer}"] = batch[layer][s]
            results[f"{prefix}/single/{s}/{layer}"] = single[s][0][layer][0]
            results[f"{prefix}/reverse/{s}/{layer}"] = reverse[layer][len(base) - 1 - s]
            results[f"{prefix}/permuted/{s}/{layer}"] = permuted[layer][0]
            results[f"{prefix}/rotated/{s}/{layer}"] = rotated[layer][0]
            results[f"{prefix}/mirrored/{s}/{layer}"] = mirrored[layer][0]
        results[f"{prefix}/energy/{s}"] = np.array([energies[s], single[s][1][0]])
        reference = atoms.copy()
        reference.calc = calc
        results[f"{prefix}/calc_energy/{s}"] = np.array([reference.get_potential_energy()])
    try:
        wide = get_model(name, dtype="float64").compute(base, ["ll"])
    except Exception as exc:  # MatterSim is float32 only: the test checks the error
        record["float64_error"] = f"{type(exc).__name__}: {exc}"
    else:
        for s in range(len(base)):
            results[f"{prefix}/float64/{s}/ll"] = wide["ll"][s]
    return record


def measure_averaging(name: str, results: dict[str, np.ndarray], prefix: str) -> dict[str, Any]:
    """Rotation sensitivity with and without ``+rot<N>`` averaging."""
    from mlipspace.models import get_model
    from mlipspace.models.rotations import rotation_sensitivity

    atoms = structures()[0]
    record = {}
    for n in (0, 4, 16):
        adapter = get_model(name if n == 0 else f"{name}+rot{n}-1")
        record[f"sensitivity/{n}"] = rotation_sensitivity(
            adapter, ("ll",), n_rotations=3, random_state=99, structure=atoms
        )["ll"]
        if n:
            record[f"name/{n}"] = adapter.name
            record[f"metadata/{n}"] = json.loads(json.dumps(adapter.metadata(), default=str))
    one = get_model(f"{name}+rot1-5").compute([atoms], ["ll"])["ll"][0]
    results[f"{prefix}/rot1"] = one
    return record


def measure_bundled_pet(results: dict[str, np.ndarray]) -> dict[str, Any]:
    """Every PET checkpoint metatrain ships for its tests (one per format version) loads
    through ``pet:<file.ckpt.gz>``; its feature pass gives the calculator's energy."""
    import metatrain

    from mlipspace.models import get_model

    folder = Path(metatrain.__file__).parent / "pet" / "tests" / "checkpoints"
    water = molecule("H2O")
    water.cell, water.pbc = np.eye(3) * 8.0, True
    water.center()
    record = {}
    for path in sorted(folder.glob("*.ckpt.gz")):
        adapter = get_model(f"pet:{path}")
        features, energy = adapter.forward([water], ["ll", "bb"])
        reference = water.copy()
        reference.calc = adapter.calculator()
        results[f"bundled/{path.name}/ll"] = features["ll"][0]
        results[f"bundled/{path.name}/energy"] = np.array(
            [energy[0], reference.get_potential_energy()]
        )
        record[path.name] = adapter.layer_dims()
    return record


def main(family: str, out_dir: str) -> None:
    # metatensor's TorchScript operations fail to compile once torch_geometric (MatterSim)
    # is imported; this process builds every family's checkpoint, so metatomic goes first
    import metatomic.torch  # noqa: F401

    from family_checks import load_error, save_probe, start_probe

    out, results, record = start_probe(out_dir)
    paths = BUILDERS[family](out)
    record["paths"] = {k: str(v) for k, v in paths.items()}
    names = {k: f"{family}:{p}" for k, p in paths.items() if k != "broken"}
    for key, name in names.items():
        record[key] = measure(name, results, key)
    if family == "pet":
        record["bundled"] = measure_bundled_pet(results)
    first = next(iter(names.values()))
    record["averaging"] = measure_averaging(first, results, "averaging")
    others = {f: f"{family}:{p}" for f, p in _other_family_files(out, family).items()}
    record["errors"] = {
        "missing": load_error(f"{family}:{out}/does-not-exist.ckpt"),
        "broken": load_error(f"{family}:{paths['broken']}"),
        **{f"wrong/{f}": load_error(n) for f, n in others.items()},
    }
    # a path relative to the working directory and one under ~ load the same file
    os.chdir(out)
    rel = next(iter(paths.values())).name
    record["relative"] = _load(f"{family}:{rel}").metadata()["checkpoint_sha256"]
    os.environ["HOME"] = str(out)
    record["home"] = _load(f"{family}:~/{rel}").metadata()["checkpoint_sha256"]
    save_probe(out, results, record)


def _load(name: str) -> Any:
    from mlipspace.models import get_model

    return get_model(name)


def _other_family_files(out: Path, family: str) -> dict[str, Path]:
    """Checkpoints of the other two families (built here) for the wrong-family errors."""
    files = {}
    for other, build in BUILDERS.items():
        if other != family:
            folder = out / f"other-{other}"
            folder.mkdir(exist_ok=True)
            built = build(folder)
            files[other] = built.get("ckpt") or built["conservative"]
    return files


if __name__ == "__main__":
    try:
        main(sys.argv[1], sys.argv[2])
    except Exception:
        traceback.print_exc()
        sys.exit(1)
