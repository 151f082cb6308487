"""The chemiscope input file of a report: the PCA maps with their structures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ReportError
from ..results import PcaMaps

__all__ = ["write_chemiscope"]


def write_chemiscope(data: PcaMaps, structures: dict[str, Any], path: Path) -> Path:
    """Structures of the PCA subsample with the maps as per-atom properties (chemiscope input).

    ``structures`` maps structure hashes to ``Atoms`` (:meth:`ResultsFolder.structures`).
    """
    import chemiscope

    hashes = list(dict.fromkeys(data.structure_hash))
    absent = [h for h in hashes if h not in structures]
    if absent:
        raise ReportError(
            f"{len(absent)} structures of the PCA maps are not among the structures read"
        )
    index = {h: i for i, h in enumerate(hashes)}
    frames = []
    for h in hashes:
        atoms = structures[h].copy()
        atoms.info = {k: v for k, v in atoms.info.items() if isinstance(v, str | int | float)}
        atoms.arrays = {k: v for k, v in atoms.arrays.items() if k in ("numbers", "positions")}
        atoms.calc = None
        frames.append(atoms)
    environments = [
        (index[h], int(s), 4.0) for h, s in zip(data.structure_hash, data.site, strict=True)
    ]
    properties: dict[str, Any] = {
        "element group": {"target": "atom", "values": data.groups.astype(float)},
        "Z": {"target": "atom", "values": data.numbers.astype(float)},
    }
    for m in data.models:
        for kind in ("anchored", "raw"):
            properties[f"{m} {kind} PCA"] = {
                "target": "atom",
                "values": data.maps[m][kind][0],
                "description": f"first two principal components of the {kind} {data.layer} space",
            }
    first = data.models[0]
    chemiscope.write_input(
        str(path),
        structures=frames,
        properties=properties,
        environments=environments,
        metadata={
            "name": "mlipspace: PCA maps of raw and anchored spaces",
            "description": f"{len(environments)} atoms; models {', '.join(data.models)}",
        },
        settings={
            "map": {
                "x": {"property": f"{first} anchored PCA[1]"},
                "y": {"property": f"{first} anchored PCA[2]"},
                "color": {"property": "element group"},
            }
        },
    )
    return path


# ----------------------------------------------------------------------------- main
