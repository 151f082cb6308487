"""Symmetry diagnostics of per-atom features: orbit spread, deliberate displacements, mirrors.

An exactly invariant model gives every site of one crystallographic orbit (sites mapped
onto each other by a space-group operation) the same feature vector. The *orbit
spread* measures how far that fails; a deliberate displacement of one site must make it
grow. The *mirror gap* compares a structure with its mirror image: models whose scalar
channels do not track parity (SevenNet, HIENet) give the two different features.

Distances between feature vectors are cosine distances, ``1 - cos(a, b)``, computed as
``|a/|a| - b/|b||^2 / 2`` in float64 (no cancellation for nearly parallel vectors).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from ase import Atoms

from ..errors import MetricInputError
from ..features import AtomFeatures
from ..structures.symmetry import spglib_dataset

__all__ = [
    "cosine_distance",
    "displacement_series",
    "equivalent_sites",
    "mirror_gap",
    "mirror_image",
    "orbit_spread",
    "symmetry_dataset",
    "symmetry_scores",
]

DEFAULT_DISPLACEMENTS = (0.0, 0.005, 0.01, 0.02, 0.05)


# -- symmetry of a structure ---------------------------------------------------------


def symmetry_dataset(atoms: Atoms, symprec: float = 1e-3) -> Any:
    """spglib's symmetry dataset of a periodic structure.

    Parameters
    ----------
    atoms : ase.Atoms
        A structure with a cell of non-zero volume. A molecule in a box gets only the
        symmetry operations compatible with its box.
    symprec : float, default=1e-3
        Distance tolerance in Å.

    Returns
    -------
    spglib.SpglibDataset
        With ``number``, ``international``, ``rotations`` and ``equivalent_atoms``.
    """
    if not isinstance(atoms, Atoms) or len(atoms) == 0:
        raise MetricInputError("symmetry needs a non-empty ase.Atoms")
    if abs(atoms.cell.volume) < 1e-8:
        raise MetricInputError(
            f"{atoms.get_chemical_formula()}: spglib needs a cell of non-zero volume"
        )
    dataset = spglib_dataset(atoms, symprec)
    if dataset is None:
        raise MetricInputError(
            f"{atoms.get_chemical_formula()}: spglib found no symmetry at symprec={symprec} "
            "(overlapping atoms or a degenerate cell?)"
        )
    return dataset


def equivalent_sites(atoms: Atoms, symprec: float = 1e-3) -> np.ndarray:
    """Orbit label of every site: sites with equal labels are symmetry-equivalent.

    Parameters
    ----------
    atoms : ase.Atoms
        A periodic structure (see :func:`symmetry_dataset`).
    symprec : float, default=1e-3
        spglib distance tolerance in Å.

    Returns
    -------
    ndarray of int, shape (n_atoms,)
        spglib's ``equivalent_atoms``: the label is the lowest index of the orbit.

    Examples
    --------
    >>> from ase.build import bulk
    >>> equivalent_sites(bulk("NaCl", "rocksalt", a=5.64, cubic=True)).tolist()
    [0, 1, 0, 1, 0, 1, 0, 1]
    """
    return np.asarray(symmetry_dataset(atoms, symprec).equivalent_atoms, dtype=np.int64)


# -- distances -------------------------------------------------------------------------


def _unit(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    norm = np.linalg.norm(X, axis=-1, keepdims=True)
    return np.divide(X, norm, out=np.zeros_like(X), where=norm > 0)


def cosine_distance(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Row-wise ``1 - cos(a_i, b_i)`` of two arrays of equal shape, in float64.

    Computed as ``|â - b̂|² / 2`` of the unit rows, exact to float64 round-off even for
    nearly parallel rows. A zero row has cosine 0 to any non-zero row.
    """
    A = np.asarray(A)
    B = np.asarray(B)
    if A.shape != B.shape or A.ndim != 2:
        raise MetricInputError(
            f"cosine_distance needs two 2-d arrays of one shape, got {A.shape} and {B.shape}"
        )
    return 0.5 * np.sum((_unit(A) - _unit(B)) ** 2, axis=1)


