"""MACE adapters (``mace:<path>``, ``mace-random:<seed>``), measured in the 'mace' environment.

mace-torch cannot be installed next to sevenn, so the numbers come from
``tests/mace_probe.py`` run by the mace environment's Python (built with
``mlipspace env create mace``); the assertions run here. A missing environment is a
failure naming the command to run, not a skip. The adapter contract (batching, symmetry,
errors) is checked for ``mace:<path>`` and ``mace-random:<seed>`` in
test_model_contract.py, through the same environment; these are MACE's own checks.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk

from family_checks import check_named_error, env_python, run_probe_script
from mlipspace.errors import EnvironmentSetupError, ModelError
from mlipspace.featurization import envs
from mlipspace.models import calculator_models, model_card

pytestmark = pytest.mark.models

HERE = Path(__file__).parent
N_STRUCTURES = 4  # tests/mace_probe.py: rattled Si, NaCl, Cu, H2O in a box


@pytest.fixture(scope="module")
def probe(tmp_path_factory) -> tuple[dict[str, np.ndarray], dict]:
    arrays, record = run_probe_script(
        "mace", "mace_probe.py", tmp_path_factory.mktemp("mace_probe")
    )
    print(f"\nMACE probe record: {json.dumps(record)}")
    return arrays, record


def _scale(x: np.ndarray) -> float:
    return float(np.abs(x).max())


def test_layer_dims_of_the_test_built_model(probe):
    arrays, record = probe
    dims = record["small_dims"]
    # hidden 16x0e+16x1o, MLP 8x0e, 2 interactions: ll = 16 (linear read-out 1) + 8 (MLP)
    assert dims == {"ll": 24, "node": 32, "bb": 32, "layer:0": 16, "layer:1": 16, "layer:2": 16}
    for s in range(N_STRUCTURES):
        n = int(arrays[f"n_atoms/{s}"][0])
        for layer, d in dims.items():
            assert arrays[f"base/{s}/{layer}"].shape == (n, d)
            assert arrays[f"base/{s}/{layer}"].dtype == np.float32
    assert record["small_metadata"]["checkpoint"] == "small.model"


def test_mace_random_dims(probe):
    _, record = probe
    assert record["random_dims"] == {
        "ll": 80, "node": 128, "bb": 128, "layer:0": 64, "layer:1": 64, "layer:2": 64
    }  # fmt: skip


def test_energy_of_the_feature_pass_equals_calculator(probe):
    arrays, _ = probe
    for s in range(N_STRUCTURES):
        n = int(arrays[f"n_atoms/{s}"][0])
        ours = arrays[f"base/{s}/energy"][0]
        theirs = arrays[f"calc_energy/{s}"][0]
        assert abs(ours - theirs) / n <= 1e-5, (s, ours, theirs)
        # a fixed structure whose energy is not just the reference energies
        assert abs(ours) > 0.1


def test_card_has_calculator_and_the_diagnostics_build_it(probe):
    """The cards say ``has_calculator``: ``diagnostics.calculator_for("mace:<file>")`` (in
    the mace environment) is mace's own MACECalculator on the same weights. Parametrised
    names are never in ``calculator_models()``, so the diagnostics do not start one unasked."""
    arrays, _ = probe
    for s in range(N_STRUCTURES):
        n = int(arrays[f"n_atoms/{s}"][0])
        np.testing.assert_allclose(
            arrays[f"named_calc/file/{s}/energy"], arrays[f"calc_energy/{s}"], rtol=1e-5
        )
        for key in ("file", "random"):
            forces = arrays[f"named_calc/{key}/{s}/forces"]
            assert forces.shape == (n, 3) and np.isfinite(forces).all()
            assert np.isfinite(arrays[f"named_calc/{key}/{s}/energy"]).all()
    assert model_card("mace:x.model").has_calculator
    assert model_card("mace-random:0").has_calculator
    assert not any(name.startswith("mace") for name in calculator_models())


def test_node_equals_mace_get_descriptors(probe):
    """``node`` is MACE's own ``get_descriptors(invariants_only=True)``."""
    arrays, _ = probe
    for s in range(N_STRUCTURES):
        ours = arrays[f"base/{s}/node"]
        theirs = arrays[f"descriptors/{s}"]
        assert ours.shape == theirs.shape
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-6 * _scale(theirs))


def test_ll_structure(probe):
    """``ll`` starts with layer 1's scalars (linear read-out) then the MLP hidden units."""
    arrays, _ = probe
    for s in range(N_STRUCTURES):
        ll = arrays[f"base/{s}/ll"]
        np.testing.assert_array_equal(ll[:, :16], arrays[f"base/{s}/layer:1"])
        assert not np.allclose(ll[:, 16:], arrays[f"base/{s}/layer:2"][:, :8])


