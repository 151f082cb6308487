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

from ..anchors import RelativeProjector, center_mode, select_anchors, standardize_columns
from ..errors import MetricInputError, ParameterError
from ..features import AtomFeatures
from ..models import find_card

#: name of the element one-hot baseline added by :func:`with_controls`
ONEHOT = "element-onehot"
#: prefix of the shuffled-anchor copies of a model added by :func:`with_controls`
SHUFFLED_PREFIX = "shuffled:"
#: the default origin of the cosines and per-model standardisation of the projection, chosen
#: on synthetic models that share their geometry by construction
#: (``tests/test_common_space.py``): uncentred cosines fail to recover it, the data-centred,
#: standardised projection recovers it
DEFAULT_CENTER = "data"
#: atoms whose feature norm exceeds this many times the model's median stay out of its data
#: mean (the rule of :func:`mlipspace.features.drop_outlier_structures`)
OUTLIER_FACTOR = 100.0
DEFAULT_STANDARDIZE = True
#: subsets of the demo set that are ideal bulk crystals (no copies, defects, molecules, slabs
#: or random packings): the closest the demo comes to the paper's relaxed MP-20 crystals
BULK_SUBSETS = ("element", "binary", "perovskite", "alloy")


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

    def bulk_rows(self) -> np.ndarray:
        """Rows of atoms in ideal bulk crystals (:data:`BULK_SUBSETS`)."""
        subset = self.atoms.structures["subset"].astype(str).to_numpy()
        return np.flatnonzero(np.isin(subset, BULK_SUBSETS)[self.atoms.structure_index])

    def parent_groups(self) -> np.ndarray:
        """A label per atom: its parent structure (itself when it has none), so that copies
        of a crystal (rattled, strained, with a vacancy) share it."""
        table = self.atoms.structures
        root = np.where(table["parent"].astype(str) != "", table["parent"], table["structure_hash"])
        return root.astype(str)[self.atoms.structure_index]

    def evaluation_rows(
        self, size: int, random_state: int = 0, rows: np.ndarray | None = None
    ) -> np.ndarray:
        """Up to ``size`` random rows (of ``rows``, default all) that are not anchors.

        An anchor has cosine 1 with its own column in every model, which would inflate any
        agreement measured on it, so no evaluation sample holds one.
        """
        pool = np.arange(len(self.atoms)) if rows is None else np.asarray(rows)
        pool = np.setdiff1d(pool, self.anchor_rows)
        return pool[sample_rows(len(pool), size, random_state)]

    def near_duplicate_class(self) -> np.ndarray:
        """A label per atom: (parent structure, element). Copies of a crystal share it."""
        return np.char.add(np.char.add(self.parent_groups(), "|"), self.atoms.numbers.astype(str))


def project(
    E: np.ndarray,
    anchor_rows: np.ndarray,
    center: bool | str = DEFAULT_CENTER,
    standardize: bool = DEFAULT_STANDARDIZE,
) -> np.ndarray:
    """Cosine similarity of every row of ``E`` to the anchor rows of ``E``.

    ``center``: the origin of the cosines (:class:`~mlipspace.anchors.RelativeProjector`;
    ``"data"`` is the mean of the rows of ``E``, leaving out rows whose norm exceeds
    :data:`OUTLIER_FACTOR` times the median). ``standardize``: every column of the result
    then scaled to mean 0 and unit variance over the rows of ``E`` (this model's own
    statistics, no labels).
    """
    E = np.asarray(E, dtype=np.float64)
    mode = center_mode(center)
    extra = {}
    if mode == "data":
        # a few atoms far outside a model's training data can have features 10^4-10^8 times
        # the usual size; left in, they would make the mean and move every atom's origin
        norm = np.linalg.norm(E, axis=1)
        typical = norm <= OUTLIER_FACTOR * np.median(norm)
        extra = {"population": E[typical] if typical.any() else E}
    Z = RelativeProjector(center=mode).fit(E[anchor_rows], **extra).transform(E)
    return standardize_columns(Z) if standardize else Z


#: what DIRECT chooses anchors on: the anchor features alone, with a standardised element
#: one-hot appended, or the models' own features, each standardised, concatenated
ANCHOR_INPUTS = ("features", "elements", "models")


def element_onehot(numbers: np.ndarray) -> np.ndarray:
    """One column per element present, 1 where the atom is of that element."""
    elements, index = np.unique(np.asarray(numbers), return_inverse=True)
    return np.eye(len(elements))[index]


