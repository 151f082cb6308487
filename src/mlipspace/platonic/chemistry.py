"""Embedding arithmetic, zero-shot stitching, bias maps and atypicality (Li & Walsh §6–§7).

All functions work on a :class:`~mlipspace.platonic.space.CommonSpace`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from itertools import combinations

import numpy as np
import pandas as pd
from ase import Atoms
from ase.data import chemical_symbols
from ase.neighborlist import natural_cutoffs, neighbor_list
from sklearn.linear_model import RidgeClassifier
from sklearn.model_selection import GroupKFold

from ..anchors.projection import standardize_columns, unit_rows
from ..errors import MetricInputError
from .agreement import rowwise_cosine
from .space import CommonSpace, is_control

# ----------------------------------------------------------------------------- labels


def element_group(numbers: np.ndarray) -> np.ndarray:
    """Periodic-table group (1–18; lanthanides and actinides as 3) of every atomic number."""
    from pymatgen.core.periodic_table import Element

    lookup = {}
    for z in np.unique(numbers):
        element = Element.from_Z(int(z))
        lookup[int(z)] = 3 if element.is_lanthanoid or element.is_actinoid else int(element.group)
    return np.array([lookup[int(z)] for z in numbers])


def coordination_numbers(structures: Sequence[Atoms], scale: float = 1.2) -> dict[str, np.ndarray]:
    """Neighbours within ``scale`` × the sum of covalent radii, per structure hash."""
    out = {}
    for atoms in structures:
        i = neighbor_list("i", atoms, [scale * c for c in natural_cutoffs(atoms)])
        out[atoms.info["structure_hash"]] = np.bincount(i, minlength=len(atoms))
    return out


def atom_coordination(space: CommonSpace, structures: Sequence[Atoms]) -> np.ndarray:
    """Coordination number of every row of ``space`` (-1 where the structure is not given)."""
    cn = coordination_numbers(structures)
    out = np.full(len(space.atoms), -1)
    for row, (h, site) in enumerate(zip(space.atoms.structure_hash, space.atoms.site, strict=True)):
        if h in cn:
            out[row] = cn[h][site]
    return out


# ----------------------------------------------------------------------------- stitching


#: ridge strengths tried by the cross-validation on the source model
RIDGE_ALPHAS = tuple(10.0 ** np.arange(-3, 4))


def ridge_classifier_path(
    X_fit: np.ndarray, y_fit: np.ndarray, X_eval: np.ndarray, alphas: Sequence[float]
) -> list[np.ndarray]:
    """The classes :class:`sklearn.linear_model.RidgeClassifier` predicts at ``X_eval`` after
    fitting ``(X_fit, y_fit)``, for every ridge strength of ``alphas``, from one SVD.

    The same model as scikit-learn's (targets ±1 per class, one column for two classes,
    intercept by centring): ``w(α) = V diag(s / (s² + α)) Uᵀ Y`` for the centred
    ``X_fit = U S Vᵀ``, so the cross-validation of the stitching heads pays one SVD per fold
    instead of one solve per strength.

    Parameters
    ----------
    X_fit : ndarray of shape (n_fit, n_features)
    y_fit : ndarray of shape (n_fit,)
        Class labels (at least two classes).
    X_eval : ndarray of shape (n_eval, n_features)
    alphas : sequence of float
        Ridge strengths (positive).

    Returns
    -------
    list of ndarray of shape (n_eval,)
        The predicted classes, one array per strength, in the order of ``alphas``.
    """
    classes = np.unique(y_fit)
    if len(classes) < 2:
        raise MetricInputError(f"ridge_classifier_path needs two classes or more, got {classes}")
    Y = np.where(y_fit[:, None] == classes[None, :], 1.0, -1.0)
    if len(classes) == 2:
        Y = Y[:, 1:]  # scikit-learn's binary encoding: one column, positive = classes[1]
    x_mean, y_mean = X_fit.mean(axis=0), Y.mean(axis=0)
    U, s, Vt = np.linalg.svd(X_fit - x_mean, full_matrices=False)
    UtY = U.T @ (Y - y_mean)
    projected = (X_eval - x_mean) @ Vt.T
    predictions = []
    for alpha in alphas:
        scores = projected @ ((s / (s**2 + alpha))[:, None] * UtY) + y_mean
        if len(classes) == 2:
            predictions.append(classes[(scores[:, 0] > 0).astype(int)])
        else:
            predictions.append(classes[np.argmax(scores, axis=1)])
    return predictions


def _choose_alpha(X: np.ndarray, y: np.ndarray, groups: np.ndarray, n_splits: int = 3) -> float:
    """The ridge strength of :data:`RIDGE_ALPHAS` with the best accuracy under group k-fold
    (folds by parent structure) on the source model's training atoms."""
    n_splits = min(n_splits, len(np.unique(groups)))
    if n_splits < 2:
        return 1.0
    scores = np.zeros(len(RIDGE_ALPHAS))
    for fit, held in GroupKFold(n_splits=n_splits).split(X, y, groups):
        if len(np.unique(y[fit])) < 2:
            continue
        path = ridge_classifier_path(X[fit], y[fit], X[held], RIDGE_ALPHAS)
        scores += [np.mean(predicted == y[held]) for predicted in path]
    return float(RIDGE_ALPHAS[int(np.argmax(scores))])


