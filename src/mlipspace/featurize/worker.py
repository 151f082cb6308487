"""Run a model family's featurizer as a worker process inside its own environment.

The caller (:func:`featurize_in_env`) writes the structures to a lossless temporary
file, starts ``<env>/bin/python -m mlipspace.featurize.worker ...``, and follows the
worker's progress, which the worker reports as JSON lines on its standard output
(each prefixed with :data:`PROTOCOL_PREFIX`; everything the model packages print goes
to standard error instead). The worker runs the ordinary in-process featurizer of
:mod:`mlipspace.featurize.api` writing into the shared feature store; when it has
finished, the caller reads the features back from that store.

Protocol (one JSON object per line)::

    {"event": "start", "total": <structures>}
    {"event": "progress", "done": <structures done>, "total": <structures>}
    {"event": "error", "type": "<exception class>", "message": "...", "traceback": "..."}
    {"event": "done"}
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import threading
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np
from ase import Atoms

from .. import errors
from ..errors import EnvironmentSetupError, ModelError
from ..features import AtomFeatures
from . import envs
from .api import as_structures, progress_callback

PROTOCOL_PREFIX = "@mlipspace-worker "
STDERR_TAIL = 40

ProgressCallback = Callable[[int, int], None]


# -- structures on disk ------------------------------------------------------------


def write_structures(path: str | os.PathLike, structures: Sequence[Atoms]) -> None:
    """Write structures losslessly (float64 positions and cells, JSON ``info``) to ``.npz``.

    extxyz would round positions to 8 decimals, which can move a structure's content
    hash; this format keeps every bit, so the worker writes the same hashes.
    """
    counts = np.array([len(a) for a in structures], dtype=np.int64)
    info = []
    for atoms in structures:
        entry = {}
        for key, value in atoms.info.items():
            try:
                json.dumps(value)
            except TypeError:
                continue
            entry[key] = value
        info.append(entry)
    np.savez(
        path,
        counts=counts,
        numbers=np.concatenate([a.numbers for a in structures]).astype(np.int64),
        positions=np.concatenate([a.positions for a in structures]).astype(np.float64),
        cells=np.array([a.cell.array for a in structures], dtype=np.float64).reshape(-1, 3, 3),
        pbc=np.array([a.pbc for a in structures], dtype=bool).reshape(-1, 3),
        info=np.array(json.dumps(info)),
    )


def read_structures(path: str | os.PathLike) -> list[Atoms]:
    """Read structures written by :func:`write_structures`."""
    with np.load(path) as data:
        counts = data["counts"]
        numbers = np.split(data["numbers"], np.cumsum(counts)[:-1])
        positions = np.split(data["positions"], np.cumsum(counts)[:-1])
        cells, pbc = data["cells"], data["pbc"]
        info = json.loads(str(data["info"]))
    out = []
    for i in range(len(counts)):
        atoms = Atoms(numbers=numbers[i], positions=positions[i], cell=cells[i], pbc=pbc[i])
        atoms.info.update(info[i])
        out.append(atoms)
    return out


# -- caller side ---------------------------------------------------------------------


def _open_store(store: Any) -> Any:
    from ..store import FeatureStore

    if isinstance(store, FeatureStore):
        return store
    return FeatureStore(store)


def _raise_worker_error(event: dict[str, Any], model: str, family: str, tail: str) -> None:
    kind = event.get("type", "Exception")
    message = event.get("message", "")
    where = f"{model} (family {family!r}, worker process)"
    cls = getattr(errors, kind, None)
    if isinstance(cls, type) and issubclass(cls, errors.MlipspaceError):
        # the same class, so that callers can catch UnsupportedElementError etc.
        raise cls(f"{where}: {message}")
    detail = event.get("traceback", "").strip() or tail
    raise ModelError(f"{where} failed with {kind}: {message}\n{detail}")


def run_worker(
    python: str | os.PathLike,
    arguments: Sequence[str],
    *,
    family: str,
    model: str,
    on_progress: ProgressCallback,
) -> None:
    """Run the worker and follow its protocol; raise the worker's error in this process."""
    env = dict(os.environ)
    env[envs.FAMILY_VARIABLE] = family
    env["PYTHONUNBUFFERED"] = "1"
    torch = sys.modules.get("torch")
    if torch is not None:
        # the worker gets this process's thread budget (one thread when models run side by
        # side): left to its default it would take every core and slow its neighbour down
        env["OMP_NUM_THREADS"] = str(torch.get_num_threads())
    command = [str(python), "-m", "mlipspace.featurize.worker", *arguments]
    try:
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, bufsize=1
        )
    except OSError as exc:
        raise EnvironmentSetupError(
            f"cannot start the worker of {model} (family {family!r}) with {python}: {exc}; "
            + envs.missing_env_message(family)
        ) from exc
    tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL)

    def drain(stream: IO[str]) -> None:
        for line in stream:
            tail.append(line.rstrip())

    assert process.stdout is not None and process.stderr is not None
    reader = threading.Thread(target=drain, args=(process.stderr,), daemon=True)
    reader.start()
    error: dict[str, Any] | None = None
    finished = False
    try:
        for line in process.stdout:
            if not line.startswith(PROTOCOL_PREFIX):
                tail.append(line.rstrip())
                continue
            event = json.loads(line[len(PROTOCOL_PREFIX) :])
            kind = event.get("event")
            if kind in ("start", "progress"):
                on_progress(int(event.get("done", 0)), int(event["total"]))
            elif kind == "error":
                error = event
            elif kind == "done":
                finished = True
        code = process.wait()
    except BaseException:
        process.kill()
        process.wait()
        raise
    reader.join(timeout=5)
    text_tail = "\n".join(tail)
    if error is not None:
        _raise_worker_error(error, model, family, text_tail)
    if code != 0 or not finished:
        raise ModelError(
            f"the worker of {model} (family {family!r}) exited with code {code} before finishing; "
            f"its last output:\n{text_tail}"
        )


