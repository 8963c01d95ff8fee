"""An LSTM stack whose top layer attends over its own last K outputs, in the manner of
TensorFlow's ``AttentionCellWrapper``; equations and backward in docs/derivations.md,
section 9.

    model = AttentionLSTM(input_size=8, hidden_size=16, num_layers=2, attn_length=5, seed=0)
    ys, state = model.forward(x)                 # x (T, B, I) -> ys (T, B, H)
    dx, dstate0 = model.backward(dys)            # adds into model.grads

The layers below the top are a plain ``scratchrnn.LSTM`` (one scan). The top layer is
stepped; at step t, with u_t (B, I') its input from below (I' = H, or I for one layer),
a_{t-1} (B, H) the previous read-out and M_{t-1} (B, K, H) the window of its last K
outputs (oldest first; zeros at the start)::

    x̃_t = [u_t, a_{t-1}] W_in + b_in               (B, I')   input and read-out, projected
    (h_t, c_t) = LSTM step(x̃_t, (h_{t-1}, c_{t-1}))
    q_t = [c_t, h_t]                                 (B, 2H)   the new state is the query
    e_tj = tanh(M_{t-1,j} W_k + q_t W_q + b_q)       (B, K, D) additive attention
    s_tj = e_tj · v                                  (B, K)
    α_t = softmax_j(s_t)                             (B, K)
    a_t = Σ_j α_tj M_{t-1,j}                          (B, H)    the read-out
    o_t = [h_t, a_t] W_out + b_out                   (B, H)    the output
    M_t = [M_{t-1,2..K}, o_t]                        the window shifts in o_t

The state carried between calls is ``AttentionState(h, c, read, window)``.
``params``/``grads`` are flat dicts: "lower.l{k}.*" for the layers below, "top.W_x",
"top.W_h", "top.b_x", "top.b_h" for the top cell, and "attn.*" for the attention.
"""
from __future__ import annotations

import math
from typing import Any, NamedTuple

from scratchrnn.blocks.layers import LSTM
from scratchrnn.blocks.module import Module
from scratchrnn.book import ops
from scratchrnn.book.cells import lstm as lstm_cell
from scratchrnn.core.backend import get_backend, host_rng
from scratchrnn.core.errors import ConfigError, ShapeError
from scratchrnn.core.validation import positive_int


class AttentionState(NamedTuple):
    """The recurrent state of an ``AttentionLSTM``."""
    h: Any        # (L, B, H) hidden state of every layer
    c: Any        # (L, B, H) cell state of every layer
    read: Any     # (B, H) the last attention read-out a_t
    window: Any   # (B, K, H) the top layer's last K outputs, oldest first


class StepCache(NamedTuple):
    """What one attention step keeps for its backward (section 9)."""
    u: Any        # (B, I') input from the layer below
    read_prev: Any  # (B, H) a_{t-1}
    cell: Any     # the LSTM cell's StepCache
    h: Any        # (B, H) h_t
    q: Any        # (B, 2H) [c_t, h_t]
    window: Any   # (B, K, H) M_{t-1}, the window attended over
    e: Any        # (B, K, D) tanh features
    alpha: Any    # (B, K) attention weights
    read: Any     # (B, H) a_t


def _uniform(rng, fan_in, shape, backend, dtype):
    k = 1.0 / math.sqrt(fan_in)
    return backend.asarray(rng.uniform(-k, k, shape), dtype)