def test_float64_on_request(probe):
    arrays, _ = probe
    for s in range(N_STRUCTURES):
        for layer in ("ll", "bb"):
            f64 = arrays[f"f64/{s}/{layer}"]
            assert f64.dtype == np.float64
            single = arrays[f"base/{s}/{layer}"]
            assert np.abs(f64 - single).max() <= 1e-4 * _scale(single)
        n = int(arrays[f"n_atoms/{s}"][0])
        assert abs(arrays[f"f64/{s}/energy"][0] - arrays[f"base/{s}/energy"][0]) / n < 1e-4


def test_mace_random_seeds(probe):
    arrays, _ = probe
    np.testing.assert_array_equal(arrays["random0/ll"], arrays["random0b/ll"])
    np.testing.assert_array_equal(arrays["random0/ll"], arrays["random0c/ll"])
    np.testing.assert_array_equal(arrays["random0/bb"], arrays["random0b/bb"])
    scale = _scale(arrays["random0/bb"])
    assert np.abs(arrays["random0/bb"] - arrays["random1/bb"]).max() > 0.1 * scale
    assert np.abs(arrays["random0/ll"] - arrays["random1/ll"]).max() > 0.1 * _scale(
        arrays["random0/ll"]
    )


def test_features_cheaper_than_calculator(probe):
    """Recorded, not a speed target: the feature pass skips forces and stress."""
    _, record = probe
    print(
        f"\nmace-random:0, 64 atoms: features {record['seconds_features_64']:.3f} s, "
        f"calculator energy+forces+stress {record['seconds_calculator_64']:.3f} s"
    )
    assert record["seconds_features_64"] > 0


# -- a user's checkpoint: mace:<file>[@head] ----------------------------------------------


def test_foundation_file_state_dict_and_paths_equal_the_built_model(probe):
    """A foundation-like ScaleShiftMACE pickled whole (as mace_mp downloads them), the same
    weights as a state dict with its config, and a relative and a ``~`` path all give
    the features of the model that was saved (mace-random:0)."""
    arrays, _ = probe
    for key in ("whole", "state", "home"):
        for s in range(N_STRUCTURES):
            for layer in ("ll", "bb", "node"):
                np.testing.assert_array_equal(
                    arrays[f"ckpt/{key}/{s}/{layer}"], arrays[f"ckpt/random/{s}/{layer}"]
                )
        np.testing.assert_array_equal(arrays[f"ckpt/{key}/energy"], arrays["ckpt/random/energy"])


def test_foundation_file_energy_equals_mace_mp(probe):
    """The feature pass's energy equals mace's own ``mace_mp(model=<file>)`` calculator."""
    arrays, _ = probe
    np.testing.assert_allclose(
        arrays["ckpt/whole/energy"], arrays["ckpt/mace_mp/energy"], rtol=1e-5, atol=1e-6
    )


def test_checkpoint_provenance(probe):
    _, record = probe
    meta = record["ckpt_metadata/state"]
    assert meta["checkpoint"] == "state.pt" and meta["checkpoint_format"] == "state dict"
    assert meta["checkpoint_path"].endswith("/state.pt") and meta["checkpoint_path"][0] == "/"
    assert len(meta["checkpoint_sha256"]) == 64
    assert meta["package_version"] and meta["dtype"] == "float32" and meta["head"] == "Default"
    assert record["ckpt_metadata/whole"]["checkpoint_format"] == "pickled model"
    # one file, two formats: different digests
    assert meta["checkpoint_sha256"] != record["ckpt_metadata/whole"]["checkpoint_sha256"]


def test_multi_head_checkpoint_picks_its_head(probe):
    arrays, record = probe
    assert record["ckpt_heads"] == {"pbe": "pbe", "r2scan": "r2scan"}
    for head in ("pbe", "r2scan"):
        np.testing.assert_allclose(
            arrays[f"ckpt/head/{head}/energy"], arrays[f"ckpt/head/{head}/calc"], rtol=1e-5
        )
    # the backbone is shared, the read-out hidden layer is each head's own
    np.testing.assert_array_equal(arrays["ckpt/head/pbe/bb"], arrays["ckpt/head/r2scan/bb"])
    assert np.abs(arrays["ckpt/head/pbe/ll"] - arrays["ckpt/head/r2scan/ll"]).max() > 1e-3
    assert abs(arrays["ckpt/head/pbe/energy"][0] - arrays["ckpt/head/r2scan/energy"][0]) > 1e-3


