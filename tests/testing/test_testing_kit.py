"""scratchrnn.testing, the public property-test kit, checked on the book, on onepage.py, on
PyTorch (nn.LSTM/GRU/RNN and a hand-written torch-tensor LSTM step), and on seeded mutants.

Pass: the cells (both layouts, every cell kind, hypothesis-drawn cases), the layer classes
(whatever engine they run), torch's own modules through the torch layout with CPU tensors,
onepage.py's step, clipping and Adam. Fail, with a readable table naming exactly the rows
that are wrong: an LSTM backward with the i and f blocks swapped, a GRU forward with z and
1 - z swapped, a recurrent gradient off by 0.1 %, a softmax gradient not divided by N,
clipping per array, Adam without bias correction, a BPTT that ignores the final state's
gradient.
"""
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings

import scratchrnn.book.onepage as onepage
from scratchrnn.blocks.layers import LAYERS
from scratchrnn.book import optim
from scratchrnn.book.cells import CELLS
from scratchrnn.testing import (
    Report,
    Row,
    assert_adam_update,
    assert_clip_grad_norm,
    assert_gradients,
    assert_sequence_backward,
    assert_sequence_forward,
    assert_softmax_cross_entropy,
    assert_step_backward,
    assert_step_forward,
    check_adam_update,
    check_clip_grad_norm,
    check_gradients,
    check_sequence_backward,
    check_softmax_cross_entropy,
    check_step_backward,
    check_step_forward,
    converter,
    step_case,
    to_numpy,
)
from scratchrnn.testing import strategies as rst
from scratchrnn.testing.layouts import to_book_layout


# ------------------------------------------------------------ the book as a user would wrap it
def book_forward(cell, layout="scratchrnn"):
    m = CELLS[cell]

    def fn(params, x, state):
        (p,) = to_book_layout(params, 1, layout, False)
        return m.step_forward(p, x, state)[1]
    return fn


def book_backward(cell, layout="scratchrnn", spoil=None):
    m = CELLS[cell]

    def fn(params, x, state, dstate):
        (p,) = to_book_layout(params, 1, layout, False)
        _, _, cache = m.step_forward(p, x, state)
        if cell == "lstm":
            dx, (dh, dc), g = m.step_backward(p, dstate[0], (np.zeros_like(dstate[0]), dstate[1]),
                                              cache)
            out = {"x": dx, "h": dh, "c": dc}
        else:
            dx, dh, g = m.step_backward(p, dstate, np.zeros_like(dstate), cache)
            out = {"x": dx, "h": dh}
        if layout == "torch":
            g = {f"{n}_l0": g[k].T for k, n in (("W_x", "weight_ih"), ("W_h", "weight_hh"),
                                                ("b_x", "bias_ih"), ("b_h", "bias_hh"))}
        out.update(g)
        return spoil(out) if spoil else out
    return fn


@given(rst.step_cases())
def test_the_cells_pass_step_forward_and_backward(case):
    assert_step_forward(book_forward(case.cell, case.layout), case=case)
    report = assert_step_backward(book_backward(case.cell, case.layout), case=case)
    assert report.passed and all(r.vs_numeric is not None for r in report.rows)


@given(rst.sequence_cases(layout="scratchrnn"))
def test_the_layer_classes_pass_the_sequence_checks(case):
    H = case.dys.shape[2]
    layer = LAYERS[case.cell](case.xs.shape[2], H, num_layers=case.num_layers, dtype="float64")

    def load(params):
        for k, v in params.items():
            layer.params[k][...] = v

    def forward(params, xs, state0):
        load(params)
        return layer.forward(xs, state0)

    def backward(params, xs, state0, dys, dstateT):
        load(params)
        layer.zero_grad()
        layer.forward(xs, state0)
        dxs, dstate0 = layer.backward(dys, dstateT)
        d0 = dict(zip(("h0", "c0"), dstate0 if case.cell == "lstm" else (dstate0,)))
        return {**{k: g.copy() for k, g in layer.grads.items()}, "xs": dxs, **d0}

    assert_sequence_forward(forward, case=case)
    assert_sequence_backward(backward, case=case)


