"""The vanilla (Elman) RNN, PyTorch's equation:

    h' = act(x W_x + b_x + h W_h + b_h)          act = tanh or relu

``identity_init=True`` sets W_h = I and the biases to 0 (the IRNN of Le, Jaitly &
Hinton 2015, meant for relu).

Memory of the training cache for one layer: h 1·T·B·H (the derivative is taken from
h itself), plus the inputs T·B·I (see ``cache_elements``).
"""
from __future__ import annotations

from typing import Any, NamedTuple

from .. import kernels, ops
from ..scan import scan
from ._fused import fused_backward_gemms, init_fused_params, input_projection, previous_states

GATES = 1
HAS_CELL_STATE = False


class StepCache(NamedTuple):
    x: Any        # (B, I) input
    h_prev: Any   # (B, H) hidden state entering the step
    h: Any        # (B, H) act(a), the output


class Cache(NamedTuple):
    xs: Any       # (T, B, I) inputs
    h0: Any       # (B, H) initial hidden state
    hs: Any       # (T, B, H) hidden states after each step (= the outputs)


def init_params(input_size, hidden_size, rng, backend, dtype, identity_init=False):
    """W_x (I, H), W_h (H, H), b_x (H,), b_h (H,) ~ U(±1/sqrt(H)); see ``identity_init``."""
    params = init_fused_params(input_size, hidden_size, GATES, rng, backend, dtype)
    if identity_init:
        params["W_h"][...] = backend.xp.eye(hidden_size, dtype=params["W_h"].dtype)
        params["b_x"][...] = 0.0
        params["b_h"][...] = 0.0
    return params


def cache_elements(T, B, I, H):
    """Array elements a training forward keeps for one layer (the docstring's formula)."""
    return T * B * H + T * B * I


def _activation(nonlinearity):
    try:
        return ops.ACTIVATIONS[nonlinearity]
    except KeyError:
        raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}.") from None


# ------------------------------------------------------------------- one step
def step_forward(params, x, h_prev, nonlinearity="tanh"):
    """One time step. x: (B, I).  h_prev: (B, H).  Returns h' (B, H), h', StepCache."""
    act, _ = _activation(nonlinearity)
    h = act(x @ params["W_x"] + params["b_x"] + h_prev @ params["W_h"] + params["b_h"])
    return h, h, StepCache(x, h_prev, h)


def step_backward(params, dh, dh_next, cache, nonlinearity="tanh"):
    """Undo one step. dh: (B, H) from the output; dh_next: (B, H) from step t+1.

    Returns dx (B, I), dh_prev (B, H), grads of this step.
    """
    _, act_backward = _activation(nonlinearity)
    da = act_backward(dh + dh_next, cache.h)                        # undo h = act(a)
    grads = {"W_x": cache.x.T @ da, "W_h": cache.h_prev.T @ da,     # undo x W_x, h W_h
             "b_x": da.sum(axis=0), "b_h": da.sum(axis=0)}          # undo the biases
    return da @ params["W_x"].T, da @ params["W_h"].T, grads


# --------------------------------------------------------------- whole sequence
def forward(params, xs, h0, nonlinearity="tanh", impl=None):
    """Run the sequence. xs: (T, B, I).  h0: (B, H).  Returns ys (T, B, H), h_T, Cache.

    impl: "plain" (this code), "fast" (``scratchrnn.kernels``, tested equal), or None
    for ``kernels.get_default()``."""
    fast = kernels.fast_path("rnn", xs, impl)
    if fast is not None:
        return fast.forward(params, xs, h0, nonlinearity)
    act, _ = _activation(nonlinearity)
    W_h = params["W_h"]
    ax = input_projection(xs, params["W_x"], params["b_x"] + params["b_h"])  # one GEMM, all T

    def step(h, ax_t):
        h = act(ax_t + h @ W_h)
        return h, h

    hT, hs = scan(step, h0, ax)
    return hs, hT, Cache(xs, h0, hs)


def backward(params, dys, dhT, cache, nonlinearity="tanh", impl=None):
    """Backpropagation through time. dys: (T, B, H).  dhT: (B, H) at the final state.

    Returns dxs (T, B, I), dh0 (B, H), grads {"W_x", "W_h", "b_x", "b_h"}.
    impl: as in ``forward``.
    """
    fast = kernels.fast_path("rnn", dys, impl)
    if fast is not None:
        return fast.backward(params, dys, dhT, cache, nonlinearity)
    _, act_backward = _activation(nonlinearity)
    W_hT = params["W_h"].T

    def step(dh_next, inputs):
        dy, h = inputs
        da = act_backward(dy + dh_next, h)          # undo h = act(a)
        return da @ W_hT, da                        # undo h_prev W_h (per step)

    dh0, das = scan(step, dhT, (dys, cache.hs), reverse=True)
    dxs, grads = fused_backward_gemms(params, cache.xs, previous_states(cache.h0, cache.hs), das)
    return dxs, dh0, grads
