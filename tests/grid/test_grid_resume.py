"""A grid killed with SIGKILL resumes; a worker that dies is recorded (or its points retried).

The grid runs in a subprocess; the test watches the points' run folders and kills the grid
(or one of its pool workers) once a point has written a checkpoint and before it ends."""
import os
import signal
import time

from grid_cli import TINY, children, is_pool_worker, last_eval_step, latest, results, run_grid, start_grid
from scratchrnn.grid.local_pool import WORKER_DIED

EVERY = 25           # steps between checkpoints (each also scores val and draws loss.png)
LONG = 200           # steps: the point being killed must still be running when the test strikes


def _wait_for(condition, proc, what, timeout=120):
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"the grid ended before {what}: {proc.stderr.read().decode()[-2000:]}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


def _gone(pids, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(os.path.exists(f"/proc/{pid}") and _state(pid) != "Z" for pid in pids):
            return True
        time.sleep(0.05)
    return False


def _state(pid):
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"


def test_sigkilled_grid_resumes_where_it_stopped(tmp_path):
    folder = tmp_path / "grid"
    # two points on one worker: the bigger one runs first and finishes, then the small one starts
    args = [*TINY, "--cells", "rnn", "--layers", "1", "--sizes", "8,12", "--budget-steps", LONG, "--eval-every", EVERY,
            "--workers", 1, "--out", folder]
    small = folder / "runs" / "rnn-1x8-seed0"
    proc = start_grid(*args, cwd=tmp_path)
    try:
        # while it runs, a second grid on the same folder is refused in one sentence (checked
        # first: starting that second process takes longer than the tiny points take to finish)
        _wait_for(lambda: (folder / "grid.lock").exists(), proc, "the grid's lock")
        second = run_grid(*args, cwd=tmp_path)
        assert second.returncode == 2 and "Another grid (process" in second.stderr
        assert second.stderr.count("\n") == 1
        _wait_for(lambda: last_eval_step(small) >= EVERY, proc, "the second point's checkpoint")
        workers = children(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert _gone(workers), "the pool's workers outlived the killed grid"
    assert (folder / "grid.lock").exists()                      # left behind, stale
    before = results(folder)
    assert [r["name"] for r in before] == ["rnn-1x12-seed0"]    # the first point had finished
    checkpoint_step = last_eval_step(small)
    assert EVERY <= checkpoint_step < LONG
    finished_mtime = os.stat(folder / "runs" / "rnn-1x12-seed0" / "last.npz").st_mtime_ns

    again = run_grid(*args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "1 already done, 1 to run" in again.stdout
    after = results(folder)
    assert after[0] == before[0]                                # the finished point: untouched
    assert os.stat(folder / "runs" / "rnn-1x12-seed0" / "last.npz").st_mtime_ns == finished_mtime
    resumed = after[1]
    assert resumed["name"] == "rnn-1x8-seed0" and resumed["status"] == "ok"
    assert resumed["resumed_from_step"] == checkpoint_step      # only the steps since it were lost
    assert resumed["steps"] == LONG
    assert not (folder / "grid.lock").exists()


def _grid_with_a_worker_killed(args, cwd, ready, count):
    """Run the grid ``args``, SIGKILL one of its pool workers once ``ready()`` (there must be
    ``count`` of them) and let it finish: (exit status, stderr)."""
    proc = start_grid(*args, cwd=cwd)
    try:
        _wait_for(ready, proc, "the points' checkpoints")
        workers = [pid for pid in children(proc.pid) if is_pool_worker(pid)]
        assert len(workers) == count
        os.kill(workers[0], signal.SIGKILL)
        proc.wait(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        stderr = proc.stderr.read().decode()
        proc.stderr.close()
    return proc.returncode, stderr


def test_a_dead_worker_fails_its_point_and_the_grid_goes_on(tmp_path):
    folder = tmp_path / "grid"
    args = [*TINY, "--cells", "rnn", "--layers", "1", "--sizes", "8,12", "--budget-steps", LONG, "--eval-every", EVERY,
            "--workers", 1, "--out", folder]
    first = folder / "runs" / "rnn-1x12-seed0"               # the bigger point runs first
    code, stderr = _grid_with_a_worker_killed(args, tmp_path, lambda: last_eval_step(first) >= EVERY, count=1)
    assert code == 1, stderr
    records = latest(folder)
    assert records["rnn-1x12-seed0"]["status"] == "failed"
    assert records["rnn-1x12-seed0"]["reason"] == WORKER_DIED + "."
    assert records["rnn-1x8-seed0"]["status"] == "ok"            # the grid went on
    assert "its worker process died" in (folder / "results.md").read_text()

    # a plain re-run leaves the failed point alone; --retry-failed resumes it from its checkpoint
    plain = run_grid(*args, cwd=tmp_path)
    assert plain.returncode == 1 and "2 already done, 0 to run" in plain.stdout
    retried = run_grid(*args, "--retry-failed", cwd=tmp_path)
    assert retried.returncode == 0, retried.stderr
    record = latest(folder)["rnn-1x12-seed0"]
    assert record["status"] == "ok" and record["resumed_from_step"] >= EVERY and record["steps"] == LONG


def test_a_worker_death_among_several_retries_them_one_at_a_time(tmp_path):
    """Nobody can tell which of two points in flight killed its worker: both run again alone."""
    folder = tmp_path / "grid"
    args = [*TINY, "--cells", "rnn", "--layers", "1", "--sizes", "8,12", "--budget-steps", LONG, "--eval-every", EVERY,
            "--workers", 2, "--out", folder]
    runs = [folder / "runs" / "rnn-1x8-seed0", folder / "runs" / "rnn-1x12-seed0"]
    code, stderr = _grid_with_a_worker_killed(args, tmp_path,
                                              lambda: all(last_eval_step(r) >= EVERY for r in runs), count=2)
    assert code == 0, stderr
    records = latest(folder)
    assert [r["status"] for r in records.values()] == ["ok", "ok"]
    assert all(r["resumed_from_step"] >= EVERY and r["steps"] == LONG for r in records.values())
