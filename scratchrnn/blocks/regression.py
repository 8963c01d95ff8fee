"""Sequence regression: a recurrent stack and a linear head predict a real vector per step,
trained with mean squared error, by teacher forcing or free running.

    model = SequenceRegressor(scratchrnn.RNN(1, 32, seed=0), seed=0)
    loss, _ = model.loss(xs, targets)                    # teacher forcing: every input given
    loss, _ = model.loss(xs, targets, warm_start=10)     # free running after 10 given steps
    dxs, dstate0 = model.backward()                      # adds into model.grads

Per step t (the head maps the top layer's h_t (B, H) to y_t (B, O)):

    y_t = h_t W + b
    teacher forcing:   input_t = xs[t]                   for every t
    free running:      input_t = xs[t]  for t < k,       input_t = y_{t-1}  for t >= k

Teacher forcing is the ordinary path: the layer's scan over the whole sequence. Free
running steps the cells one at a time (``scratchrnn.blocks.stepping``), and its backward
carries the gradient through every fed-back output, y_{t-1} -> input_t
(docs/derivations.md, section 10). Feeding outputs back needs O = I.

``params``/``grads`` are flat dicts ("rnn.l0.W_x", ..., "head.W", "head.b") holding the
parts' own arrays, so an optimizer updating them in place trains the model.
"""
from __future__ import annotations

from typing import Any, NamedTuple

from scratchrnn.blocks.heads import mean_squared_error
from scratchrnn.blocks.linear import Linear
from scratchrnn.blocks.module import Module
from scratchrnn.blocks.stepping import (
    check_steppable,
    initial_cell_states,
    join_state,
    stack_step_backward,
    stack_step_forward,
)
from scratchrnn.core.backend import host_rng
from scratchrnn.core.errors import ConfigError, ShapeError
from scratchrnn.core.validation import positive_int


class FreeRunCache(NamedTuple):
    """What a free-running forward keeps for its backward."""
    warm_start: int     # k: steps t < k read the given input
    steps: list         # per step t: the list of L cell StepCaches
    hs: Any             # (T, B, H) top-layer outputs


