"""Long short-term memory, PyTorch's equations and gate order (i, f, g, o)
(docs/derivations.md §3 "LSTM"):

    a = x W_x + b_x + h W_h + b_h            (B, 4H), split into four (B, H) blocks
    i = σ(a_i)   f = σ(a_f)   g = tanh(a_g)   o = σ(a_o)
    c' = f ⊙ c + i ⊙ g
    h' = o ⊙ tanh(c')

Two levels, tested equal:
    level 1, the textbook: ``forward`` scans ``step_forward`` over time; ``backward``
        scans ``step_backward`` in reverse and adds up the weight gradients step by step.
    level 2, the same math rearranged (docs/derivations.md §7 "Level 2: the GEMMs
        hoisted out of the loop"): ``forward_hoisted`` / ``backward_hoisted``.

Backward takes every derivative from cached *outputs* (σ' = s(1-s), tanh' = 1-t²),
so no pre-activation is recomputed.

Memory of the training cache for one layer (elements, dtype-sized), as torch-rnn
documents it: gates 4·T·B·H + h 1·T·B·H + c 1·T·B·H + tanh(c) 1·T·B·H = 7·T·B·H,
plus the inputs T·B·I that the layer below already holds (see ``cache_elements``).
"""
from __future__ import annotations

from typing import Any, NamedTuple

from scratchrnn.book import ops
from scratchrnn.book.scan import scan
from scratchrnn.book.cells.common import (init_fused_params, input_projection, previous_states, step_weight_gradients,
                     weight_gradients)

NAME = "lstm"
GATES = 4
HAS_CELL_STATE = True


class StepCache(NamedTuple):
    """What one step keeps for its backward pass."""
    x: Any        # (B, I) input
    h_prev: Any   # (B, H) hidden state entering the step
    c_prev: Any   # (B, H) cell state entering the step
    gates: Any    # (B, 4H) post-activations [i, f, g, o]
    tanh_c: Any   # (B, H) tanh(c')


class Cache(NamedTuple):
    """What a whole sequence keeps for its backward pass."""
    xs: Any       # (T, B, I) inputs
    h0: Any       # (B, H) initial hidden state
    c0: Any       # (B, H) initial cell state
    hs: Any       # (T, B, H) hidden states after each step (= the outputs)
    cs: Any       # (T, B, H) cell states after each step
    gates: Any    # (T, B, 4H) post-activations [i, f, g, o] of each step
    tanh_cs: Any  # (T, B, H) tanh(c) of each step


def init_params(input_size, hidden_size, rng, backend, dtype, forget_bias=None):
    """W_x (I, 4H), W_h (H, 4H), b_x (4H,), b_h (4H,) ~ U(±1/sqrt(H)).

    forget_bias: if given, the forget-gate slice of b_x is set to it and that of
    b_h to 0, so the gate starts at σ(forget_bias) (1.0 is a common choice).
    """
    params = init_fused_params(input_size, hidden_size, GATES, rng, backend, dtype)
    if forget_bias is not None:
        H = hidden_size
        params["b_x"][H:2 * H] = forget_bias
        params["b_h"][H:2 * H] = 0.0
    return params


def cache_elements(T, B, I, H):
    """Array elements a training forward keeps for one layer (the docstring's formula)."""
    return 7 * T * B * H + T * B * I


# ----------------------------------------------------------------- the gate math
def gates_forward(a, c_prev):
    """Elementwise part of a step.

    a: (B, 4H) pre-activations.  c_prev: (B, H).
    Returns h (B, H), c (B, H), gates (B, 4H) = [i, f, g, o] post-activation, tanh_c (B, H).
    """
    H = c_prev.shape[-1]
    gates = ops.sigmoid(a)                           # i, f, o (g is overwritten next)
    gates[:, 2 * H:3 * H] = ops.tanh(a[:, 2 * H:3 * H])
    i, f, g, o = gates[:, :H], gates[:, H:2 * H], gates[:, 2 * H:3 * H], gates[:, 3 * H:]
    c = f * c_prev + i * g
    tanh_c = ops.tanh(c)
    h = o * tanh_c
    return h, c, gates, tanh_c


def gates_backward(dh, dc_next, gates, c_prev, tanh_c):
    """Undo ``gates_forward``.

    dh: (B, H) dL/dh'.  dc_next: (B, H) dL/dc' arriving from step t+1.
    gates: (B, 4H).  c_prev, tanh_c: (B, H).
    Returns da (B, 4H) dL/d(pre-activations) and dc_prev (B, H).
    """
    H = c_prev.shape[-1]
    i, f, g, o = gates[:, :H], gates[:, H:2 * H], gates[:, 2 * H:3 * H], gates[:, 3 * H:]
    dc = dc_next + ops.tanh_backward(dh * o, tanh_c)     # undo h = o·tanh(c): the c path
    do = dh * tanh_c                                     # undo h = o·tanh(c): the o path
    di = dc * g                                          # undo c = f·c_prev + i·g
    dg = dc * i
    df = dc * c_prev
    dc_prev = dc * f
    da = gates.copy()                                    # same shape as a (B, 4H)
    da[:, :H] = ops.sigmoid_backward(di, i)              # undo i = σ(a_i)
    da[:, H:2 * H] = ops.sigmoid_backward(df, f)         # undo f = σ(a_f)
    da[:, 2 * H:3 * H] = ops.tanh_backward(dg, g)        # undo g = tanh(a_g)
    da[:, 3 * H:] = ops.sigmoid_backward(do, o)          # undo o = σ(a_o)
    return da, dc_prev


