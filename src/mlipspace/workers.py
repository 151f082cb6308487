"""Independent jobs in worker processes: several models side by side on one machine.

Message-passing networks on small structures use a second thread poorly, so on a 2-core
machine two models run side by side (one thread each) finish about 1.5× sooner than one
after the other with two threads each. Workers are spawned (no forked torch or zarr threads).
"""

from __future__ import annotations

import ast
import contextlib
import ctypes
import ctypes.util
import multiprocessing
import os
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

from .errors import ParameterError

# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def tune_allocator(mmap_threshold: int = 32 << 20, trim_threshold: int = 256 << 20) -> bool:
    """Keep freed memory in this process instead of handing it back to the kernel, and let
    PyTorch back large tensors with transparent huge pages.

    A forward pass allocates and frees the same tensors again and again. With glibc's default
    thresholds the larger ones are ``mmap``-ed and unmapped every time, so each of their pages
    faults again on first touch; featurizing spent up to half its time in the kernel that way
    (300 demo structures, one thread: SevenNet-0 9.8 s → 6.7 s, DIEP ≈ 19 s → 11 s). Blocks
    below ``mmap_threshold`` come from the heap, the heap keeps up to ``trim_threshold`` bytes
    of free memory, and ``THP_MEM_ALLOC_ENABLE=1`` (read by PyTorch at its first allocation,
    so call this before importing torch; spawned children inherit it) asks for 2 MB pages for
    tensors of 2 MB and more. Linux only; returns whether glibc took the settings.
    """
    if not sys.platform.startswith("linux"):
        return False
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl has no mallopt)
        return False
    return bool(
        mallopt(_M_MMAP_THRESHOLD, int(mmap_threshold))
        and mallopt(_M_TRIM_THRESHOLD, int(trim_threshold))
    )


def limit_threads(threads: int) -> None:
    """Worker initializer: ``threads`` torch and BLAS threads in this process, and a heap that
    keeps freed memory (:func:`tune_allocator`, before torch allocates anything)."""
    tune_allocator()
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads)
    threadpool_limits(threads)


def default_workers(n_jobs: int) -> int:
    """One worker per core, at most one per job."""
    return max(1, min(os.cpu_count() or 1, n_jobs))


def map_in_workers(
    fn: Callable[..., Any],
    jobs: Sequence[tuple],
    n_workers: int | None = None,
    on_done: Callable[[int, Any], None] | None = None,
) -> list[Any]:
    """``[fn(*job) for job in jobs]``, computed by ``n_workers`` worker processes.

    Each worker gets ``cores // n_workers`` torch and BLAS threads. With one worker the jobs
    run here, in order. ``on_done(index, result)`` is called as each job ends; the first
    error is raised (the jobs not started yet are cancelled). ``fn`` and the jobs must be
    picklable.
    """
    n_workers = max(1, min(int(n_workers or default_workers(len(jobs))), max(1, len(jobs))))
    results: list[Any] = [None] * len(jobs)
    if n_workers == 1:
        for i, job in enumerate(jobs):
            results[i] = fn(*job)
            if on_done:
                on_done(i, results[i])
        return results
    threads = max(1, (os.cpu_count() or 1) // n_workers)
    with (
        _main_script_left_out(fn, jobs),
        ProcessPoolExecutor(
            n_workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=limit_threads,
            initargs=(threads,),
        ) as pool,
    ):
        futures = {pool.submit(fn, *job): i for i, job in enumerate(jobs)}
        try:
            for future in as_completed(futures):
                i = futures[future]
                results[i] = future.result()
                if on_done:
                    on_done(i, results[i])
        except BaseException:
            for future in futures:
                future.cancel()
            raise
    return results


# -- scripts without ``if __name__ == "__main__":`` -----------------------------------------


def _defined_in_main(obj: Any) -> bool:
    return "__main__" in (getattr(obj, "__module__", None), type(obj).__module__)


def _has_main_guard(path: str) -> bool:
    """Whether the script at ``path`` has an ``if __name__ == "__main__":`` block."""
    try:
        tree = ast.parse(open(path, encoding="utf-8").read())
    except (OSError, SyntaxError, UnicodeDecodeError):
        return True  # cannot tell: let multiprocessing speak for itself
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "__name__" in ast.unparse(node.test):
            return True
    return False


@contextlib.contextmanager
def _main_script_left_out(fn: Callable[..., Any], jobs: Sequence[tuple]) -> Any:
    """Start the workers without running the caller's script again in each of them.

    A spawned worker normally re-runs the main script (to find what the jobs refer to), so a
    script without ``if __name__ == "__main__":`` would start its own work again there and
    fail ("bootstrapping phase", ``BrokenProcessPool``). When neither ``fn`` nor any job
    argument comes from the script, the workers need nothing from it: the script is hidden
    from them while they start. When something does, a script without the guard is stopped
    here with what to write instead.
    """
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if main is None or path is None:  # interactive session, notebook, ``python -c``
        yield
        return
    if _defined_in_main(fn) or any(_defined_in_main(x) for job in jobs for x in job):
        if not _has_main_guard(path):
            raise ParameterError(
                f"{path} runs work in worker processes with a function or object defined in "
                "the script itself, so each worker must import the script: put the script's "
                'code under `if __name__ == "__main__":` (see the multiprocessing docs, '
                '"Safe importing of main module"), or define the function in a module'
            )
        yield
        return
    had_spec, spec = "__spec__" in vars(main), getattr(main, "__spec__", None)
    del main.__file__
    main.__spec__ = None
    try:
        yield
    finally:
        main.__file__ = path
        if had_spec:
            main.__spec__ = spec
        else:
            del main.__spec__
