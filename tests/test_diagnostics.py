"""Tests of mlipspace.diagnostics: symmetry spread, mirror gap, calculators, relaxation, phonons."""

from __future__ import annotations

import importlib.util

import numpy as np
import pandas as pd
import pytest
from ase import Atoms
from ase.build import bulk
from ase.neighborlist import neighbor_list

from conftest import perovskite, small_structure_set
from mlipspace.diagnostics import (
    CALCULATOR_MODELS,
    auroc,
    auroc_with_note,
    calculator_for,
    cosine_distance,
    displacement_series,
    equivalent_sites,
    judging_symprec,
    mirror_gap,
    mirror_image,
    orbit_spread,
    phonon_check,
    relax_symmetry_loss,
    symmetry_lost,
    symmetry_scores,
)
from mlipspace.errors import MetricInputError, ModelError

HAS_CHGNET = importlib.util.find_spec("chgnet") is not None
HAS_SEVENN = importlib.util.find_spec("sevenn") is not None
HAS_DIEP = importlib.util.find_spec("diep") is not None
needs_chgnet = pytest.mark.skipif(not HAS_CHGNET, reason="chgnet is not installed")
needs_sevenn = pytest.mark.skipif(not HAS_SEVENN, reason="sevenn is not installed")


def rocksalt() -> Atoms:
    return bulk("NaCl", "rocksalt", a=5.64, cubic=True)


def radial_features(atoms: Atoms, cutoff: float = 5.0) -> np.ndarray:
    """An exactly O(3)-invariant per-atom descriptor: smeared neighbour-distance histograms
    per neighbour element (a reference that needs no model)."""
    i, j, d = neighbor_list("ijd", atoms, cutoff)
    species = sorted(set(atoms.numbers.tolist()))
    grid = np.linspace(0.5, cutoff, 40)
    out = np.zeros((len(atoms), len(species), len(grid)))
    for s, z in enumerate(species):
        mask = atoms.numbers[j] == z
        np.add.at(out[:, s], i[mask], np.exp(-((grid[None] - d[mask, None]) ** 2) / 0.02))
    return out.reshape(len(atoms), -1)


# -- orbits and spread (no model) ------------------------------------------------------


def test_equivalent_sites_of_known_crystals():
    assert equivalent_sites(rocksalt()).tolist() == [0, 1, 0, 1, 0, 1, 0, 1]
    # SrTiO3: Sr, Ti, then the three O on one orbit
    assert equivalent_sites(perovskite()).tolist() == [0, 1, 2, 2, 2]
    distorted = perovskite()
    distorted.positions[2] += [0.0, 0.0, 0.05]  # one O leaves its Sr-O plane
    assert equivalent_sites(distorted, symprec=1e-3).tolist() != [0, 1, 2, 2, 2]


def test_equivalent_sites_needs_a_cell():
    with pytest.raises(MetricInputError, match="non-zero volume"):
        equivalent_sites(Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]]))


def test_orbit_spread_known_values():
    Z = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    assert orbit_spread(Z, [0, 0, 2, 3]) == 0.0  # parallel rows, singleton orbits ignored
    assert orbit_spread(Z, [0, 0, 0, 3]) == pytest.approx(1.0)  # cos(x, y) = 0
    assert orbit_spread(Z, [0, 1, 2, 0]) == pytest.approx(1 - 1 / np.sqrt(2))
    assert orbit_spread(Z, [0, 1, 2, 3]) == 0.0
    # invariant to rescaling rows and to a rotation of feature space
    R = np.linalg.qr(np.random.default_rng(0).normal(size=(2, 2)))[0]
    assert orbit_spread(3.0 * Z @ R, [0, 1, 2, 0]) == pytest.approx(1 - 1 / np.sqrt(2))


def test_orbit_spread_validates():
    with pytest.raises(MetricInputError, match="one orbit label per row"):
        orbit_spread(np.ones((3, 2)), [0, 0])
    with pytest.raises(MetricInputError, match="non-finite"):
        orbit_spread(np.array([[np.nan, 1.0], [1.0, 1.0]]), [0, 0])


def test_cosine_distance_is_exact_for_nearly_parallel_rows():
    a = np.array([[1.0, 0.0]])
    b = np.array([[1.0, 1e-6]])
    assert cosine_distance(a, b)[0] == pytest.approx(0.5e-12, rel=1e-6)
    with pytest.raises(MetricInputError):
        cosine_distance(np.ones((2, 2)), np.ones((3, 2)))


