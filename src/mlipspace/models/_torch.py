"""Small helpers shared by the torch-based model adapters.

Nothing here imports torch at module level, so the family modules can import these
helpers while keeping ``import mlipspace.models`` light. The layer vocabulary is
the one of :data:`mlipspace.models.base.STANDARD_LAYERS`:

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

import contextlib
import functools
import hashlib
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelError

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


def unsupported_error(model: str, atoms: Any, index: int, z: int) -> ModelError:
    """The error for an element a model was not trained on (names structure and element)."""
    from ase.data import chemical_symbols

    from ..errors import UnsupportedElementError

    label = atoms.info.get("source") or atoms.info.get("structure_hash") or f"#{index}"
    return UnsupportedElementError(
        f"{model} does not support element {chemical_symbols[z]} (Z={z}) found in structure "
        f"{index} ({label}, {atoms.get_chemical_formula()})"
    )
