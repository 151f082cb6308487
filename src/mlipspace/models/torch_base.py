"""The base class of the torch model adapters, and the helpers they share.

A model family written in PyTorch subclasses :class:`TorchAdapter` and implements only
what differs between families: how a batch of structures becomes the model's input
(:meth:`TorchAdapter.build_batch`) and which tensors one forward pass captures
(:meth:`TorchAdapter.run_model`). The base class validates the layer names, checks the
elements, packs structures into forward passes, runs them under ``torch.no_grad()``,
assembles the standard layers and splits the per-atom rows by structure.

Nothing here imports torch at module level, so the family modules can import this module
while keeping ``import mlipspace.models`` light. The layer vocabulary is the one of
:data:`mlipspace.models.base.STANDARD_LAYERS`:

``ll``
    the per-atom features entering the last linear (affine) map of the energy read-out;
``node``
    the invariant node features entering the read-out;
``bb``
    the invariant node features after every interaction layer, concatenated;
``layer:<i>``
    one of those: ``layer:0`` is the element embedding before the first interaction,
    ``layer:1`` … ``layer:<n>`` the output of interaction ``i``.
"""

from __future__ import annotations

import abc
import contextlib
import functools
import hashlib
import logging
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from ..errors import ModelError
from .base import ModelAdapter, unsupported_error

DTYPES = ("float32", "float64")
_LAYER_RE = re.compile(r"^layer:(\d+)$")


def check_dtype(dtype: str) -> str:
    """Validate a dtype name; only ``"float32"`` and ``"float64"`` are accepted."""
    if dtype not in DTYPES:
        raise ModelError(f"dtype must be one of {DTYPES}, not {dtype!r}")
    return dtype


def torch_dtype(dtype: str) -> Any:
    """The ``torch.dtype`` for ``"float32"`` or ``"float64"``."""
    import torch

    return {"float32": torch.float32, "float64": torch.float64}[check_dtype(dtype)]


def set_threads(n_threads: int | None = None) -> int:
    """Set torch's intra-op threads from ``n_threads`` or ``$OMP_NUM_THREADS``.

    Leaves torch's own default when neither is given. Returns the thread count in use.
    """
    import torch

    if n_threads is None:
        env = os.environ.get("OMP_NUM_THREADS", "")
        n_threads = int(env) if env.isdigit() and int(env) > 0 else None
    if n_threads is not None and torch.get_num_threads() != n_threads:
        torch.set_num_threads(n_threads)
    return torch.get_num_threads()


@contextlib.contextmanager
def default_dtype(dtype: str) -> Iterator[None]:
    """Temporarily set torch's default dtype (e3nn bakes constants in at construction)."""
    import torch

    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch_dtype(dtype))
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


@contextlib.contextmanager
def quiet_loggers(*names: str) -> Iterator[None]:
    """Temporarily raise the root logger (and the loggers ``names``) to ERROR.

    For packages that log notes at INFO/WARNING while they import or load a model.
    """
    loggers = [logging.root, *(logging.getLogger(n) for n in names)]
    previous = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, previous, strict=True):
            lg.setLevel(level)


def prepare_module(module: Any, dtype: str, device: str) -> Any:
    """Put a model in eval mode, cast it to ``dtype`` and move it to ``device``."""
    module = module.to(device=device, dtype=torch_dtype(dtype))
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module


