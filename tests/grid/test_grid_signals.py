"""The grid stops when asked: real `scratchrnn grid` processes, real signals.

- Ctrl-C (SIGINT to the whole process group) and SIGTERM to the grid process alone stop a
  local-pool grid within seconds, not after the points' budgets: the running points save
  their last.npz and are recorded as "interrupted" in results.jsonl, results.md is written,
  grid.lock is removed, no worker is left, and the exit status is 128 + the signal.
- A second signal stops at once, even when the workers cannot answer (here: frozen with
  SIGSTOP): the workers are killed, the lock removed, exit 128 + the signal.

Readiness is polled (files on disk, signals pending in /proc), never slept for."""
import os
import signal
import subprocess
import time

import pytest

from grid_cli import TINY, children, env, grid_command, is_pool_worker, results
from scratchrnn.lm.lockfile import pid_alive

pytestmark = pytest.mark.bad_input("grid signals")

HERE = os.path.dirname(os.path.abspath(__file__))
LONG = [*TINY, "--cells", "rnn,gru", "--layers", "1", "--sizes", "16", "--budget-steps", "20000",
        "--workers", "2"]
POINTS = ("rnn-1x16-seed0", "gru-1x16-seed0")


def wait_for(condition, what, timeout=120.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


def start(folder):
    proc = subprocess.Popen(grid_command(*LONG, "--out", folder), cwd=HERE, env=env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    wait_for(lambda: all(os.path.exists(folder / "runs" / p / "last.npz") for p in POINTS) or
             proc.poll() is not None, "both points' first checkpoint")
    assert proc.poll() is None, proc.communicate()
    workers = [pid for pid in children(proc.pid) if is_pool_worker(pid)]
    assert len(workers) == 2
    return proc, workers


def finish(proc, timeout=60):
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"the grid did not stop within {timeout} s of the signal")


def check_stopped(folder, workers, err):
    assert "Traceback" not in err
    assert not os.path.exists(folder / "grid.lock")
    wait_for(lambda: not any(pid_alive(p) for p in workers), "the workers to be gone", timeout=30)


@pytest.mark.parametrize("how", ["ctrl-c to the group", "sigterm to the grid alone"])
def test_a_signal_stops_the_grid_saves_the_points_and_records_them(tmp_path, how):
    folder = tmp_path / "g"
    proc, workers = start(folder)
    signum = signal.SIGINT if how.startswith("ctrl-c") else signal.SIGTERM
    started = time.monotonic()
    if how.startswith("ctrl-c"):
        os.killpg(proc.pid, signum)
    else:
        proc.send_signal(signum)
    _out, err = finish(proc)
    assert time.monotonic() - started < 60
    assert proc.returncode == 128 + signum, err
    assert f"stopped by {signal.Signals(signum).name}" in err
    check_stopped(folder, workers, err)
    records = {r["name"]: r for r in results(folder)}
    assert set(records) == set(POINTS)
    assert {r["status"] for r in records.values()} == {"interrupted"}
    assert (folder / "results.md").exists()
    for point in POINTS:                    # each point saved past its first evaluation
        assert "saved in its last.npz" in records[point]["reason"]


def _pending(pid, signum):
    """Whether ``signum`` is pending for process ``pid`` (Linux /proc)."""
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8") as f:
            for line in f:
                if line.startswith(("SigPnd:", "ShdPnd:")) and int(line.split()[1], 16) >> (signum - 1) & 1:
                    return True
    except OSError:
        return False
    return False


def _state(pid):
    with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


def test_a_second_signal_stops_at_once_even_when_the_workers_cannot_answer(tmp_path):
    folder = tmp_path / "g"
    proc, workers = start(folder)
    for pid in workers:
        os.kill(pid, signal.SIGSTOP)        # frozen: they cannot save and return
    wait_for(lambda: all(_state(pid) == "T" for pid in workers), "the workers to be stopped")
    try:
        proc.send_signal(signal.SIGTERM)
        # the grid forwarded the stop to its workers: their SIGTERM is pending (they are frozen)
        wait_for(lambda: all(_pending(pid, signal.SIGTERM) for pid in workers), "the forwarded SIGTERM")
        proc.send_signal(signal.SIGTERM)
        _out, err = finish(proc, timeout=30)
    finally:
        for pid in workers:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "stopped at once by a second SIGTERM" in err
    check_stopped(folder, workers, err)
