"""What the three cells share: the fused weight layout and the level-2 GEMMs.

A cell with G gates keeps four arrays (PyTorch's two biases, so weights map one to one):

    W_x (I, G*H)   W_h (H, G*H)   b_x (G*H,)   b_h (G*H,)

and its pre-activations are ``a = x W_x + b_x + h W_h + b_h`` (B, G*H).

Level 2 of every cell (docs/derivations.md §7 "Level 2: the GEMMs hoisted out of
the loop") rearranges the textbook scan: the input part ``x W_x`` of all T steps is
ONE GEMM before the loop (``input_projection``); the backward loop only collects the
pre-activation gradients of every step; the weight and input gradients are then ONE
GEMM each after it (``weight_gradients``). Every engine uses these two as well.
Each "§n" in a comment is a section of docs/derivations.md.
"""
from __future__ import annotations

import math

from scratchrnn.book.ops import xp_of
from scratchrnn.core.validation import positive_int


def init_fused_params(input_size, hidden_size, gates, rng, backend, dtype):
    """PyTorch's init: every weight and bias ~ U(-1/sqrt(H), 1/sqrt(H)).

    rng: a host ``numpy.random.Generator`` (same seed -> same weights on CPU and GPU).
    Returns {"W_x": (I, G*H), "W_h": (H, G*H), "b_x": (G*H,), "b_h": (G*H,)} on ``backend``.
    """
    input_size = positive_int("input_size", input_size)
    hidden_size = positive_int("hidden_size", hidden_size)
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
    return xp_of(ss).concatenate([s0[None], ss[:-1]], axis=0)


def step_weight_gradients(x, h_prev, dax, dah=None):
    """The weight gradients of ONE step (level 1 adds them up over the steps).

    x: (B, I) input.  h_prev: (B, H) state entering the step.
    dax: (B, G*H) dL/d(x W_x + b_x).  dah: (B, G*H) dL/d(h W_h + b_h), None when it is dax.
    Returns {"W_x": (I, G*H), "W_h": (H, G*H), "b_x": (G*H,), "b_h": (G*H,)}.
    """
    dah = dax if dah is None else dah
    return {"W_x": x.T @ dax,             # undo a_x = x W_x (§2)
            "W_h": h_prev.T @ dah,        # undo a_h = h_prev W_h (§2)
            "b_x": dax.sum(axis=0),       # undo + b_x, broadcast over the batch (§2)
            "b_h": dah.sum(axis=0)}       # undo + b_h (§2)


def weight_gradients(xs, h_prev, dax, dah, W_x):
    """The gradients that need no loop, each ONE GEMM over all T*B rows (level 2).

    xs: (T, B, I) inputs.  h_prev: (T, B, H) hidden state entering each step.
    dax: (T, B, G*H) dL/d(x W_x + b_x).  dah: (T, B, G*H) dL/d(h W_h + b_h), or None
    when it is the same array as dax (RNN and LSTM: the two sums enter the gates together).
    W_x: (I, G*H).
    Returns dxs (T, B, I) and grads {"W_x", "W_h", "b_x", "b_h"}: the sums over t of
    ``step_weight_gradients``, written as one GEMM each.
    """
    T, B, I = xs.shape
    H, GH = h_prev.shape[-1], dax.shape[-1]
    # the sums over t and b are one sum over the T*B rows of the stacked matrices (§7)
    grads = step_weight_gradients(xs.reshape(T * B, I), h_prev.reshape(T * B, H),
                                  dax.reshape(T * B, GH),
                                  None if dah is None else dah.reshape(T * B, GH))
    dxs = (dax.reshape(T * B, GH) @ W_x.T).reshape(T, B, I)   # undo x W_x, for the layer below (§7)
    return dxs, grads
