"""The core agreement of the common space under other anchor and projection settings (T10)."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd

from ..anchors import select_anchors
from .agreement import retrieval_ranks, rowwise_cosine
from .space import (
    CommonSpace,
    element_onehot,
    is_control,
    projection_settings,
    reprojected,
    sample_rows,
)

__all__ = ["core_agreement", "robustness"]


def core_agreement(space: CommonSpace, models: Sequence[str], rows: np.ndarray) -> dict[str, float]:
    """Mean over trained pairs of the per-atom cosine, top-10 retrieval and same-element
    retrieval on ``rows``, and the mean cosine of trained models with the random controls."""
    trained = [m for m in models if not is_control(m)]
    randoms = [m for m in models if m.startswith("mace-random")]
    rows = np.setdiff1d(rows, space.anchor_rows)  # no anchor in an evaluation sample
    numbers = space.atoms.numbers[rows]
    cos, top10, element = [], [], []
    for a, b in combinations(trained, 2):
        ZA, ZB = space.Z[a][rows], space.Z[b][rows]
        cos.append(rowwise_cosine(ZA, ZB).mean())
        ranks, nearest = retrieval_ranks(ZA, ZB)
        top10.append(np.mean(ranks <= 10))
        element.append(np.mean(numbers[nearest] == numbers))
    control = [
        rowwise_cosine(space.Z[t][rows], space.Z[r][rows]).mean() for t in trained for r in randoms
    ]
    anchors = space.atoms.numbers[space.anchor_rows]
    return {
        "trained_cosine": float(np.mean(cos)) if cos else np.nan,
        "trained_top10": float(np.mean(top10)) if top10 else np.nan,
        "trained_top1_element": float(np.mean(element)) if element else np.nan,
        "random_cosine": float(np.mean(control)) if control else np.nan,
        "anchor_elements": len(np.unique(anchors)),
    }


def robustness(
    base: CommonSpace,
    n_anchors: Sequence[int] = (64, 256, 1024),
    n_atoms: int = 1000,
    random_state: int = 0,
) -> pd.DataFrame:
    """The core agreement (:func:`core_agreement`) under other anchor settings (T10).

    Variants: DIRECT anchors on the anchor features for every ``n_anchors`` (capped at half
    the atoms); random anchors; DIRECT on the first trained model's own embeddings; DIRECT on
    the anchor features with an element one-hot appended (element-aware); and the
    base anchors with the uncentred, unscaled projection (or the data-centred, standardised
    one when the base is uncentred).
    """
    method = base.settings.get("method", "direct")
    center, standardize = projection_settings(base)
    models = base.models
    trained = [m for m in models if not is_control(m)]
    rows = sample_rows(len(base.atoms), n_atoms, random_state)
    limit = len(base.atoms) // 2
    k0 = len(base.anchor_rows)
    variants: list[tuple[str, Any, int, str, bool]] = [
        (f"{method}, K={k}", base.atoms.X, k, center, standardize)
        for k in sorted({*n_anchors, k0})
        if k <= limit
    ]
    variants.append((f"random, K={k0}", None, k0, center, standardize))
    if trained:
        variants.append(
            (f"{method} on {trained[0]}, K={k0}", base.E[trained[0]], k0, center, standardize)
        )
    if base.settings.get("anchor_input", "features") == "features":
        # element-aware DIRECT: the anchor features with an element one-hot appended
        with_elements = np.hstack([base.atoms.X, element_onehot(base.atoms.numbers)])
        variants.append(
            (f"{method} on features+elements, K={k0}", with_elements, k0, center, standardize)
        )
    if center == "none" and not standardize:
        variants.append((f"{method}, K={k0}, centred", "base", k0, "data", True))
    else:
        variants.append((f"{method}, K={k0}, uncentred", "base", k0, "none", False))
    records = []
    for name, features, k, centred, scaled in variants:
        if features is None:
            anchor_rows = sample_rows(len(base.atoms), k, random_state + 1)
        elif isinstance(features, str):
            anchor_rows = base.anchor_rows
        else:
            anchor_rows = np.asarray(
                select_anchors(features, k, method=method, random_state=random_state)
            )
        space = reprojected(base, centred, scaled, anchor_rows)
        records.append(
            {
                "variant": name,
                "n_anchors": k,
                "center": centred,
                "standardize": scaled,
                **core_agreement(space, models, rows),
            }
        )
    return pd.DataFrame(records)
