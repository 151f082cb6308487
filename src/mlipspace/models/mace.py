"""MACE adapters: ``mace:<path>[@<head>]`` (a user's MACE checkpoint) and ``mace-random:<seed>``.

``mace:<path>`` loads the foundation checkpoints as ``mace_mp``/``mace_off`` download them
(a whole pickled model, e.g. ``mace-omat-0-medium.model``,
``2023-12-03-mace-128-L1_epoch-199.model``) and every ``.model`` mace's training writes,
as well as state dicts saved with their architecture (:func:`model_from_checkpoint`).

They run in the ``mace`` family environment (``mlipspace env create mace``): mace-torch
pins ``e3nn==0.4.4``, which the main environment's sevenn cannot use.

``model`` is a ``mace.modules.MACE`` or ``ScaleShiftMACE``. Each interaction ``i``
(``model.interactions[i]`` then ``model.products[i]``) produces node features
(``products[i].linear.irreps_out``, e.g. ``64x0e+64x1o``; the last layer keeps only
``64x0e``), and **each layer has its own read-out** ``model.readouts[i]``; the energy is
the sum of the read-outs (scaled and shifted in ``ScaleShiftMACE``) plus the
per-element reference energies. Which tensors are taken:

``layer:0``
    ``model.node_embedding`` output (element only, the ``0e`` channels).
``layer:i`` (i = 1…n)
    the ``0e`` channels of ``products[i-1]``'s output, i.e. the scalars readout ``i-1``
    consumes.
``bb`` and ``node``
    ``layer:1`` … ``layer:n`` concatenated: exactly ``MACECalculator.get_descriptors(
    invariants_only=True)`` (checked in the tests). For MACE the invariant node
    features entering the read-outs are these per-layer scalars, so ``node == bb``.
``ll``
    the input of the last linear map of every read-out, concatenated over layers (the
    LLPR definition used by Chorna et al.): the ``0e`` channels of layer ``i`` for the
    linear read-outs, and the hidden activation ``non_linearity(linear_1(x))`` entering
    ``linear_2`` for the non-linear last read-out (``MLP_irreps``, e.g. 16). The energy
    is one linear function of ``ll`` (plus per-element constants).

``mace-random:<seed>`` is the negative control: a MACE-MP-like ``ScaleShiftMACE`` (89
elements, r_max 5 Å, 8 Bessel functions, l_max 3, 2 interactions
``RealAgnosticResidualInteractionBlock``, hidden ``64x0e+64x1o``, MLP ``16x0e``,
correlation 3, SiLU, zero reference energies) whose weights come from
``torch.manual_seed(seed)``.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from ..errors import CheckpointError, ModelError
from ._checkpoint import checkpoint_spec, measure_symmetry, provenance, torch_load, wrong_family
from .base import ModelCard, ModelSpec
from .torch_base import (
    Capture,
    ForwardResult,
    TorchAdapter,
    layer_dims,
    package_version,
    prepare_module,
    quiet_loggers,
)

FAMILY = "mace"
#: the architecture of ``mace-random:<seed>``
RANDOM_ARCHITECTURE: dict[str, Any] = {
    "r_max": 5.0,
    "num_bessel": 8,
    "num_polynomial_cutoff": 5,
    "max_ell": 3,
    "num_interactions": 2,
    "hidden_irreps": "64x0e + 64x1o",
    "MLP_irreps": "16x0e",
    "correlation": 3,
    "avg_num_neighbors": 20.0,
    "atomic_numbers": list(range(1, 90)),
}
RANDOM_WIDTH = 64
RANDOM_MLP = 16
#: structures per forward pass; batching was slower than single structures on 2 CPU
#: cores (463 vs 644 atoms/s for 8 x 64 atoms, models-offline.md)
BATCH_SIZE = 1


@contextlib.contextmanager
def _quiet() -> Any:
    """Silence mace's import-time prints ("cuequivariance ... not available") and warnings."""
    with (
        contextlib.redirect_stdout(io.StringIO()),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore")
        with quiet_loggers():
            yield


def import_mace() -> Any:
    """Import mace-torch (and e3nn) quietly; a clear error where it is not installed.

    e3nn 0.4.4 (pinned by mace-torch) reads its ``constants.pt`` with a bare
    ``torch.load``, which torch >= 2.6 refuses (``weights_only=True`` by default) because
    the file holds ``slice`` objects; ``slice`` is allow-listed first, which is safe.
    """
    import torch

    torch.serialization.add_safe_globals([slice])
    try:
        with _quiet():
            import e3nn.o3  # noqa: F401  (loads constants.pt)
            import mace.modules
    except ModuleNotFoundError as exc:
        raise ModelError(
            f"mace-torch is not importable here ({exc}); MACE models run in the 'mace' family "
            "environment: run `mlipspace env create mace`"
        ) from exc
    import mace

    return mace


def build_random_mace(seed: int, num_elements: int | None = None) -> Any:
    """The ``mace-random`` architecture with weights drawn from ``torch.manual_seed(seed)``.

    Parameters
    ----------
    seed : int
        Seed of the weights; the global torch RNG state is restored afterwards.
    num_elements : int, optional
        Use only the first ``num_elements`` elements (H, He, ...); smaller models for tests.
    """
    import torch

    import_mace()
    from e3nn import o3
    from mace import modules

    arch = RANDOM_ARCHITECTURE
    numbers = arch["atomic_numbers"][: num_elements or None]
    interaction = modules.interaction_classes["RealAgnosticResidualInteractionBlock"]
    with torch.random.fork_rng(devices=[]), _quiet():
        torch.manual_seed(int(seed))
        model = modules.ScaleShiftMACE(
            r_max=arch["r_max"],
            num_bessel=arch["num_bessel"],
            num_polynomial_cutoff=arch["num_polynomial_cutoff"],
            max_ell=arch["max_ell"],
            interaction_cls=interaction,
            interaction_cls_first=interaction,
            num_interactions=arch["num_interactions"],
            num_elements=len(numbers),
            hidden_irreps=o3.Irreps(arch["hidden_irreps"]),
            MLP_irreps=o3.Irreps(arch["MLP_irreps"]),
            atomic_energies=np.zeros(len(numbers)),
            avg_num_neighbors=arch["avg_num_neighbors"],
            atomic_numbers=numbers,
            correlation=arch["correlation"],
            gate=torch.nn.functional.silu,
            atomic_inter_scale=1.0,
            atomic_inter_shift=0.0,
        )
    return model.float().eval()


def _scalars(irreps: Any, what: str) -> int:
    first = irreps[0]
    if first.ir.l != 0 or first.ir.p != 1:
        raise ModelError(f"MACE {what} irreps {irreps} do not start with even scalars (0e)")
    return int(first.mul)


class MACEAdapter(TorchAdapter):
    """Per-atom features of a MACE energy model.

    Parameters
    ----------
    model : torch.nn.Module
        A ``mace.modules.MACE`` or ``ScaleShiftMACE``.
    name : str
        Registered name (``mace:<path>`` or ``mace-random:<seed>``).
    dtype : {"float32", "float64"}
    device : str
    provenance : dict, optional
        Extra metadata (file and digest, or seed).
    head : str, optional
        Read-out head of a multi-head model; by default the only head, or the one
        named "default" (the rule of ``MACECalculator``).
    """

    batch_size = BATCH_SIZE

    def __init__(
        self,
        model: Any,
        name: str,
        dtype: str = "float32",
        device: str = "cpu",
        provenance: dict[str, Any] | None = None,
        head: str | None = None,
    ):
        mace = import_mace()
        from mace.tools.utils import AtomicNumberTable

        super().__init__(dtype, device)
        self.name = name
        self.provenance = dict(provenance or {})
        missing = [a for a in ("node_embedding", "products", "readouts") if not hasattr(model, a)]
        if missing or type(model).__name__ not in ("MACE", "ScaleShiftMACE"):
            raise ModelError(
                f"{name}: {type(model).__name__} is not a MACE energy model "
                "(MACE or ScaleShiftMACE)"
            )
        self.model = prepare_module(model, dtype, device)
        self.mace_version = getattr(mace, "__version__", package_version("mace-torch"))
        self.r_max = float(model.r_max)
        self.z_table = AtomicNumberTable([int(z) for z in model.atomic_numbers])
        self.heads = list(getattr(model, "heads", None) or ["Default"])
        self.head = self._choose_head(head)
        self.head_index = self.heads.index(self.head)
        self.n_layers = len(model.products)
        if len(model.readouts) not in (1, self.n_layers):
            raise ModelError(f"{name}: {len(model.readouts)} read-outs for {self.n_layers} layers")
        self.widths = [_scalars(model.node_embedding.linear.irreps_out, "embedding")]
        self.widths += [
            _scalars(product.linear.irreps_out, f"layer {i + 1}")
            for i, product in enumerate(model.products)
        ]
        self.ll_widths = [self._ll_width(readout) for readout in model.readouts]

    def _choose_head(self, head: str | None) -> str:
        if head is not None:
            if head not in self.heads:
                raise ModelError(f"{self.name}: no head {head!r}; heads are {self.heads}")
            return head
        if len(self.heads) == 1:
            return self.heads[0]
        default = [h for h in self.heads if h.lower() == "default"]
        if not default:
            raise ModelError(
                f"{self.name}: multi-head model without a 'default' head ({self.heads})"
            )
        return default[0]

    def _ll_width(self, readout: Any) -> int:
        if hasattr(readout, "linear_2"):
            return int(readout.linear_2.irreps_in.dim) // max(1, getattr(readout, "num_heads", 1))
        return _scalars(readout.linear.irreps_in, "read-out input")

    # -- interface -------------------------------------------------------------------
    def layer_dims(self) -> dict[str, int]:
        return layer_dims(sum(self.ll_widths), sum(self.widths[1:]), self.widths)

    def supported_elements(self) -> set[int]:
        return {int(z) for z in self.z_table.zs}

    def metadata(self) -> dict[str, Any]:
        import torch

        return {
            "package": "mace-torch",
            "package_version": self.mace_version,
            "e3nn_version": package_version("e3nn"),
            "torch_version": torch.__version__,
            "dtype": self.dtype,
            "r_max": self.r_max,
            "head": self.head,
            **self.provenance,
            # a user's checkpoint: its symmetry is measured, not assumed
            **(measure_symmetry(self) if "checkpoint_sha256" in self.provenance else {}),
        }

    # -- implementation --------------------------------------------------------------
    def batch(self, structures: Sequence[Atoms]) -> Any:
        """A mace ``torch_geometric`` batch of ``structures`` in the model's dtype."""
        from mace import data as mace_data
        from mace.tools import torch_geometric, torch_tools

        self.check_elements(structures)
        graphs = []
        with torch_tools.default_dtype(self.dtype):
            for atoms in structures:
                clean = Atoms(atoms.numbers, atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
                config = mace_data.config_from_atoms(clean, head_name=self.head)
                graphs.append(
                    mace_data.AtomicData.from_config(
                        config, z_table=self.z_table, cutoff=self.r_max, heads=self.heads
                    )
                )
        loader = torch_geometric.dataloader.DataLoader(
            graphs, batch_size=len(graphs), shuffle=False
        )
        return next(iter(loader)).to(self.device)

    def build_batch(self, structures: Sequence[Atoms]) -> Any:
        return self.batch(structures)

    def run_model(self, batch: Any, structures: Sequence[Atoms]) -> ForwardResult:
        """The model with ``compute_force=False`` (no forces, stress or virials)."""
        import torch

        model = self.model
        h = self.head_index
        with Capture() as cap:
            cap.output(model.node_embedding, "layer:0", lambda out: out[:, : self.widths[0]])
            for i, product in enumerate(model.products):
                cap.output(product, f"layer:{i + 1}", lambda out, i=i: out[:, : self.widths[i + 1]])
            for i, readout in enumerate(model.readouts):
                width = self.ll_widths[i]
                if hasattr(readout, "linear_2"):
                    cap.input(
                        readout.linear_2, f"ll:{i}", lambda a, w=width: a[0][:, h * w : (h + 1) * w]
                    )
                else:
                    cap.input(readout, f"ll:{i}", lambda a, w=width: a[0][:, :w])
            out = model(batch.to_dict(), compute_force=False, compute_stress=False)
        per_layer = [cap[f"layer:{i}"] for i in range(self.n_layers + 1)]
        ll = torch.cat([cap[f"ll:{i}"] for i in range(len(model.readouts))], dim=1)
        node = torch.cat(per_layer[1:], dim=1)
        return ForwardResult(ll=ll, node=node, per_layer=per_layer, energy=out["energy"])

    def calculator(self, model_path: str | None = None) -> Any:
        """mace's own ``MACECalculator`` (for tests and benchmarks).

        With ``model_path`` the calculator loads that file itself; otherwise it wraps this
        adapter's model.
        """
        with _quiet():
            from mace.calculators import MACECalculator

            kwargs = {"device": self.device, "default_dtype": self.dtype, "head": self.head}
            if model_path is not None:
                return MACECalculator(model_paths=model_path, **kwargs)
            return MACECalculator(models=self.model, **kwargs)


def _state_dict(obj: dict[str, Any]) -> dict[str, Any]:
    """The weights of a MACE state-dict checkpoint: ``obj["model"]`` (mace's training
    checkpoints, ``checkpoints/*.pt``) or the file's remaining tensors."""
    import torch

    state = obj.get("model")
    if isinstance(state, torch.nn.Module):
        return state.state_dict()
    if isinstance(state, dict):
        return state
    return {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def model_from_checkpoint(obj: Any, path: Path) -> tuple[Any, str]:
    """The MACE module of a loaded checkpoint and the checkpoint's format.

    Two formats are accepted:

    ``pickled model``
        a whole ``torch.nn.Module`` (``torch.save(model, f)``): the foundation models as
        ``mace_mp``/``mace_off`` download them and every ``.model`` mace's training writes.
    ``state dict``
        a dict holding the weights (``"model"``, as in mace's training checkpoints, or the
        tensors themselves) and the architecture under ``"config"``, the keyword arguments
        ``mace.tools.scripts_utils.extract_config_mace_model(model)`` returns. A state dict
        alone does not define the network, so one without ``"config"`` is refused.
    """
    import torch

    if isinstance(obj, torch.nn.Module):
        return obj, "pickled model"
    if not isinstance(obj, dict):
        raise wrong_family(path, FAMILY, "MACE", f"found a {type(obj).__name__}")
    config = obj.get("config")
    state = _state_dict(obj)
    if not state:
        raise wrong_family(path, FAMILY, "MACE", "a dict without weights")
    if not isinstance(config, dict):
        raise CheckpointError(
            f"mace:{path}: a MACE state dict without its architecture; save it as "
            "{'config': mace.tools.scripts_utils.extract_config_mace_model(model), "
            "'model': model.state_dict()} or save the whole model (torch.save(model, f))"
        )
    if "error" in config:  # extract_config_mace_model's answer for a plain MACE
        raise CheckpointError(f"mace:{path}: 'config' holds an error: {config['error']}")
    from mace import modules

    cls = modules.ScaleShiftMACE if "atomic_inter_scale" in config else modules.MACE
    try:
        with _quiet():
            model = cls(**config)
    except Exception as exc:
        raise CheckpointError(
            f"mace:{path}: 'config' does not build a MACE model ({type(exc).__name__}: {exc})"
        ) from exc
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(
            f"mace:{path}: the weights do not match the architecture in 'config': {exc}"
        ) from exc
    return model, "state dict"


def load_mace_checkpoint(
    path: Path, head: str | None = None, dtype: str = "float32", device: str = "cpu"
) -> MACEAdapter:
    """The adapter of the MACE checkpoint file ``path`` (see :func:`model_from_checkpoint`).

    ``head`` picks the read-out head of a multi-head model (default: its only head, or
    the one named "default", as ``MACECalculator`` does).
    """
    import_mace()
    with _quiet():
        obj = torch_load(path, FAMILY)
    model, fmt = model_from_checkpoint(obj, path)
    record = provenance(path, checkpoint_format=fmt)
    name = f"mace:{path}" + (f"@{head}" if head else "")
    return MACEAdapter(model, name, dtype=dtype, device=device, provenance=record, head=head)


def _random_factory(
    argument: str | None = None, dtype: str = "float32", device: str = "cpu"
) -> MACEAdapter:
    try:
        seed = int(argument or "")
    except ValueError:
        raise ModelError(f"mace-random:<seed> needs an integer seed, not {argument!r}") from None
    model = build_random_mace(seed)
    provenance = {"seed": seed, "architecture": dict(RANDOM_ARCHITECTURE, atomic_numbers="1-89")}
    return MACEAdapter(
        model, f"mace-random:{seed}", dtype=dtype, device=device, provenance=provenance
    )


SPECS = [
    checkpoint_spec(
        FAMILY,
        load_mace_checkpoint,
        "a MACE checkpoint: mace:<file>[@head], a pickled .model (the foundation models) or "
        "a state dict with its config (dimensions depend on the file)",
        choice="head",
        relative_cost=3.0,
        architecture="MACE",
        symmetry="O(3)",
        environment=FAMILY,
    ),
    ModelSpec(
        name="mace-random:",
        factory=_random_factory,
        layers=layer_dims(RANDOM_WIDTH + RANDOM_MLP, 2 * RANDOM_WIDTH, [RANDOM_WIDTH] * 3),
        description="negative control: MACE-MP-like architecture (64x0e+64x1o, 2 layers) with "
        "random weights from the seed",
        weights_available=lambda: True,
        relative_cost=3.0,  # demo: about 100 s on one thread against SevenNet-0's 32 s
        # MACEAdapter.calculator() wraps the random model in mace's own MACECalculator.
        # Parametrised names are never in calculator_models(), so the diagnostics do not
        # run it on their own; diagnostics.calculator_for("mace-random:<seed>") works in
        # the mace environment (tests/test_models_mace.py).
        card=ModelCard(
            architecture="MACE",
            kind="control",
            has_calculator=True,
            symmetry="O(3)",
            environment=FAMILY,
        ),
    ),
]

__all__ = [
    "SPECS",
    "MACEAdapter",
    "build_random_mace",
    "import_mace",
    "load_mace_checkpoint",
    "model_from_checkpoint",
]
