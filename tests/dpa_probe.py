"""Measurements of ``dpa:<checkpoint>``, run inside the 'uma-dpa' environment by test_models_dpa.py.

Usage: ``<uma-dpa env>/bin/python tests/dpa_probe.py OUT_DIR``. It builds small random-init
DPA-3 models with deepmd-kit's own code (``deepmd.pt.model.model.get_model`` on
``model_args``-checked parameters, saved as ``{"model": ModelWrapper.state_dict()}`` as
``dp --pt train`` saves its checkpoints; a two-head multi-task one; a frozen ``.pth`` made
by ``dp --pt freeze``'s function), loads them through ``dpa:<path>`` and writes the
numbers the tests assert on to ``OUT_DIR/probe.npz`` and ``OUT_DIR/probe.json``.
"""

from __future__ import annotations

import copy
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

TYPE_MAP = ["H", "C", "N", "O", "Na", "Si", "Cl", "Cu"]
LAYERS = ("ll", "node", "bb", "layer:0", "layer:1", "layer:2")


def params(
    n_dim: int = 32,
    nlayers: int = 2,
    neuron: int = 48,
    e_dim: int = 16,
    a_dim: int = 8,
    n_hidden: int = 2,
    type_map: list[str] | None = None,
) -> dict:
    """DPA-3 hyper-parameters of the released model's form (test size by default)."""
    repflow = {
        "n_dim": n_dim, "e_dim": e_dim, "a_dim": a_dim, "nlayers": nlayers, "e_rcut": 6.0,
        "e_rcut_smth": 5.3, "e_sel": 120, "a_rcut": 4.0, "a_rcut_smth": 3.5, "a_sel": 30,
        "axis_neuron": 4, "update_angle": True, "update_style": "res_residual",
        "update_residual": 0.1, "update_residual_init": "const", "smooth_edge_update": True,
    }  # fmt: skip
    return {
        "type_map": list(type_map or TYPE_MAP),
        "descriptor": {"type": "dpa3", "repflow": repflow, "activation_function": "silut:10.0",
                       "use_tebd_bias": False, "precision": "float32",
                       "concat_output_tebd": False},
        "fitting_net": {"neuron": [neuron] * n_hidden, "resnet_dt": True, "precision": "float32",
                        "activation_function": "silut:10.0", "seed": 1},
    }  # fmt: skip


def _checked(raw: dict) -> dict:
    from deepmd.utils.argcheck import model_args

    spec = model_args()
    normal = spec.normalize_value(copy.deepcopy(raw), trim_pattern="_*")
    spec.check_value(normal, strict=True)
    return normal


def build_checkpoint(path: Path, seed: int = 0, heads: tuple[str, ...] = (), **sizes: Any) -> Path:
    """A random-init DPA-3 ``.pt``; with ``heads``, a multi-task one (one model per head).

    ``sizes`` go to :func:`params` (the benchmark builds the released form's size).
    """
    import torch

    from mlipspace.models.dpa import import_deepmd

    import_deepmd()
    from deepmd.pt.model.model import get_model
    from deepmd.pt.train.wrapper import ModelWrapper

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if not heads:
            p = _checked(params(**sizes))
            wrapper = ModelWrapper(get_model(copy.deepcopy(p)), model_params=p)
        else:
            per_head = {h: _checked(params(**sizes)) for h in heads}
            models = {h: get_model(copy.deepcopy(p)) for h, p in per_head.items()}
            wrapper = ModelWrapper(models, model_params={"model_dict": per_head})
    torch.save({"model": wrapper.state_dict()}, path)
    return path


def main(out_dir: str) -> None:
    import torch

    from family_checks import load_error, save_probe, start_probe
    from mlipspace.models import get_model
    from model_contract_probe import contract_structures

    out, results, record = start_probe(out_dir)
    base = contract_structures()
    record["n_atoms"] = [len(a) for a in base]
    path = build_checkpoint(out / "dpa-small.pt")

    adapter = get_model(f"dpa:{path}")
    record["dims"] = adapter.layer_dims()
    record["metadata"] = {k: str(v) for k, v in adapter.metadata().items()}
    for layer, arrays in adapter.compute(base, LAYERS).items():
        for s, x in enumerate(arrays):
            results[f"pt/{s}/{layer}"] = x

    # deepmd's own (deprecated) per-output API and its ASE calculator on the same file
    evaluator = adapter.evaluator
    calc = adapter.calculator()
    for s, atoms in enumerate(base):
        types = adapter.types(atoms)
        cell = atoms.cell.array.reshape(1, 9)
        results[f"descriptor/{s}"] = evaluator.eval_descriptor(atoms.positions[None], cell, types)[
            0
        ]
        results[f"fitting/{s}"] = evaluator.eval_fitting_last_layer(
            atoms.positions[None], cell, types
        )[0]
        atoms = atoms.copy()
        atoms.calc = calc
        results[f"calc/{s}/energy"] = np.array([atoms.get_potential_energy()])

    # a frozen TorchScript model of the same weights
    from deepmd.pt.entrypoints.main import freeze

    freeze(model=str(path), output=str(out / "dpa-small.pth"))
    frozen = get_model(f"dpa:{out / 'dpa-small.pth'}")
    record["frozen_dims"] = frozen.layer_dims()
    for layer, arrays in frozen.compute(base[:2], ["ll", "node"]).items():
        for s, x in enumerate(arrays):
            results[f"pth/{s}/{layer}"] = x

    # a multi-task checkpoint: heads picked with @ (case-insensitive, as deepmd does)
    multi = build_checkpoint(out / "dpa-multi.pt", seed=1, heads=("Omat24", "MPtrj"))
    for key, name in (("omat", f"dpa:{multi}@Omat24"), ("omat_lower", f"dpa:{multi}@omat24"),
                      ("mptrj", f"dpa:{multi}@MPtrj")):  # fmt: skip
        head = get_model(name)
        record[f"head/{key}"] = head.head
        for layer, arrays in head.compute(base[:1], ["ll", "node"]).items():
            results[f"{key}/0/{layer}"] = arrays[0]

    os.environ["HOME"] = str(out)
    os.chdir(out)
    for key, name in (("relative", "dpa:dpa-small.pt"), ("home", "dpa:~/dpa-small.pt")):
        results[f"{key}/0/ll"] = get_model(name).compute(base[:1], ["ll"])["ll"][0]

    state = torch.load(path, weights_only=True)
    first = next(k for k in state["model"] if k.startswith("model.Default.") and "descriptor" in k)
    del state["model"][first]
    torch.save(state, out / "mismatch.pt")
    torch.save({"model_state_dict": {}, "config": {}}, out / "sevennet.pth")
    (out / "garbage.pt").write_text("not a checkpoint")
    record["errors"] = {
        "missing": load_error("dpa:absent.pt"),
        "nohead": load_error(f"dpa:{multi}"),
        "badhead": load_error(f"dpa:{multi}@PBE"),
        "single_head": load_error("dpa:dpa-small.pt@Omat24"),
        "mismatch": load_error("dpa:mismatch.pt"),
        "garbage": load_error("dpa:garbage.pt"),
        "other": load_error("dpa:sevennet.pth"),
    }
    save_probe(out, results, record)


if __name__ == "__main__":
    main(sys.argv[1])
