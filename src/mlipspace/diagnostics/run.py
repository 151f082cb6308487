"""Every failure diagnostic of a common space, written as tables (Li & Walsh 2025, §7).

:func:`run_diagnostics` ties the pieces of :mod:`mlipspace.diagnostics` to a
:class:`~mlipspace.platonic.CommonSpace`:

* **symmetry** — orbit spread of the stored features of high-symmetry structures (sites
  that spglib makes equivalent must coincide in every model);
* **displacement** — the spread in the common space as one site of a high-symmetry
  structure moves by 0–0.05 Å (it must grow monotonically for every model);
* **mirror** — the gap between a structure and its mirror image in the common space (models
  that do not track parity show one);
* **relax** — unconstrained relaxation with each model's calculator and the symmetry lost
  (judged only where the relaxation converged);
* **phonons** — phonopy frequencies of each model's relaxed cell, imaginary modes flagged;
* **auroc** — how well the pre-relaxation Platonic deviation from the consensus of the
  trained models ranks the (model, structure) pairs that lose symmetry or show imaginary modes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from ase import Atoms

from ..errors import MlipspaceError, random_state_or_seed
from ..results import DiagnosticsFiles
from ..workers import map_in_workers
from .calculators import CALCULATOR_MODELS
from .physics import auroc_with_note, judging_symprec, phonon_check, relax_symmetry_loss
from .symmetry import (
    displacement_series,
    mirror_gap,
    rows_by_structure,
    symmetry_dataset,
    symmetry_scores,
)

#: subsets of the demo data (and of any input that carries ``info["subset"]``) that are
#: ideal crystals, not rattled, strained or defective copies
IDEAL_SUBSETS = ("element", "binary", "perovskite")


def high_symmetry_structures(
    structures: Sequence[Atoms],
    n: int,
    max_atoms: int = 8,
    min_spacegroup: int = 195,
    symprec: float = 1e-3,
) -> list[Atoms]:
    """Up to ``n`` small high-symmetry crystals, one per formula, chosen by spglib.

    A fully periodic structure of at most ``max_atoms`` atoms qualifies when its space group
    is at least ``min_spacegroup``. When some structures carry a subset label of
    :data:`IDEAL_SUBSETS` (the demo's ideal crystals) only those are judged, perovskites
    first, then binaries, then elements; otherwise every structure is, whatever its label.
    Smallest cells first.

    Parameters
    ----------
    structures : list of ase.Atoms
        Candidates.
    n : int
        Largest number returned.
    max_atoms : int, default=8
    min_spacegroup : int, default=195
        Lowest space-group number accepted (195–230: cubic).
    symprec : float, default=1e-3
        spglib tolerance (Å).
    """
    picked: dict[str, Atoms] = {}
    candidates = [a for a in structures if a.pbc.all() and len(a) <= max_atoms]
    # labelled ideal crystals (the demo's) are preferred: their rattled, strained and
    # defective copies are not the symmetric reference the diagnostics need
    labelled = [a for a in candidates if a.info.get("subset") in IDEAL_SUBSETS]
    candidates = labelled or candidates
    priority = {name: -i for i, name in enumerate(IDEAL_SUBSETS)}

    def order(atoms: Atoms) -> tuple[int, int]:
        return priority.get(atoms.info.get("subset", ""), 0), len(atoms)

    for atoms in sorted(candidates, key=order):
        formula = atoms.get_chemical_formula()
        if formula in picked:
            continue
        if symmetry_dataset(atoms, symprec).number >= min_spacegroup:
            picked[formula] = atoms
        if len(picked) >= n:
            break
    return list(picked.values())


def chiral_structures(
    structures: Sequence[Atoms], n: int, min_atoms: int = 4, max_atoms: int = 24
) -> list[Atoms]:
    """Up to ``n`` small structures without any symmetry (space group P1).

    Only such cells can differ from their mirror image by more than a proper rotation (a cell
    of one or two atoms, rattled or not, is always superimposable on its image). Structures
    labelled ``rattled`` (the demo's) are used when there are any; otherwise every fully
    periodic structure of the right size is a candidate.
    """
    sized = [a for a in structures if min_atoms <= len(a) <= max_atoms]
    rattled = [a for a in sized if a.info.get("subset") == "rattled"] or [
        a for a in sized if a.pbc.all()
    ]
    chiral = [a for a in sorted(rattled, key=len) if symmetry_dataset(a, 1e-3).number == 1]
    return chiral[:n]


def _shared_sites(atoms: Atoms) -> int:
    """Number of sites that share their orbit with another site."""
    from .symmetry import equivalent_sites

    _, counts = np.unique(equivalent_sites(atoms), return_counts=True)
    return int(counts[counts > 1].sum())


def deviation_from_consensus(
    space: Any, structures: Sequence[Atoms], rows: dict[str, np.ndarray] | None = None
) -> pd.DataFrame:
    """Mean ``1 − cos(z^m, consensus)`` over each structure's atoms, for every trained model.

    Structures absent from the space get NaN.
    """
    from ..platonic.agreement import rowwise_cosine
    from ..platonic.chemistry import consensus
    from ..platonic.space import is_control
    from ..structures import structure_hash

    center = consensus(space)
    rows = rows if rows is not None else rows_by_structure(space.atoms)
    records = []
    for model in [m for m in space.models if not is_control(m)]:
        dev = 1.0 - rowwise_cosine(space.Z[model], center)
        for atoms in structures:
            key = structure_hash(atoms)
            idx = rows.get(key)
            records.append(
                {
                    "model": model,
                    "structure_hash": key,
                    "deviation": float(dev[idx].mean()) if idx is not None else np.nan,
                }
            )
    return pd.DataFrame(records)


def _projector(space: Any, model: str) -> Any:
    from ..anchors import RelativeProjector

    center = bool(space.settings.get("center", False))
    return RelativeProjector(center=center).fit(space.E[model][space.anchor_rows])


def _diagnose_model(
    model: str,
    projector: Any,
    layer: str,
    target: Atoms | None,
    chiral: list[Atoms],
    symmetric: list[Atoms],
    smallest: list[Atoms],
    relax_steps: int,
    rattle: float,
    random_state: int,
) -> dict[str, Any]:
    """Every diagnostic that runs ``model`` again (one worker job): displacement series,
    mirror gap and, for models with a calculator, relaxations and phonons."""
    from ..structures import structure_hash

    out: dict[str, Any] = {"errors": [], "displacement": None, "mirror": None, "relax": None}
    if target is not None:
        try:
            table = displacement_series(
                target, model, layer=layer, projector=projector, random_state=random_state
            )
            table["formula"] = target.get_chemical_formula()
            out["displacement"] = table
        except MlipspaceError as exc:
            out["errors"].append(f"displacement {model}: {exc}")
    if chiral:
        try:
            out["mirror"] = mirror_gap(chiral, model, layer=layer, projector=projector)
        except MlipspaceError as exc:
            out["errors"].append(f"mirror {model}: {exc}")
    if model not in CALCULATOR_MODELS or not symmetric:
        return out
    table, final = relax_symmetry_loss(
        symmetric,
        model,
        steps=relax_steps,
        symprec=sorted({judging_symprec(rattle), 1e-3, 1e-5}, reverse=True),
        rattle=rattle,
        random_state=random_state,
        return_structures=True,
    )
    out["relax"] = table
    relaxed = dict(zip(table["structure_hash"], final, strict=True))
    out["phonons"] = [
        (structure_hash(a), phonon_check(relaxed[structure_hash(a)], model, mesh=(6, 6, 6)))
        for a in smallest
    ]
    return out


def _auroc_rows(table: pd.DataFrame, label: str, failure: str) -> list[dict[str, Any]]:
    usable = table.dropna(subset=["deviation"])
    value, note = (
        auroc_with_note(usable["deviation"], usable[label].astype(bool))
        if len(usable)
        else (np.nan, "no (model, structure) pair with a deviation")
    )
    from ..platonic.verdicts import auroc_permutation

    labels = usable[label].astype(bool).to_numpy() if len(usable) else np.zeros(0, bool)
    # one-sided permutation p-value: with a handful of pairs an AUROC far from 0.5 can be chance
    p_value = auroc_permutation(usable["deviation"], labels)[1] if len(usable) else np.nan
    return [
        {
            "failure": failure,
            "pairs": len(usable),
            "positives": int(labels.sum()),
            "negatives": int((~labels).sum()),
            "auroc": value,
            "p_value": p_value,
            "note": note,
        }
    ]


def run_diagnostics(
    space: Any,
    structures: Sequence[Atoms],
    out: str | Path,
    models: Sequence[str] | None = None,
    n_symmetric: int = 4,
    n_mirror: int = 3,
    n_phonon: int = 2,
    relax_steps: int = 150,
    rattle: float = 0.0,
    layer: str | None = None,
    random_state: int = 0,
    progress: Callable[[str], None] | None = None,
    n_workers: int | None = None,
    seed: int | None = None,
) -> dict[str, Any]:
    """Run every diagnostic on the trained models of ``space`` and write them under ``out``.

    Parameters
    ----------
    space : CommonSpace
        The common space (without controls); its raw embeddings give each model's anchors.
    structures : list of ase.Atoms
        The structures of the study; high-symmetry and rattled ones are picked from them.
    out : path
        Folder for ``symmetry.csv``, ``displacement.csv``, ``mirror_gap.csv``,
        ``relax.csv``, ``phonons.csv``, ``auroc.csv`` and ``summary.json``.
    models : list of str, optional
        Models to diagnose (default: the trained models of the space).
    n_symmetric, n_mirror, n_phonon : int
        Number of high-symmetry structures relaxed, of rattled structures mirrored, and of
        crystals whose phonons are computed (per model).
    relax_steps : int, default=150
        Optimiser steps per relaxation.
    rattle : float, default=0.0
        Random displacement (Å) before relaxing. At 0 the relaxation starts exactly on the
        symmetric structure, where an exactly equivariant model keeps every symmetry: a loss
        then flags a model whose forces or stress break it.
    layer : str, optional
        Feature layer (default: the layer of the space).
    random_state : int, default=0
        Seeds the rattles and the displacement series.
    progress : callable, optional
        Called with a short text before each step and as each model's diagnostics end.
    n_workers : int, optional
        Models diagnosed side by side in worker processes (default: one per core; see
        :func:`mlipspace.workers.map_in_workers`).
    seed : int, optional
        Deprecated name of ``random_state``.

    Returns
    -------
    dict
        The summary (also written as ``summary.json``).
    """
    from ..platonic.space import is_control

    random_state = random_state_or_seed(random_state, seed, "run_diagnostics")
    files = DiagnosticsFiles(Path(out))
    files.folder.mkdir(parents=True, exist_ok=True)
    say = progress or (lambda text: None)
    layer = layer or space.settings.get("layer", "node")
    models = list(models) if models is not None else [m for m in space.models if not is_control(m)]
    # one pass over the candidates: the first ones are relaxed, all stored ones are scored
    candidates = high_symmetry_structures(structures, max(50, n_symmetric, n_phonon))
    symmetric = candidates[: max(n_symmetric, n_phonon)]
    chiral = chiral_structures(structures, n_mirror)
    summary: dict[str, Any] = {
        "models": models,
        "symmetric_structures": [a.get_chemical_formula() for a in symmetric],
        "mirror_structures": [a.get_chemical_formula() for a in chiral],
    }
    notes = []
    if not symmetric:
        notes.append(
            "no cubic crystal of at most 8 atoms among the structures (spglib): symmetry, "
            "displacement, relaxation and phonon diagnostics skipped"
        )
    if not chiral:
        notes.append("no periodic structure without symmetry (P1): mirror diagnostic skipped")
    if notes:
        summary["notes"] = notes
        for note in notes:
            say(f"diagnostics: {note}")
    rows = rows_by_structure(space.atoms)

    say("diagnostics: symmetry of stored features")
    from ..structures import structure_hash

    stored = [a for a in candidates if structure_hash(a) in rows]
    features = {m: [space.E[m][rows[structure_hash(a)]] for a in stored] for m in models}
    sym = symmetry_scores(stored, features) if stored else pd.DataFrame()
    files.write_csv(sym, files.SYMMETRY)
    if len(sym):
        summary["symmetry_max_spread"] = sym.groupby("model")["spread"].max().to_dict()

    # the structure with the most symmetry-equivalent sites: moving one breaks the most
    target = max(stored or symmetric, key=lambda a: _shared_sites(a), default=None)
    if target is not None and _shared_sites(target) <= 1:
        target = None
    smallest = sorted(symmetric, key=len)[:n_phonon]
    with_calculator = [m for m in models if m in CALCULATOR_MODELS]
    summary["models_with_calculator"] = with_calculator
    say(
        "diagnostics: displacement series, mirror images, relaxations and phonons "
        f"of {len(models)} models"
    )
    shared = (layer, target, chiral, symmetric, smallest, relax_steps, rattle, random_state)
    jobs = [(m, _projector(space, m), *shared) for m in models]
    results = map_in_workers(
        _diagnose_model,
        jobs,
        n_workers,
        on_done=lambda i, _: say(f"diagnostics: {models[i]} done"),
    )
    errors = [e for r in results for e in r["errors"]]
    if errors:
        summary["errors"] = errors

    series = [r["displacement"] for r in results if r["displacement"] is not None]
    displacement = pd.concat(series, ignore_index=True) if series else pd.DataFrame()
    files.write_csv(displacement, files.DISPLACEMENT)
    if len(displacement):
        summary["displacement_monotonic"] = {
            m: bool(np.all(np.diff(g.sort_values("displacement")["spread"]) > 0))
            for m, g in displacement.groupby("model")
        }

    gaps = [r["mirror"] for r in results if r["mirror"] is not None]
    mirror = pd.concat(gaps, ignore_index=True) if gaps else pd.DataFrame()
    files.write_csv(mirror, files.MIRROR)
    if len(mirror):
        summary["mirror_gap_mean"] = mirror.groupby("model")["gap"].mean().to_dict()

    deviation = deviation_from_consensus(space, symmetric, rows)
    relaxed = [r["relax"] for r in results if r["relax"] is not None]
    relax = pd.concat(relaxed, ignore_index=True) if relaxed else pd.DataFrame()
    if len(relax):
        relax = relax.merge(deviation, on=["model", "structure_hash"], how="left")
        # the label is the loss at the loosest tolerance (judging_symprec: above the rattle
        # and the optimiser's residual); at 1e-5 Å the float32 round-off of every model's
        # forces already breaks symmetry; an unconverged relaxation says nothing
        loosest = max(float(c.removeprefix("lost_")) for c in relax if c.startswith("lost_"))
        relax["lost_label"] = relax[f"lost_{loosest:g}"].where(relax["converged"])
        summary["relax_label"] = f"symmetry lost at symprec {loosest:g} Å, converged runs"
    files.write_csv(relax, files.RELAX)

    formulas = {structure_hash(a): a.get_chemical_formula() for a in smallest}
    phonon_rows = []
    for model, result in zip(models, results, strict=True):
        for key, check in result.get("phonons", []):
            phonon_rows.append(
                {
                    "model": model,
                    "structure_hash": key,
                    "formula": formulas[key],
                    "relaxed_converged": bool(
                        relax.set_index(["model", "structure_hash"]).loc[(model, key), "converged"]
                    ),
                    **{k: v for k, v in check.items() if np.ndim(v) == 0},
                }
            )
    phonons = pd.DataFrame(phonon_rows)
    if len(phonons):
        phonons = phonons.merge(deviation, on=["model", "structure_hash"], how="left")
    files.write_csv(phonons, files.PHONONS)

    auroc_rows = []
    if len(relax):
        converged = relax[relax["converged"]]
        auroc_rows += _auroc_rows(converged, "lost_label", "symmetry lost on relaxation")
        summary["relax_lost"] = int(converged["lost_label"].sum())
        summary["relax_converged"] = len(converged)
        summary["relax_runs"] = len(relax)
    if len(phonons):
        auroc_rows += _auroc_rows(phonons, "imaginary", "imaginary phonon modes")
        summary["phonon_imaginary"] = int(phonons["imaginary"].sum())
        summary["phonon_runs"] = len(phonons)
    aurocs = pd.DataFrame(
        auroc_rows,
        columns=["failure", "pairs", "positives", "negatives", "auroc", "p_value", "note"],
    )
    files.write_csv(aurocs, files.AUROC)
    summary["auroc"] = aurocs.to_dict(orient="records")
    files.write_summary(summary)
    return summary


def diagnose_store(
    store: Any,
    models: Sequence[str],
    structures: Sequence[Atoms],
    out: str | Path,
    *,
    space: dict[str, Any] | None = None,
    random_state: int = 0,
    progress: Callable[[str], None] | None = None,
    **options: Any,
) -> dict[str, Any]:
    """The diagnostics stage: :func:`run_diagnostics` on the common space of a store.

    ``space`` holds the settings of the common space (the keyword arguments of
    :func:`mlipspace.platonic.common_space_from_store`: ``layer``, ``n_anchors``,
    ``anchor_model``, ``method``, ``center``): given the same to
    :func:`mlipspace.platonic.run_platonic`, both use the same anchors, so this summary can
    be handed to its claims. ``random_state`` seeds the anchors and the diagnostics;
    ``options`` go to :func:`run_diagnostics`.
    """
    from ..platonic.space import common_space_from_store

    say = progress or (lambda text: None)
    say("diagnostics: anchors and projection")
    common = common_space_from_store(
        store, models, random_state=random_state, structures=structures, **(space or {})
    )
    return run_diagnostics(
        common, structures, out, random_state=random_state, progress=progress, **options
    )
