"""Gated recurrent unit, PyTorch's "reset-after" form and gate order (r, z, n)
(docs/derivations.md §4 "GRU"; every "§n" below is a section there):

    a_x = x W_x + b_x      a_h = h W_h + b_h        each (B, 3H) = [r | z | n] blocks
    r = σ(a_x,r + a_h,r)   z = σ(a_x,z + a_h,z)
    n = tanh(a_x,n + r ⊙ a_h,n)                     (the reset gate scales h W_hn + b_hn)
    h' = (1 - z) ⊙ n + z ⊙ h

Two levels, tested equal:
    level 1, the textbook: ``forward`` scans ``step_forward`` over time; ``backward``
        scans ``step_backward`` in reverse and adds up the weight gradients step by step.
    level 2, the same math rearranged (docs/derivations.md §7 "Level 2: the GEMMs
        hoisted out of the loop"): ``forward_hoisted`` / ``backward_hoisted``.

Level 1 is a ``scan``, not a ``for`` loop written out, for the reason ``lstm.py`` gives: the
step function is the recurrence and nothing else, and level 2 is the same scan of another step.

Because r multiplies only the hidden part of n, the input and hidden
pre-activations get different gradients: the backward collects two buffers,
``dax`` and ``dah``, where RNN and LSTM need one.

Memory of the training cache for one layer: gates 3·T·B·H + a_h,n 1·T·B·H +
h 1·T·B·H = 5·T·B·H, plus the inputs T·B·I (see ``cache_elements``).
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

NAME = "gru"
GATES = 3
HAS_CELL_STATE = False


class StepCache(NamedTuple):
    """What one step keeps for its backward pass (``step_backward``): the step's input, the
    state it started from, its post-activations, and a_h,n (the reset gate's backward needs it)."""
    x: Any        # (B, I) input
    h_prev: Any   # (B, H) hidden state entering the step
    gates: Any    # (B, 3H) post-activations [r, z, n]
    hn: Any       # (B, H) a_h,n = h W_hn + b_hn, the part the reset gate scales


class Cache(NamedTuple):
    """What a whole sequence keeps for its backward pass (``backward``, ``backward_hoisted`` and
    every engine): the StepCaches of all T steps, the states entering each step stored once, as
    h0 and the outputs (``previous_states`` rebuilds them)."""
    xs: Any       # (T, B, I) inputs
    h0: Any       # (B, H) initial hidden state
    hs: Any       # (T, B, H) hidden states after each step (= the outputs)
    gates: Any    # (T, B, 3H) post-activations [r, z, n]
    hns: Any      # (T, B, H) a_h,n of each step


def init_params(input_size, hidden_size, rng, backend, dtype):
    """W_x (I, 3H), W_h (H, 3H), b_x (3H,), b_h (3H,) ~ U(±1/sqrt(H))."""
    return init_fused_params(input_size, hidden_size, GATES, rng, backend, dtype)


def cache_elements(T, B, I, H):
    """Array elements a training forward keeps for one layer (the docstring's formula)."""
    return 5 * T * B * H + T * B * I


# ----------------------------------------------------------------- the gate math
def gates_forward(ax, ah, h_prev):
    """Elementwise part of a step.

    ax: (B, 3H) x W_x + b_x.  ah: (B, 3H) h W_h + b_h.  h_prev: (B, H).
    Returns h (B, H), gates (B, 3H) = [r, z, n], hn (B, H) = a_h,n.
    """
    H = h_prev.shape[-1]
    gates = ops.sigmoid(ax + ah)                      # r, z (n is overwritten next)
    r, z = gates[:, :H], gates[:, H:2 * H]
    hn = ah[:, 2 * H:]
    gates[:, 2 * H:] = ops.tanh(ax[:, 2 * H:] + r * hn)
    n = gates[:, 2 * H:]
    h = n + z * (h_prev - n)                          # = (1 - z) n + z h_prev
    return h, gates, hn


def gates_backward(dh, gates, hn, h_prev):
    """Undo ``gates_forward``. dh: (B, H) total dL/dh'.

    gates: (B, 3H).  hn, h_prev: (B, H).
    Returns dax (B, 3H), dah (B, 3H), and dh_prev through the z ⊙ h path (B, H).
    """
    H = h_prev.shape[-1]
    r, z, n = gates[:, :H], gates[:, H:2 * H], gates[:, 2 * H:]
    xp = ops.xp_of(gates)
    dn = dh * (1.0 - z)                               # undo h' = (1-z) n + z h: n (§4)
    dz = dh * (h_prev - n)                            # ... z (§4)
    dh_prev = dh * z                                  # ... h (§4)
    dan = ops.tanh_backward(dn, n)                    # undo n = tanh(a_x,n + r a_h,n) (§4)
    dax = xp.empty_like(gates)                        # dL/da_x, shaped like a_x (B, 3H)
    dax[:, :H] = ops.sigmoid_backward(dan * hn, r)    # undo r = σ(.), through r ⊙ a_h,n (§4)
    dax[:, H:2 * H] = ops.sigmoid_backward(dz, z)     # undo z = σ(.) (§4)
    dax[:, 2 * H:] = dan                              # undo a_x,n + ... (§4)
    dah = xp.empty_like(gates)                        # dL/da_h, shaped like a_h (B, 3H)
    dah[:, :2 * H] = dax[:, :2 * H]                   # r and z see a_x + a_h alike (§4) ...
    dah[:, 2 * H:] = dan * r                          # ... but a_h,n is scaled by r (§4)
    return dax, dah, dh_prev


# ------------------------------------------------------------------- one step
def step_forward(params, x, h_prev):
    """One time step. x: (B, I).  h_prev: (B, H).  Returns h' (B, H), h', StepCache."""
    ax = x @ params["W_x"] + params["b_x"]
    ah = h_prev @ params["W_h"] + params["b_h"]
    h, gates, hn = gates_forward(ax, ah, h_prev)
    return h, h, StepCache(x=x, h_prev=h_prev, gates=gates, hn=hn)


def step_backward(params, dh, dh_next, cache):
    """Undo one step. dh: (B, H) from the output; dh_next: (B, H) from step t+1.

    Returns dx (B, I), dh_prev (B, H), grads of this step.
    """
    dh_total = dh + dh_next                          # h' went to the output and to step t+1 (§2)
    dax, dah, dh_prev = gates_backward(dh_total, cache.gates, cache.hn, cache.h_prev)   # §4
    grads = step_weight_gradients(cache.x, cache.h_prev, dax, dah)  # undo x W_x, h W_h, biases (§4)
    dx = dax @ params["W_x"].T                                      # undo x W_x (§4)
    dh_prev = dh_prev + dah @ params["W_h"].T                       # undo h_prev W_h (§4)
    return dx, dh_prev, grads


# ------------------------------------------------- level 1: the textbook scans
def forward(params, xs, h0):
    """Run the sequence, one ``step_forward`` per step.

    xs: (T, B, I).  h0: (B, H).  Returns ys (T, B, H), h_T (B, H), Cache.
    """
    def step(h, x):
        h, _, step_cache = step_forward(params, x, h)
        return h, (h, step_cache.gates, step_cache.hn)      # what backward needs

    hT, (hs, gates, hns) = scan(step, h0, xs)
    return hs, hT, Cache(xs=xs, h0=h0, hs=hs, gates=gates, hns=hns)


def backward(params, dys, dhT, cache):
    """Backpropagation through time, one ``step_backward`` per step, last step first.

    dys: (T, B, H) dL/d outputs.  dhT: (B, H) at the final state.  cache: from a forward.
    Returns dxs (T, B, I), dh0 (B, H), grads {"W_x", "W_h", "b_x", "b_h"} summed over steps.
    """
    def step(carry, inputs):
        dh_next, total = carry
        dy, x, h_prev, gates, hn = inputs
        step_cache = StepCache(x=x, h_prev=h_prev, gates=gates, hn=hn)
        dx, dh_prev, grads = step_backward(params, dy, dh_next, step_cache)    # undo step t (§4)
        return (dh_prev, {k: total[k] + grads[k] for k in total}), dx  # W is shared: sum over t (§2)

    zeros = {k: ops.xp_of(v).zeros_like(v) for k, v in params.items()}
    inputs = (dys, cache.xs, previous_states(cache.h0, cache.hs), cache.gates, cache.hns)
    (dh0, grads), dxs = scan(step, (dhT, zeros), inputs, reverse=True)    # t = T-1 ... 0 (§2)
    return dxs, dh0, grads


# ------------------------------------------- level 2: the GEMMs out of the loop
def forward_hoisted(params, xs, h0):
    """``forward`` with the input GEMM of all T steps done once before the loop.

    xs: (T, B, I).  h0: (B, H).  Returns ys (T, B, H), h_T (B, H), Cache.
    """
    W_h, b_h = params["W_h"], params["b_h"]
    ax = input_projection(xs, params["W_x"], params["b_x"])        # one GEMM, all T

    def step(h, ax_t):
        h, gates, hn = gates_forward(ax_t, h @ W_h + b_h, h)
        return h, (h, gates, hn)

    hT, (hs, gates, hns) = scan(step, h0, ax)
    return hs, hT, Cache(xs=xs, h0=h0, hs=hs, gates=gates, hns=hns)


def backward_hoisted(params, dys, dhT, cache):
    """``backward`` with the weight and input gradients as one GEMM each after the loop.

    dys: (T, B, H).  dhT: (B, H).  Returns dxs (T, B, I), dh0 (B, H), grads.
    """
    W_hT = params["W_h"].T
    h_prevs = previous_states(cache.h0, cache.hs)

    def step(dh_next, inputs):
        dy, gates, hn, h_prev = inputs
        dax, dah, dh_prev = gates_backward(dy + dh_next, gates, hn, h_prev)          # §4
        return dh_prev + dah @ W_hT, (dax, dah)       # undo h_prev W_h, the one per-step GEMM (§7)

    dh0, (daxs, dahs) = scan(step, dhT, (dys, cache.gates, cache.hns, h_prevs),
                             reverse=True)                 # collects every da_t, two buffers (§7)
    dxs, grads = weight_gradients(cache.xs, h_prevs, daxs, dahs, params["W_x"])  # undo x W_x, h W_h (§7)
    return dxs, dh0, grads
