"""DIEP adapter: the ``diep_fold1`` model (MatPES r2SCAN) shipped in the diep wheel.

DIEP is M3GNet-like: element embedding, three graph blocks of 64 invariant channels,
and a per-atom gated MLP read-out ``final_layer.gated`` whose output is
``layers(h) * gates(h)`` (both branches 64 → 64 → 64 → 64 → 1, SiLU; sigmoid on the gate).
Tensors taken (``model`` is ``Potential.model``):

``layer:0``
    ``model.embedding`` output ``[0]``: the per-atom element embedding (64).
``layer:i`` (i = 1…3)
    ``model.graph_layers[i-1]`` output ``[1]``: node features after block ``i`` (64),
    the official ``predict_structure(return_features=True)["gc_i"]["node_feat"]``.
``bb``
    ``layer:1`` … ``layer:3`` concatenated (192).
``node``
    ``node_feat`` entering ``model.final_layer`` (64; equals ``layer:3``).
``ll``
    the inputs of the two last ``nn.Linear`` of the gated read-out, concatenated:
    ``[hidden of layers (64), hidden of gates (64)]`` (128). The per-atom energy is
    ``(w·a + b) * sigmoid(v·c + d)`` of exactly these two vectors, so together they are
    the features entering the read-out's last linear maps.

The energy of the same forward pass is ``Potential.forward`` with forces and stress
switched off (``data_std * E + data_mean + element_refs``), as the ASE calculator
computes it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from .base import ModelCard, ModelSpec
from .torch_base import (
    Capture,
    ForwardResult,
    TorchAdapter,
    adapter_factory,
    file_sha256,
    layer_dims,
    package_file,
    package_version,
    prepare_module,
    weights_check,
)

WIDTH = 64
N_BLOCKS = 3
#: structures per forward: batching was neutral on 2 CPU cores and saves per-call overhead
BATCH_SIZE = 8
MODEL_FILES = ("model.json", "model.pt", "state.pt")


def model_dir() -> Path:
    """The folder of ``diep_fold1`` inside the installed diep package."""
    return package_file(
        "diep", "pretrained_models", "diep_fold1", install="pip install diep==2.0.0"
    )


@contextlib.contextmanager
def _precision(dtype: str) -> Iterator[None]:
    """Set diep's global float dtype (it reads ``diep.config.float_th`` at run time)."""
    from diep import config

    saved = (config.float_th, config.float_np)
    import torch

    previous_default = torch.get_default_dtype()
    size = 64 if dtype == "float64" else 32
    config.set_default_dtype("float", size)
    try:
        yield
    finally:
        config.float_th, config.float_np = saved
        torch.set_default_dtype(previous_default)


class DIEPAdapter(TorchAdapter):
    """Per-atom features of the pretrained DIEP model.

    Parameters
    ----------
    dtype : {"float32", "float64"}
    device : str
    """

    name = "diep"
    batch_size = BATCH_SIZE

    def __init__(self, dtype: str = "float32", device: str = "cpu"):
        from diep.pretrained import DIEPCalculator, load_potential

        super().__init__(dtype, device)
        self.path = model_dir()
        with _precision(dtype):
            pot = load_potential(self.path, device=device, stress=False)
        pot.calc_forces = False
        pot.calc_stresses = False
        pot.calc_hessian = False
        self.potential = prepare_module(pot, dtype, device)
        # the converter of the package's own calculator (ase Atoms -> graph)
        self.graph_converter = DIEPCalculator(potential=pot, stress_unit="eV/A3").graph_converter
        self.cutoff = float(pot.model.cutoff)

    # -- interface -------------------------------------------------------------------
    def layer_dims(self) -> dict[str, int]:
        return layer_dims(2 * WIDTH, WIDTH, [WIDTH] * (N_BLOCKS + 1))

    def supported_elements(self) -> set[int]:
        from ase.data import atomic_numbers

        return {atomic_numbers[s] for s in self.potential.model.element_types}

    def metadata(self) -> dict[str, Any]:
        import torch

        return {
            "package": "diep",
            "package_version": package_version("diep"),
            "torch_version": torch.__version__,
            "checkpoint": f"{self.path.name}/model.pt",
            "checkpoint_sha256": file_sha256(str(self.path / "model.pt")),
            "dtype": self.dtype,
            "cutoff": self.cutoff,
        }

    # -- implementation --------------------------------------------------------------
    def _graph(self, atoms: Atoms, index: int) -> tuple[Any, Any, Any]:
        wrapped = atoms.copy()
        wrapped.wrap()  # as DIEPCalculator does
        try:
            return self.graph_converter.get_graph(wrapped)
        except Exception as exc:
            raise self.graph_error(atoms, index, exc) from exc

    def build_batch(self, structures: Sequence[Atoms]) -> tuple[Any, Any, Any]:
        """``(graph or Batch, stacked lattices, state attributes)`` on the device."""
        import torch
        from torch_geometric.data import Batch

        with _precision(self.dtype):
            parts = [self._graph(a, i) for i, a in enumerate(structures)]
            graphs = [p[0] for p in parts]
            g = Batch.from_data_list(graphs) if len(graphs) > 1 else graphs[0]
            lattice = torch.cat([p[1] for p in parts]).to(self.device)
            state = torch.as_tensor(np.asarray(parts[0][2])).to(self.device)
        return g.to(self.device), lattice, state

    def run_model(self, batch: tuple[Any, Any, Any], structures: Sequence[Atoms]) -> ForwardResult:
        """``Potential.forward`` with forces and stress off; energies in eV."""
        import torch

        g, lattice, state = batch
        model = self.potential.model
        with _precision(self.dtype), Capture() as cap:
            cap.output(model.embedding, "layer:0", select=lambda out: out[0])
            for i, block in enumerate(model.graph_layers):
                cap.output(block, f"layer:{i + 1}", select=lambda out: out[1])
            cap.input(model.final_layer, "node", select=lambda args: args[0].node_feat)
            gated = model.final_layer.gated
            cap.input(gated.layers[-1], "ll_value")
            cap.input(gated.gates[-2], "ll_gate")
            energy = self.potential(g, lattice, state)[0]
        ll = torch.cat([cap["ll_value"], cap["ll_gate"]], dim=1)
        per_layer = [cap[f"layer:{i}"] for i in range(N_BLOCKS + 1)]
        return ForwardResult(ll=ll, node=cap["node"], per_layer=per_layer, energy=energy)

    def calculator(self) -> Any:
        """The package's own ASE calculator (a separate float32 model, no stress)."""
        from diep.pretrained import make_calculator

        return make_calculator(self.path, device=self.device, stress=False)


SPECS = [
    ModelSpec(
        name="diep",
        factory=adapter_factory(DIEPAdapter),
        layers=layer_dims(2 * WIDTH, WIDTH, [WIDTH] * (N_BLOCKS + 1)),
        description="DIEP diep_fold1 (MatPES r2SCAN), 3 blocks of 64, M3GNet-like",
        weights_available=weights_check(model_dir, files=MODEL_FILES),
        relative_cost=1.3,  # demo: 42 s against SevenNet-0's 32 s
        card=ModelCard(
            architecture="DIEP",
            training_data="MatPES",
            level_of_theory="r2SCAN",
            has_calculator=True,
            symmetry="O(3)",  # mirror invariance measured at round-off (models-offline.md)
        ),
    )
]
