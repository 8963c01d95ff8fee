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

import gc
import re
import sys
import threading
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


ADDRESS = re.compile(r"^(?:(tcp|tls)://)?(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$")


def check_address(address):
    """``address`` if it is a Dask scheduler address this grid can use (``tcp://HOST:PORT``,
    ``tls://HOST:PORT`` or ``HOST:PORT``), else ConfigError -- before any connection is tried."""
    match = ADDRESS.match(str(address).strip())
    if not match or not 0 < int(match.group(3)) < 65536:
        raise ConfigError(f"--scheduler {address!r} is not a Dask scheduler address; give "
                          f"tcp://HOST:PORT (e.g. tcp://10.0.0.5:8786), tls://HOST:PORT or HOST:PORT.")
    return str(address).strip()


def _connect(distributed, address, timeout):
    """A Client connected to ``address`` within ``timeout`` seconds, else ConfigError.

    Dask's own timeout covers reaching the port, not a port that answers and then says
    nothing a scheduler would (another service): the connection is made in a daemon thread
    and given up after the same time plus a margin. A client that failed to start is closed
    and collected here, its complaints at garbage collection (``Client.__del__``) silenced,
    so that the refusal stays one sentence."""
    box = {}

    def connect():
        try:
            box["client"] = distributed.Client(address, timeout=timeout, set_as_default=False)
        except BaseException as exc:      # noqa: BLE001 -- handed to the caller
            box["error"] = exc

    hook = sys.unraisablehook
    sys.unraisablehook = lambda unraisable: None       # Client.__del__ of a failed start
    try:
        thread = threading.Thread(target=connect, name="scratchrnn-dask-connect", daemon=True)
        thread.start()
        thread.join(timeout + 5.0)
        if "client" in box:
            return box["client"]
        what = (f"{type(box['error']).__name__}" if "error" in box else
                "it answers but not as a Dask scheduler")
        box.clear()
        gc.collect()
    finally:
        sys.unraisablehook = hook
    raise ConfigError(f"Cannot reach a Dask scheduler at {address!r} within {timeout:g} s ({what}); "
                      f"start one with 'dask scheduler' or check the address.")


class DaskCluster:
    """``with DaskCluster(scheduler="tcp://host:8786") as c: for task, record in c.run(tasks): ...``

    Give ``scheduler`` (an address) or ``local_workers`` (start a LocalCluster with that many
    single-threaded worker processes)."""

    def __init__(self, scheduler=None, local_workers=None, connect_timeout=10.0):
        if (scheduler is None) == (local_workers is None):
            raise ConfigError("give either a scheduler address or a number of local workers.")
        if scheduler is not None:
            scheduler = check_address(scheduler)
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
            self.client = _connect(distributed, check_address(self.scheduler), self.connect_timeout)
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
