"""CHGNet adapters: the 0.3.0, 0.2.0 and r2SCAN checkpoints shipped in the chgnet wheel,
and ``chgnet:<checkpoint>``, a user's CHGNet (e.g. fine-tuned) as ``CHGNet.save`` or
chgnet's ``Trainer`` write it, loaded as ``CHGNet.from_file`` does.

Which tensors are taken (``model`` is ``chgnet.model.CHGNet``):

``layer:0``
    ``model.atom_embedding`` output (64, element only).
``layer:i`` (i = 1…4)
    output of ``model.atom_conv_layers[i-1]`` (64 each). CHGNet's node features are
    invariant scalars throughout, so the whole tensor is taken.
``bb``
    ``layer:1`` … ``layer:4`` concatenated (256).
``node``
    the input of ``model.mlp``: ``readout_norm(layer:4)`` (LayerNorm) for 0.3.0 and
    r2scan, ``layer:4`` itself for 0.2.0 (64).
``ll``
    the input of the last ``nn.Linear`` of ``model.mlp`` (64 → 64 → 64 → 1 with SiLU),
    i.e. the hidden activation the per-atom energy is a linear function of (64).

The energy of the same forward pass (``task="e"``, no forces, no stress) is the
model's own prediction including the composition model.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from ..errors import ModelError
from ._checkpoint import (
    checkpoint_spec,
    read_checkpoint,
    user_checkpoint_metadata,
    weights_mismatch,
)
from .base import ModelCard, ModelSpec
from .torch_base import (
    Capture,
    ForwardResult,
    TorchAdapter,
    adapter_factory,
    checkpoint_metadata,
    layer_dims,
    package_file,
    prepare_module,
    torch_dtype,
    weights_check,
)

#: registered name -> checkpoint name understood by ``CHGNet.load``
CHECKPOINTS = {"chgnet-0.3.0": "0.3.0", "chgnet-0.2.0": "0.2.0", "chgnet-r2scan": "r2scan"}
#: files inside the chgnet package (``chgnet/pretrained/...``)
CHECKPOINT_FILES = {
    "0.3.0": "0.3.0/chgnet_0.3.0_e29f68s314m37.pth.tar",
    "0.2.0": "0.2.0/chgnet_0.2.0_e30f77s348m32.pth.tar",
    "r2scan": "r2scan/chgnet_r2scan_transfer_learning_e15f36s161m23.pth.tar",
}
N_CONV = 4
WIDTH = 64
#: structures per forward; measured in benchmarks/featurize.py (batching is neutral on CPU
#: for 64+ atoms, and cuts the per-call overhead of small cells)
BATCH_SIZE = 16


def _checkpoint_path(checkpoint: str) -> Path:
    return package_file(
        "chgnet", "pretrained", CHECKPOINT_FILES[checkpoint], install="pip install chgnet==0.4.2"
    )


def _load_user_checkpoint(path: Path) -> Any:
    """A CHGNet saved by ``CHGNet.save``/its ``Trainer`` (``{"model": model.as_dict(), ...}``),
    loaded as ``CHGNet.from_file`` does; errors name the file."""
    from chgnet.model import CHGNet

    raw = read_checkpoint(
        path, "chgnet", "CHGNet",
        lambda raw: isinstance(raw, dict) and isinstance(raw.get("model"), dict)
        and {"model_args", "state_dict"} <= set(raw["model"]),
        "no 'model' with 'model_args', 'state_dict'",
    )  # fmt: skip
    try:
        return CHGNet.from_dict(raw["model"])
    except (RuntimeError, TypeError, KeyError, ValueError) as exc:
        raise weights_mismatch(path, "chgnet", "architecture in 'model_args'", exc) from exc


class CHGNetAdapter(TorchAdapter):
    """Per-atom features of a pretrained CHGNet checkpoint.

    Parameters
    ----------
    checkpoint : {"0.3.0", "0.2.0", "r2scan"}
        Checkpoint shipped inside the chgnet package.
    dtype : {"float32", "float64"}
        Precision the model is cast to.
    device : str
        Torch device.
    path : Path, optional
        A user's checkpoint (``chgnet:<path>``, e.g. a fine-tuned CHGNet).
    """

    batch_size = BATCH_SIZE

    def __init__(
        self,
        checkpoint: str = "0.3.0",
        dtype: str = "float32",
        device: str = "cpu",
        path: Path | None = None,
    ):
        from chgnet.model import CHGNet

        if path is None and checkpoint not in CHECKPOINT_FILES:
            raise ModelError(f"unknown CHGNet checkpoint {checkpoint!r}")
        super().__init__(dtype, device)
        self.checkpoint = checkpoint
        self.path = path
        if path is not None:
            self.name = f"chgnet:{path}"
            with contextlib.redirect_stdout(io.StringIO()):
                model = _load_user_checkpoint(path)
        else:
            self.name = f"chgnet-{checkpoint}"
            with contextlib.redirect_stdout(io.StringIO()):  # the constructor always prints
                model = CHGNet.load(model_name=checkpoint, use_device="cpu", verbose=False)
        self.model = prepare_module(model, dtype, device)
        if model.composition_model is not None:  # it builds float32 inputs itself
            model.composition_model.float()
        self.cutoff = float(model.model_args["atom_graph_cutoff"])
        # a user's (fine-tuned) CHGNet may differ from the shipped 4 x 64 architecture
        import torch

        self.n_conv = len(model.atom_conv_layers)
        self.width = int(model.atom_embedding.embedding.embedding_dim)
        linears = [m for m in model.mlp.modules() if isinstance(m, torch.nn.Linear)]
        self.ll_width = int(linears[-1].in_features)
        # an atom without neighbours inside the cutoff breaks CHGNet: fail, naming it
        model.graph_converter.set_isolated_atom_response("error")

    # -- interface -------------------------------------------------------------------
    def layer_dims(self) -> dict[str, int]:
        return layer_dims(self.ll_width, self.width, [self.width] * (self.n_conv + 1))

    def supported_elements(self) -> set[int]:
        return set(range(1, self.model.atom_embedding.embedding.num_embeddings + 1))

    def metadata(self) -> dict[str, Any]:
        if self.path is not None:
            return user_checkpoint_metadata(self, "chgnet", dtype=self.dtype, cutoff=self.cutoff)
        return checkpoint_metadata(
            "chgnet", _checkpoint_path(self.checkpoint), dtype=self.dtype, cutoff=self.cutoff
        )

    # -- implementation --------------------------------------------------------------
    def graphs(self, structures: Sequence[Atoms]) -> list[Any]:
        """CHGNet crystal graphs, cast to the model's dtype and device."""
        from pymatgen.io.ase import AseAtomsAdaptor

        dtype = torch_dtype(self.dtype)
        # the package's calculator, built on the same model, resets this to a warning
        self.model.graph_converter.set_isolated_atom_response("error")
        out = []
        for i, atoms in enumerate(structures):
            try:
                graph = self.model.graph_converter(AseAtomsAdaptor.get_structure(atoms))
            except ValueError as exc:  # isolated atoms, no cell, ...
                raise self.graph_error(atoms, i, exc) from exc
            graph.atom_frac_coord = graph.atom_frac_coord.to(dtype)
            graph.neighbor_image = graph.neighbor_image.to(dtype)
            graph.lattice = graph.lattice.to(dtype)
            out.append(graph.to(self.device))
        return out

    def build_batch(self, structures: Sequence[Atoms]) -> list[Any]:
        return self.graphs(structures)

    def run_model(self, batch: list[Any], structures: Sequence[Atoms]) -> ForwardResult:
        """One ``task="e"`` pass (no forces, no stress); total energies in eV."""
        import torch

        model = self.model
        with Capture() as cap:
            cap.output(model.atom_embedding, "layer:0")
            for i, conv in enumerate(model.atom_conv_layers):
                cap.output(conv, f"layer:{i + 1}")
            cap.input(model.mlp, "node")
            last_linear = [m for m in model.mlp.modules() if isinstance(m, torch.nn.Linear)][-1]
            cap.input(last_linear, "ll")
            prediction = model(batch, task="e")
        energy = prediction["e"].detach().cpu().numpy().astype(np.float64)
        if model.is_intensive:
            energy = energy * np.asarray([len(a) for a in structures])
        per_layer = [cap[f"layer:{i}"] for i in range(self.n_conv + 1)]
        return ForwardResult(ll=cap["ll"], node=cap["node"], per_layer=per_layer, energy=energy)

    def calculator(self) -> Any:
        """The package's own ASE calculator around the same model (for tests and benchmarks)."""
        from chgnet.model.dynamics import CHGNetCalculator

        with contextlib.redirect_stdout(io.StringIO()):
            return CHGNetCalculator(model=self.model, use_device=self.device)


