"""Dask clients from a ``--scheduler`` value, and running task trees with a progress bar."""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import MlipspaceError, SchedulerError

if TYPE_CHECKING:
    from distributed import Client

T = TypeVar("T")
ProgressCallback = Callable[[int, int], None]

#: children combined by one task of a tree reduction
SPLIT_EVERY = 8
#: seconds to wait for a scheduler named by address
CONNECT_TIMEOUT = "20s"

_LOCK = threading.Lock()
_CLIENTS: dict[str, Client] = {}


def _local_workers(text: str) -> int:
    count = text.split(":", 1)[1] if ":" in text else ""
    if count == "":
        return max(1, os.cpu_count() or 1)
    if not count.isdigit() or int(count) < 1:
        raise SchedulerError(
            f"--scheduler {text!r}: 'local:N' needs a positive number of workers N, e.g. 'local:4'"
        )
    return int(count)


def get_client(scheduler: str | Client | None) -> Client | None:
    """The Dask client that ``scheduler`` names (one per value and process, reused).

    Parameters
    ----------
    scheduler : str, distributed.Client or None
        ``None``: no Dask (the caller runs in this process). ``"local:N"`` (or ``"local"``,
        one worker per core): a :class:`distributed.LocalCluster` of ``N`` single-threaded
        worker processes on this machine, started here and closed when this process exits
        (or by :func:`close_clients`). A path ending in ``.json`` that exists is a scheduler
        file (``dask scheduler --scheduler-file``). Anything else is the address of a running
        scheduler (``tcp://host:8786``, ``host:8786``, the address printed by ``dask
        scheduler`` or a dask-jobqueue cluster). A ``Client`` is returned as it is.

    Returns
    -------
    distributed.Client or None

    Raises
    ------
    SchedulerError
        The value is malformed, or no scheduler answers at the address.

    Examples
    --------
    >>> get_client(None) is None
    True
    >>> client = get_client("local:2")  # doctest: +SKIP
    """
    if scheduler is None:
        return None
    from distributed import Client

    if isinstance(scheduler, Client):
        return scheduler
    if not isinstance(scheduler, str) or not scheduler.strip():
        raise SchedulerError(
            f"--scheduler must be 'local:N' or a scheduler address, not {scheduler!r}"
        )
    text = scheduler.strip()
    with _LOCK:
        cached = _CLIENTS.get(text)
        if cached is not None and cached.status == "running":
            return cached
        if text == "local" or text.startswith("local:"):
            from distributed import LocalCluster

            cluster = LocalCluster(
                n_workers=_local_workers(text),
                threads_per_worker=1,
                processes=True,
                dashboard_address=":0",
            )
            client = Client(cluster)
        else:
            if any(c.isspace() for c in text):
                raise SchedulerError(f"--scheduler {text!r}: not an address")
            where = (
                {"scheduler_file": text}
                if text.endswith(".json") and os.path.isfile(text)
                else {"address": text}
            )
            try:
                client = Client(**where, timeout=CONNECT_TIMEOUT)
            except (OSError, TimeoutError, ValueError) as exc:
                raise SchedulerError(
                    f"--scheduler {text!r}: no Dask scheduler answers there ({exc}); give "
                    "'local:N' for a cluster on this machine or the address of a running "
                    "scheduler (tcp://host:8786)"
                ) from exc
        _CLIENTS[text] = client
        return client


def close_clients() -> None:
    """Close the clients :func:`get_client` opened, and the local clusters it started."""
    with _LOCK:
        clients = list(_CLIENTS.values())
        _CLIENTS.clear()
    for client in clients:
        cluster = client.cluster
        try:
            client.close()
            if cluster is not None:
                cluster.close()
        except Exception:  # closing at exit: nothing left to report to
            pass


atexit.register(close_clients)


def n_workers(client: Client | None) -> int:
    """Number of workers of ``client`` (1 without one)."""
    if client is None:
        return 1
    return max(1, len(client.scheduler_info(n_workers=-1).get("workers", {})))


# -- running tasks -------------------------------------------------------------------


def _combine_all(combine: Callable[..., T], *parts: T) -> T:
    return combine(*parts)


def tree_reduce(
    leaves: Sequence[Any],
    combine: Callable[..., T],
    client: Client | None = None,
    split_every: int = SPLIT_EVERY,
    progress: ProgressCallback | None = None,
) -> T:
    """Evaluate ``leaves`` (``dask.delayed`` objects) and combine them in a fixed tree.

    ``combine(*parts)`` takes up to ``split_every`` consecutive partial results and returns
    one; it is applied level by level to consecutive groups, so the tree (and hence the
    floating-point result) is the same with or without a client, whatever the number of
    workers or the order in which tasks finish. With a client every leaf and combination
    is a task (a lost worker's tasks are rerun); without one the leaves are evaluated here,
    one after the other. ``progress(done, total)`` counts finished leaves.
    """
    if not leaves:
        raise MlipspaceError("nothing to reduce: no chunks")
    split_every = max(2, int(split_every))
    total = len(leaves)
    report = progress or (lambda done, total: None)
    report(0, total)
    if client is None:
        level: list[Any] = []
        for i, leaf in enumerate(leaves):
            level.append(leaf.compute(scheduler="sync") if hasattr(leaf, "compute") else leaf)
            report(i + 1, total)
        while len(level) > 1:
            level = [
                combine(*level[i : i + split_every]) for i in range(0, len(level), split_every)
            ]
        return level[0]
    from distributed import as_completed

    futures = client.compute(list(leaves))
    level = list(futures)
    while len(level) > 1:
        level = [
            client.submit(_combine_all, combine, *level[i : i + split_every], pure=False)
            for i in range(0, len(level), split_every)
        ]
    root = level[0]
    done = 0
    for _ in as_completed(futures):
        done += 1
        report(done, total)
    del futures
    return root.result()


def compute_all(
    items: Sequence[Any],
    client: Client | None = None,
    progress: ProgressCallback | None = None,
) -> list[Any]:
    """Evaluate ``dask.delayed`` objects, in order, with ``progress(done, total)``."""
    report = progress or (lambda done, total: None)
    total = len(items)
    report(0, total)
    if client is None:
        out = []
        for i, item in enumerate(items):
            out.append(item.compute(scheduler="sync"))
            report(i + 1, total)
        return out
    from distributed import as_completed

    futures = client.compute(list(items))
    done = 0
    for _ in as_completed(futures):
        done += 1
        report(done, total)
    return [f.result() for f in futures]
