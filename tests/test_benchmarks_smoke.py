"""The benchmark harness still runs end to end (tiny sizes, seconds, no timing assertions)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_quick_run_writes_table_json_and_plots(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "benchmarks", "--quick", "--cells", "lstm,gru",
           "--impls", "scratch-numpy,scratch-plain,naive,scratch-cupy", "--sizes", "3,2,4,5",
           "--sweep-cells", "rnn", "--threads", "1", "--out", str(tmp_path), "--tag", "smoke"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| lstm | T3 B2 I4 H5 | scratch-numpy |" in proc.stdout
    record = json.loads((tmp_path / "smoke.json").read_text())
    for key in ("date", "machine", "versions", "grid", "sweeps", "targets"):
        assert key in record
    assert {r["case"]["cell"] for r in record["grid"]} == {"lstm", "gru"}
    res = record["grid"][0]["results"]["scratch-numpy"]
    assert len(res["setup"]) and len(res["rounds"]) >= 5
    assert res["fwdbwd"]["min_ms"] <= res["fwdbwd"]["median_ms"] <= res["fwdbwd"]["max_ms"]
    assert res["memory"]["peak_bytes"] > 0 and res["memory"]["formula_bytes"] > 0
    assert "scratch-cupy" in record["unavailable"] or "scratch-cupy" in record["grid"][0]["results"]
    assert record["tf32"] is False                            # strict float32 unless --tf32 on
    assert (record["gpu"] is None) == ("scratch-cupy" in record["unavailable"])
    for var in ("T", "B", "H"):
        assert (tmp_path / f"scaling_{var}.png").stat().st_size > 1000
    assert (tmp_path / "RESULTS-smoke.md").exists()
    again = subprocess.run([sys.executable, "-m", "benchmarks", "--from-json", str(tmp_path / "smoke.json")],
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "| lstm | T3 B2 I4 H5 | scratch-numpy |" in again.stdout


def test_naive_baseline_matches_scratchrnn_gradients():
    """The naive baseline computes the same function (so the speed comparison is fair)."""
    from benchmarks import naive
    from scratchrnn.book.cells import CELLS
    from scratchrnn.core.backend import get_backend
    be = get_backend("numpy")
    for name in ("rnn", "gru", "lstm"):
        cell = CELLS[name]
        rng = np.random.default_rng(0)
        T, B, I, H = 4, 2, 3, 5
        p = cell.init_params(I, H, rng, be, "float64")
        xs = rng.standard_normal((T, B, I))
        dys = rng.standard_normal((T, B, H))
        h0 = np.zeros((B, H))
        state0 = (h0, h0) if cell.HAS_CELL_STATE else h0
        dstate = (h0, h0) if cell.HAS_CELL_STATE else h0
        ys, _, cache = cell.forward(p, xs, state0)
        dxs, _, grads = cell.backward(p, dys, dstate, cache)
        q = naive.from_scratchrnn(p)
        ys2, caches = naive.forward(name, q, xs, h0, h0 if name == "lstm" else None)
        dxs2, g2 = naive.backward(name, q, dys, caches)
        np.testing.assert_allclose(ys2, ys, atol=1e-12)
        np.testing.assert_allclose(dxs2, dxs, atol=1e-12)
        np.testing.assert_allclose(g2["W"], np.concatenate([grads["W_x"], grads["W_h"]]), atol=1e-12)
        np.testing.assert_allclose(g2["b_x"], grads["b_x"], atol=1e-12)
        np.testing.assert_allclose(g2["b_h"], grads["b_h"], atol=1e-12)


def test_flop_count_and_exponent_fit():
    from benchmarks.measuring import fit_exponent, gemm_flops
    assert gemm_flops("lstm", 1, 1, 1, 1) == 6 * 2 * 4
    k, scale = fit_exponent([1, 2, 4, 8], [3.0, 6.0, 12.0, 24.0])
    assert k == pytest.approx(1.0) and scale == pytest.approx(3.0)


def test_train_throughput_quick_run_has_both_implementations_and_their_ratio(tmp_path):
    pytest.importorskip("torch")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "benchmarks.train_throughput", "--quick", "--cells", "lstm",
           "--threads", "1", "--out", str(tmp_path)]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| lstm | scratchrnn |" in proc.stdout and "| lstm | PyTorch |" in proc.stdout
    (path,) = tmp_path.glob("train_throughput-*-quick.json")
    lstm = json.loads(path.read_text())["results"]["lstm"]
    assert lstm["scratch"]["params"] == lstm["torch"]["params"]        # the same model
    for impl in ("scratch", "torch"):
        cps = lstm[impl]["chars_per_s"]
        assert 0 < cps["min"] <= cps["median"] <= cps["max"]
    ratio = lstm["scratch_over_torch"]
    assert ratio["ratio_of_medians"] == pytest.approx(
        lstm["scratch"]["chars_per_s"]["median"] / lstm["torch"]["chars_per_s"]["median"])
    assert path.with_suffix(".md").exists()


def test_learning_curve_quick_run_and_same_init_twin_equal_in_float64(tmp_path):
    pytest.importorskip("torch")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "benchmarks.learning_curve", "--quick", "--forget-biases", "0",
           "--out", str(tmp_path)]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads((tmp_path / "learning_curve-quick.json").read_text())
    assert set(record["summary"]) == {"torch", "scratch-fb0", "scratch-torch-init"}
    for rows in record["summary"].values():
        assert all(r["min"] <= r["mean"] <= r["max"] and r["n"] == 2 for r in rows)
    twin = record["twin_check"]
    assert twin["steps"] == 5 and len(twin["traces"]["torch"]) == 5
    assert twin["max_abs_diff"] < 1e-10          # the same algorithm: equal traces in float64
    assert "| scratch-torch-init |" in (tmp_path / "learning_curve-quick.md").read_text()