class Capture:
    """Forward hooks that copy tensors out of a model during one forward pass.

    Use as a context manager; the hooks are removed on exit. Tensors are detached and
    cloned at hook time, because several models mutate the tensors (or dicts) they
    pass down the stack.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.SiLU(), torch.nn.Linear(4, 1))
    >>> with Capture() as cap:
    ...     cap.input(net[2], "hidden")
    ...     _ = net(torch.ones(2, 3))
    >>> tuple(cap["hidden"].shape)
    (2, 4)
    """

    def __init__(self) -> None:
        self.tensors: dict[str, Any] = {}
        self._handles: list[Any] = []

    def output(self, module: Any, key: str, select: Callable[[Any], Any] | None = None) -> None:
        """Record ``select(output)`` (default: the output itself) of ``module`` as ``key``."""

        def hook(_module: Any, _args: Any, out: Any) -> None:
            self.tensors[key] = (select(out) if select else out).detach().clone()

        self._handles.append(module.register_forward_hook(hook))

    def input(self, module: Any, key: str, select: Callable[[Any], Any] | None = None) -> None:
        """Record ``select(args)`` (default: the first positional argument) entering ``module``."""

        def hook(_module: Any, args: Any) -> None:
            value = select(args) if select else args[0]
            self.tensors[key] = value.detach().clone()

        self._handles.append(module.register_forward_pre_hook(hook))

    def __getitem__(self, key: str) -> Any:
        if key not in self.tensors:
            raise ModelError(f"the forward pass did not reach the hooked tensor {key!r}")
        return self.tensors[key]

    def clear(self) -> None:
        self.tensors.clear()

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def __enter__(self) -> Capture:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def layer_dims(ll: int, node: int, per_layer: Sequence[int]) -> dict[str, int]:
    """The layer → dimension table of a message-passing model.

    Parameters
    ----------
    ll, node : int
        Dimensions of the ``ll`` and ``node`` features.
    per_layer : sequence of int
        Invariant width of ``layer:0`` (embedding) and of every interaction layer.
    """
    dims = {"ll": int(ll), "node": int(node), "bb": int(sum(per_layer[1:]))}
    dims.update({f"layer:{i}": int(d) for i, d in enumerate(per_layer)})
    return dims


def check_layers(
    layers: str | Iterable[str], available: Mapping[str, int], model: str
) -> list[str]:
    """Validate requested layer names against a model's ``layer_dims()``."""
    requested = [layers] if isinstance(layers, str) else list(layers)
    if not requested:
        raise ModelError(f"no layer requested for {model}")
    unknown = [name for name in requested if name not in available]
    if unknown:
        raise ModelError(
            f"{model} has no layer {', '.join(map(repr, unknown))}; it offers {', '.join(available)}"
        )
    return list(dict.fromkeys(requested))


def assemble_layers(
    requested: Sequence[str], ll: Any, node: Any, per_layer: Sequence[Any]
) -> dict[str, Any]:
    """Map requested layer names onto captured per-atom tensors.

    ``per_layer[0]`` is the embedding, ``per_layer[i]`` the invariant output of
    interaction ``i``; ``bb`` concatenates ``per_layer[1:]`` along the feature axis.
    """
    import torch

    out = {}
    for name in requested:
        if name == "ll":
            out[name] = ll
        elif name == "node":
            out[name] = node
        elif name == "bb":
            out[name] = torch.cat(list(per_layer[1:]), dim=1)
        else:
            match = _LAYER_RE.match(name)
            if match is None or int(match.group(1)) >= len(per_layer):
                raise ModelError(f"unknown layer {name!r}")
            out[name] = per_layer[int(match.group(1))]
    return out


def split_rows(tensor: Any, counts: Sequence[int], dtype: str) -> list[np.ndarray]:
    """Split a per-atom tensor of a batch into one numpy array per structure."""
    array = tensor.detach().cpu().numpy().astype(check_dtype(dtype), copy=False)
    if array.shape[0] != int(sum(counts)):
        raise ModelError(f"captured {array.shape[0]} rows for a batch of {int(sum(counts))} atoms")
    return np.split(array, np.cumsum(counts)[:-1])


@functools.lru_cache(maxsize=64)
def package_file(package: str, *parts: str, install: str) -> Path:
    """A file shipped inside an installed package (checkpoints live in the model wheels).

    Raises :class:`ModelError` with the ``install`` hint when the package is missing.
    """
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise ModelError(f"{package} is not installed ({install})")
    return Path(spec.origin).parent.joinpath(*parts)


