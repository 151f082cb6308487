"""Measurements of ``uma:<checkpoint>``, run inside the 'uma-dpa' environment by test_models_uma.py.

Usage: ``<uma-dpa env>/bin/python tests/uma_probe.py OUT_DIR``. It builds small random-init
UMA-style checkpoints with fairchem's own code (a Hydra model config instantiated, saved as
an ``MLIPInferenceCheckpoint`` exactly as the released files are), loads them back through
``uma:<path>`` and writes every number the tests assert on to ``OUT_DIR/probe.npz`` and
``OUT_DIR/probe.json`` (the assertions run in the main environment's pytest).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

LAYERS = ("ll", "node", "bb", "layer:0", "layer:1", "layer:2")


def model_config(datasets: tuple[str, ...], channels: int = 32, layers: int = 2) -> dict:
    """A small eSCN-MD (UMA/eSEN backbone) with an energy-force-stress head."""
    backbone = {
        "model": "fairchem.core.models.uma.escn_md.eSCNMDBackbone",
        "max_num_elements": 100,
        "sphere_channels": channels,
        "lmax": 2,
        "mmax": 2,
        "otf_graph": True,
        "max_neighbors": 30,
        "cutoff": 6.0,
        "edge_channels": channels,
        "num_distance_basis": 32,
        "num_layers": layers,
        "hidden_channels": channels,
        "direct_forces": False,
        "regress_forces": True,
        "regress_stress": True,
        "dataset_list": list(datasets),
        "always_use_pbc": False,
    }
    head = {"module": "fairchem.core.models.uma.escn_md.MLP_EFS_Head", "prefix": "omat",
            "wrap_property": True}  # fmt: skip
    return {
        "_target_": "fairchem.core.models.base.HydraModel",
        "pass_through_head_outputs": True,
        "backbone": backbone,
        "heads": {"efs": head},
    }


def tasks_config(datasets: tuple[str, ...]) -> list[dict]:
    """One energy task per dataset, as in the released checkpoints' ``tasks_config``."""
    unit = "fairchem.core.units.mlip_unit.mlip_unit"
    return [
        {
            "_target_": f"{unit}.Task",
            "name": f"{d}_energy",
            "level": "system",
            "property": "energy",
            "datasets": [d],
            "out_spec": {"_target_": f"{unit}.OutputSpec", "dim": [1], "dtype": "float32"},
            "normalizer": {
                "_target_": "fairchem.core.modules.normalization.normalizer.Normalizer",
                "mean": 0.0,
                "rmsd": 1.0,
            },
        }
        for d in datasets
    ]


def build_checkpoint(path: Path, datasets=("omat", "omol"), channels=32, layers=2, seed=0) -> Path:
    """Random-init weights from ``torch.manual_seed(seed)``, saved as fairchem saves them."""
    import hydra
    import torch
    from fairchem.core.units.mlip_unit.api.inference import MLIPInferenceCheckpoint

    config = model_config(tuple(datasets), channels, layers)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = hydra.utils.instantiate(config)
    ema = torch.optim.swa_utils.AveragedModel(model).state_dict()
    checkpoint = MLIPInferenceCheckpoint(
        model_config=config, model_state_dict=model.state_dict(), ema_state_dict=ema,
        tasks_config=tasks_config(tuple(datasets)),
    )  # fmt: skip
    torch.save(checkpoint, path)
    return path


def main(out_dir: str) -> None:
    import torch

    from family_checks import load_error, save_probe, start_probe
    from mlipspace.models import get_model
    from model_contract_probe import contract_structures

    out, results, record = start_probe(out_dir)
    path = build_checkpoint(out / "uma-small.pt")
    base = contract_structures()

    adapter = get_model(f"uma:{path}")
    record["dims"] = adapter.layer_dims()
    record["metadata"] = {k: str(v) for k, v in adapter.metadata().items()}
    features = adapter.compute(base, LAYERS)
    for layer, arrays in features.items():
        for s, x in enumerate(arrays):
            results[f"omat/{s}/{layer}"] = x
    record["n_atoms"] = [len(a) for a in base]

    # fairchem's own calculator on the same file: the backbone output it computes
    calc = adapter.calculator()
    backbone = calc.predictor.model.module.backbone
    captured: dict[str, np.ndarray] = {}
    handle = backbone.register_forward_hook(
        lambda m, i, o: captured.__setitem__("x", o["node_embedding"][:, 0, :].detach().numpy())
    )
    for s, atoms in enumerate(base):
        atoms = atoms.copy()
        atoms.calc = calc
        results[f"calc/{s}/energy"] = np.array([atoms.get_potential_energy()])
        results[f"calc/{s}/node"] = captured["x"].copy()
    handle.remove()

    omol = get_model(f"uma:{path}@omol").compute(base[:1], ["ll", "layer:0", "layer:1"])
    for layer, arrays in omol.items():
        results[f"omol/0/{layer}"] = arrays[0]

    os.environ["HOME"] = str(out)
    os.chdir(out)
    for key, name in (("relative", "uma:uma-small.pt"), ("home", "uma:~/uma-small.pt@omat")):
        results[f"{key}/0/ll"] = get_model(name).compute(base[:1], ["ll"])["ll"][0]

    # files that must be refused
    torch.save({"model": {"a": torch.zeros(2)}}, out / "other.pt")
    (out / "garbage.pt").write_text("not a checkpoint")
    raw = torch.load(path, weights_only=False)
    raw.model_config["backbone"]["sphere_channels"] = 16  # the weights are 32 wide
    raw.model_config["backbone"]["hidden_channels"] = 16
    torch.save(raw, out / "mismatch.pt")
    record["errors"] = {
        "missing": load_error("uma:absent.pt"),
        "task": load_error(f"uma:{path}@oc20"),
        "other": load_error("uma:other.pt"),
        "garbage": load_error("uma:garbage.pt"),
        "mismatch": load_error("uma:mismatch.pt"),
    }
    save_probe(out, results, record)


if __name__ == "__main__":
    main(sys.argv[1])