@pytest.mark.parametrize(
    ("case", "kind", "pattern"),
    [
        ("missing", "CheckpointError", r"mace:nowhere/absent.model: no such checkpoint file \(/"),
        ("bare", "CheckpointError", r"bare.pt: a MACE state dict without its architecture"),
        ("mismatch", "CheckpointError", r"mismatch.pt: the weights do not match"),
        ("foreign", "CheckpointError", r"foreign.pth: not a MACE checkpoint"),
        ("garbage", "CheckpointError", r"notorch.model: cannot read the checkpoint"),
        ("head", "ModelError", r"two.model@pbe0: no head 'pbe0'; heads are \['pbe', 'r2scan'\]"),
        ("nohead", "ModelError", r"foundation.model@r2scan: no head 'r2scan'"),
    ],
)
def test_checkpoint_errors_are_named(probe, case, kind, pattern):
    check_named_error(probe[1]["ckpt_errors"], case, pattern, kind)


# -- through the worker, from the main environment ---------------------------------------


def test_worker_features_equal_in_env_features(probe, tmp_path):
    """featurize_in_env (worker in the mace env, shared store) returns the adapter's numbers."""
    arrays, _ = probe
    env_python("mace")
    from mlipspace.featurization.parent import featurize_in_env

    sys.path.insert(0, str(HERE))
    try:
        from mace_probe import structures
    finally:
        sys.path.remove(str(HERE))
    base = structures()
    store = tmp_path / "store.zarr"
    seen = []
    out = featurize_in_env(
        base, "mace-random:0", ["ll", "bb"], store, progress=lambda d, t: seen.append((d, t))
    )
    assert set(out) == {"ll", "bb"}
    assert seen[-1] == (len(base), len(base))
    first = out["ll"].X[out["ll"].structure_index == 0]
    np.testing.assert_allclose(first, arrays["random0/ll"], rtol=0, atol=1e-6)
    assert out["bb"].X.shape == (sum(len(a) for a in base), 128)
    assert out["ll"].model == "mace-random:0"


def test_worker_not_started_when_everything_is_stored(probe, tmp_path, monkeypatch):
    """Resuming: a store holding every structure is read back without any worker."""
    env_python("mace")
    from mlipspace.featurization.parent import featurize_in_env

    base = [bulk("Cu"), bulk("Si")]
    store = tmp_path / "store.zarr"
    first = featurize_in_env(base, "mace-random:0", ["ll"], store, progress=False)
    monkeypatch.setenv(envs.ENV_DIR_VARIABLE, str(tmp_path / "no-envs"))  # no worker possible
    again = featurize_in_env(base, "mace-random:0", ["ll"], store, progress=False)
    np.testing.assert_array_equal(first["ll"].X, again["ll"].X)
    with pytest.raises(EnvironmentSetupError, match="mlipspace env create mace"):
        featurize_in_env([bulk("Al")], "mace-random:0", ["ll"], store, progress=False)


def test_worker_error_names_model_and_family(tmp_path):
    env_python("mace")
    from mlipspace.featurization.parent import featurize_in_env

    with pytest.raises(ModelError, match=r"no such checkpoint file") as info:
        featurize_in_env(
            [bulk("Cu")], "mace:/nonexistent/x.model", ["ll"], tmp_path / "s.zarr", progress=False
        )
    assert "mace" in str(info.value)


def test_unsupported_element_through_worker(tmp_path):
    env_python("mace")
    from mlipspace.errors import UnsupportedElementError
    from mlipspace.featurization.parent import featurize_in_env

    bad = bulk("Cu")
    bad.numbers[:] = 94  # Pu: outside mace-random's elements 1-89
    with pytest.raises(UnsupportedElementError, match=r"Pu"):
        featurize_in_env([bad], "mace-random:0", ["ll"], tmp_path / "s.zarr", progress=False)


def test_skip_unsupported_through_worker(tmp_path):
    env_python("mace")
    from mlipspace.featurization.parent import featurize_in_env
    from mlipspace.store import FeatureStore

    bad = bulk("Cu")
    bad.numbers[:] = 94
    good = bulk("Si")
    store = tmp_path / "s.zarr"
    out = featurize_in_env(
        [bad, good], "mace-random:0", ["ll"], store, on_unsupported="skip", progress=False
    )
    assert len(out["ll"]) == 2 and set(out["ll"].numbers) == {14}
    skipped = FeatureStore(store).skipped("mace-random:0", "ll")
    assert len(skipped) == 1 and "Pu" in skipped["reason"][0]
