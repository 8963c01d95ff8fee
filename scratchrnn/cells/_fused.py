"""What the three cells share: fused weights and the big GEMMs outside the time loop.

A cell with G gates keeps four arrays (PyTorch's two biases, so weights map one to one):

    W_x (I, G*H)   W_h (H, G*H)   b_x (G*H,)   b_h (G*H,)

and its pre-activations are ``a = x W_x + b_x + h W_h + b_h`` (B, G*H).

The speed recipe (DESIGN §4): the input part ``x W_x`` of all T steps is ONE
GEMM before the loop; the loop does only ``h W_h`` and elementwise math; the
backward loop only collects the pre-activation gradients ``da`` of every step
and ``dh_prev = da W_hᵀ``; the weight and input gradients are then ONE GEMM each.
"""
from __future__ import annotations

import math

from ..ops import xp_of as _xp


def init_fused_params(input_size, hidden_size, gates, rng, backend, dtype):
    """PyTorch's init: every weight and bias ~ U(-1/sqrt(H), 1/sqrt(H)).

    rng: a host ``numpy.random.Generator`` (same seed -> same weights on CPU and GPU).
    Returns {"W_x": (I, G*H), "W_h": (H, G*H), "b_x": (G*H,), "b_h": (G*H,)} on ``backend``.
    """
    if input_size < 1 or hidden_size < 1:
        raise ValueError("input_size and hidden_size must be positive integers.")
    k = 1.0 / math.sqrt(hidden_size)
    GH = gates * hidden_size
    shapes = {"W_x": (input_size, GH), "W_h": (hidden_size, GH), "b_x": (GH,), "b_h": (GH,)}
    return {name: backend.asarray(rng.uniform(-k, k, size=shape), dtype=dtype)
            for name, shape in shapes.items()}


def input_projection(xs, W_x, bias):
    """All T input projections in one GEMM.

    xs: (T, B, I).  W_x: (I, G*H).  bias: (G*H,).  Returns (T, B, G*H) = xs W_x + bias.
    """
    T, B, I = xs.shape
    return (xs.reshape(T * B, I) @ W_x + bias).reshape(T, B, W_x.shape[1])


def previous_states(s0, ss):
    """The states *entering* each step: s0 then ss[0..T-2].

    s0: (B, H) initial state.  ss: (T, B, H) states after each step.  Returns (T, B, H).
    """
    xp = _xp(ss)
    return xp.concatenate([s0[None], ss[:-1]], axis=0)


def fused_backward_gemms(params, xs, h_prev, dax, dah=None):
    """The gradients that need no loop, each ONE GEMM over all T*B rows.

    xs: (T, B, I) inputs.  h_prev: (T, B, H) hidden state entering each step.
    dax: (T, B, G*H) dL/d(x W_x + b_x).  dah: (T, B, G*H) dL/d(h W_h + b_h),
    the same array as dax for RNN and LSTM (the two sums enter the gates together).
    Returns dxs (T, B, I) and grads {"W_x", "W_h", "b_x", "b_h"}.
    """
    dah = dax if dah is None else dah
    T, B, I = xs.shape
    H, GH = params["W_h"].shape
    dax2, dah2 = dax.reshape(T * B, GH), dah.reshape(T * B, GH)
    grads = {
        "W_x": xs.reshape(T * B, I).T @ dax2,          # undo a_x = x W_x
        "W_h": h_prev.reshape(T * B, H).T @ dah2,      # undo a_h = h_prev W_h
        "b_x": dax2.sum(axis=0),                       # undo + b_x (broadcast over T, B)
        "b_h": dah2.sum(axis=0),                       # undo + b_h
    }
    dxs = (dax2 @ params["W_x"].T).reshape(T, B, I)    # undo x W_x, for the layer below
    return dxs, grads


def zeros_state(batch, hidden_size, like):
    """A (B, H) zero state with ``like``'s backend and dtype."""
    return _xp(like).zeros((batch, hidden_size), dtype=like.dtype)
