"""PET adapter (PET-MAD, uPET): ``pet:<checkpoint>`` for a metatrain ``.ckpt`` or an
exported metatomic ``.pt`` (metatrain 2026.4.1, metatomic-torch 0.1.19).

Runs in the ``orb-pet-mattersim`` environment (``mlipspace env create orb-pet-mattersim``),
without the ``upet`` package: a ``.ckpt`` is read by ``metatrain.utils.io.load_model``
(the loader ``upet.get_upet(checkpoint_path=...)`` also calls), an exported ``.pt`` by
``metatomic.torch.load_atomistic_model``. Both are evaluated on metatomic ``System``s
with the model's own neighbour-list request.

Layers (metatrain's PET: an element embedding, ``num_gnn_layers`` transformer layers on
node and edge tokens, then per-target node/edge heads whose outputs enter the last
linear maps):

``ll``
    ``mtt::aux::energy_last_layer_features``: the input of the energy's last linear maps,
    node-head and cutoff-weighted edge-head features of every read-out layer
    concatenated (256 for metatrain's default hypers), metatrain's LLPR features.
``node``
    ``feature``: the backbone's node features and cutoff-weighted edge sums (384 for the
    default hypers), the representation PET offers for transfer learning.
``layer:0``
    output of ``backend.node_embedders[0]`` (element embedding; ``.ckpt`` only).
``layer:i`` (i = 1…n)
    node tokens out of ``backend.gnn_layers[i-1]`` (``.ckpt`` only).
``bb``
    ``layer:1`` … ``layer:n``.

An exported ``.pt`` is TorchScript, whose sub-modules cannot be hooked: it offers
``ll`` and ``node`` only (load the ``.ckpt`` for ``bb``). PET is not rotation-invariant
by construction; ``metadata()`` records the rotation sensitivity measured, and
``pet:<file>+rot<N>`` averages over N rotations (:mod:`mlipspace.models.rotations`).
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from ..errors import CheckpointError, ModelError
from ._checkpoint import CheckpointAdapter, checkpoint_spec, read_checkpoint, weights_mismatch
from .torch_base import Capture, ForwardResult, not_importable, package_version, torch_dtype

FAMILY = "orb-pet-mattersim"
LL_OUTPUT = "mtt::aux::energy_last_layer_features"
NODE_OUTPUT = "feature"
#: metatrain's default PET hypers: d_head 128 x 2 feature types, d_pet+d_node, d_node 256
DEFAULT_DIMS = {"ll": 256, "node": 384, "bb": 512, "layer:0": 256, "layer:1": 256, "layer:2": 256}
BATCH_SIZE = 16


def import_metatomic() -> Any:
    """Import metatomic (and metatrain); a clear error where they are not installed.

    metatensor's TorchScript operations do not compile once ``torch_geometric`` has been
    imported in the same process, so PET must be loaded before any MatterSim model.
    """
    if "torch_geometric" in sys.modules and "metatensor_torch" not in sys.modules:
        raise ModelError(
            "PET models cannot be loaded in a process that already imported torch_geometric "
            "(e.g. after a MatterSim model): metatensor's TorchScript fails to compile; load "
            "PET first or in its own process (mlipspace's workers do)"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import metatomic.torch
            import metatrain.utils.io  # noqa: F401
    except ModuleNotFoundError as exc:
        raise not_importable(exc, "metatrain/metatomic", "PET", FAMILY) from exc
    return metatomic.torch


def _is_exported(path: Path) -> bool:
    from metatrain.utils.io import is_exported_file

    try:
        return bool(is_exported_file(str(path)))
    except Exception:  # not a zip archive, unreadable: let the checkpoint reader say why
        return False


def _read_checkpoint(path: Path) -> dict[str, Any]:
    """The metatrain checkpoint dictionary of ``path`` (optionally gzip-compressed)."""
    checkpoint = read_checkpoint(
        path, "pet", "metatrain", lambda c: isinstance(c, dict) and "architecture_name" in c,
        "no 'architecture_name' (an Orb, MatterSim or other family's file needs its own prefix)",
        expected="a metatrain checkpoint or exported metatomic model",
        gzipped=path.suffix == ".gz",
    )  # fmt: skip
    architecture = str(checkpoint["architecture_name"])
    if architecture.split(".")[-1] != "pet":
        raise CheckpointError(
            f"pet:{path}: a metatrain checkpoint of architecture {architecture!r}, not PET"
        )
    return checkpoint


def load_pet(path: Path, dtype: str) -> tuple[Any, bool]:
    """The model in ``path`` and whether it is an exported (TorchScript) one."""
    from metatrain.utils.io import model_from_checkpoint

    if _is_exported(path):
        model = import_metatomic().load_atomistic_model(str(path))
        exported = model.capabilities().dtype
        if exported != dtype:
            raise CheckpointError(
                f"pet:{path}: an exported model in {exported}; it cannot run in {dtype} "
                "(load the .ckpt for another dtype)"
            )
        return model.eval(), True
    checkpoint = _read_checkpoint(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = model_from_checkpoint(checkpoint, context="export")
    except RuntimeError as exc:  # load_state_dict: missing or unexpected keys, shapes
        raise weights_mismatch(path, "pet", "PET architecture of its hypers", exc) from exc
    model = model.to(torch_dtype(dtype)).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model, False


class PETAdapter(CheckpointAdapter):
    """Per-atom features of a PET model (metatrain ``.ckpt`` or exported ``.pt``).

    Parameters
    ----------
    path : str or Path
        The checkpoint or exported model (``~`` and relative paths work).
    dtype : {"float32", "float64"}
    device : str
    """

    family = "pet"
    distribution = "metatrain"
    symmetry_record = "rotations"
    batch_size = BATCH_SIZE

    def __init__(self, path: str | Path, dtype: str = "float32", device: str = "cpu"):
        import torch

        import_metatomic()
        super().__init__(path, dtype, device)
        self.model, self.exported = load_pet(self.path, self.dtype)
        self.model = self.model.to(device)
        if self.exported:
            capabilities = self.model.capabilities()
            self.elements = {int(z) for z in capabilities.atomic_types}
            outputs = capabilities.outputs
            self.n_gnn_layers = 0
        else:
            self.elements = {int(z) for z in self.model.atomic_types}
            outputs = self.model.supported_outputs()
            self.n_gnn_layers = len(self.model.backend.gnn_layers)
        missing = [k for k in (LL_OUTPUT, NODE_OUTPUT) if k not in outputs]
        if missing:
            raise CheckpointError(
                f"pet:{path}: the model has no output {missing} (no energy target?)"
            )
        # widths depend on the hypers: read them off one pass on a dimer
        dimer = Atoms([min(self.elements)] * 2, positions=[[0, 0, 0], [0, 0, 1.5]])
        dimer.cell, dimer.pbc = np.eye(3) * 10.0, True
        with torch.no_grad():
            result = self.run_model(self.build_batch([dimer]), [dimer])
        self._dims = {"ll": int(result.ll.shape[1]), "node": int(result.node.shape[1])}
        if not self.exported:
            widths = [int(t.shape[1]) for t in result.per_layer]
            self._dims.update({f"layer:{i}": w for i, w in enumerate(widths)})
            self._dims["bb"] = sum(widths[1:])

    # -- interface -------------------------------------------------------------------
    def layer_dims(self) -> dict[str, int]:
        return dict(self._dims)

    def supported_elements(self) -> set[int]:
        return set(self.elements)

    def extra_metadata(self) -> dict[str, Any]:
        return {
            "format": "exported metatomic model" if self.exported else "metatrain checkpoint",
            "metatomic_torch_version": package_version("metatomic-torch"),
            "dtype": self.dtype,
        }

    # -- implementation --------------------------------------------------------------
    def build_batch(self, structures: Sequence[Atoms]) -> list[Any]:
        """metatomic ``System``s with the neighbour lists the model requests."""
        from metatomic.torch import systems_to_torch
        from metatrain.utils.neighbor_lists import get_system_with_neighbor_lists

        requests = self.model.requested_neighbor_lists()
        systems = []
        for index, atoms in enumerate(structures):
            try:
                system = systems_to_torch(atoms, dtype=torch_dtype(self.dtype), device=self.device)
                systems.append(get_system_with_neighbor_lists(system, requests))
            except (ValueError, RuntimeError) as exc:
                raise self.graph_error(atoms, index, exc) from exc
        return systems

    def run_model(self, batch: list[Any], structures: Sequence[Atoms]) -> ForwardResult:
        """The model's ``ll``, ``feature`` and energy outputs (no forces); layers by hooks."""
        import torch
        from metatomic.torch import ModelEvaluationOptions, ModelOutput

        counts = [len(a) for a in structures]
        outputs = {
            LL_OUTPUT: ModelOutput(sample_kind="atom"),
            NODE_OUTPUT: ModelOutput(sample_kind="atom"),
            "energy": ModelOutput(sample_kind="system"),
        }
        with Capture() as cap, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if self.exported:
                options = ModelEvaluationOptions(length_unit="angstrom", outputs=outputs)
                result = self.model(batch, options, check_consistency=False)
            else:
                backend = self.model.backend
                cap.output(backend.node_embedders[0], "layer:0")
                for i, layer in enumerate(backend.gnn_layers):
                    cap.output(layer, f"layer:{i + 1}", lambda out: out[0])
                result = self.model(batch, outputs)
        per_layer = []
        if not self.exported:
            per_layer = [cap[f"layer:{i}"] for i in range(self.n_gnn_layers + 1)]
        energy = result["energy"].block().values.reshape(-1)
        return ForwardResult(
            ll=self._per_atom(result[LL_OUTPUT], counts),
            node=self._per_atom(result[NODE_OUTPUT], counts),
            per_layer=per_layer if per_layer else [torch.zeros(sum(counts), 0)],
            energy=energy,
        )

    @staticmethod
    def _per_atom(tensor_map: Any, counts: Sequence[int]) -> Any:
        """Rows of a per-atom TensorMap in (system, atom) order, checked."""
        block = tensor_map.block()
        samples = block.samples.values
        expected = np.concatenate([np.stack([np.full(n, s), np.arange(n)], 1) for s, n in
                                   enumerate(counts)])  # fmt: skip
        if samples.shape != expected.shape or not np.array_equal(samples.cpu().numpy(), expected):
            raise ModelError("PET returned per-atom samples out of (system, atom) order")
        return block.values.reshape(block.values.shape[0], -1)

    def calculator(self) -> Any:
        """metatomic's own ASE calculator on the same weights (exported if needed)."""
        from metatomic_ase import MetatomicCalculator

        model = self.model if self.exported else self.model.export()
        return MetatomicCalculator(model, device=self.device)


SPECS = [
    checkpoint_spec(
        "pet",
        PETAdapter,
        "a PET model (PET-MAD, uPET): pet:<metatrain .ckpt or exported .pt> "
        "(not rotation-invariant; +rot<N> averages)",
        layers=DEFAULT_DIMS,
        architecture="PET",
        symmetry="none",
        environment=FAMILY,
    )
]

__all__ = ["SPECS", "PETAdapter", "import_metatomic", "load_pet"]
