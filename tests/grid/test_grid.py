"""``scratchrnn grid`` end to end: a tiny grid on the process pool and on a Dask LocalCluster,
every point an ordinary training run, the results files, re-running, bad input and the lock."""
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from grid_cli import TINY, env, latest, results, run_grid
from scratchrnn import cli
from scratchrnn.grid.points import count_params
from scratchrnn.lm.checkpoint import load_checkpoint
from scratchrnn.lm.corpora import load_source
from scratchrnn.lm.run import TrainConfig, Trainer

GRID = ["--cells", "rnn,lstm", "--layers", "1,2", "--sizes", "8", "--budget-steps", "20"]
NAMES = {"rnn-1x8-seed0", "rnn-2x8-seed0", "lstm-1x8-seed0", "lstm-2x8-seed0"}


@pytest.fixture(scope="module")
def pool_grid(tmp_path_factory):
    """The tiny grid run once on a local pool of two workers: (folder, completed process)."""
    folder = tmp_path_factory.mktemp("grid") / "pool"
    done = run_grid(*TINY, *GRID, "--workers", 2, "--out", folder, cwd=folder.parent)
    assert done.returncode == 0, done.stderr
    return folder, done


def test_pool_grid_records_every_point(pool_grid):
    folder, done = pool_grid
    records = latest(folder)
    assert set(records) == NAMES
    vocab = len(set(load_source("python-docs", 20000)))               # characters
    for r in records.values():
        assert r["vocab"] == vocab
        assert r["status"] == "ok" and r["steps"] == 20 and r["stopped_because"] == "max_steps"
        assert r["params"] == count_params(r["cell"], r["layers"], r["size"], vocab)
        for split in ("train", "val", "test"):
            assert math.isfinite(r[split]["loss"]) and 0 < r[split]["loss"] < math.log(vocab) + 1
            assert r[split]["bpc"] == pytest.approx(r[split]["loss"] / math.log(2))
        assert r["machine"]["blas_threads"] == "1"            # one BLAS thread per worker
        assert os.path.exists(os.path.join(r["run_dir"], "last.npz"))
    assert "4 of 4 points done, 0 failed" in done.stdout


def test_a_grid_point_is_an_ordinary_training_run(pool_grid, tmp_path):
    """The same settings through Trainer directly give the same weights as the grid's point."""
    folder, _ = pool_grid
    cfg = TrainConfig(source="python-docs", max_chars=20000, seq_len=16, batch_size=4, eval_every=10,
                      cell="lstm", num_layers=2, hidden_size=8, seed=0, max_steps=20, max_minutes=None,
                      progress=False, out_dir=str(tmp_path / "direct"), backend="numpy")   # the grid's (grid_cli)
    Trainer(cfg).run()
    direct, _ = load_checkpoint(tmp_path / "direct" / "last.npz")
    gridded, meta = load_checkpoint(folder / "runs" / "lstm-2x8-seed0" / "last.npz")
    assert meta["progress"]["step"] == 20
    assert set(direct) == set(gridded)
    for key in direct:
        np.testing.assert_allclose(gridded[key], direct[key], rtol=1e-5, atol=1e-6, err_msg=key)


