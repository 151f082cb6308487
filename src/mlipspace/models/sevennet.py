"""SevenNet adapters: the checkpoints shipped in the sevenn wheel, and the user's.

``sevennet:<checkpoint>[@<modal>]`` loads any SevenNet checkpoint (``checkpoint_*.pth``,
as ``sevenn`` training writes and the SevenNet-OMAT, -MF-ompa and -omni downloads are),
through ``sevenn.util.load_checkpoint`` as ``SevenNetCalculator`` does; ``@<modal>``
picks the fidelity of a multi-fidelity checkpoint (required there).

``sevennet-0`` (SevenNet-0, 11Jul2024), ``sevennet-0-22may2024``, ``sevennet-l3i5`` and
``sevennet-mf-0:<modal>`` (SevenNet-MF-0, one name per fidelity head: ``PBE`` and
``R2SCAN``; the modal enters every self-interaction and the read-out, so the features
depend on it from layer 1 on).

The model is an ``AtomGraphSequential`` whose node features live in ``data["x"]``. The
adapter runs its modules in order under ``torch.no_grad()`` and stops before
``force_output`` (no forces, no stress), copying ``data["x"]`` on the way:

``layer:0``
    output of ``onehot_to_feature_x`` (128, element only).
``layer:i`` (i = 1…5)
    the leading ``0e`` block of the output of ``{i-1}_equivariant_gate`` (128 each; e3nn
    ``Gate`` puts the scalars first; the width is read from the module's irreps).
``bb``
    ``layer:1`` … ``layer:5`` concatenated (640).
``node``
    ``data["x"]`` entering ``reduce_input_to_hidden`` (128; equals ``layer:5``).
``ll``
    same tensor as ``node``: the read-out is ``reduce_input_to_hidden`` (128→64) followed
    by ``reduce_hidden_to_energy`` (64→1) with no nonlinearity between them, so the last
    affine map of the energy read-out takes the 128 node scalars (taking the 64-dim
    intermediate would only project them linearly). On SevenNet-MF the modal one-hot
    appended inside ``reduce_input_to_hidden`` is not part of the features.

These checkpoints have ``is_parity=False``: their ``0e`` channels are invariant under
proper rotations only; see docs/models.md for the measured mirror sensitivity.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ase import Atoms

from ..errors import CheckpointError, ModelError
from ._checkpoint import (
    check_choice,
    checkpoint_spec,
    read_checkpoint,
    user_checkpoint_metadata,
    weights_mismatch,
)
from .base import ModelCard, ModelSpec
from .torch_base import (
    ForwardResult,
    TorchAdapter,
    adapter_factory,
    checkpoint_metadata,
    default_dtype,
    layer_dims,
    package_file,
    prepare_module,
    torch_dtype,
    weights_check,
)

#: registered name -> (file inside sevenn/pretrained_potentials, modal)
CHECKPOINTS = {
    "sevennet-0": "SevenNet_0__11Jul2024/checkpoint_sevennet_0.pth",
    "sevennet-0-22may2024": "SevenNet_0__22May2024/checkpoint_sevennet_0.pth",
    "sevennet-l3i5": "SevenNet_l3i5/checkpoint_l3i5.pth",
    "sevennet-mf-0": "SevenNet_MF_0/checkpoint_sevennet_mf_0.pth",
}
MF_MODALS = ("PBE", "R2SCAN")
N_LAYERS = 5
WIDTH = 128
#: structures handed to ``compute`` at once; ``forward`` packs them into passes of at
#: most ``ATOMS_PER_PASS`` atoms. On 2 CPU cores, batches of ~16 small demo structures
#: (~110 atoms) ran 2-4x faster than one structure per pass, while 8 x 64 atoms in one
#: pass ran slower than 64 atoms at a time (benchmarks/featurize.py, models-offline.md).
BATCH_SIZE = 32
ATOMS_PER_PASS = 128


def _checkpoint_path(key: str) -> Path:
    return package_file(
        "sevenn", "pretrained_potentials", CHECKPOINTS[key], install="pip install sevenn==0.13.0"
    )


def _leading_scalars(irreps: Any) -> int:
    """Number of leading ``l=0`` even channels of an e3nn ``Irreps``."""
    n = 0
    for mul, ir in irreps:
        if ir.l != 0 or ir.p != 1:
            break
        n += mul
    return n


def _cast_floats(data: Any, dtype: Any) -> None:
    import torch

    for key in list(data.keys()):
        value = data[key]
        if isinstance(value, torch.Tensor) and torch.is_floating_point(value):
            data[key] = value.to(dtype)


def _load_user_checkpoint(path: Path) -> tuple[Any, Any]:
    """A SevenNet checkpoint of the user's and its model, errors naming the file."""
    import sevenn.util

    read_checkpoint(
        path, "sevennet", "SevenNet",
        lambda raw: isinstance(raw, dict) and {"config", "model_state_dict"} <= set(raw),
        "no 'config' and 'model_state_dict'",
    )  # fmt: skip
    cp = sevenn.util.load_checkpoint(str(path))
    try:
        model = cp.build_model()
    except (RuntimeError, AssertionError, KeyError, ValueError) as exc:
        raise weights_mismatch(path, "sevennet", "architecture in its config", exc) from exc
    return cp, model


