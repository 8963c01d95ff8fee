"""Exact resume: a run killed with SIGKILL and resumed from ``last.npz`` ends with
parameters (and optimizer state, and carried hidden state) bit-identical to a run
that was never interrupted, on the CPU.

The subprocess tests drive the real ``scratchrnn train`` command: one uninterrupted
run, one run killed right after its k-th checkpoint, then ``--resume RUN/last.npz``.
The flags exercise every source of randomness and state: 2-layer LSTM with dropout
(masks seeded per step), an epoch boundary (state reset, shuffled order redrawn),
learning-rate decay, and Adam's moments.
"""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from scratchrnn.lm.checkpoint import load_checkpoint
from scratchrnn.lm.run import TrainConfig, Trainer

MAX_STEPS = 60
FLAGS = ["--corpus", "python-docs", "--max-chars", "3000",      # 42 windows per epoch
         "--cell", "lstm", "--num-layers", "2", "--dropout", "0.3", "--rnn-size", "16",
         "--seq-length", "16", "--batch-size", "4", "--lr-decay", "0.7", "--lr-decay-after", "1",
         "--eval-every", "5", "--max-steps", str(MAX_STEPS), "--max-minutes", "1000",
         "--no-progress", "--sample-length", "0", "--seed", "3"]


def _env():
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1",
               SCRATCHRNN_BACKEND="numpy", MPLBACKEND="Agg")
    return env


def _train(args, cwd, **kw):
    cmd = [sys.executable, "-m", "scratchrnn.cli", "train", *args]
    return subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=300, **kw)


def _last_checkpoint_step(run_dir):
    """Step of the newest evaluation in history.json (written after last.npz), or -1."""
    try:
        with open(os.path.join(run_dir, "history.json")) as f:
            val = json.load(f)["val"]
    except (OSError, ValueError, KeyError):
        return -1
    return val[-1]["step"] if val else -1


def _kill_after_checkpoint(args, run_dir, cwd, k_step):
    cmd = [sys.executable, "-m", "scratchrnn.cli", "train", *args]
    proc = subprocess.Popen(cmd, cwd=cwd, env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    try:
        while _last_checkpoint_step(run_dir) < k_step:
            assert proc.poll() is None, ("the run ended before its checkpoint at step "
                                         f"{k_step}: {proc.stderr.read().decode()[-2000:]}")
            assert time.monotonic() < deadline, "no checkpoint appeared in time"
            time.sleep(0.002)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it was killed"


def _assert_same_checkpoints(a_path, b_path):
    a, meta_a = load_checkpoint(a_path)
    b, meta_b = load_checkpoint(b_path)
    assert set(a) == set(b)
    params = [k for k in a if k.startswith("param/")]
    assert len(params) == 10                           # 2 LSTM layers x 4 + head W, b
    assert any(k.startswith("optim/") for k in a) and "state/c" in a
    for k in a:                                        # params, Adam moments, carried (h, c)
        assert a[k].dtype == b[k].dtype
        assert np.array_equal(a[k], b[k]), f"{k} differs after kill-and-resume"
    assert meta_a["progress"]["step"] == meta_b["progress"]["step"] == MAX_STEPS
    assert meta_a["stream"] == meta_b["stream"]
    assert meta_a["optim"] == meta_b["optim"]
    return meta_a, meta_b


@pytest.mark.parametrize("shuffle", [False, True], ids=["sequential", "shuffled"])
def test_sigkill_then_resume_is_bit_identical(tmp_path, shuffle):
    flags = FLAGS + (["--shuffle"] if shuffle else [])
    straight, killed = tmp_path / "straight", tmp_path / "killed"

    done = _train(flags + ["--out", str(straight)], cwd=tmp_path)
    assert done.returncode == 0, done.stderr

    _kill_after_checkpoint(flags + ["--out", str(killed)], str(killed), tmp_path, k_step=10)
    _, meta = load_checkpoint(killed / "last.npz")
    stopped_at = meta["progress"]["step"]
    assert 10 <= stopped_at < MAX_STEPS                 # it really was interrupted
    assert meta["epoch"] < 1.0                          # and the epoch boundary is still ahead

    # resume from another working directory, with no flags but --resume
    other = tmp_path / "elsewhere"
    other.mkdir()
    resumed = _train(["--resume", str(killed / "last.npz")], cwd=other)
    assert resumed.returncode == 0, resumed.stderr
    assert "Traceback" not in resumed.stderr

    meta_s, meta_k = _assert_same_checkpoints(straight / "last.npz", killed / "last.npz")
    # every evaluation, before and after the kill, scored the same
    vals = lambda m: [(v["step"], v["loss"]) for v in m["history"]["val"]]   # noqa: E731
    assert vals(meta_k) == vals(meta_s)
    assert meta_s["epoch"] > 1.0                        # the run did cross an epoch boundary


# ------------------------------------------------------------------- in process
def _cfg(out_dir, **kw):
    base = dict(source="python-docs", max_chars=3000, cell="gru", hidden_size=12, num_layers=2,
                dropout=0.25, embedding_size=6, seq_len=16, batch_size=4, eval_every=7,
                max_minutes=None, progress=False, out_dir=str(out_dir), lr_decay=0.5,
                lr_decay_after=1)
    base.update(kw)
    return TrainConfig(**base)


@pytest.mark.parametrize("cell,shuffle", [("gru", False), ("rnn", True), ("lstm", True)])
def test_stop_and_resume_in_process_is_bit_identical(tmp_path, cell, shuffle):
    total = 50                                          # crosses the epoch boundary at 42
    straight = Trainer(_cfg(tmp_path / "a", cell=cell, shuffle=shuffle, max_steps=total)).run()
    first = Trainer(_cfg(tmp_path / "b", cell=cell, shuffle=shuffle, max_steps=17)).run()
    assert first.steps == 17
    resumed = Trainer.resume(first.last_path, overrides={"max_steps": total}).run()
    assert resumed.steps == total
    for k, p in straight.model.params.items():
        assert np.array_equal(p, resumed.model.params[k]), k
    # the first run's extra evaluation at step 17 aside, every evaluation agrees
    by_step = {v["step"]: v["loss"] for v in resumed.history["val"]}
    assert set(by_step) == {v["step"] for v in straight.history["val"]} | {17}
    for v in straight.history["val"]:
        assert by_step[v["step"]] == v["loss"]


def test_resume_keeps_the_budget_override_but_not_architecture(tmp_path):
    first = Trainer(_cfg(tmp_path / "r", max_steps=5)).run()
    t = Trainer.resume(first.last_path, overrides={"max_steps": 9, "lr": 1e-3})
    assert t.cfg.max_steps == 9 and t.cfg.lr == 1e-3 and t.progress.step == 5
    assert t.cfg.cell == "gru" and t.cfg.embedding_size == 6
