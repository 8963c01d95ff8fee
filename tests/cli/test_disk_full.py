"""A full disk at every write: ENOSPC injected at the 1st, 2nd, ... file written by a training
run and by a grid, until a run gets through. After each failure:

- the error names the file it could not write (the command line's sentence quotes it);
- results.jsonl holds whole lines only, and no empty train.lock/grid.lock is left;
- a plain retry (the disk has room again) succeeds: the run starts or resumes, and the grid's
  point is retried with --retry-failed even when its best checkpoint was written but not last.npz.

The files counted are every ``os.write`` (results.jsonl) and every file opened with ``os.fdopen``
(the atomic writer's temporary files: checkpoints, sidecars, history, figures, reports; the lock
files) -- all the package's writes in these folders. The n-th one fails at its first write
(``at="first"``) or at its last one (``at="last"``, the file half written). The grid runs its point
in this process (an executor that calls ``run_point``)."""
import errno
import json
import os

import pytest

from scratchrnn.cli import os_error_sentence
from scratchrnn.core.errors import ScratchRNNError
from scratchrnn.grid.driver import run_grid
from scratchrnn.grid.points import Budget, GridSpec
from scratchrnn.grid.worker import run_point
from scratchrnn.lm.config import TrainConfig
from scratchrnn.lm.run import Trainer
from scratchrnn.lm.runfolder import latest_checkpoint

pytestmark = pytest.mark.bad_input("full disk")


