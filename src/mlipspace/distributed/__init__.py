"""Scale-out on Dask: featurization, measures and cumulants over millions of atoms.

``scheduler`` arguments (``--scheduler`` on the command line) take ``"local:N"`` (a local
cluster of ``N`` worker processes), the address of a running Dask scheduler (a SLURM job
started with dask-jobqueue, a cloud cluster, ...), a :class:`distributed.Client`, or
``None`` (no Dask). See ``docs/scale.md``.

* :func:`featurize_distributed`: tasks over chunks of structures, all writing into one
  store (local, a shared file system, or any fsspec URL), resumable and idempotent.
* :func:`gfre`, :func:`gfrd`: tree reductions of sufficient statistics over row blocks;
  :func:`lfre`: sharded exact neighbour search, local fits per chunk of test rows.
* :func:`cumulants`, :func:`store_cumulants`: per-structure moments reduced over blocks.
* :func:`store_arrays`: a store's features as aligned, lazily read dask arrays.
* :class:`DaskEngine`: the measures of :func:`mlipspace.compare` on a cluster.
"""

from . import measures
from .arrays import StoreArrays, as_dask, store_arrays
from .client import SchedulerError, close_clients, get_client, tree_reduce
from .featurize import featurize_distributed
from .measures import *  # noqa: F403  (the measures and their engine: measures.__all__)
from .pooled import cumulants, store_cumulants

__all__ = [
    *measures.__all__,
    "SchedulerError",
    "StoreArrays",
    "as_dask",
    "close_clients",
    "cumulants",
    "featurize_distributed",
    "get_client",
    "store_arrays",
    "store_cumulants",
    "tree_reduce",
]
