"""Which atoms count as "the same" when a match is scored: feature-identical or symmetry-equivalent.

An optimal-transport or retrieval match that lands on another atom of the same
spglib orbit (or on an atom whose features are identical in every model) has found an
equally correct partner: no model can tell the two apart. Scoring only the exact atom would
count such swaps as misses, and more so for larger samples, whose chance of holding a twin
is higher.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from ase import Atoms
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial.distance import cdist

from ..errors import MetricInputError
from ..structures.symmetry import spglib_dataset
from .space import CommonSpace

__all__ = ["equivalence_classes", "feature_identical", "orbit_labels", "site_orbits"]

#: features closer than this fraction of the median row norm count as identical (float32
#: features carry ~1e-7 relative round-off; symmetry-equivalent atoms differ by about that)
IDENTICAL_RTOL = 1e-5


def feature_identical(features: Sequence[np.ndarray], rtol: float = IDENTICAL_RTOL) -> np.ndarray:
    """Boolean matrix: rows ``i`` and ``j`` have identical features in every table.

    Parameters
    ----------
    features : sequence of arrays of shape (n, d_m)
        The same ``n`` atoms in every table (e.g. every model's raw embeddings).
    rtol : float
        Tolerance relative to each table's median row norm.
    """
    if not features:
        raise MetricInputError("feature_identical needs at least one feature table")
    n = len(features[0])
    same = np.ones((n, n), dtype=bool)
    for X in features:
        X = np.asarray(X, dtype=np.float64)
        if len(X) != n:
            raise MetricInputError(f"feature tables have {len(X)} and {n} rows")
        scale = float(np.median(np.linalg.norm(X, axis=1))) or 1.0
        same &= cdist(X, X) <= rtol * scale
    return same


def site_orbits(atoms: Atoms, symprec: float = 1e-3) -> np.ndarray | None:
    """spglib's ``equivalent_atoms`` of a periodic structure; None when spglib finds no
    symmetry dataset (a cell of zero volume, overlapping atoms).

    The orbits :func:`mlipspace.diagnostics.symmetry.equivalent_sites` reads too (both from
    :func:`mlipspace.structures.symmetry.spglib_dataset`).
    """
    dataset = spglib_dataset(atoms, symprec)
    return None if dataset is None else np.asarray(dataset.equivalent_atoms, dtype=np.int64)


def orbit_labels(
    space: CommonSpace, structures: Sequence[Atoms], symprec: float = 1e-3
) -> np.ndarray:
    """spglib orbit of every row of ``space``: ``"<structure hash>:<orbit>"``.

    Rows whose structure is not given, or has no cell spglib can use, get a label of their
    own (``"<hash>:site<i>"``), so they are equivalent to nothing else.
    """
    orbits: dict[str, np.ndarray] = {}
    for atoms in structures:
        key = atoms.info.get("structure_hash")
        if key is None or key in orbits or not atoms.pbc.any():
            continue
        found = site_orbits(atoms, symprec)
        if found is not None:
            orbits[key] = found
    hashes, sites = space.atoms.structure_hash, space.atoms.site
    return np.array(
        [
            f"{h}:{orbits[h][s]}" if h in orbits and s < len(orbits[h]) else f"{h}:site{s}"
            for h, s in zip(hashes, sites, strict=True)
        ]
    )


def equivalence_classes(
    space: CommonSpace,
    rows: np.ndarray,
    orbits: np.ndarray | None = None,
    rtol: float = IDENTICAL_RTOL,
    models: Sequence[str] | None = None,
) -> np.ndarray:
    """Class label (0..c-1) of every one of ``rows``: atoms of one class are interchangeable.

    Two atoms are joined when they are of one element and either have identical raw features
    in every one of ``models`` (default: every model of ``space``; for scoring a match
    between two models, those two: neither can tell the atoms apart)
    (:func:`feature_identical`) or share a spglib orbit
    (``orbits``, from :func:`orbit_labels`, one label per row of ``space``); classes are
    the connected components of these links.
    """
    rows = np.asarray(rows)
    models = list(space.E) if models is None else list(models)
    same = feature_identical([space.E[m][rows] for m in models], rtol)
    if orbits is not None:
        labels = np.asarray(orbits)[rows]
        same |= labels[:, None] == labels[None, :]
    numbers = space.atoms.numbers[rows]
    same &= numbers[:, None] == numbers[None, :]
    _, classes = connected_components(csr_matrix(same), directed=False)
    return classes