# ------------------------------------------------------------------- one step
def step_forward(params, x, state):
    """One time step. x: (B, I).  state: (h, c), each (B, H).

    Returns h' (B, H), (h', c'), StepCache.
    """
    h_prev, c_prev = state
    a = x @ params["W_x"] + params["b_x"] + h_prev @ params["W_h"] + params["b_h"]
    h, c, gates, tanh_c = gates_forward(a, c_prev)
    return h, (h, c), StepCache(x, h_prev, c_prev, gates, tanh_c)


def step_backward(params, dh, dstate, cache):
    """Undo one step. dh: (B, H) from the output.  dstate: (dh', dc') from step t+1.

    Returns dx (B, I), (dh_prev, dc_prev), grads of this step.
    """
    dh_next, dc_next = dstate
    da, dc_prev = gates_backward(dh + dh_next, dc_next, cache.gates, cache.c_prev, cache.tanh_c)
    grads = step_weight_gradients(cache.x, cache.h_prev, da)     # undo x W_x, h W_h, the biases
    return da @ params["W_x"].T, (da @ params["W_h"].T, dc_prev), grads   # undo x W_x, h_prev W_h


# ------------------------------------------------- level 1: the textbook scans
def forward(params, xs, state0):
    """Run the sequence, one ``step_forward`` per step.

    xs: (T, B, I).  state0: (h0, c0), each (B, H).  Returns ys (T, B, H), (h_T, c_T), Cache.
    """
    def step(state, x):
        _, state, c = step_forward(params, x, state)
        return state, (c.gates, c.tanh_c) + state    # what backward needs: gates, tanh c, h, c

    (hT, cT), (gates, tanh_cs, hs, cs) = scan(step, tuple(state0), xs)
    return hs, (hT, cT), Cache(xs, state0[0], state0[1], hs, cs, gates, tanh_cs)


def backward(params, dys, dstateT, cache):
    """Backpropagation through time, one ``step_backward`` per step, last step first.

    dys: (T, B, H) dL/d outputs.  dstateT: (dh_T, dc_T), each (B, H).  cache: from a forward.
    Returns dxs (T, B, I), (dh0, dc0), grads {"W_x", "W_h", "b_x", "b_h"} summed over steps.
    """
    def step(carry, inputs):
        dstate, total = carry
        dy, *step_cache = inputs
        dx, dstate, grads = step_backward(params, dy, dstate, StepCache(*step_cache))
        return (dstate, {k: total[k] + grads[k] for k in total}), dx   # add this step's grads

    zeros = {k: ops.xp_of(v).zeros_like(v) for k, v in params.items()}
    inputs = (dys, cache.xs, previous_states(cache.h0, cache.hs),
              previous_states(cache.c0, cache.cs), cache.gates, cache.tanh_cs)
    (dstate0, grads), dxs = scan(step, (tuple(dstateT), zeros), inputs, reverse=True)
    return dxs, dstate0, grads


# ------------------------------------------- level 2: the GEMMs out of the loop
def forward_hoisted(params, xs, state0):
    """``forward`` with the input GEMM of all T steps done once before the loop.

    xs: (T, B, I).  state0: (h0, c0), each (B, H).  Returns ys (T, B, H), (h_T, c_T), Cache.
    """
    h0, c0 = state0
    W_h = params["W_h"]
    ax = input_projection(xs, params["W_x"], params["b_x"] + params["b_h"])  # one GEMM, all T

    def step(carry, ax_t):
        h, c = carry
        h, c, gates, tanh_c = gates_forward(ax_t + h @ W_h, c)           # a = a_x + h W_h
        return (h, c), (h, c, gates, tanh_c)

    (hT, cT), (hs, cs, gates, tanh_cs) = scan(step, (h0, c0), ax)
    return hs, (hT, cT), Cache(xs, h0, c0, hs, cs, gates, tanh_cs)


def backward_hoisted(params, dys, dstateT, cache):
    """``backward`` with the weight and input gradients as one GEMM each after the loop.

    dys: (T, B, H).  dstateT: (dh_T, dc_T), each (B, H).
    Returns dxs (T, B, I), (dh0, dc0), grads {"W_x", "W_h", "b_x", "b_h"}.
    """
    W_hT = params["W_h"].T
    c_prevs = previous_states(cache.c0, cache.cs)

    def step(carry, inputs):
        dh_next, dc_next = carry
        dy, gates, c_prev, tanh_c = inputs
        da, dc_prev = gates_backward(dy + dh_next, dc_next, gates, c_prev, tanh_c)
        return (da @ W_hT, dc_prev), da                     # undo h_prev W_h (per step)

    (dh0, dc0), das = scan(step, tuple(dstateT), (dys, cache.gates, c_prevs, cache.tanh_cs),
                           reverse=True)
    h_prevs = previous_states(cache.h0, cache.hs)
    dxs, grads = weight_gradients(cache.xs, h_prevs, das, None, params["W_x"])  # undo x W_x, h W_h
    return dxs, (dh0, dc0), grads