def test_results_table_and_figure(pool_grid):
    folder, _ = pool_grid
    text = (folder / "results.md").read_text()
    assert "| cell | layers | H=8 |" in text
    for row in ("| RNN | 1 |", "| RNN | 2 |", "| LSTM | 1 |", "| LSTM | 2 |"):
        assert row in text
    val_table = text.split("## Validation loss")[1].split("##")[0]
    records = latest(folder)
    best = min(records.values(), key=lambda r: r["val"]["loss"])
    assert val_table.count("**") == 2                        # one bold cell in the one column
    assert f"**{best['val']['loss']:.3f}**" in val_table
    assert "LSTM beats RNN at equal size" in text and "depth 2 beats depth 1" in text
    assert "20 steps" in text
    assert (folder / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_rerun_skips_finished_points(pool_grid):
    folder, _ = pool_grid
    before = (folder / "results.jsonl").read_bytes()
    again = run_grid(*TINY, *GRID, "--workers", 2, "--out", folder, cwd=folder.parent)
    assert again.returncode == 0, again.stderr
    assert "4 already done, 0 to run" in again.stdout
    assert (folder / "results.jsonl").read_bytes() == before


def test_local_cluster_runs_the_same_grid(pool_grid, tmp_path):
    pytest.importorskip("distributed", reason='Dask is not installed (pip install -e ".[cluster]")')
    done = run_grid(*TINY, *GRID, "--local-cluster", 2, "--out", tmp_path / "dask", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Dask LocalCluster of 2 workers" in done.stdout and "Dask dashboard: http" in done.stdout
    on_dask, on_pool = latest(tmp_path / "dask"), latest(pool_grid[0])
    assert set(on_dask) == NAMES
    for name, r in on_dask.items():
        assert r["status"] == "ok" and r["machine"]["blas_threads"] == "1"
        assert r["val"]["loss"] == pytest.approx(on_pool[name]["val"]["loss"], rel=1e-5)
    assert (tmp_path / "dask" / "results.md").exists()


# ------------------------------------------------------------------- bad input
BAD = [
    (["--cells", "rnn,transformer"], "Unknown cell 'transformer'"),
    (["--cells", ""], "--cells is empty"),
    (["--layers", "1,,2"], "--layers has an empty item"),
    (["--sizes", "0"], "--sizes must be a positive integer"),
    (["--sizes", "big"], "--sizes takes comma-separated integers"),
    (["--sizes", "3000000"], "choose smaller --sizes"),
    (["--seeds", "-1"], "--seeds must be an integer >= 0"),
    (["--workers", "0"], "--workers must be a positive integer"),
    (["--corpus", "nope"], "Unknown corpus 'nope'"),
]


def _bad_run(capsys, folder, extra):
    args = {"--cells": "rnn", "--layers": "1", "--sizes": "8", "--budget-steps": "5"}
    flags = list(extra)
    for key, value in args.items():
        if key not in flags:
            flags += [key, value]
    code = cli.main(["grid", *TINY[2:], "--out", str(folder), *flags])
    captured = capsys.readouterr()
    return code, captured.err


def _snapshot(folder):
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("extra,message", BAD, ids=[m.split()[0] + str(i) for i, (_, m) in enumerate(BAD)])
def test_bad_input_one_sentence_exit_2_nothing_changed(tmp_path, capsys, extra, message):
    folder = tmp_path / "grid"
    folder.mkdir()
    (folder / "results.jsonl").write_text('{"name": "x", "status": "ok"}\n')
    before = _snapshot(folder)
    code, err = _bad_run(capsys, folder, extra)
    assert code == 2
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert _snapshot(folder) == before


def test_unreachable_scheduler(tmp_path, capsys):
    pytest.importorskip("distributed", reason='Dask is not installed (pip install -e ".[cluster]")')
    folder = tmp_path / "grid"
    code, err = _bad_run(capsys, folder, ["--scheduler", "tcp://127.0.0.1:9", "--connect-timeout", "1"])
    assert code == 2 and "Cannot reach a Dask scheduler at 'tcp://127.0.0.1:9'" in err
    assert err.count("\n") == 1
    assert not folder.exists()


def test_other_settings_on_the_same_folder_are_refused(pool_grid, capsys):
    folder, _ = pool_grid
    before = _snapshot(folder)
    code, err = _bad_run(capsys, folder, ["--budget-steps", "30"])
    assert code == 2 and "was started with other settings" in err and "steps" in err
    assert _snapshot(folder) == before


def test_usage_errors_exit_2(tmp_path):
    done = subprocess.run([sys.executable, "-m", "scratchrnn.cli", "grid", "--out", str(tmp_path / "g")],
                          env=env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--budget-steps" in done.stderr and "Traceback" not in done.stderr


# ------------------------------------------------------------------- the lock
def test_a_live_lock_refuses_a_second_grid(tmp_path, capsys):
    folder = tmp_path / "grid"
    folder.mkdir()
    lock = folder / "grid.lock"
    import json
    import socket
    lock.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": "earlier"}))
    code, err = _bad_run(capsys, folder, [])
    assert code == 2 and f"Another grid (process {os.getpid()}" in err and err.count("\n") == 1
    assert sorted(p.name for p in folder.iterdir()) == ["grid.lock"]


def test_a_stale_lock_is_taken_over(tmp_path):
    import json
    import socket
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    folder = tmp_path / "grid"
    folder.mkdir()
    (folder / "grid.lock").write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname()}))
    done = run_grid(*TINY, "--cells", "rnn", "--layers", "1", "--sizes", "8", "--budget-steps", "5",
                    "--out", folder, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert [r["status"] for r in results(folder)] == ["ok"]
    assert not (folder / "grid.lock").exists()
