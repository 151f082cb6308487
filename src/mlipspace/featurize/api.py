"""``featurize``: per-atom features of structures from any registered model.

Models of families that share the main environment run in this process; the others
run as a worker inside their own environment (:mod:`mlipspace.featurize.worker`),
writing into the same store. Either way the result is an
:class:`~mlipspace.features.AtomFeatures` per layer.
"""

from __future__ import annotations

import contextlib
import functools
import os
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd
from ase import Atoms

from ..errors import ModelError
from ..features import AtomFeatures
from ..models.base import ModelAdapter

ProgressCallback = Callable[[int, int], None]
#: atoms computed before they are committed to the store as one segment
FLUSH_ATOMS = 4096
ON_UNSUPPORTED = ("error", "skip")


# -- inputs ------------------------------------------------------------------------


def as_structures(structures: Any) -> list[Atoms]:
    """Structures with ``info["structure_hash"]``, duplicates (equal hash) dropped.

    Lists of ``Atoms`` already read by :func:`mlipspace.read_structures` (they carry a
    hash) are kept as they are (hash refreshed if the atoms were changed since);
    anything else goes through :func:`mlipspace.read_structures`.
    """
    from ..structures import read_structures, structure_hash

    if isinstance(structures, Atoms):
        structures = [structures]
    prepared = isinstance(structures, Sequence) and not isinstance(structures, str | bytes)
    if not (
        prepared and all(isinstance(a, Atoms) and "structure_hash" in a.info for a in structures)
    ):
        return list(read_structures(structures))
    out, seen = [], set()
    for atoms in structures:
        key = structure_hash(atoms)
        if key != atoms.info["structure_hash"]:
            atoms = atoms.copy()
            atoms.info["structure_hash"] = key
        if key not in seen:
            seen.add(key)
            out.append(atoms)
    return out


def _as_layers(layer: str | Sequence[str]) -> list[str]:
    layers = [layer] if isinstance(layer, str) else list(layer)
    if not layers or not all(isinstance(name, str) and name for name in layers):
        raise ModelError(f"layer must be a layer name or a list of them, not {layer!r}")
    return list(dict.fromkeys(layers))


def _open_store(store: Any) -> Any:
    from ..store import FeatureStore

    return store if isinstance(store, FeatureStore) else FeatureStore(os.fspath(store))


@functools.lru_cache(maxsize=8)
def load_model(name: str, dtype: str = "float32", device: str = "cpu") -> ModelAdapter:
    """The adapter registered as ``name``, loaded once per (name, dtype, device)."""
    from ..models.registry import get_model

    return get_model(name, dtype=dtype, device=device)


# -- dispatch to a worker environment --------------------------------------------------


def _runs_in_process(family: str) -> bool:
    from .envs import runs_here

    return runs_here(family)


def _featurize_in_env(structures: list[Atoms], model: str, layers: list[str], **kwargs: Any) -> Any:
    """Run the featurizer of ``model`` in its family's environment (the only call site)."""
    from .worker import featurize_in_env

    return featurize_in_env(structures, model, layers, **kwargs)


# -- progress ----------------------------------------------------------------------


@contextlib.contextmanager
def progress_callback(progress: bool | ProgressCallback, label: str) -> Iterator[ProgressCallback]:
    """A ``(done, total)`` callback: the given one, a rich bar, or a no-op."""
    if callable(progress):
        yield progress
        return
    if not progress:
        yield lambda done, total: None
        return
    from ..cli.app import progress_bars

    with progress_bars() as bar:
        task = bar.add_task(label, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


# -- the in-process featurizer ---------------------------------------------------------


def _structure_table(structures: Sequence[Atoms]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "structure_hash": [a.info["structure_hash"] for a in structures],
            "n_atoms": [len(a) for a in structures],
            "subset": [str(a.info.get("subset", "default")) for a in structures],
            "source": [str(a.info.get("source", "")) for a in structures],
            "parent": [str(a.info.get("parent", "")) for a in structures],
        }
    )