def orbit_spread(Z: np.ndarray, orbits: np.ndarray) -> float:
    """Largest cosine distance between the features of two symmetry-equivalent sites.

    Parameters
    ----------
    Z : array of shape (n_atoms, n_features)
        Per-atom vectors of one structure (raw embeddings or anchor projections).
    orbits : array of shape (n_atoms,)
        Orbit label of every site (:func:`equivalent_sites`).

    Returns
    -------
    float
        ``max`` over orbits with at least two sites of the largest pairwise
        ``1 - cos`` within the orbit; 0.0 when no orbit has two sites.

    Examples
    --------
    >>> orbit_spread([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], [0, 0, 2])
    0.0
    >>> round(orbit_spread([[1.0, 0.0], [0.0, 1.0]], [0, 0]), 6)
    1.0
    """
    from scipy.spatial.distance import pdist

    Z = np.asarray(Z, dtype=np.float64)
    orbits = np.asarray(orbits)
    if Z.ndim != 2 or orbits.shape != (Z.shape[0],):
        raise MetricInputError(
            f"orbit_spread needs Z of shape (n_atoms, d) and one orbit label per row; "
            f"got Z {Z.shape} and orbits {orbits.shape}"
        )
    if not np.isfinite(Z).all():
        raise MetricInputError("orbit_spread: Z holds non-finite values")
    U = _unit(Z)
    spread = 0.0
    for label in np.unique(orbits):
        members = np.flatnonzero(orbits == label)
        if len(members) > 1:
            spread = max(spread, 0.5 * float(pdist(U[members], "sqeuclidean").max()))
    return spread


# -- per-structure feature arrays --------------------------------------------------------


def _with_hash(atoms: Atoms) -> Atoms:
    from ..structures import structure_hash

    atoms = atoms.copy()
    atoms.info["structure_hash"] = structure_hash(atoms)
    return atoms


def rows_by_structure(features: AtomFeatures) -> dict[str, np.ndarray]:
    """The rows of every structure of ``features``, by structure hash, in site order."""
    rows: dict[str, np.ndarray] = {}
    codes, uniques = pd.factorize(features.structure_hash)
    for code, key in enumerate(uniques):
        idx = np.flatnonzero(codes == code)
        rows[key] = idx[np.argsort(features.site[idx], kind="stable")]
    return rows


def _per_structure(
    structures: Sequence[Atoms], features: AtomFeatures | Sequence[np.ndarray], model: str
) -> list[np.ndarray | None]:
    """One ``(n_atoms, d)`` array (rows in site order) per structure, None where missing."""
    from ..structures import structure_hash

    if isinstance(features, AtomFeatures):
        rows = rows_by_structure(features)
        out: list[np.ndarray | None] = []
        for atoms in structures:
            idx = rows.get(structure_hash(atoms))
            if idx is not None and len(idx) != len(atoms):
                raise MetricInputError(
                    f"{model}: {len(idx)} feature rows for {atoms.get_chemical_formula()} "
                    f"with {len(atoms)} atoms"
                )
            out.append(None if idx is None else features.X[idx])
        return out
    arrays = list(features)
    if len(arrays) != len(structures):
        raise MetricInputError(
            f"{model}: {len(arrays)} feature arrays for {len(structures)} structures"
        )
    for atoms, array in zip(structures, arrays, strict=True):
        if np.ndim(array) != 2 or len(array) != len(atoms):
            raise MetricInputError(
                f"{model}: features of shape {np.shape(array)} for "
                f"{atoms.get_chemical_formula()} with {len(atoms)} atoms"
            )
    return [np.asarray(a) for a in arrays]


def _featurize(
    structures: Sequence[Atoms], model: Any, layer: str, projector: Any = None
) -> list[np.ndarray]:
    """Features of every structure (in order), optionally passed through ``projector``."""
    from ..featurization import featurize

    prepared = [_with_hash(a) for a in structures]
    hashes = [a.info["structure_hash"] for a in prepared]
    if len(set(hashes)) != len(hashes):
        raise MetricInputError(
            "two of the structures to featurize are equal to the hash resolution "
            "(1e-4 Å); use displacements that differ by more"
        )
    table = featurize(prepared, model, layer=layer, store=None, progress=False)
    arrays = _per_structure(prepared, table, str(model))
    if any(a is None for a in arrays):
        raise MetricInputError(f"{model}: featurize returned no features for some structures")
    if projector is not None:
        arrays = [np.asarray(projector.transform(a)) for a in arrays]
    return arrays  # type: ignore[return-value]


