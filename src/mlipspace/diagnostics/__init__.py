"""Physical-failure diagnostics of per-atom features and of the models' potentials.

* :mod:`.symmetry`: orbit spread of symmetry-equivalent sites, its growth under a
  deliberate displacement, the mirror-image gap.
* :mod:`.calculators`: the ASE calculators of the offline pretrained models.
* :mod:`.physics`: symmetry loss on unconstrained relaxation, phonons (phonopy), AUROC.

Heavy dependencies (torch, the model packages, phonopy) are imported on use.
"""

from __future__ import annotations

from .calculators import CALCULATOR_MODELS, calculator_for
from .physics import auroc, auroc_with_note, phonon_check, relax_symmetry_loss, symmetry_lost
from .symmetry import (
    cosine_distance,
    displacement_series,
    equivalent_sites,
    mirror_gap,
    mirror_image,
    orbit_spread,
    symmetry_dataset,
    symmetry_scores,
)

__all__ = [
    "CALCULATOR_MODELS",
    "auroc",
    "auroc_with_note",
    "calculator_for",
    "cosine_distance",
    "displacement_series",
    "equivalent_sites",
    "mirror_gap",
    "mirror_image",
    "orbit_spread",
    "phonon_check",
    "relax_symmetry_loss",
    "symmetry_dataset",
    "symmetry_lost",
    "symmetry_scores",
]
