"""Measurements behind tests/test_model_contract.py, for one registered model spec.

:func:`measure` loads the spec's test instance (see ``tests/model_instances.py``), runs
every contract measurement and returns a JSON-able record of numbers; the assertions run
in ``tests/test_model_contract.py``. Models of the main environment are measured in the
test process; the others by running this file with their environment's Python::

    <env python> tests/model_contract_probe.py SPEC_NAME OUT_DIR

which writes ``OUT_DIR/contract.json``. Keep this module free of pytest.
"""

from __future__ import annotations

import contextlib
import json
import sys
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.build import bulk, molecule
from scipy.spatial.transform import Rotation

RANDOM_STATE = 7


def rattled_si() -> Atoms:
    """The cubic 8-atom Si cell, rattled (chiral: a mirror image is not a rotation of it)."""
    si = bulk("Si", cubic=True)
    si.rattle(0.05, seed=1)
    return si


def boxed_water() -> Atoms:
    """A rattled H2O molecule in the middle of a periodic 10 A box."""
    water = molecule("H2O")
    water.cell = np.eye(3) * 10.0
    water.pbc = True
    water.center()
    water.rattle(0.02, seed=3)
    return water


def contract_structures() -> list[Atoms]:
    """Small structures (14 atoms in all) of elements every test instance knows.

    Rattled, hence chiral: a mirror image is not a rotation of them.
    """
    si = rattled_si()
    nacl = bulk("NaCl", "rocksalt", a=5.64)
    nacl.rattle(0.05, seed=2)
    water = boxed_water()
    cu = bulk("Cu")
    for i, atoms in enumerate((si, nacl, water, cu)):
        atoms.info["source"] = f"contract@{i}"
    return [si, nacl, water, cu]


def transformed(
    atoms: Atoms, rotation: np.ndarray, shift: np.ndarray, permutation: np.ndarray
) -> Atoms:
    """``atoms`` rotated (positions and cell), translated, then its atoms reordered."""
    out = Atoms(
        numbers=atoms.numbers[permutation],
        positions=(atoms.positions @ rotation.T + shift)[permutation],
        cell=atoms.cell.array @ rotation.T,
        pbc=atoms.pbc,
    )
    out.info["source"] = atoms.info.get("source", "") + "+transformed"
    return out


