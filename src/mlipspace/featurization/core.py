"""The in-process featurizer: per-atom features of prepared structures from a loaded adapter.

This module runs wherever the model runs: in the calling process for models of the main
environment, and inside the worker process (:mod:`mlipspace.featurization.child`) for the
others. It knows nothing of worker processes or environments.
"""

from __future__ import annotations

import functools
import time
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from ase import Atoms

from ..errors import ModelError, ParameterError
from ..features import AtomFeatures, feature_array_problem
from ..models.base import ModelAdapter
from ..structures import has_no_cell

if TYPE_CHECKING:  # the store (zarr) is imported when a store is used
    from ..store import FeatureStore

#: ``progress(done, total)``, in structures
ProgressCallback = Callable[[int, int], None]
#: atoms computed before they are committed to the store as one segment
FLUSH_ATOMS = 4096
#: seconds of computed work after which it is committed anyway (a Ctrl-C loses little)
FLUSH_SECONDS = 30.0
#: Å of vacuum between the periodic images of a structure without a cell, when a model needs
#: a cell: more than the cutoff of any model in the zoo (at most 6 Å)
VACUUM = 20.0
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


def as_layers(layer: str | Sequence[str]) -> list[str]:
    """``layer`` as a list of distinct layer names (a single name gives a list of one)."""
    layers = [layer] if isinstance(layer, str) else list(layer)
    if not layers or not all(isinstance(name, str) and name for name in layers):
        raise ModelError(f"layer must be a layer name or a list of them, not {layer!r}")
    return list(dict.fromkeys(layers))


def check_on_unsupported(on_unsupported: str) -> str:
    """``on_unsupported`` if it is ``"error"`` or ``"skip"``; raises otherwise."""
    if on_unsupported not in ON_UNSUPPORTED:
        raise ModelError(f"on_unsupported must be 'error' or 'skip', not {on_unsupported!r}")
    return on_unsupported


def as_progress(progress: ProgressCallback | bool | None) -> ProgressCallback:
    """A ``(done, total)`` callback: the given one, or a no-op for ``None``/``False``.

    The library draws no progress bar itself; the command line passes one in.
    """
    if callable(progress):
        return progress
    if progress is None or progress is False:
        return lambda done, total: None
    raise ParameterError(
        f"progress must be a callable progress(done, total) or None, not {progress!r} "
        "(the library draws no bar; pass e.g. a tqdm or rich update function)"
    )


def structure_hashes(structures: Sequence[Atoms]) -> list[str]:
    """The ``structure_hash`` of each prepared structure, in order."""
    return [a.info["structure_hash"] for a in structures]


@functools.lru_cache(maxsize=8)
def load_model(name: str, dtype: str = "float32", device: str = "cpu") -> ModelAdapter:
    """The adapter registered as ``name``, loaded once per (name, dtype, device).

    The device is checked first (:func:`~mlipspace.devices.check_device`): CUDA asked for on
    a machine without it is a :class:`~mlipspace.errors.ParameterError`, not a torch error.
    """
    from ..devices import check_device
    from ..models.registry import get_model

    device = check_device(device)

    return get_model(name, dtype=dtype, device=device)


# -- outputs -----------------------------------------------------------------------


def _structure_table(structures: Sequence[Atoms]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "structure_hash": structure_hashes(structures),
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
        structure_hash=np.repeat(structure_hashes(structures), counts),
        site=np.concatenate([np.arange(n) for n in counts]),
        numbers=np.concatenate([a.numbers for a in structures]).astype(np.int64),
        structure_index=np.repeat(np.arange(len(structures)), counts),
        structures=_structure_table(structures),
        model=model,
        layer=layer,
        metadata=dict(metadata or {}),
    )


def read_back(
    store: FeatureStore, model: str, layers: Sequence[str], structures: Sequence[Atoms]
) -> dict[str, AtomFeatures]:
    """Features of ``structures`` from the store, leaving out those recorded as skipped
    (and not stored since)."""
    hashes = structure_hashes(structures)
    out = {}
    for layer in layers:
        skipped = set(store.skipped(model, layer)["structure_hash"]) - store.hashes(model, layer)
        wanted = [h for h in hashes if h not in skipped]
        if not wanted:
            raise ModelError(f"{model}: every structure was skipped for layer {layer!r}")
        out[layer] = store.read(model, layer, structures=wanted)
    return out


def interrupted_note(
    store: FeatureStore, model: str, layers: Sequence[str], structures: Sequence[Atoms]
) -> str:
    """What an interrupted run kept: how many structures are saved, and that a re-run resumes."""
    missing = store.missing(model, layers, structure_hashes(structures))
    saved = len(structures) - len(missing)
    return (
        f"{model}: {saved} of {len(structures)} structures are saved in {store.url}; "
        "run the same command again to resume (saved structures are not recomputed)"
    )


