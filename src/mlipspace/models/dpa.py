"""DPA-3 adapter (deepmd-kit, PyTorch backend): ``dpa:<checkpoint>[@<head>]``.

The checkpoint is a deepmd-kit PyTorch model: a training checkpoint ``.pt`` (the released
DPA-3.1-3M is one, multi-task, with one fitting head per training set such as
``Omat24`` or ``MP_traj_v024_alldata_mixu``) or a frozen TorchScript ``.pth``. It is
loaded with ``deepmd.infer.DeepPot(path, head=...)``, as deepmd's ASE calculator
(``deepmd.calculator.DP``) loads it. ``@<head>`` picks the fitting head of a multi-task
checkpoint (case-insensitive, aliases allowed, as in deepmd); it is required there unless
the checkpoint names a ``Default`` head.

Which tensors are taken (one ``DeepPot.deep_eval.eval_embedding`` pass per structure:
no forces, no virial):

``ll``
    the fitting net's last hidden layer (``atomic_feature``, e.g. 240 wide): the per-atom
    energy is one linear map of it, the definition every family here uses for ``ll``.
``node``
    the descriptor (``descriptor``, ``repflow.n_dim`` wide, e.g. 128): the input of the
    fitting net, which DPA-3 papers call the descriptor. Shared by every head.
``layer:0``
    the node embedding entering ``descriptor.repflows.layers[0]`` (type embedding).
``layer:i`` (i = 1…n)
    the node embedding ``node_ebd`` out of ``repflows.layers[i-1]``. RepFlows calls each
    layer's ``forward`` directly, so forward hooks never fire: the adapter wraps
    ``forward`` for the duration of one pass.
``bb``
    ``layer:1`` … ``layer:n`` concatenated. Only for ``.pt`` checkpoints (a frozen
    ``.pth`` is TorchScript and offers ``ll`` and ``node`` only).

The model computes in the precision stored in its checkpoint (DPA-3.1-3M: float32);
``dtype`` sets the precision of the returned arrays.

deepmd-kit's PyPI wheel ships a C++ op library built for torch 2.11; importing
``deepmd.pt`` on torch 2.13 loads it and fails. DPA-3's Python path never calls those
ops (deepmd registers Python fallbacks for the missing ones), so :func:`import_deepmd`
marks the library as loaded before the import instead of building deepmd-kit from
source (see envs/uma-dpa.txt).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from ..errors import CheckpointError, ModelError
from ._checkpoint import CheckpointAdapter, check_choice, checkpoint_spec, torch_load, wrong_family
from .torch_base import ForwardResult, layer_dims, not_importable, quiet_loggers, set_threads

#: the worker environment DPA-3 shares with UMA (envs/uma-dpa.txt)
ENVIRONMENT = "uma-dpa"


def _quiet() -> contextlib.AbstractContextManager[None]:
    """deepmd logs its batch-size hint and load notes at INFO/WARNING on import and load."""
    return quiet_loggers("deepmd")


def import_deepmd() -> Any:
    """Import deepmd-kit's PyTorch backend (see the module docstring for the op library)."""
    import torch

    try:
        with _quiet():
            from deepmd.env import SHARED_LIB_DIR
    except ModuleNotFoundError as exc:
        raise not_importable(exc, "deepmd-kit", "DPA-3", ENVIRONMENT) from exc
    library = (Path(SHARED_LIB_DIR) / "libdeepmd_op_pt.so").resolve()
    torch.ops.loaded_libraries.add(str(library))
    with _quiet():
        import deepmd.infer

    set_threads()  # deepmd.pt.utils.env sets torch's threads from its own variables
    return deepmd.infer


def checkpoint_heads(raw: Any, path: Path) -> tuple[list[str], dict[str, str]]:
    """Heads of a deepmd ``.pt`` checkpoint and their aliases (empty for single-task)."""
    state = raw.get("model", raw) if isinstance(raw, dict) else None
    extra = state.get("_extra_state") if isinstance(state, dict) else None
    if not isinstance(extra, dict) or "model_params" not in extra:
        raise wrong_family(path, "dpa", "deepmd-kit PyTorch", "no '_extra_state' model_params")
    params = extra["model_params"]
    if "model_dict" not in params:
        return [], {}
    from deepmd.utils.model_branch_dict import get_model_dict

    aliases, _ = get_model_dict(params["model_dict"])
    return list(params["model_dict"]), dict(aliases)


