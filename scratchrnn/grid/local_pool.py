"""The grid on this machine: a ``concurrent.futures`` process pool, one BLAS thread per worker.

Workers are started with ``spawn`` (a fresh interpreter, not a fork of a process that
already runs threads) and with ``OPENBLAS_NUM_THREADS`` / ``OMP_NUM_THREADS`` /
``MKL_NUM_THREADS`` set to 1 in the environment they start with, so the setting is in
place before NumPy loads its BLAS: K workers use K cores, not K times all of them.

Each worker watches its parent: if the grid process dies (even by SIGKILL) the worker
exits within a second instead of training on, orphaned, into a run folder that the next
grid will resume.

A worker that dies (killed, out of memory) breaks a ``ProcessPoolExecutor``: every point
in flight fails with ``BrokenProcessPool`` and nobody can tell which one killed it. The
pool is then rebuilt and the points that were in flight run again one at a time (from
their last checkpoints); a point whose worker dies while it runs alone is recorded as
failed.
"""
from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from scratchrnn.grid.worker import run_point

BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
WORKER_DIED = ("its worker process died while running it (killed by a signal or by the "
               "system, perhaps for lack of memory)")


def default_workers():
    """The cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


class LocalPool:
    """``with LocalPool(2) as pool: for task, record in pool.run(tasks): ...``"""

    def __init__(self, workers=None, threads=1):
        self.workers = workers or default_workers()
        self.threads = threads     # BLAS threads per worker: 1, so K workers use K cores
        self.running = 0           # points in flight, for the progress display
        self._saved_env = None

    def describe(self):
        return f"a local pool of {self.workers} worker process{'es' if self.workers != 1 else ''}"

    def __enter__(self):
        self._saved_env = {k: os.environ.get(k) for k in BLAS_THREAD_VARIABLES}
        os.environ.update({k: str(self.threads) for k in BLAS_THREAD_VARIABLES})   # inherited by workers
        return self

    def __exit__(self, *exc):
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        return False

    def _new_pool(self):
        return ProcessPoolExecutor(max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_watch_parent, initargs=(os.getpid(),))

    def run(self, tasks):
        """Yield (task, record) for every task, in the order they finish."""
        waiting, suspects, inflight = deque(tasks), deque(), {}
        pool = self._new_pool()

        def fill():
            if suspects:                           # after a worker died: one at a time
                if not inflight:
                    task = suspects.popleft()
                    inflight[pool.submit(run_point, task)] = task
            else:
                while waiting and len(inflight) < self.workers:
                    task = waiting.popleft()
                    inflight[pool.submit(run_point, task)] = task
            self.running = len(inflight)

        try:
            while waiting or suspects or inflight:
                fill()
                done, _ = wait(inflight, return_when=FIRST_COMPLETED)
                if any(isinstance(f.exception(), BrokenProcessPool) for f in done):
                    wait(inflight)                 # a broken pool fails every point in flight
                    done = list(inflight)
                finished, lost = [], []
                for future in done:
                    task = inflight.pop(future)
                    if isinstance(future.exception(), BrokenProcessPool):
                        lost.append(task)
                    else:
                        finished.append((task, future))
                if lost:
                    pool.shutdown(wait=True)
                    pool = self._new_pool()
                    if len(lost) == 1:             # it ran alone: it is the one that died
                        finished.append((lost[0], None))
                    else:
                        suspects.extend(lost)
                fill()                             # start the next points before reporting these
                for task, future in finished:
                    if future is None:
                        yield task, {"name": task["name"], "status": "failed", "reason": WORKER_DIED + "."}
                    else:
                        yield task, future.result()
            pool.shutdown(wait=True)
        finally:
            self.running = 0
            _stop(pool)             # only does something when the loop was left early


def _stop(pool):
    """Shut the pool down without waiting for points still training (they are killed)."""
    pool.shutdown(wait=False, cancel_futures=True)
    kill = getattr(pool, "kill_workers", None)       # Python 3.14+
    if kill is not None:
        kill()
        return
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        if process.is_alive():
            process.kill()


def _watch_parent(parent_pid):
    """Pool initializer: exit as soon as the grid process that started this worker is gone."""
    def watch():
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="scratchrnn-grid-watch-parent", daemon=True).start()