def featurize_in_env(
    structures: Sequence[Atoms],
    model: str,
    layers: Sequence[str],
    store: Any,
    batch_size: int | None = None,
    dtype: str = "float32",
    device: str = "cpu",
    on_unsupported: str = "error",
    progress: bool | ProgressCallback = True,
) -> dict[str, AtomFeatures]:
    """Featurize ``structures`` with ``model`` in a worker inside its family's environment.

    Parameters
    ----------
    structures : sequence of ase.Atoms
        The structures.
    model : str
        Registered model name (its family decides the environment).
    layers : sequence of str
        Layers to compute (``ll``, ``node``, ``bb``, ``layer:<i>``).
    store : FeatureStore, path or None
        Shared store the worker writes into (structures already there are skipped);
        ``None`` uses a temporary store that is deleted afterwards.
    batch_size : int, optional
        Structures per forward pass (default: the model's preferred size).
    dtype : {"float32", "float64"}
    device : str
    on_unsupported : {"error", "skip"}
        What to do with structures holding elements the model does not know.
    progress : bool or callable
        ``True`` shows a rich progress bar; a callable gets ``(done, total)``.

    Returns
    -------
    dict
        ``{layer: AtomFeatures}`` read back from the store, rows in the order of
        ``structures`` (skipped structures left out).

    Raises
    ------
    EnvironmentSetupError
        The family's environment is missing or stale (the message names the command).
    ModelError
        The worker failed; the message names model and family.
    """
    from ..models.registry import resolve

    spec, _ = resolve(model)
    family = spec.family
    layers = [layers] if isinstance(layers, str) else list(layers)
    if on_unsupported not in ("error", "skip"):
        raise ModelError(f"on_unsupported must be 'error' or 'skip', not {on_unsupported!r}")
    if os.environ.get(envs.FAMILY_VARIABLE) == family:
        raise EnvironmentSetupError(
            f"featurize_in_env called inside the {family!r} worker itself for {model}; "
            "the in-process featurizer must be used there"
        )
    structures = as_structures(structures)
    shared = _open_store(store) if store is not None else None
    if shared is not None and _all_stored(shared, model, layers, structures):
        return read_back(shared, model, layers, structures)  # nothing to compute: no worker
    python = envs.require_env(family)
    with tempfile.TemporaryDirectory(prefix="mlipspace-worker-") as folder:
        scratch = Path(folder)
        store_obj = shared if shared is not None else _open_store(scratch / "store.zarr")
        path = scratch / "structures.npz"
        write_structures(path, structures)
        arguments = [
            "--structures", str(path),
            "--model", model,
            "--layers", ",".join(layers),
            "--store", str(store_obj.path),
            "--dtype", dtype,
            "--device", device,
            "--on-unsupported", on_unsupported,
        ]  # fmt: skip
        if batch_size is not None:
            arguments += ["--batch-size", str(int(batch_size))]
        with progress_callback(progress, f"{model} (env {family})") as update:
            run_worker(python, arguments, family=family, model=model, on_progress=update)
        return read_back(store_obj, model, layers, structures)


