"""Which claims of Li & Walsh (2025) hold on the models of a study: checks T0–T10.

The checks are those of ``li-walsh-2025.md`` §13 (our research notes). None of the paper's
models ships its weights offline, so they are qualitative: orderings and gaps, not the
paper's numbers. The paper's available text states no threshold: every threshold here is
this toolkit's choice (``threshold_source``), stated beside it. Each check becomes one row
with the evidence, the figure the verdict is taken on (``estimate``) and its 95 % bootstrap
interval over structures (``ci_low``, ``ci_high``; :mod:`.verdicts`), the verdict
(``holds``: True, False, or None when the interval straddles the threshold or the data are
too few) and a note. The agreement, transport and stitching checks are repeated on the ideal
bulk crystals alone (``subset``).

Model facts (architecture, training data, level of theory, fine-tunes, shared
initialisations) come from the model cards (:func:`mlipspace.models.model_card`).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from ..errors import MlipspaceError
from .checks import (
    UNCENTRED,
    _t5,
    _t6_one,
    _t7,
    _t8,
    _t9,
    _t10,
    boot,
    per_subset,
    trained_pairs,
)
from .checks import subsets as _subsets
from .chemistry import element_group
from .facts import model_relation, pair_relation
from .robustness import core_agreement, robustness
from .space import CommonSpace, is_control, reprojected
from .verdicts import (
    ALPHA,
    COLUMNS,
    MIN_ATOMS,
    Figure,
    combine,
    decide,
)
from .verdicts import (
    claim_row as _row,
)
from .verdicts import (
    fmt as _fmt,
)

__all__ = [
    "COLUMNS",
    "claims_markdown",
    "core_agreement",
    "evaluate_claims",
    "model_relation",
    "pair_relation",
    "procrustes_gain",
    "raw_correspondence",
    "robustness",
]

PERIOD_ENDS = (2, 10, 18, 36, 54, 86, 118)


def _period(numbers: np.ndarray) -> np.ndarray:
    return np.searchsorted(PERIOD_ENDS, numbers) + 1


# -- per-atom figures -----------------------------------------------------------------------


def _retrieval_hits(
    space: CommonSpace, models: Sequence[str], rows: np.ndarray
) -> dict[str, np.ndarray]:
    """Per atom of ``rows``, the mean over ordered pairs of ``models`` of the matched cosine,
    the top-10 retrieval hit and the same-element hit of the nearest atom (both directions of
    a pair from one similarity matrix)."""
    from ..anchors.projection import unit_rows
    from .agreement import TIE_TOLERANCE

    numbers = space.atoms.numbers[rows]
    out = {k: np.zeros(len(rows)) for k in ("cosine", "top10", "element")}
    n = 0
    for a, b in combinations(models, 2):
        A, B = unit_rows(space.Z[a][rows]), unit_rows(space.Z[b][rows])
        S = A @ B.T
        own = np.diag(S)
        for sims in (S, S.T):
            rank = 1 + np.sum(sims > own[:, None] + TIE_TOLERANCE, axis=1)
            out["top10"] += rank <= 10
            out["element"] += numbers[np.argmax(sims, axis=1)] == numbers
            out["cosine"] += own
            n += 1
    return {k: v / max(n, 1) for k, v in out.items()}


# -- T1 ------------------------------------------------------------------------------------


def raw_correspondence(
    EA: np.ndarray, EB: np.ndarray, n_perm: int = 1000, random_state: int = 0
) -> tuple[float, float, float]:
    """Do the raw dimensions of two equal-width models correspond under the identity map?

    The statistic is the mean over dimensions ``d`` of the (centred) Pearson correlation of
    ``EA[:, d]`` with ``EB[:, d]``; the null replaces the identity by a random permutation
    of ``EB``'s dimensions. Centring removes the offsets that make uncentred cosines of
    positive activations large with no correspondence at all.

    Returns
    -------
    statistic, null_mean, p_value
        The one-sided p-value counts the permutations (plus the identity) scoring at least
        the identity.
    """
    A, B = np.asarray(EA, np.float64), np.asarray(EB, np.float64)
    if A.shape != B.shape:
        raise MlipspaceError(f"raw correspondence needs equal shapes, got {A.shape}, {B.shape}")

    def z(X: np.ndarray) -> np.ndarray:
        std = X.std(axis=0)
        return (X - X.mean(axis=0)) / np.where(std > 0, std, 1.0)

    C = z(A).T @ z(B) / len(A)  # C[d, e] = corr(A_d, B_e)
    d = C.shape[0]
    statistic = float(np.trace(C) / d)
    rng = np.random.default_rng(random_state)
    null = np.array([C[np.arange(d), rng.permutation(d)].mean() for _ in range(n_perm)])
    p = float((1 + np.sum(null >= statistic - 1e-12)) / (1 + n_perm))
    return statistic, float(null.mean()), p


def procrustes_gain(
    EA: np.ndarray, EB: np.ndarray, fit: np.ndarray, held: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Identity map against an orthogonal Procrustes map, on held-out atoms.

    Each model is centred on the mean of its ``fit`` rows (its own statistics, no labels:
    the offsets of positive activations would otherwise make any two models look alike);
    rows are then scaled to unit length and zero-padded to the wider model's width. Columns
    are not scaled one by one, which would break the invariance to rotations. The Procrustes rotation ``R`` (A → B) is fitted on the ``fit`` rows only
    (:func:`scipy.linalg.orthogonal_procrustes`) and both maps are scored on the ``held``
    rows, so that a map which only memorises its fit atoms gains nothing.

    Returns
    -------
    identity, procrustes : ndarray of shape (len(held),)
        Per held-out atom, ``cos(a_i, b_i)`` under the identity map (NaN where the widths
        differ: no identity exists) and ``cos(a_i R, b_i)``.
    """
    from scipy.linalg import orthogonal_procrustes

    from ..anchors.projection import unit_rows

    A, B = np.asarray(EA, np.float64), np.asarray(EB, np.float64)
    width = max(A.shape[1], B.shape[1])

    def prepared(X: np.ndarray) -> np.ndarray:
        centred = X - X[fit].mean(axis=0)
        return unit_rows(np.pad(centred, ((0, 0), (0, width - X.shape[1]))))

    PA, PB = prepared(A), prepared(B)
    R, _ = orthogonal_procrustes(PA[fit], PB[fit])
    procrustes = np.sum((PA[held] @ R) * PB[held], axis=1)
    identity = np.sum(PA[held] * PB[held], axis=1)
    if A.shape[1] != B.shape[1]:
        identity = np.full(len(held), np.nan)
    return identity, procrustes


