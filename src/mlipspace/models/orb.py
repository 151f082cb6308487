"""Orb-v3 adapter: ``orb:<checkpoint>[@<loader>]`` (orb-models 0.5.5).

Runs in the ``orb-pet-mattersim`` environment (``mlipspace env create orb-pet-mattersim``).

An Orb checkpoint (``orb-v3-conservative-inf-omat-20250404.ckpt`` and its siblings) is
a plain ``state_dict``; the architecture and neighbour limit come from the loader
function of ``orb_models.forcefield.pretrained`` that the file belongs to. The adapter
calls that loader itself (``<loader>(weights_path=<file>, device=..., precision=...,
compile=False)``), exactly as a user would. The loader is the one named after ``@``,
else the one the file name spells (``orb-v3-direct-20-mpa-*.ckpt`` ->
``orb_v3_direct_20_mpa``), else ``orb_v3_conservative_inf_omat`` or
``orb_v3_direct_inf_omat`` as the weights have a direct force head or not.

The model is a ``ConservativeForcefieldRegressor`` or ``DirectForcefieldRegressor``
whose ``model`` is a ``MoleculeGNS``: an encoder, then ``gnn_stacks[0..4]`` (256-wide
node latents), whose final node latents ``node_features`` go to the heads. The energy
head averages ``node_features`` over the atoms first and then applies its MLP, so no
per-atom tensor lies between ``node_features`` and the energy's last linear map:

``layer:0``
    node latents out of ``model._encoder`` (element embedding, 256).
``layer:i`` (i = 1…5)
    node latents out of ``gnn_stacks[i-1]`` (256 each).
``bb``
    ``layer:1`` … ``layer:5`` (1280).
``node`` and ``ll``
    ``node_features`` (= ``layer:5``), the per-atom input of the energy read-out (256).

Orb is not rotation-invariant by construction (no equivariant layers; invariance is
learnt from augmented data). ``metadata()`` records the rotation sensitivity measured on
a probe structure; ``orb:<file>+rot<N>`` averages over N rotations
(:mod:`mlipspace.models.rotations`).
"""

from __future__ import annotations

import contextlib
import logging
import re
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from ..errors import CheckpointError
from ._checkpoint import CheckpointAdapter, checkpoint_spec, read_checkpoint, weights_mismatch
from .torch_base import Capture, ForwardResult, layer_dims, not_importable, torch_dtype

FAMILY = "orb-pet-mattersim"
#: orb-v3's released width and depth (orb_v3_*_architecture defaults)
WIDTH = 256
N_LAYERS = 5
#: Orb embeds atomic numbers 1..118
ELEMENTS = set(range(1, 119))
#: structures handed to ``compute`` at once; ``forward`` packs them into passes of at
#: most ``ATOMS_PER_PASS`` atoms
BATCH_SIZE = 16
ATOMS_PER_PASS = 256
_FILE_LOADER = re.compile(r"orb-v3-(conservative|direct)-(?:(20|inf)-(omat|mpa)|(omol))")
_TRAINING_DATA = {"omat": "OMat24", "mpa": "MPtrj+Alexandria", "omol": "OMol25"}


