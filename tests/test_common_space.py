"""The default common space, chosen by evidence on synthetic models that share their geometry.

Two "models" are different nonlinear maps (tanh and a scaled softplus, of different
widths) of one latent, each with its own large offset, so they share their geometry by
construction but not their coordinates. The default projection (data-centred, standardised)
must recover the shared geometry: atoms find their counterparts among the other model's
atoms, and a head trained on one model classifies the other's atoms zero-shot. The uncentred
cosine (the paper's formula as far as it is known) must be shown to fail it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlipspace.anchors import RelativeProjector, standardize_columns
from mlipspace.errors import MetricInputError
from mlipspace.features import AtomFeatures
from mlipspace.platonic import pair_agreement, rowwise_cosine, stitching
from mlipspace.platonic.space import (
    DEFAULT_CENTER,
    DEFAULT_STANDARDIZE,
    anchor_coverage,
    anchor_selection_features,
    build_common_space,
    project,
    reprojected,
)

ELEMENTS = np.array([3, 8, 14, 26, 79])


def shared_geometry(n_structures: int = 240, per: int = 5, random_state: int = 0):
    """Two models' features of one latent (five classes), the latent as anchor features."""
    rng = np.random.default_rng(random_state)
    n = n_structures * per
    centres = rng.normal(scale=2.0, size=(len(ELEMENTS), 6))
    y = rng.integers(len(ELEMENTS), size=n)
    u = centres[y] + rng.normal(size=(n, 6))
    WA, WB = rng.normal(size=(6, 64)) / np.sqrt(6), rng.normal(size=(6, 96)) / np.sqrt(6)
    EA = np.tanh(u @ WA + rng.normal(size=64)) + 3.0 * rng.uniform(0.5, 1.5, size=64)
    EB = np.log1p(np.exp(u @ WB + rng.normal(size=96))) * rng.uniform(0.5, 2, size=96) + 5.0
    hashes = np.array([f"s{i}" for i in range(n_structures)])
    table = pd.DataFrame(
        {
            "structure_hash": hashes,
            "n_atoms": per,
            "subset": np.where(np.arange(n_structures) % 2, "binary", "molecule"),
            "source": "synthetic",
            "parent": "",
        }
    )
    index = np.repeat(np.arange(n_structures), per)

    def features(X: np.ndarray, name: str) -> AtomFeatures:
        return AtomFeatures(
            X=X,
            structure_hash=hashes[index],
            site=np.tile(np.arange(per), n_structures),
            numbers=ELEMENTS[y],
            structure_index=index,
            structures=table,
            model=name,
            layer="node",
        )

    tables = {"model-a": features(EA, "model-a"), "model-b": features(EB, "model-b")}
    return tables, features(u, "latent"), y


@pytest.fixture(scope="module")
def space():
    tables, latent, y = shared_geometry()
    return build_common_space(tables, latent, n_anchors=48, method="random"), y