def _t1_procrustes(
    space: CommonSpace, pairs: list[tuple[str, str]], rows: np.ndarray, random_state: int
) -> dict:
    """T1, second variant: a Procrustes map fitted on half the structures beats the identity
    map on the other half (per held-out atom, averaged over the unrelated equal-width
    pairs; interval over structures)."""
    from .chemistry import group_split

    claim = (
        "raw spaces are incompatible: a Procrustes map fitted on other structures aligns "
        "held-out atoms better than the identity map"
    )
    threshold = "Procrustes − identity held-out cosine > 0 (whole 95% CI)"
    fit, held = group_split(rows, space.parent_groups(), random_state)
    if not pairs or len(held) < MIN_ATOMS or len(fit) < MIN_ATOMS:
        why = "no unrelated pair of equal width" if not pairs else f"fewer than {MIN_ATOMS} atoms"
        return _row("T1", claim, f"{len(fit)} fit and {len(held)} held-out atoms", None, why,
                    threshold=threshold)  # fmt: skip
    index = {r: i for i, r in enumerate(rows)}
    fit_i, held_i = [index[r] for r in fit], [index[r] for r in held]
    gains = [procrustes_gain(space.E[a][rows], space.E[b][rows], fit_i, held_i) for a, b in pairs]
    identity = np.mean([g[0] for g in gains], axis=0)
    procrustes = np.mean([g[1] for g in gains], axis=0)
    gain = boot(procrustes - identity, space, held, random_state=random_state)
    return _row(
        "T1",
        claim,
        f"{len(pairs)} unrelated equal-width pairs, {len(held)} held-out atoms (split by parent "
        f"structure): cos under the identity map {_fmt(identity.mean())}, under the Procrustes "
        f"map {_fmt(procrustes.mean())}; gain {gain.text()}",
        decide(gain, 0.0),
        "each model centred on its own mean over the fit atoms",
        threshold=threshold,
        figure=gain,
    )


