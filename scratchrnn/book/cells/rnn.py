"""The vanilla (Elman) RNN, PyTorch's equation (docs/derivations.md §2 "The vanilla RNN";
every "§n" below is a section there):

    h' = act(x W_x + b_x + h W_h + b_h)          act = tanh or relu

Two levels, tested equal:
    level 1, the textbook: ``forward`` scans ``step_forward`` over time; ``backward``
        scans ``step_backward`` in reverse and adds up the weight gradients step by step.
    level 2, the same math rearranged (docs/derivations.md §7 "Level 2: the GEMMs
        hoisted out of the loop"): ``forward_hoisted`` / ``backward_hoisted``.

Level 1 is a ``scan``, not a ``for`` loop written out, for the reason ``lstm.py`` gives: the
step function is the recurrence and nothing else, and level 2 is the same scan of another step.

``identity_init=True`` sets W_h = I and the biases to 0 (the IRNN of Le, Jaitly &
Hinton 2015, meant for relu).

Memory of the training cache for one layer: h 1·T·B·H (the derivative is taken from
h itself), plus the inputs T·B·I (see ``cache_elements``).
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
from scratchrnn.core.errors import ConfigError

NAME = "rnn"
GATES = 1
HAS_CELL_STATE = False


class StepCache(NamedTuple):
    """What one step keeps for its backward pass (``step_backward``): the step's input, the
    state it started from, and its output, from which act' is taken (no pre-activation kept)."""
    x: Any        # (B, I) input
    h_prev: Any   # (B, H) hidden state entering the step
    h: Any        # (B, H) act(a), the output


class Cache(NamedTuple):
    """What a whole sequence keeps for its backward pass (``backward``, ``backward_hoisted`` and
    every engine): the inputs, h0 and the outputs; the state entering step t is the output of
    step t-1 (``previous_states`` rebuilds it)."""
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


def activation(nonlinearity):
    """(act, act_backward) for "tanh" or "relu" (``ops.ACTIVATIONS``); ConfigError otherwise."""
    try:
        return ops.ACTIVATIONS[nonlinearity]
    except (KeyError, TypeError):
        raise ConfigError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}.") from None


# ------------------------------------------------------------------- one step
def step_forward(params, x, h_prev, nonlinearity="tanh"):
    """One time step. x: (B, I).  h_prev: (B, H).  Returns h' (B, H), h', StepCache."""
    act, _ = activation(nonlinearity)
    h = act(x @ params["W_x"] + params["b_x"] + h_prev @ params["W_h"] + params["b_h"])
    return h, h, StepCache(x=x, h_prev=h_prev, h=h)


def step_backward(params, dh, dh_next, cache, nonlinearity="tanh"):
    """Undo one step. dh: (B, H) from the output; dh_next: (B, H) from step t+1.

    Returns dx (B, I), dh_prev (B, H), grads of this step.
    """
    _, act_backward = activation(nonlinearity)
    dh_total = dh + dh_next                          # h' went to the output and to step t+1 (§2)
    da = act_backward(dh_total, cache.h)                         # undo h = act(a) (§2)
    grads = step_weight_gradients(cache.x, cache.h_prev, da)     # undo x W_x, h W_h, the biases (§2)
    dx = da @ params["W_x"].T                                    # undo x W_x (§2)
    dh_prev = da @ params["W_h"].T                               # undo h_prev W_h (§2)
    return dx, dh_prev, grads


# ------------------------------------------------- level 1: the textbook scans
def forward(params, xs, h0, nonlinearity="tanh"):
    """Run the sequence, one ``step_forward`` per step.

    xs: (T, B, I).  h0: (B, H).  Returns ys (T, B, H), h_T (B, H), Cache.
    """
    def step(h, x):
        h, _, _ = step_forward(params, x, h, nonlinearity)
        return h, h

    hT, hs = scan(step, h0, xs)
    return hs, hT, Cache(xs=xs, h0=h0, hs=hs)


def backward(params, dys, dhT, cache, nonlinearity="tanh"):
    """Backpropagation through time, one ``step_backward`` per step, last step first.

    dys: (T, B, H) dL/d outputs.  dhT: (B, H) at the final state.  cache: from a forward.
    Returns dxs (T, B, I), dh0 (B, H), grads {"W_x", "W_h", "b_x", "b_h"} summed over steps.
    """
    def step(carry, inputs):
        dh_next, total = carry
        dy, x, h_prev, h = inputs
        step_cache = StepCache(x=x, h_prev=h_prev, h=h)
        dx, dh_prev, grads = step_backward(params, dy, dh_next, step_cache,
                                           nonlinearity)                 # undo step t (§2)
        return (dh_prev, {k: total[k] + grads[k] for k in total}), dx  # W is shared: sum over t (§2)

    zeros = {k: ops.xp_of(v).zeros_like(v) for k, v in params.items()}
    h_prevs = previous_states(cache.h0, cache.hs)
    (dh0, grads), dxs = scan(step, (dhT, zeros), (dys, cache.xs, h_prevs, cache.hs),
                             reverse=True)                       # t = T-1 ... 0 (§2)
    return dxs, dh0, grads


# ------------------------------------------- level 2: the GEMMs out of the loop
def forward_hoisted(params, xs, h0, nonlinearity="tanh"):
    """``forward`` with the input GEMM of all T steps done once before the loop.

    xs: (T, B, I).  h0: (B, H).  Returns ys (T, B, H), h_T (B, H), Cache.
    """
    act, _ = activation(nonlinearity)
    W_h = params["W_h"]
    ax = input_projection(xs, params["W_x"], params["b_x"] + params["b_h"])  # one GEMM, all T

    def step(h, ax_t):
        h = act(ax_t + h @ W_h)                     # h' = act(a_x + h W_h)
        return h, h

    hT, hs = scan(step, h0, ax)
    return hs, hT, Cache(xs=xs, h0=h0, hs=hs)


def backward_hoisted(params, dys, dhT, cache, nonlinearity="tanh"):
    """``backward`` with the weight and input gradients as one GEMM each after the loop.

    dys: (T, B, H).  dhT: (B, H).  Returns dxs (T, B, I), dh0 (B, H), grads.
    """
    _, act_backward = activation(nonlinearity)
    W_hT = params["W_h"].T

    def step(dh_next, inputs):
        dy, h = inputs
        da = act_backward(dy + dh_next, h)          # undo h = act(a) (§2)
        return da @ W_hT, da                        # undo h_prev W_h, the one per-step GEMM (§7)

    dh0, das = scan(step, dhT, (dys, cache.hs), reverse=True)   # collects every da_t (§7)
    h_prevs = previous_states(cache.h0, cache.hs)
    dxs, grads = weight_gradients(cache.xs, h_prevs, das, None, params["W_x"])  # undo x W_x, h W_h (§7)
    return dxs, dh0, grads
