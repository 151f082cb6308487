"""What the family tests share: running a probe in a worker environment, and assertions.

A family whose package lives in its own worker environment (MACE, Orb, PET, MatterSim,
UMA, DPA-3) is measured by a probe script (``tests/*_probe.py``) run by that
environment's Python; the probe writes every number to ``OUT_DIR/probe.npz`` and
``OUT_DIR/probe.json`` (:func:`save_probe`), and the test file, in the main environment,
runs it (:func:`run_probe_script`) and asserts. This module is imported on both sides:
keep it free of pytest and of the families' packages at import time.

The ``check_*`` functions assert on the Orb, PET and MatterSim numbers of
``families_probe.py``: each ``probe`` is ``(arrays, record)`` as
:func:`families_probe.run_probe` returns it; a ``key`` names one loaded checkpoint of the
probe (e.g. ``"conservative"``, ``"ckpt"``).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

HERE = Path(__file__).parent

N_STRUCTURES = 4
N_ATOMS = (8, 8, 3, 5)


def scale(x: np.ndarray) -> float:
    return float(np.abs(x).max())


# -- running a probe in a worker environment (main environment side) -------------------


def env_python(environment: str) -> Path:
    """Python of a worker environment; fails (not skips) the test, naming the command."""
    import pytest

    from mlipspace.errors import EnvironmentSetupError
    from mlipspace.featurization import envs

    try:
        return envs.require_env(environment)
    except EnvironmentSetupError as exc:
        pytest.fail(f"these tests need the {environment!r} environment: {exc}", pytrace=False)


def run_in_env(environment: str, script: str, *args: str, timeout: int = 900) -> None:
    """Run ``tests/<script> <args>`` with the environment's Python, one thread; it must succeed."""
    done = subprocess.run(
        [str(env_python(environment)), str(HERE / script), *map(str, args)],
        capture_output=True,
        text=True,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
        timeout=timeout,
    )
    assert done.returncode == 0, (
        f"{script} {' '.join(map(str, args))} failed in the {environment!r} environment:\n"
        f"{done.stderr[-6000:]}"
    )