def _user_modal(path: Path, modal: str | None, modals: list[str]) -> str | None:
    """The fidelity of ``sevennet:<path>[@modal]``, checked against the checkpoint's."""
    if not modals:
        if modal is not None:
            raise CheckpointError(
                f"sevennet:{path} has a single fidelity; drop '@{modal}' from the name"
            )
        return None
    return check_choice(path, "sevennet", "modal", modal, sorted(modals))


class SevenNetAdapter(TorchAdapter):
    """Per-atom features of a pretrained SevenNet checkpoint.

    Parameters
    ----------
    key : str or None
        One of :data:`CHECKPOINTS`; None with ``path``.
    modal : str, optional
        Fidelity head of a multi-fidelity checkpoint (case-sensitive, e.g. ``"PBE"``).
    dtype : {"float32", "float64"}
    device : str
    path : Path, optional
        A user's checkpoint file (``sevennet:<path>``) instead of a shipped one.
    """

    batch_size = BATCH_SIZE
    atoms_per_pass = ATOMS_PER_PASS

    def __init__(
        self,
        key: str | None,
        modal: str | None = None,
        dtype: str = "float32",
        device: str = "cpu",
        path: Path | None = None,
    ):
        import sevenn.util

        super().__init__(dtype, device)
        self.key = key
        self.user_checkpoint = path is not None
        if path is None:
            if key not in CHECKPOINTS:
                raise ModelError(f"unknown SevenNet checkpoint {key!r}")
            self.path = _checkpoint_path(key)
            self.name = key if modal is None else f"{key}:{modal}"
            cp = sevenn.util.load_checkpoint(str(self.path))
            model = cp.build_model()
        else:
            self.path = path
            self.name = f"sevennet:{path}" + ("" if modal is None else f"@{modal}")
            cp, model = _load_user_checkpoint(path)
        self.config = cp.config
        if dtype != "float32":  # e3nn bakes constants in at construction: rebuild, then load
            from sevenn.model_build import build_E3_equivariant_model

            state = model.state_dict()
            with default_dtype(dtype):
                model = build_E3_equivariant_model(cp.config)
            model.load_state_dict(state, strict=True)
        self.model = prepare_module(model, dtype, device)
        self.cutoff = float(cp.config["cutoff"])
        self.type_map = dict(cp.config["_type_map"])
        modal_map = getattr(model, "modal_map", None)
        if self.user_checkpoint:
            modal = _user_modal(path, modal, list(modal_map or []))
        elif modal_map:
            if modal not in modal_map:
                raise ModelError(
                    f"{key} needs a fidelity head: use one of "
                    f"{', '.join(f'{key}:{m}' for m in modal_map)} (case-sensitive)"
                )
        elif modal is not None:
            raise ModelError(f"{key} has a single head; drop ':{modal}' from the name")
        self.modal = modal
        self._calculator = None
        if "readout_FCN" in model._modules:
            raise ModelError(f"{self.name}: checkpoints with an MLP read-out are not supported")
        self.n_layers = int(cp.config.get("num_convolution_layer", N_LAYERS))
        self._gates = [f"{i}_equivariant_gate" for i in range(self.n_layers)]
        self._widths = [
            _leading_scalars(model._modules["onehot_to_feature_x"].irreps_out),
            *(_leading_scalars(model._modules[g].gate.irreps_out) for g in self._gates),
        ]

    # -- interface -------------------------------------------------------------------
    def layer_dims(self) -> dict[str, int]:
        return layer_dims(self._widths[-1], self._widths[-1], self._widths)

    def supported_elements(self) -> set[int]:
        return {int(z) for z in self.type_map}

    def metadata(self) -> dict[str, Any]:
        settings = {"dtype": self.dtype, "cutoff": self.cutoff, "modal": self.modal}
        if self.user_checkpoint:
            is_parity = bool(self.config.get("is_parity"))
            return user_checkpoint_metadata(self, "sevenn", **settings, is_parity=is_parity)
        return checkpoint_metadata("sevenn", self.path, **settings)

    # -- implementation --------------------------------------------------------------
    def graph(self, atoms: Atoms) -> Any:
        """The input graph of one structure, as the package's calculator builds it."""
        from sevenn.atom_graph_data import AtomGraphData
        from sevenn.train.dataload import unlabeled_atoms_to_graph

        data = AtomGraphData.from_numpy_dict(unlabeled_atoms_to_graph(atoms, self.cutoff))
        _cast_floats(data, torch_dtype(self.dtype))
        if self.modal is not None:
            data["data_modality"] = self.modal
        return data.to(self.device)

    def build_batch(self, structures: Sequence[Atoms]) -> Any:
        """One graph, or a torch-geometric ``Batch`` of several (as ``sevenn inference``)."""
        from torch_geometric.data import Batch

        graphs = [self.graph(a) for a in structures]
        return Batch.from_data_list(graphs) if len(graphs) > 1 else graphs[0]

    def run_model(self, batch: Any, structures: Sequence[Atoms]) -> ForwardResult:
        """The modules in order up to ``force_output`` (skipped: no forces, no stress)."""
        model = self.model
        model.set_is_batch_data(len(structures) > 1)
        per_layer: list[Any] = [None] * (self.n_layers + 1)
        node = None
        cast = self.dtype != "float32"
        try:
            data = model._preprocess(batch)
            for name, module in model._modules.items():
                if name == "force_output":
                    break
                if name == "reduce_input_to_hidden":
                    node = data["x"].clone()
                data = module(data)
                if cast and "one_hot" in name.replace("onehot", "one_hot"):
                    _cast_floats(data, torch_dtype(self.dtype))  # one-hots come out float32
                if name == "onehot_to_feature_x":
                    per_layer[0] = data["x"][:, : self._widths[0]].clone()
                elif name in self._gates:
                    i = self._gates.index(name) + 1
                    per_layer[i] = data["x"][:, : self._widths[i]].clone()
        finally:
            model.set_is_batch_data(False)
        if node is None or any(t is None for t in per_layer):
            raise ModelError(f"{self.name}: the forward pass did not reach every layer")
        energy = data["inferred_total_energy"].reshape(-1)
        return ForwardResult(ll=node, node=node, per_layer=per_layer, energy=energy)

    def calculator(self) -> Any:
        """The package's own ASE calculator around the same model instance (E, F, stress)."""
        from sevenn.calculator import SevenNetCalculator

        if self._calculator is None:
            self._calculator = SevenNetCalculator(
                self.model, file_type="model_instance", device=self.device, modal=self.modal
            )
        return self._calculator


