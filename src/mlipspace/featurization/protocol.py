"""What the parent and the child of a worker exchange: structures on disk and progress lines.

The parent (:mod:`mlipspace.featurization.parent`) writes the structures to a lossless
``.npz`` file and starts ``<env>/bin/python -m mlipspace.featurization.child ...``; the
child (:mod:`mlipspace.featurization.child`) reports on its standard output as JSON lines,
each prefixed with :data:`PROTOCOL_PREFIX` (everything the model packages print goes to
standard error instead)::

    {"event": "start", "done": <structures already stored>, "total": <structures>}
    {"event": "progress", "done": <structures done>, "total": <structures>}
    {"event": "error", "type": "<exception class>", "message": "...", "traceback": "..."}
    {"event": "done"}
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from ase import Atoms

PROTOCOL_PREFIX = "@mlipspace-worker "
#: the module the parent runs in the family's environment
CHILD_MODULE = "mlipspace.featurization.child"


def event_line(**event: Any) -> str:
    """One protocol line (with its newline)."""
    return PROTOCOL_PREFIX + json.dumps(event) + "\n"


def parse_event(line: str) -> dict[str, Any] | None:
    """The event of a protocol line; ``None`` for any other output line."""
    if not line.startswith(PROTOCOL_PREFIX):
        return None
    return json.loads(line[len(PROTOCOL_PREFIX) :])


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
