"""Checks T5–T10 of :mod:`.claims`: transport, stitching, arithmetic, bias, diagnostics, robustness."""

from __future__ import annotations

from collections.abc import Callable
from itertools import combinations

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from .facts import family, is_pbe_only, level_of_theory
from .space import CommonSpace
from .verdicts import (
    ALPHA,
    MIN_ATOMS,
    MIN_POSITIVES,
    Figure,
    combine,
    decide,
    structure_bootstrap,
)
from .verdicts import (
    claim_row as _row,
)
from .verdicts import (
    fmt as _fmt,
)


def boot(
    values: np.ndarray,
    space: CommonSpace,
    rows: np.ndarray,
    den: np.ndarray | None = None,
    random_state: int = 0,
) -> Figure:
    """:func:`structure_bootstrap` of per-atom ``values`` on ``rows`` of ``space``."""
    return structure_bootstrap(
        values, space.atoms.structure_index[rows], den, random_state=random_state
    )


#: the ``subset`` of the claims rows taken on the uncentred, unscaled projection (the same
#: atoms as ``all``)
UNCENTRED = "all, uncentred projection"


def subsets(space: CommonSpace, rows: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """The sample (``all``) and its atoms in ideal bulk crystals."""
    bulk = np.intersect1d(rows, space.bulk_rows())
    return [("all", rows), ("bulk crystals", bulk)]


def per_subset(
    one: Callable[..., dict],
    tables: dict[str, pd.DataFrame | None],
    trained: list[str],
    space: CommonSpace,
    random_state: int = 0,
) -> list[dict]:
    """``one(table, trained, space, subset, random_state)`` for every subset whose table was
    computed (``None``: not computed, e.g. no bulk crystals in a user's data)."""
    return [
        one(table, trained, space, subset, random_state)
        for subset, table in tables.items()
        if table is not None
    ]


def _pair_hits(table: pd.DataFrame, trained: list[str], key: str) -> np.ndarray | None:
    """Per-atom hit rate of ``key`` averaged over trained ordered pairs (from ``attrs``)."""
    hits = table.attrs.get("hits", {})
    arrays = [hits[(a, b, key)] for a in trained for b in trained if a != b and (a, b, key) in hits]
    return np.mean(arrays, axis=0) if arrays else None


#: the claims of T5 (transport) and T6 (stitching) and their thresholds
T5_CLAIM = (
    "exact EMD in the common space matches atoms far above chance, and better than GW on "
    "the raw spaces (same atoms, same number)"
)
T5_THRESHOLD = "EMD equivalent-atom accuracy > 10× its chance, and EMD − GW(raw) > 0 (whole 95% CI)"
T6_CLAIM = (
    "a head trained on one model's common-space coordinates works zero-shot on another, "
    "far above a shuffled-anchor control; the raw-space attempt fails"
)
T6_THRESHOLD = (
    "zero-shot / in-model accuracy > 0.7, zero-shot − shuffled control > 0 and "
    "zero-shot − raw > 0 (whole 95% CI)"
)


def trained_pairs(table: pd.DataFrame, trained: list[str]) -> pd.DataFrame:
    """The rows of a pair table whose source and target are both trained models."""
    return table[table.source.isin(trained) & table.target.isin(trained)]


def _t5_one(
    ot_pairs: pd.DataFrame, trained: list[str], space: CommonSpace, subset: str, random_state: int
) -> dict:
    claim, threshold = T5_CLAIM, T5_THRESHOLD
    pairs = trained_pairs(ot_pairs, trained)
    rows = ot_pairs.attrs.get("rows")
    if pairs.empty or rows is None:
        return _row(
            "T5", claim, "fewer than two trained models", None, threshold=threshold, subset=subset
        )
    rows = np.asarray(rows)
    if len(rows) < MIN_ATOMS:
        return _row("T5", claim, f"{len(rows)} atoms", None, f"fewer than {MIN_ATOMS} atoms",
                    threshold=threshold, subset=subset)  # fmt: skip
    parts = []
    for method in ("emd", "sinkhorn", "gw_raw", "gw_z"):
        if f"{method}_accuracy" in pairs:
            parts.append(
                f"{method}: exact {_fmt(pairs[f'{method}_accuracy'].mean())}, equivalent "
                f"{_fmt(pairs[f'{method}_equivalent_accuracy'].mean())}, element "
                f"{_fmt(pairs[f'{method}_element_accuracy'].mean())}"
            )
    chance = {k: float(pairs[k].iloc[0]) for k in ("chance", "chance_equivalent", "chance_element")}
    emd = _pair_hits(ot_pairs, trained, "emd_equivalent")
    gw = _pair_hits(ot_pairs, trained, "gw_raw_equivalent")
    fig = boot(emd, space, rows, random_state=random_state)
    verdicts = [decide(fig, 10 * chance["chance_equivalent"])]
    diff = None
    if gw is not None:
        diff = boot(emd - gw, space, rows, random_state=random_state)
        verdicts.append(decide(diff, 0.0))
    return _row(
        "T5",
        claim,
        f"{len(rows)} atoms; EMD equivalent accuracy {fig.text()}"
        + (f", minus GW raw {diff.text()}" if diff else "")
        + "; "
        + "; ".join(parts)
        + f"; chance: exact {_fmt(chance['chance'])}, equivalent {_fmt(chance['chance_equivalent'])}, "
        f"element {_fmt(chance['chance_element'])}",
        combine(verdicts),
        "equivalent: the atom itself, a feature-identical atom or one of its spglib orbit",
        threshold=threshold,
        figure=fig,
        subset=subset,
    )


def _t5(
    transport: dict[str, pd.DataFrame | None],
    w2: pd.DataFrame,
    trained: list[str],
    space: CommonSpace,
    random_state: int = 0,
) -> list[dict]:
    """T5 on every subset of ``transport`` (subset → :func:`transport_agreement` table),
    then the W2 family check."""
    rows = per_subset(_t5_one, transport, trained, space, random_state)
    sub = w2.loc[trained, trained].to_numpy(dtype=float, copy=True)
    np.fill_diagonal(sub, np.inf)
    checks = []
    for i, model in enumerate(trained):
        siblings = [m for m in trained if m != model and family(m) and family(m) == family(model)]
        if siblings:
            checks.append(family(trained[int(np.argmin(sub[i]))]) == family(model))
    r2 = [m for m in trained if level_of_theory(m) == "r2SCAN"]
    pbe = [m for m in trained if is_pbe_only(m)]
    note = "families from the model cards"
    if r2 and pbe:
        inside = (
            np.mean([w2.loc[a, b] for a, b in combinations(pbe, 2)]) if len(pbe) > 1 else np.nan
        )
        across = np.mean([w2.loc[a, b] for a in r2 for b in pbe])
        note += f"; W2 PBE–PBE mean {_fmt(inside)}, r2SCAN–PBE mean {_fmt(across)}"
    rows.append(
        _row(
            "T5",
            "W2 distances cluster models by family (nearest model in W2 is a sibling)",
            f"{sum(checks)} of {len(checks)} models with a sibling have one as W2 nearest neighbour",
            bool(np.mean(checks) >= 0.5) if checks else None,
            note,
            threshold="at least half of the models with a sibling",
        )
    )
    return rows


def _t6_one(
    stitched: pd.DataFrame, trained: list[str], space: CommonSpace, subset: str, random_state: int
) -> dict:
    claim, threshold = T6_CLAIM, T6_THRESHOLD
    pairs = trained_pairs(stitched, trained)
    # labels the sample could not learn (too few atoms, parents or classes), named
    skipped = "; ".join(f"{k} skipped: {v}" for k, v in stitched.attrs.get("skipped", {}).items())
    if pairs.empty:
        why = "no label could be learnt" if skipped else "fewer than two trained models"
        return _row("T6", claim, why, None, skipped, threshold=threshold, subset=subset)
    rows = np.asarray(stitched.attrs.get("rows", []))
    labels = list(dict.fromkeys(pairs.label))
    per_label = pairs.groupby("label")[["zero_shot", "in_model", "raw"]].mean()
    text = "; ".join(
        f"{label}: zero-shot {_fmt(r.zero_shot)}, in-model {_fmt(r.in_model)}, raw {_fmt(r.raw)}"
        for label, r in per_label.iterrows()
    )
    shuffled = [m for m in stitched.target.unique() if str(m).startswith("shuffled:")]
    if len(rows) < MIN_ATOMS or not stitched.attrs.get("hits"):
        note = "; ".join(filter(None, [f"{len(rows)} test atoms; fewer than {MIN_ATOMS}", skipped]))
        return _row("T6", claim, text, None, note, threshold=threshold, subset=subset)

    def hits(kind: str, sources=trained, targets=trained) -> np.ndarray:
        per = []
        for label in labels:
            arrays = [
                stitched.attrs["hits"][(a, b, f"{kind}:{label}")]
                for a in sources
                for b in targets
                if a != b and (a, b, f"{kind}:{label}") in stitched.attrs["hits"]
            ]
            per.append(np.mean(arrays, axis=0))
        return np.stack(per)  # labels × atoms, NaN where a label is undefined

    zs, im, raw = hits("zero_shot"), hits("in_model"), hits("raw")
    keep = boot(np.nansum(zs, 0), space, rows, np.nansum(im, 0), random_state)
    vs_raw = boot(np.nanmean(zs - raw, 0), space, rows, random_state=random_state)
    verdicts = [decide(keep, 0.7), decide(vs_raw, 0.0)]
    control_text = "no shuffled-anchor control"
    if shuffled:
        ctl = hits("zero_shot", trained, shuffled)
        vs_ctl = boot(np.nanmean(zs - ctl, 0), space, rows, random_state=random_state)
        verdicts.append(decide(vs_ctl, 0.0))
        control_text = f"zero-shot minus shuffled-anchor control {vs_ctl.text()}"
    return _row(
        "T6",
        claim,
        f"{len(rows)} test atoms; {text}; zero-shot keeps {keep.text()} of in-model accuracy; "
        f"{control_text}; zero-shot minus raw {vs_raw.text()}",
        combine(verdicts),
        "; ".join(
            filter(
                None,
                [
                    "own-statistics standardisation, split by parent structure, ridge α by "
                    "group CV on the source",
                    skipped,
                ],
            )
        ),
        threshold=threshold,
        figure=keep,
        subset=subset,
    )


def _t7(arithmetic: dict | None) -> dict:
    claim = "substitution vectors retrieve the substituted site above baseline and are parallel across models"
    threshold = "top-1 > no-Δ baseline and mean cos(Δ^A, Δ^B) > 0.5"
    if not arithmetic or "skipped" in arithmetic:
        return _row(
            "T7", claim, (arithmetic or {}).get("skipped", "no structures given"), None,
            threshold=threshold,
        )  # fmt: skip
    return _row(
        "T7",
        claim,
        f"top-1 {_fmt(arithmetic['top1_mean'])} vs baseline {_fmt(arithmetic['baseline_top1_mean'])}; "
        f"cos(Δ^A, Δ^B) {_fmt(arithmetic['delta_cosine_mean'])}",
        bool(
            arithmetic["top1_mean"] > arithmetic["baseline_top1_mean"]
            and (arithmetic["delta_cosine_mean"] or 0) > 0.5
        ),
        "trained models only (controls out of every average); Δ rescaled to the target model's spread",
        threshold=threshold,
        figure=Figure(arithmetic["top1_mean"], np.nan, np.nan),
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
                threshold="Spearman ρ > 0 and ratio > 1",
            )
        )
    r2 = [m for m in trained if level_of_theory(m) == "r2SCAN"]
    pbe = [m for m in trained if level_of_theory(m) != "r2SCAN"]
    if r2 and pbe:
        r2_bias, pbe_bias = bias[r2].to_numpy().mean(), bias[pbe].to_numpy().mean()
        rows.append(
            _row(
                "T8",
                "bias maps show r2SCAN-trained models offset from PBE-trained ones",
                f"mean deviation from consensus: r2SCAN {_fmt(r2_bias)} ({', '.join(r2)}), PBE {_fmt(pbe_bias)}",
                bool(r2_bias > pbe_bias),
                "the consensus is dominated by the PBE-trained majority; levels of theory "
                "from the model cards",
                threshold="r2SCAN mean deviation > PBE mean deviation",
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
                threshold="above the other pairs' mean",
            )
        )
    return rows


