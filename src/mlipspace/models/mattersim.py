"""MatterSim adapter: ``mattersim:<checkpoint>`` (mattersim 1.2.3, an M3GNet).

Runs in the ``orb-pet-mattersim`` environment (``mlipspace env create orb-pet-mattersim``),
where mattersim is installed without its declared dependencies (see
``envs/orb-pet-mattersim.txt``). A checkpoint (``mattersim-v1.0.0-1M.pth``,
``mattersim-v1.0.0-5M.pth`` or a fine-tuned one) is loaded by the package's own
``Potential.from_checkpoint(load_path=<absolute path>, load_training_state=False)``;
the absolute path matters, because a bare released file name makes mattersim download
the file. That loader calls ``load_state_dict(strict=False)``, which silently ignores
missing and unexpected weights: the adapter compares the checkpoint's keys with the
model's itself and raises a :class:`ModelError` naming the file when they differ.

The model is ``M3Gnet``: ``atom_embedding`` (one-hot → ``units``), ``graph_conv[0..3]``
(``MainBlock``, three-body interactions; invariant scalar atom features), then the
per-atom gated read-out ``final`` = ``g(x) * sigma(x)`` with ``g`` and ``sigma`` both
``units → units → units → 1`` (swish, the gate ending in a sigmoid), scaled per element.

``layer:0``
    output of ``atom_embedding`` (128 for the released size).
``layer:i`` (i = 1…4)
    atom features out of ``graph_conv[i-1]`` (128 each).
``bb``
    ``layer:1`` … ``layer:4`` (512).
``node``
    the input of ``final`` (= ``layer:4``; 128).
``ll``
    ``[input of g[-1] | input of sigma[-1]]`` (256): the atomic energy is
    ``(w·a + b) · sigmoid(v·c + d)``, and both hidden activations ``a`` and ``c`` enter a
    last linear map (the DIEP convention, same gated read-out).

MatterSim's features are invariant under rotations and reflections (O(3)); the tests
measure it.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ase import Atoms

from ..errors import CheckpointError, ModelError
from ._checkpoint import CheckpointAdapter, checkpoint_spec, read_checkpoint, weights_mismatch
from .torch_base import (
    Capture,
    ForwardResult,
    layer_dims,
    not_importable,
    prepare_module,
    torch_dtype,
)

FAMILY = "orb-pet-mattersim"
#: M3Gnet defaults (the size of MatterSim-v1.0.0-1M): 128 units, 4 blocks
UNITS = 128
N_LAYERS = 4
BATCH_SIZE = 16
#: inputs M3Gnet combines in float32 whatever the model's dtype
FLOAT32_INPUTS = ("cell", "pbc_offsets")


def import_mattersim() -> Any:
    """Import mattersim's potential; a clear error where it is not installed."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from loguru import logger
            from mattersim.forcefield import potential

        logger.disable("mattersim")  # its INFO lines on every load and calculator call
    except ModuleNotFoundError as exc:
        raise not_importable(exc, "mattersim", "MatterSim", FAMILY) from exc
    return potential


def _is_mattersim(checkpoint: Any) -> bool:
    return (
        isinstance(checkpoint, dict)
        and checkpoint.get("model_name") == "m3gnet"
        and isinstance(checkpoint.get("model"), dict)
        and isinstance(checkpoint.get("model_args"), dict)
    )


def load_mattersim(path: Path, device: str) -> Any:
    """The ``M3Gnet`` of ``path`` through ``Potential.from_checkpoint``, keys checked."""
    potential = import_mattersim()
    checkpoint = read_checkpoint(
        path, "mattersim", "MatterSim", _is_mattersim, "needs model_name 'm3gnet', 'model' and "
        "'model_args' (an Orb, PET or other family's file needs its own prefix)",
        expected="a MatterSim checkpoint",
    )  # fmt: skip
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loaded = potential.Potential.from_checkpoint(
                load_path=str(path), device=device, load_training_state=False
            )
    except RuntimeError as exc:  # shapes that do not fit (strict=False still checks those)
        raise weights_mismatch(path, "mattersim", "M3GNet of its model_args", exc) from exc
    model = loaded.model
    expected, found = set(model.state_dict()), set(checkpoint["model"])
    if expected != found:
        missing, unexpected = sorted(expected - found), sorted(found - expected)
        raise CheckpointError(
            f"mattersim:{path}: the weights do not match the M3GNet of its model_args "
            f"(missing {missing[:5]}{'...' if len(missing) > 5 else ''}, unexpected "
            f"{unexpected[:5]}{'...' if len(unexpected) > 5 else ''}); mattersim's loader "
            "would have ignored this silently"
        )
    return loaded


