"""Array backends of the measures: numpy (the reference) and torch (CPU or CUDA).

Every measure has one implementation. Its kernels are written against the handful of
operations both libraries share (``@``, ``.T``, ``.sum(axis=...)``, ``.mean(axis=...,
keepdims=...)``, indexing, broadcasting); the few where their spelling differs are the functions
of this module, which dispatch on the type of their argument. A measure's ``device`` parameter
picks the backend with :func:`get_backend`:

* ``None`` or ``"cpu"``: numpy, exactly the code and numbers of the reference path (inputs
  pass through :func:`asarray` untouched);
* ``"cuda"`` or ``"cuda:<i>"``: torch float64 tensors on that GPU (checked with
  :func:`mlipspace.devices.check_device`);
* ``"torch-cpu"``: torch on the CPU: the GPU code path where there is no GPU (the tests run it
  against the numpy path).

LAPACK-specific kernels have one switch each: LFRE's Cholesky proof uses scipy's ``dpotrf`` and
the ``dpocon`` condition estimate on numpy, stacked ``torch.linalg.cholesky_ex`` and a cruder
condition bound on torch (:func:`mlipspace.metrics.reconstruction.
_truncated_pinv_predict_torch`: only which points go on to the SVD path changes); the
streamed fit's ``d × d`` solve stays in numpy. Arithmetic is float64 on every backend.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ParameterError

__all__ = [
    "Backend",
    "arange",
    "argsort_stable",
    "asarray",
    "backend_of",
    "clip_min",
    "exp",
    "fill_diagonal",
    "get_backend",
    "index_array",
    "is_torch",
    "namespace",
    "reciprocal_where",
    "row_norms",
    "sqrt",
    "svd",
    "to_numpy",
    "zeros",
]


@dataclass(frozen=True)
class Backend:
    """Where a measure's arrays live: ``name`` ``"numpy"`` or ``"torch"``, and the torch
    device (``None`` for numpy)."""

    name: str
    device: str | None = None

    @property
    def is_numpy(self) -> bool:
        return self.name == "numpy"


NUMPY = Backend("numpy")


def get_backend(device: object = None) -> Backend:
    """The backend of a ``device`` argument (see the module docstring).

    Raises
    ------
    ParameterError
        An unknown device string, or CUDA asked for where torch sees none.
    """
    if device is None or isinstance(device, Backend):
        return device or NUMPY
    text = str(device).strip().lower()
    if text == "cpu":
        return NUMPY
    if text == "torch-cpu":
        _torch()
        return Backend("torch", "cpu")
    if text.startswith("cuda"):
        from ..devices import check_device

        return Backend("torch", check_device(text))
    raise ParameterError(
        f"device must be None, 'cpu', 'torch-cpu', 'cuda' or 'cuda:<index>', not {device!r}"
    )


def _torch():
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - torch is a main dependency
        raise ParameterError("the torch backend needs torch installed") from exc
    return torch


def is_torch(A: Any) -> bool:
    """Whether ``A`` is a torch tensor (without importing torch for numpy arrays)."""
    return type(A).__module__.startswith("torch")


def asarray(A: Any, backend: Backend) -> Any:
    """``A`` on ``backend``: numpy arrays pass through the numpy backend untouched; torch
    gets a float64 tensor on the backend's device."""
    if backend.is_numpy:
        return to_numpy(A) if is_torch(A) else A
    torch = _torch()
    if is_torch(A):
        return A.to(device=backend.device, dtype=torch.float64)
    return torch.as_tensor(np.asarray(A, dtype=np.float64), device=backend.device)


def backend_of(A: Any) -> Backend:
    """The backend an array lives on."""
    return Backend("torch", str(A.device)) if is_torch(A) else NUMPY


def index_array(idx: np.ndarray, like: Any) -> Any:
    """Integer indices on the backend (and device) of ``like``."""
    if is_torch(like):
        return _torch().as_tensor(np.asarray(idx), dtype=_torch().int64, device=like.device)
    return np.asarray(idx)


def to_numpy(A: Any) -> np.ndarray:
    """A numpy array of ``A`` (a tensor is copied to the host)."""
    return A.detach().cpu().numpy() if is_torch(A) else np.asarray(A)


def zeros(shape: tuple[int, ...], like: Any) -> Any:
    """Float64 zeros on the backend (and device) of ``like``."""
    if is_torch(like):
        return _torch().zeros(shape, dtype=like.dtype, device=like.device)
    return np.zeros(shape)


def arange(n: int, like: Any) -> Any:
    """``0 .. n-1`` as an index array on the backend of ``like``."""
    if is_torch(like):
        return _torch().arange(n, device=like.device)
    return np.arange(n)


def fill_diagonal(A: Any, value: float) -> None:
    """Set the diagonal of a square matrix in place."""
    if is_torch(A):
        A.fill_diagonal_(value)
    else:
        np.fill_diagonal(A, value)


def clip_min(A: Any, low: float) -> Any:
    """``max(A, low)`` elementwise."""
    return A.clamp(min=low) if is_torch(A) else np.maximum(A, low)


def exp(A: Any) -> Any:
    return A.exp() if is_torch(A) else np.exp(A)


def sqrt(A: Any) -> Any:
    return A.sqrt() if is_torch(A) else np.sqrt(A)


def row_norms(A: Any) -> Any:
    """Euclidean norm of every row (last axis)."""
    if is_torch(A):
        return _torch().linalg.vector_norm(A, dim=-1)
    return np.linalg.norm(A, axis=-1)


