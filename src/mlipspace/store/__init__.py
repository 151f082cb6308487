"""The crash-safe Zarr feature store."""

from .zarr_store import FeatureStore

__all__ = ["FeatureStore"]
