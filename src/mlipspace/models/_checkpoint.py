"""Names of the form ``family:<checkpoint>[@<choice>]``: the user's checkpoint files.

Every family that loads a user's checkpoint (``mace:``, ``sevennet:``, ``chgnet:``,
``orb:``, ``pet:``, ``mattersim:``, ``uma:``, ``dpa:``) parses its argument, finds the
file, reads it and records its provenance the same way:

* ``<checkpoint>`` is a path, relative to the working directory or starting with ``~``;
* ``@<choice>`` (optional) picks a task (UMA), a head (DPA-3, MACE), a fidelity
  (SevenNet multi-fidelity) or a loader (Orb). A path that itself contains ``@`` is
  taken whole when that file exists.

Its spec comes from :func:`checkpoint_spec`; an adapter of a family that only loads user
files subclasses :class:`CheckpointAdapter`. Every error names the file and is a
:class:`~mlipspace.errors.CheckpointError`. No function here downloads anything: a name
that is not a file is an error.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import CheckpointError
from .base import ModelCard, ModelSpec
from .torch_base import TorchAdapter, file_sha256, package_version


def _no_path(family: str) -> CheckpointError:
    return CheckpointError(
        f"{family}:<checkpoint> needs the path of a checkpoint file after '{family}:'"
    )


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
        raise _no_path(family)
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


def locate(argument: str | None, family: str, what: str | None = None) -> tuple[Path, str | None]:
    """The checkpoint file of ``<family>:<argument>`` and its ``@<what>`` choice.

    Parameters
    ----------
    argument : str or None
        The text after ``"<family>:"``.
    family : str
        Family prefix, for the messages.
    what : str, optional
        What ``@<choice>`` selects (``"task"``, ``"head"``...); None: the family takes no
        choice, and the whole argument is the path.

    Returns
    -------
    path : Path
        The absolute path of the existing file.
    choice : str or None
    """
    if what is None:
        if not argument:
            raise _no_path(family)
        text, choice = argument, None
    else:
        text, choice = split_choice(argument, family, what)
    return checkpoint_file(text, family), choice


def checkpoint_factory(
    adapter: Callable[..., Any], family: str, what: str | None = None
) -> Callable[..., Any]:
    """A ``ModelSpec.factory`` for ``<family>:<file>[@<what>]``.

    It builds ``adapter(path, dtype=..., device=...)``, or ``adapter(path, choice, ...)``
    when the family takes an ``@<what>`` choice; ``path`` is the existing file's absolute
    path (:func:`locate`).
    """

    def factory(argument: str | None = None, dtype: str = "float32", device: str = "cpu") -> Any:
        path, choice = locate(argument, family, what)
        chosen = () if what is None else (choice,)
        return adapter(path, *chosen, dtype=dtype, device=device)

    return factory


def checkpoint_spec(
    family: str,
    adapter: Callable[..., Any],
    description: str,
    choice: str | None = None,
    layers: dict[str, int] | None = None,
    relative_cost: float = 1.0,
    **card: Any,
) -> ModelSpec:
    """The spec of ``<family>:<checkpoint>[@<choice>]``, a family loading the user's file.

    Parameters
    ----------
    family : str
        The name prefix.
    adapter : callable
        ``adapter(path[, choice], dtype=..., device=...)`` (see :func:`checkpoint_factory`).
    description : str
        For ``mlipspace models``.
    choice : str, optional
        What ``@<choice>`` selects (``"task"``, ``"head"``...); None: the family takes none.
    layers : dict, optional
        The dimensions of the released architecture; none where they depend on the file.
    relative_cost : float
        Cost per atom relative to SevenNet-0.
    **card
        :class:`~mlipspace.models.base.ModelCard` fields (``architecture``, ``symmetry``,
        ``environment``...). ``has_calculator`` defaults to True: every such adapter wraps
        its package's own calculator. Training data and level of theory depend on the
        file, so they stay empty. No weights ship with such a family: always available.
    """
    return ModelSpec(
        name=f"{family}:",
        factory=checkpoint_factory(adapter, family, choice),
        layers=dict(layers or {}),
        description=description,
        weights_available=lambda: True,
        relative_cost=relative_cost,
        card=ModelCard(**{"has_calculator": True, **card}),
    )


def sha256(path: str | os.PathLike) -> str:
    """The full SHA-256 (64 hex digits) of a file."""
    return file_sha256(path, length=64)


def provenance(path: Path, **extra: Any) -> dict[str, Any]:
    """What the store records about a user's checkpoint: its path, name and SHA-256."""
    return {
        "checkpoint": path.name,
        "checkpoint_path": str(path),
        "checkpoint_sha256": sha256(path),
        **extra,
    }


def user_checkpoint_metadata(
    adapter: Any, distribution: str, measure: bool = True, **extra: Any
) -> dict[str, Any]:
    """What the store records about an adapter on the user's file ``adapter.path``.

    The package's and torch's versions, ``extra`` (dtype, task, head...), the file's path,
    name and SHA-256 (:func:`provenance`), and with ``measure`` its symmetry as measured on
    a probe cell (:func:`measure_symmetry`, once per adapter: a user's checkpoint's
    symmetry is measured, not assumed). Families that record their symmetry otherwise
    (Orb's and PET's rotation sensitivity per layer) pass ``measure=False``.
    """
    import torch

    if measure and getattr(adapter, "_measured_symmetry", None) is None:
        adapter._measured_symmetry = measure_symmetry(adapter)
    return {
        "package": distribution,
        "package_version": package_version(distribution),
        "torch_version": torch.__version__,
        **extra,
        **provenance(adapter.path),
        **(adapter._measured_symmetry if measure else {}),
    }


