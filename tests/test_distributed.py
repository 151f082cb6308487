"""Scale-out on Dask: the same numbers as one process, stores at URLs, killed workers.

One LocalCluster (two single-threaded worker processes) serves the whole module.
"""

from __future__ import annotations

import itertools
import json
import os
import pickle
import signal
import sys
import threading
import uuid
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms

import mlipspace
from mlipspace import distributed as dd
from mlipspace.features import drop_outlier_structures
from mlipspace.metrics import gfr
from mlipspace.metrics import neighbours as nb
from mlipspace.metrics import reconstruction as rec
from mlipspace.metrics import split as sp
from mlipspace.metrics import streamed as st
from mlipspace.metrics import validation as va
from mlipspace.pooling import cumulants
from mlipspace.store import FeatureStore
from mlipspace.store.zarr_store import MARKER_SUFFIX

distributed = pytest.importorskip("distributed")
TOL = 1e-10


@pytest.fixture(scope="module")
def client():
    import cloudpickle

    # the worker-side helpers below travel by value: workers need not import this file
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    )
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()
    dd.close_clients()


def _pair(n=3000, dx=24, dy=14, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, dx)) * np.linspace(0.5, 2.0, dx)
    Y = np.tanh(X @ rng.normal(size=(dx, dy)) / 3) + 0.05 * rng.normal(size=(n, dy))
    return X, Y


def _close(a, b, tol=TOL):
    return abs(a - b) <= tol * max(1.0, abs(b))


# -- schedulers --------------------------------------------------------------------------


def test_get_client_values(client, monkeypatch):
    assert dd.get_client(None) is None
    assert dd.get_client(client) is client
    for bad in ("", "local:0", "local:x", "local:-2", "two words"):
        with pytest.raises(dd.SchedulerError):
            dd.get_client(bad)
    monkeypatch.setattr(dd.client, "CONNECT_TIMEOUT", "1s")
    with pytest.raises(dd.SchedulerError, match="no Dask scheduler answers"):
        dd.get_client("tcp://127.0.0.1:9")
    same = dd.get_client(client.scheduler.address)
    assert same is dd.get_client(client.scheduler.address)  # one client per address
    assert dd.client.n_workers(same) == 2


# -- measures: the same numbers as one process ---------------------------------------------


def test_gfre_gfrd_tree_reduction_matches_one_process(client):
    X, Y = _pair()
    chunks = 700
    for fn, streamed, exact in (
        (dd.gfre, st.gfre_streamed, gfr.gfre),
        (dd.gfrd, st.gfrd_streamed, gfr.gfrd),
    ):
        one = streamed(st.iter_row_chunks(X, Y, chunks), len(X))
        on_dask = fn(X, Y, scheduler=client, chunk_rows=chunks)
        in_process = fn(X, Y, chunk_rows=chunks)
        assert _close(on_dask, one) and on_dask == in_process  # a fixed tree: same bits
        assert abs(on_dask - exact(X, Y)) < 1e-7
    # the test-row values of the streamed fit give the same RMS (bootstraps of compare)
    stats = dd.reconstruction_stats(X, Y, scheduler=client, chunk_rows=chunks)
    _, test = sp.resolve_split(len(X))
    assert _close(va.rms(stats.pointwise(X[test], Y[test])), st.gfre_streamed(stats, 0))


def test_sharded_neighbours_and_lfre_match_one_process(client):
    X, Y = _pair(n=2400)
    test = np.arange(0, len(X), 12)
    train = np.setdiff1d(np.arange(len(X)), test)
    rng = np.random.default_rng(1)
    train = rng.permutation(train)  # positions follow the given training order
    neighbours = dd.nearest_rows(X, X[test], 25, rows=train, scheduler=client)
    assert np.array_equal(neighbours, nb.nearest_train_rows(X[train], X[test], 25))
    one = rec.pointwise_lfre(X, Y, 30, train_idx=train, test_idx=test)
    on_dask = dd.pointwise_lfre(
        X, Y, 30, train_idx=train, test_idx=test, scheduler=client, chunk_rows=500
    )
    assert np.abs(on_dask - one).max() < TOL
    assert _close(
        dd.lfre(X, Y, 30, test_idx=test, chunk_rows=500), rec.lfre(X, Y, 30, test_idx=test)
    )


