"""Physical checks of a model's potential: symmetry loss on relaxation, phonons, and AUROC.

These give the labels the latent diagnostics are scored against: does a model lose a
crystal's symmetry when relaxing it without constraints, does it predict imaginary
phonon modes, and how well does a latent score (orbit spread, mirror gap, dispersion
from the consensus) rank the failing cases first (:func:`auroc`).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from ase import Atoms

from ..errors import MetricInputError
from .symmetry import symmetry_dataset

__all__ = [
    "IMAGINARY_THRESHOLD_THZ",
    "auroc",
    "auroc_with_note",
    "judging_symprec",
    "phonon_check",
    "relax_symmetry_loss",
    "symmetry_lost",
]

#: a mode below this frequency (THz; phonopy reports imaginary modes as negative) is imaginary
IMAGINARY_THRESHOLD_THZ = -0.1
OPTIMIZERS = ("FIRE", "BFGS")


def _calculator(model: Any, device: str) -> Any:
    """A calculator from a model name, or ``model`` itself when it is already one."""
    if isinstance(model, str):
        from .calculators import calculator_for

        return calculator_for(model, device=device)
    if not hasattr(model, "get_potential_energy") and not hasattr(model, "calculate"):
        raise MetricInputError(f"model must be a model name or an ASE calculator, not {model!r}")
    return model


def _model_label(model: Any) -> str:
    return model if isinstance(model, str) else type(model).__name__


def _symprecs(symprec: float | Sequence[float]) -> list[float]:
    values = [float(symprec)] if np.isscalar(symprec) else [float(s) for s in symprec]
    if not values or min(values) <= 0:
        raise MetricInputError(f"symprec must be positive, got {symprec!r}")
    return values


def symmetry_lost(before: Atoms, after: Atoms, symprec: float = 1e-3) -> bool:
    """Whether ``after`` has fewer symmetry operations than ``before`` (same atoms).

    Both structures have the same atoms in the same cell setting, so the number of
    space-group operations spglib finds is comparable; a relaxation that gains symmetry
    (a rattled crystal returning to its ideal positions) is not a loss.
    """
    if len(before) != len(after):
        raise MetricInputError("symmetry_lost compares two states of the same atoms")
    n_before = len(symmetry_dataset(before, symprec).rotations)
    n_after = len(symmetry_dataset(after, symprec).rotations)
    return n_after < n_before


def judging_symprec(rattle: float, floor: float = 1e-3) -> float:
    """The spglib tolerance (Å) a relaxation's symmetry loss is judged at.

    A relaxation that converges (fmax 0.01 eV/Å) back to the symmetric structure still
    leaves a residual displacement of about fmax / stiffness: ~1e-3 Å in Si, more than
    0.01 Å in a soft perovskite (CHGNet on SrTiO3 from a 0.03 Å rattle). Judged at 1e-3 Å,
    every such run reads as a loss. With a rattle the loss is judged at three σ of it: a
    run counts as lost when the atoms or the cell end farther from the symmetric structure
    than a typical rattled displacement (the usual tolerance for relaxed structures is of
    the same order, ~0.1 Å). Without a rattle, ``floor``, above float32 round-off.

    Parameters
    ----------
    rattle : float
        Standard deviation of the rattle (Å), 0 for none.
    floor : float, default=1e-3
        Smallest tolerance (Å).

    Returns
    -------
    float
    """
    if rattle < 0 or floor <= 0:
        raise MetricInputError(f"need rattle >= 0 and floor > 0, got {rattle} and {floor}")
    return max(floor, 3.0 * rattle)


def relax_symmetry_loss(
    structures: Sequence[Atoms],
    model: Any,
    fmax: float = 0.01,
    steps: int = 200,
    symprec: float | Sequence[float] = (1e-3, 1e-5),
    optimizer: str = "FIRE",
    relax_cell: bool = True,
    rattle: float = 0.0,
    random_state: int | None = 0,
    device: str = "cpu",
    return_structures: bool = False,
) -> pd.DataFrame | tuple[pd.DataFrame, list[Atoms]]:
    """Relax structures with a model, without symmetry constraints, and record symmetry.

    Started exactly on a high-symmetry structure, an exactly equivariant model's forces
    and stress keep every symmetry (up to float32 round-off), so the structure can only
    stay on that saddle or minimum. ``rattle`` displaces the atoms first (Gaussian,
    seeded) to let an unstable structure fall away; the symmetry *before* is always that
    of the given structure, so a relaxation that does not return to it counts as a loss.

    Parameters
    ----------
    structures : list of ase.Atoms
        Periodic structures (copied, never changed).
    model : str or ase Calculator
        A name of :data:`~mlipspace.diagnostics.calculators.CALCULATOR_MODELS`, or a
        calculator (used for every structure).
    fmax : float, default=0.01
        Convergence threshold on forces (eV/Å; the cell filter scales stress into it).
    steps : int, default=200
        Largest number of optimiser steps.
    symprec : float or sequence of float, default=(1e-3, 1e-5)
        spglib tolerances (Å) the symmetry is recorded at.
    optimizer : {"FIRE", "BFGS"}, default="FIRE"
        ASE optimiser.
    relax_cell : bool, default=True
        Relax the cell too (``FrechetCellFilter``); positions only otherwise.
    rattle : float, default=0.0
        Standard deviation (Å) of the random displacement of every atom before relaxing.
    random_state : int or None, default=0
        Seed of ``rattle`` (one stream for all structures, in order).
    device : str, default="cpu"
        Torch device of the calculator built from a model name.
    return_structures : bool, default=False
        Also return the relaxed structures (without calculator), in order.

    Returns
    -------
    DataFrame
        One row per structure: ``model, structure_hash, formula, n_atoms, converged,
        steps, energy_per_atom`` (final, eV/atom), ``fmax_final``, ``volume_change``
        (relative), then for every ``symprec`` value ``p``: ``sg_before_<p>`` (of the
        given structure), ``sg_after_<p>`` (space-group numbers) and ``lost_<p>``
        (:func:`symmetry_lost`), and ``lost`` (lost at any tolerance).
    """
    from ase.filters import FrechetCellFilter
    from ase.optimize import BFGS, FIRE

    from ..structures import structure_hash

    if optimizer not in OPTIMIZERS:
        raise MetricInputError(f"optimizer must be one of {OPTIMIZERS}, not {optimizer!r}")
    if fmax <= 0 or steps < 0 or rattle < 0:
        raise MetricInputError(
            f"need fmax > 0, steps >= 0 and rattle >= 0, got {fmax}, {steps}, {rattle}"
        )
    rng = np.random.default_rng(random_state)
    precisions = _symprecs(symprec)
    calc = _calculator(model, device)
    rows = []
    relaxed_structures = []
    for original in structures:
        atoms = original.copy()
        if rattle > 0:
            atoms.positions += rng.normal(scale=rattle, size=atoms.positions.shape)
        atoms.calc = calc
        target = FrechetCellFilter(atoms) if relax_cell else atoms
        opt = (FIRE if optimizer == "FIRE" else BFGS)(target, logfile=None)
        converged = bool(opt.run(fmax=fmax, steps=steps))
        forces = target.get_forces()
        row: dict[str, Any] = {
            "model": _model_label(model),
            "structure_hash": structure_hash(original),
            "formula": original.get_chemical_formula(),
            "n_atoms": len(original),
            "converged": converged,
            "steps": int(opt.nsteps),
            "energy_per_atom": float(atoms.get_potential_energy()) / len(atoms),
            "fmax_final": float(np.sqrt((forces**2).sum(axis=1)).max()),
            "volume_change": float(atoms.get_volume() / original.get_volume() - 1.0),
        }
        relaxed = atoms.copy()
        relaxed.calc = None
        lost_any = False
        for p in precisions:
            row[f"sg_before_{p:g}"] = int(symmetry_dataset(original, p).number)
            row[f"sg_after_{p:g}"] = int(symmetry_dataset(relaxed, p).number)
            row[f"lost_{p:g}"] = symmetry_lost(original, relaxed, p)
            lost_any |= row[f"lost_{p:g}"]
        row["lost"] = lost_any
        rows.append(row)
        relaxed_structures.append(relaxed)
    table = pd.DataFrame(rows)
    return (table, relaxed_structures) if return_structures else table


def phonon_check(
    atoms: Atoms,
    model: Any,
    supercell: Sequence[int] = (2, 2, 2),
    displacement: float = 0.01,
    mesh: Sequence[int] = (8, 8, 8),
    device: str = "cpu",
) -> dict[str, Any]:
    """Harmonic phonons of a structure with a model (phonopy, finite displacements).

    The force constants are not symmetrised, so a model's violation of the acoustic sum
    rule shows up as non-zero acoustic frequencies at Γ. Residual forces of the
    undisplaced supercell (non-zero when ``atoms`` is not at the model's equilibrium) are
    subtracted from the displaced ones and reported.

    Parameters
    ----------
    atoms : ase.Atoms
        The unit cell (ideally relaxed with the same model).
    model : str or ase Calculator
        A model name with a calculator, or a calculator.
    supercell : 3 ints, default=(2, 2, 2)
        Supercell of ``atoms`` the force constants are computed in.
    displacement : float, default=0.01
        Displacement amplitude (Å).
    mesh : 3 ints, default=(8, 8, 8)
        Γ-centred q-point mesh the frequencies are sampled on.
    device : str, default="cpu"

    Returns
    -------
    dict
        ``frequencies`` (n_q, 3 n_atoms) in THz on the mesh (imaginary as negative),
        ``gamma`` (the Γ frequencies), ``min_frequency`` (lowest frequency after removing
        the three acoustic modes at Γ), ``max_gamma_acoustic`` (largest |f| of the three
        acoustic modes at Γ), ``imaginary`` (``min_frequency`` below
        :data:`IMAGINARY_THRESHOLD_THZ`), ``max_residual_force`` (eV/Å),
        ``n_displacements``.
    """
    from phonopy import Phonopy
    from phonopy.structure.atoms import PhonopyAtoms

    supercell = [int(n) for n in supercell]
    mesh = [int(n) for n in mesh]
    if len(supercell) != 3 or min(supercell) < 1 or len(mesh) != 3 or min(mesh) < 1:
        raise MetricInputError(f"supercell and mesh need 3 positive ints, got {supercell}, {mesh}")
    if not displacement > 0:
        raise MetricInputError(f"displacement must be positive, got {displacement}")
    calc = _calculator(model, device)
    unitcell = PhonopyAtoms(
        symbols=atoms.get_chemical_symbols(),
        cell=atoms.cell.array,
        scaled_positions=atoms.get_scaled_positions(),
        masses=atoms.get_masses(),
    )
    # "P": the given cell is the primitive cell (phonopy < 4 default; 4 picks one itself)
    phonon = Phonopy(unitcell, supercell_matrix=np.diag(supercell), primitive_matrix="P")
    phonon.generate_displacements(distance=float(displacement))

    def forces_of(cell: PhonopyAtoms) -> np.ndarray:
        sc = Atoms(cell.symbols, cell=cell.cell, scaled_positions=cell.scaled_positions, pbc=True)
        sc.calc = calc
        return np.asarray(sc.get_forces(), dtype=np.float64)

    residual = forces_of(phonon.supercell)
    phonon.forces = np.array(
        [forces_of(sc) - residual for sc in phonon.supercells_with_displacements]
    )
    phonon.produce_force_constants()
    phonon.run_mesh(mesh, is_gamma_center=True)
    frequencies = np.asarray(phonon.mesh.frequencies, dtype=np.float64)
    qpoints = np.asarray(phonon.mesh.qpoints, dtype=np.float64)
    phonon.run_qpoints([[0.0, 0.0, 0.0]])
    gamma = np.asarray(phonon.qpoints.frequencies[0], dtype=np.float64)
    acoustic = np.argsort(np.abs(gamma))[:3]
    optical_gamma = np.delete(gamma, acoustic)
    # every mesh point but Γ (the Γ-centred mesh holds it once, at q = 0)
    off_gamma = frequencies[np.linalg.norm(qpoints, axis=1) > 1e-12]
    candidates = np.concatenate([off_gamma.ravel(), optical_gamma])
    min_frequency = float(candidates.min()) if candidates.size else float("nan")
    return {
        "frequencies": frequencies,
        "gamma": gamma,
        "min_frequency": min_frequency,
        "max_gamma_acoustic": float(np.abs(gamma[acoustic]).max()),
        "imaginary": bool(min_frequency < IMAGINARY_THRESHOLD_THZ),
        "max_residual_force": float(np.abs(residual).max()),
        "n_displacements": len(phonon.supercells_with_displacements),
    }


def auroc_with_note(scores: Sequence[float], labels: Sequence[Any]) -> tuple[float, str]:
    """Area under the ROC curve of ``scores`` for binary ``labels``, with a note.

    Returns
    -------
    auroc : float
        ``sklearn.metrics.roc_auc_score(labels, scores)``; NaN when it is undefined.
    note : str
        Empty when ``auroc`` is a number; otherwise why it is NaN (only one class).
    """
    from sklearn.metrics import roc_auc_score

    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel()
    if s.shape != y.shape or s.size == 0:
        raise MetricInputError(
            f"auroc needs one label per score, got {s.shape} scores and {y.shape} labels"
        )
    if not np.isfinite(s).all():
        raise MetricInputError("auroc: scores hold non-finite values")
    if y.dtype != bool:
        values = set(np.unique(y).tolist())
        if not values <= {0, 1}:
            raise MetricInputError(
                f"auroc needs binary labels (bool or 0/1), got values {sorted(values)}"
            )
        y = y.astype(bool)
    n_pos = int(y.sum())
    if n_pos in (0, y.size):
        which = "positive" if n_pos else "negative"
        return float("nan"), f"AUROC undefined: all {y.size} labels are {which}"
    return float(roc_auc_score(y, s)), ""


def auroc(scores: Sequence[float], labels: Sequence[Any]) -> float:
    """Area under the ROC curve: how well ``scores`` rank the positive ``labels`` first.

    Parameters
    ----------
    scores : array of shape (n,)
        Higher means "more likely positive" (e.g. a latent distortion score).
    labels : array of shape (n,)
        Binary labels (bool or 0/1), e.g. "lost symmetry on relaxation".

    Returns
    -------
    float
        In [0, 1]; 0.5 is chance. NaN, with a ``RuntimeWarning`` giving the reason, when
        only one class is present (the AUROC is undefined). Tables should use
        :func:`auroc_with_note` and carry the note in a ``note`` column.

    Examples
    --------
    >>> auroc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
    0.75
    """
    value, note = auroc_with_note(scores, labels)
    if note:
        warnings.warn(note, RuntimeWarning, stacklevel=2)
    return value