@contextlib.contextmanager
def counting_autograd(calls: list[str]) -> Iterator[None]:
    """Record every call of torch's autograd entry points (forces, stresses) in ``calls``."""
    try:
        import torch
    except ImportError:  # a model without torch computes no gradient through it
        yield
        return
    saved = (torch.autograd.grad, torch.autograd.backward, torch.Tensor.backward)

    def counted(name: str, function: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            calls.append(name)
            return function(*args, **kwargs)

        return wrapper

    torch.autograd.grad = counted("torch.autograd.grad", saved[0])
    torch.autograd.backward = counted("torch.autograd.backward", saved[1])
    torch.Tensor.backward = counted("Tensor.backward", saved[2])
    try:
        yield
    finally:
        torch.autograd.grad, torch.autograd.backward, torch.Tensor.backward = saved


def _relative(a: Sequence[np.ndarray], b: Sequence[np.ndarray], scale: float) -> float:
    return max(float(np.abs(x - y).max()) for x, y in zip(a, b, strict=True)) / scale


def _error(call: Any, expected: type) -> dict[str, Any]:
    """What ``call()`` raised: its type name, message and whether it is an ``expected``."""
    try:
        call()
    except Exception as exc:  # the type and message are what the test asserts on
        return {"type": type(exc).__name__, "message": str(exc), "ok": isinstance(exc, expected)}
    return {"type": "", "message": "no error raised", "ok": False}


def measure(spec_name: str, tmp_dir: str | Path) -> dict[str, Any]:
    """Every contract measurement of the test instance of ``spec_name``."""
    with warnings.catch_warnings():  # packages' notes about accelerators, TorchScript...
        warnings.simplefilter("ignore", UserWarning)
        return _measure(spec_name, tmp_dir)


def _measure(spec_name: str, tmp_dir: str | Path) -> dict[str, Any]:
    from mlipspace.errors import ModelError, UnsupportedElementError
    from mlipspace.models import get_model, model_specs
    from model_instances import instance_name

    spec = model_specs()[spec_name]
    name = instance_name(spec_name, Path(tmp_dir))
    adapter = get_model(name)
    dims = adapter.layer_dims()
    layers = list(dims)
    base = contract_structures()
    n = len(base)
    rng = np.random.default_rng(RANDOM_STATE)
    perms = [rng.permutation(len(a)) for a in base]
    shifts = [rng.normal(size=3) * 3.0 for _ in base]
    proper = [Rotation.random(random_state=RANDOM_STATE + i).as_matrix() for i in range(n)]
    mirror = [r @ np.diag([1.0, 1.0, -1.0]) for r in proper]
    identity = np.eye(3)
    batch = [
        *base,
        *(transformed(a, identity, np.zeros(3), p) for a, p in zip(base, perms, strict=True)),
        *(transformed(a, r, s, p) for a, r, s, p in zip(base, proper, shifts, perms, strict=True)),
        *(transformed(a, r, s, p) for a, r, s, p in zip(base, mirror, shifts, perms, strict=True)),
        base[1].repeat((2, 2, 2)),
    ]
    calls: list[str] = []
    with counting_autograd(calls):
        together = adapter.compute(batch, layers)
        reversed_order = adapter.compute(base[::-1], layers)
        alone = [adapter.compute([a], layers) for a in base]
    float64 = get_model(name, dtype="float64").compute(base, layers)

    record: dict[str, Any] = {
        "name": name,
        "dims": dims,
        "spec_layers": dict(spec.layers),
        "n_atoms": [len(a) for a in base],
        "shapes": {k: [list(x.shape) for x in together[k][:n]] for k in layers},
        "dtypes": {k: sorted({str(x.dtype) for x in together[k]}) for k in layers},
        "float64_dtypes": {k: sorted({str(x.dtype) for x in float64[k]}) for k in layers},
        "finite": all(bool(np.isfinite(x).all()) for k in layers for x in together[k]),
        "autograd_calls": calls,
        "scale": {},
        "batch_vs_single": {},
        "order": {},
        "permutation": {},
        "proper": {},
        "mirror": {},
        "supercell": {},
        "float64": {},
    }
    n_interactions = sum(k.startswith("layer:") for k in layers) - 1
    if n_interactions > 0:
        stacked = [
            np.concatenate([together[f"layer:{i}"][s] for i in range(1, n_interactions + 1)], 1)
            for s in range(n)
        ]
        record["bb_is_layers_concatenated"] = _relative(together["bb"][:n], stacked, 1.0)
    for k in layers:
        f = together[k]
        scale = max(float(np.abs(x).max()) for x in f[:n]) or 1.0
        record["scale"][k] = scale
        record["batch_vs_single"][k] = _relative(f[:n], [a[k][0] for a in alone], scale)
        record["order"][k] = _relative(f[:n], reversed_order[k][::-1], scale)
        moved = [f[i][p] for i, p in enumerate(perms)]
        record["permutation"][k] = _relative(f[n : 2 * n], moved, scale)
        record["proper"][k] = _relative(f[2 * n : 3 * n], moved, scale)
        record["mirror"][k] = _relative(f[3 * n : 4 * n], moved, scale)
        record["supercell"][k] = _relative([f[4 * n]], [np.tile(f[1], (8, 1))], scale)
        record["float64"][k] = _relative(f[:n], float64[k], scale)

    supported = adapter.supported_elements()
    outside = [z for z in range(1, 119) if supported is not None and z not in supported]
    record["unsupported_element"] = outside[-1] if outside else None
    if outside:
        stranger = bulk("Cu")
        stranger.numbers[:] = outside[-1]
        stranger.info["source"] = "contract-stranger"
        record["unsupported_error"] = _error(
            lambda: adapter.compute([base[0], stranger], ["ll"]), UnsupportedElementError
        )
    record["unknown_layer_error"] = _error(
        lambda: adapter.compute(base[:1], ["layer:99"]), ModelError
    )
    record["empty"] = {k: len(v) for k, v in adapter.compute([], layers).items()}
    return record


def main(spec_name: str, out_dir: str) -> None:
    import torch

    torch.set_num_threads(1)
    record = measure(spec_name, out_dir)
    (Path(out_dir) / "contract.json").write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
