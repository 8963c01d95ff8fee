"""The one-page LSTM language model (scratchrnn/book/onepage.py) against the library and the maths.

- Same weights, same numbers: its loss, final state and every gradient (weights, head and
  initial state) equal ``scratchrnn.blocks.model.CharLM`` (one-hot input, one LSTM layer) in float64
  to 1e-10 (normwise relative error), on random shapes drawn by hypothesis.
- Its hand-written BPTT passes float64 central finite differences on random data
  (``scratchrnn.book.gradcheck``, eps 1e-5, normwise relative error below 1e-6).
- Its clipping and Adam step equal the library's ``optim.clip_grad_norm`` and ``optim.Adam``.
- ``python -m scratchrnn.book.onepage`` runs a few steps in a subprocess and prints losses and a
  sample; a bad argument gets one line on stderr and exit status 2.
"""
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scratchrnn.blocks.model import CharLM
from scratchrnn.book import onepage
from scratchrnn.book.gradcheck import check_function, rel_error
from scratchrnn.book.optim import Adam, clip_grad_norm

PARITY_TOL = 1e-10    # one-page vs library, same float64 weights: only rounding differs
FD_TOL = 1e-6         # analytic vs central differences (gradcheck's default, eps 1e-5)
LIBRARY_NAMES = {"W_x": "rnn.l0.W_x", "W_h": "rnn.l0.W_h", "b_x": "rnn.l0.b_x",
                 "b_h": "rnn.l0.b_h", "W": "head.W", "b": "head.b"}


def random_problem(T, B, V, H, seed):
    """Random weights (forget bias 1), ids, targets and initial state, all float64."""
    rng = np.random.default_rng(seed)
    p = onepage.init_params(V, H, rng)
    ids, targets = rng.integers(0, V, size=(T, B)), rng.integers(0, V, size=(T, B))
    h0, c0 = rng.standard_normal((B, H)) * 0.5, rng.standard_normal((B, H)) * 0.5
    return p, ids, targets, h0, c0


def library_model_with(p):
    """A CharLM holding the one-page weights p (copied into the library's own arrays)."""
    V, H = p["W"].shape[1], p["W_h"].shape[0]
    model = CharLM(V, cell="lstm", hidden_size=H, num_layers=1, embedding_size=0,
                   backend="numpy", dtype="float64", seed=1)
    assert set(model.params) == set(LIBRARY_NAMES.values())
    for name, library_name in LIBRARY_NAMES.items():
        model.params[library_name][...] = p[name]
    return model


@given(T=st.integers(1, 6), B=st.integers(1, 4), V=st.integers(2, 7), H=st.integers(1, 6),
       seed=st.integers(0, 2**31 - 1))
def test_loss_state_and_gradients_equal_the_library(T, B, V, H, seed):
    p, ids, targets, h0, c0 = random_problem(T, B, V, H, seed)
    loss, (hT, cT), cache = onepage.forward(p, ids, targets, h0, c0)
    grads, (dh0, dc0) = onepage.backward(p, cache)

    model = library_model_with(p)
    model.zero_grad()
    lib_loss, (lib_h, lib_c) = model.loss(ids, targets, state=(h0[None], c0[None]))
    _, (lib_dh0, lib_dc0) = model.backward()

    assert abs(loss - lib_loss) <= PARITY_TOL * abs(lib_loss)
    assert rel_error(hT, lib_h[0]) < PARITY_TOL and rel_error(cT, lib_c[0]) < PARITY_TOL
    for name, library_name in LIBRARY_NAMES.items():
        err = rel_error(grads[name], model.grads[library_name])
        assert err < PARITY_TOL, f"{name}: {err:.2e}"
    assert rel_error(dh0, lib_dh0[0]) < PARITY_TOL and rel_error(dc0, lib_dc0[0]) < PARITY_TOL


@given(T=st.integers(1, 5), B=st.integers(1, 3), V=st.integers(2, 5), H=st.integers(1, 4),
       seed=st.integers(0, 2**31 - 1))
