"""Names of the form ``family:<checkpoint>[@<choice>]``: the user's checkpoint files.

Every family that loads a user's checkpoint (``mace:``, ``sevennet:``, ``chgnet:``,
``uma:``, ``dpa:``) parses its argument, finds the file and records its provenance the
same way:

* ``<checkpoint>`` is a path, relative to the working directory or starting with ``~``;
* ``@<choice>`` (optional) picks a task (UMA), a head (DPA-3, MACE) or a fidelity
  (SevenNet multi-fidelity). A path that itself contains ``@`` is taken whole when that
  file exists.

No function here downloads anything: a name that is not a file is an error.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import CheckpointError


def split_choice(argument: str | None, family: str, what: str) -> tuple[str, str | None]:
    """Split ``<checkpoint>[@<choice>]`` into the path text and the choice (or None).

    Parameters
    ----------
    argument : str
        The text after ``"<family>:"``.
    family : str
        Family prefix, for the messages.
    what : str
        What the choice selects (``"task"``, ``"head"``, ``"modal"``), for the messages.
    """
    if not argument:
        raise CheckpointError(
            f"{family}:<checkpoint> needs the path of a checkpoint file after '{family}:'"
        )
    if "@" not in argument or Path(argument).expanduser().is_file():
        return argument, None
    path, choice = argument.rsplit("@", 1)
    if "/" in choice or os.sep in choice:  # an '@' inside a folder name, not a choice
        return argument, None
    if not path or not choice:
        raise CheckpointError(
            f"{family}:{argument}: expected {family}:<checkpoint>@<{what}> with both parts"
        )
    return path, choice


def checkpoint_file(path: str | os.PathLike, family: str) -> Path:
    """The absolute path of an existing checkpoint file (``~`` expanded, relative to cwd)."""
    resolved = Path(path).expanduser().resolve()
    if not resolved.is_file():
        where = "" if str(path) == str(resolved) else f" ({resolved})"
        raise CheckpointError(f"{family}:{path}: no such checkpoint file{where}")
    return resolved


def sha256(path: str | os.PathLike) -> str:
    """The full SHA-256 (64 hex digits) of a file."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def provenance(path: Path, **extra: Any) -> dict[str, Any]:
    """What the store records about a user's checkpoint: its path, name and SHA-256."""
    return {
        "checkpoint": path.name,
        "checkpoint_path": str(path),
        "checkpoint_sha256": sha256(path),
        **extra,
    }


def torch_load(path: Path, family: str, *, weights_only: bool = False) -> Any:
    """``torch.load`` on CPU, any failure a :class:`CheckpointError` naming the file.

    ``weights_only=False`` unpickles arbitrary objects: only load checkpoints you trust
    (the same rule as the packages' own loaders, which all call it this way).
    """
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=weights_only)
    except Exception as exc:
        raise CheckpointError(
            f"{family}:{path}: cannot read the checkpoint ({type(exc).__name__}: {exc})"
        ) from exc


def wrong_family(path: Path, family: str, expected: str, found: str = "") -> CheckpointError:
    """The error for a file that is not a checkpoint of ``family`` (``found``: what it is)."""
    detail = f" ({found})" if found else ""
    return CheckpointError(f"{family}:{path}: not a {expected} checkpoint{detail}")


def check_choice(
    path: Path, family: str, what: str, choice: str | None, available: list[str],
    default: Callable[[list[str]], str | None] | None = None,
) -> str:  # fmt: skip
    """The chosen task/head/modal, checked against what the checkpoint offers.

    Without a choice, ``default(available)`` decides (None: the choice is required).
    """
    if choice is None and default is not None:
        choice = default(available)
    if choice is None:
        raise CheckpointError(
            f"{family}:{path} needs a {what}: append @<{what}> with one of {', '.join(available)}"
        )
    if choice not in available:
        raise CheckpointError(
            f"{family}:{path} has no {what} {choice!r}; it has {', '.join(available) or 'none'}"
        )
    return choice


def _probe_structure(supported: set[int] | None) -> Any:
    """A rattled 8-atom rock-salt cell of two elements the model knows (Na, Cl if it can)."""
    from ase.build import bulk

    atoms = bulk("NaCl", "rocksalt", a=5.64, cubic=True)
    if supported is not None and not {11, 17} <= supported:
        known = sorted(supported)
        atoms.numbers = [known[0] if z == 11 else known[min(1, len(known) - 1)]
                         for z in atoms.numbers]  # fmt: skip
    atoms.rattle(0.1, seed=3)
    return atoms


def measure_symmetry(adapter: Any, layer: str = "ll", random_state: int = 0) -> dict[str, float]:
    """How much ``layer`` moves under a permutation, a proper rotation and a reflection.

    One batch of a rattled 8-atom cell and its permuted, rotated (positions and cell) and
    rotated-and-mirrored copies; each value is ``max |ΔX| / max |X|`` after undoing the
    permutation. Round-off gives about 1e-7 (float32: 1e-6); a model without parity
    tracking shows a larger mirror value. Recorded in the store's provenance.
    """
    import numpy as np
    from ase import Atoms
    from scipy.spatial.transform import Rotation

    base = _probe_structure(adapter.supported_elements())
    rng = np.random.default_rng(random_state)
    perm = rng.permutation(len(base))
    rotation = Rotation.random(random_state=random_state).as_matrix()
    mirror = rotation @ np.diag([1.0, 1.0, -1.0])

    def moved(matrix: Any) -> Atoms:
        return Atoms(base.numbers[perm], base.positions[perm] @ matrix.T,
                     cell=base.cell.array @ matrix.T, pbc=True)  # fmt: skip

    batch = [base, moved(np.eye(3)), moved(rotation), moved(mirror)]
    features = adapter.compute(batch, [layer])[layer]
    reference = features[0][perm]
    scale = float(np.abs(features[0]).max()) or 1.0
    deviation = [float(np.abs(f - reference).max()) / scale for f in features[1:]]
    return {
        "symmetry_layer": layer,
        "permutation_sensitivity": deviation[0],
        "rotation_sensitivity": deviation[1],
        "mirror_sensitivity": deviation[2],
    }
