"""Featurization as Dask tasks: chunks of structures, one store, any number of workers.

Every task featurizes one chunk of structures with one model through
:func:`mlipspace.featurize` (so a model of another family runs in its own environment, as a
worker process started by the Dask worker) and writes into the shared store. Tasks are
idempotent: structures already stored are skipped, and the store reads a structure written
twice once, so a task that Dask reruns after its worker died (or a whole run started again)
adds nothing twice. Structures travel inside the task (not as scattered data), so a lost
worker's tasks can always be rerun.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ase import Atoms

from ..errors import ModelError
from ..featurization import as_structures, featurize
from ..featurization.core import as_layers, interrupted_note
from ..store import open_store
from .client import get_client, n_workers

if TYPE_CHECKING:
    from ..store import FeatureStore

#: at most this many structures in one task
MAX_CHUNK = 256
#: aim for this many tasks per worker (load balance against task overhead)
TASKS_PER_WORKER = 4


def pending(
    store: FeatureStore, model: str, layers: Sequence[str], structures: Sequence[Atoms]
) -> list[Atoms]:
    """The structures not yet stored (nor recorded as skipped) for every layer of ``model``."""
    missing = set(store.missing(model, layers, [a.info["structure_hash"] for a in structures]))
    return [a for a in structures if a.info["structure_hash"] in missing]


def featurize_chunk(
    store_url: str,
    storage_options: dict[str, Any] | None,
    model: str,
    layers: Sequence[str],
    structures: Sequence[Atoms],
    options: dict[str, Any],
) -> int:
    """One task: featurize ``structures`` with ``model`` into the store; returns how many.

    Safe to run twice or concurrently with itself: stored structures are skipped.
    """
    store = open_store(
        store_url, mode="r+", storage_options=storage_options
    )  # never create one on a worker
    todo = pending(store, model, layers, structures)
    if not todo:
        return 0
    try:
        featurize(todo, model, layer=list(layers), store=store, **options)
    except ModelError:
        # every structure of the chunk skipped (on_unsupported="skip") is not a failure
        if pending(store, model, layers, todo):
            raise
    return len(todo)


def chunk_size_for(n_structures: int, workers: int) -> int:
    """Structures per task: about :data:`TASKS_PER_WORKER` tasks per worker, at most
    :data:`MAX_CHUNK`."""
    return max(1, min(MAX_CHUNK, math.ceil(n_structures / max(1, TASKS_PER_WORKER * workers))))


def featurize_distributed(
    structures: Any,
    models: str | Sequence[str],
    layer: str | Sequence[str] = "ll",
    store: Any = None,
    scheduler: Any = None,
    chunk_size: int | None = None,
    batch_size: int | None = None,
    device: str = "cpu",
    dtype: str = "float32",
    on_unsupported: str = "error",
    storage_options: dict[str, Any] | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, int]:
    """Featurize ``structures`` with every model on a Dask cluster, into one store.

    Parameters
    ----------
    structures
        Anything :func:`mlipspace.read_structures` accepts.
    models : str or list of str
        Registered model names.
    layer : str or list of str
        Layers to store.
    store : FeatureStore, path or URL
        The shared store; every worker must reach it at this path or URL (a shared file
        system, or object storage). Required.
    scheduler : str or distributed.Client
        ``"local:N"`` or a scheduler address (see :func:`get_client`); ``None`` runs the
        same tasks one after the other in this process.
    chunk_size : int, optional
        Structures per task (default: about four tasks per worker, at most 256).
    batch_size, device, dtype, on_unsupported
        As in :func:`mlipspace.featurize`.
    storage_options : dict, optional
        fsspec options of a store URL (sent to the workers with the tasks).
    progress : callable, optional
        Called as ``progress(model, done, total)`` in structures (the command line draws
        a bar per model with it).

    Returns
    -------
    dict
        Structures computed per model (0 when everything was stored already).
    """
    if store is None:
        raise ModelError("distributed featurization writes into a store: give store=")
    fs = open_store(store, storage_options=storage_options)
    names = [models] if isinstance(models, str) else list(models)
    layers = as_layers(layer)
    atoms = as_structures(structures)
    if not atoms:
        raise ModelError("no structures to featurize")
    client = get_client(scheduler)
    options = dict(batch_size=batch_size, device=device, dtype=dtype, on_unsupported=on_unsupported)
    done: dict[str, int] = {}
    try:
        _featurize_models(atoms, names, layers, fs, client, chunk_size, options, done, progress)
    except KeyboardInterrupt as exc:
        # the notes of one chunk would count that chunk only: say what the store holds
        exc.__notes__ = [interrupted_note(fs, name, layers, atoms) for name in names]
        raise
    return done


def _featurize_models(
    atoms: list[Atoms],
    names: list[str],
    layers: list[str],
    fs: FeatureStore,
    client: Any,
    chunk_size: int | None,
    options: dict[str, Any],
    done: dict[str, int],
    progress: Callable[[str, int, int], None] | None,
) -> None:
    storage_options = fs.storage_options or None
    for name in names:
        from ..models.registry import resolve

        resolve(name)  # an unknown name fails here, not in every task
        todo = pending(fs, name, layers, atoms)
        size = int(chunk_size or chunk_size_for(len(todo), n_workers(client)))
        chunks = [todo[i : i + size] for i in range(0, len(todo), size)]
        report = progress or (lambda model, done, total: None)
        total = len(atoms)
        finished = total - len(todo)
        report(name, finished, total)
        args = (fs.url, storage_options, name, layers)
        if client is None:
            for chunk in chunks:
                featurize_chunk(*args, chunk, options)
                finished += len(chunk)
                report(name, finished, total)
        else:
            from distributed import as_completed

            futures = {
                client.submit(featurize_chunk, *args, chunk, options, pure=False): len(chunk)
                for chunk in chunks
            }
            try:
                for future in as_completed(futures):
                    future.result()  # raises the task's error here
                    finished += futures[future]
                    report(name, finished, total)
            except BaseException:
                client.cancel(list(futures))
                raise
        done[name] = len(todo)
