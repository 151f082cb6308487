"""Relative (anchor) projection: every atom described by its cosine to K anchor atoms.

With one model's embeddings ``E`` (N × d) and that same model's embeddings ``A`` (K × d)
of the K anchor sites, ``z_ik = cos(e_i, a_k)`` (Moschella et al. 2023, the relative
representation; Li & Walsh 2025 §3). Every model projected on the same anchor *sites*
lands in the same ``R^K``: column ``k`` means "similarity to anchor site k".
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from ..errors import MetricInputError

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data
except ImportError:  # pragma: no cover - older scikit-learn

    def validate_data(estimator, X, reset=True, **kwargs):
        return estimator._validate_data(X, reset=reset, **kwargs)


__all__ = ["CENTERS", "RelativeProjector", "center_mode", "standardize_columns", "unit_rows"]

#: where the origin of the cosine sits: none (raw vectors), the anchors' mean, or the mean
#: of every embedding the model gives (``fit(..., population=E)``)
CENTERS = ("none", "anchors", "data")


def unit_rows(X: np.ndarray) -> np.ndarray:
    """Rows scaled to unit Euclidean norm; all-zero rows stay zero."""
    norm = np.linalg.norm(X, axis=1, keepdims=True)
    return np.divide(X, norm, out=np.zeros_like(X, dtype=np.float64), where=norm > 0)


def center_mode(center: bool | str) -> str:
    """``center`` as one of :data:`CENTERS` (``True`` is ``"anchors"``, ``False`` ``"none"``)."""
    if isinstance(center, bool | np.bool_):
        return "anchors" if center else "none"
    if center not in CENTERS:
        raise MetricInputError(f"center must be one of {CENTERS} (or a bool), got {center!r}")
    return str(center)


def standardize_columns(Z: np.ndarray) -> np.ndarray:
    """Every column of ``Z`` shifted to mean 0 and scaled to unit standard deviation.

    A label-free, per-model standardisation of projected coordinates: each model uses only
    its own statistics, so the result stays zero-shot across models. Constant columns are
    only centred.
    """
    Z = np.asarray(Z, dtype=np.float64)
    mean, std = Z.mean(axis=0), Z.std(axis=0)
    return (Z - mean) / np.where(std > 0, std, 1.0)


class RelativeProjector(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Cosine similarity of every embedding to a fixed set of anchor embeddings.

    Parameters
    ----------
    center : {"none", "anchors", "data"} or bool, default=False
        The origin of the cosines. ``"none"`` (or False; relreps and the paper's formula):
        raw vectors, so ``z`` is invariant to orthogonal maps and positive rescaling of the
        embeddings but not to translations. ``"anchors"`` (or True): the mean of the anchor
        embeddings is subtracted from anchors and embeddings. ``"data"``: the mean of every
        embedding of the model, passed to :meth:`fit` as ``population``. Both centrings
        remove the dominant common direction (anisotropic embeddings otherwise give cosines
        piled up near 1) and make ``z`` invariant to translations.

    Attributes
    ----------
    anchors_ : ndarray of shape (n_anchors, n_features)
        The (centred, if asked) anchors scaled to unit norm.
    mean_ : ndarray of shape (n_features,)
        The subtracted mean (zeros when ``center=False``).
    n_features_in_ : int
        Embedding dimension.

    Notes
    -----
    An embedding (or anchor) of zero norm has cosine 0 with everything. Fit the projector
    of each model on that model's own embeddings of the same anchor sites, then
    ``transform`` that model's embeddings.

    Examples
    --------
    >>> import numpy as np
    >>> E = np.random.default_rng(0).normal(size=(100, 8))
    >>> Z = RelativeProjector().fit(E[:10]).transform(E)
    >>> Z.shape
    (100, 10)
    """

    def __init__(self, center: bool = False):
        self.center = center

    def fit(
        self, X: np.ndarray, y: None = None, population: np.ndarray | None = None
    ) -> RelativeProjector:
        """Store the anchor embeddings ``X`` (n_anchors × n_features).

        ``population`` (n_samples × n_features): every embedding of the model, whose mean is
        the origin when ``center="data"``; required then, ignored otherwise.
        """
        A = validate_data(self, X, dtype=np.float64)
        mode = center_mode(self.center)
        if mode == "data":
            if population is None:
                raise MetricInputError('center="data" needs fit(anchors, population=embeddings)')
            P = np.asarray(population, dtype=np.float64)
            if P.ndim != 2 or P.shape[1] != A.shape[1] or len(P) == 0:
                raise MetricInputError(
                    f"population must have shape (n, {A.shape[1]}), got {P.shape}"
                )
            self.mean_ = P.mean(axis=0)
        else:
            self.mean_ = A.mean(axis=0) if mode == "anchors" else np.zeros(A.shape[1])
        self.anchors_ = unit_rows(A - self.mean_)
        self._n_features_out = A.shape[0]
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        """``Z[i, k] = cos(x_i − mean_, anchor_k − mean_)``, shape (n_samples, n_anchors)."""
        check_is_fitted(self, "anchors_")
        E = validate_data(self, X, dtype=np.float64, reset=False)
        return unit_rows(E - self.mean_) @ self.anchors_.T
