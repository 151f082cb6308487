"""Structure input, content hashing, validation and the embedded demo data."""

from .demo import demo_structures
from .hashing import HASH_RESOLUTION, structure_hash
from .io import read_structures
from .records import ReadReport, StructureList, has_no_cell, is_slab, prepare_structure
from .validate import validate_structure

__all__ = [
    "HASH_RESOLUTION",
    "ReadReport",
    "StructureList",
    "demo_structures",
    "has_no_cell",
    "is_slab",
    "prepare_structure",
    "read_structures",
    "structure_hash",
    "validate_structure",
]
