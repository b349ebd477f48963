"""Run sweep tasks on a Dask distributed cluster (the ``dist`` extra): an existing scheduler,
or a LocalCluster of worker processes started for the sweep."""
from __future__ import annotations

import collections
from collections.abc import Callable, Iterable, Iterator

from simulator.errors import SpecError

CONNECT_TIMEOUT_S = 10
TASKS_IN_FLIGHT_PER_THREAD = 2


def _dask():
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise SpecError("<arguments>", "--scheduler/--workers",
                        "a Dask cluster needs dask.distributed: pip install 'llmsim[dist]'") from None
    return Client, LocalCluster


def _connect(scheduler: str | None, workers: int | None):
    Client, LocalCluster = _dask()
    if scheduler is None:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
        return Client(cluster), cluster
    try:
        return Client(scheduler, timeout=CONNECT_TIMEOUT_S), None
    except (OSError, TimeoutError, ValueError) as exc:
        raise SpecError("<arguments>", "--scheduler", f"cannot reach a Dask scheduler at {scheduler!r} ({exc})") from None


def run_ordered(fn: Callable, tasks: Iterable[tuple], scheduler: str | None = None,
                workers: int | None = None) -> Iterator:
    """Yield fn(*task) for each task, in task order, computed on the cluster; a bounded
    number of tasks is in flight, so results stream out as the cluster produces them."""
    client, cluster = _connect(scheduler, workers)
    pending = collections.deque()
    try:
        window = max(2, TASKS_IN_FLIGHT_PER_THREAD * sum(client.nthreads().values()))
        for task in tasks:
            pending.append(client.submit(fn, *task, pure=False))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()
        client.close()
        if cluster is not None:
            cluster.close()
