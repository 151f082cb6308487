"""Train/test splits of atoms for the comparison protocol of Chorna et al. (2025)."""

from __future__ import annotations

import numpy as np

from ..errors import MetricInputError

__all__ = ["stratified_split"]


def stratified_split(subsets, n_test: int = 1000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Split rows into train and test, the test rows stratified by subset label.

    ``sklearn.model_selection.train_test_split(arange(n), test_size=n_test, random_state=seed,
    stratify=subsets)``: each subset is represented in the test set in proportion to its size;
    every row not in the test set is a training row. Subsets with a single row cannot be
    stratified and are pooled into one stratum.

    Parameters
    ----------
    subsets : array-like of shape (n,)
        Subset label of every row (e.g. :attr:`mlipspace.AtomFeatures.subset`).
    n_test : int, default=1000
        Number of test rows; must leave at least 2 training rows.
    seed : int, default=0
        Random state of the split.

    Returns
    -------
    train_idx, test_idx : ndarray of int, sorted
    """
    from sklearn.model_selection import train_test_split

    labels = np.asarray(subsets).astype(str)
    n = len(labels)
    n_test = int(n_test)
    if n_test < 1 or n - n_test < 2:
        raise MetricInputError(
            f"cannot take {n_test} test rows out of {n} (need >= 2 training rows)"
        )
    values, counts = np.unique(labels, return_counts=True)
    singletons = set(values[counts < 2])
    if singletons:
        labels = np.where(np.isin(labels, list(singletons)), "\x00pooled", labels)
    strata = np.unique(labels)
    stratify = (
        labels if len(strata) > 1 and n_test >= len(strata) and n - n_test >= len(strata) else None
    )
    try:
        train, test = train_test_split(
            np.arange(n), test_size=n_test, random_state=seed, shuffle=True, stratify=stratify
        )
    except ValueError:  # a pooled stratum still too small: fall back to a plain shuffled split
        train, test = train_test_split(
            np.arange(n), test_size=n_test, random_state=seed, shuffle=True
        )
    return np.sort(train), np.sort(test)