def _all_stored(store: Any, model: str, layers: Sequence[str], structures: Sequence[Atoms]) -> bool:
    """Whether every structure is already stored (or recorded as skipped) for every layer."""
    if (model, layers[0]) not in set(store.entries()):
        return False
    hashes = {a.info["structure_hash"] for a in structures}
    for layer in layers:
        done = store.hashes(model, layer) | set(store.skipped(model, layer)["structure_hash"])
        if not hashes <= done:
            return False
    return True


def read_back(
    store: Any, model: str, layers: Sequence[str], structures: Sequence[Atoms]
) -> dict[str, AtomFeatures]:
    """Features of ``structures`` from the store, leaving out those recorded as skipped."""
    hashes = [a.info["structure_hash"] for a in structures]
    out = {}
    for layer in layers:
        skipped = set(store.skipped(model, layer)["structure_hash"])
        wanted = [h for h in hashes if h not in skipped]
        if not wanted:
            raise ModelError(f"{model}: every structure was skipped for layer {layer!r}")
        out[layer] = store.read(model, layer, structures=wanted)
    return out


# -- worker side ---------------------------------------------------------------------


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m mlipspace.featurize.worker")
    parser.add_argument("--structures", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--layers", required=True)
    parser.add_argument("--store", required=True)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--on-unsupported", default="error")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Worker entry point: featurize in this process, report on the protocol channel."""
    # Keep stdout for the protocol; whatever the model packages print goes to stderr.
    channel = os.fdopen(os.dup(1), "w", buffering=1)
    sys.stdout.flush()
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def emit(**event: Any) -> None:
        channel.write(PROTOCOL_PREFIX + json.dumps(event) + "\n")
        channel.flush()

    from ..workers import tune_allocator

    tune_allocator()
    try:
        args = _parse(argv)
        structures = read_structures(args.structures)
        total = len(structures)
        emit(event="start", done=0, total=total)
        from .api import featurize

        featurize(
            structures,
            args.model,
            layer=args.layers.split(","),
            store=args.store,
            batch_size=args.batch_size,
            dtype=args.dtype,
            device=args.device,
            on_unsupported=args.on_unsupported,
            progress=lambda done, _total: emit(event="progress", done=int(done), total=total),
        )
        emit(event="progress", done=total, total=total)
        emit(event="done")
        return 0
    except BaseException as exc:  # report everything, including KeyboardInterrupt
        emit(
            event="error",
            type=type(exc).__name__,
            message=str(exc),
            traceback=traceback.format_exc(),
        )
        return 1
    finally:
        channel.close()


if __name__ == "__main__":
    sys.exit(main())