def _user_adapter(path: Path, dtype: str = "float32", device: str = "cpu") -> CHGNetAdapter:
    return CHGNetAdapter(dtype=dtype, device=device, path=path)


_DESCRIPTIONS = {
    "0.3.0": "CHGNet 0.3.0 (MPtrj), 4 graph convolutions of 64",
    "0.2.0": "CHGNet 0.2.0 (MPtrj, older), 4 graph convolutions of 64",
    "r2scan": "CHGNet r2SCAN transfer-learning checkpoint (from 0.3.0 on MP-r2SCAN)",
}

#: the r2SCAN checkpoint is 0.3.0 fine-tuned on MP-r2SCAN (the README in the wheel)
_CARDS = {
    "0.3.0": ModelCard(training_data="MPtrj", level_of_theory="PBE"),
    "0.2.0": ModelCard(training_data="MPtrj", level_of_theory="PBE"),
    "r2scan": ModelCard(
        training_data="MP-r2SCAN", level_of_theory="r2SCAN", fine_tuned_from="chgnet-0.3.0"
    ),
}


def _card(checkpoint: str) -> ModelCard:
    """CHGNet uses distances and angles only: invariant under reflections too (O(3))."""
    return dataclasses.replace(
        _CARDS[checkpoint], architecture="CHGNet", has_calculator=True, symmetry="O(3)"
    )


SPECS = [
    ModelSpec(
        name=name,
        factory=adapter_factory(CHGNetAdapter, checkpoint),
        layers=layer_dims(WIDTH, WIDTH, [WIDTH] * (N_CONV + 1)),
        description=_DESCRIPTIONS[checkpoint],
        weights_available=weights_check(lambda c=checkpoint: _checkpoint_path(c)),
        relative_cost=0.8,  # demo: 22-34 s against SevenNet-0's 32 s
        card=_card(checkpoint),
    )
    for name, checkpoint in CHECKPOINTS.items()
]
SPECS.append(
    checkpoint_spec(
        "chgnet",
        _user_adapter,
        "a CHGNet checkpoint (e.g. fine-tuned): chgnet:<file> as CHGNet.save or its Trainer "
        "write it (dimensions of the released architecture)",
        layers=layer_dims(WIDTH, WIDTH, [WIDTH] * (N_CONV + 1)),
        relative_cost=0.8,
        architecture="CHGNet",
        symmetry="O(3)",
    )
)
