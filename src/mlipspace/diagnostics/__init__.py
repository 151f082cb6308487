"""Physical-failure diagnostics of per-atom features and of the models' potentials.

* :mod:`.symmetry`: orbit spread of symmetry-equivalent sites, its growth under a
  deliberate displacement, the mirror-image gap.
* :mod:`.calculators`: the ASE calculators of the offline pretrained models.
* :mod:`.physics`: symmetry loss on unconstrained relaxation, phonons (phonopy), AUROC.

Heavy dependencies (torch, the model packages, phonopy) are imported on use.
"""

from __future__ import annotations

from . import physics, symmetry
from .calculators import CALCULATOR_MODELS, calculator_for
from .physics import *  # noqa: F403
from .symmetry import *  # noqa: F403

# the public names of physics and symmetry are listed once, in their own ``__all__``
__all__ = ["CALCULATOR_MODELS", "calculator_for", *physics.__all__, *symmetry.__all__]
