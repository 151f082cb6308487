"""Verdicts with uncertainty: bootstrap over structures, decisions, too-few-data rules."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from mlipspace.platonic.checks import _auroc_row
from mlipspace.platonic.verdicts import (
    MIN_POSITIVES,
    Figure,
    auroc_permutation,
    combine,
    decide,
    structure_bootstrap,
)


def clustered(n_structures: int, per: int, random_state: int = 0):
    """Atoms whose values are shared within a structure (as symmetry-equivalent sites are)."""
    rng = np.random.default_rng(random_state)
    structure_values = rng.random(n_structures) < 0.3
    groups = np.repeat(np.arange(n_structures), per)
    return structure_values[groups].astype(float), groups


def reference_bootstrap(values, groups, n_boot, random_state):
    """Resample structures with replacement and concatenate their atoms (the slow way)."""
    rng = np.random.default_rng(random_state)
    labels = np.unique(groups)
    members = {g: values[groups == g] for g in labels}
    reps = []
    for _ in range(n_boot):
        drawn = rng.choice(labels, size=len(labels), replace=True)
        reps.append(np.concatenate([members[g] for g in drawn]).mean())
    return np.percentile(reps, [2.5, 97.5])


def test_structure_bootstrap_matches_resampling_structures():
    values, groups = clustered(80, 6)
    values = values + np.random.default_rng(1).normal(scale=0.1, size=len(values))
    figure = structure_bootstrap(values, groups, n_boot=4000, random_state=0)
    assert figure.estimate == pytest.approx(values.mean())
    low, high = reference_bootstrap(values, groups, 4000, random_state=5)
    assert figure.low == pytest.approx(low, abs=0.015)
    assert figure.high == pytest.approx(high, abs=0.015)
    assert figure.low < figure.estimate < figure.high


def test_structure_bootstrap_is_wider_than_an_atom_bootstrap_for_clustered_atoms():
    values, groups = clustered(60, 8)
    by_structure = structure_bootstrap(values, groups, random_state=0)
    by_atom = structure_bootstrap(values, np.arange(len(values)), random_state=0)
    # eight identical atoms per structure: the honest interval is about sqrt(8) wider
    width = (by_structure.high - by_structure.low) / (by_atom.high - by_atom.low)
    assert 2.0 < width < 4.0


def test_structure_bootstrap_ratio_and_edge_cases():
    num = np.array([1.0, 0.0, 1.0, 1.0])
    den = np.array([1.0, 1.0, 1.0, 0.5])
    figure = structure_bootstrap(num, np.array([0, 0, 1, 1]), den)
    assert figure.estimate == pytest.approx(3 / 3.5)
    empty = structure_bootstrap(np.array([]), np.array([]))
    assert np.isnan(empty.estimate)
    with pytest.raises(ValueError, match="one structure per value"):
        structure_bootstrap(np.ones(3), np.arange(2))


def test_decide_and_combine():
    assert decide(Figure(0.8, 0.75, 0.85), 0.7) is True
    assert decide(Figure(0.6, 0.55, 0.65), 0.7) is False
    assert decide(Figure(0.7, 0.6, 0.8), 0.7) is None  # straddles: undecided
    assert decide(Figure(0.1, 0.05, 0.15), 0.2, greater=False) is True
    assert decide(Figure(0.5, np.nan, np.nan), 0.2) is None
    assert combine([True, True]) is True
    assert combine([True, None]) is None
    assert combine([None, False]) is False
    assert combine([]) is None


def test_auroc_permutation_matches_sklearn_and_calibrates():
    rng = np.random.default_rng(0)
    scores = np.round(rng.normal(size=40), 1)  # ties
    labels = rng.random(40) < 0.4
    auc, p = auroc_permutation(scores, labels, n_perm=500)
    assert auc == pytest.approx(roc_auc_score(labels, scores))
    assert 1 / 501 <= p <= 1
    separated = np.r_[np.ones(8), np.zeros(20)]
    auc, p = auroc_permutation(separated + rng.normal(scale=0.01, size=28), separated, 2000)
    assert auc == 1.0 and p < 0.001
    # under the null the p-values are roughly uniform
    ps = [
        auroc_permutation(rng.normal(size=30), rng.random(30) < 0.5, 200, random_state=k)[1]
        for k in range(60)
    ]
    assert 0.3 < np.mean(ps) < 0.7
    assert np.isnan(auroc_permutation(np.ones(3), np.zeros(3, bool))[0])


def test_auroc_with_too_few_positives_is_undecided():
    entry = {"failure": "symmetry lost on relaxation", "pairs": 27, "positives": 3,
             "auroc": 0.395, "note": ""}  # fmt: skip
    row = _auroc_row(entry)
    assert row["holds"] is None
    assert "3 positive and 24 negative" in row["evidence"]
    assert f"fewer than {MIN_POSITIVES}" in row["note"]
    assert row["threshold_source"] == "toolkit"
    enough = {**entry, "positives": 10, "auroc": 0.9, "p_value": 0.001}
    assert _auroc_row(enough)["holds"] is True
    assert _auroc_row({**enough, "auroc": 0.3, "p_value": 0.95})["holds"] is False
    assert _auroc_row({**enough, "auroc": 0.6, "p_value": 0.2})["holds"] is None
