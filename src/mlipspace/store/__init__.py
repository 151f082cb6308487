"""The crash-safe Zarr feature store."""

from .zarr_store import FeatureStore, open_store

__all__ = ["FeatureStore", "open_store"]