def not_importable(exc: ImportError, package: str, models: str, environment: str) -> ModelError:
    """The error for a family's package missing here: its models run in ``environment``.

    Parameters
    ----------
    exc : ImportError
        What the import raised.
    package : str
        The distribution(s) that could not be imported, e.g. ``"orb-models"``.
    models : str
        Whose models they are, e.g. ``"Orb"``.
    environment : str
        The worker environment that has them (``mlipspace env create <environment>``).
    """
    return ModelError(
        f"{package} cannot be imported here ({exc}); {models} models run in the "
        f"'{environment}' environment: run `mlipspace env create {environment}`"
    )


def file_sha256(path: str | os.PathLike, length: int = 16) -> str:
    """The first ``length`` hex digits of a file's SHA-256."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:length]


def package_version(distribution: str) -> str:
    """Installed version of a distribution, or ``"not installed"``."""
    try:
        return version(distribution)
    except PackageNotFoundError:
        return "not installed"


def checkpoint_metadata(distribution: str, path: str | os.PathLike, **extra: Any) -> dict[str, Any]:
    """Provenance of a checkpoint file: package version, file name and SHA-256 prefix."""
    import torch

    return {
        "package": distribution,
        "package_version": package_version(distribution),
        "torch_version": torch.__version__,
        "checkpoint": Path(path).name,
        "checkpoint_sha256": file_sha256(str(path)),
        **extra,
    }


def adapter_factory(adapter: Callable[..., ModelAdapter], *args: Any, **kwargs: Any) -> Any:
    """A ``ModelSpec.factory`` building ``adapter(*args, **kwargs, dtype=..., device=...)``.

    For plain (non-parametrised) names, whose factory ignores the argument.
    """

    def factory(
        argument: str | None = None, dtype: str = "float32", device: str = "cpu"
    ) -> ModelAdapter:
        return adapter(*args, **kwargs, dtype=dtype, device=device)

    return factory


def weights_check(
    locate: Callable[[], Path], files: Sequence[str] = (), modules: Sequence[str] = ()
) -> Callable[[], bool]:
    """A ``ModelSpec.weights_available``: whether ``locate()`` exists here.

    Parameters
    ----------
    locate : callable
        Returns the checkpoint file or folder; may raise :class:`ModelError` (e.g. the
        package holding it is not installed), which counts as "not available".
    files : sequence of str
        Files that must exist inside the folder ``locate()`` returns.
    modules : sequence of str
        Modules that must be importable too (compiled extensions the model needs).
    """
    import importlib.util

    def available() -> bool:
        try:
            path = locate()
        except ModelError:
            return False
        if not path.exists() or not all((path / f).is_file() for f in files):
            return False
        return all(importlib.util.find_spec(m) is not None for m in modules)

    return available


def pack_by_atoms(structures: Sequence[Atoms], max_atoms: int | None) -> list[list[Atoms]]:
    """Consecutive groups of structures with at most ``max_atoms`` atoms each.

    A structure larger than ``max_atoms`` gets a group of its own; ``None`` puts every
    structure in one group.
    """
    if max_atoms is None:
        return [list(structures)] if len(structures) else []
    groups: list[list[Atoms]] = []
    size = 0
    for atoms in structures:
        if not groups or size + len(atoms) > max_atoms:
            groups.append([])
            size = 0
        groups[-1].append(atoms)
        size += len(atoms)
    return groups


@dataclass
class ForwardResult:
    """The per-atom tensors one forward pass captured, for every atom of the batch.

    Rows follow the atoms of the batch in order (structure by structure, atoms in their
    order), as torch-geometric style batches concatenate them.

    Parameters
    ----------
    ll : torch.Tensor (n_atoms, d_ll)
        Features entering the last linear map of the energy read-out.
    node : torch.Tensor (n_atoms, d_node)
        Invariant node features entering the read-out.
    per_layer : sequence of torch.Tensor
        ``per_layer[0]`` the element embedding, ``per_layer[i]`` the invariant output of
        interaction ``i``; ``bb`` is their concatenation from 1 on.
    energy : torch.Tensor or ndarray (n_structures,), optional
        Total energy (eV) of every structure from the same pass, when the model gives it.
    """

    ll: Any
    node: Any
    per_layer: Sequence[Any]
    energy: Any = None


class TorchAdapter(ModelAdapter):
    """Base class of the PyTorch model adapters.

    A subclass sets the class attributes and implements three methods; the base class
    provides :meth:`compute`, :meth:`forward`, :meth:`preferred_batch_size` and the
    errors every adapter raises the same way.

    Parameters
    ----------
    dtype : {"float32", "float64"}
        Precision of the model and of the returned arrays.
    device : str
        Torch device.

    Attributes
    ----------
    batch_size : int
        Structures per :meth:`compute` call that measured fastest on CPU (returned by
        :meth:`preferred_batch_size`). Default 1.
    atoms_per_pass : int or None
        Structures are packed into forward passes of at most this many atoms (a larger
        structure gets a pass of its own); ``None`` (default) runs each
        :meth:`compute` call as one pass.

    Notes
    -----
    Methods a subclass implements:

    ``layer_dims()``
        ``{layer: dim}`` for ``ll``, ``node``, ``bb`` and every ``layer:<i>`` (build it
        with :func:`layer_dims`).
    ``build_batch(structures)``
        The model's input for a list of structures, in :attr:`dtype` on :attr:`device`.
        Raise :meth:`graph_error` when a structure cannot be turned into a graph.
    ``run_model(batch, structures)``
        Run the model on ``batch`` and return a :class:`ForwardResult`. It is called
        under ``torch.no_grad()``; it must never compute forces or stresses. Capture
        intermediate tensors with :class:`Capture`.

    Optionally override :meth:`supported_elements` (checked before every pass),
    :meth:`metadata`, and :meth:`split` (how per-atom rows map to structures). A
    subclass's ``__init__`` calls ``super().__init__(dtype, device)`` first, then loads
    its model (use :func:`prepare_module` for eval mode, dtype and device).

    Examples
    --------
    A toy family whose "model" is one linear layer on a one-hot of the element:

    >>> import torch
    >>> from ase.build import bulk
    >>> class OneHotLinear(TorchAdapter):
    ...     name = "toy"
    ...     def __init__(self, dtype="float32", device="cpu"):
    ...         super().__init__(dtype, device)
    ...         torch.manual_seed(0)
    ...         self.model = prepare_module(torch.nn.Linear(4, 3), dtype, device)
    ...     def layer_dims(self):
    ...         return layer_dims(3, 3, [4, 3])
    ...     def supported_elements(self):
    ...         return {1, 6, 8, 14}
    ...     def build_batch(self, structures):
    ...         index = {1: 0, 6: 1, 8: 2, 14: 3}
    ...         z = [index[int(n)] for a in structures for n in a.numbers]
    ...         return torch.nn.functional.one_hot(torch.tensor(z), 4).to(torch_dtype(self.dtype))
    ...     def run_model(self, batch, structures):
    ...         h = self.model(batch)
    ...         return ForwardResult(ll=h, node=h, per_layer=[batch, h])
    >>> out = OneHotLinear().compute([bulk("Si")], ["ll", "layer:0"])
    >>> out["ll"][0].shape, out["layer:0"][0].dtype
    ((2, 3), dtype('float32'))
    """

    #: structures per ``compute`` call that measured fastest on CPU
    batch_size: int = 1
    #: atoms per forward pass (``None``: one pass per ``compute`` call)
    atoms_per_pass: int | None = None

    def __init__(self, dtype: str = "float32", device: str = "cpu") -> None:
        set_threads()
        self.dtype = check_dtype(dtype)
        self.device = device

    # -- what a family implements ----------------------------------------------------
    @abc.abstractmethod
    def build_batch(self, structures: Sequence[Atoms]) -> Any:
        """The model's input for ``structures``, in :attr:`dtype` on :attr:`device`."""

    @abc.abstractmethod
    def run_model(self, batch: Any, structures: Sequence[Atoms]) -> ForwardResult:
        """One forward pass (under ``torch.no_grad``): the captured per-atom tensors."""

    # -- provided --------------------------------------------------------------------
    def preferred_batch_size(self) -> int:
        return int(self.batch_size)

    def compute(
        self, structures: Sequence[Atoms], layers: Sequence[str]
    ) -> dict[str, list[np.ndarray]]:
        features, _ = self.forward(structures, layers)
        return features

    def forward(
        self, structures: Sequence[Atoms], layers: Sequence[str]
    ) -> tuple[dict[str, list[np.ndarray]], np.ndarray]:
        """Features of every requested layer and the total energies (eV) of one pass.

        Parameters
        ----------
        structures : sequence of ase.Atoms
        layers : sequence of str
            Names from :meth:`layer_dims`.

        Returns
        -------
        features : dict
            ``{layer: [array (n_atoms_s, d_layer) for each structure s]}`` in :attr:`dtype`.
        energies : ndarray (n_structures,)
            Float64 energies of the same passes (NaN where the model gives none).

        Raises
        ------
        ModelError
            An unknown layer, or a structure the model cannot build a graph for.
        UnsupportedElementError
            A structure holds an element outside :meth:`supported_elements`.
        """
        layers = check_layers(layers, self.layer_dims(), self.name)
        features: dict[str, list[np.ndarray]] = {name: [] for name in layers}
        energies: list[np.ndarray] = []
        self.check_elements(structures)
        for group in pack_by_atoms(structures, self.atoms_per_pass):
            part, energy = self._forward_pass(group, layers)
            for name in layers:
                features[name].extend(part[name])
            energies.append(energy)
        return features, np.concatenate(energies) if energies else np.zeros(0)

    def _forward_pass(
        self, structures: Sequence[Atoms], layers: Sequence[str]
    ) -> tuple[dict[str, list[np.ndarray]], np.ndarray]:
        import torch

        with torch.no_grad():
            batch = self.build_batch(structures)
            result = self.run_model(batch, structures)
        tensors = assemble_layers(layers, result.ll, result.node, result.per_layer)
        features = {name: self.split(t, structures) for name, t in tensors.items()}
        if result.energy is None:
            energy = np.full(len(structures), np.nan)
        elif isinstance(result.energy, np.ndarray):
            energy = result.energy.astype(np.float64).reshape(-1)
        else:
            energy = result.energy.detach().cpu().numpy().astype(np.float64).reshape(-1)
        return features, energy

    def split(self, tensor: Any, structures: Sequence[Atoms]) -> list[np.ndarray]:
        """Per-atom rows of a batch → one array per structure, in :attr:`dtype`."""
        return split_rows(tensor, [len(a) for a in structures], self.dtype)

    def graph_error(self, atoms: Atoms, index: int, exc: BaseException) -> ModelError:
        """The error for a structure the model cannot build a graph for (names it)."""
        label = atoms.info.get("source", f"#{index}")
        return ModelError(
            f"{self.name} cannot build a graph for structure {index} ({label}, "
            f"{atoms.get_chemical_formula()}): {exc}"
        )


__all__ = [
    "DTYPES",
    "Capture",
    "ForwardResult",
    "TorchAdapter",
    "adapter_factory",
    "assemble_layers",
    "check_dtype",
    "check_layers",
    "checkpoint_metadata",
    "default_dtype",
    "file_sha256",
    "layer_dims",
    "not_importable",
    "pack_by_atoms",
    "package_file",
    "package_version",
    "prepare_module",
    "quiet_loggers",
    "set_threads",
    "split_rows",
    "torch_dtype",
    "unsupported_error",
    "weights_check",
]