def svd(A: Any) -> tuple[Any, Any, Any]:
    """Reduced SVD ``(U, s, Vᵀ)`` of a matrix or a stack of matrices."""
    if is_torch(A):
        return _torch().linalg.svd(A, full_matrices=False)
    return np.linalg.svd(A, full_matrices=False)


def argsort_stable(values: Any, axis: int = -1) -> Any:
    """Indices that sort ``values`` along ``axis``, equal values in their original order."""
    if is_torch(values):
        return _torch().sort(values, dim=axis, stable=True).indices
    return np.argsort(values, axis=axis, kind="stable")


def reciprocal_where(a: Any, keep: Any) -> Any:
    """``1 / a`` where ``keep``, 0 elsewhere (no division where ``keep`` is False)."""
    if is_torch(a):
        torch = _torch()
        return torch.where(keep, 1.0 / torch.where(keep, a, torch.ones_like(a)), 0.0)
    return np.divide(1.0, a, out=np.zeros_like(a), where=keep)


class _TorchLinalg:
    @staticmethod
    def svd(A, full_matrices: bool = True, compute_uv: bool = True):
        torch = _torch()
        if not compute_uv:
            return torch.linalg.svdvals(A)
        return torch.linalg.svd(A, full_matrices=full_matrices)

    @staticmethod
    def qr(A, mode: str = "reduced"):
        torch = _torch()
        if mode == "r":
            return torch.linalg.qr(A, mode="r")[1]
        return torch.linalg.qr(A, mode=mode)

    @staticmethod
    def eigh(A):
        return _torch().linalg.eigh(A)

    @staticmethod
    def norm(A, axis=None):
        return _torch().linalg.vector_norm(A, dim=axis)


class TorchNamespace:
    """The numpy functions LFRE's batched kernels call, with numpy's names and signatures,
    on torch tensors of one device. ``namespace(A)`` gives ``numpy`` itself for numpy arrays,
    so the numpy path calls exactly what it always called."""

    inf = float("inf")
    nan = float("nan")
    linalg = _TorchLinalg()

    def __init__(self, device: Any) -> None:
        self.device = device
        self._t = _torch()

    def asarray(self, a, dtype=None):
        if is_torch(a):
            return a if dtype is None else a.to(self._dtype(dtype))
        dtype = self._t.float64 if dtype is None else self._dtype(dtype)
        return self._t.as_tensor(np.asarray(a), dtype=dtype, device=self.device)

    def _dtype(self, dtype):
        return {bool: self._t.bool, int: self._t.int64, float: self._t.float64}.get(dtype, dtype)

    def _pair(self, a, b):
        ref = a if is_torch(a) else b

        def as_t(x):
            return x if is_torch(x) else self._t.as_tensor(x, dtype=ref.dtype, device=ref.device)

        return as_t(a), as_t(b)

    def maximum(self, a, b):
        return self._t.maximum(*self._pair(a, b))

    def minimum(self, a, b):
        return self._t.minimum(*self._pair(a, b))

    def abs(self, a, out=None):
        return self._t.abs(a, out=out)

    def sqrt(self, a):
        return a.sqrt()

    def tril(self, a, k=0):
        return self._t.tril(a, k)

    def einsum(self, spec, *ops):
        return self._t.einsum(spec, *ops)

    def diagonal(self, a, offset=0, axis1=0, axis2=1):
        return self._t.diagonal(a, offset, axis1, axis2)

    def where(self, cond, a, b):
        return self._t.where(cond, a, b)

    def argmax(self, a, axis=None):
        return self._t.argmax(a, dim=axis)

    def max(self, a, axis=None, initial=None):
        if a.numel() == 0 and initial is not None:
            return self._t.full(a.shape[:axis] if axis is not None else (), initial,
                                dtype=a.dtype, device=a.device)  # fmt: skip
        return a.amax() if axis is None else a.amax(dim=axis)

    def min(self, a, axis=None):
        return a.amin() if axis is None else a.amin(dim=axis)

    def trace(self, a, axis1=0, axis2=1):
        return self._t.diagonal(a, 0, axis1, axis2).sum(dim=-1)

    def mean(self, a, axis=None):
        return a.mean() if axis is None else a.mean(dim=axis)

    def sum(self, a, axis=None):
        return a.sum() if axis is None else a.sum(dim=axis)

    def any(self, a, axis=None):
        return a.any() if axis is None else self._t.any(a, dim=axis)

    def arange(self, n):
        return self._t.arange(n, device=self.device)

    def concatenate(self, arrays, axis=0):
        return self._t.cat(list(arrays), dim=axis)

    def clip(self, a, low, high):
        return a.clamp(min=low, max=high)

    def zeros(self, shape):
        return self._t.zeros(shape, dtype=self._t.float64, device=self.device)

    def full(self, shape, value):
        return self._t.full(shape if isinstance(shape, tuple) else (shape,), value,
                            dtype=self._t.float64, device=self.device)  # fmt: skip

    def isnan(self, a):
        return a.isnan()

    def flatnonzero(self, a):
        return a.reshape(-1).nonzero().reshape(-1)

    def spacing(self, x):
        return float(np.spacing(np.float64(x)))


def namespace(A: Any) -> Any:
    """``numpy`` for a numpy array, a :class:`TorchNamespace` on the tensor's device for a
    tensor: the functions the batched kernels call."""
    return TorchNamespace(A.device) if is_torch(A) else np