def test_backward_matches_central_finite_differences(T, B, V, H, seed):
    p, ids, targets, h0, c0 = random_problem(T, B, V, H, seed)
    for name in p:                        # off the init scale, so every gate is exercised
        p[name] += np.random.default_rng(seed + 1).standard_normal(p[name].shape) * 0.5
    grads, (dh0, dc0) = onepage.backward(p, onepage.forward(p, ids, targets, h0, c0)[2])
    wrt = dict(p, h0=h0, c0=c0)
    analytic = dict(grads, h0=dh0, c0=dc0)
    rows = check_function(lambda: onepage.forward(p, ids, targets, h0, c0)[0], wrt, analytic,
                          eps=1e-5, tol=FD_TOL)
    bad = [(r.name, r.max_rel_error) for r in rows if not r.max_rel_error < FD_TOL]
    assert not bad, f"gradient check failed: {bad}"


def test_a_wrong_backward_line_is_caught():
    """The finite-difference check has teeth: halving one gradient fails it."""
    p, ids, targets, h0, c0 = random_problem(4, 2, 5, 3, seed=7)
    grads, _ = onepage.backward(p, onepage.forward(p, ids, targets, h0, c0)[2])
    grads["W_h"] *= 0.5
    rows = check_function(lambda: onepage.forward(p, ids, targets, h0, c0)[0],
                          {"W_h": p["W_h"]}, {"W_h": grads["W_h"]}, eps=1e-5, tol=FD_TOL)
    assert rows[0].max_rel_error > 0.1


def test_clip_and_adam_equal_the_library():
    rng = np.random.default_rng(3)
    p, ids, targets, h0, c0 = random_problem(5, 2, 6, 4, seed=3)
    grads, _ = onepage.backward(p, onepage.forward(p, ids, targets, h0, c0)[2])
    grads = {name: g * 50.0 for name, g in grads.items()}        # big enough to be clipped
    lib_grads = {name: g.copy() for name, g in grads.items()}
    norm = onepage.clip(grads, 1.0)
    assert norm > 1.0 and abs(norm - clip_grad_norm(lib_grads, 1.0)) < 1e-12 * norm
    lib_p = {name: value.copy() for name, value in p.items()}
    m, v = ({name: np.zeros_like(value) for name, value in p.items()} for _ in range(2))
    adam = Adam(lr=0.01)
    for t in (1, 2, 3):
        step_grads = {name: g * rng.standard_normal() for name, g in grads.items()}
        onepage.adam(p, step_grads, m, v, t, lr=0.01)
        adam.step(lib_p, {name: g.copy() for name, g in step_grads.items()})
    for name in p:
        assert rel_error(p[name], lib_p[name]) < 1e-12, name


def test_training_lowers_the_loss_on_a_repetitive_text():
    """Forward, backward, clip and Adam together learn a text with an obvious pattern."""
    data = np.array([k % 5 for k in range(400)])
    streams = data.reshape(4, 100).T                              # (L, B): 4 streams
    p = onepage.init_params(5, 16, np.random.default_rng(0))
    m, v = ({name: np.zeros_like(value) for name, value in p.items()} for _ in range(2))
    losses = []
    for step in range(1, 61):
        pos = (step - 1) * 8 % 88
        ids, targets = streams[pos:pos + 8], streams[pos + 1:pos + 9]
        zeros = np.zeros((4, 16))
        loss, _, cache = onepage.forward(p, ids, targets, zeros, zeros)
        grads, _ = onepage.backward(p, cache)
        onepage.clip(grads, 5.0)
        onepage.adam(p, grads, m, v, step, lr=0.03)
        losses.append(loss)
    assert losses[0] > 1.4 and losses[-1] < 0.1, (losses[0], losses[-1])   # ln 5 = 1.61


def run_command(*args):
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "scratchrnn.book.onepage", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def test_the_command_trains_and_samples():
    proc = run_command("--steps", "4", "--hidden", "8", "--seq-length", "8",
                       "--batch-size", "2", "--sample-length", "40")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("onepage: LSTM H=8")
    losses = [float(line.split("loss ")[1].split()[0]) for line in lines if " loss " in line]
    assert len(losses) == 4 and all(3.0 < x < 6.0 for x in losses)    # near ln V at the start
    sample = proc.stdout.split("----- sample -----\n")[1]
    assert len(sample.rstrip("\n")) >= 30


@pytest.mark.parametrize("args, fragment", [
    (["--steps", "0"], "--steps must be a positive integer"),
    (["--lr", "-1"], "--lr"),
    (["--hidden", "many"], "--hidden"),
    (["--batch-size", "100000000"], "too short"),
])
def test_bad_arguments_get_one_line_and_exit_2(args, fragment):
    proc = run_command(*args)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("python -m scratchrnn.book.onepage: error: ") and fragment in lines[0]
    assert "Traceback" not in proc.stderr
