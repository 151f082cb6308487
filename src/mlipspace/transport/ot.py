"""Optimal transport between point clouds of atoms, with POT.

Two models' atoms projected on the same anchors live in one space ``R^K``, so they can be
matched directly by optimal transport (Li & Walsh 2025, §5). With uniform weights
``a = 1/n``, ``b = 1/m`` and cost ``C_ij = c(z^A_i, z^B_j)``:

* exact OT (earth mover's distance): ``T = argmin_{T ∈ U(a, b)} ⟨T, C⟩`` (network simplex,
  ``ot.emd``);
* entropic OT (Sinkhorn): ``argmin ⟨T, C⟩ − ε H(T)`` with ``C`` divided by its median
  first, so ``ε`` is relative to a typical cost (``ot.sinkhorn``, log-domain);
* ``W2(A, B) = sqrt(min_T ⟨T, ‖z^A_i − z^B_j‖²⟩)``;
* Gromov–Wasserstein on the raw spaces (which need not share a dimension) matches the
  intra-space distance matrices instead: ``min_T Σ (D^A_ik − D^B_jl)² T_ij T_kl``
  (``ot.gromov.gromov_wasserstein``), the baseline the common space is compared with.

A plan is read as an assignment ``assignment[i] = argmax_j T_ij``; for exact OT between
sets of equal size the optimal plan is a permutation matrix / n, so the assignment is a
permutation.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from ..errors import MetricInputError

__all__ = [
    "METRICS",
    "chance_accuracy",
    "cost_matrix",
    "gromov_wasserstein_match",
    "gromov_wasserstein_plan",
    "label_accuracy",
    "match",
    "matching_accuracy",
    "transport_plan",
    "w2_distance",
    "w2_matrix",
]

METRICS = ("sqeuclidean", "cosine")
SOLVERS = ("emd", "sinkhorn")
SINKHORN_TOL = 1e-6  # stop: l2 norm of the column-marginal error (total mass 1)
SINKHORN_WARN = 1e-4  # warn when the iterations end with a larger marginal error


def _check_points(Z: Any, name: str) -> np.ndarray:
    Z = np.asarray(Z)
    if Z.ndim != 2 or Z.shape[0] == 0 or Z.shape[1] == 0:
        raise MetricInputError(f"{name} must be a non-empty 2-D array, got shape {Z.shape}")
    if not np.issubdtype(Z.dtype, np.number) or not np.isfinite(Z).all():
        raise MetricInputError(f"{name} must hold finite numbers")
    return np.ascontiguousarray(Z, dtype=np.float64)


def _check_pair(ZA: Any, ZB: Any) -> tuple[np.ndarray, np.ndarray]:
    ZA, ZB = _check_points(ZA, "ZA"), _check_points(ZB, "ZB")
    if ZA.shape[1] != ZB.shape[1]:
        raise MetricInputError(
            f"ZA has {ZA.shape[1]} columns and ZB {ZB.shape[1]}: project both on the same anchors "
            "(or use gromov_wasserstein_match for spaces of different dimension)"
        )
    return ZA, ZB


def cost_matrix(ZA: np.ndarray, ZB: np.ndarray, metric: str = "sqeuclidean") -> np.ndarray:
    """``C_ij = ‖a_i − b_j‖²`` (``"sqeuclidean"``) or ``1 − cos(a_i, b_j)`` (``"cosine"``)."""
    from scipy.spatial.distance import cdist

    ZA, ZB = _check_pair(ZA, ZB)
    if metric == "sqeuclidean":  # cdist, not the |a|²+|b|²-2ab expansion: exact zeros
        C = cdist(ZA, ZB, metric="sqeuclidean")
    elif metric == "cosine":
        from ..anchors.projection import unit_rows

        C = 1.0 - unit_rows(ZA) @ unit_rows(ZB).T
    else:
        raise MetricInputError(f"unknown OT cost metric {metric!r}; choose one of {METRICS}")
    return np.ascontiguousarray(np.maximum(C, 0.0))


def _emd(C: np.ndarray, num_iter_max: int | None) -> np.ndarray:
    import ot

    n, m = C.shape
    a, b = np.full(n, 1.0 / n), np.full(m, 1.0 / m)
    iters = num_iter_max if num_iter_max is not None else max(100_000, 50 * n * m)
    T, log = ot.emd(a, b, C, numItermax=iters, log=True)
    if log.get("warning"):
        raise MetricInputError(f"exact OT did not converge ({log['warning']}); raise num_iter_max")
    return T


def _sinkhorn(C: np.ndarray, reg: float, num_iter_max: int | None) -> np.ndarray:
    """Entropic plan on the median-normalised cost; Sinkhorn–Knopp, log domain if needed."""
    import ot

    if not reg > 0:
        raise MetricInputError(f"Sinkhorn needs reg > 0, got {reg}")
    n, m = C.shape
    scale = np.median(C)
    if not scale > 0:
        scale = C.max() if C.max() > 0 else 1.0
    C = C / scale
    # exp(-C/reg) underflows past ~745: switch to the (much slower) log-domain iterations
    solver = "sinkhorn" if C.max() / reg < 500 else "sinkhorn_log"
    iters = num_iter_max or 5000
    T, log = ot.sinkhorn(
        np.full(n, 1.0 / n), np.full(m, 1.0 / m), C, reg, method=solver, numItermax=iters,
        stopThr=SINKHORN_TOL, log=True, warn=False,
    )  # fmt: skip
    if log["err"] and log["err"][-1] > SINKHORN_WARN:
        warnings.warn(
            f"Sinkhorn (reg={reg}) stopped after {iters} iterations with marginal error "
            f"{log['err'][-1]:.2g}; raise reg or num_iter_max",
            RuntimeWarning,
            stacklevel=3,
        )
    return T


def transport_plan(
    ZA: np.ndarray,
    ZB: np.ndarray,
    method: str = "emd",
    reg: float = 0.05,
    metric: str = "sqeuclidean",
    num_iter_max: int | None = None,
    cost: np.ndarray | None = None,
) -> np.ndarray:
    """The OT plan ``T`` (n × m, rows summing to 1/n) between two uniform point clouds.

    Parameters
    ----------
    ZA, ZB : arrays of shape (n, K) and (m, K)
        Points in one common space.
    method : {"emd", "sinkhorn"}, default="emd"
        Exact OT, or entropic OT in the log domain.
    reg : float, default=0.05
        Sinkhorn only: entropic regularisation, relative to the median cost. Smaller
        values approach exact OT but need many more iterations; a ``RuntimeWarning`` says
        when the iterations end with a marginal error above 1e-4 (they stop at 1e-6).
    metric : {"sqeuclidean", "cosine"}, default="sqeuclidean"
        Ground cost (see :func:`cost_matrix`).
    num_iter_max : int, optional
        Iteration cap (exact: network-simplex pivots, default ``max(1e5, 50·n·m)``;
        Sinkhorn: default 5000).
    cost : array of shape (n, m), optional
        ``cost_matrix(ZA, ZB, metric)`` when already computed (several plans of one pair).
    """

    C = cost_matrix(ZA, ZB, metric) if cost is None else cost
    if method == "emd":
        return _emd(C, num_iter_max)
    if method == "sinkhorn":
        return _sinkhorn(C, reg, num_iter_max)
    raise MetricInputError(f"unknown OT method {method!r}; choose one of {SOLVERS}")


def match(ZA: np.ndarray, ZB: np.ndarray, method: str = "emd", **options: Any) -> np.ndarray:
    """Send every row of ``ZA`` to a row of ``ZB`` by optimal transport.

    ``method`` and the keyword ``options`` (``reg``, ``metric``, ``num_iter_max``) are those
    of :func:`transport_plan`, whose plan this reads.

    Returns
    -------
    ndarray of int, shape (n,)
        ``assignment[i]`` is the row of ``ZB`` receiving most of row ``i``'s mass; for
        ``"emd"`` with ``n == m`` it is a permutation.
    """
    return np.argmax(transport_plan(ZA, ZB, method, **options), axis=1)


def matching_accuracy(assignment: np.ndarray, true: np.ndarray | None = None) -> float:
    """Fraction of rows sent to their true partner.

    Parameters
    ----------
    assignment : array of int, shape (n,)
        From :func:`match`.
    true : array of int, shape (n,), optional
        The correct row of ``ZB`` for every row of ``ZA``; by default ``i`` (the same
        atoms in the same order).
    """
    assignment = np.asarray(assignment)
    if assignment.ndim != 1 or len(assignment) == 0:
        raise MetricInputError(f"assignment must be a non-empty 1-D array, got {assignment.shape}")
    true = np.arange(len(assignment)) if true is None else np.asarray(true)
    if true.shape != assignment.shape:
        raise MetricInputError(f"true has shape {true.shape}, assignment {assignment.shape}")
    return float(np.mean(assignment == true))


def label_accuracy(
    assignment: np.ndarray, source_labels: np.ndarray, target_labels: np.ndarray
) -> float:
    """Fraction of rows sent to a row of the same label (``target_labels[assignment[i]] ==
    source_labels[i]``), e.g. the same element or the same equivalence class of atoms."""
    assignment = np.asarray(assignment)
    source_labels, target_labels = np.asarray(source_labels), np.asarray(target_labels)
    if assignment.ndim != 1 or len(assignment) != len(source_labels):
        raise MetricInputError(
            f"assignment has shape {assignment.shape}, source labels {source_labels.shape}"
        )
    return float(np.mean(target_labels[assignment] == source_labels))


def chance_accuracy(labels: np.ndarray) -> float:
    """Expected :func:`label_accuracy` of a uniformly random permutation of the same atoms.

    Row ``i`` lands on one of the ``n`` atoms at random, so it is right with probability
    ``n_{label(i)} / n``; the mean over rows is ``Σ_c n_c² / n²`` (``1/n`` when every
    label is unique, i.e. for exact-atom accuracy).
    """
    _, counts = np.unique(np.asarray(labels), return_counts=True)
    n = counts.sum()
    if n == 0:
        raise MetricInputError("chance_accuracy needs at least one label")
    return float(np.sum(counts.astype(np.float64) ** 2) / n**2)


def w2_distance(
    ZA: np.ndarray,
    ZB: np.ndarray,
    num_iter_max: int | None = None,
    plan: np.ndarray | None = None,
    cost: np.ndarray | None = None,
) -> float:
    """2-Wasserstein distance between the uniform empirical measures of two point clouds.

    ``plan`` and ``cost``: the exact (``"emd"``) :func:`transport_plan` of ``ZA`` and ``ZB`` and
    their squared-Euclidean :func:`cost_matrix`, when already computed.
    """
    C = cost_matrix(ZA, ZB, "sqeuclidean") if cost is None else cost
    T = _emd(C, num_iter_max) if plan is None else plan
    return float(np.sqrt(max(np.sum(T * C), 0.0)))


def w2_matrix(spaces: Mapping[str, np.ndarray], num_iter_max: int | None = None) -> pd.DataFrame:
    """W2 distance between every pair of point clouds (symmetric, zero diagonal).

    Parameters
    ----------
    spaces : mapping of name to array of shape (n_name, K)
        e.g. each model's projected atoms.
    """
    names = list(spaces)
    if len(names) < 2:
        raise MetricInputError("w2_matrix needs at least two point clouds")
    D = np.zeros((len(names), len(names)))
    for i, a in enumerate(names):
        for j in range(i + 1, len(names)):
            D[i, j] = D[j, i] = w2_distance(spaces[a], spaces[names[j]], num_iter_max)
    return pd.DataFrame(D, index=names, columns=names)


def gromov_wasserstein_plan(
    XA: np.ndarray, XB: np.ndarray, metric: str = "euclidean", max_iter: int = 10_000
) -> np.ndarray:
    """Gromov–Wasserstein plan between two spaces of possibly different dimension.

    The intra-space distance matrices (``metric`` as in ``ot.dist``) are each divided by
    their maximum, then compared with the square loss; the plan comes from
    ``ot.gromov.gromov_wasserstein`` (conditional gradient from the product plan, so a
    local optimum). The objective is symmetric, so the transposed plan serves the reverse
    direction.
    """
    import ot

    XA, XB = _check_points(XA, "XA"), _check_points(XB, "XB")
    CA, CB = ot.dist(XA, XA, metric=metric), ot.dist(XB, XB, metric=metric)
    CA /= CA.max() if CA.max() > 0 else 1.0
    CB /= CB.max() if CB.max() > 0 else 1.0
    p, q = np.full(len(XA), 1.0 / len(XA)), np.full(len(XB), 1.0 / len(XB))
    return ot.gromov.gromov_wasserstein(CA, CB, p, q, loss_fun="square_loss", max_iter=max_iter)


def gromov_wasserstein_match(
    XA: np.ndarray, XB: np.ndarray, metric: str = "euclidean", max_iter: int = 10_000
) -> np.ndarray:
    """Match rows of two spaces of possibly different dimension by Gromov–Wasserstein.

    ``assignment[i] = argmax_j T_ij`` of :func:`gromov_wasserstein_plan`.
    """
    return np.argmax(gromov_wasserstein_plan(XA, XB, metric, max_iter), axis=1)
