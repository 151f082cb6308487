"""Throughput and peak memory of the Dask measures against the number of workers.

    OMP_NUM_THREADS=1 python benchmarks/scale.py                      # 1M atoms x 256 (default)
    OMP_NUM_THREADS=1 python benchmarks/scale.py --atoms 200000 --workers 1,2   # quicker
    OMP_NUM_THREADS=1 python benchmarks/scale.py --source store --store /scratch/s.zarr

Synthetic float32 atom features (``--atoms`` rows × ``--dim`` columns, a target made from the
source by a fixed nonlinear map, structures of ``--atoms-per-structure`` atoms) in blocks of
``--chunk-rows`` rows. With ``--source arrays`` (default) every block is generated inside its
task (seeded per block, nothing is held anywhere); with ``--source store`` the pair is first
written to a feature store (two models) and read back block by block, as ``mlipspace compare``
and ``cumulants`` would.

Each configuration runs in a fresh process: ``serial`` (the same task tree evaluated in one
process, no Dask) and ``dask-N`` (a LocalCluster of N single-threaded worker processes). For
each: the wall time and throughput (atoms/s) of the streamed GFRE (one tree reduction of
sufficient statistics) and of the cumulants (per-structure moments, order ``--order``), and
the peak resident memory of the driver and of the largest worker, and the cores actually used
(CPU seconds of driver and workers over wall seconds: on a loaded machine this shows how much of
the cores the run got). Ratios are against ``dask-1`` (speed-up) and against the size of the
data (memory).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _block(i: int, rows: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng([seed, i])
    W = np.random.default_rng(seed).standard_normal((dim, dim)).astype(np.float32) / np.sqrt(dim)
    X = rng.standard_normal((rows, dim), dtype=np.float32)
    Y = np.tanh(X @ W) + np.float32(0.1) * rng.standard_normal((rows, dim), dtype=np.float32)
    return X, Y


def synthetic_arrays(atoms: int, dim: int, chunk_rows: int, seed: int = 0):
    """Lazily generated (X, Y) dask arrays: block ``i`` comes from its own seed."""
    import dask
    import dask.array as da

    blocks = []
    for i, start in enumerate(range(0, atoms, chunk_rows)):
        rows = min(chunk_rows, atoms - start)
        pair = dask.delayed(_stacked_block, pure=True)(i, rows, dim, seed)
        blocks.append(da.from_delayed(pair, shape=(rows, 2 * dim), dtype=np.float32))
    XY = da.concatenate(blocks)  # one task per block makes both X and Y
    return XY[:, :dim], XY[:, dim:]


def _stacked_block(i: int, rows: int, dim: int, seed: int) -> np.ndarray:
    return np.hstack(_block(i, rows, dim, seed))


def write_store(path: str, atoms: int, dim: int, per_structure: int, chunk_rows: int) -> None:
    """The synthetic pair as models ``x`` and ``y`` of a feature store (one segment per block)."""
    from ase import Atoms

    from mlipspace.store import FeatureStore

    store = FeatureStore(path)
    rng = np.random.default_rng(1)
    n_struct = atoms // per_structure
    per_block = max(1, chunk_rows // per_structure)
    for b, lo in enumerate(range(0, n_struct, per_block)):
        ids = range(lo, min(lo + per_block, n_struct))
        structures = []
        for s in ids:
            a = Atoms(numbers=np.full(per_structure, 14), cell=np.eye(3) * 30, pbc=True)
            a.positions = rng.uniform(0, 30, size=(per_structure, 3))
            a.info.update(structure_hash=f"s{s:09d}", subset="synthetic")
            structures.append(a)
        X, Y = _block(b, len(structures) * per_structure, dim, 0)
        split = np.cumsum([per_structure] * (len(structures) - 1))
        store.write("x", "ll", structures, np.split(X, split))
        store.write("y", "ll", structures, np.split(Y, split))


def run_one(args: argparse.Namespace, config: str, measure: str) -> dict:
    """One configuration and measure, in this (fresh) process."""
    from mlipspace import distributed as dd

    client = None
    t0 = time.perf_counter()
    if config.startswith("dask-"):
        client = dd.get_client(f"local:{int(config.split('-')[1])}")
    startup = time.perf_counter() - t0
    if args.source == "store":
        from mlipspace.store import FeatureStore

        store = FeatureStore(args.store, mode="r")
        sa = dd.store_arrays(store, [("x", "ll"), ("y", "ll")], chunk_rows=args.chunk_rows)
        X, Y = sa.arrays[("x", "ll")], sa.arrays[("y", "ll")]
        keys = sa.row_values("structure_hash")
    else:
        X, Y = synthetic_arrays(args.atoms, args.dim, args.chunk_rows)
        keys = np.repeat(
            np.arange(args.atoms // args.atoms_per_structure + 1), args.atoms_per_structure
        )
        keys = keys[: args.atoms].astype(str)
    n = X.shape[0]
    # warm-up: imports in the driver and in every worker are not part of the timings
    rng = np.random.default_rng(0)
    for _ in range(2):
        small = rng.standard_normal((512, 4))
        dd.gfre(small, small[:, :3] ** 2, scheduler=client, chunk_rows=64)
        dd.cumulants(small, np.repeat(np.arange(64), 8).astype(str), 2, scheduler=client)
    cpu = _cpu_s() + (sum(client.run(_cpu_s).values()) if client is not None else 0.0)
    t = time.perf_counter()
    if measure == "gfre":
        value = dd.gfre(X, Y, scheduler=client)
    else:
        pooled = dd.cumulants(X, keys, args.order, scheduler=client, chunk_rows=args.chunk_rows)
        value = float(np.abs(pooled.X).sum())
    seconds = time.perf_counter() - t
    cpu = _cpu_s() + (sum(client.run(_cpu_s).values()) if client is not None else 0.0) - cpu
    workers = list(client.run(_peak_mib).values()) if client is not None else []
    out = {
        "config": config,
        "measure": measure,
        "atoms": n,
        "blocks": len(X.chunks[0]),
        "value": value,
        "seconds": seconds,
        "cores_used": cpu / seconds,
        "startup_s": startup,
        "driver_peak_mib": _peak_mib(),
        "worker_peak_mib": max(workers) if workers else None,
    }
    dd.close_clients()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--atoms", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--atoms-per-structure", type=int, default=64)
    parser.add_argument("--order", type=int, default=4)
    parser.add_argument("--chunk-rows", type=int, default=65536)
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    parser.add_argument("--source", choices=("arrays", "store"), default="arrays")
    parser.add_argument("--store", default="scale-bench.zarr", help="store for --source store")
    parser.add_argument("--serial", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        config, measure = args.one.split(":")
        print(json.dumps(run_one(args, config, measure)))
        return
    if args.source == "store" and not os.path.exists(args.store):
        t = time.perf_counter()
        write_store(args.store, args.atoms, args.dim, args.atoms_per_structure, args.chunk_rows)
        print(f"wrote {args.store} in {time.perf_counter() - t:.1f} s")
    configs = (["serial"] if args.serial else []) + [f"dask-{w}" for w in args.workers.split(",")]
    data_mib = 2 * args.atoms * args.dim * 4 / 2**20
    load = os.getloadavg()
    print(
        f"{args.atoms} atoms x {args.dim} features (float32, X and Y: {data_mib:.0f} MiB), "
        f"blocks of {args.chunk_rows} rows, source={args.source}, cumulant order {args.order}; "
        f"{os.cpu_count()} cores, load average before {load[0]:.2f}, "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}"
    )
    results = {}
    for measure in ("gfre", "cumulants"):
        for config in configs:
            argv = [sys.executable, __file__, *sys.argv[1:], "--one", f"{config}:{measure}"]
            done = subprocess.run(argv, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                print(done.stderr[-3000:])
                raise SystemExit(f"{config} {measure} failed")
            results[config, measure] = json.loads(done.stdout.strip().splitlines()[-1])
    print(
        f"{'measure':>9} {'config':>7} {'seconds':>8} {'atoms/s':>9} {'vs dask-1':>9} "
        f"{'cores used':>10} {'driver MiB':>10} {'worker MiB':>10} {'peak/data':>9}"
    )
    for (config, measure), r in results.items():
        base = results.get(("dask-1", measure))
        peak = max(r["driver_peak_mib"], r["worker_peak_mib"] or 0)
        ratio = base["seconds"] / r["seconds"] if base else float("nan")
        worker = f"{r['worker_peak_mib']:.0f}" if r["worker_peak_mib"] else "-"
        print(
            f"{measure:>9} {config:>7} {r['seconds']:8.1f} {r['atoms'] / r['seconds']:9.3g} "
            f"{ratio:9.2f} {r['cores_used']:10.2f} {r['driver_peak_mib']:10.0f} {worker:>10} {peak / data_mib:9.2f}"
        )
    for measure in ("gfre", "cumulants"):
        values = {r["value"] for (c, m), r in results.items() if m == measure}
        print(f"{measure}: the same value in every configuration: {len(values) == 1}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
