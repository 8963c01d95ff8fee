"""The grid on a Dask cluster: an existing scheduler (``--scheduler tcp://HOST:PORT``) or a
``distributed.LocalCluster`` started here (``--local-cluster K``) to try it out.

Each point is one Dask task running ``worker.run_point``; results come back through
``distributed.as_completed`` as points finish. Workers started by a Dask nanny (the
default for ``dask worker`` and for ``LocalCluster``) get ``OMP_NUM_THREADS``,
``OPENBLAS_NUM_THREADS`` and ``MKL_NUM_THREADS`` set to 1 before they start, from Dask's
own ``distributed.nanny.pre-spawn-environ`` setting; start workers with
``--nthreads 1`` so that one worker trains one point per core.

A worker that dies while running a point is replaced and the point retried by the
scheduler; after ``distributed.scheduler.allowed-failures`` deaths (3 by default) the
task fails with ``KilledWorker`` and the point is recorded as failed.

Needs the ``cluster`` extra: ``pip install "scratchrnn[cluster]"``.
"""
from __future__ import annotations

import uuid

from scratchrnn.core.errors import ConfigError
from scratchrnn.grid.worker import run_point


def _distributed():
    try:
        import distributed
    except ImportError:
        raise ConfigError('Dask is not installed; install it with pip install "scratchrnn[cluster]" '
                          '(or "dask[distributed]").') from None
    return distributed


class DaskCluster:
    """``with DaskCluster(scheduler="tcp://host:8786") as c: for task, record in c.run(tasks): ...``

    Give ``scheduler`` (an address) or ``local_workers`` (start a LocalCluster with that many
    single-threaded worker processes)."""

    def __init__(self, scheduler=None, local_workers=None, connect_timeout=10.0):
        if (scheduler is None) == (local_workers is None):
            raise ConfigError("give either a scheduler address or a number of local workers.")
        self.scheduler, self.local_workers, self.connect_timeout = scheduler, local_workers, connect_timeout
        self.client = self.cluster = None
        self.running = 0

    def describe(self):
        if self.cluster is not None:
            return f"a Dask LocalCluster of {self.local_workers} worker{'s' * (self.local_workers != 1)}"
        return f"the Dask cluster at {self.scheduler} ({self.slots} worker threads)"

    @property
    def slots(self):
        return sum(self.client.nthreads().values()) if self.client is not None else 0

    @property
    def dashboard(self):
        """The dashboard's address (its plots need bokeh, which the cluster extra leaves out)."""
        try:
            import bokeh  # noqa: F401
        except ImportError:
            return f"{self.client.dashboard_link} (its plots need bokeh>=3.1: pip install bokeh)"
        return self.client.dashboard_link

    def __enter__(self):
        distributed = _distributed()
        if self.scheduler is not None:
            try:
                self.client = distributed.Client(self.scheduler, timeout=self.connect_timeout,
                                                 set_as_default=False)
            except (OSError, TimeoutError, ValueError) as exc:
                raise ConfigError(f"Cannot reach a Dask scheduler at {self.scheduler!r} within "
                                  f"{self.connect_timeout:g} s ({type(exc).__name__}); start one with "
                                  f"'dask scheduler' or check the address.") from None
        else:
            self.cluster = distributed.LocalCluster(n_workers=self.local_workers, threads_per_worker=1,
                                                    processes=True)
            self.client = distributed.Client(self.cluster, set_as_default=False)
        return self

    def __exit__(self, *exc):
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()
        return False

    def run(self, tasks):
        """Yield (task, record) for every task as it finishes."""
        distributed = _distributed()
        batch = uuid.uuid4().hex[:8]
        futures = {self.client.submit(run_point, task, key=f"scratchrnn-grid-{task['name']}-{batch}",
                                      pure=False): task for task in tasks}
        unfinished = len(futures)
        self.running = min(unfinished, self.slots)
        try:
            for future in distributed.as_completed(list(futures), loop=self.client.loop):
                task = futures[future]
                unfinished -= 1
                self.running = min(unfinished, self.slots)
                try:
                    record = future.result()
                except distributed.KilledWorker:
                    record = {"name": task["name"], "status": "failed",
                              "reason": ("its Dask worker died every time it ran it (killed, perhaps "
                                         "for lack of memory; see the workers' logs).")}
                except Exception as exc:    # noqa: BLE001 -- e.g. the worker lacks scratchrnn
                    record = {"name": task["name"], "status": "failed",
                              "reason": f"{type(exc).__name__} on the Dask worker: {exc}."}
                yield task, record
        finally:
            self.running = 0
            self.client.cancel(list(futures))
