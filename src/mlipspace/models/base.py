"""The adapter interface every model family implements, and the registry of models.

An adapter turns a batch of ``ase.Atoms`` into per-atom feature arrays for one or more
layers in a single forward pass. Adapters are looked up by name through
:func:`get_model`; third-party packages register theirs under the entry-point group
``mlipspace.models`` (the entry point's object is a :class:`ModelSpec` or a callable
returning a list of them).
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from ase import Atoms

STANDARD_LAYERS = ("ll", "node", "bb")


class ModelAdapter(abc.ABC):
    """One loaded model that can compute per-atom features.

    Subclasses set :attr:`name`, :attr:`family` and implement :meth:`layer_dims` and
    :meth:`compute`. They must never compute forces or stresses when only features
    are asked for.
    """

    #: registered name, e.g. ``"chgnet-0.3.0"``
    name: str = ""
    #: family, which decides the worker environment, e.g. ``"chgnet"``
    family: str = ""

    @abc.abstractmethod
    def layer_dims(self) -> dict[str, int]:
        """Feature dimension of every layer this model offers (``ll``, ``node``, ``bb``, ``layer:<i>``)."""

    @abc.abstractmethod
    def compute(
        self, structures: Sequence[Atoms], layers: Sequence[str]
    ) -> dict[str, list[np.ndarray]]:
        """Features of ``structures`` for each of ``layers``.

        Returns
        -------
        dict
            ``{layer: [array (n_atoms_s, d_layer) for each structure s]}``, float64 or
            float32 numpy arrays in the order of ``structures``.
        """

    def supported_elements(self) -> set[int] | None:
        """Atomic numbers the model knows; ``None`` when any element is accepted."""
        return None

    def metadata(self) -> dict[str, Any]:
        """Provenance recorded in the store: package and checkpoint versions, etc."""
        return {}

    def preferred_batch_size(self) -> int:
        """Structures per forward pass that measured fastest on CPU for this family."""
        return 1


@dataclass(frozen=True)
class ModelSpec:
    """How to build a registered model without importing its heavy dependencies.

    Parameters
    ----------
    name : str
        Registered name, or a prefix ending in ``":"`` for parametrised names such as
        ``"mace:"`` (the rest of the requested name is passed to ``factory``).
    family : str
        Family, naming the worker environment (``envs/<family>.txt``); ``"main"`` runs
        in the main environment.
    factory : callable
        ``factory(argument, dtype=..., device=...) -> ModelAdapter``; ``argument`` is
        ``None`` for plain names, the text after ``:`` for parametrised ones.
    layers : dict
        Known layer dimensions (for listing without loading the model).
    description : str
        One line for ``mlipspace models``.
    relative_cost : float
        Featurization time per atom on CPU relative to SevenNet-0 (measured on the demo set,
        one thread per model, 17185 atoms: SevenNet-0 32 s, HIENet-V3 149 s). Only used to
        start the slowest models first when several run side by side, so that no worker idles
        at the end.
    """

    name: str
    family: str
    factory: Callable[..., ModelAdapter]
    layers: dict[str, int] = field(default_factory=dict)
    description: str = ""
    weights_available: Callable[[], bool] | None = None
    relative_cost: float = 1.0

    @property
    def parametrised(self) -> bool:
        return self.name.endswith(":")
