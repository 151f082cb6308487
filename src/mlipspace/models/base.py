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

from ..errors import ModelError

STANDARD_LAYERS = ("ll", "node", "bb")

#: what a registered model is: a trained potential, a fixed descriptor, or a control
MODEL_KINDS = ("mlip", "descriptor", "control")
#: the symmetry of a model's features, as built (and checked by the contract tests):
#: invariant under rotations and reflections, under proper rotations only, or neither
SYMMETRIES = ("O(3)", "SO(3)", "none")


def unsupported_error(model: str, atoms: Any, index: int, z: int) -> ModelError:
    """The error for an element a model was not trained on (names structure and element)."""
    from ase.data import chemical_symbols

    from ..errors import UnsupportedElementError

    label = atoms.info.get("source") or atoms.info.get("structure_hash") or f"#{index}"
    return UnsupportedElementError(
        f"{model} does not support element {chemical_symbols[z]} (Z={z}) found in structure "
        f"{index} ({label}, {atoms.get_chemical_formula()})"
    )


@dataclass(frozen=True)
class ModelCard:
    """Every fact about a model that an analysis may need, in one place.

    Analyses never keep side tables of model facts: they read the card of the model's
    :class:`ModelSpec` through :func:`mlipspace.models.model_card`.

    Parameters
    ----------
    architecture : str
        Architecture family, e.g. ``"CHGNet"``, ``"SevenNet"``, ``"MACE"``. Models of one
        architecture are "siblings" in the Platonic analyses.
    training_data : str
        Training set, e.g. ``"MPtrj"``, ``"MatPES"``, ``"OMat24"``; empty when unknown.
    level_of_theory : str
        Functional of the energies the model predicts: ``"PBE"`` (PBE/PBE+U) or
        ``"r2SCAN"``; for one head of a multi-fidelity model, that head's functional
        (``training_data`` names every data set it saw). Empty when not applicable.
    kind : str
        One of :data:`MODEL_KINDS`.
    fine_tuned_from : str, optional
        Registered name of the model this one was fine-tuned from.
    shared_initialisation : str, optional
        Registered name of a model that shares this one's weights at initialisation
        (e.g. the heads of one multi-fidelity checkpoint).
    has_calculator : bool
        Whether mlipspace can build an ASE calculator (energies, forces) for it.
    symmetry : str
        One of :data:`SYMMETRIES`.
    environment : str
        Worker environment (``envs/<environment>.txt``); ``"main"`` runs in the main one.
    """

    architecture: str = ""
    training_data: str = ""
    level_of_theory: str = ""
    kind: str = "mlip"
    fine_tuned_from: str | None = None
    shared_initialisation: str | None = None
    has_calculator: bool = False
    symmetry: str = "O(3)"
    environment: str = "main"

    def __post_init__(self) -> None:
        if self.kind not in MODEL_KINDS:
            raise ValueError(f"ModelCard.kind must be one of {MODEL_KINDS}, not {self.kind!r}")
        if self.symmetry not in SYMMETRIES:
            raise ValueError(
                f"ModelCard.symmetry must be one of {SYMMETRIES}, not {self.symmetry!r}"
            )


class ModelAdapter(abc.ABC):
    """One loaded model that can compute per-atom features.

    Subclasses set :attr:`name` and implement :meth:`layer_dims` and :meth:`compute`.
    They must never compute forces or stresses when only features are asked for. Torch
    models subclass :class:`mlipspace.models.torch_base.TorchAdapter` instead, which
    implements :meth:`compute` on top of a family's batch builder and forward pass.
    """

    #: registered name, e.g. ``"chgnet-0.3.0"``
    name: str = ""

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

    def check_elements(self, structures: Sequence[Atoms]) -> None:
        """Raise :class:`~mlipspace.errors.UnsupportedElementError` for an unknown element.

        The error names the model, the structure and the element; adapters call it before
        computing anything.
        """
        supported = self.supported_elements()
        if supported is None:
            return
        for index, atoms in enumerate(structures):
            for z in np.unique(atoms.numbers):
                if int(z) not in supported:
                    raise unsupported_error(self.name, atoms, index, int(z))

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
    factory : callable
        ``factory(argument, dtype=..., device=...) -> ModelAdapter``; ``argument`` is
        ``None`` for plain names, the text after ``:`` for parametrised ones.
    layers : dict
        Known layer dimensions (for listing without loading the model).
    description : str
        One line for ``mlipspace models``.
    weights_available : callable, optional
        ``weights_available() -> bool``: whether the weights can be loaded offline here.
    relative_cost : float
        Featurization time per atom on CPU relative to SevenNet-0 (measured on the demo set,
        one thread per model, 17185 atoms: SevenNet-0 32 s, HIENet-V3 149 s). Only used to
        start the slowest models first when several run side by side, so that no worker idles
        at the end.
    card : ModelCard
        The model's facts (architecture, data, kind, symmetry, environment...): the one
        place they are kept. A plugin fills it like a built-in family.
    """

    name: str
    factory: Callable[..., ModelAdapter]
    layers: dict[str, int] = field(default_factory=dict)
    description: str = ""
    weights_available: Callable[[], bool] | None = None
    relative_cost: float = 1.0
    card: ModelCard = field(default_factory=ModelCard)

    @property
    def parametrised(self) -> bool:
        """Whether this spec serves a family of names ``<prefix>:<argument>``."""
        return self.name.endswith(":")

    @property
    def family(self) -> str:
        """The worker environment (read-only; ``card.environment`` is the one home)."""
        return self.card.environment