def _user_adapter(
    path: Path, modal: str | None, dtype: str = "float32", device: str = "cpu"
) -> SevenNetAdapter:
    return SevenNetAdapter(None, modal=modal, dtype=dtype, device=device, path=path)


_DESCRIPTIONS = {
    "sevennet-0": "SevenNet-0 (11Jul2024, MPtrj), 5 interactions, lmax 2",
    "sevennet-0-22may2024": "SevenNet-0 (22May2024, MPtrj), 5 interactions, lmax 2",
    "sevennet-l3i5": "SevenNet-l3i5 (MPtrj), 5 interactions, lmax 3",
}
_DIMS = layer_dims(WIDTH, WIDTH, [WIDTH] * (N_LAYERS + 1))
#: is_parity=False in every checkpoint: the 0e channels are invariant under proper
#: rotations only (mirror sensitivity measured in docs/models.md)
_CARD = ModelCard(
    architecture="SevenNet",
    training_data="MPtrj",
    level_of_theory="PBE",
    has_calculator=True,
    symmetry="SO(3)",
)
#: SevenNet-MF-0 was trained on MPtrj (PBE/PBE+U) and MP-r2SCAN, one read-out per fidelity
_MF_LEVELS = {"PBE": "PBE", "R2SCAN": "r2SCAN"}


def _mf_card(modal: str) -> ModelCard:
    other = next(m for m in MF_MODALS if m != modal)
    return dataclasses.replace(
        _CARD,
        training_data="MPtrj+MP-r2SCAN",
        level_of_theory=_MF_LEVELS[modal],
        shared_initialisation=f"sevennet-mf-0:{other}",
    )


SPECS = [
    ModelSpec(
        name=key,
        factory=adapter_factory(SevenNetAdapter, key),
        layers=_DIMS,
        description=description,
        weights_available=weights_check(lambda k=key: _checkpoint_path(k)),
        relative_cost=3.2 if key == "sevennet-l3i5" else 1.0,  # demo: 104 s vs 32 s
        card=_CARD,
    )
    for key, description in _DESCRIPTIONS.items()
] + [
    ModelSpec(
        name=f"sevennet-mf-0:{modal}",
        factory=adapter_factory(SevenNetAdapter, "sevennet-mf-0", modal=modal),
        layers=_DIMS,
        description=f"SevenNet-MF-0 multi-fidelity, {modal} head",
        weights_available=weights_check(lambda: _checkpoint_path("sevennet-mf-0")),
        card=_mf_card(modal),
    )
    for modal in MF_MODALS
]
SPECS.append(
    checkpoint_spec(
        "sevennet",
        _user_adapter,
        "a SevenNet checkpoint: sevennet:<file>[@modal] (e.g. SevenNet-OMAT, -MF-ompa@mpa, "
        "-omni; dimensions depend on the file)",
        choice="modal",
        # a user's file: training data unknown here; SO(3) unless its config has is_parity
        architecture=_CARD.architecture,
        symmetry=_CARD.symmetry,
    )
)