def anchor_selection_features(
    anchor_features: AtomFeatures, tables: dict[str, AtomFeatures], anchor_input: str = "features"
) -> np.ndarray:
    """The matrix anchors are selected on (:data:`ANCHOR_INPUTS`).

    ``"elements"`` appends an element one-hot to the anchor features, so that DIRECT, which
    standardises every column, sees species that a species-blind descriptor (4-class SOAP)
    merges; it stays model-agnostic. ``"models"`` concatenates every non-control model's
    features, each column standardised: element-aware, but the anchors then depend on which
    models are studied.
    """
    if anchor_input == "features":
        return np.asarray(anchor_features.X, dtype=np.float64)
    if anchor_input == "elements":
        return np.hstack(
            [np.asarray(anchor_features.X, np.float64), element_onehot(anchor_features.numbers)]
        )
    if anchor_input == "models":
        blocks = [standardize_columns(t.X) for n, t in tables.items() if not is_control(n)]
        if not blocks:
            raise MetricInputError('anchor_input="models" needs at least one trained model')
        return np.hstack(blocks)
    raise MetricInputError(f"unknown anchor input {anchor_input!r}; choose one of {ANCHOR_INPUTS}")


def anchor_coverage(space: CommonSpace) -> pd.DataFrame:
    """The anchors' subsets and elements against the whole population of atoms.

    Columns: ``kind`` (``subset`` or ``element``), ``value``, ``anchors``, ``population``,
    ``anchor_fraction``, ``population_fraction``; a value missing among the anchors has 0.
    """
    from ase.data import chemical_symbols

    subset = space.atoms.structures["subset"].astype(str).to_numpy()[space.atoms.structure_index]
    symbols = np.array([chemical_symbols[z] for z in space.atoms.numbers])
    records = []
    for kind, labels in (("subset", subset), ("element", symbols)):
        population = pd.Series(labels).value_counts()
        anchors = pd.Series(labels[space.anchor_rows]).value_counts()
        for value, count in population.items():
            records.append(
                {
                    "kind": kind,
                    "value": value,
                    "anchors": int(anchors.get(value, 0)),
                    "population": int(count),
                    "anchor_fraction": float(anchors.get(value, 0) / len(space.anchor_rows)),
                    "population_fraction": float(count / len(labels)),
                }
            )
    return pd.DataFrame(records)


def build_common_space(
    tables: dict[str, AtomFeatures],
    anchor_features: AtomFeatures,
    n_anchors: int = 256,
    method: str = "direct",
    center: bool | str = DEFAULT_CENTER,
    random_state: int = 0,
    standardize: bool = DEFAULT_STANDARDIZE,
    anchor_input: str = "features",
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
    center : {"data", "anchors", "none"} or bool, default="data"
        Origin of each model's cosines: the mean of all its atoms, of its anchors, or none
        (:func:`project`).
    random_state : int, default=0
    standardize : bool, default=True
        Standardise every model's projected columns with its own statistics.
    anchor_input : {"features", "elements", "models"}, default="features"
        What the anchors are selected on (:func:`anchor_selection_features`).
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
    selection = anchor_selection_features(anchor_features, tables, anchor_input)
    rows = np.asarray(
        select_anchors(selection, n_anchors, method=method, random_state=random_state)
    )
    center = center_mode(center)
    Z = {name: project(t.X, rows, center, standardize) for name, t in tables.items()}
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
            "standardize": bool(standardize),
            "anchor_input": anchor_input,
            "random_state": random_state,
            "anchor_model": anchor_features.model,
            "anchor_layer": anchor_features.layer,
            "layer": first.layer,
        },
    )


@dataclass(frozen=True)
class SpaceSettings:
    """How :func:`common_space_from_store` builds a space (:func:`build_common_space`'s
    parameters): the layer compared, the anchors (``n_anchors`` chosen by ``method`` on
    ``anchor_model``'s ``anchor_layer``, default the same layer, from ``anchor_input``) and
    the projection (``center``, ``standardize``)."""

    layer: str = "node"
    n_anchors: int = 256
    anchor_model: str = "soap"
    anchor_layer: str | None = None
    method: str = "direct"
    center: bool | str = DEFAULT_CENTER
    random_state: int = 0
    standardize: bool = DEFAULT_STANDARDIZE
    anchor_input: str = "features"