def import_orb() -> Any:
    """Import orb-models; a clear error where it is not installed."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from orb_models.forcefield import pretrained
    except ModuleNotFoundError as exc:
        raise not_importable(exc, "orb-models", "Orb", FAMILY) from exc
    return pretrained


def loader_names() -> list[str]:
    """The Orb-v3 loader functions of ``orb_models.forcefield.pretrained``."""
    pretrained = import_orb()
    return sorted(n for n in dir(pretrained) if n.startswith("orb_v3_") and "architecture" not in n)


def loader_from_file_name(name: str) -> str | None:
    """The loader a released file name spells, e.g. ``orb_v3_direct_20_mpa``; else None."""
    match = _FILE_LOADER.search(name)
    if match is None:
        return None
    kind, neighbours, data, omol = match.groups()
    return f"orb_v3_{kind}_omol" if omol else f"orb_v3_{kind}_{neighbours}_{data}"


def _read_state_dict(path: Path) -> dict[str, Any]:
    return read_checkpoint(
        path, "orb", "Orb-v3",
        lambda state: isinstance(state, dict)
        and any(str(k).startswith("model.gnn_stacks.") for k in state),
        "no 'model.gnn_stacks.*' weights (a PET, MatterSim or other family's file needs its "
        "own prefix)",
        weights_only=True,
        expected="an Orb checkpoint (a state_dict saved with torch.save)",
    )  # fmt: skip


def choose_loader(path: Path, state: dict[str, Any], loader: str | None) -> str:
    """The ``pretrained`` function that builds the architecture of ``path``."""
    names = loader_names()
    if loader is not None:
        if loader not in names:
            raise CheckpointError(f"orb:{path}@{loader}: unknown loader; orb-models has {names}")
        return loader
    from_name = loader_from_file_name(path.name)
    if from_name in names:
        return from_name
    direct = any(str(k).startswith("heads.forces.") for k in state)
    return "orb_v3_direct_inf_omat" if direct else "orb_v3_conservative_inf_omat"


@contextlib.contextmanager
def _keep_torch_defaults() -> Iterator[None]:
    """Orb's loaders set torch's global default dtype and matmul precision: restore them."""
    import torch

    dtype = torch.get_default_dtype()
    precision = torch.get_float32_matmul_precision()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        torch.set_default_dtype(dtype)
        torch.set_float32_matmul_precision(precision)


class OrbAdapter(CheckpointAdapter):
    """Per-atom features of an Orb-v3 forcefield.

    Parameters
    ----------
    path : str or Path
        The checkpoint (``~`` and relative paths work).
    loader : str, optional
        Name of the ``orb_models.forcefield.pretrained`` loader (default: from the file).
    dtype : {"float32", "float64"}
    device : str
    """

    family = "orb"
    distribution = "orb-models"
    symmetry_record = "rotations"
    batch_size = BATCH_SIZE
    atoms_per_pass = ATOMS_PER_PASS

    def __init__(
        self,
        path: str | Path,
        loader: str | None = None,
        dtype: str = "float32",
        device: str = "cpu",
    ):
        import torch

        pretrained = import_orb()
        super().__init__(path, dtype, device, loader)
        state = _read_state_dict(self.path)
        self.loader = choose_loader(self.path, state, loader)
        precision = "float64" if self.dtype == "float64" else "float32-highest"
        try:
            with _keep_torch_defaults():
                model = getattr(pretrained, self.loader)(
                    weights_path=str(self.path), device=device, precision=precision, compile=False
                )
        except RuntimeError as exc:  # load_state_dict(strict=True): keys or shapes differ
            raise weights_mismatch(self.path, "orb", f"architecture of {self.loader}", exc) from exc
        self.model = model.eval()
        self.system_config = model.system_config
        # widths differ between Orb variants: read them off one pass on a dimer
        dimer = Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.9]], cell=np.eye(3) * 8, pbc=True)
        with torch.no_grad():
            result = self.run_model(self.build_batch([dimer]), [dimer])
        self.widths = [int(t.shape[1]) for t in result.per_layer]
        self.training_data = next(
            (v for k, v in _TRAINING_DATA.items() if self.loader.endswith(k)), ""
        )

    # -- interface -------------------------------------------------------------------
    def layer_dims(self) -> dict[str, int]:
        return layer_dims(self.widths[-1], self.widths[-1], self.widths)

    def supported_elements(self) -> set[int]:
        return set(ELEMENTS)

    def extra_metadata(self) -> dict[str, Any]:
        return {
            "loader": self.loader,
            "training_data": self.training_data,
            "dtype": self.dtype,
            "radius": float(self.system_config.radius),
            "max_num_neighbors": int(self.system_config.max_num_neighbors),
        }

    # -- implementation --------------------------------------------------------------
    def graph(self, atoms: Atoms) -> Any:
        """The ``AtomGraphs`` of one structure, as orb's calculator builds it."""
        import torch
        from orb_models.forcefield.atomic_system import ase_atoms_to_atom_graphs

        return ase_atoms_to_atom_graphs(
            atoms,
            self.system_config,
            device=torch.device(self.device),
            output_dtype=torch_dtype(self.dtype),
        )

    def build_batch(self, structures: Sequence[Atoms]) -> Any:
        from orb_models.forcefield.base import batch_graphs

        graphs = []
        for index, atoms in enumerate(structures):
            try:
                graphs.append(self.graph(atoms))
            except (ValueError, RuntimeError) as exc:
                raise self.graph_error(atoms, index, exc) from exc
        return batch_graphs(graphs)

    def run_model(self, batch: Any, structures: Sequence[Atoms]) -> ForwardResult:
        """The GNN and the energy head (no forces): node latents of every layer."""
        gns = self.model.model
        with Capture() as cap:
            cap.output(gns._encoder, "layer:0", lambda out: out[0])
            for i, stack in enumerate(gns.gnn_stacks):
                cap.output(stack, f"layer:{i + 1}", lambda out: out[0])
            node = gns(batch)["node_features"]
            energy = self._energy(node, batch)
        per_layer = [cap[f"layer:{i}"] for i in range(len(gns.gnn_stacks) + 1)]
        return ForwardResult(ll=node, node=node, per_layer=per_layer, energy=energy)

    def _energy(self, node: Any, batch: Any) -> Any:
        """Total energies from the heads, as the regressor's ``predict`` computes them."""
        model = self.model
        head = model.heads["energy"]
        if hasattr(model, "grad_forces_name"):  # conservative
            energy = head.denormalize(head(node, batch), batch)
            if model.pair_repulsion:
                energy = energy + model.pair_repulsion_fn(batch)["energy"]
            return energy
        energy = head.predict(node, batch)
        if model.pair_repulsion:
            raw = model._get_raw_repulsion("energy", model.pair_repulsion_fn(batch))
            if raw is not None:
                energy = energy + raw
        return energy

    def calculator(self) -> Any:
        """orb's own ``ORBCalculator`` around the same model (energy, forces, stress)."""
        from orb_models.forcefield.calculator import ORBCalculator

        logging.getLogger("orb_models").setLevel(logging.ERROR)
        return ORBCalculator(self.model, device=self.device)


SPECS = [
    checkpoint_spec(
        "orb",
        OrbAdapter,
        "an Orb-v3 checkpoint: orb:<file.ckpt>[@<pretrained loader>] "
        "(not rotation-invariant; +rot<N> averages)",
        choice="loader",
        layers=layer_dims(WIDTH, WIDTH, [WIDTH] * (N_LAYERS + 1)),
        relative_cost=2.0,
        # a user's file: OMat24/MPA files are PBE(+U), OMol25 wB97M-V
        architecture="Orb-v3",
        symmetry="none",
        environment=FAMILY,
    )
]

__all__ = ["SPECS", "OrbAdapter", "choose_loader", "import_orb", "loader_from_file_name"]