# -- checks ------------------------------------------------------------------------


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
            problem = feature_array_problem(array, len(atoms), dims[layer])
            if problem:
                raise ModelError(
                    f"{adapter.name}/{layer}: structure "
                    f"{atoms.info.get('source') or atoms.info['structure_hash']} "
                    f"({atoms.get_chemical_formula()}) has {problem}"
                )


def in_vacuum_box(atoms: Atoms, vacuum: float = VACUUM) -> Atoms:
    """A copy of ``atoms`` centred in a box with ``vacuum`` Å between periodic images.

    For models that build their graph through a periodic cell (CHGNet converts to a pymatgen
    ``Structure``, which fails with "Singular matrix" without one): the images are farther
    apart than any model's cutoff, so the structure sees only itself. ``info`` (and so the
    structure hash under which the features are stored) is kept.
    """
    boxed = atoms.copy()
    boxed.center(vacuum=vacuum / 2)
    return boxed


def _label(atoms: Atoms) -> str:
    return f"{atoms.info.get('source') or atoms.info.get('structure_hash')} ({atoms.get_chemical_formula()})"


def _compute_one_by_one(
    adapter: ModelAdapter, batch: Sequence[Atoms], layers: Sequence[str]
) -> tuple[list[Atoms], dict[str, list[np.ndarray]], list[tuple[Atoms, ModelError]]]:
    """Features of the structures of ``batch`` the model can take, one at a time, and the
    failures ``(structure, error)`` of the others.

    A structure without a cell that the model cannot take as it is gets a vacuum box
    (:func:`in_vacuum_box`), with a warning saying so.
    """
    kept: list[Atoms] = []
    features: dict[str, list[np.ndarray]] = {layer: [] for layer in layers}
    failures: list[tuple[Atoms, ModelError]] = []
    for atoms in batch:
        try:
            one = adapter.compute([atoms], layers)
        except ModelError as exc:
            if not has_no_cell(atoms):
                failures.append((atoms, exc))
                continue
            try:
                one = adapter.compute([in_vacuum_box(atoms)], layers)
            except ModelError:
                failures.append((atoms, exc))
                continue
            warnings.warn(
                f"{adapter.name}: structure {_label(atoms)} has no cell; featurized in a box "
                f"with {VACUUM:g} Å of vacuum between periodic images",
                stacklevel=3,
            )
        kept.append(atoms)
        for layer in layers:
            features[layer].extend(one[layer])
    return kept, features, failures


def _split_supported(
    adapter: ModelAdapter, structures: Sequence[Atoms], on_unsupported: str
) -> tuple[list[Atoms], list[Atoms], list[str]]:
    """(kept, skipped, reasons): structures with elements the model does not know are
    skipped, or raise for ``on_unsupported="error"``."""
    from ..models.torch_base import unsupported_error

    kept, skipped, reasons = [], [], []
    for index, atoms in enumerate(structures):
        bad = unsupported_elements(adapter, atoms)
        if not bad:
            kept.append(atoms)
        elif on_unsupported == "error":
            raise unsupported_error(adapter.name, atoms, index, bad[0])
        else:
            skipped.append(atoms)
            reasons.append(str(unsupported_error(adapter.name, atoms, index, bad[0])))
    return kept, skipped, reasons


def _record_skipped(
    store: FeatureStore, model: str, layers: Sequence[str], skipped: list[Atoms], reasons: list[str]
) -> None:
    """Record ``skipped`` for every layer, once (a re-run does not add them again)."""
    for layer in layers:
        known = set(store.skipped(model, layer)["structure_hash"])
        new = [i for i, a in enumerate(skipped) if a.info["structure_hash"] not in known]
        if new:
            store.write_skipped(model, layer, [skipped[i] for i in new], [reasons[i] for i in new])


# -- the featurizer -----------------------------------------------------------------


def atoms_per_batch(
    adapter: ModelAdapter, batch_size: int | None, max_atoms_per_batch: int | None
) -> int | None:
    """The atom budget of a batch, or ``None`` for batches of ``batch_size`` structures.

    A GPU is filled by atoms (the graph, and the memory, grow with them), so a CUDA adapter
    gets batches of at most :data:`~mlipspace.devices.DEFAULT_GPU_ATOMS_PER_BATCH` atoms
    unless the caller fixed ``batch_size``; ``max_atoms_per_batch`` chooses atom batches on
    any device. The CPU default (the model's preferred number of structures) is unchanged.
    """
    from ..devices import DEFAULT_GPU_ATOMS_PER_BATCH, is_cuda

    if max_atoms_per_batch is not None:
        if isinstance(max_atoms_per_batch, bool) or int(max_atoms_per_batch) < 1:
            raise ParameterError(
                f"max_atoms_per_batch must be a positive integer, not {max_atoms_per_batch!r}"
            )
        return int(max_atoms_per_batch)
    if batch_size is None and is_cuda(getattr(adapter, "device", "cpu")):
        return DEFAULT_GPU_ATOMS_PER_BATCH
    return None