def features_table(
    structures: Sequence[Atoms],
    arrays: Sequence[np.ndarray],
    model: str,
    layer: str,
    metadata: dict[str, Any] | None = None,
) -> AtomFeatures:
    """Build an :class:`AtomFeatures` from one feature array per structure."""
    if not structures:
        raise ModelError(f"{model}/{layer}: no structure left to return")
    counts = np.array([len(a) for a in structures])
    return AtomFeatures(
        X=np.concatenate(arrays),
        structure_hash=np.repeat([a.info["structure_hash"] for a in structures], counts),
        site=np.concatenate([np.arange(n) for n in counts]),
        numbers=np.concatenate([a.numbers for a in structures]).astype(np.int64),
        structure_index=np.repeat(np.arange(len(structures)), counts),
        structures=_structure_table(structures),
        model=model,
        layer=layer,
        metadata=dict(metadata or {}),
    )


def unsupported_elements(adapter: ModelAdapter, atoms: Atoms) -> list[int]:
    """Atomic numbers in ``atoms`` the adapter does not support (sorted)."""
    supported = adapter.supported_elements()
    if supported is None:
        return []
    return sorted({int(z) for z in atoms.numbers} - supported)


def _check_batch(
    adapter: ModelAdapter, batch: Sequence[Atoms], features: dict, layers: list[str]
) -> None:
    dims = adapter.layer_dims()
    for layer in layers:
        arrays = features.get(layer)
        if arrays is None or len(arrays) != len(batch):
            raise ModelError(f"{adapter.name} returned no {layer!r} features for every structure")
        for atoms, array in zip(batch, arrays, strict=True):
            if array.shape != (len(atoms), dims[layer]):
                raise ModelError(
                    f"{adapter.name}/{layer}: got shape {array.shape} for {atoms.info.get('source')}, "
                    f"expected {(len(atoms), dims[layer])}"
                )
            if not np.isfinite(array).all():
                raise ModelError(
                    f"{adapter.name}/{layer}: non-finite features for structure "
                    f"{atoms.info.get('source') or atoms.info['structure_hash']} "
                    f"({atoms.get_chemical_formula()})"
                )


def _compute_skipping(
    adapter: ModelAdapter, batch: Sequence[Atoms], layers: Sequence[str], store: Any
) -> tuple[list[Atoms], dict[str, list[np.ndarray]]]:
    """Features of the structures of ``batch`` the model can take; the others are skipped
    (and recorded in the store with the model's reason)."""
    kept: list[Atoms] = []
    features: dict[str, list[np.ndarray]] = {layer: [] for layer in layers}
    for atoms in batch:
        try:
            one = adapter.compute([atoms], layers)
        except ModelError as exc:
            if store is not None:
                for layer in layers:
                    store.write_skipped(adapter.name, layer, [atoms], [str(exc)])
            continue
        kept.append(atoms)
        for layer in layers:
            features[layer].extend(one[layer])
    return kept, features


