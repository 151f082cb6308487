"""Jobs in worker processes: results in job order, errors raised, one worker runs here."""

from __future__ import annotations

import math
import os
import platform

import pytest

from mlipspace.workers import map_in_workers


@pytest.mark.parametrize("n_workers", [1, 2])
def test_results_come_back_in_job_order(n_workers):
    done = []
    jobs = [(2, 10), (3, 4), (5, 2), (7, 1)]
    out = map_in_workers(pow, jobs, n_workers, on_done=lambda i, r: done.append((i, r)))
    assert out == [1024, 81, 25, 7]
    assert sorted(done) == list(enumerate(out))


def test_workers_are_separate_processes():
    pids = map_in_workers(os.getpid, [()] * 4, n_workers=2)
    assert os.getpid() not in pids


def test_a_failing_job_raises_its_error():
    with pytest.raises(ValueError, match="math domain error"):
        map_in_workers(math.sqrt, [(4.0,), (-1.0,)], n_workers=2)


def _allocator_in_worker() -> tuple[str | None, int]:
    """What a worker sees: the THP switch PyTorch reads, and glibc's mmap threshold at work
    (a 1 MB block comes from the heap, i.e. below the program break, once tuned)."""
    import ctypes

    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.sbrk.restype = ctypes.c_void_p
    block = libc.malloc(1 << 20)
    below_break = int(block < libc.sbrk(0))
    libc.free(ctypes.c_void_p(block))
    return os.environ.get("THP_MEM_ALLOC_ENABLE"), below_break


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt tuning is for glibc")
def test_workers_keep_freed_memory_in_their_heap():
    # glibc's default puts a fresh 1 MB block in its own mmap; tuned workers take it from
    # the heap (and so do not fault its pages in again after every free). A THP setting the
    # user made is kept.
    thp = os.environ.get("THP_MEM_ALLOC_ENABLE", "1")
    assert map_in_workers(_allocator_in_worker, [()] * 2, n_workers=2) == [(thp, 1)] * 2


# -- errors cross the process boundary whole ---------------------------------------------


def _error_classes() -> list[type]:
    """Every exception class of ``mlipspace.errors`` (those other helpers add included)."""
    from mlipspace import errors

    found: list[type] = [errors.MlipspaceError]
    for cls in found:
        for sub in cls.__subclasses__():
            if sub.__module__ == errors.__name__ and sub not in found:
                found.append(sub)
    return found


def _example(cls: type) -> Exception:
    from mlipspace.errors import StructureError

    if issubclass(cls, StructureError):
        return cls("has no atoms", "data/bad.extxyz", 3)
    return cls(f"{cls.__name__} raised on purpose in structure demo:alloy@7")


def _raise(cls: type) -> None:
    raise _example(cls)


def test_every_error_class_is_known():
    names = {cls.__name__ for cls in _error_classes()}
    assert {"MlipspaceError", "StructureError", "ModelError", "SchedulerError"} <= names


@pytest.mark.parametrize("cls", _error_classes(), ids=lambda cls: cls.__name__)
def test_every_error_survives_pickling(cls):
    import pickle

    error = _example(cls)
    back = pickle.loads(pickle.dumps(error))
    assert type(back) is cls
    assert str(back) == str(error)
    assert vars(back) == vars(error)  # StructureError's problem, source and frame too


def test_a_worker_raises_mlipspace_errors_as_themselves():
    """The error of a job in a worker process reaches the caller with class, message and
    parts (``source``/``frame`` of a StructureError) intact."""
    from mlipspace.errors import ReadError, SchedulerError

    with pytest.raises(ReadError, match=r"^data/bad.extxyz \(frame 3\): has no atoms$") as info:
        map_in_workers(_raise, [(ReadError,), (ReadError,)], n_workers=2)
    assert (info.value.source, info.value.frame, info.value.problem) == (
        "data/bad.extxyz",
        3,
        "has no atoms",
    )
    with pytest.raises(SchedulerError, match="raised on purpose"):
        map_in_workers(_raise, [(SchedulerError,), (SchedulerError,)], n_workers=2)


# -- a script without ``if __name__ == "__main__":`` ----------------------------------------

UNGUARDED_FEATURIZE = """
import sys

from ase.build import bulk

import mlipspace

print("script body runs", flush=True)
structures = mlipspace.read_structures([bulk("Cu"), bulk("Si"), bulk("Al")])
store = mlipspace.FeatureStore(sys.argv[1])
mlipspace.featurize_models(structures, ["soap", "chgnet-0.2.0"], "ll", store, n_workers=2)
print("entries", sorted(store.entries()))
"""

UNGUARDED_OWN_FUNCTION = """
from mlipspace.workers import map_in_workers


def square(x):
    return x * x


print(map_in_workers(square, [(2,), (3,)], n_workers=2))
"""


def _run_script(path, *args):
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, str(path), *map(str, args)], capture_output=True, text=True, timeout=600
    )


def test_a_script_without_main_guard_featurizes_in_workers(tmp_path):
    """The README's way of using the library, saved as a script as it is (issue 19, item 2):
    the workers do not run the script again."""
    script = tmp_path / "featurize_script.py"
    script.write_text(UNGUARDED_FEATURIZE)
    result = _run_script(script, tmp_path / "store.zarr")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("script body runs") == 1  # not once more per worker
    assert "entries [('chgnet-0.2.0', 'll'), ('soap', 'll')]" in result.stdout


def test_a_script_without_main_guard_using_its_own_function_is_told_what_to_write(tmp_path):
    script = tmp_path / "own_function.py"
    script.write_text(UNGUARDED_OWN_FUNCTION)
    result = _run_script(script)
    assert result.returncode != 0
    assert "ParameterError" in result.stderr
    assert 'put the script\'s code under `if __name__ == "__main__":`' in result.stderr
    assert "BrokenProcessPool" not in result.stderr and "bootstrapping" not in result.stderr
    guarded = tmp_path / "guarded.py"
    guarded.write_text(
        UNGUARDED_OWN_FUNCTION.replace("\nprint(", '\nif __name__ == "__main__":\n    print(')
    )
    result = _run_script(guarded)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "[4, 9]"