def common_space_from_store(
    store: Any, models: Sequence[str], structures: Any = None, **settings: Any
) -> CommonSpace:
    """:func:`build_common_space` on the atoms every model (and the anchor model) holds.

    ``store`` is a :class:`mlipspace.FeatureStore` or its path or URL. ``structures``
    (hashes or ``Atoms``) restricts the space to those structures;
    ``settings`` are the fields of :class:`SpaceSettings` (its defaults for the others).
    """
    unknown = set(settings) - set(SpaceSettings.__dataclass_fields__)
    if unknown:
        raise ParameterError(
            f"unknown common-space settings {sorted(unknown)}; "
            f"choose among {list(SpaceSettings.__dataclass_fields__)}"
        )
    from ..store import open_store

    store = open_store(store, mode="r")
    s = SpaceSettings(**settings)
    anchor_layer = s.anchor_layer or s.layer
    pairs = [(m, s.layer) for m in models]
    anchor_key = (s.anchor_model, anchor_layer)
    aligned = store.aligned([*pairs, anchor_key] if anchor_key not in pairs else pairs, structures)
    tables = {m: aligned[(m, s.layer)] for m in models}
    return build_common_space(
        tables,
        aligned[anchor_key],
        s.n_anchors,
        s.method,
        s.center,
        s.random_state,
        s.standardize,
        s.anchor_input,
    )


def projection_settings(space: CommonSpace) -> tuple[str, bool]:
    """``(center, standardize)`` the space was projected with."""
    return (
        center_mode(space.settings.get("center", DEFAULT_CENTER)),
        bool(space.settings.get("standardize", DEFAULT_STANDARDIZE)),
    )


def reprojected(
    space: CommonSpace,
    center: bool | str,
    standardize: bool,
    anchor_rows: np.ndarray | None = None,
) -> CommonSpace:
    """The same atoms and raw features projected again (other centring, scaling or anchors).

    Shuffled-anchor controls are carried over as they are; their column permutation is
    applied to the new projection of the model they copy.
    """
    rows = space.anchor_rows if anchor_rows is None else np.asarray(anchor_rows)
    Z = {}
    for name, E in space.E.items():
        if name.startswith(SHUFFLED_PREFIX):
            continue
        Z[name] = project(E, rows, center, standardize)
    for name in space.Z:
        if name.startswith(SHUFFLED_PREFIX) and anchor_rows is None:
            source = name[len(SHUFFLED_PREFIX) :]
            perm = space.settings.get("shuffled_permutations", {}).get(name)
            if perm is not None:
                Z[name] = Z[source][:, np.asarray(perm)]
    Z = {name: Z[name] for name in space.Z if name in Z}
    settings = {
        **space.settings,
        "center": center_mode(center),
        "standardize": bool(standardize),
        "n_anchors": len(rows),
    }
    return CommonSpace(Z=Z, E=space.E, atoms=space.atoms, anchor_rows=rows, settings=settings)


def subspace(space: CommonSpace, models: Sequence[str]) -> CommonSpace:
    """The same space with ``models`` only (same atoms, anchors and settings)."""
    missing = [m for m in models if m not in space.Z]
    if missing:
        raise MetricInputError(f"{missing} are not models of the common space")
    return CommonSpace(
        Z={m: space.Z[m] for m in models},
        E={m: space.E[m] for m in models},
        atoms=space.atoms,
        anchor_rows=space.anchor_rows,
        settings=dict(space.settings),
    )


def with_controls(
    space: CommonSpace, shuffled: Sequence[str] = (), random_state: int = 0
) -> CommonSpace:
    """Add negative controls: the element one-hot baseline and shuffled-anchor copies.

    ``shuffled:<model>`` permutes the anchor columns of ``<model>``: the coordinates keep
    their geometry but lose their correspondence with the other models.
    """
    rng = np.random.default_rng(random_state)
    Z, E = dict(space.Z), dict(space.E)
    permutations = dict(space.settings.get("shuffled_permutations", {}))
    onehot = element_onehot(space.atoms.numbers)
    E[ONEHOT] = onehot
    Z[ONEHOT] = project(onehot, space.anchor_rows, *projection_settings(space))
    for name in shuffled:
        if name not in space.Z:
            raise MetricInputError(f"cannot shuffle unknown model {name!r}")
        perm = rng.permutation(space.Z[name].shape[1])
        Z[SHUFFLED_PREFIX + name] = space.Z[name][:, perm]
        E[SHUFFLED_PREFIX + name] = space.E[name]
        permutations[SHUFFLED_PREFIX + name] = perm.tolist()
    settings = {**space.settings, "shuffled_permutations": permutations}
    return CommonSpace(
        Z=Z, E=E, atoms=space.atoms, anchor_rows=space.anchor_rows, settings=settings
    )


def sample_rows(n: int, size: int, random_state: int = 0) -> np.ndarray:
    """A sorted random subset of ``size`` rows out of ``n`` (all rows when ``size >= n``)."""
    if size >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(random_state).choice(n, size=size, replace=False))
