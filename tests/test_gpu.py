"""Device handling and the CUDA paths.

Tests marked ``gpu`` need a CUDA device: they skip where torch sees none, and ``make test``
deselects them (``-m "not gpu"``) so that a skip is never counted as a pass there; ``make
gpu-check`` runs them on a machine with a GPU. The rest run everywhere.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import ase.io
import numpy as np
import pytest

import mlipspace
from conftest import small_structure_set
from mlipspace.devices import DEFAULT_GPU_ATOMS_PER_BATCH, check_device, cuda_available
from mlipspace.errors import ParameterError

ROOT = Path(__file__).resolve().parents[1]
needs_cuda = pytest.mark.skipif(not cuda_available(), reason="no CUDA device")


def _soap():
    pytest.importorskip("featomic")
    from mlipspace.models.soap import SOAPAdapter

    class RecordingSOAP(SOAPAdapter):
        """SOAP, recording the atoms of every batch it is given."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.batches: list[int] = []

        def compute(self, structures, layers):
            self.batches.append(sum(len(a) for a in structures))
            return super().compute(structures, layers)

    return RecordingSOAP()


# -- device strings ---------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["gpu", "cuda:x", "cpu:0", "cuda:-1", "", "mps"])
def test_malformed_device_is_a_named_parameter_error(bad):
    with pytest.raises(ParameterError, match="device must be 'cpu', 'cuda' or 'cuda:<index>'"):
        check_device(bad)


def test_cpu_device_is_accepted():
    assert check_device("cpu") == check_device(" CPU ") == "cpu"


@pytest.mark.skipif(cuda_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("device", ["cuda", "cuda:0", "cuda:3"])
def test_cuda_without_cuda_is_a_clear_error(device):
    with pytest.raises(ParameterError, match="torch sees none on this machine"):
        check_device(device)


@pytest.mark.skipif(cuda_available(), reason="this machine has CUDA")
def test_featurize_checks_the_device_before_loading_a_model():
    from ase.build import bulk

    with pytest.raises(ParameterError, match="asks for a CUDA GPU"):
        mlipspace.featurize([bulk("Si")], "soap", device="cuda")
    from mlipspace.featurization import load_model

    with pytest.raises(ParameterError, match="asks for a CUDA GPU"):
        load_model("chgnet-0.3.0", device="cuda:0")


@pytest.mark.skipif(cuda_available(), reason="this machine has CUDA")
def test_cli_featurize_device_cuda_without_cuda_fails_clearly(tmp_path, capsys):
    from ase.build import bulk

    from mlipspace.cli import main

    path = tmp_path / "s.extxyz"
    ase.io.write(path, [bulk("Si")])
    with pytest.raises(SystemExit) as exit_info:
        main(["featurize", str(path), "-m", "soap", "-s", str(tmp_path / "st.zarr"),
              "--device", "cuda"])  # fmt: skip
    assert exit_info.value.code != 0
    assert "torch sees none" in " ".join(capsys.readouterr().err.split())
    assert not (tmp_path / "st.zarr").exists()


# -- batches by atoms ---------------------------------------------------------------------


def test_cpu_batches_stay_structure_batches():
    structures = mlipspace.read_structures(small_structure_set())
    adapter = _soap()
    mlipspace.featurize(structures, adapter, batch_size=2)
    sizes = [len(a) for a in structures]
    assert adapter.batches == [sum(sizes[i : i + 2]) for i in range(0, len(sizes), 2)]


def test_max_atoms_per_batch_packs_by_atoms_and_keeps_the_features():
    structures = mlipspace.read_structures(small_structure_set())
    sizes = [len(a) for a in structures]
    budget = max(sizes)
    adapter = _soap()
    packed = mlipspace.featurize(structures, adapter, max_atoms_per_batch=budget)
    assert all(b <= budget for b in adapter.batches)
    assert sum(adapter.batches) == sum(sizes)
    one = mlipspace.featurize(structures, _soap(), batch_size=1)
    np.testing.assert_array_equal(packed.X, one.X)


def test_cuda_adapters_get_atom_batches_by_default():
    """The batching rule only reads the adapter's device, so it is checked here on a CPU
    adapter labelled CUDA (the computation itself runs on the CPU)."""
    from mlipspace.featurization.core import atoms_per_batch

    adapter = _soap()
    assert atoms_per_batch(adapter, None, None) is None
    adapter.device = "cuda:1"
    assert atoms_per_batch(adapter, None, None) == DEFAULT_GPU_ATOMS_PER_BATCH
    assert atoms_per_batch(adapter, 8, None) is None  # an explicit batch_size is kept
    assert atoms_per_batch(adapter, None, 100) == 100
    with pytest.raises(ParameterError, match="max_atoms_per_batch"):
        atoms_per_batch(adapter, None, 0)


# -- the benchmark's smoke run ------------------------------------------------------------


def test_gpu_benchmark_smoke_run_on_cpu():
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu.py"), "--device", "cpu", "--small"],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    for line in ("LFRE", "GFRE streamed", "equal to the numpy path"):
        assert line in out.stdout


@pytest.mark.skipif(cuda_available(), reason="this machine has CUDA")
def test_gpu_benchmark_without_cuda_exits_with_a_clear_message():
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu.py")],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert out.returncode == 2
    assert "no CUDA device" in out.stderr


# -- on a GPU -----------------------------------------------------------------------------


@pytest.mark.gpu
@needs_cuda
def test_featurize_on_cuda_equals_cpu():
    structures = mlipspace.read_structures(small_structure_set())
    for model in ("chgnet-0.3.0", "sevennet-0"):
        cpu = mlipspace.featurize(structures, model, dtype="float64")
        gpu = mlipspace.featurize(structures, model, dtype="float64", device="cuda")
        np.testing.assert_allclose(gpu.X, cpu.X, rtol=1e-6, atol=1e-8, err_msg=model)


@pytest.mark.skipif(cuda_available(), reason="this machine has CUDA")
def test_study_featurize_device_is_checked(tmp_path):
    from mlipspace.featurization import featurize_models

    structures = mlipspace.read_structures(small_structure_set())
    with pytest.raises(ParameterError, match="asks for a CUDA GPU"):
        featurize_models(structures, ["soap"], store=tmp_path / "s.zarr", device="cuda")