def _t1(space: CommonSpace, trained: list[str], random_state: int = 0) -> list[dict]:
    claim = "raw spaces are incompatible: under the identity map the dimensions do not correspond"
    rows = space.evaluation_rows(2000, random_state)
    equal = [
        (a, b) for a, b in combinations(trained, 2) if space.E[a].shape[1] == space.E[b].shape[1]
    ]
    unequal = sum(space.E[a].shape[1] != space.E[b].shape[1] for a, b in combinations(trained, 2))
    results, related, unrelated = {}, {}, []
    for a, b in equal:
        stat = raw_correspondence(space.E[a][rows], space.E[b][rows], random_state=random_state)
        kind = model_relation(a, b)
        (related if kind else results)[f"{a}/{b}"] = (*stat, kind)
        if not kind:
            unrelated.append((a, b))
    procrustes = _t1_procrustes(space, unrelated, rows, random_state)
    note = "; ".join(
        f"{k} ({v[3]}, from the model cards): corr {_fmt(v[0])}, p {_fmt(v[2])}"
        for k, v in related.items()
    )
    threshold = f"p ≥ {ALPHA}/n_pairs (Bonferroni) for every unrelated pair"
    if not results:
        return [
            _row(
                "T1",
                claim,
                f"{unequal} pairs of unequal width cannot be compared at all",
                None,
                note or "no unrelated pair of equal width",
                threshold=threshold,
            ),
            procrustes,
        ]
    cut = ALPHA / len(results)
    significant = [k for k, v in results.items() if v[2] < cut]
    mean_stat = float(np.mean([v[0] for v in results.values()]))
    return [
        _row(
            "T1",
            claim,
            f"{len(results)} unrelated equal-width pairs: identity-map centred per-dimension "
            f"correlation mean {_fmt(mean_stat)} vs dimension-permutation null mean "
            f"{_fmt(np.mean([v[1] for v in results.values()]))}; {len(significant)} pair(s) "
            f"correspond above the null{': ' + ', '.join(significant) if significant else ''}; "
            f"{unequal} pairs of unequal width",
            not significant,
            note,
            threshold=threshold,
            figure=Figure(mean_stat, np.nan, np.nan),
        ),
        procrustes,
    ]


def _t2(
    agreement: pd.DataFrame,
    trained: list[str],
    space: CommonSpace,
    uncentred: pd.DataFrame | None = None,
    random_state: int = 0,
) -> list[dict]:
    claim = (
        "trained models converge after anchoring: top-10 retrieval ≫ chance, "
        "same-element retrieval ≈ 1"
    )
    threshold = "top-10 > 10× chance (10/n) and same-element > 0.9 (whole 95% CI)"
    if len(trained) < 2:
        return [_row("T2", claim, "fewer than two trained models", None, threshold=threshold)]
    rows = agreement.attrs.get("rows")
    rows = space.evaluation_rows(2000, random_state) if rows is None else np.asarray(rows)
    out = []
    # the same atoms under the uncentred, unscaled projection too, judged the same way
    variants = [(subset, space, r) for subset, r in _subsets(space, rows)]
    variants.append((UNCENTRED, reprojected(space, "none", False), rows))
    for subset, projected, sub_rows in variants:
        if len(sub_rows) < MIN_ATOMS:
            out.append(
                _row("T2", claim, f"{len(sub_rows)} atoms", None, f"fewer than {MIN_ATOMS} atoms",
                     threshold=threshold, subset=subset)
            )  # fmt: skip
            continue
        hits = _retrieval_hits(projected, trained, sub_rows)
        chance = 10.0 / len(sub_rows)
        top10 = boot(hits["top10"], space, sub_rows, random_state=random_state)
        element = boot(hits["element"], space, sub_rows, random_state=random_state)
        cosine = boot(hits["cosine"], space, sub_rows, random_state=random_state)
        evidence = (
            f"{len(sub_rows)} atoms; top-10 {top10.text()} vs chance {_fmt(chance)}; same "
            f"element {element.text()}; cos {cosine.text()}"
        )
        if subset == "all" and uncentred is not None and len(uncentred):
            u = trained_pairs(uncentred, trained)
            evidence += (
                f"; uncentred projection: top-10 {_fmt(u.top10.mean())}, same element "
                f"{_fmt(u.top1_element.mean())}, cos {_fmt(u.cosine_mean.mean())}"
            )
        out.append(
            _row(
                "T2",
                claim,
                evidence,
                combine([decide(top10, 10 * chance), decide(element, 0.9)]),
                f"{projected.settings.get('center', '')}-centred"
                f"{', standardised' if projected.settings.get('standardize') else ''} projection; "
                "the estimate is the top-10 rate",
                threshold=threshold,
                figure=top10,
                subset=subset,
            )
        )
    pairs = trained_pairs(agreement, trained).copy()
    pairs["relation"] = [
        pair_relation(a, b) for a, b in zip(pairs.source, pairs.target, strict=True)
    ]
    by = pairs[pairs.relation != "unknown"].groupby("relation")["cosine_mean"].mean()
    order = ["same family and data", "same data", "different data or fidelity"]
    present = [r for r in order if r in by]
    values = [by[r] for r in present]
    out.append(
        _row(
            "T2",
            "ordering: same architecture and data ≥ same data ≥ different data or fidelity",
            ", ".join(f"{r}: {_fmt(by[r])}" for r in present) or "no relation known",
            bool(np.all(np.diff(values) <= 0)) if len(values) >= 2 else None,
            "relations from the model cards"
            + ("" if len(values) >= 2 else "; only one kind of pair known"),
            threshold="mean cosine non-increasing along the order",
        )
    )
    return out