class MatterSimAdapter(CheckpointAdapter):
    """Per-atom features of a MatterSim (M3GNet) checkpoint.

    Parameters
    ----------
    path : str or Path
        The checkpoint (``~`` and relative paths work).
    dtype : {"float32", "float64"}
        In float64 the cell and periodic offsets stay float32, as M3Gnet casts them.
    device : str
    """

    family = "mattersim"
    distribution = "mattersim"
    symmetry_record = "own"  # O(3) by construction, measured in the tests
    batch_size = BATCH_SIZE

    def __init__(self, path: str | Path, dtype: str = "float32", device: str = "cpu"):
        import_mattersim()
        super().__init__(path, dtype, device)
        self.potential = load_mattersim(self.path, device)
        self.model = prepare_module(self.potential.model, self.dtype, device)
        if self.dtype != "float32":
            # M3Gnet.one_hot_atoms returns float32 whatever the model's dtype
            target = torch_dtype(self.dtype)
            self.model.atom_embedding.register_forward_pre_hook(
                lambda _module, args: (args[0].to(target), *args[1:])
            )
        args = self.model.model_args
        self.cutoff = float(args["cutoff"])
        self.threebody_cutoff = float(args["threebody_cutoff"])
        self.max_z = int(self.model.max_z)
        final = self.model.final
        width = int(final.g[-1].linear.in_features)
        self.widths = [int(self.model.atom_embedding.mlp[-1].linear.out_features)] + [width] * len(
            self.model.graph_conv
        )
        self.ll_width = width + int(final.sigma[-1].linear.in_features)

    # -- interface -------------------------------------------------------------------
    def layer_dims(self) -> dict[str, int]:
        return layer_dims(self.ll_width, self.widths[-1], self.widths)

    def supported_elements(self) -> set[int]:
        return set(range(1, self.max_z + 1))

    def extra_metadata(self) -> dict[str, Any]:
        return {
            "dtype": self.dtype,
            "cutoff": self.cutoff,
            "threebody_cutoff": self.threebody_cutoff,
            "symmetry": "O(3) (measured in tests/test_models_mattersim.py)",
        }

    # -- implementation --------------------------------------------------------------
    def build_batch(self, structures: Sequence[Atoms]) -> dict[str, Any]:
        """mattersim's input dictionary for ``structures``, as its calculator builds it."""
        from mattersim.datasets.utils.build import build_dataloader
        from mattersim.forcefield.potential import batch_to_dict

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loader = build_dataloader(
                list(structures),
                model_type="m3gnet",
                cutoff=self.cutoff,
                threebody_cutoff=self.threebody_cutoff,
                batch_size=len(structures),
                only_inference=True,
            )
            graphs = list(loader)
        if len(graphs) != 1:
            raise ModelError(f"{self.name}: mattersim split one batch into {len(graphs)}")
        inputs = batch_to_dict(graphs[0], device=self.device)
        if self.dtype == "float32":
            return inputs
        # M3Gnet casts pbc_offsets to float32 itself and multiplies them with the cell, so
        # both stay float32 (lattice translations carry float32 round-off, ~1e-7 relative)
        target = torch_dtype(self.dtype)
        return {
            k: v.to(target)
            if k not in FLOAT32_INPUTS and hasattr(v, "is_floating_point") and v.is_floating_point()
            else v
            for k, v in inputs.items()
        }

    def run_model(self, batch: dict[str, Any], structures: Sequence[Atoms]) -> ForwardResult:
        """The M3GNet energy pass (no forces), atom features captured by hooks."""
        import torch

        model = self.model
        with Capture() as cap:
            cap.output(model.atom_embedding, "layer:0")
            for i, conv in enumerate(model.graph_conv):
                cap.output(conv, f"layer:{i + 1}", lambda out: out[0])
            cap.input(model.final, "node")
            cap.input(model.final.g[-1], "ll_value")
            cap.input(model.final.sigma[-1], "ll_gate")
            energy = model(batch)
        per_layer = [cap[f"layer:{i}"] for i in range(len(self.widths))]
        ll = torch.cat([cap["ll_value"], cap["ll_gate"]], dim=1)
        return ForwardResult(ll=ll, node=cap["node"], per_layer=per_layer, energy=energy)

    def calculator(self) -> Any:
        """mattersim's own ``MatterSimCalculator`` around the same potential."""
        from mattersim.forcefield.potential import MatterSimCalculator

        return MatterSimCalculator(potential=self.potential, device=self.device)


SPECS = [
    checkpoint_spec(
        "mattersim",
        MatterSimAdapter,
        "a MatterSim (M3GNet) checkpoint: mattersim:<file.pth>",
        layers=layer_dims(2 * UNITS, UNITS, [UNITS] * (N_LAYERS + 1)),
        architecture="MatterSim",
        symmetry="O(3)",
        environment=FAMILY,
    )
]

__all__ = ["SPECS", "MatterSimAdapter", "import_mattersim", "load_mattersim"]
