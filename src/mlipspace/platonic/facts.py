"""Model facts the Platonic checks need, read from the model cards (never from side tables)."""

from __future__ import annotations

from ..errors import MlipspaceError
from ..models import find_card as card_of
from ..models import fine_tune_pairs, related_by_construction

__all__ = [
    "family",
    "fine_tune_pairs",
    "is_pbe_only",
    "level_of_theory",
    "model_relation",
    "pair_relation",
]


def spec(name: str):
    """The registered spec serving ``name``; None when there is none."""
    from ..models import resolve

    try:
        return resolve(name)[0]
    except MlipspaceError:
        return None


def level_of_theory(name: str) -> str:
    """The card's level of theory; for a multi-fidelity card (``"PBE+r2SCAN"``) the level
    named by the head argument (``"sevennet-mf-0:R2SCAN"`` → ``"r2SCAN"``)."""
    card = card_of(name)
    level = card.level_of_theory if card else ""
    if "+" in level and ":" in name:
        head = name.split(":", 1)[1].lower()
        for part in level.split("+"):
            if part.lower() == head:
                return part
    return level


def family(name: str) -> str:
    """The card's architecture ("" when unknown)."""
    card = card_of(name)
    return card.architecture if card else ""


def pair_relation(a: str, b: str) -> str:
    """How two models are related: ``same family and data``, ``same data``,
    ``different data or fidelity``, or ``unknown`` (a card without training data)."""
    ca, cb = card_of(a), card_of(b)
    if ca is None or cb is None or not ca.training_data or not cb.training_data:
        return "unknown"
    if (ca.training_data, level_of_theory(a)) == (cb.training_data, level_of_theory(b)):
        return "same family and data" if ca.architecture == cb.architecture else "same data"
    return "different data or fidelity"


def model_relation(a: str, b: str) -> str:
    """``fine-tune``, ``shared initialisation`` or ``""``, from the cards: one fine-tuned
    from the other (:func:`mlipspace.models.related_by_construction`), sharing weights, or
    heads of one parametrised checkpoint."""
    ca, cb = card_of(a), card_of(b)
    if ca is None or cb is None:
        return ""
    if ca.fine_tuned_from == b or cb.fine_tuned_from == a:
        return "fine-tune"
    if related_by_construction(a, b):
        return "shared initialisation"
    shared = ca.shared_initialisation
    if shared and shared == cb.shared_initialisation:
        return "shared initialisation"
    spec_a, spec_b = spec(a), spec(b)
    if spec_a is not None and spec_a is spec_b and spec_a.parametrised:
        return "shared initialisation"
    return ""


def is_pbe_only(name: str) -> bool:
    """PBE energies from weights of their own: not a head sharing weights with an r2SCAN head
    (multi-fidelity), not a fine-tune."""
    card = card_of(name)
    return (
        card is not None
        and level_of_theory(name) == "PBE"
        and card.shared_initialisation is None
        and card.fine_tuned_from is None
    )
