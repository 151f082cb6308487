"""The calibration columns of one all-pairs comparison (:func:`mlipspace.compare`).

Applies :mod:`mlipspace.metrics.calibration` (permutation null, structure bootstrap, width
control) to every ``(source, target, measure)`` cell, with one set of permutations, resamples
and random sources shared by all cells of the comparison.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import MetricInputError
from . import similarity as sim
from .calibration import (
    NULL_ALPHA,
    BootstrapResult,
    PermutationResult,
    bootstrap_draws,
    iter_permutations,
    percentile_interval,
    random_features,
    summarize_draws,
    summarize_null,
)
from .registry import KNN_K, SYMMETRIC, measure_info

__all__ = ["ComparisonCalibration", "below_random_baseline"]

log = logging.getLogger(__name__)


Evaluate = Callable[[str, np.ndarray, np.ndarray], tuple[float, "np.ndarray | None"]]
EvaluateNull = Callable[[str, np.ndarray, np.ndarray, Sequence[np.ndarray]], list[float]]

# permutations handed to one call of ``evaluate_null``: at most this many, and permuted copies
# of the target of at most _NULL_BYTES in all
# below this fraction of movable atoms the structure null is mostly the real pairing: say so
_MOVABLE_WARNING = 0.5
_NULL_BATCH = 16
_NULL_BYTES = 2**28


@dataclass
class ComparisonCalibration:
    """Null, bootstrap and width control of every cell of one all-pairs comparison.

    Built once per comparison with the features of every model on the shared atoms, the split
    and the structure of every atom; :meth:`cell` then gives the calibration columns of one
    ``(source, target, measure)`` cell from a function ``evaluate(measure, A, B) -> (value,
    pointwise)`` that computes the measure as the comparison does (fit on the training rows,
    report on the test rows). The permutations and the random sources are drawn once and shared
    by every cell, so cells are compared on the same null draws.

    Parameters
    ----------
    feats : mapping of model name to array (n_atoms, width)
    train, test : array of int
        The comparison's split.
    groups : array of shape (n_atoms,)
        Structure of every atom: the unit of the permutations and of the bootstrap.
    n_permutations, n_bootstrap : int
        0 leaves the null / the interval out.
    confidence : float
        Level of the percentile interval.
    width : int, optional
        Common PCA width of the width control; None leaves the width control out.
    common_feats : mapping of model name to array, optional
        Every model projected on ``width`` principal components (required with ``width``).
    random_state : int, optional
    """

    feats: dict[str, np.ndarray]
    train: np.ndarray
    test: np.ndarray
    groups: np.ndarray
    n_permutations: int = 0
    n_bootstrap: int = 0
    confidence: float = 0.95
    width: int | None = None
    common_feats: dict[str, np.ndarray] | None = None
    random_state: int | None = 0

    def __post_init__(self) -> None:
        seeds = np.random.SeedSequence(self.random_state).spawn(3)
        self.groups = np.asarray(self.groups)
        self._perm_seed = seeds[0]
        self._movable = 1.0
        if 0 < self.n_permutations < round(1 / NULL_ALPHA) - 1:
            log.warning(
                "%d permutations cannot give a p-value below %.2g (the smallest is 1/(1 + n)): "
                "every cell will read as not beating its null",
                self.n_permutations,
                NULL_ALPHA,
            )
        if self.n_permutations:
            self._movable = iter_permutations(
                len(self.groups), self.n_permutations, self._perm_seed, self.groups
            )[0]
            if self._movable < _MOVABLE_WARNING:
                log.warning(
                    "only %.0f%% of the atoms are in structures that share their atom count "
                    "with another structure: the rest keep their pairing in every permutation, "
                    "so the p-values are conservative (column null_movable)",
                    100 * self._movable,
                )
        if self.n_bootstrap:
            percentile_interval([0.0, 1.0], self.confidence)  # validates the level up front
        self._boot_seed = seeds[1]
        self._random = {}
        if self.width is not None:
            if self.common_feats is None:
                raise MetricInputError("the width control needs the features at common width")
            children = seeds[2].spawn(len(self.feats))
            for child, (name, X) in zip(children, self.feats.items(), strict=True):
                self._random[name] = random_features(len(X), X.shape[1], child)

    def columns(self) -> list[str]:
        """The columns :meth:`cell` fills, in table order."""
        cols = ["measure_label", "preprocessing"]
        if self.n_bootstrap:
            cols += ["ci_low", "ci_high", "bootstrap_bias", "confidence", "bootstrap_unit"]
        if self.n_permutations:
            cols += [
                "null_mean",
                "null_std",
                "p_value",
                "n_permutations",
                "null_unit",
                "null_movable",
            ]
        if self.width is not None:
            cols += ["random_baseline", "value_common_width", "common_width"]
        return cols

    def cell(
        self,
        measure: str,
        evaluate: Evaluate,
        source: str,
        target: str,
        value: float,
        pointwise: np.ndarray | None = None,
        evaluate_null: EvaluateNull | None = None,
    ) -> tuple[dict, float]:
        """Calibration columns of one cell, and its bootstrap standard deviation (NaN if none)."""
        info = measure_info(measure)
        out: dict = {"measure_label": info.label, "preprocessing": info.preprocessing}
        std = float("nan")
        A, B = self.feats[source], self.feats[target]
        if self.n_bootstrap:
            boot = self._bootstrap(measure, A, B, value, pointwise)
            std = boot.std
            out.update(
                ci_low=boot.ci_low,
                ci_high=boot.ci_high,
                bootstrap_bias=boot.bias,
                confidence=self.confidence,
                bootstrap_unit="structure",
            )
        if self.n_permutations:
            res = self._null(measure, evaluate, evaluate_null, A, B, value)
            out.update(
                null_mean=res.null_mean,
                null_std=res.null_std,
                p_value=res.p_value,
                n_permutations=res.n_permutations,
                null_unit=res.unit,
                null_movable=res.movable,
            )
        out.update(self.width_columns(measure, evaluate, source, target))
        return out, std

    def width_columns(
        self,
        measure: str,
        evaluate: Evaluate,
        source: str,
        target: str,
        baseline_only: bool = False,
    ) -> dict:
        """``random_baseline`` (the source replaced by :func:`random_features` of its width) and
        ``value_common_width`` (both sides on ``width`` principal components); empty without a
        width control.

        ``baseline_only``: the baseline alone, for the mirrored row of a symmetric measure,
        whose value at common width is that of the pair (computed in the pair's order, as its
        value is: CKNNA, as in the reference code, is symmetric only to about 1e-4).
        """
        if self.width is None:
            return {}
        try:
            what = "the random source of the width control"
            out = {
                "random_baseline": float(
                    evaluate(measure, self._random[source], self.feats[target])[0]
                )
            }
            if not baseline_only:
                what = f"the width control at common width {self.width}"
                A, B = self.common_feats[source], self.common_feats[target]
                out["value_common_width"] = float(evaluate(measure, A, B)[0])
                out["common_width"] = int(self.width)
        except MetricInputError as exc:
            raise MetricInputError(f"{what}: {exc}") from exc
        return out

    def _null(self, measure, evaluate, evaluate_null, A, B, value) -> PermutationResult:
        """The measure on the target's rows permuted, the same permutations for every cell."""
        if evaluate_null is None:

            def evaluate_null(m, A_, B_, perms):
                return [evaluate(m, A_, B_[p])[0] for p in perms]

        perms = iter_permutations(
            len(self.groups), self.n_permutations, self._perm_seed, self.groups
        )[1]
        batch_size = max(1, min(_NULL_BATCH, _NULL_BYTES // max(1, B.nbytes)))
        null: list[float] = []
        while batch := list(itertools.islice(perms, batch_size)):
            null.extend(evaluate_null(measure, A, B, batch))
        return summarize_null(
            value, null, measure_info(measure).higher_is_similar, "structure", self._movable
        )

    def _bootstrap(self, measure, A, B, value, pointwise) -> BootstrapResult:
        # every cell resamples the same structures (common random numbers across cells)
        rng = np.random.default_rng(self._boot_seed)
        mode = measure_info(measure).bootstrap
        groups = self.groups[self.test]
        At, Bt = A[self.test], B[self.test]
        if mode == "mean":
            pointwise = sim.pointwise_mutual_knn(At, Bt, k=KNN_K)
        fn = SYMMETRIC.get(measure)
        draws = bootstrap_draws(
            mode, groups, self.n_bootstrap, rng, pointwise=pointwise, fn=fn, X=At, Y=Bt
        )
        return summarize_draws(value, draws, self.confidence)


def below_random_baseline(table) -> list[str]:
    """The off-diagonal cells of a comparison table that do no better than their random source.

    A cell whose score is not beyond ``random_baseline`` in the measure's direction (an error
    at or above the baseline's, a similarity at or below it) owes its score to width and sample
    count alone. Returns one line per such cell (``"cka: a → b (0.21; random source 0.23)"``),
    empty when the table has no width control.
    """
    if "random_baseline" not in table:
        return []
    out = []
    for row in table.itertuples(index=False):
        if row.source == row.target or not np.isfinite(row.random_baseline):
            continue
        higher = measure_info(row.measure).higher_is_similar
        beyond = row.value > row.random_baseline if higher else row.value < row.random_baseline
        if not beyond:
            out.append(
                f"{row.measure}: {row.source} → {row.target} ({row.value:.3g}; random source "
                f"{row.random_baseline:.3g})"
            )
    return out