def featurize_with(
    adapter: ModelAdapter,
    structures: Sequence[Atoms],
    layers: Sequence[str],
    store: Any = None,
    batch_size: int | None = None,
    on_unsupported: str = "error",
    on_progress: ProgressCallback | None = None,
) -> dict[str, AtomFeatures]:
    """Featurize prepared structures with a loaded adapter (see :func:`featurize`)."""
    from ..models._torch import check_layers, unsupported_error

    layers = check_layers(layers, adapter.layer_dims(), adapter.name)
    if on_unsupported not in ON_UNSUPPORTED:
        raise ModelError(f"on_unsupported must be 'error' or 'skip', not {on_unsupported!r}")
    batch_size = int(batch_size or adapter.preferred_batch_size())
    if batch_size < 1:
        raise ModelError(f"batch_size must be positive, not {batch_size}")
    name = adapter.name
    on_progress = on_progress or (lambda done, total: None)

    kept, skipped, reasons = [], [], []
    for index, atoms in enumerate(structures):
        bad = unsupported_elements(adapter, atoms)
        if not bad:
            kept.append(atoms)
        elif on_unsupported == "error":
            raise unsupported_error(name, atoms, index, bad[0])
        else:
            skipped.append(atoms)
            reasons.append(str(unsupported_error(name, atoms, index, bad[0])))
    if store is not None and skipped:
        for layer in layers:
            known = set(store.skipped(name, layer)["structure_hash"])
            new = [i for i, a in enumerate(skipped) if a.info["structure_hash"] not in known]
            if new:
                store.write_skipped(
                    name, layer, [skipped[i] for i in new], [reasons[i] for i in new]
                )

    todo = kept
    if store is not None:
        stored = {layer: store.hashes(name, layer) for layer in layers}
        todo = [a for a in kept if any(a.info["structure_hash"] not in stored[la] for la in layers)]
    total = len(structures)
    done = total - len(todo)
    on_progress(done, total)

    metadata = {**adapter.metadata(), "model": name}
    collected: dict[str, list[np.ndarray]] = {layer: [] for layer in layers}
    pending: list[Atoms] = []  # computed, not yet committed to the store
    failed: set[str] = set()  # hashes of structures the model could not take

    def flush() -> None:
        # one store segment per FLUSH_ATOMS atoms, not per forward pass: fewer, larger
        # segments read faster; a crash loses at most the work since the last flush
        for layer in layers:
            store.write(
                name, layer, pending, collected[layer], metadata={**metadata, "layer": layer}
            )
            collected[layer].clear()
        pending.clear()

    for start in range(0, len(todo), batch_size):
        batch = todo[start : start + batch_size]
        try:
            features = adapter.compute(batch, layers)
        except ModelError:
            if on_unsupported == "error":
                raise
            # a structure the model cannot take (e.g. an atom with no neighbour inside its
            # cutoff): redo the batch one structure at a time and record the failures
            taken, features = _compute_skipping(adapter, batch, layers, store)
            failed.update(a.info["structure_hash"] for a in batch if a not in taken)
            batch = taken
        _check_batch(adapter, batch, features, layers)
        for layer in layers:
            collected[layer].extend(features[layer])
        if store is not None:
            pending.extend(batch)
            if sum(len(a) for a in pending) >= FLUSH_ATOMS:
                flush()
        done += len(batch)
        on_progress(done, total)
    if store is not None and pending:
        flush()

    if store is not None:
        hashes = [a.info["structure_hash"] for a in kept if a.info["structure_hash"] not in failed]
        if not hashes:
            raise ModelError(f"{name}: every structure was skipped")
        return {layer: store.read(name, layer, structures=hashes) for layer in layers}
    taken = [a for a in kept if a.info["structure_hash"] not in failed]
    if not taken:
        raise ModelError(f"{name}: every structure was skipped")
    return {
        layer: features_table(taken, collected[layer], name, layer, {**metadata, "layer": layer})
        for layer in layers
    }


