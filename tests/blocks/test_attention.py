"""Attention over past outputs (``scratchrnn.blocks.attention.AttentionLSTM``).

Properties, float64, random shapes (T, B, I, H, K window, D features, 1-3 layers),
random weights and a random initial state (h, c, read-out, window):
- every gradient (parameters, input, each part of the initial state) of a random
  linear functional of the outputs and the final state agrees with central
  differences (normwise 1e-6), so BPTT through the window of past outputs is right;
- outputs, final state and every gradient equal those of a small PyTorch autograd
  reference written below from the equations (docs/derivations.md, section 9) to 1e-10.
Known answers:
- with a zero window and a zero read-out (the start), the first step's weights are
  uniform (1/K) and its read-out is zero, so its output is h_1 W_out[:H] + b_out;
- a window of K identical rows reads back exactly that row, whatever the scores.
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scratchrnn.blocks.attention import AttentionLSTM, AttentionState
from scratchrnn.book.gradcheck import check_function, format_table, rel_error
from scratchrnn.core.errors import ShapeError

TOL = 1e-6

sizes = dict(T=st.integers(1, 5), B=st.integers(1, 3), I=st.integers(1, 3), H=st.integers(1, 3),
             K=st.integers(1, 4), D=st.integers(1, 3), L=st.integers(1, 3),
             seed=st.integers(0, 2**31 - 1))


def _setup(backend, T, B, I, H, K, D, L, seed):
    rng = np.random.default_rng(seed)
    model = AttentionLSTM(I, H, num_layers=L, attn_length=K, attn_vec_size=D, backend=backend,
                          dtype="float64", seed=seed)
    on = lambda *shape: backend.asarray(rng.standard_normal(shape))     # noqa: E731
    x = on(T, B, I)
    state0 = AttentionState(on(L, B, H), on(L, B, H), on(B, H), on(B, K, H))
    w_y = on(T, B, H)
    w_state = AttentionState(on(L, B, H), on(L, B, H), on(B, H), on(B, K, H))
    return model, x, state0, w_y, w_state


def _objective(model, x, state0, w_y, w_state, scale=False):
    ys, stateT = model.forward(x, state0)
    mag = abs if scale else (lambda a: a)
    total = mag(ys * w_y).sum()
    for s, w in zip(stateT, w_state):
        total = total + mag(s * w).sum()
    return float(total)


@given(**sizes)
def test_every_gradient_matches_finite_differences(backend, T, B, I, H, K, D, L, seed):
    model, x, state0, w_y, w_state = _setup(backend, T, B, I, H, K, D, L, seed)
    model.zero_grad()
    model.forward(x, state0)
    dx, dstate0 = model.backward(w_y, w_state)
    grads = {k: g.copy() for k, g in model.grads.items()}
    wrt = dict(model.params)
    wrt["x"], grads["x"] = x, dx
    for name, s, ds in zip(AttentionState._fields, state0, dstate0):
        wrt[f"state.{name}"], grads[f"state.{name}"] = s, ds
    rows = check_function(lambda: _objective(model, x, state0, w_y, w_state), wrt, grads,
                          tol=TOL, loss_scale=_objective(model, x, state0, w_y, w_state, True))
    assert all(r.passed for r in rows), "\n" + format_table(rows)


def _torch_reference(torch, params, x, state0, L, H, K):
    """The equations of section 9 in PyTorch, weights in scratchrnn's (in, out) layout."""
    def lstm_step(p, x_t, h, c):
        a = x_t @ p["W_x"] + p["b_x"] + h @ p["W_h"] + p["b_h"]
        i, f, g, o = torch.sigmoid(a[:, :H]), torch.sigmoid(a[:, H:2 * H]), \
            torch.tanh(a[:, 2 * H:3 * H]), torch.sigmoid(a[:, 3 * H:])
        c = f * c + i * g
        return o * torch.tanh(c), c

    h0, c0, read, window = state0
    us, hT, cT = x, [], []
    for k in range(L - 1):                      # plain layers below
        p = {n: params[f"lower.l{k}.{n}"] for n in ("W_x", "W_h", "b_x", "b_h")}
        h, c, outs = h0[k], c0[k], []
        for t in range(us.shape[0]):
            h, c = lstm_step(p, us[t], h, c)
            outs.append(h)
        us = torch.stack(outs)
        hT.append(h)
        cT.append(c)
    top = {n: params[f"top.{n}"] for n in ("W_x", "W_h", "b_x", "b_h")}
    a = {n[5:]: v for n, v in params.items() if n.startswith("attn.")}
    h, c, ys = h0[-1], c0[-1], []
    for t in range(us.shape[0]):
        x_in = torch.cat([us[t], read], dim=1) @ a["W_in"] + a["b_in"]
        h, c = lstm_step(top, x_in, h, c)
        query = torch.cat([c, h], dim=1) @ a["W_q"] + a["b_q"]
        scores = torch.tanh(window @ a["W_k"] + query[:, None, :]) @ a["v"]
        alpha = torch.softmax(scores, dim=1)
        read = (alpha[:, :, None] * window).sum(dim=1)
        out = torch.cat([h, read], dim=1) @ a["W_out"] + a["b_out"]
        window = torch.cat([window[:, 1:], out[:, None, :]], dim=1)
        ys.append(out)
    hT.append(h)
    cT.append(c)
    return torch.stack(ys), (torch.stack(hT), torch.stack(cT), read, window)


