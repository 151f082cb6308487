"""Assertions shared by the Orb, PET and MatterSim tests on ``families_probe.py``'s numbers.

Each ``probe`` is ``(arrays, record)`` as :func:`families_probe.run_probe` returns it; a
``key`` names one loaded checkpoint of the probe (e.g. ``"conservative"``, ``"ckpt"``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

N_STRUCTURES = 4
N_ATOMS = (8, 8, 3, 5)


def scale(x: np.ndarray) -> float:
    return float(np.abs(x).max())


def check_dims_and_dtypes(probe: Any, key: str, dims: dict[str, int]) -> None:
    arrays, record = probe
    got = record[key]["dims"]
    for layer, d in dims.items():
        assert got[layer] == d, (layer, got[layer], d)
    for s, n in enumerate(N_ATOMS):
        for layer in set(got) & {"ll", "node", "bb", "layer:0", "layer:1"}:
            x = arrays[f"{key}/batch/{s}/{layer}"]
            assert x.shape == (n, got[layer]), (s, layer, x.shape)
            assert x.dtype == np.float32
            assert np.isfinite(x).all()
        assert scale(arrays[f"{key}/batch/{s}/ll"]) > 1e-3


def check_batch_equals_single(probe: Any, key: str, rtol: float = 1e-5) -> None:
    """A batch gives each structure's features as one-by-one calls do, in any order."""
    arrays, record = probe
    for s in range(N_STRUCTURES):
        for layer in set(record[key]["dims"]) & {"ll", "bb", "layer:0"}:
            batch = arrays[f"{key}/batch/{s}/{layer}"]
            tol = rtol * max(scale(batch), 1.0)
            np.testing.assert_allclose(arrays[f"{key}/single/{s}/{layer}"], batch, atol=tol)
            np.testing.assert_allclose(arrays[f"{key}/reverse/{s}/{layer}"], batch, atol=tol)


def check_permutation(probe: Any, key: str, rtol: float = 1e-5) -> None:
    """Permuting the atoms permutes the features' rows (and nothing else)."""
    arrays, record = probe
    for s in range(N_STRUCTURES):
        perm = arrays[f"{key}/perm/{s}"]
        for layer in set(record[key]["dims"]) & {"ll", "bb"}:
            base = arrays[f"{key}/batch/{s}/{layer}"]
            diff = np.abs(arrays[f"{key}/permuted/{s}/{layer}"] - base[perm]).max()
            assert diff <= rtol * scale(base), (s, layer, diff)


def rotation_change(probe: Any, key: str, layer: str) -> float:
    """Largest relative change of ``layer`` under a rotation + translation + permutation."""
    arrays, _ = probe
    worst = 0.0
    for s in range(N_STRUCTURES):
        perm = arrays[f"{key}/perm/{s}"]
        base = arrays[f"{key}/batch/{s}/{layer}"]
        diff = np.abs(arrays[f"{key}/rotated/{s}/{layer}"] - base[perm]).max() / scale(base)
        worst = max(worst, float(diff))
    return worst


def check_energy_equals_calculator(probe: Any, key: str, per_atom: float = 1e-4) -> None:
    """The energy of the feature pass is the package calculator's, and batching keeps it."""
    arrays, _ = probe
    for s, n in enumerate(N_ATOMS):
        batch, single = arrays[f"{key}/energy/{s}"]
        theirs = arrays[f"{key}/calc_energy/{s}"][0]
        assert abs(batch - theirs) / n <= per_atom * max(1.0, abs(theirs) / n), (s, batch, theirs)
        assert abs(single - theirs) / n <= per_atom * max(1.0, abs(theirs) / n), (s, single, theirs)


def check_errors(probe: Any, family: str, others: tuple[str, ...]) -> None:
    """Missing file, another family's file and mismatched weights: named ModelErrors."""
    _, record = probe
    errors = record["errors"]
    assert errors["missing"].startswith("ModelError") and "does-not-exist" in errors["missing"]
    assert errors["broken"].startswith("ModelError"), errors["broken"]
    assert "broken" in errors["broken"] and "match" in errors["broken"], errors["broken"]
    for other in others:
        message = errors[f"wrong/{other}"]
        assert message.startswith("ModelError"), (other, message)
        assert f"other-{other}" in message and "not a" in message, (other, message)


def check_paths(probe: Any) -> None:
    _, record = probe
    sha = record[next(k for k in record if isinstance(record[k], dict) and "dims" in record[k])]
    assert record["relative"] == record["home"] == sha["metadata"]["checkpoint_sha256"]


def check_rotation_averaging(probe: Any, family: str) -> None:
    """``+rot<N>`` features change less under a rotation, the more rotations are averaged."""
    arrays, record = probe
    avg = record["averaging"]
    raw, four, many = avg["sensitivity/0"], avg["sensitivity/4"], avg["sensitivity/16"]
    assert raw > 1e-3
    assert many < four < raw, (raw, four, many)
    assert many < 0.5 * raw
    assert avg["name/16"].endswith("+rot16-1")
    assert avg["metadata/16"]["rotational_average"] == {"n_rotations": 16, "random_state": 1}
    assert avg["metadata/16"]["rotation_sensitivity_averaged"]["ll"] < raw
    assert np.isfinite(arrays["averaging/rot1"]).all()


def check_featurize_through_worker(
    probe: Any, family: str, key: str, structures: list, invariant: bool = False
) -> None:
    """``mlipspace.featurize`` in the main process runs the worker and gets the same numbers;
    ``+rot2`` runs there too (a no-op up to round-off for an ``invariant`` model)."""
    import mlipspace

    arrays, record = probe
    name = f"{family}:{record['paths'][key]}"
    out = mlipspace.featurize(structures, name, layer=["ll", "bb"], progress=False)
    for layer in ("ll", "bb"):
        features = out[layer]
        assert features.model == name
        for s in range(N_STRUCTURES):
            rows = features.X[features.structure_index == s]
            expected = arrays[f"{key}/batch/{s}/{layer}"]
            np.testing.assert_allclose(rows, expected, atol=1e-5 * max(scale(expected), 1.0))
    averaged = mlipspace.featurize(structures[:1], f"{name}+rot2", layer="ll", progress=False)
    base = arrays[f"{key}/batch/0/ll"]
    assert averaged.X.shape == base.shape
    assert averaged.model == f"{name}+rot2"
    if invariant:
        np.testing.assert_allclose(averaged.X, base, atol=1e-4 * scale(base))
    else:
        assert not np.allclose(averaged.X, base, atol=1e-4 * scale(base))
