"""GRU with separate per-gate weights vs the library's fused GRU (``scratchrnn.blocks.gru_weights``).

Properties, float64, random shapes and weights:
- split and fuse are inverse to each other, exactly;
- the per-gate sequence gives the fused layer's outputs and final state, and, fused,
  the same parameter, input and state gradients (to 1e-12, rounding only);
- the per-gate backward agrees with central differences (normwise 1e-6).
Known answer: with all weights zero, one step is r = σ(b_r), z = σ(b_z),
n = tanh(b_xn + r b_hn), h' = (1 - z) n + z h, computed here with ``math`` per unit.
"""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scratchrnn import GRU
from scratchrnn.blocks import gru_weights as gw
from scratchrnn.book.cells import gru
from scratchrnn.book.gradcheck import check_function, format_table, rel_error
from scratchrnn.core.backend import host_rng
from scratchrnn.core.errors import ShapeError

shapes = dict(T=st.integers(1, 5), B=st.integers(1, 3), I=st.integers(1, 4), H=st.integers(1, 4),
              seed=st.integers(0, 2**31 - 1))


def _gate_params(backend, I, H, seed):
    return gw.split_gru_params(gru.init_params(I, H, host_rng(seed), backend, "float64"))


@given(I=st.integers(1, 5), H=st.integers(1, 5), seed=st.integers(0, 2**31 - 1))
def test_split_and_fuse_are_inverse(backend, I, H, seed):
    fused = gru.init_params(I, H, host_rng(seed), backend, "float64")
    per_gate = gw.split_gru_params(fused)
    assert set(per_gate) == {"r", "z", "n"}
    assert per_gate["n"]["W_x"].shape == (I, H) and per_gate["z"]["W_h"].shape == (H, H)
    again = gw.fuse_gru_params(per_gate)
    for name in gw.PARAM_NAMES:
        assert bool((again[name] == fused[name]).all())
    np.testing.assert_array_equal(backend.asnumpy(per_gate["z"]["b_x"]),
                                  backend.asnumpy(fused["b_x"][H:2 * H]))
    twice = gw.split_gru_params(gw.fuse_gru_params(per_gate))
    assert all(bool((twice[g][n] == per_gate[g][n]).all()) for g in gw.GATE_NAMES
               for n in gw.PARAM_NAMES)


@given(**shapes)
def test_separate_weights_give_the_fused_layers_outputs_and_gradients(backend, T, B, I, H, seed):
    rng = np.random.default_rng(seed)
    layer = GRU(I, H, backend=backend, dtype="float64", seed=seed)
    xs = backend.asarray(rng.standard_normal((T, B, I)))
    h0 = backend.asarray(rng.standard_normal((1, B, H)))
    dys = backend.asarray(rng.standard_normal((T, B, H)))
    dhT = backend.asarray(rng.standard_normal((1, B, H)))
    layer.zero_grad()
    ys, hT = layer.forward(xs, h0)
    dxs, dh0 = layer.backward(dys, dhT)

    per_gate = gw.split_gru_params(layer.layer_params(0))
    ys_sep, hT_sep, caches = gw.forward(per_gate, xs, h0[0])
    dxs_sep, dh0_sep, grads_sep = gw.backward(per_gate, dys, dhT[0], caches)
    assert rel_error(ys_sep, ys) < 1e-12 and rel_error(hT_sep, hT[0]) < 1e-12
    assert rel_error(dxs_sep, dxs) < 1e-12 and rel_error(dh0_sep, dh0[0]) < 1e-12
    fused_grads = gw.fuse_gru_params(grads_sep)
    for name in gw.PARAM_NAMES:
        assert rel_error(fused_grads[name], layer.grads[f"l0.{name}"]) < 1e-12, name


@given(**shapes)
def test_separate_backward_matches_finite_differences(backend, T, B, I, H, seed):
    rng = np.random.default_rng(seed)
    per_gate = _gate_params(backend, I, H, seed)
    xs = backend.asarray(rng.standard_normal((T, B, I)))
    h0 = backend.asarray(rng.standard_normal((B, H)))
    w = backend.asarray(rng.standard_normal((T, B, H)))
    hs, _, caches = gw.forward(per_gate, xs, h0)
    dxs, dh0, grads = gw.backward(per_gate, w, backend.xp.zeros_like(h0), caches)
    wrt = {f"{g}.{n}": per_gate[g][n] for g in gw.GATE_NAMES for n in gw.PARAM_NAMES}
    analytic = {f"{g}.{n}": grads[g][n] for g in gw.GATE_NAMES for n in gw.PARAM_NAMES}
    wrt.update(x=xs, h0=h0)
    analytic.update(x=dxs, h0=dh0)
    loss = lambda: float((gw.forward(per_gate, xs, h0)[0] * w).sum())   # noqa: E731
    rows = check_function(loss, wrt, analytic)
    assert all(r.passed for r in rows), "\n" + format_table(rows)


def test_one_step_with_zero_weights_by_hand(backend):
    H = 3
    per_gate = _gate_params(backend, 2, H, seed=0)
    for g in gw.GATE_NAMES:
        per_gate[g]["W_x"][...] = 0.0
        per_gate[g]["W_h"][...] = 0.0
    biases = {(g, n): [0.3 * (j + 1) - 0.5 * k for j in range(H)]
              for k, g in enumerate(gw.GATE_NAMES) for n in ("b_x", "b_h")}
    for (g, n), values in biases.items():
        per_gate[g][n][...] = backend.asarray(values)
    h_prev = [0.7, -0.2, 0.1]
    h, _ = gw.step_forward(per_gate, backend.xp.ones((1, 2)), backend.asarray([h_prev]))
    sig = lambda a: 1.0 / (1.0 + math.exp(-a))                           # noqa: E731
    for j in range(H):
        r = sig(biases["r", "b_x"][j] + biases["r", "b_h"][j])
        z = sig(biases["z", "b_x"][j] + biases["z", "b_h"][j])
        n = math.tanh(biases["n", "b_x"][j] + r * biases["n", "b_h"][j])
        assert float(h[0, j]) == pytest.approx((1 - z) * n + z * h_prev[j], abs=1e-15)


def test_split_refuses_non_gru_weights(backend):
    from scratchrnn.book.cells import lstm
    with pytest.raises(ShapeError, match="3H"):
        gw.split_gru_params(lstm.init_params(2, 3, host_rng(0), backend, "float64"))