def torch_load(
    path: Path,
    family: str,
    *,
    weights_only: bool = False,
    expected: str = "",
    gzipped: bool = False,
) -> Any:
    """``torch.load`` on CPU, any failure a :class:`CheckpointError` naming the file.

    ``weights_only=False`` unpickles arbitrary objects: only load checkpoints you trust
    (the same rule as the packages' own loaders, which all call it this way).

    Parameters
    ----------
    expected : str, optional
        What the file should be (``"an Orb checkpoint"``): an unreadable file is then
        reported as "not <expected>" (a file of another family often fails to unpickle).
    gzipped : bool
        Read the file through ``gzip`` (metatrain's ``.ckpt.gz``).
    """
    import gzip

    import torch

    try:
        if gzipped:
            with gzip.open(path, "rb") as fh:
                return torch.load(fh, map_location="cpu", weights_only=weights_only)
        return torch.load(path, map_location="cpu", weights_only=weights_only)
    except Exception as exc:
        what = f"not {expected}" if expected else "cannot read the checkpoint"
        detail = str(exc) if not expected else str(exc)[:200]
        raise CheckpointError(f"{family}:{path}: {what} ({type(exc).__name__}: {detail})") from exc


def weights_mismatch(
    path: Path, family: str, architecture: str, exc: BaseException
) -> CheckpointError:
    """The error for weights that do not fit ``architecture`` (missing keys, shapes)."""
    return CheckpointError(
        f"{family}:{path}: the weights do not match the {architecture} ({str(exc)[:300]})"
    )


def read_checkpoint(
    path: Path, family: str, kind: str, valid: Callable[[Any], bool], needs: str, **load: Any
) -> Any:
    """The object in ``path`` (:func:`torch_load` with ``load``), refused unless ``valid``.

    A file that loads but is not ``valid(obj)`` is another family's (or no checkpoint at
    all): the error says "not a ``kind`` checkpoint", what one ``needs`` and what it found.
    """
    obj = torch_load(path, family, **load)
    if not valid(obj):
        found = list(obj)[:5] if isinstance(obj, dict) else type(obj).__name__
        raise wrong_family(path, family, kind, f"{needs}; found {found}")
    return obj


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


class CheckpointAdapter(TorchAdapter):
    """A torch adapter on the user's checkpoint file, ``<family>:<path>[@<choice>]``.

    It checks and resolves the path (:attr:`path`), names the adapter and records the
    file's provenance and symmetry in :meth:`metadata`. A subclass sets :attr:`family`,
    :attr:`distribution` and :attr:`symmetry_record`, calls
    ``super().__init__(path, dtype, device[, choice])`` and returns what else the store
    should record from :meth:`extra_metadata`.
    """

    #: the name prefix, e.g. ``"orb"``
    family: str = ""
    #: the package whose version the metadata records
    distribution: str = ""
    #: how :meth:`metadata` records the symmetry: ``"probe"`` measures permutations,
    #: rotations and mirrors on a probe cell (:func:`measure_symmetry`); ``"rotations"``
    #: (not rotation-invariant by construction) the rotation sensitivity of ``ll`` and
    #: ``bb`` (:meth:`rotation_sensitivity`); ``"own"`` leaves it to :meth:`extra_metadata`
    symmetry_record: str = "probe"

    def __init__(
        self,
        path: str | os.PathLike,
        dtype: str = "float32",
        device: str = "cpu",
        choice: str | None = None,
    ) -> None:
        super().__init__(dtype, device)
        self.path = checkpoint_file(path, self.family)
        self.name = f"{self.family}:{path}" + (f"@{choice}" if choice else "")
        self._rotation_sensitivity: dict[str, float] | None = None

    def extra_metadata(self) -> dict[str, Any]:
        """What the store records besides the file's provenance (dtype, task, cutoff...)."""
        return {"dtype": self.dtype}

    def rotation_sensitivity(self) -> dict[str, float]:
        """``{layer: sensitivity}`` of ``ll`` and ``bb`` (those offered) under rotations,
        measured once (:func:`mlipspace.models.rotations.rotation_sensitivity`)."""
        from .rotations import rotation_sensitivity

        if self._rotation_sensitivity is None:
            layers = tuple(layer for layer in ("ll", "bb") if layer in self.layer_dims())
            self._rotation_sensitivity = rotation_sensitivity(self, layers)
        return self._rotation_sensitivity

    def metadata(self) -> dict[str, Any]:
        extra = self.extra_metadata()
        if self.symmetry_record == "rotations":
            extra["symmetry"] = "none (not rotation-invariant by construction)"
            extra["rotation_sensitivity"] = self.rotation_sensitivity()
        probe = self.symmetry_record == "probe"
        return user_checkpoint_metadata(self, self.distribution, probe, **extra)
