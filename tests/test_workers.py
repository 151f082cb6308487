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