def test_spread_of_an_invariant_descriptor_is_zero_then_grows():
    atoms = rocksalt()
    orbits = equivalent_sites(atoms)
    assert orbit_spread(radial_features(atoms), orbits) < 1e-14
    spreads = []
    for d in (0.005, 0.01, 0.02, 0.05):
        moved = atoms.copy()
        moved.positions[0] += d * np.array([1.0, 0.3, 0.2]) / np.linalg.norm([1.0, 0.3, 0.2])
        spreads.append(orbit_spread(radial_features(moved), orbits))
    assert spreads[0] > 1e-8
    assert np.all(np.diff(spreads) > 0)


def test_symmetry_scores_from_arrays():
    structures = [rocksalt(), perovskite()]
    moved = perovskite()
    moved.positions[2, 2] += 0.05
    features = [radial_features(a) for a in (rocksalt(), moved)]
    table = symmetry_scores(structures, {"radial": features})
    assert list(table.columns[:5]) == ["model", "structure_hash", "formula", "n_atoms", "n_orbits"]
    assert table["n_orbits"].tolist() == [2, 3]
    assert table["n_shared"].tolist() == [2, 1]
    assert table["spread"].iloc[0] < 1e-14
    assert table["spread"].iloc[1] > 1e-4
    with pytest.raises(MetricInputError, match="2 structures"):
        symmetry_scores(structures, {"radial": features[:1]})


def test_mirror_image_is_an_improper_copy():
    atoms = small_structure_set()[0]  # rattled Si: chiral
    image = mirror_image(atoms)
    assert np.linalg.det(image.cell.array) > 0
    np.testing.assert_allclose(
        image.get_all_distances(mic=True), atoms.get_all_distances(mic=True), atol=1e-10
    )

    def handedness(a: Atoms) -> float:
        p = a.positions
        return float(np.linalg.det(np.stack([p[1] - p[0], p[2] - p[0], p[3] - p[0]])))

    assert handedness(image) == pytest.approx(-handedness(atoms))
    # an exactly O(3)-invariant descriptor cannot tell them apart
    gap = cosine_distance(radial_features(atoms), radial_features(image))
    assert gap.max() < 1e-14


def test_symmetry_lost_compares_operation_counts():
    ideal = rocksalt()
    broken = rocksalt()
    broken.positions[0] += [0.03, 0.01, 0.0]
    assert symmetry_lost(ideal, broken, 1e-3)
    assert not symmetry_lost(broken, ideal, 1e-3)  # a gain is not a loss
    assert not symmetry_lost(ideal, ideal.copy(), 1e-5)


# -- AUROC --------------------------------------------------------------------------------


def test_auroc_known_inputs():
    assert auroc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.75)
    assert auroc([1, 2, 3, 4], [False, False, True, True]) == 1.0
    assert auroc([4, 3, 2, 1], [0, 0, 1, 1]) == 0.0
    assert auroc([1, 1, 1, 1], [0, 1, 0, 1]) == 0.5


def test_auroc_equals_the_mann_whitney_count():
    rng = np.random.default_rng(3)
    scores = np.round(rng.normal(size=60), 1)  # with ties
    labels = rng.random(60) < 0.4
    pos, neg = scores[labels], scores[~labels]
    expected = ((pos[:, None] > neg[None]).sum() + 0.5 * (pos[:, None] == neg[None]).sum()) / (
        len(pos) * len(neg)
    )
    assert auroc(scores, labels) == pytest.approx(expected, abs=1e-12)


def test_auroc_one_class_is_nan_with_a_reason():
    with pytest.warns(RuntimeWarning, match="all 3 labels are negative"):
        assert np.isnan(auroc([0.1, 0.2, 0.3], [0, 0, 0]))
    value, note = auroc_with_note([0.1, 0.2], [True, True])
    assert np.isnan(value) and note == "AUROC undefined: all 2 labels are positive"
    assert auroc_with_note([0.1, 0.2], [0, 1]) == (1.0, "")


def test_auroc_validates():
    with pytest.raises(MetricInputError, match="binary"):
        auroc([0.1, 0.2, 0.3], [0, 1, 2])
    with pytest.raises(MetricInputError, match="one label per score"):
        auroc([0.1, 0.2, 0.3], [0, 1])
    with pytest.raises(MetricInputError, match="non-finite"):
        auroc([0.1, np.nan], [0, 1])


