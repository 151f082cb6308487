"""2D PCA maps of raw and anchored spaces (the report draws them; they are computed here)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import MetricInputError
from ..results import PcaMaps
from .chemistry import element_group
from .space import CommonSpace, is_control, project, projection_settings, sample_rows

__all__ = ["pca_2d", "pca_maps"]


def pca_2d(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First two principal components of ``X`` and their explained-variance ratios.

    Signs are fixed (scikit-learn's ``svd_flip``), so the map is reproducible.
    """
    from sklearn.decomposition import PCA

    X = np.asarray(X, dtype=np.float64)
    n = min(2, X.shape[0], X.shape[1])
    pca = PCA(n_components=n, svd_solver="full").fit(X)
    coords = pca.transform(X)
    ratio = pca.explained_variance_ratio_
    if n < 2:  # a one-dimensional space still gets a (flat) map
        coords = np.column_stack([coords, np.zeros(len(X))])
        ratio = np.append(ratio, 0.0)
    return coords, ratio


def pca_maps(
    space: CommonSpace,
    models: Sequence[str] | None = None,
    max_atoms: int = 3000,
    random_state: int = 0,
) -> PcaMaps:
    """Raw and anchored 2D PCA maps of a few models on one random subsample of atoms.

    Parameters
    ----------
    space : CommonSpace
        The common space (its raw embeddings ``E`` and anchor rows).
    models : sequence of str, optional
        Models mapped (default: the first three trained models of the space).
    max_atoms : int, default=3000
        Atoms subsampled (every atom when the space has fewer).
    random_state : int, default=0
        Seed of the subsample.
    """
    if max_atoms < 10:
        raise MetricInputError(f"max_atoms must be at least 10, not {max_atoms}")
    if models:
        models = list(models)
        absent = [m for m in models if m not in space.E]
        if absent:
            raise MetricInputError(f"{absent} are not models of the common space")
    else:
        models = [m for m in space.models if not is_control(m)][:3]
    if not models:
        raise MetricInputError("no trained model in the common space to map")
    mode, scaled = projection_settings(space)
    center = mode != "none"  # whether the map's projection is centred (on data or anchors)
    sample = sample_rows(len(space.atoms), max_atoms, random_state)
    maps = {}
    for m in models:
        E = np.asarray(space.E[m], dtype=np.float64)
        anchored = project(E, space.anchor_rows, mode, scaled)[sample]
        maps[m] = {"raw": pca_2d(E[sample]), "anchored": pca_2d(anchored)}
    numbers = space.atoms.numbers[sample]
    return PcaMaps(
        models=models,
        layer=str(space.settings.get("layer", "")),
        center=center,
        n_atoms=len(space.atoms),
        n_anchors=len(space.anchor_rows),
        random_state=random_state,
        structure_hash=np.asarray(space.atoms.structure_hash[sample]).astype(str),
        site=np.asarray(space.atoms.site[sample], dtype=int),
        numbers=np.asarray(numbers, dtype=int),
        groups=np.asarray(element_group(numbers), dtype=int),
        maps=maps,
    )