def _model_name(model: Any) -> str:
    return model if isinstance(model, str) else str(getattr(model, "name", model))


# -- scores over many structures and models ---------------------------------------------


def symmetry_scores(
    structures: Sequence[Atoms],
    features_by_model: Mapping[str, AtomFeatures | Sequence[np.ndarray]],
    symprec: float = 1e-3,
) -> pd.DataFrame:
    """Orbit spread of every structure under every model.

    Parameters
    ----------
    structures : list of ase.Atoms
        Periodic structures.
    features_by_model : dict
        ``{model: features}`` where ``features`` is an :class:`AtomFeatures` (matched to
        the structures by structure hash, rows by site) or a list of per-structure arrays
        in the order of ``structures``.
    symprec : float, default=1e-3
        spglib tolerance (Å) for the orbits.

    Returns
    -------
    DataFrame
        One row per (model, structure): ``model, structure_hash, formula, n_atoms,
        n_orbits`` (distinct orbits), ``n_shared`` (orbits with two or more sites),
        ``spread`` (:func:`orbit_spread`; NaN when the model has no features for the
        structure) and ``note`` (why ``spread`` is NaN, else empty).
    """
    from ..structures import structure_hash

    structures = list(structures)
    orbits = [equivalent_sites(a, symprec) for a in structures]
    rows = []
    for model, features in features_by_model.items():
        arrays = _per_structure(structures, features, model)
        for atoms, orbit, Z in zip(structures, orbits, arrays, strict=True):
            labels, counts = np.unique(orbit, return_counts=True)
            rows.append(
                {
                    "model": model,
                    "structure_hash": structure_hash(atoms),
                    "formula": atoms.get_chemical_formula(),
                    "n_atoms": len(atoms),
                    "n_orbits": len(labels),
                    "n_shared": int((counts > 1).sum()),
                    "spread": np.nan if Z is None else orbit_spread(Z, orbit),
                    "note": "no features for this structure" if Z is None else "",
                }
            )
    return pd.DataFrame(rows)


# -- deliberate displacement --------------------------------------------------------------


def displacement_series(
    atoms: Atoms,
    model: Any,
    displacements: Sequence[float] = DEFAULT_DISPLACEMENTS,
    site: int = 0,
    direction: Sequence[float] | None = None,
    layer: str = "node",
    symprec: float = 1e-3,
    projector: Any = None,
    random_state: int | None = 0,
) -> pd.DataFrame:
    """Orbit spread as one site is moved away from its symmetric position.

    Parameters
    ----------
    atoms : ase.Atoms
        A high-symmetry periodic structure (its orbits are taken before displacing).
    model : str or ModelAdapter
        Anything :func:`mlipspace.featurize` accepts.
    displacements : sequence of float, default=(0, 0.005, 0.01, 0.02, 0.05)
        Distances (Å) the site is moved by; they must differ by more than 1e-4 Å.
    site : int, default=0
        Index of the displaced atom.
    direction : array of 3 floats, optional
        Direction of the move (normalised here). Default: a random unit vector drawn
        with ``random_state`` (a generic direction breaks every symmetry of the site).
    layer : str, default="node"
        Feature layer.
    symprec : float, default=1e-3
        spglib tolerance (Å) for the orbits of the undisplaced structure.
    projector : transformer, optional
        A fitted sklearn-style projector (e.g. :class:`mlipspace.anchors.RelativeProjector`
        fitted on this model's anchor embeddings); the spread is then measured on
        ``projector.transform(features)``.
    random_state : int or None, default=0
        Seed of the random direction.

    Returns
    -------
    DataFrame
        One row per displacement: ``model, layer, site, displacement, spread``.
    """
    n = len(atoms)
    if not 0 <= site < n:
        raise MetricInputError(f"site {site} is outside the structure ({n} atoms)")
    displacements = [float(d) for d in displacements]
    if not displacements or min(displacements) < 0 or not np.isfinite(displacements).all():
        raise MetricInputError(
            f"displacements must be finite and non-negative, got {displacements}"
        )
    if direction is None:
        vector = np.random.default_rng(random_state).normal(size=3)
    else:
        vector = np.asarray(direction, dtype=np.float64)
        if vector.shape != (3,) or not np.isfinite(vector).all() or not np.linalg.norm(vector) > 0:
            raise MetricInputError(f"direction must be a non-zero 3-vector, got {direction!r}")
    vector = vector / np.linalg.norm(vector)
    orbits = equivalent_sites(atoms, symprec)
    moved = []
    for d in displacements:
        copy = atoms.copy()
        copy.positions[site] += d * vector
        moved.append(copy)
    arrays = _featurize(moved, model, layer, projector)
    return pd.DataFrame(
        {
            "model": _model_name(model),
            "layer": layer,
            "site": site,
            "displacement": displacements,
            "spread": [orbit_spread(Z, orbits) for Z in arrays],
        }
    )