# -- calculators ------------------------------------------------------------------------------


def test_calculator_for_unknown_model_lists_the_supported_ones():
    with pytest.raises(ModelError, match=r"'soap'.*chgnet-0\.3\.0.*diep"):
        calculator_for("soap")
    assert "sevennet-mf-0:PBE" in CALCULATOR_MODELS


def _numerical_stress_matches(calc, atoms: Atoms, h: float = 1e-3) -> None:
    """Analytic stress against central differences of the energy under small strains."""
    atoms = atoms.copy()
    atoms.calc = calc
    analytic = atoms.get_stress(voigt=False)
    cell, volume = atoms.cell.array.copy(), atoms.get_volume()
    numeric = np.zeros((3, 3))
    for i, j in [(0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)]:
        energies = []
        for sign in (1, -1):
            strain = np.eye(3)
            strain[i, j] += sign * h / (1 if i == j else 2)
            strain[j, i] = strain[i, j]
            atoms.set_cell(cell @ strain, scale_atoms=True)
            energies.append(atoms.get_potential_energy())
        numeric[i, j] = numeric[j, i] = (energies[0] - energies[1]) / (2 * h * volume)
    scale = np.abs(numeric).max()
    assert scale > 1e-3  # the strained cell is clearly stressed (eV/Å^3)
    np.testing.assert_allclose(analytic, numeric, atol=0.05 * scale)


@pytest.mark.models
@needs_chgnet
def test_chgnet_calculator_agrees_with_the_adapter():
    from mlipspace.featurization import load_model

    calc = calculator_for("chgnet-0.3.0")
    structures = [rocksalt(), small_structure_set()[0]]
    _, energies = load_model("chgnet-0.3.0").forward(structures, ["node"])
    for atoms, expected in zip(structures, energies, strict=True):
        atoms = atoms.copy()
        atoms.calc = calc
        # float32 model: one full-suite run (session 6) saw the batched adapter 1.7e-4 eV (6e-6
        # relative) away from the calculator on the 8-atom cell, not reproducible in isolation;
        # another checkpoint is far outside 2e-5 relative (0.2.0: 0.16 eV, 5e-3 relative)
        assert atoms.get_potential_energy() == pytest.approx(expected, rel=2e-5, abs=1e-4)
    squeezed = bulk("NaCl", "rocksalt", a=5.45)
    _numerical_stress_matches(calc, squeezed)


@pytest.mark.models
@pytest.mark.skipif(not HAS_DIEP, reason="diep is not installed")
def test_diep_calculator_stress_is_in_ev_per_cubic_angstrom():
    _numerical_stress_matches(calculator_for("diep"), bulk("NaCl", "rocksalt", a=5.45))


# -- features of real models ----------------------------------------------------------------


@pytest.mark.models
@pytest.mark.parametrize(
    "model",
    [
        pytest.param("chgnet-0.3.0", marks=needs_chgnet),
        pytest.param("sevennet-0", marks=needs_sevenn),
    ],
)
def test_displacement_spread_grows_monotonically(model):
    table = displacement_series(rocksalt(), model, site=0, layer="node", random_state=0)
    spread = table["spread"].to_numpy()
    assert table["displacement"].tolist() == [0.0, 0.005, 0.01, 0.02, 0.05]
    assert spread[0] < 1e-11  # float32 round-off of equal environments
    assert spread[1] > 10 * max(spread[0], 1e-13)
    assert np.all(np.diff(spread) > 0)


@pytest.mark.models
@needs_chgnet
def test_symmetry_scores_of_featurized_crystals_are_round_off():
    import mlipspace

    structures = [rocksalt(), perovskite()]
    feats = mlipspace.featurize(structures, "chgnet-0.3.0", layer="node", progress=False)
    table = symmetry_scores(structures, {"chgnet-0.3.0": feats})
    assert (table["spread"] < 1e-11).all()
    assert (table["note"] == "").all()