# ------------------------------------------------------------------------- PyTorch
torch = pytest.importorskip("torch")
MODULES = {"rnn": torch.nn.RNN, "gru": torch.nn.GRU, "lstm": torch.nn.LSTM}


def torch_module(cell, params, num_layers):
    I = params["weight_ih_l0"].shape[1]
    H = params["weight_hh_l0"].shape[1]
    module = MODULES[cell](I, H, num_layers=num_layers).double()
    module.load_state_dict({k: v.clone() for k, v in params.items()})
    return module


def torch_sequence_forward(cell):
    def fn(params, xs, state0):
        module = torch_module(cell, params, params_layers(params))
        with torch.no_grad():
            return module(xs, state0)
    return fn


def params_layers(params):
    return sum(k.startswith("weight_ih_l") for k in params)


def torch_sequence_backward(cell):
    def fn(params, xs, state0, dys, dstateT):
        module = torch_module(cell, params, params_layers(params))
        xs = xs.clone().requires_grad_(True)
        states = tuple(s.clone().requires_grad_(True) for s in (state0 if cell == "lstm"
                                                                  else (state0,)))
        ys, sT = module(xs, states if cell == "lstm" else states[0])
        sT = sT if cell == "lstm" else (sT,)
        dT = dstateT if cell == "lstm" else (dstateT,)
        loss = (ys * dys).sum() + sum((s * d).sum() for s, d in zip(sT, dT))
        loss.backward()
        out = {k: p.grad for k, p in module.named_parameters()}
        out["xs"] = xs.grad
        out.update(zip(("h0", "c0"), (s.grad for s in states)))
        return out
    return fn


@settings(max_examples=6)
@given(rst.sequence_cases(layout="torch", max_layers=2))
def test_torch_modules_pass_through_the_torch_layout(case):
    to_torch = converter("torch")
    assert_sequence_forward(torch_sequence_forward(case.cell), case=case, to_user=to_torch)
    assert_sequence_backward(torch_sequence_backward(case.cell), case=case, to_user=to_torch)


