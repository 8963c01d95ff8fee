"""The ``scratchrnn gradcheck`` command: passes on the real code, fails on a broken one."""
import argparse
import shutil
import subprocess
import sys

import pytest

from scratchrnn import engines
from scratchrnn.book import ops
from scratchrnn.book.cells import lstm
from scratchrnn.cli import gradcheck
from scratchrnn.core.backend import cupy_unavailable_reason, get_backend


def parse(*argv):
    parser = argparse.ArgumentParser(prog="scratchrnn")
    sub = parser.add_subparsers(dest="command")
    gradcheck.add_parser(sub)
    return parser.parse_args(["gradcheck", *argv])


def run_cli(*argv):
    return subprocess.run([sys.executable, "-m", "scratchrnn.cli", *argv],
                          capture_output=True, text=True, timeout=300)


def test_defaults():
    args = parse()
    assert args.func is gradcheck.run
    assert args.cells == ("rnn-tanh", "rnn-relu", "gru", "lstm")
    assert args.layers == (1, 2, 3) and args.engine == ("textbook", "reference", "fast")
    assert args.backend is None and args.tol == 1e-6 and args.seed == 0
    assert parse("--cells", "lstm,rnn-relu,lstm").cells == ("lstm", "rnn-relu")


def test_every_cell_passes_and_the_table_is_printed(capsys):
    args = parse()
    assert args.func(args) == 0
    out = capsys.readouterr().out
    header = out.splitlines()[0].split()
    assert header[:4] == ["cell", "engine", "layers", "T,B,I,H"] and "parameter" in header
    for cell in ("rnn-tanh", "rnn-relu", "gru", "lstm"):
        assert f"\n{cell} " in out
    lines = out.splitlines()[2:-1]
    checked = {(line.split()[0], line.split()[1]) for line in lines if not line.startswith("not checked")}
    # the default backend (SCRATCHRNN_BACKEND): on CuPy RNN has no fast engine, and says so
    no_fast = () if get_backend().name == "numpy" else ("rnn-tanh", "rnn-relu")
    assert checked == {(c, e) for c in ("rnn-tanh", "rnn-relu", "gru", "lstm")
                       for e in ("textbook", "reference", "fast") if (c, e) not in {(n, "fast") for n in no_fast}}
    assert [line.split()[2] for line in lines if line.startswith("not checked")] == [f"{c}:" for c in no_fast]
    for name in ("l2.W_h", "l0.b_x", " x ", " h0 ", " c0 "):
        assert name in out
    assert "FAIL" not in out
    assert "gradcheck: all" in out and "passed" in out


def test_options_narrow_the_run(capsys):
    assert gradcheck.run(parse("--cells", "gru", "--layers", "2", "--engine", "fast",
                               "--seed", "3")) == 0
    lines = capsys.readouterr().out.splitlines()
    body = lines[2:-1]
    assert len(body) == 4 * 2 + 2                    # 2 layers x 4 params, x, h0
    assert all(line.split()[:3] == ["gru", "fast", "2"] for line in body)


def test_a_broken_tanh_derivative_fails(monkeypatch, capsys):
    # GRU and LSTM take tanh's derivative from ops; the book's two levels call it
    monkeypatch.setattr(ops, "tanh_backward", lambda dt, t: dt * (1.0 - t * t) * 1.01)
    assert gradcheck.run(parse("--cells", "gru,lstm", "--layers", "1",
                               "--engine", "textbook,reference")) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "FAILED" in out.splitlines()[-1]


def test_a_broken_lstm_gate_derivative_fails(monkeypatch, capsys):
    original = lstm.gates_backward

    def wrong(dh, dc_next, gates, c_prev, tanh_c):
        da, dc_prev = original(dh, dc_next, gates, c_prev, tanh_c)
        H = c_prev.shape[-1]
        da[:, H:2 * H] *= 0.99                          # the forget gate, slightly off
        return da, dc_prev
    monkeypatch.setattr(lstm, "gates_backward", wrong)
    assert gradcheck.run(parse("--cells", "lstm,gru", "--engine", "reference")) == 1
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[2:-1]]
    assert any(r[0] == "lstm" and r[6] == "FAIL" for r in rows)
    assert all(r[6] == "pass" for r in rows if r[0] == "gru")   # only LSTM is broken


def test_a_broken_fast_engine_fails(monkeypatch, capsys):
    real = engines.resolve

    def spoiled(name, cell, backend):
        engine = real(name, cell, backend)
        if not engine.name.startswith("fast"):
            return engine

        def backward(*args, **kwargs):
            dxs, dstate0, grads = engine.backward(*args, **kwargs)
            return dxs * 1.001, dstate0, grads
        return engine._replace(backward=backward)

    monkeypatch.setattr(engines, "resolve", spoiled)
    assert gradcheck.run(parse("--cells", "gru", "--layers", "2",        # a fast engine on NumPy and CuPy
                               "--engine", "textbook,reference,fast")) == 1
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[2:-1]]
    failed = {(r[1], r[4]) for r in rows if r[6] == "FAIL"}
    assert ("fast", "x") in failed and ("fast", "l0.W_x") in failed
    assert {engine for engine, _ in failed} == {"fast"}


def test_bad_options_are_usage_errors():
    with pytest.raises(SystemExit):
        parse("--cells", "transformer")
    with pytest.raises(SystemExit):
        parse("--layers", "0")
    with pytest.raises(SystemExit):
        parse("--engine", "turbo")


def test_run_in_a_fresh_interpreter():
    code = ("import argparse, sys\n"
            "from scratchrnn.cli import gradcheck\n"
            "p = argparse.ArgumentParser(); sub = p.add_subparsers()\n"
            "gradcheck.add_parser(sub)\n"
            "args = p.parse_args(['gradcheck', '--cells', 'lstm', '--layers', '1,2'])\n"
            "sys.exit(args.func(args))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "lstm" in out.stdout and "gradcheck: all" in out.stdout


def test_the_scratchrnn_command():
    out = run_cli("gradcheck", "--cells", "rnn-relu,gru", "--layers", "1,3")
    assert out.returncode == 0, out.stderr
    assert "rnn-relu" in out.stdout and "gru" in out.stdout and "FAIL" not in out.stdout
    exe = shutil.which("scratchrnn")
    if exe is not None:                              # the installed console script
        out = subprocess.run([exe, "gradcheck", "--cells", "lstm", "--layers", "1"],
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        assert "gradcheck: all" in out.stdout


def test_the_command_reports_user_errors_in_one_line():
    out = run_cli("gradcheck", "--cells", "transformer")
    assert out.returncode == 2 and "unknown cell 'transformer'" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.skipif(cupy_unavailable_reason() is None, reason="a usable GPU is present")
def test_cupy_without_a_gpu_is_a_one_line_error():
    out = run_cli("gradcheck", "--backend", "cupy", "--cells", "gru", "--layers", "1")
    assert out.returncode == 2
    assert "cannot run" in out.stderr and "Traceback" not in out.stderr