class DiskFull:
    """Raise ENOSPC in the ``n``-th file written (1-based); ``hit`` says whether it was reached."""

    def __init__(self, monkeypatch, n, at="first"):
        self.n, self.count, self.hit = n, 0, False
        real_write, real_fdopen = os.write, os.fdopen
        full = self

        def write(fd, data):
            full.count += 1
            if full.count == full.n:
                full.hit = True
                if at == "last" and len(data) > 1:       # half a line reaches the disk
                    real_write(fd, data[:len(data) // 2])
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return real_write(fd, data)

        class File:
            def __init__(self, f):
                self._f = f
                full.count += 1
                self.doomed = full.count == full.n
                self.writes = 0

            def write(self, data):
                self.writes += 1
                if self.doomed and (at == "first" or self.writes > 1):
                    full.hit = True
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                return self._f.write(data)

            def close(self):
                if self.doomed and at == "last" and not full.hit:   # fail as the file ends
                    full.hit = True
                    self._f.close()
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                return self._f.close()

            def __enter__(self):
                self._f.__enter__()
                return self

            def __exit__(self, *exc):
                if exc[0] is None:
                    self.close()
                return self._f.__exit__(*exc)

            def __getattr__(self, name):
                return getattr(self._f, name)

        monkeypatch.setattr(os, "write", write)
        monkeypatch.setattr(os, "fdopen", lambda *a, **k: File(real_fdopen(*a, **k)))



def _config(out):
    return TrainConfig(source="python-docs", max_chars=20000, cell="gru", hidden_size=8, seq_len=8,
                       batch_size=2, max_steps=2, max_minutes=None, eval_every=2, eval_tokens=200,
                       progress=False, out_dir=str(out))


def _names_a_file(exc, out):
    """The command line's sentence for ``exc`` says the disk is full and names a file in ``out``."""
    sentence = os_error_sentence(exc) if isinstance(exc, OSError) else str(exc)
    assert "No space left on device" in sentence, sentence
    assert f"'{out}{os.sep}" in sentence, sentence


def _no_empty_lock(folder, name):
    for root, _dirs, files in os.walk(folder):
        if name in files:
            assert os.path.getsize(os.path.join(root, name)) > 0, f"an empty {name} was left"


@pytest.mark.parametrize("at", ["first", "last"])
def test_enospc_at_every_write_of_a_training_run(tmp_path, monkeypatch, at):
    for n in range(1, 60):
        out = tmp_path / f"run{n}"
        with monkeypatch.context() as m:
            full = DiskFull(m, n, at)
            try:
                Trainer(_config(out)).run()
            except (OSError, ScratchRNNError) as exc:
                _names_a_file(exc, out)
        if not full.hit:
            break
        _no_empty_lock(out, "train.lock")
        assert not os.path.exists(out / "train.lock")
        # the disk has room again: the same command, or a resume, gets through
        saved = latest_checkpoint(str(out))       # last.npz, or the best one written before it
        trainer = Trainer.resume(saved) if saved else Trainer(_config(out))
        assert trainer.run().steps == 2
    assert n > 5, "the run wrote fewer times than expected: is the injection working?"


class InProcess:
    """An executor running each point here, in turn (so the injected full disk reaches it)."""
    running = 0

    def describe(self):
        return "this process"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def run(self, tasks):
        for task in tasks:
            yield task, run_point(task)


@pytest.mark.parametrize("at", ["first", "last"])
def test_enospc_at_every_write_of_a_grid(tmp_path, monkeypatch, at):
    spec = GridSpec.from_lists("python-docs", "gru", "1", "8", "0", Budget(steps=2), max_chars=20000,
                               seq_len=8, batch_size=2, eval_every=2, eval_tokens=200)
    say = lambda *a, **k: None        # noqa: E731
    for n in range(1, 60):
        out = tmp_path / f"grid{n}"
        with monkeypatch.context() as m:
            full = DiskFull(m, n, at)
            try:
                run_grid(spec, out, InProcess(), progress=False, say=say)
            except (OSError, ScratchRNNError) as exc:
                _names_a_file(exc, out)
        if not full.hit:
            break
        assert not os.path.exists(out / "grid.lock")
        _no_empty_lock(out, "train.lock")
        _no_empty_lock(out, "grid.lock")
        path = out / "results.jsonl"
        if path.exists():
            text = path.read_text()
            assert text == "" or text.endswith("\n")
            for line in text.splitlines():           # whole lines only
                record = json.loads(line)
                if record["status"] == "failed":     # a point's failure names the file
                    assert "No space left on device" in record["reason"] and str(out) in record["reason"]
        # room again: --retry-failed finishes the point (resuming whatever it saved)
        mine = run_grid(spec, out, InProcess(), progress=False, retry_failed=True, say=say)
        assert [r["status"] for r in mine.values()] == ["ok"], (n, mine)
        assert mine["gru-1x8-seed0"]["steps"] == 2
    assert n > 8, "the grid wrote fewer times than expected: is the injection working?"


def test_an_empty_lock_left_by_an_older_failed_write_is_stale_once_old(tmp_path):
    """An empty train.lock (a process that could not write it) refuses for a moment -- a live
    process may be between creating and writing it -- and is taken over once it is old."""
    from scratchrnn.core.errors import ConfigError
    from scratchrnn.lm.lockfile import EMPTY_LOCK_STALE_S

    out = tmp_path / "run"
    out.mkdir()
    lock = out / "train.lock"
    lock.write_bytes(b"")
    with pytest.raises(ConfigError, match="in use"):
        Trainer(_config(out)).run()
    old = os.stat(lock).st_mtime - EMPTY_LOCK_STALE_S - 5
    os.utime(lock, (old, old))
    assert Trainer(_config(out)).run().steps == 2
    assert not lock.exists()


def test_a_point_whose_log_cannot_be_written_is_failed_naming_the_log(tmp_path):
    """The point's log on a full disk (here: its folder is a file) fails the point with the
    log's name; it does not take the grid down with an exception from the worker."""
    (tmp_path / "logs").write_text("not a folder")
    record = run_point({"name": "gru-1x8-seed0", "train": {}, "log": str(tmp_path / "logs" / "p.log")})
    assert record["status"] == "failed" and str(tmp_path / "logs" / "p.log") in record["reason"]
