"""Train/test splits: scikit-matter's split of the reconstruction measures
(:func:`resolve_split`) and the stratified split of atoms of the comparison protocol of
Chorna et al. (2025) (:func:`stratified_split`)."""

from __future__ import annotations

import numpy as np

from ..errors import MetricInputError, random_state_or_seed
from .ridge import SKMATTER_RANDOM_STATE
from .validation import check_index

__all__ = ["resolve_split", "stratified_split"]


def resolve_split(
    n: int, train_idx=None, test_idx=None, measure: str = "the reconstruction measure"
) -> tuple[np.ndarray, np.ndarray]:
    """Train and test rows exactly as scikit-matter chooses them.

    Parameters
    ----------
    n : int
        Number of rows.
    train_idx, test_idx : array of int or bool, optional
        With neither, a shuffled 50/50 split (``random_state=0x5F3759DF``); with one, the
        other is its complement (sorted).
    measure : str
        How the errors name the measure (``"GFRE"``) when the rows are too few.

    Returns
    -------
    train_idx, test_idx : ndarray of int
    """
    if train_idx is None and test_idx is None:
        from sklearn.model_selection import train_test_split

        if n < 4:
            raise MetricInputError(
                f"{measure} needs at least 4 samples for the default 50/50 split, got {n}"
            )
        train, test = train_test_split(
            np.arange(n),
            test_size=0.5,
            train_size=0.5,
            random_state=SKMATTER_RANDOM_STATE,
            shuffle=True,
        )
    elif train_idx is None:
        test = check_index(test_idx, n, "test_idx")
        train = np.setdiff1d(np.arange(n), test)
    elif test_idx is None:
        train = check_index(train_idx, n, "train_idx")
        test = np.setdiff1d(np.arange(n), train)
    else:
        train = check_index(train_idx, n, "train_idx")
        test = check_index(test_idx, n, "test_idx")
    if len(train) < 2:
        raise MetricInputError(
            f"{measure} needs at least 2 training samples, got {len(train)} of {n}"
        )
    if len(test) < 1:
        raise MetricInputError(f"{measure}: the test set is empty ({len(train)} training of {n})")
    return np.asarray(train), np.asarray(test)


def stratified_split(
    subsets, n_test: int = 1000, random_state: int = 0, seed: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Split rows into train and test, the test rows stratified by subset label.

    ``sklearn.model_selection.train_test_split(arange(n), test_size=n_test,
    random_state=random_state, stratify=subsets)``: each subset is represented in the test set in proportion to its size;
    every row not in the test set is a training row. Subsets with a single row cannot be
    stratified and are pooled into one stratum.

    Parameters
    ----------
    subsets : array-like of shape (n,)
        Subset label of every row (e.g. :attr:`mlipspace.AtomFeatures.subset`).
    n_test : int, default=1000
        Number of test rows; must leave at least 2 training rows.
    random_state : int, default=0
        Random state of the split.
    seed : int, optional
        Deprecated name of ``random_state``.

    Returns
    -------
    train_idx, test_idx : ndarray of int, sorted
    """
    from sklearn.model_selection import train_test_split

    random_state = random_state_or_seed(random_state, seed, "stratified_split")
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
            np.arange(n),
            test_size=n_test,
            random_state=random_state,
            shuffle=True,
            stratify=stratify,
        )
    except ValueError:  # a pooled stratum still too small: fall back to a plain shuffled split
        train, test = train_test_split(
            np.arange(n), test_size=n_test, random_state=random_state, shuffle=True
        )
    return np.sort(train), np.sort(test)