def featurize(
    structures: Any,
    model: str | ModelAdapter,
    layer: str | Sequence[str] = "ll",
    store: Any = None,
    batch_size: int | None = None,
    device: str = "cpu",
    dtype: str = "float32",
    on_unsupported: str = "error",
    progress: bool | ProgressCallback = True,
) -> AtomFeatures | dict[str, AtomFeatures]:
    """Per-atom features of ``structures`` from ``model``.

    Parameters
    ----------
    structures
        Anything :func:`mlipspace.read_structures` accepts: ``ase.Atoms``, lists of them,
        pymatgen objects, paths, globs, folders, ASE databases.
    model : str or ModelAdapter
        A registered name (see :func:`mlipspace.available_models`) or a loaded adapter.
    layer : str or list of str
        ``"ll"``, ``"node"``, ``"bb"`` or ``"layer:<i>"``; a list gives a dict.
    store : FeatureStore or path, optional
        Every layer is written there; structures already stored are not recomputed.
    batch_size : int, optional
        Structures per forward pass; default: the model's measured preference.
    device : str
        Torch device.
    dtype : {"float32", "float64"}
        Precision of the model and of the features.
    on_unsupported : {"error", "skip"}
        Structures with elements the model does not know: raise
        :class:`~mlipspace.errors.UnsupportedElementError` (naming structure and element),
        or leave them out and record them with ``store.write_skipped``.
    progress : bool or callable
        Show a progress bar, or call ``progress(done, total)`` (in structures).

    Returns
    -------
    AtomFeatures or dict of str to AtomFeatures
        One table for a single layer name; ``{layer: table}`` for a list. Rows follow
        ``structures`` (skipped structures left out).

    Examples
    --------
    >>> from ase.build import bulk
    >>> feats = featurize([bulk("Si")], "soap", progress=False)  # doctest: +SKIP
    >>> feats.X.shape  # doctest: +SKIP
    (2, 640)
    """
    layers = _as_layers(layer)
    single = isinstance(layer, str)
    if on_unsupported not in ON_UNSUPPORTED:
        raise ModelError(f"on_unsupported must be 'error' or 'skip', not {on_unsupported!r}")
    atoms_list = as_structures(structures)
    if not atoms_list:
        raise ModelError("no structures to featurize")

    if isinstance(model, ModelAdapter):
        adapter = model
    else:
        from ..models.registry import resolve

        spec, _ = resolve(model)
        if not _runs_in_process(spec.family):
            result = _featurize_in_env(
                atoms_list, model, layers, store=store, batch_size=batch_size, dtype=dtype,
                device=device, on_unsupported=on_unsupported, progress=progress,
            )  # fmt: skip
            return result[layers[0]] if single else result
        adapter = load_model(model, dtype=dtype, device=device)

    store_obj = _open_store(store) if store is not None else None
    with progress_callback(progress, adapter.name) as update:
        result = featurize_with(
            adapter, atoms_list, layers, store=store_obj, batch_size=batch_size,
            on_unsupported=on_unsupported, on_progress=update,
        )  # fmt: skip
    return result[layers[0]] if single else result


# -- several models, side by side -----------------------------------------------------


def _featurize_into(
    structures: list[Atoms], model: str, layers: list[str], store: Any, options: dict[str, Any]
) -> tuple[str, float]:
    start = time.perf_counter()
    featurize(structures, model, layer=layers, store=store, progress=False, **options)
    return model, time.perf_counter() - start


def _slowest_first(names: Sequence[str]) -> list[str]:
    """``names`` by decreasing :attr:`ModelSpec.relative_cost` (unknown names cost 1)."""
    from ..models.registry import resolve

    def cost(name: str) -> float:
        try:
            return resolve(name)[0].relative_cost
        except ModelError:  # reported by the job itself
            return 1.0

    return sorted(names, key=cost, reverse=True)


def featurize_models(
    structures: Any,
    models: Sequence[str],
    layer: str | Sequence[str] = "ll",
    store: Any = None,
    n_workers: int | None = None,
    on_unsupported: str = "error",
    dtype: str = "float32",
    progress: Callable[[str], None] | None = None,
) -> None:
    """Featurize ``structures`` with every model of ``models`` into ``store``, several at once.

    ``n_workers`` worker processes (default: one per core, at most one per model) each run
    one model at a time (:func:`mlipspace.workers.map_in_workers`): on the 2-core demo
    machine two models side by side finish about 1.5× sooner than the same models one after
    the other. The store takes concurrent writers of different models; structures already
    stored are skipped, so an interrupted run resumes. ``progress(text)`` is called as each
    model ends.
    """
    from ..workers import map_in_workers

    if store is None:
        raise ModelError("featurize_models writes into a store: give store=")
    names = list(models)
    layers = _as_layers(layer)
    atoms = as_structures(structures)
    if not atoms:
        raise ModelError("no structures to featurize")
    store = _open_store(store)
    options = {"on_unsupported": on_unsupported, "dtype": dtype}
    finished = []

    def done(i: int, result: tuple[str, float]) -> None:
        name, seconds = result
        finished.append(name)
        if progress:
            progress(f"{name} done in {seconds:.0f} s ({len(finished)}/{len(names)})")

    # slowest first (longest-processing-time order): the last job to start is a short one
    jobs = [(atoms, name, layers, store, options) for name in _slowest_first(names)]
    map_in_workers(_featurize_into, jobs, n_workers, on_done=done)
