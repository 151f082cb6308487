"""Agreement between models before and after projection on the anchors (Li & Walsh §4–§5).

Coordinate agreement (per-atom cosine of ``z``) needs shared axes, so it exists only after
projection; the raw-space baseline aligns two models with an orthogonal Procrustes map
fitted on the anchors only. Retrieval asks, for every atom of model A, where the same
atom ranks among model B's atoms by cosine. Near-copies (rattled or strained versions of
one crystal) make "the same atom" ill-posed, so a hit within the near-duplicate class
(same parent structure and element) is reported too.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd
from scipy.linalg import orthogonal_procrustes
from threadpoolctl import threadpool_limits

from ..anchors.projection import unit_rows
from ..errors import MetricInputError
from ..metrics import similarity as sim
from ..transport import cost_matrix, transport_plan, w2_distance
from .space import CommonSpace

_CHUNK = 2048
#: cosines closer than this count as ties (float32 features carry ~1e-7 relative noise)
TIE_TOLERANCE = 1e-6


def rowwise_cosine(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Cosine between row ``i`` of ``A`` and row ``i`` of ``B``."""
    return np.sum(unit_rows(A) * unit_rows(B), axis=1)


def retrieval_ranks(A: np.ndarray, B: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rank of the true partner and the retrieved row, querying every row of A among B.

    Returns
    -------
    ranks : ndarray of int
        ``1 + #{j : cos(a_i, b_j) > cos(a_i, b_i) + TIE_TOLERANCE}``: 1 means retrieved first.
        Symmetry-equivalent atoms have equal features up to float32 round-off; they tie
        with the true atom instead of outranking it.
    nearest : ndarray of int
        ``argmax_j cos(a_i, b_j)``.
    """
    An, Bn = unit_rows(A), unit_rows(B)
    ranks = np.empty(len(A), dtype=np.int64)
    nearest = np.empty(len(A), dtype=np.int64)
    for start in range(0, len(A), _CHUNK):
        S = An[start : start + _CHUNK] @ Bn.T
        own = S[np.arange(len(S)), np.arange(start, start + len(S))]
        ranks[start : start + len(S)] = 1 + np.sum(S > own[:, None] + TIE_TOLERANCE, axis=1)
        nearest[start : start + len(S)] = np.argmax(S, axis=1)
    return ranks, nearest


def procrustes_align(
    EA: np.ndarray, EB: np.ndarray, anchor_rows: np.ndarray, rows: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Raw-space baseline: unit rows of A, zero-padded, rotated onto B by Procrustes on the anchors.

    Returns the aligned ``rows`` (default: all) of A and the matching rows of B.
    """
    width = max(EA.shape[1], EB.shape[1])

    def unit_padded(E: np.ndarray, idx: Any) -> np.ndarray:
        return np.pad(unit_rows(E[idx]), ((0, 0), (0, width - E.shape[1])))

    R, _ = orthogonal_procrustes(unit_padded(EA, anchor_rows), unit_padded(EB, anchor_rows))
    idx = slice(None) if rows is None else rows
    return unit_padded(EA, idx) @ R, unit_padded(EB, idx)


def _retrieval_summary(
    ranks: np.ndarray, nearest: np.ndarray, classes: np.ndarray, numbers: np.ndarray
) -> dict:
    return {
        "median_rank": float(np.median(ranks)),
        "top1": float(np.mean(ranks == 1)),
        "top10": float(np.mean(ranks <= 10)),
        "top1_class": float(np.mean(classes[nearest] == classes)),
        "top1_element": float(np.mean(numbers[nearest] == numbers)),
    }


def _geometry(ZA: np.ndarray, ZB: np.ndarray, EA: np.ndarray, EB: np.ndarray) -> dict[str, float]:
    """CKA and mutual kNN on projected and raw features (rows with a zero vector left out:
    an atom unlike every anchor, e.g. of an element no anchor has, has z = 0)."""
    keep = (np.linalg.norm(ZA, axis=1) > 0) & (np.linalg.norm(ZB, axis=1) > 0)
    keep &= (np.linalg.norm(EA, axis=1) > 0) & (np.linalg.norm(EB, axis=1) > 0)
    ZA, ZB, EA, EB = ZA[keep], ZB[keep], EA[keep], EB[keep]
    return {
        "cka_z": sim.cka(ZA, ZB),
        "cka_raw": sim.cka(EA, EB),
        "mknn_z": sim.mutual_knn(ZA, ZB, k=10),
        "mknn_raw": sim.mutual_knn(EA, EB, k=10),
    }


def pair_agreement(
    space: CommonSpace,
    n_atoms: int = 2000,
    random_state: int = 0,
    progress: Callable[[str], None] | None = None,
    rows: np.ndarray | None = None,
    raw_baseline: bool = True,
) -> pd.DataFrame:
    """Agreement of every ordered model pair, after and before projection.

    Computed on the same ``n_atoms`` random non-anchor atoms (of ``rows``, default all) for
    every pair; ``raw_baseline=False`` leaves out the raw-space columns. Columns: ``source, target,
    cosine_mean, cosine_median``, retrieval of A's atoms among B's (``median_rank, top1,
    top10, top1_class, top1_element``), the same for the raw Procrustes baseline (``raw_*``),
    and ``cka``/``mknn`` on projected (``z_``) and raw (``raw_``) features.
    """
    rows_idx = space.evaluation_rows(n_atoms, random_state, rows)
    classes = space.near_duplicate_class()[rows_idx]
    numbers = space.atoms.numbers[rows_idx]
    records = []
    names = space.models
    for a in names:
        for b in names:
            if a == b:
                continue
            if progress:
                progress(f"{a} → {b}")
            ZA, ZB = space.Z[a][rows_idx], space.Z[b][rows_idx]
            cos = rowwise_cosine(ZA, ZB)
            ranks, nearest = retrieval_ranks(ZA, ZB)
            row = {
                "source": a,
                "target": b,
                "cosine_mean": float(cos.mean()),
                "cosine_median": float(np.median(cos)),
            }
            row.update(_retrieval_summary(ranks, nearest, classes, numbers))
            if not raw_baseline:
                records.append(row)
                continue
            RA, RB = procrustes_align(space.E[a], space.E[b], space.anchor_rows, rows_idx)
            raw_ranks, raw_nearest = retrieval_ranks(RA, RB)
            row["raw_cosine_mean"] = float(rowwise_cosine(RA, RB).mean())
            row.update(
                {
                    f"raw_{k}": v
                    for k, v in _retrieval_summary(raw_ranks, raw_nearest, classes, numbers).items()
                }
            )
            if a < b:  # symmetric measures once per unordered pair
                row.update(_geometry(ZA, ZB, space.E[a][rows_idx], space.E[b][rows_idx]))
            records.append(row)
    df = pd.DataFrame(records)
    # fill the symmetric measures of the mirrored pair
    for col in ("cka_z", "cka_raw", "mknn_z", "mknn_raw"):
        if col in df:
            lookup = {
                (r.source, r.target): getattr(r, col)
                for r in df.itertuples()
                if r.source < r.target
            }
            df[col] = [
                lookup[(s, t)] if s < t else lookup[(t, s)]
                for s, t in zip(df.source, df.target, strict=True)
            ]
    df.attrs["n_atoms"] = len(rows_idx)
    df.attrs["rows"] = rows_idx.tolist()  # lists: pandas compares attrs when it combines frames
    return df


#: the transport methods of :func:`transport_agreement` and the space each runs in
TRANSPORT_METHODS = {
    "emd": "exact OT, common space",
    "sinkhorn": "entropic OT, common space",
    "gw_raw": "Gromov-Wasserstein, raw spaces",
    "gw_z": "Gromov-Wasserstein, common space",
}


def transport_agreement(
    space: CommonSpace,
    n_atoms: int = 500,
    random_state: int = 0,
    progress: Callable[[str], None] | None = None,
    n_threads: int | None = None,
    rows: np.ndarray | None = None,
    orbits: np.ndarray | None = None,
    gw: bool = True,
    raw_from: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Optimal transport between models: exact and entropic OT in the common space, and
    Gromov–Wasserstein on the raw spaces and on the common space, all on the same atoms.

    Every method matches the same ``n_atoms`` non-anchor atoms (drawn from ``rows``, default
    all) of model A with the same atoms of model B, shuffled so that no assignment can come
    from row order. Pairs of models run in ``n_threads`` threads (default: one per core);
    the results do not depend on it.

    A match is scored four ways, each beside its chance level (the expected score of a
    random permutation, :func:`~mlipspace.transport.chance_accuracy`): ``exact`` (the atom
    itself), ``equivalent`` (an atom of its class in :func:`.equivalence.equivalence_classes`:
    identical features in every model, or the same spglib orbit when ``orbits`` is given),
    ``class`` (the same near-duplicate class: parent structure and element) and ``element``.
    The equivalence classes are those of the pair: atoms that both models' raw features
    cannot tell apart, or that share an orbit.

    ``raw_from``: a table this function returned for the same atoms under another
    projection; its raw-space GW results are reused (the raw spaces do not depend on the
    projection) instead of being computed again.

    Returns
    -------
    pairs : DataFrame
        Per ordered pair (``source``, ``target``) and method ``m`` in
        :data:`TRANSPORT_METHODS`: ``{m}_accuracy`` (exact), ``{m}_equivalent_accuracy``,
        ``{m}_class_accuracy``, ``{m}_element_accuracy``; ``chance``,
        ``chance_equivalent``, ``chance_class``, ``chance_element``; ``n_atoms``.
    w2 : DataFrame
        Symmetric W2 distance matrix between the models' point clouds in the common space.
    """
    from ..transport import chance_accuracy, gromov_wasserstein_plan
    from .equivalence import equivalence_classes

    rows_idx = space.evaluation_rows(n_atoms, random_state, rows)
    if len(rows_idx) < 2:
        raise MetricInputError(
            f"transport needs at least two non-anchor atoms to match; the sample has {len(rows_idx)}"
        )
    if raw_from is not None and not np.array_equal(raw_from.attrs.get("rows"), rows_idx):
        raise MetricInputError("raw_from was computed on other atoms than this comparison")
    shared = {
        "": np.arange(len(rows_idx)),
        "_class": space.near_duplicate_class()[rows_idx],
        "_element": space.atoms.numbers[rows_idx],
    }
    rng = np.random.default_rng(random_state)
    models = list(space.models)
    pairs = [(a, b) for i, a in enumerate(models) for b in models[i + 1 :]]
    # every random draw first, in pair order, so that the pairs can run in any order
    draws = [rng.permutation(len(rows_idx)) for _ in pairs]

    def one_pair(pair: tuple[str, str], perm: np.ndarray) -> tuple[list[dict], float]:
        a, b = pair
        if progress:
            progress(f"OT {a} ↔ {b}")
        ZA, ZB = space.Z[a][rows_idx], space.Z[b][rows_idx][perm]
        # interchangeable for this pair: identical in both models' features, or one orbit
        labels = {
            **shared,
            "_equivalent": equivalence_classes(space, rows_idx, orbits, models=pair),
        }
        chances = {f"chance{k}": chance_accuracy(v) for k, v in labels.items()}
        C = cost_matrix(ZA, ZB)  # one cost matrix for both plans and W2
        # one plan per unordered pair serves both directions (rows send A to B, columns B
        # to A); GW's objective is symmetric too
        plans = {
            "emd": transport_plan(ZA, ZB, method="emd", cost=C),
            "sinkhorn": transport_plan(
                ZA, ZB, method="sinkhorn", reg=0.05, num_iter_max=1000, cost=C
            ),
        }
        if gw and raw_from is None:
            plans["gw_raw"] = gromov_wasserstein_plan(
                space.E[a][rows_idx], space.E[b][rows_idx][perm]
            )
        if gw:
            plans["gw_z"] = gromov_wasserstein_plan(ZA, ZB)
        out = []
        for src, tgt, axis, src_of, tgt_of in ((a, b, 1, None, perm), (b, a, 0, perm, None)):
            row: dict[str, Any] = {"source": src, "target": tgt, "_hits": {}}
            for method, plan in plans.items():
                sent = np.argmax(plan, axis=axis)
                for suffix, lab in labels.items():
                    src_lab = lab if src_of is None else lab[src_of]
                    tgt_lab = lab if tgt_of is None else lab[tgt_of]
                    hit = tgt_lab[sent] == src_lab
                    row[f"{method}{suffix}_accuracy"] = float(hit.mean())
                    # per sampled atom, in the sample's order, for intervals over structures
                    ordered = hit if src_of is None else np.empty_like(hit)
                    if src_of is not None:
                        ordered[src_of] = hit
                    row["_hits"][f"{method}{suffix}"] = ordered
            row.update(chances)
            row["n_atoms"] = len(rows_idx)
            row["gw_atoms"] = len(rows_idx) if gw else 0
            out.append(row)
        return out, w2_distance(ZA, ZB, plan=plans["emd"], cost=C)

    # POT's network simplex releases the GIL: pairs run side by side, one BLAS thread each
    n_threads = max(1, int(n_threads or os.cpu_count() or 1))
    with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(n_threads) as pool:
        results = list(pool.map(one_pair, pairs, draws))
    by_pair: dict[tuple[str, str], dict] = {}
    w2 = pd.DataFrame(0.0, index=models, columns=models)
    for (a, b), (directions, distance) in zip(pairs, results, strict=True):
        w2.loc[a, b] = w2.loc[b, a] = distance
        by_pair.update({(r["source"], r["target"]): r for r in directions})
    out = [by_pair[a, b] for a in models for b in models if a != b]
    hits = {(r["source"], r["target"], k): v for r in out for k, v in r.pop("_hits").items()}
    table = pd.DataFrame(out)
    table.attrs["rows"] = rows_idx.tolist()  # lists: pandas compares attrs of frames
    table.attrs["hits"] = {k: v.tolist() for k, v in hits.items()}
    if raw_from is not None and gw:
        table = _with_raw_gw(table, raw_from)
    return table, w2


def _with_raw_gw(table: pd.DataFrame, raw_from: pd.DataFrame) -> pd.DataFrame:
    """``table`` with the raw-space GW columns and per-atom hits of ``raw_from`` (same atoms)."""
    columns = [c for c in raw_from if c.startswith("gw_raw")]
    merged = table.merge(raw_from[["source", "target", *columns]], on=["source", "target"])
    merged.attrs = dict(table.attrs)
    pairs = set(zip(table.source, table.target, strict=True))
    merged.attrs["hits"] = {
        **table.attrs["hits"],
        **{
            key: hit
            for key, hit in raw_from.attrs["hits"].items()
            if key[2].startswith("gw_raw") and key[:2] in pairs
        },
    }
    return merged