class SequenceRegressor(Module):
    """A layer (``scratchrnn.RNN``/``GRU``/``LSTM``, any number of layers) with a linear head.

    layer: the recurrent stack, time-major (batch_first=False).
    output_size: O, the width of y_t; default the layer's input size I (needed to feed
        outputs back as inputs).
    seed: draws the head's weights (the layer was seeded when it was built).
    """

    def __init__(self, layer, output_size=None, seed=None):
        if layer.batch_first:
            raise ConfigError("SequenceRegressor needs a time-major layer (batch_first=False).")
        self.rnn = layer
        self.backend, self.xp, self.dtype = layer.backend, layer.xp, layer.dtype
        self.output_size = layer.input_size if output_size is None else positive_int(
            "output_size", output_size)
        self.head = Linear(layer.hidden_size, self.output_size, host_rng(seed), self.backend,
                           self.dtype)
        self.gather([("rnn", self.rnn), ("head", self.head)])
        self._cache = None        # FreeRunCache, or None after a teacher-forced forward
        self._shape = None        # (T, B) of the last forward
        self._dys = None          # dL/dys of the last ``loss``

    def train(self, mode=True):
        self.rnn.train(mode)
        return self

    # ---------------------------------------------------------------- forward
    def forward(self, xs, state=None, warm_start=None):
        """Predict every step.

        xs: (T, B, I) inputs; with ``warm_start=k`` only xs[:k] is read.
        state: the layer's initial state, h (L, B, H) or (h, c) for LSTM; None for zeros.
        warm_start: None for teacher forcing; an int k >= 1 for free running after k
            given steps (k >= T reads every input, as teacher forcing does).
        Returns ys (T, B, O) and the final state (stacked like ``state``).
        """
        xs = self._as_inputs(xs)
        T, B, _ = xs.shape
        self._shape = (T, B)
        if warm_start is None:
            self._cache = None
            hs, stateT = self.rnn.forward(xs, state)                      # the ordinary path
            return self.head.forward(hs.reshape(T * B, -1)).reshape(T, B, -1), stateT
        k = positive_int("warm_start", warm_start)
        if self.output_size != self.rnn.input_size:
            raise ConfigError(f"free running feeds outputs back as inputs, so output_size "
                              f"({self.output_size}) must equal input_size "
                              f"({self.rnn.input_size}).")
        check_steppable(self.rnn)
        states = initial_cell_states(self.rnn, state, B)
        ys = self.xp.empty((T, B, self.output_size), dtype=self.dtype)
        hs = self.xp.empty((T, B, self.rnn.hidden_size), dtype=self.dtype)
        step_caches = []
        for t in range(T):
            x_t = xs[t] if t < k else ys[t - 1]                           # feed y_{t-1} back
            hs[t], states, caches = stack_step_forward(self.rnn, x_t, states)
            ys[t] = hs[t] @ self.head.params["W"] + self.head.params["b"]
            step_caches.append(caches)
        self._cache = FreeRunCache(k, step_caches, hs)
        return ys, join_state(self.rnn, states)

    def loss(self, xs, targets, state=None, warm_start=None):
        """Mean squared error of ``forward(xs, state, warm_start)`` against targets (T, B, O).

        Returns (loss as a Python float, final state); keeps dL/dys for ``backward``.
        """
        ys, stateT = self.forward(xs, state, warm_start)
        loss, self._dys = mean_squared_error(ys, targets)                 # keeps dL/dys
        return loss, stateT

    # --------------------------------------------------------------- backward
    def backward(self, dys=None, dstate=None):
        """Backpropagate through the last forward; adds into ``grads``.

        dys: (T, B, O) dL/dys, or None for the gradient of the last ``loss``.
        dstate: dL/d(final state), stacked like the state, or None for zeros.
        Returns dxs (T, B, I) (zero where an input was not read) and dL/d(initial state).
        """
        if self._shape is None:
            raise RuntimeError("backward() needs a forward() or loss() first.")
        if dys is None:
            if self._dys is None:
                raise RuntimeError("backward() without dys needs loss() first.")
            dys = self._dys
        T, B = self._shape
        dys = self.xp.asarray(dys, dtype=self.dtype)
        if dys.shape != (T, B, self.output_size):
            raise ShapeError(f"dys must have shape {(T, B, self.output_size)}, "
                             f"got {tuple(dys.shape)}.")
        if self._cache is None:                                           # teacher forcing
            dhs = self.head.backward(dys.reshape(T * B, -1))              # undo y = h W + b
            return self.rnn.backward(dhs.reshape(T, B, -1), dstate)       # undo the scan (BPTT)
        return self._free_run_backward(dys, dstate)

    def _free_run_backward(self, dys, dstate):
        """BPTT through the fed-back outputs (docs/derivations.md, section 10)."""
        c, xp = self._cache, self.xp
        T = dys.shape[0]
        W = self.head.params["W"]
        dstates = initial_cell_states(self.rnn, dstate, dys.shape[1], "dstate")   # None: zeros
        dxs = xp.zeros((T,) + dys.shape[1:-1] + (self.rnn.input_size,), dtype=self.dtype)
        dy_fed = xp.zeros_like(dys[0])          # dL/dy_t through input_{t+1} = y_t (section 10)
        for t in reversed(range(T)):
            dy = dys[t] + dy_fed                                          # y_t's two uses
            self.head.grads["W"] += c.hs[t].T @ dy                        # undo h_t W
            self.head.grads["b"] += dy.sum(axis=0)                        # undo + b
            dh = dy @ W.T                                                 # into h_t
            dx, dstates = stack_step_backward(self.rnn, dh, dstates, c.steps[t])  # undo the step
            if t >= c.warm_start:
                dy_fed = dx                                               # undo input_t = y_{t-1}
            else:
                dxs[t], dy_fed = dx, xp.zeros_like(dy_fed)                # input_t = xs[t], given
        return dxs, join_state(self.rnn, dstates)

    # ---------------------------------------------------------------- helpers
    def _as_inputs(self, xs):
        xs = self.xp.asarray(xs, dtype=self.dtype)
        if xs.ndim != 3 or xs.shape[2] != self.rnn.input_size or 0 in xs.shape[:2]:
            raise ShapeError(f"inputs must have shape (T, B, {self.rnn.input_size}), "
                             f"got {tuple(xs.shape)}.")
        return xs