def _shifted_cosine(space, rows) -> tuple[float, float]:
    """Matched cosine and the cosine of atoms paired at random, model A against model B."""
    ZA, ZB = space.Z["model-a"][rows], space.Z["model-b"][rows]
    shift = np.roll(np.arange(len(rows)), len(rows) // 2)
    return float(rowwise_cosine(ZA, ZB).mean()), float(rowwise_cosine(ZA, ZB[shift]).mean())


def test_default_projection_recovers_shared_geometry(space):
    space, y = space
    assert space.settings["center"] == DEFAULT_CENTER == "data"
    assert space.settings["standardize"] is DEFAULT_STANDARDIZE is True
    df = pair_agreement(space, n_atoms=800).set_index(["source", "target"])
    ab = df.loc[("model-a", "model-b")]
    chance = 10 / 800
    assert ab.top10 > 0.5 and ab.top10 > 30 * chance  # counterparts found among 800 atoms
    assert ab.top1_element > 0.85  # the classes overlap a little in the latent
    rows = np.asarray(df.attrs["rows"])
    matched, random_pairs = _shifted_cosine(space, rows)
    assert matched - random_pairs > 0.6  # a matched atom is far closer than a random one
    # a head trained on one model's coordinates classifies the other's atoms zero-shot, both
    # ways, far above chance (below the in-model accuracy: the two nonlinear maps bend the
    # latent differently, and the head's ridge strength is tuned on the source alone)
    stitched = stitching(space, {"class": y}, n_atoms=1000).set_index(["source", "target"])
    for pair in (("model-a", "model-b"), ("model-b", "model-a")):
        zs = stitched.loc[pair]
        assert zs.zero_shot > zs.chance + 0.35
        assert zs.in_model > zs.zero_shot
        assert zs.raw < zs.chance + 0.1  # raw coordinates of different widths do not transfer


def test_uncentred_cosines_fail_the_shared_geometry(space):
    space, _ = space
    raw = reprojected(space, "none", False)
    assert raw.settings["center"] == "none"
    rows = space.evaluation_rows(800)
    matched, random_pairs = _shifted_cosine(raw, rows)
    # every atom of one model looks like every atom of the other: the offsets dominate
    assert random_pairs > 0.95
    assert matched - random_pairs < 0.02
    within = rowwise_cosine(raw.Z["model-a"][rows], raw.Z["model-a"][rows[::-1]]).mean()
    assert within > 0.95  # atoms of one model collapse on its mean direction
    default = pair_agreement(space, n_atoms=800).set_index(["source", "target"])
    uncentred = pair_agreement(raw, n_atoms=800, raw_baseline=False)
    uncentred = uncentred.set_index(["source", "target"])
    pair = ("model-a", "model-b")
    assert uncentred.loc[pair].top10 < default.loc[pair].top10 - 0.15
    assert "raw_top10" not in uncentred


def test_every_centring_against_the_evidence(space):
    """Centring on the data or the anchors both recover the geometry; none does not."""
    space, _ = space
    rows = space.evaluation_rows(600)
    gaps = {}
    for center in ("none", "anchors", "data"):
        variant = reprojected(space, center, True)
        matched, random_pairs = _shifted_cosine(variant, rows)
        gaps[center] = matched - random_pairs
    assert gaps["data"] > 0.6 and gaps["anchors"] > 0.6
    assert gaps["none"] < gaps["data"]


def test_center_modes_of_the_projector():
    rng = np.random.default_rng(3)
    E = rng.normal(size=(200, 8)) + 4.0
    A = E[:20]
    data = RelativeProjector(center="data").fit(A, population=E).transform(E)
    mean = E.mean(axis=0)
    manual = RelativeProjector().fit(A - mean).transform(E - mean)
    np.testing.assert_allclose(data, manual, atol=1e-12)
    np.testing.assert_allclose(
        RelativeProjector(center="anchors").fit(A).transform(E),
        RelativeProjector(center=True).fit(A).transform(E),
    )
    np.testing.assert_allclose(
        RelativeProjector(center="none").fit(A).transform(E),
        RelativeProjector(center=False).fit(A).transform(E),
    )
    # the data-centred projection is invariant to a translation of the embeddings
    shifted = project(E + 7.0, np.arange(20), "data", False)
    np.testing.assert_allclose(shifted, project(E, np.arange(20), "data", False), atol=1e-10)
    with pytest.raises(MetricInputError, match="population"):
        RelativeProjector(center="data").fit(A)
    with pytest.raises(MetricInputError, match="center"):
        RelativeProjector(center="median").fit(A)
    Z = standardize_columns(project(E, np.arange(20), "data", False))
    np.testing.assert_allclose(Z.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(Z.std(axis=0), 1.0, atol=1e-12)
    np.testing.assert_allclose(project(E, np.arange(20)), Z, atol=1e-12)  # the default


def test_anchors_stay_out_of_evaluation_samples(space):
    space, y = space
    rows = space.evaluation_rows(10_000)
    assert len(rows) == len(space.atoms) - len(space.anchor_rows)
    assert not np.isin(rows, space.anchor_rows).any()
    agreement = pair_agreement(space, n_atoms=5000)
    assert not np.isin(agreement.attrs["rows"], space.anchor_rows).any()
    stitched = stitching(space, {"class": y}, n_atoms=5000)
    assert not np.isin(stitched.attrs["rows"], space.anchor_rows).any()


def test_anchor_coverage_and_element_aware_input(space):
    space, _ = space
    coverage = anchor_coverage(space)
    for kind in ("subset", "element"):
        part = coverage[coverage.kind == kind]
        assert part.anchors.sum() == len(space.anchor_rows)
        assert part.population.sum() == len(space.atoms)
        assert part.population_fraction.sum() == pytest.approx(1.0)
    assert set(coverage[coverage.kind == "element"].value) == {"Li", "O", "Si", "Fe", "Au"}
    tables, latent, _ = shared_geometry(n_structures=40)
    plain = anchor_selection_features(latent, tables, "features")
    with_elements = anchor_selection_features(latent, tables, "elements")
    assert with_elements.shape == (len(latent), plain.shape[1] + len(ELEMENTS))
    np.testing.assert_array_equal(with_elements[:, : plain.shape[1]], plain)
    assert (with_elements[:, plain.shape[1] :].sum(axis=1) == 1).all()
    models = anchor_selection_features(latent, tables, "models")
    assert models.shape[1] == 64 + 96
    with pytest.raises(MetricInputError, match="anchor input"):
        anchor_selection_features(latent, tables, "soap")
    spaced = build_common_space(tables, latent, n_anchors=10, method="fps", anchor_input="elements")
    assert spaced.settings["anchor_input"] == "elements"
    # farthest-point sampling on the one-hot block reaches every element among 10 anchors
    assert len(np.unique(spaced.atoms.numbers[spaced.anchor_rows])) == len(ELEMENTS)


def test_data_mean_ignores_feature_outliers():
    rng = np.random.default_rng(4)
    E = rng.normal(size=(300, 8)) + 2.0
    anchors = np.arange(20)
    wild = E.copy()
    wild[-1] *= 1e8  # one atom far outside the training data
    np.testing.assert_allclose(
        project(wild, anchors, "data", False)[:-1],
        RelativeProjector(center="data").fit(E[anchors], population=E[:-1]).transform(E[:-1]),
        atol=1e-12,
    )
