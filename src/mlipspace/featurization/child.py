"""The child side of a worker: runs inside a model family's environment.

``python -m mlipspace.featurization.child --structures F --model M ...`` featurizes the
structures of ``F`` with the in-process featurizer (:mod:`mlipspace.featurization.core`)
into the shared store, and reports on the protocol channel
(:mod:`mlipspace.featurization.protocol`). It imports only what it needs there.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence
from typing import Any

from .protocol import event_line, read_structures


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m mlipspace.featurization.child")
    parser.add_argument("--structures", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--layers", required=True)
    parser.add_argument("--store", required=True)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--max-atoms-per-batch", type=int, default=None)
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
        channel.write(event_line(**event))
        channel.flush()

    from ..workers import tune_allocator

    tune_allocator()
    try:
        args = _parse(argv)
        structures = read_structures(args.structures)
        total = len(structures)
        emit(event="start", done=0, total=total)
        from ..store import open_store
        from .core import featurize_with, load_model

        adapter = load_model(args.model, dtype=args.dtype, device=args.device)
        featurize_with(
            adapter,
            structures,
            args.layers.split(","),
            store=open_store(args.store),
            batch_size=args.batch_size,
            max_atoms_per_batch=args.max_atoms_per_batch,
            on_unsupported=args.on_unsupported,
            on_progress=lambda done, _total: emit(event="progress", done=int(done), total=total),
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