class AttentionLSTM(Module):
    """A stack of ``num_layers`` LSTMs, the top one attending over its last ``attn_length``
    outputs.

    input_size: I.  hidden_size: H (also the width of the outputs and of the window).
    num_layers: L >= 1 (L-1 plain layers below the attending one).
    attn_length: K, how many past outputs the window holds.
    attn_vec_size: D, the width of the attention features (default H).
    forget_bias, backend, dtype, seed: as for ``scratchrnn.LSTM``.
    """

    def __init__(self, input_size, hidden_size, num_layers=2, attn_length=4, attn_vec_size=None,
                 forget_bias=None, backend=None, dtype="float32", seed=None, bidirectional=False):
        if bidirectional:
            raise ConfigError("AttentionLSTM steps its top layer forward in time, attending "
                              "over past outputs, so it cannot be bidirectional.")
        self.input_size = positive_int("input_size", input_size)
        self.hidden_size = H = positive_int("hidden_size", hidden_size)
        self.num_layers = positive_int("num_layers", num_layers)
        self.attn_length = positive_int("attn_length", attn_length)
        D = self.attn_vec_size = H if attn_vec_size is None else positive_int(
            "attn_vec_size", attn_vec_size)
        self.backend = get_backend(backend)
        self.xp = self.backend.xp
        self.dtype = self.backend.dtype(dtype)
        self.batch_first, self.training = False, True
        self.lower = (LSTM(input_size, H, self.num_layers - 1, backend=self.backend,
                           dtype=self.dtype, seed=seed, forget_bias=forget_bias)
                      if self.num_layers > 1 else None)
        I_top = self.top_input_size = H if self.num_layers > 1 else self.input_size
        rng = host_rng(None if seed is None else seed + 1)
        be, dt = self.backend, self.dtype
        self.top = lstm_cell.init_params(I_top, H, rng, be, dt, forget_bias=forget_bias)
        self.attn = {"W_in": _uniform(rng, I_top + H, (I_top + H, I_top), be, dt),
                     "b_in": _uniform(rng, I_top + H, (I_top,), be, dt),
                     "W_k": _uniform(rng, H, (H, D), be, dt),
                     "W_q": _uniform(rng, 2 * H, (2 * H, D), be, dt),
                     "b_q": _uniform(rng, 2 * H, (D,), be, dt),
                     "v": _uniform(rng, D, (D,), be, dt),
                     "W_out": _uniform(rng, 2 * H, (2 * H, H), be, dt),
                     "b_out": _uniform(rng, 2 * H, (H,), be, dt)}
        self.params, self.grads = {}, {}
        if self.lower is not None:
            self.params.update({f"lower.{k}": v for k, v in self.lower.params.items()})
            self.grads.update({f"lower.{k}": v for k, v in self.lower.grads.items()})
        for prefix, part in (("top", self.top), ("attn", self.attn)):
            self.params.update({f"{prefix}.{k}": v for k, v in part.items()})
            self.grads.update({f"{prefix}.{k}": self.xp.zeros_like(v) for k, v in part.items()})
        self._caches = None

    @property
    def caches(self):
        """Per step, the ``StepCache`` of the last forward (read-only; e.g. ``.alpha``, the
        attention weights (B, K)); None before a forward."""
        return None if self._caches is None else tuple(self._caches)

    # ---- modes, grads, state
    def train(self, mode=True):
        super().train(mode)
        if self.lower is not None:
            self.lower.train(mode)
        return self

    def zero_state(self, batch_size):
        """The all-zero AttentionState for a batch of ``batch_size``."""
        L, H, K = self.num_layers, self.hidden_size, self.attn_length
        z = lambda *shape: self.xp.zeros(shape, self.dtype)          # noqa: E731
        return AttentionState(z(L, batch_size, H), z(L, batch_size, H), z(batch_size, H),
                              z(batch_size, K, H))

    def _as_state(self, state, B, what):
        if state is None:
            return self.zero_state(B)
        want = self.zero_state(B)
        if not isinstance(state, tuple) or len(state) != 4:
            raise ShapeError(f"{what} must be an AttentionState(h, c, read, window).")
        arrays = [self.xp.asarray(a, dtype=self.dtype) for a in state]
        for name, a, w in zip(AttentionState._fields, arrays, want):
            if a.shape != w.shape:
                raise ShapeError(f"{what}.{name} must have shape {tuple(w.shape)}, "
                                 f"got {tuple(a.shape)}.")
        return AttentionState(*arrays)

    # ---- one attention step of the top layer (section 9)
    def _step_forward(self, u, carry):
        (h, c), read_prev, window = carry
        p, H = self.attn, self.hidden_size
        x_in = self.xp.concatenate([u, read_prev], axis=1) @ p["W_in"] + p["b_in"]
        h, (h, c), cell_cache = lstm_cell.step_forward(self.top, x_in, (h, c))
        q = self.xp.concatenate([c, h], axis=1)
        e = ops.tanh(window @ p["W_k"] + (q @ p["W_q"] + p["b_q"])[:, None, :])
        alpha = ops.softmax(e @ p["v"])
        read = (alpha[:, :, None] * window).sum(axis=1)
        out = h @ p["W_out"][:H] + read @ p["W_out"][H:] + p["b_out"]
        new_window = self.xp.concatenate([window[:, 1:], out[:, None, :]], axis=1)
        cache = StepCache(u, read_prev, cell_cache, h, q, window, e, alpha, read)
        return out, ((h, c), read, new_window), cache

    def _step_backward(self, dout, dcarry, cache):
        """Undo one step (docs/derivations.md, section 9, line by line).

        dout: (B, H) from above; dcarry: gradients at what the step carried on
        ((dh, dc), dread, dwindow). Returns du (B, I') and the gradients at what entered
        the step, in the same form."""
        (dh_next, dc_next), dread, dwindow = dcarry
        p, g, H = self.attn, self.grads, self.hidden_size
        dout = dout + dwindow[:, -1]                                   # undo the shift: o_t's slot
        dwindow_prev = self.xp.zeros_like(dwindow)
        dwindow_prev[:, 1:] = dwindow[:, :-1]                          # undo the shift: the rest
        g["attn.W_out"][:H] += cache.h.T @ dout                        # undo o = [h, a] W_out + b
        g["attn.W_out"][H:] += cache.read.T @ dout
        g["attn.b_out"] += dout.sum(axis=0)
        dh = dout @ p["W_out"][:H].T
        dread = dread + dout @ p["W_out"][H:].T                        # a_t: output and next input
        dalpha = (dread[:, None, :] * cache.window).sum(axis=2)        # undo a = Σ α_j M_j
        dwindow_prev += cache.alpha[:, :, None] * dread[:, None, :]
        ds = ops.softmax_backward(dalpha, cache.alpha)                 # undo α = softmax(s)
        g["attn.v"] += (ds[:, :, None] * cache.e).sum(axis=(0, 1))     # undo s = e · v
        dpre = ops.tanh_backward(ds[:, :, None] * p["v"], cache.e)     # undo e = tanh(...)
        g["attn.W_k"] += cache.window.reshape(-1, H).T @ dpre.reshape(-1, dpre.shape[2])
        dwindow_prev += dpre @ p["W_k"].T                              # undo M W_k
        dquery = dpre.sum(axis=1)                                      # undo the broadcast over j
        g["attn.W_q"] += cache.q.T @ dquery                            # undo q W_q + b_q
        g["attn.b_q"] += dquery.sum(axis=0)
        dq = dquery @ p["W_q"].T
        dc = dc_next + dq[:, :H]                                       # undo q = [c, h]
        dh = dh + dq[:, H:]
        dx_in, (dh_prev, dc_prev), cell_grads = lstm_cell.step_backward(   # undo the LSTM step
            self.top, dh, (dh_next, dc), cache.cell)
        for name, cg in cell_grads.items():
            g[f"top.{name}"] += cg
        u_read = self.xp.concatenate([cache.u, cache.read_prev], axis=1)
        g["attn.W_in"] += u_read.T @ dx_in                             # undo [u, a] W_in + b_in
        g["attn.b_in"] += dx_in.sum(axis=0)
        du_dread = dx_in @ p["W_in"].T
        I_top = self.top_input_size
        return du_dread[:, :I_top], ((dh_prev, dc_prev), du_dread[:, I_top:], dwindow_prev)

    # ---- the passes
    def forward(self, x, state=None):
        """x: (T, B, I).  state: AttentionState or None (zeros).

        Returns ys (T, B, H), the top layer's outputs o_t, and the final AttentionState.
        """
        xs = self.xp.asarray(x, dtype=self.dtype)
        if xs.ndim != 3 or xs.shape[2] != self.input_size or 0 in xs.shape[:2]:
            raise ShapeError(f"input must have shape (T, B, {self.input_size}), "
                             f"got {tuple(xs.shape)}.")
        T, B, _ = xs.shape
        s0 = self._as_state(state, B, "initial state")
        if self.lower is not None:
            us, (h_low, c_low) = self.lower.forward(xs, (s0.h[:-1], s0.c[:-1]))
        else:
            us = xs
        carry = ((s0.h[-1], s0.c[-1]), s0.read, s0.window)
        ys = self.xp.empty((T, B, self.hidden_size), dtype=self.dtype)
        self._caches = []
        for t in range(T):
            ys[t], carry, cache = self._step_forward(us[t], carry)
            self._caches.append(cache)
        (hT, cT), read, window = carry
        if self.lower is not None:
            hT, cT = self.xp.concatenate([h_low, hT[None]]), self.xp.concatenate([c_low, cT[None]])
        else:
            hT, cT = hT[None], cT[None]
        return ys, AttentionState(hT, cT, read, window)

    def backward(self, dy, dstate=None):
        """dy: (T, B, H) dL/dys.  dstate: AttentionState of gradients at the final state,
        or None for zeros.  Adds into ``grads``; returns dx (T, B, I) and the gradient at
        the initial state (an AttentionState)."""
        if self._caches is None:
            raise RuntimeError("backward() needs a forward() first.")
        T, B = len(self._caches), self._caches[0].u.shape[0]
        dys = self.xp.asarray(dy, dtype=self.dtype)
        if dys.shape != (T, B, self.hidden_size):
            raise ShapeError(f"dy must have shape {(T, B, self.hidden_size)}, "
                             f"got {tuple(dys.shape)}.")
        dT = self._as_state(dstate, B, "dstate")
        dcarry = ((dT.h[-1], dT.c[-1]), dT.read, dT.window)
        dus = self.xp.empty((T, B, self.top_input_size), dtype=self.dtype)
        for t in reversed(range(T)):                                   # BPTT through the top
            dus[t], dcarry = self._step_backward(dys[t], dcarry, self._caches[t])
        (dh0, dc0), dread0, dwindow0 = dcarry
        if self.lower is None:
            return dus, AttentionState(dh0[None], dc0[None], dread0, dwindow0)
        dxs, (dh_low, dc_low) = self.lower.backward(dus, (dT.h[:-1], dT.c[:-1]))  # undo the stack
        return dxs, AttentionState(self.xp.concatenate([dh_low, dh0[None]]),
                                   self.xp.concatenate([dc_low, dc0[None]]), dread0, dwindow0)

    __call__ = forward
