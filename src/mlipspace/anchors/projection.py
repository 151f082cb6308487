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

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data
except ImportError:  # pragma: no cover - older scikit-learn

    def validate_data(estimator, X, reset=True, **kwargs):
        return estimator._validate_data(X, reset=reset, **kwargs)


__all__ = ["RelativeProjector", "unit_rows"]


def unit_rows(X: np.ndarray) -> np.ndarray:
    """Rows scaled to unit Euclidean norm; all-zero rows stay zero."""
    norm = np.linalg.norm(X, axis=1, keepdims=True)
    return np.divide(X, norm, out=np.zeros_like(X, dtype=np.float64), where=norm > 0)


class RelativeProjector(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Cosine similarity of every embedding to a fixed set of anchor embeddings.

    Parameters
    ----------
    center : bool, default=False
        If True, the mean of the anchor embeddings (learned in :meth:`fit`) is subtracted
        from the anchors and from every embedding before the cosine. This removes a
        dominant common direction (anisotropic embeddings otherwise give cosines piled up
        near 1), at the price of invariance to translations only, not to rescaling about
        another origin. With False (the default, as in relreps and the paper's formula)
        ``z`` is invariant to orthogonal maps and to positive rescaling of the embeddings,
        not to translations.

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

    def fit(self, X: np.ndarray, y: None = None) -> RelativeProjector:
        """Store the anchor embeddings ``X`` (n_anchors × n_features)."""
        A = validate_data(self, X, dtype=np.float64)
        self.mean_ = A.mean(axis=0) if self.center else np.zeros(A.shape[1])
        self.anchors_ = unit_rows(A - self.mean_)
        self._n_features_out = A.shape[0]
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        """``Z[i, k] = cos(x_i − mean_, anchor_k − mean_)``, shape (n_samples, n_anchors)."""
        check_is_fitted(self, "anchors_")
        E = validate_data(self, X, dtype=np.float64, reset=False)
        return unit_rows(E - self.mean_) @ self.anchors_.T