def _t3(agreement: pd.DataFrame, trained: list[str], stitched: pd.DataFrame) -> dict:
    claim = (
        "physical supervision is needed: random MACE agrees less with trained models than "
        "any trained pair, and organises the periodic table worse"
    )
    threshold = "max trained–random cosine < min trained-pair cosine"
    randoms = sorted({m for m in agreement.target if m.startswith("mace-random")})
    if not randoms:
        return _row("T3", claim, "no mace-random control", None, threshold=threshold)
    pairs = trained_pairs(agreement, trained)
    control = agreement[agreement.source.isin(trained) & agreement.target.isin(randoms)]
    probe = stitched[stitched.label == "element_group"]
    in_trained = probe[probe.source.isin(trained)]["in_model"].mean()
    in_random = probe[probe.source.isin(randoms)]["in_model"].mean()
    holds = bool(control.cosine_mean.max() < pairs.cosine_mean.min()) if len(pairs) else None
    skipped = stitched.attrs.get("skipped", {}).get("element_group")
    return _row(
        "T3",
        claim,
        f"cos trained–random max {_fmt(control.cosine_mean.max())} vs trained pairs min "
        f"{_fmt(pairs.cosine_mean.min())}; same-element retrieval {_fmt(control.top1_element.mean())} vs "
        f"{_fmt(pairs.top1_element.mean())}; group probe in-model {_fmt(in_random)} vs {_fmt(in_trained)}",
        holds,
        f"{len(randoms)} random seed(s); the paper asks for at least 3"
        + (f"; group probe skipped: {skipped}" if skipped else ""),
        threshold=threshold,
    )


def _t4(space: CommonSpace, trained: list[str]) -> dict:
    claim = (
        "element centroids in the common space keep the periodic table "
        "(Spearman with |Δgroup| + |Δperiod| > 0 for every model)"
    )
    threshold = "Spearman ρ > 0 for every trained model"
    numbers = space.atoms.numbers
    elements = np.unique(numbers)
    if len(elements) < 4 or not trained:
        return _row("T4", claim, "fewer than 4 elements", None, threshold=threshold)
    group, period = element_group(elements), _period(elements)
    table_distance = np.abs(group[:, None] - group[None]) + np.abs(period[:, None] - period[None])
    iu = np.triu_indices(len(elements), 1)
    rhos = {}
    for model in trained:
        Z = space.Z[model]
        centroids = np.array([Z[numbers == z].mean(axis=0) for z in elements])
        dist = np.linalg.norm(centroids[:, None] - centroids[None], axis=-1)
        rhos[model] = float(spearmanr(dist[iu], table_distance[iu]).statistic)
    low = min(rhos, key=rhos.get)
    return _row(
        "T4",
        claim,
        f"Spearman mean {_fmt(np.mean(list(rhos.values())))}, lowest {low} {_fmt(rhos[low])} "
        f"({len(elements)} elements)",
        bool(min(rhos.values()) > 0),
        threshold=threshold,
        figure=Figure(rhos[low], np.nan, np.nan),
    )


