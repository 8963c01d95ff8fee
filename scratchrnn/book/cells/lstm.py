"""Long short-term memory, PyTorch's equations and gate order (i, f, g, o)
(docs/derivations.md §3 "LSTM"; every "§n" below is a section there):

    a = x W_x + b_x + h W_h + b_h            (B, 4H), split into four (B, H) blocks
    i = σ(a_i)   f = σ(a_f)   g = tanh(a_g)   o = σ(a_o)
    c' = f ⊙ c + i ⊙ g
    h' = o ⊙ tanh(c')

Two levels, tested equal:
    level 1, the textbook: ``forward`` scans ``step_forward`` over time; ``backward``
        scans ``step_backward`` in reverse and adds up the weight gradients step by step.
    level 2, the same math rearranged (docs/derivations.md §7 "Level 2: the GEMMs
        hoisted out of the loop"): ``forward_hoisted`` / ``backward_hoisted``.

Level 1 is a ``scan`` (``scratchrnn/book/scan.py``), not a ``for`` loop written out: the loop
itself is visible once, in ``book/onepage.py`` and in scan's docstring (five lines of plain
Python); here the step function *is* the recurrence, ``(carry, x_t) -> (carry', y_t)``, with
nothing else on the page, and level 2 runs the same ``scan`` with a different step, so the two
levels differ in exactly what the step does.

Backward takes every derivative from cached *outputs* (σ' = s(1-s), tanh' = 1-t²),
so no pre-activation is recomputed.

Memory of the training cache for one layer (elements, dtype-sized), as torch-rnn
documents it: gates 4·T·B·H + h 1·T·B·H + c 1·T·B·H + tanh(c) 1·T·B·H = 7·T·B·H,
plus the inputs T·B·I that the layer below already holds (see ``cache_elements``).
"""
from __future__ import annotations

from typing import Any, NamedTuple

from scratchrnn.book import ops
from scratchrnn.book.cells.common import (
    init_fused_params,
    input_projection,
    previous_states,
    step_weight_gradients,
    weight_gradients,
)
from scratchrnn.book.scan import scan

NAME = "lstm"
GATES = 4
HAS_CELL_STATE = True


class StepCache(NamedTuple):
    """What one step keeps for its backward pass (``step_backward``): the step's input, the
    state it started from, and its post-activations, so no pre-activation is recomputed."""
    x: Any        # (B, I) input
    h_prev: Any   # (B, H) hidden state entering the step
    c_prev: Any   # (B, H) cell state entering the step
    gates: Any    # (B, 4H) post-activations [i, f, g, o]
    tanh_c: Any   # (B, H) tanh(c')


class Cache(NamedTuple):
    """What a whole sequence keeps for its backward pass (``backward``, ``backward_hoisted`` and
    every engine): the StepCaches of all T steps, stored once each (the state entering step t is
    the state after step t-1, so it is not stored twice; ``previous_states`` rebuilds it)."""
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
    dc = dc_next + ops.tanh_backward(dh * o, tanh_c)     # undo h = o·tanh(c): the c path (§3)
    do = dh * tanh_c                                     # undo h = o·tanh(c): the o path (§3)
    di = dc * g                                          # undo c = f·c_prev + i·g: i (§3)
    dg = dc * i                                          # ... g (§3)
    df = dc * c_prev                                     # ... f (§3)
    dc_prev = dc * f                                     # ... c_prev (§3)
    da = ops.xp_of(gates).empty_like(gates)              # dL/da, shaped like a (B, 4H)
    da[:, :H] = ops.sigmoid_backward(di, i)              # undo i = σ(a_i) (§3)
    da[:, H:2 * H] = ops.sigmoid_backward(df, f)         # undo f = σ(a_f) (§3)
    da[:, 2 * H:3 * H] = ops.tanh_backward(dg, g)        # undo g = tanh(a_g) (§3)
    da[:, 3 * H:] = ops.sigmoid_backward(do, o)          # undo o = σ(a_o) (§3)
    return da, dc_prev


