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
import signal
import threading
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from scratchrnn.grid.worker import run_point

BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
STOP_GRACE_S = 60.0     # how long a stop waits for the points in flight to save and return
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
        self._pool = None
        self._stop_at = None       # time.monotonic() of the stop request, or None

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

    def request_stop(self):
        """Stop soon (called from the grid's signal handler): start no more points and send
        SIGTERM to the workers, whose runs save their last.npz at the end of the current step
        and come back as "interrupted"; ``run`` then ends once they are back (or after
        STOP_GRACE_S, killing what is left)."""
        if self._stop_at is None:
            self._stop_at = time.monotonic()
            for pid in self.worker_pids():
                _signal(pid, signal.SIGTERM)

    def kill(self):
        """Kill every worker now (a second signal: stop at once)."""
        for pid in self.worker_pids():
            _signal(pid, signal.SIGKILL)

    def worker_pids(self):
        processes = (getattr(self._pool, "_processes", None) or {}) if self._pool is not None else {}
        return [p.pid for p in list(processes.values()) if p.pid is not None]

    def run(self, tasks):
        """Yield (task, record) for every task, in the order they finish."""
        waiting, suspects, inflight = deque(tasks), deque(), {}
        pool = self._pool = self._new_pool()

        def stopped(task):
            return {"name": task["name"], "status": "interrupted",
                    "reason": "the grid was stopped while it ran; a re-run resumes it from its last.npz."}

        def fill():
            if self._stop_at is not None:          # stopping: start nothing new
                self.running = len(inflight)
                return
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
            while inflight or (self._stop_at is None and (waiting or suspects)):
                fill()
                done, _ = wait(inflight, timeout=0.5, return_when=FIRST_COMPLETED)
                if not done:
                    if self._stop_at is not None and time.monotonic() - self._stop_at > STOP_GRACE_S:
                        for task in inflight.values():
                            yield task, stopped(task)
                        inflight.clear()
                    continue
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
                if lost and self._stop_at is not None:   # stopping: a killed worker is expected
                    finished.extend((task, "stopped") for task in lost)
                elif lost:
                    pool.shutdown(wait=True)
                    pool = self._pool = self._new_pool()
                    if len(lost) == 1:             # it ran alone: it is the one that died
                        finished.append((lost[0], None))
                    else:
                        suspects.extend(lost)
                fill()                             # start the next points before reporting these
                for task, future in finished:
                    if future == "stopped":
                        yield task, stopped(task)
                    elif future is None:
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


def _signal(pid, signum):
    try:
        os.kill(pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def _worker_stop_requested(signum, frame):
    """A worker between points (or before its run took over SIGTERM) notes the stop."""
    from scratchrnn.grid import worker
    worker.STOP_REQUESTED = signum


def _watch_parent(parent_pid):
    """Pool initializer: the worker leaves the terminal's process group (a Ctrl-C goes to the
    grid process alone, which then stops the workers with SIGTERM, once), notes a SIGTERM that
    comes between points instead of dying of it, and exits as soon as the grid process that
    started it is gone."""
    try:
        os.setpgid(0, 0)
    except OSError:
        pass
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _worker_stop_requested)

    def watch():
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="scratchrnn-grid-watch-parent", daemon=True).start()