@pytest.mark.parametrize("L", [1, 2, 3])
def test_matches_a_pytorch_reference(backend, L):
    torch = pytest.importorskip("torch", reason="PyTorch is not installed; the reference needs it")
    T, B, I, H, K, D = 6, 3, 4, 5, 3, 4
    model, x, state0, w_y, w_state = _setup(backend, T, B, I, H, K, D, L, seed=7)
    model.zero_grad()
    ys, stateT = model.forward(x, state0)
    dx, dstate0 = model.backward(w_y, w_state)

    host = lambda a: torch.tensor(backend.asnumpy(a), dtype=torch.float64)   # noqa: E731
    tp = {n: host(p).requires_grad_() for n, p in model.params.items()}
    tx = host(x).requires_grad_()
    ts0 = [host(s).requires_grad_() for s in state0]
    tys, tstateT = _torch_reference(torch, tp, tx, ts0, L, H, K)
    total = (tys * host(w_y)).sum() + sum((s * host(w)).sum() for s, w in zip(tstateT, w_state))
    total.backward()

    close = lambda ours, theirs: rel_error(ours, theirs.detach().numpy()) < 1e-10  # noqa: E731
    assert close(ys, tys)
    assert all(close(s, ts) for s, ts in zip(stateT, tstateT))
    assert close(dx, tx.grad)
    assert all(close(ds, ts.grad) for ds, ts in zip(dstate0, ts0))
    for name, g in model.grads.items():
        assert close(g, tp[name].grad), name


def test_first_step_from_zero_state_reads_nothing(backend):
    """Zero window and read-out: equal scores, α = 1/K, a_1 = 0, o_1 = h_1 W_out[:H] + b_out."""
    H, K = 4, 5
    model = AttentionLSTM(3, H, num_layers=2, attn_length=K, backend=backend, dtype="float64",
                          seed=0)
    x = backend.asarray(np.random.default_rng(0).standard_normal((1, 2, 3)))
    ys, state = model.forward(x)
    cache = model.caches[0]
    np.testing.assert_allclose(backend.asnumpy(cache.alpha), np.full((2, K), 1.0 / K), rtol=1e-14)
    assert float(abs(state.read).max()) == 0.0
    expected = state.h[-1] @ model.params["attn.W_out"][:H] + model.params["attn.b_out"]
    assert rel_error(ys[0], expected) < 1e-15
    assert rel_error(state.window[:, -1], ys[0]) == 0.0          # the window shifted it in
    assert float(abs(state.window[:, :-1]).max()) == 0.0


def test_window_of_identical_rows_reads_that_row(backend):
    H, K, B = 3, 4, 2
    model = AttentionLSTM(2, H, num_layers=1, attn_length=K, backend=backend, dtype="float64",
                          seed=1)
    row = np.random.default_rng(1).standard_normal((B, H))
    s0 = model.zero_state(B)
    s0 = s0._replace(window=backend.asarray(np.repeat(row[:, None, :], K, axis=1)))
    _, state = model.forward(backend.asarray(np.ones((1, B, 2))), s0)
    assert rel_error(state.read, row) < 1e-15


def test_bad_shapes_are_refused(backend):
    model = AttentionLSTM(2, 3, attn_length=2, backend=backend, dtype="float64")
    with pytest.raises(ShapeError, match="input"):
        model.forward(np.zeros((4, 1, 3)))
    with pytest.raises(ShapeError, match="window"):
        model.forward(np.zeros((4, 1, 2)), model.zero_state(1)._replace(window=np.zeros((1, 3, 3))))
    model.forward(np.zeros((4, 1, 2)))
    with pytest.raises(ShapeError, match="dy"):
        model.backward(np.zeros((4, 1, 2)))