def evaluate_claims(
    space: CommonSpace,
    agreement: pd.DataFrame,
    ot_pairs: pd.DataFrame,
    w2: pd.DataFrame,
    stitched: pd.DataFrame,
    bias: pd.DataFrame,
    atypical: pd.DataFrame | None = None,
    arithmetic: dict | None = None,
    fine_tunes: Sequence[dict] = (),
    diagnostics: dict | None = None,
    robustness_table: pd.DataFrame | None = None,
    *,
    agreement_uncentred: pd.DataFrame | None = None,
    ot_bulk: pd.DataFrame | None = None,
    stitched_bulk: pd.DataFrame | None = None,
    ot_uncentred: pd.DataFrame | None = None,
    stitched_uncentred: pd.DataFrame | None = None,
    random_state: int = 0,
) -> pd.DataFrame:
    """The table of checks T0–T10 from the outputs of :func:`run_platonic`.

    ``agreement_uncentred``: :func:`pair_agreement` on the uncentred projection, quoted
    beside the default's figures; ``ot_bulk`` and ``stitched_bulk``: transport and
    stitching on the ideal bulk crystals alone (rows with ``subset = "bulk crystals"``);
    ``ot_uncentred`` and ``stitched_uncentred``: transport and stitching on the same atoms
    under the uncentred, unscaled projection (rows with ``subset`` :data:`UNCENTRED`, as
    for T2, whose uncentred row is computed here).

    Returns
    -------
    DataFrame
        Columns :data:`COLUMNS`: ``test, claim, evidence, holds, note`` (``holds`` is None
        where the interval straddles the threshold or the data cannot decide; the note says
        why), ``subset``, ``estimate, ci_low, ci_high`` (95 % bootstrap over structures, NaN
        where none applies), ``threshold`` and ``threshold_source``.
    """
    trained = [m for m in space.models if not is_control(m)]
    rows = [
        *_t1(space, trained, random_state),
        *_t2(agreement, trained, space, agreement_uncentred, random_state),
        _t3(agreement, trained, stitched),
        _t4(space, trained),
        *_t5(
            {"all": ot_pairs, "bulk crystals": ot_bulk, UNCENTRED: ot_uncentred},
            w2,
            trained,
            space,
            random_state,
        ),
        *per_subset(
            _t6_one,
            {"all": stitched, "bulk crystals": stitched_bulk, UNCENTRED: stitched_uncentred},
            trained,
            space,
            random_state,
        ),
        _t7(arithmetic),
        *_t8(space, atypical, bias, list(fine_tunes), trained),
        *_t9(diagnostics),
        *_t10(robustness_table),
    ]
    table = pd.DataFrame(rows, columns=COLUMNS)
    order = {
        t: i
        for i, t in enumerate(
            ["T0", "T1", "T2", "T3", "T4", "T5", "T6", "T7", "T8", "T9a", "T9b", "T9c", "T9", "T10"]
        )
    }
    return table.sort_values("test", key=lambda s: s.map(order), kind="stable").reset_index(
        drop=True
    )


def claims_markdown(table: pd.DataFrame) -> str:
    """The claims table as Markdown (for ``claims.md`` and the summary)."""
    mark = {True: "holds", False: "does not hold", None: "undecided"}
    lines = [
        "| test | subset | claim | evidence | verdict | threshold (source) | note |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in table.itertuples():
        holds = (
            None
            if r.holds is None or (isinstance(r.holds, float) and np.isnan(r.holds))
            else bool(r.holds)
        )
        threshold = f"{r.threshold} ({r.threshold_source})" if r.threshold else ""
        cells = [r.test, r.subset, r.claim, r.evidence, mark[holds], threshold, r.note]
        lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"