# -- mirror images ---------------------------------------------------------------------------


def mirror_image(atoms: Atoms) -> Atoms:
    """The mirror image of a structure through the plane ``x = 0``.

    Positions and cell vectors have their x component negated. The reflected cell is
    left-handed, so its first vector is then negated (the same lattice, the same
    Cartesian positions), keeping the cell right-handed for every model's neighbour list.
    Atom order is kept: site ``i`` of the image is the image of site ``i``.
    """
    image = atoms.copy()
    flip = np.diag([-1.0, 1.0, 1.0])
    cell = atoms.cell.array @ flip
    if np.linalg.det(cell) < 0:
        cell[0] *= -1.0
    image.set_cell(cell, scale_atoms=False)
    image.positions = atoms.positions @ flip
    return image


def mirror_gap(
    atoms_list: Sequence[Atoms],
    model: Any,
    layer: str = "node",
    projector: Any = None,
) -> pd.DataFrame:
    """How much a model's features change between a structure and its mirror image.

    Parameters
    ----------
    atoms_list : list of ase.Atoms
        Structures; only chiral ones (not superimposable on their image by a proper
        rotation) can show a gap, e.g. any rattled low-symmetry cell.
    model : str or ModelAdapter
        Anything :func:`mlipspace.featurize` accepts.
    layer : str, default="node"
        Feature layer.
    projector : transformer, optional
        A fitted sklearn-style projector for this model (its anchors' embeddings); the gap
        is then measured on ``projector.transform(features)``, the common space.

    Returns
    -------
    DataFrame
        One row per structure: ``model, layer, space`` (``"raw"`` or ``"projected"``),
        ``structure_hash, formula, n_atoms``, ``gap`` (mean over atoms of
        ``1 - cos(f_i, f_i^mirror)``), ``gap_max`` (the largest atom's),
        ``max_abs_diff`` (largest ``|f - f^mirror|`` entry) and ``max_abs_feature``.
    """
    from ..structures import structure_hash

    structures = list(atoms_list)
    if not structures:
        raise MetricInputError("mirror_gap needs at least one structure")
    originals = _featurize(structures, model, layer, projector)
    images = _featurize([mirror_image(a) for a in structures], model, layer, projector)
    rows = []
    for atoms, A, B in zip(structures, originals, images, strict=True):
        d = cosine_distance(A, B)
        rows.append(
            {
                "model": _model_name(model),
                "layer": layer,
                "space": "raw" if projector is None else "projected",
                "structure_hash": structure_hash(atoms),
                "formula": atoms.get_chemical_formula(),
                "n_atoms": len(atoms),
                "gap": float(d.mean()),
                "gap_max": float(d.max()),
                "max_abs_diff": float(np.abs(A - B).max()),
                "max_abs_feature": float(np.abs(A).max()),
            }
        )
    return pd.DataFrame(rows)