# ------------------------------------------------------------------- one step
def step_forward(params, x, state):
    """One time step. x: (B, I).  state: (h, c), each (B, H).

    Returns h' (B, H), (h', c'), StepCache.
    """
    h_prev, c_prev = state
    a = x @ params["W_x"] + params["b_x"] + h_prev @ params["W_h"] + params["b_h"]
    h, c, gates, tanh_c = gates_forward(a, c_prev)
    return h, (h, c), StepCache(x=x, h_prev=h_prev, c_prev=c_prev, gates=gates, tanh_c=tanh_c)


def step_backward(params, dh, dstate, cache):
    """Undo one step. dh: (B, H) from the output.  dstate: (dh', dc') from step t+1.

    Returns dx (B, I), (dh_prev, dc_prev), grads of this step.
    """
    dh_next, dc_next = dstate
    dh_total = dh + dh_next                          # h' went to the output and to step t+1 (§2)
    da, dc_prev = gates_backward(dh_total, dc_next, cache.gates, cache.c_prev, cache.tanh_c)  # §3
    grads = step_weight_gradients(cache.x, cache.h_prev, da)   # undo x W_x, h W_h, the biases (§2)
    dx = da @ params["W_x"].T                                  # undo x W_x (§2)
    dh_prev = da @ params["W_h"].T                             # undo h_prev W_h (§2)
    return dx, (dh_prev, dc_prev), grads


# ------------------------------------------------- level 1: the textbook scans
def forward(params, xs, state0):
    """Run the sequence, one ``step_forward`` per step.

    xs: (T, B, I).  state0: (h0, c0), each (B, H).  Returns ys (T, B, H), (h_T, c_T), Cache.
    """
    def step(state, x):
        _, (h, c), step_cache = step_forward(params, x, state)
        return (h, c), (h, c, step_cache.gates, step_cache.tanh_c)   # what backward needs

    (hT, cT), (hs, cs, gates, tanh_cs) = scan(step, tuple(state0), xs)
    return hs, (hT, cT), Cache(xs=xs, h0=state0[0], c0=state0[1], hs=hs, cs=cs, gates=gates,
                               tanh_cs=tanh_cs)


def backward(params, dys, dstateT, cache):
    """Backpropagation through time, one ``step_backward`` per step, last step first.

    dys: (T, B, H) dL/d outputs.  dstateT: (dh_T, dc_T), each (B, H).  cache: from a forward.
    Returns dxs (T, B, I), (dh0, dc0), grads {"W_x", "W_h", "b_x", "b_h"} summed over steps.
    """
    def step(carry, inputs):
        dstate, total = carry
        dy, x, h_prev, c_prev, gates, tanh_c = inputs
        step_cache = StepCache(x=x, h_prev=h_prev, c_prev=c_prev, gates=gates, tanh_c=tanh_c)
        dx, dstate, grads = step_backward(params, dy, dstate, step_cache)     # undo step t (§3)
        return (dstate, {k: total[k] + grads[k] for k in total}), dx  # W is shared: sum over t (§2)

    zeros = {k: ops.xp_of(v).zeros_like(v) for k, v in params.items()}
    inputs = (dys, cache.xs, previous_states(cache.h0, cache.hs),
              previous_states(cache.c0, cache.cs), cache.gates, cache.tanh_cs)
    (dstate0, grads), dxs = scan(step, (tuple(dstateT), zeros), inputs,
                                 reverse=True)                  # t = T-1 ... 0 (§2)
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
    return hs, (hT, cT), Cache(xs=xs, h0=h0, c0=c0, hs=hs, cs=cs, gates=gates, tanh_cs=tanh_cs)


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
        da, dc_prev = gates_backward(dy + dh_next, dc_next, gates, c_prev, tanh_c)    # §3
        return (da @ W_hT, dc_prev), da          # undo h_prev W_h, the one per-step GEMM (§7)

    (dh0, dc0), das = scan(step, tuple(dstateT), (dys, cache.gates, c_prevs, cache.tanh_cs),
                           reverse=True)                        # collects every da_t (§7)
    h_prevs = previous_states(cache.h0, cache.hs)
    dxs, grads = weight_gradients(cache.xs, h_prevs, das, None, params["W_x"])  # undo x W_x, h W_h (§7)
    return dxs, (dh0, dc0), grads
