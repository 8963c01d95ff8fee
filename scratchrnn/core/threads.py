"""How many BLAS threads each job runs with, set through ``threadpoolctl``.

NumPy's OpenBLAS starts one thread per core, and its threads spin while they wait for
their partners. On an idle machine that pays: a training step of the default model runs
faster with both cores. But when other processes want the cores (another training, a
browser), a GEMM split over two threads waits for a partner thread that is descheduled,
and small GEMMs slow down 10-100x: measured on 2 cores beside two NumPy processes, the
default language model trained ~20x slower with OpenBLAS's default than with one thread
(benchmarks/threads.py; the table in benchmarks/results/threads.md).

So every command runs with the count ``choose`` picks for its workload:

    with threads.limit("train", requested=args.threads) as n:   # n BLAS threads inside
        ...

The choice, first match wins:
    1. ``requested`` (the command's ``--threads N``);
    2. the environment variable ``SCRATCHRNN_THREADS`` (a whole number);
    3. ``POLICY[workload]``: a number, or AUTO = the cores that other processes leave free,
       measured over PROBE_S seconds at the start (all of them on an idle machine, as before;
       one when the machine is busy). A training run measures again after every evaluation
       (``recheck``), so load that starts later is seen too.
N = 0, from either, means "no limit": the BLAS library's own default (one thread per core,
what scratchrnn did before it chose). The grid keeps one thread per worker process
(``grid.local_pool``) and does not read these.
"""
from __future__ import annotations

import math
import os
import time
from contextlib import contextmanager

from scratchrnn.core.errors import ConfigError

ENV = "SCRATCHRNN_THREADS"
AUTO = "auto"

POLICY = {"train": AUTO, "eval": AUTO, "analyze": AUTO, "onepage": AUTO, "sample": AUTO,
          "gradcheck": 1}
"""BLAS threads per workload: the free cores (AUTO), except ``gradcheck``, whose layers are
tiny (H <= 6 by default) and float64, so a second thread has nothing to share. The
measurement behind it: benchmarks/results/threads.md."""

PROBE_S = 0.05         # the start-up measurement of the other load: at least this long (at 100
                       # ticks per second a busy core shows as 5 ticks; 0.2 s cost short commands 20%)
SLACK_CORES = 0.25     # other load below this many cores counts as idle (daemons, the shell)
RECHECK_S = 2.0        # a running training measures the other load again at most this often


def cores():
    """The CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:            # not Linux
        return os.cpu_count() or 1


def _count(value, where):
    """A thread count from the command line or the environment: a whole number >= 0."""
    try:
        n = int(str(value).strip())
    except ValueError:
        n = -1
    if n < 0:
        raise ConfigError(f"{where} must be a whole number of threads (0 = the BLAS library's "
                          f"default), got {value!r}.")
    return n


def from_environment(environ=None):
    """``$SCRATCHRNN_THREADS`` as a count (0 = no limit), or None when it is unset or empty."""
    value = (os.environ if environ is None else environ).get(ENV, "").strip()
    return _count(value, ENV) if value else None


def _cpu_ticks():
    """(busy, own) clock ticks: of all CPUs (/proc/stat) and of this process with its threads
    (/proc/self/stat); None off Linux."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        with open("/proc/self/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, ValueError, IndexError):
        return None
    return sum(v) - v[3] - (v[4] if len(v) > 4 else 0), int(fields[11]) + int(fields[12])


def other_load(since, until):
    """The cores other processes kept busy between two ``(_cpu_ticks(), time)`` readings."""
    (t0, w0), (t1, w1) = since, until
    if t0 is None or t1 is None or w1 <= w0:
        return 0.0
    ticks = (t1[0] - t0[0]) - (t1[1] - t0[1])
    return max(0.0, ticks / os.sysconf("SC_CLK_TCK") / (w1 - w0))


_IMPORTED = (_cpu_ticks(), time.monotonic())    # a command's start-up is measured too: the
# package imports this module first, so its imports (NumPy) and the command's reading of its
# files fill the probe's window, and on an idle machine the probe seldom has to wait


def probe_other_load(seconds=PROBE_S, fresh_s=10.0):
    """The cores other processes keep busy, measured over at least ``seconds``. The window
    starts when this module was imported if that is under ``fresh_s`` ago (a command's own
    start-up -- its imports, reading the data -- then costs no extra wait: this process's
    time is counted apart), else now; the call sleeps only what is missing."""
    start = _IMPORTED if time.monotonic() - _IMPORTED[1] < fresh_s else (_cpu_ticks(), time.monotonic())
    missing = seconds - (time.monotonic() - start[1])
    if missing > 0:
        time.sleep(missing)
    return other_load(start, (_cpu_ticks(), time.monotonic()))


def free_cores(others, total=None):
    """The cores left when other processes keep ``others`` cores busy (at least 1)."""
    total = cores() if total is None else total
    return max(1, total - math.ceil(max(0.0, others - SLACK_CORES)))


def choose(workload, requested=None, environ=None):
    """The BLAS threads for ``workload`` (a key of POLICY): ``requested`` (--threads), else
    ``$SCRATCHRNN_THREADS``, else the policy (AUTO: ``free_cores`` of a probe of the machine).
    0 means "leave the library's default"."""
    if requested is not None:
        return _count(requested, "--threads")
    env = from_environment(environ)
    if env is not None:
        return env
    policy = POLICY.get(workload, 1)
    if policy == AUTO:
        return 1 if cores() == 1 else free_cores(probe_other_load())
    return policy


def blas_threads():
    """The thread count the loaded BLAS libraries report now (their largest), per
    threadpoolctl; None where it finds no BLAS."""
    from threadpoolctl import threadpool_info
    counts = [lib["num_threads"] for lib in threadpool_info() if lib.get("user_api") == "blas"]
    return max(counts) if counts else None


class _Adaptive:
    """The state of an AUTO limit in force: when it last measured, and how many threads."""

    def __init__(self, n):
        self.n = n
        self.mark = (_cpu_ticks(), time.monotonic())


_adaptive = None       # the AUTO limit in force, if any (``recheck`` adjusts it)


def recheck():
    """Inside an AUTO ``limit``: measure the other load since the last look and, when the free
    cores changed, set the thread count to them. Cheap; does nothing more often than RECHECK_S,
    nor outside an AUTO limit. Returns the count in force (None outside one)."""
    state = _adaptive
    if state is None:
        return None
    now = (_cpu_ticks(), time.monotonic())
    if now[1] - state.mark[1] < RECHECK_S:
        return state.n
    # our own threads' time is ours (spinning included); the rest is the machine's other load
    n = free_cores(other_load(state.mark, now))
    state.mark = now
    if n != state.n:
        from threadpoolctl import threadpool_limits
        threadpool_limits(limits=n)          # the enclosing limit restores the original on exit
        state.n = n
    return state.n


@contextmanager
def limit(workload, requested=None):
    """Run the block with ``choose(workload, requested)`` BLAS (and OpenMP) threads; yields
    the count in force inside (the library's default when the choice is 0)."""
    global _adaptive
    n = choose(workload, requested)
    if n == 0:
        yield blas_threads()
        return
    from threadpoolctl import threadpool_limits
    auto = requested is None and from_environment() is None and POLICY.get(workload) == AUTO
    outer = _adaptive
    with threadpool_limits(limits=n):
        _adaptive = _Adaptive(n) if auto else None
        try:
            yield n
        finally:
            _adaptive = outer