def torch_lstm_step(params, x, state):
    """A hand-written LSTM step on torch CPU tensors, PyTorch's layout and gate order."""
    h, c = state
    a = x @ params["weight_ih_l0"].T + params["bias_ih_l0"] + h @ params["weight_hh_l0"].T \
        + params["bias_hh_l0"]
    i, f, g, o = a.chunk(4, dim=1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def torch_lstm_step_backward(params, x, state, dstate):
    """Its backward by autograd: dL/d(every input) for L = <h', dh> + <c', dc>."""
    leaves = {**params, "x": x, "h": state[0], "c": state[1]}
    leaves = {k: v.clone().requires_grad_(True) for k, v in leaves.items()}
    p = {k: leaves[k] for k in params}
    h, c = torch_lstm_step(p, leaves["x"], (leaves["h"], leaves["c"]))
    loss = (h * dstate[0]).sum() + (c * dstate[1]).sum()
    grads = torch.autograd.grad(loss, list(leaves.values()))
    return dict(zip(leaves, grads))


def test_a_torch_tensor_lstm_step_passes():
    to_torch = converter("torch")
    for seed in range(3):
        case = step_case("lstm", "torch", B=3, I=4, H=5, seed=seed)
        assert_step_forward(torch_lstm_step, case=case, to_user=to_torch)
        report = assert_step_backward(torch_lstm_step_backward, case=case, to_user=to_torch)
        assert {r.name for r in report.rows} >= {"weight_ih_l0[i]", "weight_hh_l0[o]",
                                                 "bias_hh_l0[g]", "x", "h", "c"}


def test_torch_loss_clipping_and_adam_pass():
    to_torch = converter("torch")

    def ce(logits, targets):
        z = logits.clone().requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(z, targets)
        loss.backward()
        return loss, z.grad

    def clip(grads, max_norm):          # in place on the tensors, returns the norm
        norm = torch.sqrt(sum((g * g).sum() for g in grads.values()))
        if norm > max_norm:
            for g in grads.values():
                g.mul_(max_norm / norm)
        return norm

    def adam(p, g, m, v, t, lr, b1, b2, eps):
        for k in p:
            m[k].mul_(b1).add_((1 - b1) * g[k])
            v[k].mul_(b2).add_((1 - b2) * g[k] * g[k])
            p[k].sub_(lr * (m[k] / (1 - b1 ** t)) / (torch.sqrt(v[k] / (1 - b2 ** t)) + eps))

    assert_softmax_cross_entropy(ce, to_user=to_torch)
    assert_clip_grad_norm(clip, to_user=to_torch)
    assert_adam_update(adam, to_user=to_torch)


# ------------------------------------------------------------------------- onepage.py
def test_onepage_passes():
    for seed in range(3):
        case = step_case("lstm", "scratchrnn", B=2, I=5, H=3, seed=seed)
        assert_step_forward(lambda p, x, s: onepage.lstm_step(p, x, *s)[:2], case=case)
    assert_clip_grad_norm(onepage.clip, max_norm=1.0)
    assert_clip_grad_norm(onepage.clip, max_norm=0.3, seed=1)
    assert_adam_update(onepage.adam, lr=2e-3)


# ------------------------------------------------------------------------- the mutants
def _swap_if(grads, layout="scratchrnn"):
    """The i and f blocks of every parameter gradient exchanged (da's blocks swapped)."""
    out = dict(grads)
    for k in ("W_x", "W_h", "b_x", "b_h"):
        g = grads[k].copy()
        H = g.shape[-1] // 4
        g[..., :H], g[..., H:2 * H] = grads[k][..., H:2 * H], grads[k][..., :H]
        out[k] = g
    return out


def test_a_swapped_gate_block_fails_exactly_its_rows():
    report = check_step_backward(book_backward("lstm", spoil=_swap_if), "lstm", seed=3)
    assert not report.passed
    assert set(report.failed) == {f"{k}[{g}]" for k in ("W_x", "W_h", "b_x", "b_h")
                                  for g in "if"}
    row = report.row("W_x[f]")
    assert row.vs_book > 1e-2 and row.vs_numeric > 1e-2
    with pytest.raises(AssertionError) as info:
        assert_step_backward(book_backward("lstm", spoil=_swap_if), "lstm", seed=3)
    text = str(info.value)
    assert ("lstm step backward (scratchrnn layout) (tolerance 1e-06): FAILED: W_x[i], W_x[f]"
            in text)
    lines = {line.split()[0]: line for line in text.splitlines()[3:]}
    assert lines["W_x[f]"].endswith("FAIL") and lines["W_x[g]"].endswith("pass")
    assert lines["c"].endswith("pass")


def test_a_forward_with_z_and_one_minus_z_swapped_fails():
    def wrong(params, x, h):
        H = h.shape[1]
        ax, ah = x @ params["W_x"] + params["b_x"], h @ params["W_h"] + params["b_h"]
        sig = lambda a: 1 / (1 + np.exp(-a))     # noqa: E731
        r, z = sig(ax[:, :H] + ah[:, :H]), sig(ax[:, H:2 * H] + ah[:, H:2 * H])
        n = np.tanh(ax[:, 2 * H:] + r * ah[:, 2 * H:])
        return z * n + (1 - z) * h
    report = check_step_forward(wrong, "gru", seed=1)
    assert report.failed == ["h"] and report.row("h").vs_book > 1e-2
    right = check_step_forward(book_forward("gru"), "gru", seed=1)
    assert right.passed


def test_a_small_error_in_one_gradient_is_caught():
    spoil = lambda g: {**g, "h": g["h"] * 1.001}     # noqa: E731
    report = check_step_backward(book_backward("rnn", spoil=spoil), "rnn", seed=2)
    assert report.failed == ["h"]
    assert 1e-4 < report.row("h").vs_numeric < 1e-2


def test_a_bptt_that_ignores_the_final_state_gradient_fails():
    def backward(params, xs, state0, dys, dstateT):
        layers = to_book_layout(params, 1, "scratchrnn", True)
        m = CELLS["gru"]
        _, _, cache = m.forward(layers[0], xs, state0[0])
        dxs, dh0, g = m.backward(layers[0], dys, np.zeros_like(dstateT[0]), cache)
        return {**{f"l0.{k}": v for k, v in g.items()}, "xs": dxs, "h0": dh0[None]}
    report = check_sequence_backward(backward, "gru")
    assert not report.passed and "h0" in report.failed and "xs" in report.failed


def test_the_other_checks_catch_their_mutants():
    def ce_sum(logits, targets):         # the gradient not divided by N
        z = logits - logits.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        d = np.exp(logp)
        d[np.arange(len(targets)), targets] -= 1
        return -logp[np.arange(len(targets)), targets].mean(), d
    report = check_softmax_cross_entropy(ce_sum)
    assert report.failed == ["dlogits", "dlogits (logits ±1000)"]

    def clip_each(grads, max_norm):      # each array by its own norm
        for g in grads.values():
            n = np.sqrt((g * g).sum())
            if n > max_norm:
                g *= max_norm / n
        return np.sqrt(sum((g * g).sum() for g in grads.values()))
    report = check_clip_grad_norm(clip_each)
    assert "W_x (above)" in report.failed and "W_x (below)" not in report.failed

    def adam_uncorrected(p, g, m, v, t, lr, b1, b2, eps):
        for k in p:
            m[k] = b1 * m[k] + (1 - b1) * g[k]
            v[k] = b2 * v[k] + (1 - b2) * g[k] ** 2
            p[k] -= lr * m[k] / (np.sqrt(v[k]) + eps)
    report = check_adam_update(adam_uncorrected)
    assert "t=1 params[W_x]" in report.failed and "t=1 m[W_x]" not in report.failed


def test_wrong_shapes_and_nan_are_rows_with_a_note():
    def transposed(params, x, state, dstate):
        out = book_backward("rnn")(params, x, state, dstate)
        return {**out, "W_x": out["W_x"].T, "b_h": out["b_h"] * np.nan}
    report = check_step_backward(transposed, case=step_case("rnn", B=2, I=3, H=4))
    assert report.row("W_x").note == "shape (4, 3), expected (3, 4)"
    assert report.row("b_h").note == "contains NaN or inf"
    assert report.failed == ["W_x", "b_h"]


# ------------------------------------------------------------------ the small pieces
def test_float32_cases_get_a_float32_tolerance():
    case = step_case("gru", "torch", dtype=np.float32, seed=4)
    report = assert_step_backward(book_backward("gru", "torch"), case=case)
    assert report.tol == 1e-3


def test_to_numpy_takes_tensors_with_grad_lists_and_numbers():
    t = torch.ones(2, 3, dtype=torch.float64, requires_grad=True) * 2
    np.testing.assert_array_equal(to_numpy(t), np.full((2, 3), 2.0))
    assert to_numpy([1.0, 2.0]).shape == (2,) and to_numpy(3.5).shape == ()
    with pytest.raises(ValueError, match="numpy, torch and cupy"):
        converter("jax")


def test_report_table():
    report = Report("demo", (Row("W_x[i]", 1.5e-12, 2e-11, True),
                             Row("h", None, None, False, "shape (2,), expected (3,)")), 1e-6)
    lines = report.table().splitlines()
    assert lines[0] == "demo (tolerance 1e-06): FAILED: h"
    assert lines[1].split() == ["item", "vs", "book", "vs", "finite", "diff", "result"]
    assert lines[3].split() == ["W_x[i]", "1.50e-12", "2.00e-11", "pass"]
    assert lines[4].split()[:4] == ["h", "-", "-", "FAIL"] and "shape (2,)" in lines[4]
    assert str(report) == report.table()


@given(rst.cell_params("gru", "torch", I=3, H=2), rst.cell_states("lstm", B=2, H=5, num_layers=3))
def test_strategies_draw_the_stated_layouts(params, state):
    assert params["weight_ih_l0"].shape == (6, 3) and params["bias_hh_l0"].shape == (6,)
    assert len(state) == 2 and state[0].shape == (3, 2, 5)


def test_the_kit_and_the_exercises_need_no_hypothesis():
    """hypothesis is in the ``test`` extra only: the checks and the exercise command import
    without it, and the strategies say in one sentence how to install it."""
    import subprocess
    import sys
    from pathlib import Path
    code = ("import sys; sys.modules['hypothesis'] = None\n"
            "import scratchrnn.testing, scratchrnn.learn.grader, scratchrnn.cli.exercise\n"
            "from scratchrnn.testing import check_clip_grad_norm\n"
            "import scratchrnn.book.onepage as op\n"
            "assert check_clip_grad_norm(op.clip).passed\n"
            "try:\n    scratchrnn.testing.strategies\nexcept ImportError as err:\n"
            "    print(err)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[2], timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ("scratchrnn.testing.strategies needs hypothesis: pip install "
                                  "hypothesis (or pip install 'scratchrnn[test]').")


def test_arrays_of_the_backend_pass_through_the_boundary(backend):
    """The book run on the test backend (NumPy; CuPy on a GPU machine, skipped elsewhere) as
    the user's function: inputs converted with ``backend.asarray``, results read back by
    ``to_numpy`` (``.get()`` for CuPy)."""
    cell = CELLS["lstm"]

    def forward(params, x, state):
        return cell.step_forward(params, x, state)[1]

    report = assert_step_forward(forward, "lstm", seed=5, to_user=backend.asarray)
    assert report.passed
    assert_clip_grad_norm(optim.clip_grad_norm, to_user=backend.asarray)   # in place, any backend


# ------------------------------------------- onepage.py's whole BPTT, and seeded mutants of it
def _onepage_problem(module, seed=0, V=5, H=3, T=4, B=2):
    rng = np.random.default_rng(seed)
    params = module.init_params(V, H, rng)
    ids, targets = rng.integers(0, V, (T, B)), rng.integers(0, V, (T, B))
    h0, c0 = rng.standard_normal((B, H)), rng.standard_normal((B, H))

    def loss(a):
        return module.forward({k: a[k] for k in params}, ids, targets, a["h0"], a["c0"])[0]

    def gradients(a):
        p = {k: a[k] for k in params}
        _, _, cache = module.forward(p, ids, targets, a["h0"], a["c0"])
        grads, (dh0, dc0) = module.backward(p, cache)
        return {**grads, "h0": dh0, "c0": dc0}
    return loss, gradients, {**params, "h0": h0, "c0": c0}


def _mutant(old, new):
    """onepage.py with one line changed, loaded as its own module."""
    import types
    source = Path(onepage.__file__).read_text()
    assert old in source
    module = types.ModuleType("onepage_mutant")
    exec(compile(source.replace(old, new, 1), "onepage_mutant", "exec"), module.__dict__)   # noqa: S102
    return module


def test_onepage_whole_bptt_passes_check_gradients():
    report = assert_gradients(*_onepage_problem(onepage), cell="lstm")
    assert {"W_x[f]", "W_h[o]", "b_h[g]", "W", "b", "h0", "c0"} <= {r.name for r in report.rows}


@pytest.mark.parametrize("old, new, wrong", [
    ("dc_next = dc * f ", "dc_next = dc     ", {"c0"}),            # the carousel without f
    ("dh = dz @ p[\"W\"].T + dh_next", "dh = dz @ p[\"W\"].T", {"h0", "c0"}),   # dh_next dropped
    ("dz /= T * B", "dz /= B", None),                               # not divided by T
])
def test_onepage_mutants_fail_check_gradients(old, new, wrong):
    report = check_gradients(*_onepage_problem(_mutant(old, new)), cell="lstm")
    assert not report.passed
    if wrong is not None:
        assert wrong <= set(report.failed)
    assert "FAIL" in report.table()