def _split_symbols(text: str) -> list[str]:
    import re

    return re.findall(r"[A-Z][a-z]?", text)


def _t9(diagnostics: dict | None) -> list[dict]:
    if not diagnostics:
        return [
            _row("T9", "symmetry and phonon diagnostics", "diagnostics were not run", None,
                 threshold="")
        ]  # fmt: skip
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
                threshold="< 1e-4",
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
                threshold="every model",
            )
        )
    for entry in diagnostics.get("auroc", []):
        rows.append(_auroc_row(entry))
    return rows


def _auroc_row(entry: dict) -> dict:
    """T9b/T9c: undecided with fewer than :data:`MIN_POSITIVES` positives or negatives;
    otherwise judged on the permutation p-value when the diagnostics give one."""
    positives = int(entry.get("positives", 0))
    negatives = int(entry.get("negatives", int(entry.get("pairs", 0)) - positives))
    value = float(entry.get("auroc", np.nan))
    p = float(entry.get("p_value", np.nan))
    evidence = (
        f"AUROC {_fmt(value)} on {positives} positive and {negatives} negative "
        f"(model, structure) pairs; permutation p {_fmt(p)}"
    )
    note = str(entry.get("note", "") or "")
    if min(positives, negatives) < MIN_POSITIVES or not np.isfinite(value):
        holds = None
        note = "; ".join(
            filter(
                None, [note, f"fewer than {MIN_POSITIVES} positives or negatives: too few to judge"]
            )
        )
    elif np.isfinite(p):
        holds = True if p < ALPHA and value > 0.5 else (None if value > 0.5 else False)
    else:
        holds = None
        note = "; ".join(filter(None, [note, "no permutation p-value"]))
    return _row(
        "T9b" if "relax" in entry["failure"] else "T9c",
        f"Platonic deviation from consensus flags {entry['failure']} (AUROC > 0.5)",
        evidence,
        holds,
        note,
        threshold=f"AUROC > 0.5 with permutation p < {ALPHA}; ≥ {MIN_POSITIVES} positives and negatives",
        figure=Figure(value, np.nan, np.nan),
    )


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
            threshold="trained cosine > random cosine in every variant",
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
                    "[I] the element-coverage criterion is the spec's invention, not the paper's",
                    threshold="DIRECT ≥ random in both",
                )
            )
    return rows
