"""The parent side of a worker: run a model family's featurizer in its own environment.

:func:`featurize_in_env` writes the structures to a lossless temporary file, starts
``<env>/bin/python -m mlipspace.featurization.child ...`` (:mod:`.child`), follows the
child's progress on the protocol channel (:mod:`.protocol`) and, once the child has
written into the shared feature store, reads the features back from that store. An error
of the child is raised here, as the same :class:`~mlipspace.errors.MlipspaceError` class
where it is one.
"""

from __future__ import annotations

import collections
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from ase import Atoms

from .. import errors
from ..errors import EnvironmentSetupError, ModelError
from ..features import AtomFeatures
from ..store import open_store
from . import envs
from .core import (
    ProgressCallback,
    as_layers,
    as_progress,
    as_structures,
    check_on_unsupported,
    interrupted_note,
    read_back,
    structure_hashes,
)
from .protocol import CHILD_MODULE, parse_event, write_structures

STDERR_TAIL = 40
#: seconds a child gets after Ctrl-C to commit its finished work before it is killed
INTERRUPT_GRACE = 20.0


def _raise_worker_error(event: dict[str, Any], model: str, family: str, tail: str) -> None:
    kind = event.get("type", "Exception")
    message = event.get("message", "")
    where = f"{model} (family {family!r}, worker process)"
    cls = getattr(errors, kind, None)
    if isinstance(cls, type) and issubclass(cls, errors.MlipspaceError):
        # the same class, so that callers can catch UnsupportedElementError etc.
        raise cls(f"{where}: {message}")
    if kind == "KeyboardInterrupt":
        raise KeyboardInterrupt(f"{where}: interrupted")
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
    """Run the child and follow its protocol; raise the child's error in this process."""
    env = dict(os.environ)
    env[envs.FAMILY_VARIABLE] = family
    env["PYTHONUNBUFFERED"] = "1"
    torch = sys.modules.get("torch")
    if torch is not None:
        # the worker gets this process's thread budget (one thread when models run side by
        # side): left to its default it would take every core and slow its neighbour down
        env["OMP_NUM_THREADS"] = str(torch.get_num_threads())
    command = [str(python), "-m", CHILD_MODULE, *arguments]
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
            event = parse_event(line)
            if event is None:
                tail.append(line.rstrip())
                continue
            kind = event.get("event")
            if kind in ("start", "progress"):
                on_progress(int(event.get("done", 0)), int(event["total"]))
            elif kind == "error":
                error = event
            elif kind == "done":
                finished = True
        code = process.wait()
    except KeyboardInterrupt:
        # Ctrl-C reaches the child too (same process group): let it commit what it has
        try:
            process.wait(timeout=INTERRUPT_GRACE)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        raise
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
    layers: str | Sequence[str],
    store: Any,
    batch_size: int | None = None,
    dtype: str = "float32",
    device: str = "cpu",
    on_unsupported: str = "error",
    progress: ProgressCallback | None = None,
    max_atoms_per_batch: int | None = None,
) -> dict[str, AtomFeatures]:
    """Featurize ``structures`` with ``model`` in a worker inside its family's environment.

    Parameters
    ----------
    structures : sequence of ase.Atoms
        The structures.
    model : str
        Registered model name (its family decides the environment).
    layers : str or sequence of str
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
    progress : callable, optional
        Called with ``(done, total)`` in structures.
    max_atoms_per_batch : int, optional
        Atoms per forward pass instead of ``batch_size`` structures (see
        :func:`mlipspace.featurize`).

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
    layers = as_layers(layers)
    check_on_unsupported(on_unsupported)
    update = as_progress(progress)
    if os.environ.get(envs.FAMILY_VARIABLE) == family:
        raise EnvironmentSetupError(
            f"featurize_in_env called inside the {family!r} worker itself for {model}; "
            "the in-process featurizer must be used there"
        )
    structures = as_structures(structures)
    shared = open_store(store) if store is not None else None
    if shared is not None and not shared.missing(
        model, layers, structure_hashes(structures), retry_skipped=on_unsupported == "error"
    ):
        return read_back(shared, model, layers, structures)  # nothing to compute: no worker
    python = envs.require_env(family)
    with tempfile.TemporaryDirectory(prefix="mlipspace-worker-") as folder:
        scratch = Path(folder)
        store_obj = shared if shared is not None else open_store(scratch / "store.zarr")
        path = scratch / "structures.npz"
        write_structures(path, structures)
        arguments = [
            "--structures", str(path),
            "--model", model,
            "--layers", ",".join(layers),
            "--store", str(store_obj.url),
            "--dtype", dtype,
            "--device", device,
            "--on-unsupported", on_unsupported,
        ]  # fmt: skip
        if batch_size is not None:
            arguments += ["--batch-size", str(int(batch_size))]
        if max_atoms_per_batch is not None:
            arguments += ["--max-atoms-per-batch", str(int(max_atoms_per_batch))]
        try:
            run_worker(python, arguments, family=family, model=model, on_progress=update)
        except KeyboardInterrupt as exc:
            if shared is not None:
                exc.add_note(interrupted_note(shared, model, layers, structures))
            raise
        return read_back(store_obj, model, layers, structures)
