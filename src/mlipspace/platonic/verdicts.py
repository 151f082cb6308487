"""Verdicts with uncertainty: bootstrap intervals over structures, thresholds and their sources.

Atoms of one structure are not independent (symmetry-equivalent sites have identical
features; copies of a crystal resemble each other), so every interval resamples whole
structures: a bootstrap replicate draws structures with replacement and weights each atom by
the number of times its structure was drawn. A verdict is ``True`` (held) when the whole
interval lies on the claimed side of the threshold, ``False`` (not held) when it lies wholly
on the other side, and ``None`` (undecided) when it straddles the threshold or the data are
too few.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import MetricInputError

__all__ = [
    "ALPHA",
    "COLUMNS",
    "MIN_ATOMS",
    "MIN_POSITIVES",
    "PAPER",
    "TOOLKIT",
    "Figure",
    "auroc_permutation",
    "claim_row",
    "combine",
    "decide",
    "fmt",
    "structure_bootstrap",
]

ALPHA = 0.05
#: fewer atoms than this in a (sub)sample: its figures are not judged
MIN_ATOMS = 50
#: where a threshold comes from: the paper's text, or this toolkit's own choice (the paper's
#: available text states none)
TOOLKIT = "toolkit"
PAPER = "paper"
COLUMNS = [
    "test",
    "claim",
    "evidence",
    "holds",
    "note",
    "subset",
    "estimate",
    "ci_low",
    "ci_high",
    "threshold",
    "threshold_source",
]
#: below this many positives (or negatives) an AUROC is not judged: too few to decide
MIN_POSITIVES = 5
N_BOOT = 1000
LEVEL = 0.95


@dataclass(frozen=True)
class Figure:
    """A claim's figure: the estimate and its bootstrap interval over structures."""

    estimate: float
    low: float
    high: float

    def text(self) -> str:
        """``0.123 [0.101, 0.145]``."""

        def f(x: float) -> str:
            return "nan" if not np.isfinite(x) else f"{x:.3g}"

        return f"{f(self.estimate)} [{f(self.low)}, {f(self.high)}]"


def structure_bootstrap(
    values: np.ndarray,
    structures: np.ndarray,
    denominator: np.ndarray | None = None,
    n_boot: int = N_BOOT,
    level: float = LEVEL,
    random_state: int = 0,
) -> Figure:
    """Mean of per-atom ``values`` (or the ratio ``Σ values / Σ denominator``) with a
    percentile bootstrap interval that resamples structures, not atoms
    (:func:`mlipspace.metrics.calibration.structure_resamples`).

    Parameters
    ----------
    values : array of shape (n,)
        One number per atom, e.g. 1.0 for a correct match and 0.0 for a miss.
    structures : array of shape (n,)
        The structure (any hashable label) of every atom.
    denominator : array of shape (n,), optional
        For a ratio of sums (default: one per atom, i.e. the mean).
    n_boot, level, random_state
        Replicates, two-sided coverage and seed of the resampling.
    """
    from ..metrics.calibration import percentile_interval, structure_resamples

    values = np.asarray(values, dtype=np.float64).ravel()
    den = np.ones_like(values) if denominator is None else np.asarray(denominator, np.float64)
    structures = np.asarray(structures).ravel()
    if not len(values) == len(structures) == len(den):
        raise MetricInputError(
            f"bootstrap needs one structure per value: {len(values)} values, "
            f"{len(structures)} structures, {len(den)} denominators"
        )
    if len(values) == 0:
        return Figure(np.nan, np.nan, np.nan)
    estimate = values.sum() / den.sum() if den.sum() != 0 else np.nan
    # the cluster bootstrap of mlipspace.metrics: whole structures drawn with replacement
    rng = np.random.default_rng(random_state)
    replicates = []
    for rows in structure_resamples(structures, n_boot, rng):
        total = den[rows].sum()
        if total != 0:
            replicates.append(values[rows].sum() / total)
    if not replicates:
        return Figure(float(estimate), np.nan, np.nan)
    low, high = percentile_interval(replicates, level)
    return Figure(float(estimate), float(low), float(high))


def decide(figure: Figure, threshold: float, greater: bool = True) -> bool | None:
    """Held (True) when the interval lies wholly beyond ``threshold`` on the claimed side
    (above it when ``greater``), not held (False) when wholly on the other side, else None."""
    low, high = figure.low, figure.high
    if not (np.isfinite(low) and np.isfinite(high) and np.isfinite(threshold)):
        return None
    if not greater:
        low, high, threshold = -high, -low, -threshold
    if low > threshold:
        return True
    if high < threshold:
        return False
    return None


def combine(verdicts: Sequence[bool | None]) -> bool | None:
    """A claim made of several conditions: held when all hold, not held when any fails."""
    if any(v is False for v in verdicts):
        return False
    if verdicts and all(v is True for v in verdicts):
        return True
    return None


def auroc_permutation(
    scores: np.ndarray, labels: np.ndarray, n_perm: int = 2000, random_state: int = 0
) -> tuple[float, float]:
    """AUROC of ``scores`` for binary ``labels`` and its one-sided permutation p-value.

    The AUROC is the Mann–Whitney statistic of the positives' ranks (ties get mid-ranks),
    equal to ``sklearn.metrics.roc_auc_score``; the p-value is the fraction of ``n_perm``
    random relabellings (plus the observed one) whose AUROC is at least the observed one.
    NaN for both when only one class is present.
    """
    from scipy.stats import rankdata

    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels).astype(bool).ravel()
    if scores.shape != labels.shape:
        raise MetricInputError(f"{scores.shape} scores but {labels.shape} labels")
    n_pos = int(labels.sum())
    n_neg = len(labels) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan"), float("nan")
    ranks = rankdata(scores)

    def auc(rank_sum: np.ndarray) -> np.ndarray:
        return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)

    observed = float(auc(ranks[labels].sum()))
    rng = np.random.default_rng(random_state)
    # a relabelling is a random choice of which n_pos items are positive
    picks = np.argsort(rng.random((n_perm, len(labels))), axis=1)[:, :n_pos]
    null = auc(ranks[picks].sum(axis=1))
    return observed, float((1 + np.sum(null >= observed - 1e-12)) / (1 + n_perm))


def claim_row(
    test: str,
    claim: str,
    evidence: str,
    holds: bool | None,
    note: str = "",
    *,
    threshold: str = "",
    source: str = TOOLKIT,
    figure: Figure | None = None,
    subset: str = "all",
) -> dict:
    """One row of the claims table (:data:`COLUMNS`)."""
    figure = figure or Figure(np.nan, np.nan, np.nan)
    return {
        "test": test,
        "claim": claim,
        "evidence": evidence,
        "holds": holds,
        "note": note,
        "subset": subset,
        "estimate": figure.estimate,
        "ci_low": figure.low,
        "ci_high": figure.high,
        "threshold": threshold,
        "threshold_source": source,
    }


def fmt(x: float) -> str:
    """Three significant digits, ``nan`` for missing."""
    return "nan" if x is None or not np.isfinite(x) else f"{x:.3g}"
