"""Which claims of Li & Walsh (2025) hold on the models of a study: checks T1–T10.

The checks are those of ``li-walsh-2025.md`` §13 (our research notes). None of the paper's
models ships its weights offline, so they are qualitative: orderings and gaps, not the
paper's numbers. Each check becomes one row of a table with the evidence (a measure and its
value), a verdict (``holds``: True, False, or None when the data cannot decide) and a note.

:func:`robustness` recomputes the core agreement under other anchor settings (T10);
:func:`evaluate_claims` turns the outputs of :func:`mlipspace.platonic.run_platonic` into
the table.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from ..anchors import select_anchors
from ..models import find_card, related_by_construction
from .agreement import retrieval_ranks, rowwise_cosine
from .chemistry import element_group
from .space import CommonSpace, is_control, project, sample_rows

PERIOD_ENDS = (2, 10, 18, 36, 54, 86, 118)


# Model facts come from the model cards (mlipspace.models): pairs are grouped by
# architecture and by training data + level of theory for the ordering of T2 and the
# clustering of T5.


def _architecture(name: str) -> str | None:
    card = find_card(name)
    return (card.architecture or None) if card is not None else None


def _data(name: str) -> str | None:
    """Training data and the functional of the predicted energies; None when unknown."""
    card = find_card(name)
    if card is None or not card.training_data:
        return None
    return f"{card.training_data} {card.level_of_theory}"


def _is_r2scan(name: str) -> bool:
    card = find_card(name)
    return card is not None and card.level_of_theory == "r2SCAN"


def _is_pbe_only(name: str) -> bool:
    """PBE energies from weights of their own: a head sharing weights with an r2SCAN head
    (multi-fidelity) or a fine-tune is not a PBE-only model."""
    card = find_card(name)
    return (
        card is not None
        and card.level_of_theory == "PBE"
        and card.shared_initialisation is None
        and card.fine_tuned_from is None
    )


def pair_relation(a: str, b: str) -> str:
    """How two models are related: ``same family and data``, ``same data`` or ``different``."""
    fam_a, fam_b = _architecture(a), _architecture(b)
    data_a, data_b = _data(a), _data(b)
    if data_a is None or data_b is None:
        return "unknown"
    if data_a == data_b:
        return "same family and data" if fam_a == fam_b else "same data"
    return "different data or fidelity"


def _period(numbers: np.ndarray) -> np.ndarray:
    return np.searchsorted(PERIOD_ENDS, numbers) + 1


def _row(test: str, claim: str, evidence: str, holds: bool | None, note: str = "") -> dict:
    return {"test": test, "claim": claim, "evidence": evidence, "holds": holds, "note": note}


def _fmt(x: float) -> str:
    return "nan" if x is None or not np.isfinite(x) else f"{x:.3g}"


# -- T10: the core agreement under other anchor settings ----------------------------------


def core_agreement(space: CommonSpace, models: Sequence[str], rows: np.ndarray) -> dict[str, float]:
    """Mean over trained pairs of the per-atom cosine, top-10 retrieval and same-element
    retrieval on ``rows``, and the mean cosine of trained models with the random controls."""
    trained = [m for m in models if not is_control(m)]
    randoms = [m for m in models if m.startswith("mace-random")]
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


def _variant(base: CommonSpace, anchor_rows: np.ndarray, center: bool) -> CommonSpace:
    Z = {name: project(E, anchor_rows, center) for name, E in base.E.items()}
    return CommonSpace(
        Z=Z,
        E=base.E,
        atoms=base.atoms,
        anchor_rows=anchor_rows,
        settings={**base.settings, "n_anchors": len(anchor_rows), "center": center},
    )


def robustness(
    base: CommonSpace,
    n_anchors: Sequence[int] = (64, 256, 1024),
    n_atoms: int = 1000,
    random_state: int = 0,
) -> pd.DataFrame:
    """The core agreement (:func:`core_agreement`) under other anchor settings (T10).

    Variants: DIRECT anchors on the anchor features for every ``n_anchors`` (capped at half
    the atoms); random anchors; DIRECT on the first trained model's own embeddings; and the
    base setting with mean-centring.
    """
    method = base.settings.get("method", "direct")
    center = bool(base.settings.get("center", False))
    models = base.models
    trained = [m for m in models if not is_control(m)]
    rows = sample_rows(len(base.atoms), n_atoms, random_state)
    limit = len(base.atoms) // 2
    k0 = len(base.anchor_rows)
    variants: list[tuple[str, Any, int, bool]] = [
        (f"{method}, K={k}", base.atoms.X, k, center)
        for k in sorted({*n_anchors, k0})
        if k <= limit
    ]
    variants.append((f"random, K={k0}", None, k0, center))
    if trained:
        variants.append((f"{method} on {trained[0]}, K={k0}", base.E[trained[0]], k0, center))
    variants.append(
        (
            f"{method}, K={k0}, centred" if not center else f"{method}, K={k0}, uncentred",
            base.atoms.X,
            k0,
            not center,
        )
    )
    records = []
    for name, features, k, centred in variants:
        if features is None:
            anchor_rows = sample_rows(len(base.atoms), k, random_state + 1)
        else:
            anchor_rows = np.asarray(
                select_anchors(features, k, method=method, random_state=random_state)
            )
        space = _variant(base, anchor_rows, centred)
        records.append(
            {
                "variant": name,
                "n_anchors": k,
                "center": centred,
                **core_agreement(space, models, rows),
            }
        )
    return pd.DataFrame(records)


# -- T1–T10 -----------------------------------------------------------------------------


#: identity-map cosine above which two checkpoints of equal width are taken to share their
#: initialisation (one fine-tuned or trained on from the other), as the notes ask to check first
SHARED_INIT_COSINE = 0.5


def _t1(space: CommonSpace, trained: list[str]) -> dict:
    rows = sample_rows(len(space.atoms), 2000, 0)
    values, related = {}, {}
    for a, b in combinations(trained, 2):
        if space.E[a].shape[1] != space.E[b].shape[1]:
            continue
        value = float(rowwise_cosine(space.E[a][rows], space.E[b][rows]).mean())
        known = related_by_construction(a, b)
        if known or abs(value) > SHARED_INIT_COSINE:
            related[f"{a}/{b}"] = value
        else:
            values[f"{a}/{b}"] = value
    unequal = sum(space.E[a].shape[1] != space.E[b].shape[1] for a, b in combinations(trained, 2))
    note = (
        "identity-map cosine > 0.5, so taken as sharing their initialisation and left out: "
        + "; ".join(f"{k} {_fmt(v)}" for k, v in related.items())
        if related
        else ""
    )
    if not values:
        return _row(
            "T1",
            "raw spaces are incompatible (identity-map cosine ≈ 0)",
            f"{unequal} pairs of unequal width cannot be compared at all",
            None,
            note or "no unrelated pair of equal width",
        )
    worst = max(values, key=lambda k: abs(values[k]))
    return _row(
        "T1",
        "raw spaces are incompatible (identity-map cosine ≈ 0)",
        f"{len(values)} unrelated equal-width pairs, mean |cos| "
        f"{_fmt(np.mean(np.abs(list(values.values()))))}, largest {worst} {_fmt(values[worst])}; "
        f"{unequal} pairs of unequal width",
        bool(abs(values[worst]) < 0.3),
        note,
    )


def centred_agreement(space: CommonSpace, models: Sequence[str], n_atoms: int = 2000) -> dict:
    """Mean per-atom cosine of trained pairs, against atoms paired at random, with the
    projections as they are and with each model's mean projection subtracted.

    Cosines to anchors share a large common part (every atom resembles every anchor a
    little), so raw projections of two *different* atoms can already have a cosine near 1;
    the matched cosine means something only against that baseline.
    """
    rows = sample_rows(len(space.atoms), n_atoms, 0)
    shift = np.roll(np.arange(len(rows)), len(rows) // 2)
    out = {"matched": [], "random_pairs": [], "matched_centred": [], "random_pairs_centred": []}
    for a, b in combinations(models, 2):
        for suffix, (ZA, ZB) in (
            ("", (space.Z[a][rows], space.Z[b][rows])),
            (
                "_centred",
                (space.Z[a][rows] - space.Z[a].mean(0), space.Z[b][rows] - space.Z[b].mean(0)),
            ),
        ):
            out["matched" + suffix].append(rowwise_cosine(ZA, ZB).mean())
            out["random_pairs" + suffix].append(rowwise_cosine(ZA, ZB[shift]).mean())
    return {k: float(np.mean(v)) if v else np.nan for k, v in out.items()}


def _t2(
    agreement: pd.DataFrame, trained: list[str], n_atoms: int, space: CommonSpace
) -> list[dict]:
    pairs = agreement[agreement.source.isin(trained) & agreement.target.isin(trained)].copy()
    if pairs.empty:
        return [
            _row(
                "T2",
                "trained models converge after anchoring",
                "fewer than two trained models",
                None,
            )
        ]
    chance = 10.0 / n_atoms
    base = centred_agreement(space, trained)
    rows = [
        _row(
            "T2",
            "trained models converge after anchoring: high cosine, top-10 retrieval ≫ chance, "
            "same-element retrieval ≈ 1",
            f"mean cos {_fmt(pairs.cosine_mean.mean())} (min {_fmt(pairs.cosine_mean.min())}; "
            f"atoms paired at random {_fmt(base['random_pairs'])}), centred "
            f"{_fmt(base['matched_centred'])} (random pairs {_fmt(base['random_pairs_centred'])}); "
            f"top-10 {_fmt(pairs.top10.mean())} vs chance {_fmt(chance)}, "
            f"same element {_fmt(pairs.top1_element.mean())}",
            bool(pairs.top10.mean() > 10 * chance and pairs.top1_element.mean() > 0.9),
            "the uncentred cosine is mostly the part every projection shares: compare it with "
            "atoms paired at random",
        )
    ]
    pairs["relation"] = [
        pair_relation(a, b) for a, b in zip(pairs.source, pairs.target, strict=True)
    ]
    by = pairs.groupby("relation")["cosine_mean"].mean()
    order = ["same family and data", "same data", "different data or fidelity"]
    present = [r for r in order if r in by]
    values = [by[r] for r in present]
    rows.append(
        _row(
            "T2",
            "ordering: same architecture and data ≥ same data ≥ different data or fidelity",
            ", ".join(f"{r}: {_fmt(by[r])}" for r in present),
            bool(np.all(np.diff(values) <= 0)) if len(values) >= 2 else None,
            "" if len(values) >= 2 else "only one kind of pair",
        )
    )
    return rows


def _t3(agreement: pd.DataFrame, trained: list[str], stitched: pd.DataFrame) -> dict:
    randoms = sorted({m for m in agreement.target if m.startswith("mace-random")})
    if not randoms:
        return _row(
            "T3",
            "random-weight models agree less than any trained pair",
            "no mace-random control",
            None,
        )
    pairs = agreement[agreement.source.isin(trained) & agreement.target.isin(trained)]
    control = agreement[agreement.source.isin(trained) & agreement.target.isin(randoms)]
    probe = stitched[stitched.label == "element_group"]
    in_trained = probe[probe.source.isin(trained)]["in_model"].mean()
    in_random = probe[probe.source.isin(randoms)]["in_model"].mean()
    holds = bool(control.cosine_mean.max() < pairs.cosine_mean.min()) if len(pairs) else None
    return _row(
        "T3",
        "physical supervision is needed: random MACE agrees less with trained models than "
        "any trained pair, and organises the periodic table worse",
        f"cos trained–random max {_fmt(control.cosine_mean.max())} vs trained pairs min "
        f"{_fmt(pairs.cosine_mean.min())}; same-element retrieval {_fmt(control.top1_element.mean())} vs "
        f"{_fmt(pairs.top1_element.mean())}; group probe in-model {_fmt(in_random)} vs {_fmt(in_trained)}",
        holds,
        f"{len(randoms)} random seed(s); the paper asks for at least 3",
    )


def _t4(space: CommonSpace, trained: list[str]) -> dict:
    numbers = space.atoms.numbers
    elements = np.unique(numbers)
    if len(elements) < 4 or not trained:
        return _row(
            "T4", "element centroids keep the periodic table", "fewer than 4 elements", None
        )
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
        "element centroids in the common space keep the periodic table "
        "(Spearman with |Δgroup| + |Δperiod| > 0 for every model)",
        f"Spearman mean {_fmt(np.mean(list(rhos.values())))}, lowest {low} {_fmt(rhos[low])} "
        f"({len(elements)} elements)",
        bool(min(rhos.values()) > 0),
    )


def _t5(ot_pairs: pd.DataFrame, w2: pd.DataFrame, trained: list[str]) -> list[dict]:
    pairs = ot_pairs[ot_pairs.source.isin(trained) & ot_pairs.target.isin(trained)]
    if pairs.empty:
        return [
            _row(
                "T5",
                "optimal transport matches atoms across models",
                "fewer than two trained models",
                None,
            )
        ]
    chance = 1.0 / float(pairs.n_atoms.iloc[0])
    rows = [
        _row(
            "T5",
            "exact EMD in the common space matches atoms far above chance; GW on raw spaces does worse",
            f"EMD accuracy {_fmt(pairs.emd_accuracy.mean())} (same element {_fmt(pairs.emd_element_accuracy.mean())}) "
            f"vs chance {_fmt(chance)}; GW raw {_fmt(pairs.gw_raw_accuracy.mean())}",
            bool(
                pairs.emd_accuracy.mean() > 10 * chance
                and pairs.emd_accuracy.mean() > pairs.gw_raw_accuracy.mean()
            ),
        )
    ]
    sub = w2.loc[trained, trained].to_numpy(dtype=float, copy=True)
    np.fill_diagonal(sub, np.inf)
    checks = []
    for i, model in enumerate(trained):
        siblings = [m for m in trained if m != model and _architecture(m) == _architecture(model)]
        if siblings and _architecture(model):
            checks.append(_architecture(trained[int(np.argmin(sub[i]))]) == _architecture(model))
    r2 = [m for m in trained if _is_r2scan(m)]
    pbe = [m for m in trained if _is_pbe_only(m)]
    note = ""
    if r2 and pbe:
        inside = (
            np.mean([w2.loc[a, b] for a, b in combinations(pbe, 2)]) if len(pbe) > 1 else np.nan
        )
        across = np.mean([w2.loc[a, b] for a in r2 for b in pbe])
        note = f"W2 PBE–PBE mean {_fmt(inside)}, r2SCAN–PBE mean {_fmt(across)}"
    rows.append(
        _row(
            "T5",
            "W2 distances cluster models by family (nearest model in W2 is a sibling)",
            f"{sum(checks)} of {len(checks)} models with a sibling have one as W2 nearest neighbour",
            bool(np.mean(checks) >= 0.5) if checks else None,
            note,
        )
    )
    return rows


def _t6(stitched: pd.DataFrame, trained: list[str]) -> dict:
    pairs = stitched[stitched.source.isin(trained) & stitched.target.isin(trained)]
    shuffled = stitched[stitched.target.str.startswith("shuffled:")]
    if pairs.empty:
        return _row("T6", "zero-shot stitching", "fewer than two trained models", None)
    keep = (pairs.zero_shot / pairs.in_model).mean()
    per_label = pairs.groupby("label")[["zero_shot", "in_model", "raw"]].mean()
    text = "; ".join(
        f"{label}: zero-shot {_fmt(r.zero_shot)}, in-model {_fmt(r.in_model)}, raw {_fmt(r.raw)}"
        for label, r in per_label.iterrows()
    )
    control = shuffled.zero_shot.mean() if len(shuffled) else np.nan
    return _row(
        "T6",
        "a head trained on one model's common-space coordinates works zero-shot on another, "
        "far above a shuffled-anchor control; the raw-space attempt fails",
        f"{text}; zero-shot keeps {_fmt(keep)} of in-model accuracy; shuffled-anchor control {_fmt(control)}",
        bool(
            keep > 0.7
            and (not np.isfinite(control) or pairs.zero_shot.mean() > control)
            and pairs.zero_shot.mean() > pairs.raw.mean()
        ),
    )


def _t7(arithmetic: dict | None) -> dict:
    claim = "substitution vectors retrieve the substituted site above baseline and are parallel across models"
    if not arithmetic or "skipped" in arithmetic:
        return _row("T7", claim, (arithmetic or {}).get("skipped", "no structures given"), None)
    return _row(
        "T7",
        claim,
        f"top-1 {_fmt(arithmetic['top1_mean'])} vs baseline {_fmt(arithmetic['baseline_top1_mean'])}; "
        f"cos(Δ^A, Δ^B) {_fmt(arithmetic['delta_cosine_mean'])}",
        bool(
            arithmetic["top1_mean"] > arithmetic["baseline_top1_mean"]
            and (arithmetic["delta_cosine_mean"] or 0) > 0.5
        ),
    )


def _t8(
    space: CommonSpace,
    atypical: pd.DataFrame | None,
    bias: pd.DataFrame,
    fine_tunes: list[dict],
    trained: list[str],
) -> list[dict]:
    rows = []
    if atypical is not None and len(atypical):
        counts = pd.Series(space.atoms.numbers).value_counts()
        from ase.data import atomic_numbers

        def rarity(elements: str) -> float:
            return float(max(1.0 / counts[atomic_numbers[s]] for s in _split_symbols(elements)))

        rare = np.array([rarity(e) for e in atypical.elements])
        rho = float(spearmanr(atypical.dispersion_mean, rare).statistic)
        ideal = atypical.subset.isin(["element", "binary", "perovskite", "alloy"])
        ratio = atypical.dispersion_mean[~ideal].mean() / atypical.dispersion_mean[ideal].mean()
        rho_size = float(spearmanr(atypical.dispersion_mean, atypical.n_atoms).statistic)
        rows.append(
            _row(
                "T8",
                "cross-model dispersion is enriched for rare elements and distorted or unusual structures",
                f"Spearman with element rarity {_fmt(rho)}, with cell size {_fmt(rho_size)}; "
                f"distorted/defective/molecular vs ideal crystals {_fmt(ratio)}×",
                bool(rho > 0 and ratio > 1),
            )
        )
    r2 = [m for m in trained if _is_r2scan(m)]
    pbe = [m for m in trained if not _is_r2scan(m)]
    if r2 and pbe:
        r2_bias, pbe_bias = bias[r2].to_numpy().mean(), bias[pbe].to_numpy().mean()
        rows.append(
            _row(
                "T8",
                "bias maps show r2SCAN-trained models offset from PBE-trained ones",
                f"mean deviation from consensus: r2SCAN {_fmt(r2_bias)} ({', '.join(r2)}), PBE {_fmt(pbe_bias)}",
                bool(r2_bias > pbe_bias),
                "the consensus is dominated by the PBE-trained majority",
            )
        )
    for report in fine_tunes:
        rows.append(
            _row(
                "T8",
                f"the fine-tune {report['tuned']} stays near its base {report['base']}",
                f"cos {_fmt(report['cosine_tuned_base'])} vs other pairs mean "
                f"{_fmt(report['cosine_other_pairs_mean'])}, max {_fmt(report['cosine_other_pairs_max'])}",
                bool(report["cosine_tuned_base"] > report["cosine_other_pairs_mean"]),
            )
        )
    return rows


def _split_symbols(text: str) -> list[str]:
    import re

    return re.findall(r"[A-Z][a-z]?", text)


def _t9(diagnostics: dict | None) -> list[dict]:
    if not diagnostics:
        return [_row("T9", "symmetry and phonon diagnostics", "diagnostics were not run", None)]
    rows = []
    spread = diagnostics.get("symmetry_max_spread", {})
    if spread:
        worst = max(spread, key=spread.get)
        rows.append(
            _row(
                "T0",
                "symmetry-equivalent sites have identical raw features in every model",
                f"largest orbit spread (1 − cos) {worst} {_fmt(spread[worst])}",
                bool(spread[worst] < 1e-4),
            )
        )
    mono = diagnostics.get("displacement_monotonic", {})
    if mono:
        rows.append(
            _row(
                "T9a",
                "the orbit spread in the common space grows monotonically as one site moves",
                f"{sum(mono.values())} of {len(mono)} models",
                bool(all(mono.values())),
            )
        )
    for entry in diagnostics.get("auroc", []):
        rows.append(
            _row(
                "T9b" if "relax" in entry["failure"] else "T9c",
                f"Platonic deviation from consensus flags {entry['failure']} (AUROC > 0.5)",
                f"AUROC {_fmt(entry['auroc'])} on {entry['pairs']} (model, structure) pairs, "
                f"{entry['positives']} positive",
                bool(entry["auroc"] > 0.5) if np.isfinite(entry["auroc"]) else None,
                entry["note"],
            )
        )
    return rows


def _t10(table: pd.DataFrame | None) -> list[dict]:
    if table is None or table.empty:
        return [_row("T10", "conclusions are robust to anchor settings", "not computed", None)]
    gap = table.trained_cosine - table.random_cosine
    rows = [
        _row(
            "T10",
            "trained models agree, and beat the random control, for every anchor setting "
            "(K, anchor features, centring)",
            "; ".join(
                f"{v}: cos {_fmt(c)}, random {_fmt(r)}"
                for v, c, r in zip(
                    table.variant, table.trained_cosine, table.random_cosine, strict=True
                )
            ),
            bool(np.all(gap > 0)) if np.isfinite(gap).all() else None,
        )
    ]
    plain = [
        i
        for i, v in enumerate(table.variant)
        if not v.startswith("random") and " on " not in v and "centred" not in v
    ]
    base = table.iloc[plain]
    random = table[table.variant.str.startswith("random")]
    if len(random) and len(base):
        k = int(random.n_anchors.iloc[0])
        same = base[base.n_anchors == k]
        if len(same):
            d, r = same.iloc[0], random.iloc[0]
            rows.append(
                _row(
                    "T10",
                    "DIRECT anchors give higher agreement and better element coverage than random anchors",
                    f"K={k}: top-10 {_fmt(d.trained_top10)} vs {_fmt(r.trained_top10)}, cos {_fmt(d.trained_cosine)} "
                    f"vs {_fmt(r.trained_cosine)}, anchor elements {d.anchor_elements} vs {r.anchor_elements}",
                    bool(
                        d.trained_top10 >= r.trained_top10
                        and d.anchor_elements >= r.anchor_elements
                    ),
                )
            )
    return rows


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
) -> pd.DataFrame:
    """The table of checks T0–T10 from the outputs of :func:`run_platonic`.

    Returns
    -------
    DataFrame
        Columns ``test, claim, evidence, holds, note``; ``holds`` is None where the data
        cannot decide (the note says why).
    """
    trained = [m for m in space.models if not is_control(m)]
    n_atoms = int(agreement.attrs.get("n_atoms", len(space.atoms)))
    rows = [
        _t1(space, trained),
        *_t2(agreement, trained, n_atoms, space),
        _t3(agreement, trained, stitched),
        _t4(space, trained),
        *_t5(ot_pairs, w2, trained),
        _t6(stitched, trained),
        _t7(arithmetic),
        *_t8(space, atypical, bias, list(fine_tunes), trained),
        *_t9(diagnostics),
        *_t10(robustness_table),
    ]
    table = pd.DataFrame(rows, columns=["test", "claim", "evidence", "holds", "note"])
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
    lines = ["| test | claim | evidence | verdict | note |", "|---|---|---|---|---|"]
    for r in table.itertuples():
        holds = (
            None
            if r.holds is None or (isinstance(r.holds, float) and np.isnan(r.holds))
            else bool(r.holds)
        )
        cells = [r.test, r.claim, r.evidence, mark[holds], r.note]
        lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"
