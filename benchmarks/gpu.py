"""Featurization and the measures on a CUDA GPU, against the CPU references, in one run.

    python benchmarks/gpu.py                       # on a machine with an NVIDIA GPU
    python benchmarks/gpu.py --device cpu --small  # smoke run of every code path (tests)

Prints the GPU's name, then, each ratio measured in this run on this machine:

* featurization atoms/s of ``featurize(..., device=cuda)`` (batches by atoms) against the
  model's own ASE calculator loop on the same GPU (target >= 3x), per model (``--models``;
  CHGNet-0.3.0, SevenNet-0 and HIENet-V3 by default). The newer families run in their own
  environments on random-init checkpoints of the released sizes, as in
  benchmarks/featurize.py: ``$MLIPSPACE_ENV_DIR/orb-pet-mattersim/bin/python
  benchmarks/gpu.py --models orb:random --skip lfre,gfre`` (``scripts/gpu-check.sh`` does);
* LFRE at n_train = 4000, n_test = 1000, d = k = 128 on the GPU against scikit-matter on the
  CPU (scikit-matter timed on ``--skmatter-points`` test rows and scaled to 1000, as
  benchmarks/metrics.py does; target >= 50x), and against our numpy path, with the largest
  relative differences;
* streamed GFRE of a 2M x 256 float32 pair (block sums on the GPU) against the numpy path;
* the GPU memory peak (``torch.cuda.max_memory_allocated``) of each.

Without a CUDA device it exits with status 2 and says so, unless ``--device cpu`` is given
(the torch code paths then run on the CPU: a check that they run, not a benchmark).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

DEFAULT_MODELS = ("chgnet-0.3.0", "sevennet-0", "hienet-v3")


class Device:
    """Synchronised timing and memory peaks on the torch device under test."""

    def __init__(self, name: str) -> None:
        import torch

        self.torch = torch
        self.name = name
        self.cuda = name.startswith("cuda")

    def sync(self) -> None:
        if self.cuda:
            self.torch.cuda.synchronize()

    def timed(self, fn, *args, **kwargs):
        """``(result, seconds, peak bytes)``; the peak is 0 off CUDA."""
        if self.cuda:
            self.torch.cuda.reset_peak_memory_stats()
        self.sync()
        start = time.perf_counter()
        out = fn(*args, **kwargs)
        self.sync()
        seconds = time.perf_counter() - start
        peak = self.torch.cuda.max_memory_allocated() if self.cuda else 0
        return out, seconds, peak

    def describe(self) -> str:
        torch = self.torch
        if not self.cuda:
            return f"device cpu (torch {torch.__version__}): smoke run, timings mean nothing"
        props = torch.cuda.get_device_properties(torch.device(self.name))
        return (
            f"GPU {torch.cuda.get_device_name(torch.device(self.name))} "
            f"({props.total_memory / 2**30:.0f} GiB), torch {torch.__version__}, "
            f"CUDA {torch.version.cuda}"
        )


def gib(peak: int) -> str:
    return f"{peak / 2**30:.2f} GiB" if peak else "n/a"


def bench_featurize(dev: Device, models: list[str], n: int, repeats: int) -> None:
    import tempfile

    from featurize import RANDOM_FAMILIES, calculator_loop, demo_set, random_checkpoint
    from mlipspace.featurization import featurize, load_model

    structures = demo_set(n)
    n_atoms = sum(len(a) for a in structures)
    print(f"featurization: {len(structures)} demo structures, {n_atoms} atoms", flush=True)
    folder = tempfile.mkdtemp(prefix="mlipspace-gpu-bench-")
    for name in models:
        try:
            if name.split(":")[0] in RANDOM_FAMILIES and name.endswith(":random"):
                name = random_checkpoint(name, structures, folder)
            adapter = load_model(name, device=dev.name)
        except Exception as exc:  # a family not installed here: say so, go on
            print(f"  {name}: not run ({type(exc).__name__}: {exc})")
            continue
        loop = calculator_loop(adapter)
        warm = structures[:4]
        featurize(warm, adapter, layer=["ll", "bb"])
        loop(warm)

        def ours(adapter=adapter):
            return featurize(structures, adapter, layer=["ll", "bb"])

        best = {"ours": (np.inf, 0), "loop": (np.inf, 0)}
        for _ in range(repeats):
            for key, fn in (("ours", ours), ("loop", lambda loop=loop: loop(structures))):
                _, t, peak = dev.timed(fn)
                best[key] = min(best[key], (t, peak))
        (t_ours, p_ours), (t_loop, p_loop) = best["ours"], best["loop"]
        print(
            f"  {name:<20} mlipspace {n_atoms / t_ours:9.0f} atoms/s (peak {gib(p_ours)}), "
            f"ASE calculator loop {n_atoms / t_loop:9.0f} atoms/s (peak {gib(p_loop)}) "
            f"-> {t_loop / t_ours:.1f}x",
            flush=True,
        )


def bench_lfre(dev: Device, n_train: int, n_test: int, d: int, n_skmatter: int) -> None:
    from skmatter.metrics import pointwise_local_reconstruction_error as sk_plre

    from metrics import synthetic  # benchmarks/metrics.py: the same data as the CPU benchmark
    from mlipspace.metrics import pointwise_lfre

    k = d
    X, Y = synthetic(n_train + n_test, d, d)
    test, train = np.arange(n_test), np.arange(n_test, n_train + n_test)
    pointwise_lfre(X, Y, k, train_idx=train, test_idx=test[:4], device=dev.name)  # warm-up
    ours, t_dev, peak = dev.timed(
        pointwise_lfre, X, Y, k, train_idx=train, test_idx=test, device=dev.name
    )
    numpy_path, t_np, _ = dev.timed(pointwise_lfre, X, Y, k, train_idx=train, test_idx=test)
    sub = test[:n_skmatter]
    sk_plre(X, Y, k, train_idx=train, test_idx=test[:2])
    ref, t_ref, _ = dev.timed(sk_plre, X, Y, k, train_idx=train, test_idx=sub)
    t_ref_full = t_ref / len(sub) * len(test)
    diff_np = np.max(np.abs(ours - numpy_path) / np.abs(numpy_path))
    diff_sk = np.max(np.abs(ours[: len(sub)] - ref) / np.abs(ref))
    print(
        f"LFRE n_train={n_train} n_test={n_test} d=k={k}: {dev.name} {t_dev:.2f} s "
        f"(peak {gib(peak)}); numpy path {t_np:.2f} s -> {t_np / t_dev:.1f}x; scikit-matter "
        f"CPU {t_ref_full:.1f} s ({len(sub)} points scaled) -> {t_ref_full / t_dev:.1f}x",
        flush=True,
    )
    print(
        f"  equal to the numpy path: max rel. diff {diff_np:.1e}; to scikit-matter: {diff_sk:.1e}",
        flush=True,
    )


def bench_streamed(dev: Device, n_rows: int, d: int, chunk: int) -> None:
    from mlipspace.metrics import gfre_streamed

    rng = np.random.default_rng(1)
    mix = rng.standard_normal((d, d)).astype(np.float32) / np.sqrt(d)
    test = np.sort(rng.choice(n_rows, min(1000, n_rows // 10), replace=False))
    # a pool of distinct blocks, cycled: the benchmark times the statistics, not the RNG
    pool = []
    for seed in range(4):
        gen = np.random.default_rng(2 + seed)
        X = gen.standard_normal((chunk, d), dtype=np.float32)
        pool.append((X, np.tanh(X @ mix) + np.float32(0.1) * gen.standard_normal(X.shape,
                                                                                 dtype=np.float32)))  # fmt: skip

    def chunks():
        for i, start in enumerate(range(0, n_rows, chunk)):
            X, Y = pool[i % len(pool)]
            m = min(chunk, n_rows - start)
            yield X[:m], Y[:m]

    value, t_dev, peak = dev.timed(gfre_streamed, chunks(), n_rows, test_idx=test, device=dev.name)
    ref, t_np, _ = dev.timed(gfre_streamed, chunks(), n_rows, test_idx=test)
    print(
        f"GFRE streamed {n_rows} x {d} float32 pair in {chunk}-row blocks: {dev.name} "
        f"{t_dev:.1f} s (peak {gib(peak)}), numpy {t_np:.1f} s -> {t_np / t_dev:.1f}x; "
        f"GFRE {value:.6f}, equal to the numpy path: rel. diff {abs(value - ref) / ref:.1e}",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda, cuda:<i>, or cpu (smoke run)")
    parser.add_argument("--small", action="store_true", help="tiny sizes (a smoke run)")
    parser.add_argument("--models", help="comma-separated; default: see the module docstring")
    parser.add_argument("--structures", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--skmatter-points", type=int, default=40)
    parser.add_argument("--skip", default="", help="comma-separated: featurize,lfre,gfre")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")

    from mlipspace.devices import check_device, cuda_available
    from mlipspace.errors import ParameterError

    if args.device != "cpu" and not cuda_available():
        print(
            "benchmarks/gpu.py: no CUDA device (torch sees none); run it on a machine with an "
            "NVIDIA GPU, or pass --device cpu --small for a smoke run of the code paths",
            file=sys.stderr,
        )
        return 2
    try:
        device = check_device(args.device)
    except ParameterError as exc:
        print(f"benchmarks/gpu.py: {exc}", file=sys.stderr)
        return 2
    # the torch paths on the CPU are called "torch-cpu" by the measures
    dev = Device("cuda:0" if device == "cuda" else device)
    measure_device = dev.name if dev.cuda else "torch-cpu"
    print(dev.describe(), flush=True)
    skip = set(args.skip.split(",")) - {""}
    small = args.small
    if "featurize" not in skip:
        models = args.models.split(",") if args.models else (
            ["chgnet-0.3.0"] if small else list(DEFAULT_MODELS)
        )  # fmt: skip
        bench_featurize(dev, models, 3 if small else args.structures, 1 if small else args.repeats)
    dev.name = measure_device
    if "lfre" not in skip:
        if small:
            bench_lfre(dev, 300, 40, 16, 10)
        else:
            bench_lfre(dev, 4000, 1000, 128, args.skmatter_points)
    if "gfre" not in skip:
        if small:
            bench_streamed(dev, 20_000, 16, 4096)
        else:
            bench_streamed(dev, 2_000_000, 256, 65536)
    return 0


if __name__ == "__main__":
    sys.exit(main())
