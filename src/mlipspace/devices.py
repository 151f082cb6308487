"""Torch device strings: checked once, at the boundary (API, command line, study files).

``"cpu"``, ``"cuda"`` and ``"cuda:<i>"`` are accepted. A CUDA device must exist: asking for
one on a machine without CUDA (or for an index past the last GPU) raises a
:class:`~mlipspace.errors.ParameterError` that says so, instead of a torch error deep inside a
model's constructor.
"""

from __future__ import annotations

import re

from .errors import ParameterError

__all__ = ["DEFAULT_GPU_ATOMS_PER_BATCH", "check_device", "cuda_available", "is_cuda"]

#: atoms per forward pass on a GPU when the caller gives no ``max_atoms_per_batch``: large
#: enough to fill a GPU with the small universal potentials, small enough that the graphs of
#: the largest ones (a few hundred neighbours per atom) fit in 40 GB
DEFAULT_GPU_ATOMS_PER_BATCH = 4096

_DEVICE = re.compile(r"^(cpu|cuda)(?::(\d+))?$")


def cuda_available() -> bool:
    """Whether torch is installed and sees at least one CUDA device."""
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def is_cuda(device: object) -> bool:
    """Whether ``device`` (a string or a ``torch.device``) names a CUDA device."""
    return str(device).split(":")[0] == "cuda"


def check_device(device: object) -> str:
    """The device string, checked: well formed, and present on this machine.

    Parameters
    ----------
    device : str or torch.device
        ``"cpu"``, ``"cuda"`` or ``"cuda:<i>"``.

    Returns
    -------
    str
        The normalised string (``"cuda:0"`` stays ``"cuda:0"``; ``"cuda"`` stays ``"cuda"``).

    Raises
    ------
    ParameterError
        A malformed string, CUDA asked for where torch sees no CUDA device, or a GPU index
        past the last device.
    """
    text = str(device).strip().lower()
    match = _DEVICE.match(text)
    if match is None or (match.group(1) == "cpu" and match.group(2) is not None):
        raise ParameterError(f"device must be 'cpu', 'cuda' or 'cuda:<index>', not {device!r}")
    if match.group(1) == "cpu":
        return "cpu"
    if not cuda_available():
        raise ParameterError(
            f"device {device!r} asks for a CUDA GPU, but torch sees none on this machine "
            "(a CPU-only torch build, no NVIDIA driver, or CUDA_VISIBLE_DEVICES empty); "
            "use --device cpu"
        )
    import torch

    index = match.group(2)
    if index is not None and int(index) >= torch.cuda.device_count():
        raise ParameterError(
            f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s) "
            f"(cuda:0 to cuda:{torch.cuda.device_count() - 1})"
        )
    return text
