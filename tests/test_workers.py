"""Jobs in worker processes: results in job order, errors raised, one worker runs here."""

from __future__ import annotations

import math
import os

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
