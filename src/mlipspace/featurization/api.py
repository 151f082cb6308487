"""``featurize``: per-atom features of structures from any registered model.

Models of families that share the main environment run in this process
(:mod:`mlipspace.featurization.core`); the others run as a worker inside their own
environment (:mod:`mlipspace.featurization.parent`), writing into the same store. Either
way the result is an :class:`~mlipspace.features.AtomFeatures` per layer.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from ase import Atoms

from ..errors import ModelError
from ..features import AtomFeatures
from ..models.base import ModelAdapter
from ..store import open_store
from .core import (
    ProgressCallback,
    as_layers,
    as_progress,
    as_structures,
    check_on_unsupported,
    featurize_with,
    interrupted_note,
    load_model,
)
from .envs import runs_here
from .parent import featurize_in_env


def featurize(
    structures: Any,
    model: str | ModelAdapter,
    layer: str | Sequence[str] = "ll",
    store: Any = None,
    batch_size: int | None = None,
    device: str = "cpu",
    dtype: str = "float32",
    on_unsupported: str = "error",
    progress: ProgressCallback | None = None,
    max_atoms_per_batch: int | None = None,
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
        Torch device: ``"cpu"``, ``"cuda"`` or ``"cuda:<i>"`` (checked here: CUDA asked for
        where torch sees none raises :class:`~mlipspace.errors.ParameterError`).
    dtype : {"float32", "float64"}
        Precision of the model and of the features.
    on_unsupported : {"error", "skip"}
        Structures with elements the model does not know: raise
        :class:`~mlipspace.errors.UnsupportedElementError` (naming structure and element),
        or leave them out and record them with ``store.write_skipped``.
    progress : callable, optional
        Called as ``progress(done, total)`` (in structures) as the work goes on; the
        library draws no bar itself (the command line passes one in).
    max_atoms_per_batch : int, optional
        Batches of at most this many atoms instead of ``batch_size`` structures (a larger
        structure gets a batch of its own). On a CUDA device with neither given, batches
        hold at most :data:`~mlipspace.devices.DEFAULT_GPU_ATOMS_PER_BATCH` atoms; on the
        CPU the default is unchanged. Features leave the GPU batch by batch, as they are
        written.

    Returns
    -------
    AtomFeatures or dict of str to AtomFeatures
        One table for a single layer name; ``{layer: table}`` for a list. Rows follow
        ``structures`` (skipped structures left out).

    Examples
    --------
    >>> from ase.build import bulk
    >>> feats = featurize([bulk("Si")], "soap")  # doctest: +SKIP
    >>> feats.X.shape  # doctest: +SKIP
    (2, 640)
    """
    from ..devices import check_device

    device = check_device(device)
    layers = as_layers(layer)
    single = isinstance(layer, str)
    check_on_unsupported(on_unsupported)
    update = as_progress(progress)
    atoms_list = as_structures(structures)
    if not atoms_list:
        raise ModelError("no structures to featurize")

    if isinstance(model, ModelAdapter):
        adapter = model
    else:
        from ..models.registry import resolve

        spec, _ = resolve(model)
        if not runs_here(spec.family):
            result = featurize_in_env(
                atoms_list, model, layers, store=store, batch_size=batch_size, dtype=dtype,
                device=device, on_unsupported=on_unsupported, progress=update,
                max_atoms_per_batch=max_atoms_per_batch,
            )  # fmt: skip
            return result[layers[0]] if single else result
        adapter = load_model(model, dtype=dtype, device=device)

    store_obj = open_store(store) if store is not None else None
    result = featurize_with(
        adapter, atoms_list, layers, store=store_obj, batch_size=batch_size,
        on_unsupported=on_unsupported, on_progress=update,
        max_atoms_per_batch=max_atoms_per_batch,
    )  # fmt: skip
    return result[layers[0]] if single else result


# -- several models, side by side -----------------------------------------------------


def _featurize_into(
    structures: list[Atoms], model: str, layers: list[str], store: Any, options: dict[str, Any]
) -> tuple[str, float]:
    start = time.perf_counter()
    featurize(structures, model, layer=layers, store=store, **options)
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
    device: str = "cpu",
) -> None:
    """Featurize ``structures`` with every model of ``models`` into ``store``, several at once.

    ``n_workers`` worker processes (default: one per core, at most one per model) each run
    one model at a time (:func:`mlipspace.workers.map_in_workers`): on the 2-core demo
    machine two models side by side finish about 1.5× sooner than the same models one after
    the other. The store takes concurrent writers of different models; structures already
    stored are skipped, so an interrupted run resumes. ``progress(text)`` says how much
    each model has stored already, and is called as each model ends. On a CUDA ``device``
    the default is one worker (the models share the GPU one after the other).
    """
    from ..devices import check_device, is_cuda
    from ..workers import map_in_workers

    device = check_device(device)
    if n_workers is None and is_cuda(device):
        n_workers = 1

    if store is None:
        raise ModelError("featurize_models writes into a store: give store=")
    names = list(models)
    layers = as_layers(layer)
    atoms = as_structures(structures)
    if not atoms:
        raise ModelError("no structures to featurize")
    store = open_store(store)
    options = {"on_unsupported": on_unsupported, "dtype": dtype, "device": device}
    finished = []
    if progress:
        hashes = [a.info["structure_hash"] for a in atoms]
        for name in names:
            left = len(store.missing(name, layers, hashes))
            if left < len(hashes):
                progress(
                    f"{name}: {len(hashes) - left} of {len(hashes)} structures already stored; "
                    f"{left} left to compute"
                )

    def done(i: int, result: tuple[str, float]) -> None:
        name, seconds = result
        finished.append(name)
        if progress:
            progress(f"{name} done in {seconds:.0f} s ({len(finished)}/{len(names)})")

    # slowest first (longest-processing-time order): the last job to start is a short one
    jobs = [(atoms, name, layers, store, options) for name in _slowest_first(names)]
    try:
        map_in_workers(_featurize_into, jobs, n_workers, on_done=done)
    except KeyboardInterrupt as exc:
        for name in names:
            if not any(name in note for note in getattr(exc, "__notes__", ())):
                exc.add_note(interrupted_note(store, name, layers, atoms))
        raise