@pytest.mark.models
@needs_chgnet
@needs_sevenn
def test_mirror_gap_separates_parity_tracking_models():
    import mlipspace
    from mlipspace.anchors import RelativeProjector

    structures = small_structure_set()
    chiral = [structures[0], structures[3]]  # rattled Si8 and SrTiO3
    gaps = {}
    for model in ("chgnet-0.3.0", "sevennet-0"):
        raw = mirror_gap(chiral, model)
        assert (raw["space"] == "raw").all()
        A = mlipspace.featurize(structures, model, layer="node", progress=False).X
        projected = mirror_gap(chiral, model, projector=RelativeProjector().fit(A))
        assert (projected["space"] == "projected").all()
        gaps[model] = (raw["gap"].to_numpy(), projected["gap"].to_numpy())
    chg_raw, chg_proj = gaps["chgnet-0.3.0"]
    sev_raw, sev_proj = gaps["sevennet-0"]
    assert chg_raw.max() < 1e-11 and chg_proj.max() < 1e-11
    # measured: sevennet-0 1.6e-8 (Si8) and 4.0e-9 (SrTiO3) against chgnet 5e-15
    assert sev_raw.min() > 1e-10
    assert sev_proj.min() > 1e-12
    assert np.all(sev_raw > 100 * chg_raw)


# -- relaxation and phonons ---------------------------------------------------------------------


@pytest.mark.models
@needs_chgnet
def test_relaxing_a_rattled_crystal_restores_its_symmetry():
    # silicon: stiff enough that fmax = 0.01 eV/Å leaves ~1e-3 Å of residual displacement
    # (a soft NaCl cell stays off its ideal positions by ~0.01 Å at that fmax)
    si = bulk("Si", a=5.43)
    calc = calculator_for("chgnet-0.3.0")
    table = relax_symmetry_loss(
        [si], calc, fmax=0.01, steps=100, symprec=(0.02, 1e-5), rattle=0.05, random_state=1
    )
    row = table.iloc[0]
    assert row["converged"] and row["steps"] <= 100 and row["fmax_final"] < 0.01
    assert row["sg_before_0.02"] == 227 and row["sg_after_0.02"] == 227
    assert not row["lost_0.02"]
    # the residual displacement (~fmax / stiffness) is far above 1e-5 Å
    assert row["sg_after_1e-05"] != 227 and row["lost_1e-05"] and row["lost"]
    # the same rattle, relaxed by hand from the rattled start, ends lower in energy
    start = si.copy()
    start.positions += np.random.default_rng(1).normal(scale=0.05, size=(2, 3))
    start.calc = calc
    assert row["energy_per_atom"] < start.get_potential_energy() / len(start)


def test_a_rattle_is_judged_above_its_own_displacements():
    assert judging_symprec(0.0) == 1e-3 and judging_symprec(0.03) == pytest.approx(0.09)
    assert judging_symprec(1e-5, floor=1e-3) == 1e-3
    with pytest.raises(MetricInputError, match="rattle >= 0"):
        judging_symprec(-0.01)


@pytest.mark.models
@needs_chgnet
def test_a_converged_relaxation_back_to_the_cubic_cell_is_not_a_loss_at_the_judging_tolerance():
    # SrTiO3 is soft: a relaxation from a 0.03 Å rattle that converges (fmax 0.01 eV/Å) back
    # to the cubic cell still leaves more than 0.01 Å of residual displacement. At 1e-3 Å
    # that reads as lost symmetry (what the demo's labels said for every run before
    # judging_symprec); at the judging tolerance it does not, and a real polar distortion
    # of the cell still is a loss there
    cubic = perovskite()
    rattle = 0.03
    tolerance = judging_symprec(rattle)
    calc = calculator_for("chgnet-0.3.0")
    table = relax_symmetry_loss(
        [cubic], calc, steps=100, symprec=(tolerance, 1e-3), rattle=rattle, random_state=0
    )
    row = table.iloc[0]
    assert row["converged"]
    assert row[f"lost_{1e-3:g}"] and not row[f"lost_{tolerance:g}"]
    assert row[f"sg_after_{tolerance:g}"] == 221
    moved = cubic.copy()
    moved.positions[1, 2] += 0.25  # Ti off centre: a polar distortion
    assert symmetry_lost(cubic, moved, tolerance)


