"""The common ("Platonic") space: every model's atoms as cosine similarities to shared anchors.

Anchors are atom identities (structure hash, site), chosen once (by default by DIRECT
sampling on the model-agnostic ``soap`` features) and embedded by every model, so column
``k`` of every model's projection means "similarity to anchor site k" (Li & Walsh 2025).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..anchors import RelativeProjector, select_anchors
from ..errors import MetricInputError
from ..features import AtomFeatures
from ..models import find_card

#: name of the element one-hot baseline added by :func:`with_controls`
ONEHOT = "element-onehot"
#: prefix of the shuffled-anchor copies of a model added by :func:`with_controls`
SHUFFLED_PREFIX = "shuffled:"


def is_control(name: str) -> bool:
    """Whether ``name`` is a negative control or a classical descriptor, not a trained MLIP.

    A registered model is a control when its card's ``kind`` is not ``"mlip"``
    (``"control"`` such as ``mace-random:<seed>``, or ``"descriptor"`` such as ``soap``).
    The baselines :func:`with_controls` adds are not registered models; they are
    recognised by name, here only: :data:`ONEHOT` and ``SHUFFLED_PREFIX + <model>``. Any
    other unregistered name counts as a trained model.
    """
    if name.startswith((ONEHOT, SHUFFLED_PREFIX)):
        return True
    card = find_card(name)
    return card is not None and card.kind != "mlip"


@dataclass
class CommonSpace:
    """Every model's atoms projected on the same anchor sites.

    Attributes
    ----------
    Z : dict of str to ndarray (n_atoms, n_anchors)
        Projected atoms of every model; same rows for every model.
    E : dict of str to ndarray (n_atoms, d_model)
        Raw embeddings, same rows.
    atoms : AtomFeatures
        Identity of the rows (structure hash, site, element, subset); its ``X`` holds the
        features anchors were chosen on.
    anchor_rows : ndarray of int
        Rows of the anchors.
    settings : dict
        Layer, anchor model, method, centring, seed.
    """

    Z: dict[str, np.ndarray]
    E: dict[str, np.ndarray]
    atoms: AtomFeatures
    anchor_rows: np.ndarray
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def models(self) -> list[str]:
        return list(self.Z)

    @property
    def anchor_ids(self) -> pd.DataFrame:
        """The anchors as atom identities."""
        rows = self.anchor_rows
        return pd.DataFrame(
            {
                "structure_hash": self.atoms.structure_hash[rows],
                "site": self.atoms.site[rows],
                "element": self.atoms.numbers[rows],
            }
        )

    def near_duplicate_class(self) -> np.ndarray:
        """A label per atom: (parent structure, element). Copies of a crystal share it."""
        table = self.atoms.structures
        root = np.where(table["parent"].astype(str) != "", table["parent"], table["structure_hash"])
        return np.char.add(
            root.astype(str)[self.atoms.structure_index], self.atoms.numbers.astype(str)
        )


def project(E: np.ndarray, anchor_rows: np.ndarray, center: bool = False) -> np.ndarray:
    """Cosine similarity of every row of ``E`` to the anchor rows of ``E``."""
    return RelativeProjector(center=center).fit(E[anchor_rows]).transform(E)


def build_common_space(
    tables: dict[str, AtomFeatures],
    anchor_features: AtomFeatures,
    n_anchors: int = 256,
    method: str = "direct",
    center: bool = False,
    random_state: int = 0,
) -> CommonSpace:
    """Choose anchors on ``anchor_features`` and project every model on them.

    Parameters
    ----------
    tables : dict of model name to AtomFeatures
        Aligned tables (same atoms, same order; see :meth:`mlipspace.FeatureStore.aligned`).
    anchor_features : AtomFeatures
        Features the anchors are selected on, aligned with ``tables``.
    n_anchors : int, default=256
    method : {"direct", "fps", "kmeans", "random"}
    center : bool, default=False
        Subtract each model's anchor mean before the cosine (:class:`RelativeProjector`).
    random_state : int, default=0
    """
    if not tables:
        raise MetricInputError("no models to project")
    first = next(iter(tables.values()))
    for name, table in tables.items():
        if len(table) != len(anchor_features) or not np.array_equal(
            table.structure_hash, anchor_features.structure_hash
        ):
            raise MetricInputError(f"{name}: rows are not aligned with the anchor features")
    if n_anchors > len(first) // 2:
        raise MetricInputError(f"{n_anchors} anchors is too many for {len(first)} atoms")
    rows = np.asarray(
        select_anchors(anchor_features.X, n_anchors, method=method, random_state=random_state)
    )
    Z = {name: project(t.X, rows, center) for name, t in tables.items()}
    E = {name: np.asarray(t.X, dtype=np.float64) for name, t in tables.items()}
    return CommonSpace(
        Z=Z,
        E=E,
        atoms=anchor_features,
        anchor_rows=rows,
        settings={
            "n_anchors": len(rows),
            "method": method,
            "center": center,
            "random_state": random_state,
            "anchor_model": anchor_features.model,
            "anchor_layer": anchor_features.layer,
            "layer": first.layer,
        },
    )


def common_space_from_store(
    store: Any,
    models: Sequence[str],
    layer: str = "node",
    n_anchors: int = 256,
    anchor_model: str = "soap",
    anchor_layer: str | None = None,
    method: str = "direct",
    center: bool = False,
    random_state: int = 0,
    structures: Any = None,
) -> CommonSpace:
    """:func:`build_common_space` on the atoms every model (and the anchor model) holds.

    ``structures`` (hashes or ``Atoms``) restricts the space to those structures.
    """
    anchor_layer = anchor_layer or layer
    pairs = [(m, layer) for m in models]
    anchor_key = (anchor_model, anchor_layer)
    aligned = store.aligned([*pairs, anchor_key] if anchor_key not in pairs else pairs, structures)
    tables = {m: aligned[(m, layer)] for m in models}
    return build_common_space(tables, aligned[anchor_key], n_anchors, method, center, random_state)


def with_controls(
    space: CommonSpace, shuffled: Sequence[str] = (), random_state: int = 0
) -> CommonSpace:
    """Add negative controls: the element one-hot baseline and shuffled-anchor copies.

    ``shuffled:<model>`` permutes the anchor columns of ``<model>``: the coordinates keep
    their geometry but lose their correspondence with the other models.
    """
    rng = np.random.default_rng(random_state)
    Z, E = dict(space.Z), dict(space.E)
    elements, onehot_index = np.unique(space.atoms.numbers, return_inverse=True)
    onehot = np.eye(len(elements))[onehot_index]
    E[ONEHOT] = onehot
    Z[ONEHOT] = project(onehot, space.anchor_rows, space.settings.get("center", False))
    for name in shuffled:
        if name not in space.Z:
            raise MetricInputError(f"cannot shuffle unknown model {name!r}")
        perm = rng.permutation(space.Z[name].shape[1])
        Z[SHUFFLED_PREFIX + name] = space.Z[name][:, perm]
        E[SHUFFLED_PREFIX + name] = space.E[name]
    return CommonSpace(
        Z=Z, E=E, atoms=space.atoms, anchor_rows=space.anchor_rows, settings=dict(space.settings)
    )


def sample_rows(n: int, size: int, random_state: int = 0) -> np.ndarray:
    """A sorted random subset of ``size`` rows out of ``n`` (all rows when ``size >= n``)."""
    if size >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(random_state).choice(n, size=size, replace=False))