def run_probe_script(
    environment: str, script: str, out: Path, *args: str, timeout: int = 900
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Run a probe writing into ``out`` (``script [args] out``); its arrays and record."""
    run_in_env(environment, script, *args, out, timeout=timeout)
    return read_probe(out)


def probe_fixture(
    environment: str, script: str, *args: str, timeout: int = 900, folder: bool = False
) -> Any:
    """A module-scoped ``probe`` fixture: ``script [args] <tmp>`` run in ``environment``.

    The fixture gives the probe's ``(arrays, record)``, with ``folder`` also the folder
    it wrote to. Assign it in the test module: ``probe = probe_fixture(...)``.
    """
    import pytest

    @pytest.fixture(scope="module")
    def probe(tmp_path_factory: Any) -> tuple:
        out = tmp_path_factory.mktemp(Path(script).stem)
        arrays, record = run_probe_script(environment, script, out, *args, timeout=timeout)
        return (arrays, record, out) if folder else (arrays, record)

    return probe


def kind_fixture(kinds: tuple[str, ...]) -> Any:
    """A ``kind`` fixture parametrised over a probe's loaded checkpoints."""
    import pytest

    @pytest.fixture(params=kinds)
    def kind(request: Any) -> str:
        return request.param

    return kind


def read_probe(out: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The arrays and the record a probe saved into ``out``."""
    with np.load(out / "probe.npz") as data:
        arrays = {k: data[k] for k in data.files}
    return arrays, json.loads((out / "probe.json").read_text())


# -- inside a probe (worker environment side) --------------------------------------------


def start_probe(out_dir: str) -> tuple[Path, dict[str, np.ndarray], dict[str, Any]]:
    """One torch thread, no warnings; the output folder and empty arrays and record."""
    import torch

    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    return Path(out_dir), {}, {}


def save_probe(out: Path, results: dict[str, np.ndarray], record: dict[str, Any]) -> None:
    """Write a probe's arrays and record where :func:`read_probe` finds them."""
    np.savez(out / "probe.npz", **results)
    (out / "probe.json").write_text(json.dumps(record, indent=1, default=str))


def load_error(name: str) -> list[str]:
    """The class name and message of the error ``get_model(name)`` raises (or "none")."""
    from mlipspace.models import get_model

    return error_of(lambda: get_model(name))


def error_of(call: Callable[[], Any]) -> list[str]:
    """The class name and message of the error ``call()`` raises (``["none", ""]`` if none)."""
    try:
        call()
    except Exception as exc:  # the tests assert on the class and the message
        return [type(exc).__name__, str(exc)]
    return ["none", ""]


# -- assertions every checkpoint family shares --------------------------------------------


def check_named_error(errors: dict[str, list[str]], case: str, pattern: str,
                      kind: str = "CheckpointError") -> None:  # fmt: skip
    """The probe's error ``case`` (see :func:`load_error`) is a ``kind`` matching ``pattern``."""
    found, message = errors[case]
    assert found == kind, (case, found, message)
    assert re.search(pattern, message), (case, message)


def check_featurized_by_name(
    name: str, expected: dict[str, np.ndarray], prefix: str, store: Path, rtol: float = 0.0
) -> None:
    """From the main environment, ``name`` runs in its worker on the first two contract
    structures and gives the probe's ``prefix/<s>/<layer>`` features (the loader path a
    user's checkpoint takes); ``rtol`` is relative to each array's largest magnitude."""
    import mlipspace
    from model_contract_probe import contract_structures

    got = mlipspace.featurize(contract_structures()[:2], name, layer=["ll", "bb"], store=store)
    for s in range(2):
        for layer in ("ll", "bb"):
            want = expected[f"{prefix}/{s}/{layer}"]
            rows = got[layer].X[got[layer].structure_index == s]
            np.testing.assert_allclose(rows, want, rtol=0, atol=rtol * scale(want))


# -- Orb, PET and MatterSim (families_probe.py) -------------------------------------------


def check_dims_and_dtypes(probe: Any, key: str, dims: dict[str, int]) -> None:
    arrays, record = probe
    got = record[key]["dims"]
    assert set(got) == set(dims), (sorted(got), sorted(dims))
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
    """Missing file, another family's file and mismatched weights: named CheckpointErrors."""
    errors = probe[1]["errors"]
    check_named_error(errors, "missing", "does-not-exist.ckpt: no such checkpoint file")
    check_named_error(errors, "broken", "broken.*the weights do not match")
    for other in others:
        check_named_error(errors, f"wrong/{other}", f"other-{other}.*: not a")


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


class FamilyProbeChecks:
    """The tests every family measured by ``families_probe.py`` passes (Orb, PET, MatterSim).

    A family's test module defines the fixtures ``probe`` (:func:`families_probe.run_probe`
    of the family, module-scoped) and ``kind`` (parametrised over the probe's loaded
    checkpoints), and a class ``Test<Family>Probe`` subclassing this one with the
    attributes below; its own specific tests stay in the module.

    Attributes
    ----------
    family : str
        The name prefix (``"orb"``).
    others : tuple of str
        The other families whose files must be refused.
    dims : dict
        ``{kind: {layer: dim}}``: every layer each loaded checkpoint offers.
    main : str
        The kind checked in float64 and through the worker.
    float64_rtol : float
        float64 against float32 ``ll``, relative to the largest magnitude.
    invariant : bool
        Whether ``+rot2`` must leave the features unchanged (a rotation-invariant model).
    """

    family = ""
    others: tuple[str, ...] = ()
    dims: ClassVar[dict[str, dict[str, int]]] = {}
    main = ""
    float64_rtol = 1e-3
    invariant = False

    def test_dims_dtypes_and_finite(self, probe, kind):
        check_dims_and_dtypes(probe, kind, self.dims[kind])

    def test_batch_equals_one_by_one_in_any_order(self, probe, kind):
        check_batch_equals_single(probe, kind)

    def test_permutation_equivariant(self, probe, kind):
        check_permutation(probe, kind)

    def test_energy_of_the_feature_pass_equals_the_package_calculator(self, probe, kind):
        check_energy_equals_calculator(probe, kind)

    def test_float64_close_to_float32(self, probe):
        arrays, record = probe
        assert "float64_error" not in record[self.main]
        for s in range(N_STRUCTURES):
            wide = arrays[f"{self.main}/float64/{s}/ll"]
            assert wide.dtype == np.float64
            narrow = arrays[f"{self.main}/batch/{s}/ll"]
            assert np.abs(wide - narrow).max() <= self.float64_rtol * np.abs(wide).max()

    def test_named_errors(self, probe):
        check_errors(probe, self.family, self.others)

    def test_relative_and_home_paths(self, probe):
        check_paths(probe)

    def test_featurize_through_the_worker(self, probe):
        from families_probe import structures

        check_featurize_through_worker(
            probe, self.family, self.main, structures(), invariant=self.invariant
        )


class NotRotationInvariantChecks(FamilyProbeChecks):
    """:class:`FamilyProbeChecks` plus those of a family not rotation-invariant by
    construction (Orb, PET): the sensitivity is measured and recorded, ``+rot<N>`` helps."""

    def test_not_rotation_invariant_and_recorded(self, probe, kind):
        change = rotation_change(probe, kind, "ll")
        assert change > 1e-3, change
        meta = probe[1][kind]["metadata"]
        sensitivity = meta["rotation_sensitivity"]
        assert set(sensitivity) == {"ll", "bb"} & set(probe[1][kind]["dims"]), sensitivity
        assert 1e-3 < sensitivity["ll"] < 10.0
        assert meta["symmetry"].startswith("none")

    def test_rotational_averaging(self, probe):
        check_rotation_averaging(probe, self.family)
