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
from ..metrics import similarity as sim
from ..transport import cost_matrix, matching_accuracy, transport_plan, w2_distance
from .space import CommonSpace, sample_rows

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
) -> pd.DataFrame:
    """Agreement of every ordered model pair, after and before projection.

    Computed on the same ``n_atoms`` random atoms for every pair. Columns: ``source, target,
    cosine_mean, cosine_median``, retrieval of A's atoms among B's (``median_rank, top1,
    top10, top1_class, top1_element``), the same for the raw Procrustes baseline (``raw_*``),
    and ``cka``/``mknn`` on projected (``z_``) and raw (``raw_``) features.
    """
    rows_idx = sample_rows(len(space.atoms), n_atoms, random_state)
    classes = space.near_duplicate_class()[rows_idx]
    numbers = space.atoms.numbers[rows_idx]
    anchor_in_sample = space.anchor_rows
    rows = []
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
            RA, RB = procrustes_align(space.E[a], space.E[b], anchor_in_sample, rows_idx)
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
            rows.append(row)
    df = pd.DataFrame(rows)
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
    return df


def transport_agreement(
    space: CommonSpace,
    n_atoms: int = 1000,
    gw_atoms: int = 200,
    random_state: int = 0,
    progress: Callable[[str], None] | None = None,
    n_threads: int | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Optimal transport between models in the common space, with Gromov–Wasserstein on raw spaces.

    Pairs of models run in ``n_threads`` threads (default: one per core); the results do not
    depend on it.

    Returns
    -------
    pairs : DataFrame
        Per ordered pair: EMD and Sinkhorn matching accuracy (fraction of atoms sent to
        themselves) and same-element accuracy in the common space; GW matching accuracy on the
        raw spaces (``gw_atoms`` atoms) as the baseline.
    w2 : DataFrame
        Symmetric W2 distance matrix between the models' point clouds in the common space.
    """
    from ..transport import gromov_wasserstein_match

    rows_idx = sample_rows(len(space.atoms), n_atoms, random_state)
    gw_idx = sample_rows(len(space.atoms), gw_atoms, random_state + 1)
    numbers = space.atoms.numbers[rows_idx]
    rng = np.random.default_rng(random_state)
    models = list(space.models)
    pairs = [(a, b) for i, a in enumerate(models) for b in models[i + 1 :]]
    # every random draw first, in pair order, so that the pairs can run in any order: B is
    # shuffled so that an identity assignment cannot arise from row order, and the raw GW
    # targets of both directions are shuffled too
    draws = [
        (rng.permutation(len(rows_idx)), rng.permutation(len(gw_idx)), rng.permutation(len(gw_idx)))
        for _ in pairs
    ]

    def one_pair(pair: tuple[str, str], perms: tuple[np.ndarray, ...]) -> tuple[list[dict], float]:
        (a, b), (perm, *gw_perms) = pair, perms
        if progress:
            progress(f"OT {a} ↔ {b}")
        ZA, ZB = space.Z[a][rows_idx], space.Z[b][rows_idx][perm]
        C = cost_matrix(ZA, ZB)  # one cost matrix for both plans and W2
        # one plan per unordered pair serves both directions (rows send A to B, columns B to A)
        emd = transport_plan(ZA, ZB, method="emd", cost=C)
        sinkhorn = transport_plan(ZA, ZB, method="sinkhorn", reg=0.05, num_iter_max=1000, cost=C)
        out = []
        for (src, tgt, axis, true, src_numbers, tgt_numbers), gw_perm in zip(
            (
                (a, b, 1, np.argsort(perm), numbers, numbers[perm]),
                (b, a, 0, perm, numbers[perm], numbers),
            ),
            gw_perms,
            strict=True,
        ):
            sent = np.argmax(emd, axis=axis)
            gw = gromov_wasserstein_match(space.E[src][gw_idx], space.E[tgt][gw_idx][gw_perm])
            out.append(
                {
                    "source": src,
                    "target": tgt,
                    "emd_accuracy": matching_accuracy(sent, true),
                    "emd_element_accuracy": float(np.mean(tgt_numbers[sent] == src_numbers)),
                    "sinkhorn_accuracy": matching_accuracy(np.argmax(sinkhorn, axis=axis), true),
                    "gw_raw_accuracy": matching_accuracy(gw, np.argsort(gw_perm)),
                    "n_atoms": len(rows_idx),
                    "gw_atoms": len(gw_idx),
                }
            )
        return out, w2_distance(ZA, ZB, plan=emd, cost=C)

    # POT's network simplex releases the GIL: pairs run side by side, one BLAS thread each
    n_threads = max(1, int(n_threads or os.cpu_count() or 1))
    with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(n_threads) as pool:
        results = list(pool.map(one_pair, pairs, draws))
    rows: dict[tuple[str, str], dict] = {}
    w2 = pd.DataFrame(0.0, index=models, columns=models)
    for (a, b), (directions, distance) in zip(pairs, results, strict=True):
        w2.loc[a, b] = w2.loc[b, a] = distance
        rows.update({(r["source"], r["target"]): r for r in directions})
    out = [rows[a, b] for a in models for b in models if a != b]
    return pd.DataFrame(out), w2
