"""UMA / eSEN adapter (fairchem-core): ``uma:<checkpoint>[@<task>]``.

The checkpoint is a fairchem inference checkpoint (``MLIPInferenceCheckpoint``: the
released ``uma-s-1p1.pt``, ``uma-m-1p1.pt``, ``esen-sm-conserving-all-omat.pt`` ... from
Hugging Face, ``facebook/UMA`` and ``facebook/OMAT24``), loaded with
``fairchem.core.units.mlip_unit.load_predict_unit`` as ``FAIRChemCalculator`` users do.
``@<task>`` is the dataset the model is asked about (``omat``, ``omol``, ``oc20``,
``odac``, ``omc``; default ``omat``); it sets the system embedding and the mixture of
linear experts of UMA, so every layer depends on it.

The backbone (``eSCNMDBackbone`` or its MoLE variant) keeps per-atom spherical-harmonic
features ``x[n_atoms, (lmax+1)^2, sphere_channels]``; the ``l = 0`` row
``x[:, 0, :]`` is the invariant part. Which tensors are taken:

``layer:0``
    ``x[:, 0, :]`` entering ``backbone.blocks[0]`` (atom and system embeddings plus the
    edge-degree embedding).
``layer:i`` (i = 1…n)
    ``x[:, 0, :]`` of the output of ``backbone.blocks[i-1]``.
``bb``
    ``layer:1`` … ``layer:n`` concatenated.
``node`` and ``ll``
    ``node_embedding[:, 0, :]``, the backbone's output after its final norm: the input of
    the energy head ``MLP_EFS_Head.energy_block`` (sphere_channels wide). ``ll`` is this
    tensor, not the head's last hidden layer, because in UMA the head's linears are
    dataset-specific mixtures (``DatasetSpecificMoEWrapper``), so the hidden layer is not
    one fixed map of the backbone's features.

Features come from the backbone alone under ``torch.no_grad`` (no energy head, no
forces, no stress). The inference settings are fairchem's ``"batch"`` preset (MoLE not
merged, no compile) in full precision: merging the experts would tie the model to one
composition.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ase import Atoms

from ..errors import CheckpointError
from ._checkpoint import CheckpointAdapter, check_choice, checkpoint_spec
from .torch_base import (
    Capture,
    ForwardResult,
    layer_dims,
    not_importable,
    quiet_loggers,
    torch_dtype,
)

#: the worker environment UMA shares with DPA-3 (envs/uma-dpa.txt)
ENVIRONMENT = "uma-dpa"
DEFAULT_TASK = "omat"
#: radius ``FAIRChemCalculator`` hands to ``AtomicData.from_ase`` (the graph itself is
#: built inside the backbone with the checkpoint's own cutoff)
RADIUS = 6.0
BATCH_SIZE = 8


def _quiet() -> contextlib.AbstractContextManager[None]:
    """fairchem logs warnings on the root logger while loading (device, settings)."""
    return quiet_loggers()


def _load_error(path: Path, exc: Exception) -> CheckpointError:
    """Name what is wrong with a file ``load_predict_unit`` refused."""
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, RuntimeError) and "state_dict" in str(exc):
        return CheckpointError(
            f"uma:{path}: the weights do not match the architecture in its model_config: {text}"
        )
    if isinstance(exc, (AttributeError, KeyError, TypeError)):
        return CheckpointError(
            f"uma:{path}: not a fairchem inference checkpoint (MLIPInferenceCheckpoint): {text}"
        )
    return CheckpointError(f"uma:{path}: fairchem cannot load the checkpoint: {text}")


def import_fairchem() -> None:
    """Check that fairchem-core imports here; a clear error naming the environment if not."""
    try:
        import fairchem.core  # noqa: F401
    except ModuleNotFoundError as exc:
        raise not_importable(exc, "fairchem-core", "UMA", ENVIRONMENT) from exc


class UMAAdapter(CheckpointAdapter):
    """Per-atom features of a fairchem UMA / eSEN checkpoint.

    Parameters
    ----------
    path : Path
        The inference checkpoint.
    task : str, optional
        Dataset/task (default ``"omat"``); must be one the checkpoint was trained on.
    dtype : {"float32", "float64"}
    device : str
    """

    family = "uma"
    distribution = "fairchem-core"
    batch_size = BATCH_SIZE

    def __init__(
        self, path: Path, task: str | None = None, dtype: str = "float32", device: str = "cpu"
    ):
        import torch

        import_fairchem()
        from fairchem.core.units.mlip_unit import load_predict_unit
        from fairchem.core.units.mlip_unit.api.inference import InferenceSettings

        super().__init__(path, dtype, device, task)
        threads = torch.get_num_threads()
        self.settings = InferenceSettings(
            tf32=False,
            activation_checkpointing=False,
            merge_mole=False,
            compile=False,
            external_graph_gen=False,
            base_precision_dtype=torch_dtype(dtype),
        )
        try:
            with _quiet():
                self.unit = load_predict_unit(
                    str(path), inference_settings=self.settings, device=device
                )
        except Exception as exc:
            raise _load_error(path, exc) from exc
        torch.set_num_threads(threads)
        self.tasks = list(self.unit.dataset_to_tasks)
        self.task = check_choice(path, "uma", "task", task, self.tasks, lambda _: DEFAULT_TASK)
        self.hydra = self.unit.model.module
        self._prepared = False
        backbone = self.hydra.backbone
        self.n_layers = int(backbone.num_layers)
        self.width = int(backbone.sphere_channels)
        self.max_z = int(backbone.max_num_elements) - 1
        self.backbone_class = type(backbone).__name__

    # -- interface -------------------------------------------------------------------
    def layer_dims(self) -> dict[str, int]:
        return layer_dims(self.width, self.width, [self.width] * (self.n_layers + 1))

    def supported_elements(self) -> set[int]:
        return set(range(1, self.max_z + 1))

    def extra_metadata(self) -> dict[str, Any]:
        return {
            "dtype": self.dtype,
            "task": self.task,
            "tasks": ",".join(self.tasks),
            "backbone": self.backbone_class,
        }

    # -- implementation --------------------------------------------------------------
    def data(self, atoms: Atoms) -> Any:
        """The ``AtomicData`` of one structure, as ``FAIRChemCalculator`` builds it."""
        from fairchem.core.datasets.atomic_data import AtomicData

        clean = Atoms(atoms.numbers, atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
        clean.info.update({k: atoms.info[k] for k in ("charge", "spin") if k in atoms.info})
        with _quiet():
            self.unit.validate_atoms_data(clean, self.task)  # charge/spin defaults
            return AtomicData.from_ase(
                clean,
                task_name=self.task,
                r_edges=False,
                r_data_keys=["spin", "charge"],
                max_neigh=None,
                radius=RADIUS,
                target_dtype=torch_dtype(self.dtype),
            )

    def build_batch(self, structures: Sequence[Atoms]) -> Any:
        from fairchem.core.datasets.atomic_data import atomicdata_list_to_batch

        batch = atomicdata_list_to_batch([self.data(a) for a in structures])
        if not self._prepared:
            self._prepare(batch)
        return batch.to(self.device)

    def _prepare(self, batch: Any) -> None:
        """What ``MLIPPredictUnit`` does before its first prediction (no merge, no compile)."""
        with _quiet():
            self.hydra.prepare_for_inference(batch, self.settings)
        self.hydra.requires_grad_(False)
        self.hydra.to(device=self.device, dtype=torch_dtype(self.dtype))
        self.hydra.eval()
        self._prepared = True

    def run_model(self, batch: Any, structures: Sequence[Atoms]) -> ForwardResult:
        """The backbone alone: ``x[:, 0, :]`` around every block and after the final norm."""
        backbone = self.hydra.backbone
        with Capture() as cap:
            cap.input(backbone.blocks[0], "layer:0", lambda args: args[0][:, 0, :])
            for i, block in enumerate(backbone.blocks):
                cap.output(block, f"layer:{i + 1}", lambda out: out[:, 0, :])
            with _quiet():
                emb = backbone(batch)
        node = emb["node_embedding"][:, 0, :]
        per_layer = [cap[f"layer:{i}"] for i in range(self.n_layers + 1)]
        return ForwardResult(ll=node, node=node, per_layer=per_layer)

    def calculator(self) -> Any:
        """fairchem's own ``FAIRChemCalculator`` on a predict unit loaded from the same file
        with the same settings (energy, forces, stress), for tests and benchmarks."""
        from fairchem.core.calculate.ase_calculator import FAIRChemCalculator
        from fairchem.core.units.mlip_unit import load_predict_unit

        with _quiet():
            unit = load_predict_unit(
                str(self.path), inference_settings=self.settings, device=self.device
            )
            return FAIRChemCalculator(unit, task_name=self.task)


SPECS = [
    checkpoint_spec(
        "uma",
        UMAAdapter,
        "a fairchem UMA / eSEN inference checkpoint: uma:<file>[@task] "
        "(task omat by default; dimensions depend on the file)",
        choice="task",
        relative_cost=4.0,
        architecture="UMA",
        symmetry="SO(3)",
        environment=ENVIRONMENT,
    )
]

__all__ = ["SPECS", "UMAAdapter", "import_fairchem"]