@pytest.mark.models
@needs_chgnet
def test_phonons_of_silicon_have_no_imaginary_modes():
    from ase.units import _amu, _e

    si = bulk("Si", a=5.43)
    calc = calculator_for("chgnet-0.3.0")
    out = phonon_check(si, calc, supercell=(2, 2, 2), mesh=(4, 4, 4))
    assert not out["imaginary"]
    assert out["min_frequency"] > 0
    assert out["max_gamma_acoustic"] < 0.1
    assert out["frequencies"].shape[1] == 6
    # independent check of the Γ optical frequency: displace one atom of the primitive cell
    # (all its images move together, which is exactly the Γ dynamical matrix) by ±h
    h = 0.01
    forces = []
    for sign in (1, -1):
        moved = si.copy()
        moved.positions[0, 0] += sign * h
        moved.calc = calc
        forces.append(moved.get_forces()[0, 0])
    k = -(forces[0] - forces[1]) / (2 * h)  # eV/Å^2
    mu = si.get_masses()[0] / 2  # reduced mass, amu
    thz = np.sqrt(k * _e * 1e20 / (mu * _amu)) / (2 * np.pi) / 1e12
    optical = np.sort(out["gamma"])[3:]
    np.testing.assert_allclose(optical, thz, rtol=0.02)


# -- the whole diagnostics run on a real common space ------------------------------------


@needs_chgnet
def test_run_diagnostics_on_a_chgnet_common_space(tmp_path):
    import json

    import mlipspace
    from mlipspace.diagnostics.run import diagnose_store, high_symmetry_structures
    from mlipspace.platonic import run_platonic
    from mlipspace.results import PlatonicFiles

    structures = mlipspace.demo_structures("small")
    picked = high_symmetry_structures(structures, 2)
    assert picked and all(symmetry_lost(a, a) is False for a in picked)
    store = mlipspace.FeatureStore(tmp_path / "s.zarr")
    models = ["chgnet-0.3.0", "chgnet-0.2.0"]
    for model in [*models, "soap"]:
        # sparse random packings leave an atom with no neighbour within CHGNet 0.2.0's cutoff
        mlipspace.featurize(
            structures, model, layer="node", store=store, progress=False, on_unsupported="skip"
        )
    # the diagnostics stage on the Platonic run's space, then its summary into the claims
    space = dict(n_anchors=32, method="fps")
    diagnosed = diagnose_store(
        store,
        models,
        structures,
        PlatonicFiles(tmp_path).diagnostics.folder,
        n_symmetric=2,
        n_mirror=1,
        n_phonon=1,
        relax_steps=60,
        space=space,
    )
    platonic = run_platonic(
        store,
        models,
        tmp_path,
        structures=structures,
        n_atoms=300,
        ot_atoms=200,
        robustness=False,
        diagnostics_summary=diagnosed,
        **space,
    )
    summary = platonic["diagnostics"]
    assert summary is diagnosed
    assert json.loads((tmp_path / "summary.json").read_text())["diagnostics"] == json.loads(
        json.dumps(summary, default=float)
    )
    assert (tmp_path / "claims.csv").exists() and (tmp_path / "transport.csv").exists()
    for name in ("symmetry", "displacement", "mirror_gap", "relax", "phonons", "auroc"):
        assert (tmp_path / "diagnostics" / f"{name}.csv").exists(), name
    # CHGNet is exactly invariant: stored symmetric sites coincide, spread grows when moved
    assert max(summary["symmetry_max_spread"].values()) < 1e-5
    assert summary["displacement_monotonic"] == {m: True for m in models}
    assert summary["relax_runs"] == 4 and summary["phonon_runs"] == 2
    relax = pd.read_csv(tmp_path / "diagnostics" / "relax.csv")
    # started exactly on the symmetric cell, an invariant model keeps its symmetry at the
    # label's tolerance (1e-3 Å). At 1e-5 Å float32 round-off can break it over a relaxation
    # that changes the volume by 25% (CHGNet 0.2.0 on Li4S4 with AVX-512 kernels): the
    # column is reported, not used as the label.
    assert not relax.loc[relax["converged"], "lost_label"].astype(bool).any()
    assert set(relax["lost_label"].dropna()) <= {True, False}
    assert relax["deviation"].notna().all()
    assert set(summary["mirror_gap_mean"]) == set(models)
    assert all(n >= 4 for n in pd.read_csv(tmp_path / "diagnostics" / "mirror_gap.csv")["n_atoms"])
    written = json.loads((tmp_path / "diagnostics" / "summary.json").read_text())
    assert written["models_with_calculator"] == models