def test_cumulants_merge_structures_split_over_blocks(client):
    X, _ = _pair(n=2000)
    keys = np.repeat(np.arange(200), 10)
    one = cumulants(X, 5, structure_index=keys)
    on_dask = dd.cumulants(X, keys.astype(str), 5, scheduler=client, chunk_rows=333)
    assert list(on_dask.structure_hash) == [str(k) for k in range(200)]
    assert np.abs(on_dask.X - one.X).max() < TOL


# -- a store read block by block -----------------------------------------------------------


def _synthetic_structures(n, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        k = int(rng.integers(2, 9))
        atoms = Atoms(
            numbers=rng.integers(1, 30, size=k),
            positions=rng.uniform(0, 8, size=(k, 3)),
            cell=np.eye(3) * 8,
            pbc=True,
        )
        atoms.info["subset"] = "ab"[i % 2]
        atoms.info["source"] = f"synthetic@{i}"
        out.append(atoms)
    return out


@pytest.fixture(scope="module")
def synthetic_store(tmp_path_factory):
    path = tmp_path_factory.mktemp("dask") / "s.zarr"
    store = FeatureStore(path)
    structures = _synthetic_structures(120)
    rng = np.random.default_rng(3)
    base = {id(a): rng.normal(size=(len(a), 12)) for a in structures}
    W = rng.normal(size=(12, 9))
    feats = {
        "a": {id(a): base[id(a)].astype(np.float32) for a in structures},
        "b": {id(a): np.tanh(base[id(a)] @ W).astype(np.float32) for a in structures},
    }
    # several segments, different orders, a structure written twice, b lacks a few
    for model, order in (("a", structures), ("b", structures[::-1][5:])):
        for lo in range(0, len(order), 37):
            part = order[lo : lo + 37]
            store.write(model, "ll", part, [feats[model][id(a)] for a in part])
    store.write("a", "ll", structures[:3], [feats["a"][id(a)] + 1 for a in structures[:3]])
    return store


def test_store_arrays_are_the_aligned_tables(client, synthetic_store):
    pairs = [("a", "ll"), ("b", "ll")]
    sa = dd.store_arrays(synthetic_store, pairs, chunk_rows=100)
    aligned = synthetic_store.aligned(pairs)
    for pair in pairs:
        got = client.compute(sa.arrays[pair]).result()
        assert np.array_equal(got, aligned[pair].X)
    assert np.array_equal(sa.row_values("structure_hash"), aligned[pairs[0]].structure_hash)


def test_store_measures_match_one_process(client, synthetic_store):
    pairs = [("a", "ll"), ("b", "ll")]
    sa = dd.store_arrays(synthetic_store, pairs, chunk_rows=100)
    aligned = synthetic_store.aligned(pairs)
    X, Y = (np.asarray(aligned[p].X, dtype=np.float64) for p in pairs)
    bounds = np.cumsum((0, *sa.arrays[pairs[0]].chunks[0]))
    blocks = [(X[a:b], Y[a:b]) for a, b in itertools.pairwise(bounds)]
    one = st.gfre_streamed(st.reconstruction_stats(blocks, len(X)), 0)
    assert _close(dd.gfre(*sa.arrays.values(), scheduler=client), one)

    pooled, excluded = dd.store_cumulants(synthetic_store, pairs, 3, scheduler=client)
    kept, report = drop_outlier_structures(aligned)
    assert len(excluded) == len(report) == 0
    for pair in pairs:
        ref = cumulants(kept[pair], 3)
        assert list(pooled[pair].structure_hash) == list(ref.structure_hash)
        assert np.array_equal(pooled[pair].X, ref.X)  # blocks hold whole structures
        assert pooled[pair].structures.equals(ref.structures)


def test_compare_on_dask_engine(client, synthetic_store):
    kwargs = dict(measures=("gfre", "gfrd", "lfre", "cka"), n_test=60, n_local_points=20)
    one = mlipspace.compare(synthetic_store, ["a", "b"], **kwargs)
    on_dask = mlipspace.compare(
        synthetic_store, ["a", "b"], engine=dd.DaskEngine(client, chunk_rows=128), **kwargs
    )
    assert list(one.columns) == list(on_dask.columns)
    merged = one.merge(on_dask, on=["source", "target", "measure"], suffixes=("", "_dask"))
    assert len(merged) == len(one) == len(on_dask)
    for row in merged.itertuples():
        # GFRE/GFRD solve the normal equations of the streamed fit (see gfre_streamed)
        tol = 1e-7 if row.measure in ("gfre", "gfrd") else TOL
        assert abs(row.value - row.value_dask) <= tol * max(1.0, abs(row.value)), row


# -- stores at fsspec URLs -----------------------------------------------------------------


def test_memory_store_concurrent_writers_and_markers():
    url = f"memory://mlipspace-{uuid.uuid4().hex}/s.zarr"
    store = FeatureStore(url)
    assert store.commit == "marker" and store.path == url
    structures = _synthetic_structures(40, seed=5)
    feats = {id(a): np.full((len(a), 3), i, dtype=np.float32) for i, a in enumerate(structures)}

    def writer(part):
        mine = FeatureStore(url)  # each thread its own handle, as separate processes would
        for lo in range(0, len(part), 4):
            chunk = part[lo : lo + 4]
            mine.write("m", "ll", chunk, [feats[id(a)] for a in chunk])

    # overlapping work: every structure is written by two threads
    parts = [structures[:25], structures[15:], structures[::2], structures[1::2]]
    threads = [threading.Thread(target=writer, args=(p,)) for p in parts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    table = store.read("m", "ll")
    assert sorted(table.structures["source"]) == sorted(a.info["source"] for a in structures)
    assert len(table) == sum(len(a) for a in structures)
    for a in structures:
        rows = table.structure_hash == mlipspace.structure_hash(a)
        assert np.all(table.X[rows] == feats[id(a)])

    # a writer that died before its marker: invisible, and cleaned once old enough
    import zarr

    segments = store.segments("m", "ll")
    entry = segments[0].rsplit("/", 1)[0]
    ghost = f"{entry}/00000000000000000001-deadbeef"
    group = zarr.open_group(store._files.zarr_store(ghost, False), mode="w", zarr_format=3)
    group.attrs.update(store._segment_attrs(segments[0]))
    assert store.segments("m", "ll") == segments
    assert store.clean_staging(max_age=3600) == 1
    assert store._files.listdir(entry).count("00000000000000000001-deadbeef") == 0
    assert all(store._files.exists(f"{s}{MARKER_SUFFIX}") for s in segments)

    # pickles by URL (what a Dask task receives) and reads the same
    again = pickle.loads(pickle.dumps(store))
    assert again.url == url and len(again.read("m", "ll")) == len(table)


def test_file_url_and_marker_rule_on_local_disk(tmp_path):
    structures = _synthetic_structures(6, seed=7)
    arrays = [np.ones((len(a), 2)) for a in structures]
    by_url = FeatureStore(f"file://{tmp_path}/u.zarr")
    assert by_url.commit == "rename" and by_url.path == tmp_path / "u.zarr"
    by_url.write("m", "ll", structures, arrays)
    assert len(FeatureStore(tmp_path / "u.zarr", mode="r").read("m", "ll")) == len(
        np.concatenate(arrays)
    )
    assert "commit" not in (tmp_path / "u.zarr" / "zarr.json").read_text()

    marked = FeatureStore(tmp_path / "m.zarr", commit="marker")
    marked.write("m", "ll", structures[:3], arrays[:3])
    reopened = FeatureStore(f"file://{tmp_path}/m.zarr", mode="r")
    assert reopened.commit == "marker"
    (segment,) = reopened.segments("m", "ll")
    assert (tmp_path / "m.zarr" / f"{segment}{MARKER_SUFFIX}").is_file()
    assert not (tmp_path / "m.zarr" / ".staging").exists()
    with pytest.raises(mlipspace.errors.StoreError, match="rename needs a local"):
        FeatureStore(f"memory://x-{uuid.uuid4().hex}", commit="rename")


# -- featurization -------------------------------------------------------------------------


def _install_killer(flag: str) -> None:
    """On a worker: SIGKILL this process right after its first committed segment (once)."""
    from mlipspace.store.zarr_store import FeatureStore as Store

    original = Store.write

    def write(self, *args, **kwargs):
        written = original(self, *args, **kwargs)
        if written and not os.path.exists(flag):
            Path(flag).write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
        return written

    write.original = original
    Store.write = write


def _remove_killer() -> None:
    from mlipspace.store.zarr_store import FeatureStore as Store

    Store.write = getattr(Store.write, "original", Store.write)


@pytest.fixture(scope="module")
def demo10():
    return list(mlipspace.demo_structures("small"))[:10]


@pytest.fixture(scope="module")
def reference_store(tmp_path_factory, demo10):
    store = FeatureStore(tmp_path_factory.mktemp("ref") / "ref.zarr")
    mlipspace.featurize(demo10, "soap", layer=["ll", "node"], store=store, progress=False)
    return store


def _stored_once(store, model, layer, structures):
    seen = []
    for segment in store.segments(model, layer):
        seen += store.segment_structures(segment)["structure_hash"].tolist()
    assert sorted(seen) == sorted(a.info["structure_hash"] for a in structures)


def test_featurize_distributed_identical_and_resumable(client, tmp_path, demo10, reference_store):
    store = FeatureStore(tmp_path / "d.zarr")
    ticks = []
    done = dd.featurize_distributed(
        demo10, "soap", ["ll", "node"], store, scheduler=client, chunk_size=3,
        progress=lambda model, d, t: ticks.append((model, d, t)),
    )  # fmt: skip
    assert done == {"soap": 10} and ticks[-1] == ("soap", 10, 10)
    hashes = [a.info["structure_hash"] for a in demo10]
    for layer in ("ll", "node"):
        _stored_once(store, "soap", layer, demo10)
        assert np.array_equal(
            store.read("soap", layer, hashes).X, reference_store.read("soap", layer, hashes).X
        )
    assert dd.featurize_distributed(demo10, "soap", ["ll", "node"], store, client) == {"soap": 0}


def test_killed_worker_loses_nothing(client, tmp_path, demo10, reference_store):
    flag = str(tmp_path / "killed")
    client.run(_install_killer, flag)
    try:
        store = FeatureStore(tmp_path / "k.zarr")
        dd.featurize_distributed(
            demo10, "soap", ["ll", "node"], store, scheduler=client, chunk_size=2, progress=False
        )
    finally:
        client.run(_remove_killer)
    assert os.path.exists(flag)  # a worker did die, after committing part of its task
    client.wait_for_workers(2, timeout=60)
    hashes = [a.info["structure_hash"] for a in demo10]
    for layer in ("ll", "node"):
        _stored_once(store, "soap", layer, demo10)  # every structure exactly once
        assert np.array_equal(
            store.read("soap", layer, hashes).X, reference_store.read("soap", layer, hashes).X
        )


# -- command line and studies --------------------------------------------------------------


def test_cli_scheduler_options(client, tmp_path, demo10):
    from ase.io import write
    from typer.testing import CliRunner

    from mlipspace.cli import _import_commands
    from mlipspace.cli.app import app

    _import_commands()
    write(tmp_path / "s.xyz", demo10)
    address = client.scheduler.address
    store = str(tmp_path / "c.zarr")
    runner = CliRunner()
    result = runner.invoke(
        app,
        ["featurize", str(tmp_path / "s.xyz"), "-m", "soap", "-l", "ll", "-s", store,
         "--scheduler", address],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert len(FeatureStore(store).hashes("soap", "ll")) == 10
    result = runner.invoke(
        app,
        ["cumulants", "--store", store, "--model", "soap", "--max-order", "2", "--measures",
         "gfre", "--n-test", "2", "--out", str(tmp_path / "cum"), "--scheduler", address],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (tmp_path / "cum" / "soap" / "orders_ll.csv").is_file()
    result = runner.invoke(
        app,
        ["compare", "--store", store, "--models", "soap", "--measures", "gfre,cka",
         "--n-test", "20", "--out", str(tmp_path / "cmp"), "--scheduler", address],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (tmp_path / "cmp" / "compare.csv").is_file()


def test_study_runs_on_dask(client, tmp_path, demo10):
    from ase.io import write

    from mlipspace.study import parse_study, run_study

    write(tmp_path / "s.xyz", demo10)
    study = parse_study(
        f"""
[study]
out = "{tmp_path / "out"}"
[structures]
sources = ["{tmp_path / "s.xyz"}"]
[featurize]
models = ["soap"]
layers = ["ll"]
[compare]
models = ["soap"]
measures = ["gfre"]
n_test = 20
[cumulants]
models = ["soap"]
max_order = 2
"""
    )
    out = run_study(study, scheduler=client.scheduler.address)
    stages = json.loads((out / "stages.json").read_text())
    assert {"featurize", "compare", "cumulants"} <= set(stages)
    assert (out / "compare" / "compare_ll.csv").is_file()
    assert (out / "cumulants" / "soap" / "orders_ll.csv").is_file()
    assert len(FeatureStore(out / "store.zarr").hashes("soap", "ll")) == 10