def _fit_head(X: np.ndarray, y: np.ndarray, groups: np.ndarray):
    """A linear head: a ridge classifier (one least-squares solve; an iterative logistic head
    took minutes per label on the demo set), its strength chosen by group cross-validation.

    ``X`` is already standardised with its own model's statistics, so the head applies
    unchanged to another model's (own-standardised) coordinates.
    """
    alpha = _choose_alpha(X, y, groups)
    head = RidgeClassifier(alpha=alpha).fit(X, y)
    return head.predict, alpha


def _pad(A: np.ndarray, width: int) -> np.ndarray:
    return np.pad(A, ((0, 0), (0, width - A.shape[1])))


def group_split(
    rows: np.ndarray, groups: np.ndarray, random_state: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Split ``rows`` in halves (by atom count, roughly) with no group on both sides.

    ``groups`` holds one label per row of the space (e.g. the parent structure), so that
    copies of a crystal never sit on both sides. Groups are drawn in random order into the
    training side while it holds at most half the atoms; with two groups or more, neither
    side is left empty.
    """
    labels = groups[rows]
    unique = np.unique(labels)
    order = np.random.default_rng(random_state).permutation(len(unique))
    counts = pd.Series(labels).value_counts().reindex(unique[order]).to_numpy()
    train_groups = unique[order][np.cumsum(counts) <= len(rows) / 2]
    if len(train_groups) == 0 and len(unique) > 1:
        # the first group drawn holds over half the atoms (few parents): the smallest group
        # trains, so that both sides hold atoms
        train_groups = unique[order][[int(np.argmin(counts))]]
    in_train = np.isin(labels, train_groups)
    return rows[in_train], rows[~in_train]


def stitching(
    space: CommonSpace,
    labels: dict[str, np.ndarray],
    n_atoms: int = 3000,
    random_state: int = 0,
    rows: np.ndarray | None = None,
) -> pd.DataFrame:
    """Zero-shot stitching: a head trained on model A's projection, applied unchanged to model B's.

    Every model's coordinates (projected, and raw for the baseline) are first standardised
    with that model's own statistics over all its atoms (no labels: it stays zero-shot).
    ``n_atoms`` non-anchor atoms (of ``rows``, default all) are split in halves by parent
    structure (:func:`group_split`), so copies of one crystal are never on both sides; the
    ridge strength is chosen by group cross-validation on the training atoms of the source
    model.

    For every label (e.g. element group, coordination number), every ordered pair (A, B):
    ``zero_shot`` = accuracy on B's test atoms of the head trained on A's training atoms;
    ``in_model`` = the same head trained on B (upper bound); ``raw`` = the head trained on
    A's raw features (zero-padded to a common width) applied to B's raw features (the naive
    attempt); ``chance`` = frequency of the most common class; ``alpha`` = A's ridge strength.

    A label that cannot be learnt on this sample (a single class among the training atoms,
    or no test atom with the label: too few atoms or parent structures) is skipped, not an
    error: ``attrs["skipped"]`` maps it to the reason, and the table holds the other labels
    (none, when every label is skipped).
    """
    sample = space.evaluation_rows(n_atoms, random_state, rows)
    groups = space.parent_groups()
    train, test = group_split(sample, groups, random_state)
    width = max(E.shape[1] for E in space.E.values())
    Zs = {m: standardize_columns(space.Z[m]) for m in space.models}
    Es = {m: _pad(standardize_columns(space.E[m]), width) for m in space.models}
    out = []
    hits: dict[tuple[str, str, str], np.ndarray] = {}
    skipped: dict[str, str] = {}

    def per_test_atom(correct: np.ndarray, valid: np.ndarray) -> np.ndarray:
        # one value per test atom (NaN where the label is undefined), for intervals
        full = np.full(len(test), np.nan)
        full[valid] = correct
        return full

    for label_name, y in labels.items():
        valid = y[test] >= 0
        valid_train = train[y[train] >= 0]
        valid_test = test[y[test] >= 0]
        reason = _unlearnable(y[valid_train], len(valid_test), len(np.unique(groups[sample])))
        if reason:
            skipped[label_name] = reason
            continue
        g = groups[valid_train]
        heads_z = {m: _fit_head(Zs[m][valid_train], y[valid_train], g) for m in space.models}
        heads_raw = {m: _fit_head(Es[m][valid_train], y[valid_train], g) for m in space.models}
        chance = float(np.max(np.bincount(y[valid_test])) / len(valid_test))
        truth = y[valid_test]
        in_hits = {m: heads_z[m][0](Zs[m][valid_test]) == truth for m in space.models}
        in_model = {m: float(np.mean(in_hits[m])) for m in space.models}
        for a in space.models:
            for b in space.models:
                if a == b:
                    continue
                zero_shot = heads_z[a][0](Zs[b][valid_test]) == truth
                raw = heads_raw[a][0](Es[b][valid_test]) == truth
                hits[(a, b, f"zero_shot:{label_name}")] = per_test_atom(zero_shot, valid)
                hits[(a, b, f"raw:{label_name}")] = per_test_atom(raw, valid)
                hits[(a, b, f"in_model:{label_name}")] = per_test_atom(in_hits[b], valid)
                out.append(
                    {
                        "label": label_name,
                        "source": a,
                        "target": b,
                        "zero_shot": float(np.mean(zero_shot)),
                        "in_model": in_model[b],
                        "raw": float(np.mean(raw)),
                        "chance": chance,
                        "alpha": heads_z[a][1],
                        "n_train": len(valid_train),
                        "n_test": len(valid_test),
                    }
                )
    table = pd.DataFrame(out, columns=STITCHING_COLUMNS)
    table.attrs["rows"] = test.tolist()  # lists: pandas compares attrs of frames
    table.attrs["hits"] = {k: v.tolist() for k, v in hits.items()}
    table.attrs["skipped"] = skipped
    return table


#: the columns of :func:`stitching`'s table
STITCHING_COLUMNS = [
    "label",
    "source",
    "target",
    "zero_shot",
    "in_model",
    "raw",
    "chance",
    "alpha",
    "n_train",
    "n_test",
]


def _unlearnable(y_train: np.ndarray, n_test: int, n_parents: int) -> str:
    """Why a label cannot be learnt and tested on a split ("" when it can)."""
    where = f"{len(y_train)} training atoms from {n_parents} parent structures in the sample"
    if len(np.unique(y_train)) < 2:
        return f"a single class on the training atoms ({where})"
    if n_test == 0:
        return f"no test atom carries the label ({where})"
    return ""


# ----------------------------------------------------------------------------- arithmetic


def substitution_sites(space: CommonSpace, structures: Sequence[Atoms]) -> pd.DataFrame:
    """One row per structure of a prototype family: its substituted element and site rows.

    Uses ``info["prototype"]`` and ``info["substituted"]`` (the element on the varied site)
    and ``info["host"]`` (the rest of the composition) that the demo set records for binary
    prototypes and perovskites. Structures without them are ignored.
    """
    row_of = defaultdict(list)
    for row, h in enumerate(space.atoms.structure_hash):
        row_of[h].append(row)
    records = []
    for atoms in structures:
        info = atoms.info
        h = info.get("structure_hash")
        if "prototype" not in info or h not in row_of:
            continue
        element = info["substituted"]
        rows = [r for r in row_of[h] if chemical_symbols[space.atoms.numbers[r]] == element]
        if rows:
            records.append(
                {
                    "structure_hash": h,
                    "family": f"{info['prototype']}|{info['host']}",
                    "element": element,
                    "rows": rows,
                }
            )
    return pd.DataFrame(records, columns=["structure_hash", "family", "element", "rows"])


def _site_vectors(Z: np.ndarray, sites: pd.DataFrame) -> np.ndarray:
    return np.stack([Z[rows].mean(axis=0) for rows in sites["rows"]])


def substitution_pairs(sites: pd.DataFrame) -> dict[tuple[str, str], list[tuple[int, int]]]:
    """Isostructural pairs (same family, X on the varied site in one, Y in the other)."""
    pairs: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
    for _, group in sites.groupby("family"):
        idx = list(group.index)
        for i, j in combinations(idx, 2):
            x, y = sites.at[i, "element"], sites.at[j, "element"]
            if x != y:
                pairs[(x, y)].append((i, j))
                pairs[(y, x)].append((j, i))
    return pairs


def spread(Z: np.ndarray) -> float:
    """Root-mean-square distance of the rows of ``Z`` from their mean: one model's scale."""
    Z = np.asarray(Z, dtype=np.float64)
    return float(np.sqrt(np.mean(np.sum((Z - Z.mean(axis=0)) ** 2, axis=1))))


def embedding_arithmetic(
    space: CommonSpace, structures: Sequence[Atoms], models: Sequence[str] | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Substitution vectors Δ(X→Y) and their retrieval accuracy, leave-one-pair-out.

    For every element pair with at least two isostructural pairs, Δ(X→Y) is the mean of
    ``z(site_Y) − z(site_X)`` over the other pairs; ``z(site_X') + Δ`` must retrieve
    ``site_Y'`` (nearest by cosine among all varied sites of that prototype family's
    siblings). Also applied across models: Δ from model A, rescaled by
    ``spread(Z_B) / spread(Z_A)`` (:func:`spread`), on model B's z.

    ``models``: the models compared (default: every model that is not a control, so that no
    average mixes in the random-weight or shuffled controls).

    Returns
    -------
    accuracy : DataFrame
        ``source`` (where Δ was built), ``target`` (where it is applied), ``top1``,
        ``baseline_top1`` (no Δ), ``n_tests``.
    parallel : DataFrame
        Mean cosine between Δ(X→Y) of every model pair, over element pairs.
    """
    sites = substitution_sites(space, structures)
    if sites.empty:
        raise MetricInputError(
            "no structure records a prototype: embedding arithmetic needs the demo set"
        )
    pairs = {k: v for k, v in substitution_pairs(sites).items() if len(v) >= 2}
    if not pairs:
        raise MetricInputError("no element substitution has two isostructural pairs")
    models = [m for m in space.models if not is_control(m)] if models is None else list(models)
    if not models:
        raise MetricInputError("embedding arithmetic needs at least one trained model")
    vectors = {m: _site_vectors(space.Z[m], sites) for m in models}
    scale = {m: spread(space.Z[m]) for m in models}
    candidates = sites.groupby("family").groups
    out = []
    for a in models:
        for b in models:
            hits, base_hits, n = 0, 0, 0
            for plist in pairs.values():
                for k, (i, j) in enumerate(plist):
                    others = plist[:k] + plist[k + 1 :]
                    delta = np.mean([vectors[a][y] - vectors[a][x] for x, y in others], axis=0)
                    delta = delta * (scale[b] / scale[a] if scale[a] > 0 else 1.0)
                    cand = np.array(candidates[sites.at[i, "family"]])
                    cand = cand[cand != i]
                    V = unit_rows(vectors[b][cand])
                    for query, counter in ((vectors[b][i] + delta, "hit"), (vectors[b][i], "base")):
                        best = cand[np.argmax(V @ (query / np.linalg.norm(query)))]
                        if best == j:
                            if counter == "hit":
                                hits += 1
                            else:
                                base_hits += 1
                    n += 1
            out.append(
                {
                    "source": a,
                    "target": b,
                    "top1": hits / n,
                    "baseline_top1": base_hits / n,
                    "n_tests": n,
                }
            )
    deltas = {
        m: {
            key: np.mean([vectors[m][y] - vectors[m][x] for x, y in plist], axis=0)
            for key, plist in pairs.items()
        }
        for m in models
    }
    parallel = []
    for a, b in combinations(models, 2):
        cosines = [
            float(rowwise_cosine(deltas[a][key][None], deltas[b][key][None])[0]) for key in pairs
        ]
        parallel.append(
            {
                "source": a,
                "target": b,
                "delta_cosine": float(np.mean(cosines)),
                "n_pairs": len(pairs),
            }
        )
    return pd.DataFrame(out), pd.DataFrame(parallel)


# ----------------------------------------------------------------------------- bias and atypicality


def consensus(space: CommonSpace, models: Sequence[str] | None = None) -> np.ndarray:
    """Mean projected vector over the trained models (controls excluded) of every atom."""
    models = list(models) if models is not None else [m for m in space.models if not is_control(m)]
    if not models:
        raise MetricInputError("no trained model to build a consensus from")
    return np.mean([space.Z[m] for m in models], axis=0)


def bias_map(space: CommonSpace, models: Sequence[str] | None = None) -> pd.DataFrame:
    """Mean deviation ``1 − cos(z_i^(m), consensus_i)`` per element (rows) and model (columns)."""
    center = consensus(space, models)
    frame = pd.DataFrame(
        {m: 1.0 - rowwise_cosine(space.Z[m], center) for m in space.models},
    )
    frame["element"] = [chemical_symbols[z] for z in space.atoms.numbers]
    table = frame.groupby("element").mean()
    order = sorted(table.index, key=chemical_symbols.index)
    return table.loc[order]


def dispersion(space: CommonSpace, models: Sequence[str] | None = None) -> np.ndarray:
    """Per-atom cross-model dispersion: mean over model pairs of ``1 − cos(z^A, z^B)``."""
    models = list(models) if models is not None else [m for m in space.models if not is_control(m)]
    if len(models) < 2:
        raise MetricInputError("dispersion needs at least two trained models")
    pairs = list(combinations(models, 2))
    return np.mean([1.0 - rowwise_cosine(space.Z[a], space.Z[b]) for a, b in pairs], axis=0)


def atypical_structures(space: CommonSpace, models: Sequence[str] | None = None) -> pd.DataFrame:
    """Structures ranked by the mean (and max) cross-model dispersion of their atoms."""
    d = dispersion(space, models)
    frame = pd.DataFrame({"structure": space.atoms.structure_index, "dispersion": d})
    stats = frame.groupby("structure")["dispersion"].agg(["mean", "max"])
    table = space.atoms.structures.iloc[stats.index].reset_index(drop=True)
    table["dispersion_mean"] = stats["mean"].to_numpy()
    table["dispersion_max"] = stats["max"].to_numpy()
    table["elements"] = [
        "".join(
            sorted(
                {chemical_symbols[z] for z in space.atoms.numbers[space.atoms.structure_index == s]}
            )
        )
        for s in stats.index
    ]
    return table.sort_values("dispersion_mean", ascending=False).reset_index(drop=True)


def fine_tune_report(space: CommonSpace, tuned: str, base: str) -> dict[str, float]:
    """How close a fine-tuned model stays to its base in the common space, against other pairs."""
    for name in (tuned, base):
        if name not in space.Z:
            raise MetricInputError(f"model {name!r} is not in the common space")
    trained = [m for m in space.models if not is_control(m)]
    others = [
        float(rowwise_cosine(space.Z[a], space.Z[b]).mean())
        for a, b in combinations(trained, 2)
        if {a, b} != {tuned, base}
    ]
    return {
        "tuned": tuned,
        "base": base,
        "cosine_tuned_base": float(rowwise_cosine(space.Z[tuned], space.Z[base]).mean()),
        "cosine_other_pairs_mean": float(np.mean(others)) if others else float("nan"),
        "cosine_other_pairs_max": float(np.max(others)) if others else float("nan"),
    }
