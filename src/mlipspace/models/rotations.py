"""Rotation sensitivity of a model's features, and rotational averaging for any adapter.

Orb-v3 and PET are not rotation-invariant by construction (they learn the symmetry from
data augmentation), so their per-atom features change when a structure is rotated.
This module measures that change (:func:`rotation_sensitivity`, recorded in those
adapters' ``metadata()`` and hence in the store's provenance) and offers invariant
features by averaging over random rotations (:class:`RotationAveraged`).

Rotational averaging is requested with a suffix on any model name::

    orb:orb-v3-conservative-inf-omat-20250404.ckpt+rot16      # 16 rotations, random_state 0
    pet:pet-mad-v1.1.0.ckpt+rot8-3                              # 8 rotations, random_state 3

The averaged model is a model of its own (its own name in the store). Every structure
is featurized in ``N`` random proper rotations (positions and cell rotated together,
the rotations drawn once from ``random_state``, the same for every structure) and the
per-atom features are averaged. The average over a finite set of rotations is not
exactly invariant: its remaining sensitivity shrinks roughly like ``1/sqrt(N)``, and
``metadata()`` records it measured.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
from ase import Atoms

from ..errors import ModelError
from .base import ModelAdapter

_SUFFIX = re.compile(r"^(?P<base>.+)\+rot(?P<n>\d+)(?:-(?P<state>\d+))?$")
#: the largest N accepted (each rotation is one more forward pass per structure)
MAX_ROTATIONS = 1024


def split_rotation_suffix(name: str) -> tuple[str, int | None, int]:
    """Split ``"<model>+rot<N>[-<random_state>]"`` into (model, N, random_state).

    Names without the suffix give ``(name, None, 0)``.

    Raises
    ------
    ModelError
        ``N`` is 0 or above :data:`MAX_ROTATIONS`.
    """
    match = _SUFFIX.match(name)
    if match is None:
        return name, None, 0
    n = int(match["n"])
    if not 1 <= n <= MAX_ROTATIONS:
        raise ModelError(
            f"{name}: the number of rotations after '+rot' must be 1 to {MAX_ROTATIONS}, not {n}"
        )
    return match["base"], n, int(match["state"] or 0)


def random_rotations(n_rotations: int, random_state: int = 0) -> np.ndarray:
    """``n_rotations`` random proper rotation matrices (uniform on SO(3)), shape (n, 3, 3)."""
    from scipy.spatial.transform import Rotation

    return Rotation.random(n_rotations, random_state=random_state).as_matrix().reshape(-1, 3, 3)


def rotated(atoms: Atoms, rotation: np.ndarray) -> Atoms:
    """A copy of ``atoms`` with positions and cell rotated by ``rotation`` (3 x 3)."""
    out = Atoms(
        atoms.numbers,
        positions=atoms.positions @ rotation.T,
        cell=atoms.cell.array @ rotation.T,
        pbc=atoms.pbc,
    )
    out.info.update(atoms.info)
    return out


def probe_structure(elements: set[int] | None) -> Atoms:
    """A rattled 8-atom rock-salt-like cell of two elements the model supports.

    Used to measure rotation sensitivity at load time; Na and Cl when supported (or
    when any element is), otherwise the two lightest supported elements.
    """
    from ase.build import bulk

    atoms = bulk("NaCl", "rocksalt", a=5.64, cubic=True)
    if elements is not None and not {11, 17} <= elements:
        chosen = sorted(elements)[:2]
        if not chosen:
            raise ModelError("the model supports no element: cannot build a probe structure")
        atoms.numbers = [chosen[i % len(chosen)] for i in range(len(atoms))]
    atoms.rattle(0.05, seed=11)
    return atoms


def rotation_sensitivity(
    adapter: ModelAdapter,
    layers: Sequence[str] = ("ll",),
    n_rotations: int = 4,
    random_state: int = 0,
    structure: Atoms | None = None,
) -> dict[str, float]:
    """Largest change of each layer's features under a rotation, relative to their scale.

    ``max |X(R s) - X(s)| / max |X(s)|`` over ``n_rotations`` random proper rotations
    ``R`` of ``structure`` (default: :func:`probe_structure`). 0 for an invariant model
    (up to float rounding, ~1e-7 in float32).
    """
    atoms = structure if structure is not None else probe_structure(adapter.supported_elements())
    variants = [atoms] + [rotated(atoms, r) for r in random_rotations(n_rotations, random_state)]
    features = adapter.compute(variants, list(layers))
    out = {}
    for layer in layers:
        base = np.asarray(features[layer][0], dtype=np.float64)
        scale = float(np.abs(base).max()) or 1.0
        worst = max(
            float(np.abs(np.asarray(x, dtype=np.float64) - base).max()) for x in features[layer][1:]
        )
        out[layer] = worst / scale
    return out


class RotationAveraged(ModelAdapter):
    """Features of ``inner`` averaged over ``n_rotations`` random proper rotations.

    Parameters
    ----------
    inner : ModelAdapter
        Any loaded adapter.
    n_rotations : int
        Number of rotations N (each costs one forward pass per structure).
    random_state : int
        Seed of the rotations (the same N rotations are used for every structure).
    """

    def __init__(self, inner: ModelAdapter, n_rotations: int, random_state: int = 0):
        if not 1 <= int(n_rotations) <= MAX_ROTATIONS:
            raise ModelError(f"n_rotations must be 1 to {MAX_ROTATIONS}, not {n_rotations}")
        self.inner = inner
        self.n_rotations = int(n_rotations)
        self.random_state = int(random_state)
        self.rotations = random_rotations(self.n_rotations, self.random_state)
        self.name = f"{inner.name}+rot{self.n_rotations}-{self.random_state}"
        self._sensitivity: dict[str, float] | None = None

    def layer_dims(self) -> dict[str, int]:
        return self.inner.layer_dims()

    def supported_elements(self) -> set[int] | None:
        return self.inner.supported_elements()

    def preferred_batch_size(self) -> int:
        return max(1, self.inner.preferred_batch_size() // self.n_rotations)

    def compute(
        self, structures: Sequence[Atoms], layers: Sequence[str]
    ) -> dict[str, list[np.ndarray]]:
        copies = [rotated(atoms, r) for atoms in structures for r in self.rotations]
        features = self.inner.compute(copies, layers)
        n = self.n_rotations
        out: dict[str, list[np.ndarray]] = {}
        for layer, arrays in features.items():
            out[layer] = [
                np.mean(np.stack(arrays[s * n : (s + 1) * n]), axis=0).astype(arrays[0].dtype)
                for s in range(len(structures))
            ]
        return out

    def metadata(self) -> dict[str, Any]:
        if self._sensitivity is None:
            # two test rotations keep this at 3N passes of one small cell
            self._sensitivity = rotation_sensitivity(
                self, ("ll",), n_rotations=2, random_state=12345
            )
        meta = dict(self.inner.metadata())
        meta.update(
            rotational_average={
                "n_rotations": self.n_rotations,
                "random_state": self.random_state,
            },
            rotation_sensitivity_averaged=self._sensitivity,
        )
        return meta


def with_rotation_suffix(name: str, load: Any) -> ModelAdapter:
    """Load ``name`` with ``load(base_name)``, wrapped when it ends in ``+rot<N>[-<state>]``."""
    base, n, state = split_rotation_suffix(name)
    adapter = load(base)
    if n is None:
        return adapter
    wrapped = RotationAveraged(adapter, n, state)
    wrapped.name = name
    return wrapped


__all__ = [
    "MAX_ROTATIONS",
    "RotationAveraged",
    "probe_structure",
    "random_rotations",
    "rotated",
    "rotation_sensitivity",
    "split_rotation_suffix",
    "with_rotation_suffix",
]