def _batches(todo: list[Atoms], batch_size: int, max_atoms: int | None) -> list[list[Atoms]]:
    """Consecutive batches: ``batch_size`` structures, or at most ``max_atoms`` atoms (a
    larger structure alone) when an atom budget is set."""
    if max_atoms is not None:
        from ..models.torch_base import pack_by_atoms

        return pack_by_atoms(todo, max_atoms)
    return [todo[start : start + batch_size] for start in range(0, len(todo), batch_size)]


def featurize_with(
    adapter: ModelAdapter,
    structures: Sequence[Atoms],
    layers: Sequence[str],
    store: FeatureStore | None = None,
    batch_size: int | None = None,
    on_unsupported: str = "error",
    on_progress: ProgressCallback | None = None,
    flush_seconds: float = FLUSH_SECONDS,
    max_atoms_per_batch: int | None = None,
) -> dict[str, AtomFeatures]:
    """Featurize prepared structures with a loaded adapter (see :func:`mlipspace.featurize`).

    With a store, computed features are committed every :data:`FLUSH_ATOMS` atoms or every
    ``flush_seconds`` seconds, whichever comes first, so an interrupted run loses little
    and a re-run computes only what is still missing. Batches are sized by atoms when
    :func:`atoms_per_batch` says so (CUDA adapters by default), by structures otherwise.
    """
    from ..models.torch_base import check_layers

    layers = check_layers(layers, adapter.layer_dims(), adapter.name)
    check_on_unsupported(on_unsupported)
    max_atoms = atoms_per_batch(adapter, batch_size, max_atoms_per_batch)
    batch_size = int(batch_size or adapter.preferred_batch_size())
    if batch_size < 1:
        raise ModelError(f"batch_size must be positive, not {batch_size}")
    name = adapter.name
    on_progress = as_progress(on_progress)

    kept, skipped, reasons = _split_supported(adapter, structures, on_unsupported)
    if store is not None and skipped:
        _record_skipped(store, name, layers, skipped, reasons)

    todo = kept
    if store is not None:
        # structures recorded as skipped are retried only when they must raise
        missing = set(
            store.missing(
                name, layers, structure_hashes(kept), retry_skipped=on_unsupported == "error"
            )
        )
        todo = [a for a in kept if a.info["structure_hash"] in missing]
    total = len(structures)
    done = total - len(todo)
    on_progress(done, total)

    metadata = {**adapter.metadata(), "model": name}
    collected: dict[str, list[np.ndarray]] = {layer: [] for layer in layers}
    pending: list[Atoms] = []  # computed, not yet committed to the store
    failed: set[str] = set()  # hashes of structures the model could not take
    last_flush = time.monotonic()

    def flush() -> None:
        # one store segment per FLUSH_ATOMS atoms, not per forward pass: fewer, larger
        # segments read faster; a crash loses at most the work since the last flush
        for layer in layers:
            store.write(
                name, layer, pending, collected[layer], metadata={**metadata, "layer": layer}
            )
            collected[layer].clear()
        pending.clear()

    try:
        for batch in _batches(todo, batch_size, max_atoms):
            try:
                features = adapter.compute(batch, layers)
            except ModelError:
                # a structure the model cannot take (e.g. an atom with no neighbour inside
                # its cutoff, or no cell): redo the batch one structure at a time
                batch, features, failures = _compute_one_by_one(adapter, batch, layers)
                if failures and on_unsupported == "error":
                    raise failures[0][1] from None
                for atoms, exc in failures:
                    failed.add(atoms.info["structure_hash"])
                    if store is not None:
                        for layer in layers:
                            store.write_skipped(name, layer, [atoms], [str(exc)])
            _check_batch(adapter, batch, features, layers)
            for layer in layers:
                collected[layer].extend(features[layer])
            if store is not None:
                pending.extend(batch)
                due = time.monotonic() - last_flush >= flush_seconds
                if pending and (due or sum(len(a) for a in pending) >= FLUSH_ATOMS):
                    flush()
                    last_flush = time.monotonic()
            done += len(batch)
            on_progress(done, total)
    except KeyboardInterrupt as exc:
        if store is not None:
            if pending:
                flush()  # finished batches are kept: a Ctrl-C loses only the batch it stopped
            exc.add_note(interrupted_note(store, name, layers, structures))
        raise
    if store is not None and pending:
        flush()

    if store is not None:
        taken = [a for a in kept if a.info["structure_hash"] not in failed]
        if not taken:
            raise ModelError(f"{name}: every structure was skipped")
        return read_back(store, name, layers, taken)
    taken = [a for a in kept if a.info["structure_hash"] not in failed]
    if not taken:
        raise ModelError(f"{name}: every structure was skipped")
    return {
        layer: features_table(taken, collected[layer], name, layer, {**metadata, "layer": layer})
        for layer in layers
    }