def _choose_head(path: Path, head: str | None, heads: list[str], aliases: dict[str, str]) -> str:
    """deepmd's rule (Default alias, case-insensitive aliases), checked before loading."""
    if not heads:
        if head is not None:
            raise CheckpointError(f"dpa:{path} is single-task; drop '@{head}' from the name")
        return "Default"
    if head is None and "Default" in aliases:
        head = "Default"
    lower = {a.lower(): a for a in aliases}
    if head is not None and head.lower() in lower:
        return aliases[lower[head.lower()]]
    return check_choice(path, "dpa", "head", head, heads)  # raises: absent or unknown


class DPAAdapter(CheckpointAdapter):
    """Per-atom features of a deepmd-kit DPA-3 model.

    Parameters
    ----------
    path : Path
        ``.pt`` checkpoint or frozen ``.pth`` model.
    head : str, optional
        Fitting head of a multi-task checkpoint.
    dtype : {"float32", "float64"}
        Precision of the returned features.
    device : str
    """

    family = "dpa"
    distribution = "deepmd-kit"
    #: one structure per pass: deepmd evaluates frames of equal size together
    atoms_per_pass = 1

    def __init__(
        self, path: Path, head: str | None = None, dtype: str = "float32", device: str = "cpu"
    ):
        infer = import_deepmd()
        super().__init__(path, dtype, device, head)
        self.frozen = path.suffix == ".pth"
        self.head = None
        if self.frozen:
            if head is not None:
                raise CheckpointError(f"dpa:{path}: a frozen .pth model has one head; drop @")
        else:
            raw = torch_load(path, "dpa", weights_only=True)
            heads, aliases = checkpoint_heads(raw, path)
            self.head = _choose_head(path, head, heads, aliases)
        try:
            with _quiet():
                kwargs = {} if self.frozen else {"head": self.head, "no_jit": True}
                self.potential = infer.DeepPot(str(path), **kwargs)
        except (RuntimeError, KeyError, ValueError, AssertionError) as exc:
            raise CheckpointError(
                f"dpa:{path}: deepmd cannot build the model from the checkpoint "
                f"({type(exc).__name__}: {exc})"
            ) from exc
        set_threads()
        self.evaluator = self.potential.deep_eval
        if not self.frozen:
            self._check_weights(raw, heads)
        self.type_map = list(self.evaluator.get_type_map())
        self.z_index = self._z_index(self.type_map)
        self.layers = self._repflow_layers()
        # widths from one pass over a two-atom cell of an element the model knows
        z = min(self.z_index)
        pair = Atoms([z, z], positions=[[0, 0, 0], [1.2, 1.1, 1.0]], cell=np.eye(3) * 6, pbc=True)
        ll, node, per_layer = self._raw(pair)
        self.ll_width, self.node_width = int(ll.shape[1]), int(node.shape[1])
        self.widths = [int(t.shape[1]) for t in per_layer]

    # -- loading ---------------------------------------------------------------------
    def _check_weights(self, raw: dict[str, Any], heads: list[str]) -> None:
        """DeepEval loads with ``strict=False``: every parameter must come from the file."""
        state = raw.get("model", raw)
        if heads:
            prefix = f"model.{self.head}."
            keys = {k.replace(prefix, "model.Default.") for k in state if prefix in k}
        else:
            keys = set(state)
        expected = set(self.evaluator.dp.state_dict()) - {"_extra_state"}
        missing = sorted(expected - keys)
        if missing:
            raise CheckpointError(
                f"dpa:{self.path}: the weights do not match the architecture in its "
                f"model_params: {len(missing)} parameters missing, e.g. {missing[:3]}"
            )

    @staticmethod
    def _z_index(type_map: list[str]) -> dict[int, int]:
        from ase.data import atomic_numbers

        return {atomic_numbers[s]: i for i, s in enumerate(type_map) if s in atomic_numbers}

    def _repflow_layers(self) -> list[Any]:
        """The RepFlow layers of an eager model (none for frozen or non-DPA-3 models)."""
        if self.frozen:
            return []
        model = self.evaluator.dp.model["Default"]
        descriptor = getattr(getattr(model, "atomic_model", None), "descriptor", None)
        repflows = getattr(descriptor, "repflows", None)
        if repflows is None:
            raise CheckpointError(
                f"dpa:{self.path}: the descriptor is {type(descriptor).__name__}, not DPA-3's "
                "RepFlows (descriptor type 'dpa3')"
            )
        return list(repflows.layers)

    # -- interface -------------------------------------------------------------------
    def layer_dims(self) -> dict[str, int]:
        if not self.layers:
            return {"ll": self.ll_width, "node": self.node_width}
        return layer_dims(self.ll_width, self.node_width, self.widths)

    def supported_elements(self) -> set[int]:
        return set(self.z_index)

    def extra_metadata(self) -> dict[str, Any]:
        return {
            "dtype": self.dtype,
            "head": self.head or "",
            "frozen": self.frozen,
            "type_map": ",".join(self.type_map),
        }

    # -- implementation --------------------------------------------------------------
    def types(self, atoms: Atoms) -> np.ndarray:
        """deepmd type indices of the atoms (``type_map`` order)."""
        return np.array([self.z_index[int(z)] for z in atoms.numbers], dtype=np.int32)

    @contextlib.contextmanager
    def _capture(self, captured: dict[str, Any], n_local: int) -> Iterator[None]:
        """Wrap every RepFlow layer's ``forward`` to copy its node embedding."""
        originals = [layer.forward for layer in self.layers]

        def wrapped(i: int, forward: Any) -> Any:
            def call(*args: Any, **kwargs: Any) -> Any:
                if i == 0:
                    captured["layer:0"] = args[0][0, :n_local].detach().clone()
                out = forward(*args, **kwargs)
                captured[f"layer:{i + 1}"] = out[0][0, :n_local].detach().clone()
                return out

            return call

        for i, (layer, forward) in enumerate(zip(self.layers, originals, strict=True)):
            layer.forward = wrapped(i, forward)
        try:
            yield
        finally:
            for layer in self.layers:
                del layer.forward  # back to the class's method

    def _raw(self, atoms: Atoms) -> tuple[Any, Any, list[Any]]:
        """``ll``, ``node`` and the per-layer node embeddings of one structure."""
        import torch

        types = self.types(atoms)
        cell = None
        if atoms.pbc.any():
            # deepmd's ghost-atom count assumes a right-handed cell; -cell spans the same
            # lattice with the opposite handedness
            sign = -1.0 if np.linalg.det(atoms.cell.array) < 0 else 1.0
            cell = (sign * atoms.cell.array).reshape(1, 9)
        captured: dict[str, Any] = {}
        with torch.no_grad(), self._capture(captured, len(atoms)), _quiet():
            descriptor, fitting, _ = self.evaluator.eval_embedding(
                atoms.positions[None], cell, types, dtype="native"
            )
        node = torch.from_numpy(np.ascontiguousarray(descriptor[0]))
        ll = torch.from_numpy(np.ascontiguousarray(fitting[0]))
        per_layer = [captured[f"layer:{i}"] for i in range(len(self.layers) + 1)] if (
            self.layers
        ) else []  # fmt: skip
        return ll, node, per_layer

    def build_batch(self, structures: Sequence[Atoms]) -> Atoms:
        if len(structures) != 1:  # atoms_per_pass = 1 packs one structure per pass
            raise ModelError(f"{self.name}: one structure per pass, got {len(structures)}")
        return structures[0]

    def run_model(self, batch: Atoms, structures: Sequence[Atoms]) -> ForwardResult:
        """One ``eval_embedding`` pass (descriptor and fitting net; no forces, no virial)."""
        ll, node, per_layer = self._raw(batch)
        return ForwardResult(ll=ll, node=node, per_layer=per_layer or [node])

    def calculator(self) -> Any:
        """deepmd's own ASE calculator on the same file and head (energy, forces, virial)."""
        from deepmd.calculator import DP

        with _quiet():
            kwargs = {} if self.frozen else {"head": self.head, "no_jit": True}
            return DP(str(self.path), **kwargs)


SPECS = [
    checkpoint_spec(
        "dpa",
        DPAAdapter,
        "a deepmd-kit DPA-3 checkpoint: dpa:<file.pt>[@head] or a frozen .pth "
        "(dimensions depend on the file)",
        choice="head",
        relative_cost=6.0,
        architecture="DPA-3",
        symmetry="O(3)",
        environment=ENVIRONMENT,
    )
]

__all__ = ["SPECS", "DPAAdapter", "import_deepmd"]
