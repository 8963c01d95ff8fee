"""The layer classes ``RNN``, ``GRU`` and ``LSTM``: a stack of cells with PyTorch's interface.

    lstm = LSTM(input_size=8, hidden_size=16, num_layers=2)
    y, (h, c) = lstm.forward(x)           # x (T, B, I) -> y (T, B, H); h, c (L, B, H)
    dx, (dh0, dc0) = lstm.backward(dy)    # accumulates into lstm.grads
    lstm.zero_grad()

What runs is chosen by ``engine=``: "textbook" (the cells' step-by-step scans),
"reference" (the cells with the GEMMs hoisted out of the loop), "fast" (the fast
engine of the backend) or "auto" (the default: fast where it exists); see
``scratchrnn.engines``. ``layer.engine`` names the one that runs.

Parameters live in a flat dict ``params`` with keys ``"l{k}.W_x"``, ``"l{k}.W_h"``,
``"l{k}.b_x"``, ``"l{k}.b_h"`` for layer k (layout in ``cells/common.py``);
``grads`` has the same keys. Dropout (inverted, rate p) is applied to the output of
every layer but the last, in training mode only, and its mask is reused by backward.
"""
from __future__ import annotations

from scratchrnn import engines
from scratchrnn.core.backend import get_backend, host_rng
from scratchrnn.book.cells import gru, lstm, rnn
from scratchrnn.core.errors import ConfigError, ShapeError
from scratchrnn.blocks.module import Module
from scratchrnn.core.validation import finite_float, positive_int, real_array

PARAM_NAMES = ("W_x", "W_h", "b_x", "b_h")


class Recurrent(Module):
    """A stack of ``num_layers`` cells of one kind; subclasses pick the cell.

    backend: "numpy", "cupy", "auto", a Backend, or None for ``$SCRATCHRNN_BACKEND``
    (numpy when unset).  dtype: "float32" (default) or "float64".  seed: weights and
    dropout masks are drawn from it (the same seed gives the same weights on CPU and GPU).
    engine: "auto", "textbook", "reference", "fast", or None for ``$SCRATCHRNN_ENGINE``
    (auto when unset); ``self.engine`` is the name of the engine that runs.
    """

    cell = None          # the cell module (cells/rnn.py, cells/gru.py, cells/lstm.py)

    def __init__(self, input_size, hidden_size, num_layers=1, dropout=0.0, batch_first=False,
                 backend=None, dtype="float32", seed=None, engine=None, **cell_options):
        self.input_size = input_size = positive_int("input_size", input_size)
        self.hidden_size = hidden_size = positive_int("hidden_size", hidden_size)
        self.num_layers = num_layers = positive_int("num_layers", num_layers)
        self.dropout = finite_float("dropout", dropout, 0.0, 1.0, high_open=True)
        self.batch_first = bool(batch_first)
        self.backend = get_backend(backend)
        self.xp = self.backend.xp
        self.dtype = self.backend.dtype(dtype)
        self.training = True
        self._init_options, self._step_options = self._split_options(cell_options)
        self._engine = engines.resolve(engine, self.cell, self.backend)
        self.engine = self._engine.name

        rng = host_rng(seed)
        self.params = {}
        for k in range(num_layers):
            layer_in = input_size if k == 0 else hidden_size
            p = self.cell.init_params(layer_in, hidden_size, rng, self.backend, self.dtype,
                                      **self._init_options)
            self.params.update({f"l{k}.{n}": p[n] for n in PARAM_NAMES})
        self.grads = {k: self.xp.zeros_like(v) for k, v in self.params.items()}
        self._dropout_rng = self.backend.rng(seed)
        self._caches = None          # per layer: the cell's Cache
        self._masks = None           # per layer below the top: dropout mask or None

    @property
    def caches(self):
        """Per layer, the cell's ``Cache`` of the last forward (read-only); None before one."""
        return None if self._caches is None else tuple(self._caches)

    @property
    def cell_options(self):
        """The options every step of the cell takes, e.g. {"nonlinearity": "tanh"} (a copy)."""
        return dict(self._step_options)

    def clear_caches(self):
        """Drop the last forward's caches (frees their memory; backward needs a new forward)."""
        self._caches = None
        self._masks = None

    # ---- options peculiar to one cell (overridden by RNN and LSTM)
    def _split_options(self, options):
        if options:
            raise ConfigError(f"{type(self).__name__} got unknown options: {', '.join(options)}.")
        return {}, {}

    # ---- modes and grads, as in PyTorch: train, eval and zero_grad come from Module
    def seed_dropout(self, seed):
        """Restart the dropout-mask generator from ``seed`` (a training loop seeds each
        step from (seed, step), so a resumed run draws the same masks)."""
        self._dropout_rng = self.backend.rng(seed)

    def layer_params(self, k):
        """The four arrays of layer k under the cell's own names."""
        return {n: self.params[f"l{k}.{n}"] for n in PARAM_NAMES}

    # ---- state helpers: h (L, B, H), or (h, c) for LSTM
    def zero_state(self, batch_size):
        """The all-zero initial state for a batch of ``batch_size``."""
        z = lambda: self.xp.zeros((self.num_layers, batch_size, self.hidden_size), self.dtype)
        return (z(), z()) if self.cell.HAS_CELL_STATE else z()

    def state_of_layer(self, state, k):
        """Layer k's cell state out of a stacked one: h (B, H), or (h, c) for LSTM."""
        return (state[0][k], state[1][k]) if self.cell.HAS_CELL_STATE else state[k]

    def stack_layers(self, per_layer):
        """A list of L cell states -> the stacked state h (L, B, H), or (h, c) for LSTM."""
        if self.cell.HAS_CELL_STATE:
            return (self.xp.stack([s[0] for s in per_layer]), self.xp.stack([s[1] for s in per_layer]))
        return self.xp.stack(per_layer)

    def as_state(self, state, batch_size, what):
        """Validate a user-given state (or None -> zeros) and move it to this backend/dtype."""
        if state is None:
            return self.zero_state(batch_size)
        parts = state if self.cell.HAS_CELL_STATE else (state,)
        if self.cell.HAS_CELL_STATE and (not isinstance(state, (tuple, list)) or len(state) != 2):
            raise ShapeError(f"LSTM {what} must be a pair (h, c) of arrays shaped (L, B, H).")
        want = (self.num_layers, batch_size, self.hidden_size)
        arrays = []
        for a in parts:
            a = real_array(self.xp, a, self.dtype, what)
            if a.shape != want:
                raise ShapeError(f"{what} must have shape {want} (num_layers, batch, hidden), "
                                 f"got {tuple(a.shape)}.")
            arrays.append(a)
        return tuple(arrays) if self.cell.HAS_CELL_STATE else arrays[0]

    def _as_sequence(self, x, width, what):
        """Validate a (T, B, width) array (or (B, T, width) when batch_first) -> time-major."""
        x = real_array(self.xp, x, self.dtype, what)
        order = "(B, T, {})" if self.batch_first else "(T, B, {})"
        if x.ndim != 3 or x.shape[2] != width or x.shape[0] == 0 or x.shape[1] == 0:
            raise ShapeError(f"{what} must have shape {order.format(width)}, got {tuple(x.shape)}.")
        return x.transpose(1, 0, 2) if self.batch_first else x

    # ---- the passes
    def forward(self, x, state=None):
        """x: (T, B, I), or (B, T, I) when batch_first.  state: h (L, B, H), or (h, c) for
        LSTM, or None for zeros.  Returns y (T, B, H) (or (B, T, H)) and the final state."""
        xs = self._as_sequence(x, self.input_size, "input")
        state0 = self.as_state(state, xs.shape[1], "initial state")
        drop = self.training and self.dropout > 0.0
        self._caches, self._masks, finals = [], [], []
        for k in range(self.num_layers):
            xs, stateT, cache = self._engine.forward(self.layer_params(k), xs,
                                                  self.state_of_layer(state0, k), **self._step_options)
            self._caches.append(cache)
            finals.append(stateT)
            if drop and k < self.num_layers - 1:             # dropout between layers only
                keep = self._dropout_rng.random(xs.shape, dtype=self.dtype) >= self.dropout
                mask = keep.astype(self.dtype) / (1.0 - self.dropout)
                self._masks.append(mask)
                xs = xs * mask
            else:
                self._masks.append(None)
        y = xs.transpose(1, 0, 2) if self.batch_first else xs
        return y, self.stack_layers(finals)

    def backward(self, dy, dstate=None):
        """dy: dL/dy, shaped like y.  dstate: dL/d(final state), shaped like it, or None.

        Adds the parameter gradients into ``self.grads``; returns dx (shaped like x)
        and dL/d(initial state) (shaped like the state)."""
        if self._caches is None:
            raise RuntimeError("backward() needs a forward() first.")
        dys = self._as_sequence(dy, self.hidden_size, "dy")
        T, B = self._caches[-1].xs.shape[:2]
        if dys.shape[:2] != (T, B):
            raise ShapeError(f"dy must match the output of forward (T={T}, B={B}).")
        dstateT = self.as_state(dstate, B, "dstate")
        dstate0 = [None] * self.num_layers
        for k in reversed(range(self.num_layers)):
            dxs, dstate0[k], grads = self._engine.backward(self.layer_params(k), dys,
                                                        self.state_of_layer(dstateT, k),
                                                        self._caches[k], **self._step_options)
            for n in PARAM_NAMES:
                self.grads[f"l{k}.{n}"] += grads[n]
            if k > 0:
                mask = self._masks[k - 1]
                dys = dxs if mask is None else dxs * mask    # undo the dropout below layer k
        dx = dxs.transpose(1, 0, 2) if self.batch_first else dxs
        return dx, self.stack_layers(dstate0)

    __call__ = forward

    def __repr__(self):
        return (f"{type(self).__name__}({self.input_size}, {self.hidden_size}, "
                f"num_layers={self.num_layers}, backend={self.backend.name!r}, "
                f"dtype={self.dtype.name!r}, engine={self.engine!r})")


class RNN(Recurrent):
    """Elman RNN; ``nonlinearity`` "tanh" or "relu"; ``identity_init=True`` for IRNN."""

    cell = rnn

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", **kwargs):
        super().__init__(input_size, hidden_size, num_layers, nonlinearity=nonlinearity, **kwargs)

    def _split_options(self, options):
        nonlinearity = options.pop("nonlinearity")
        rnn.activation(nonlinearity)                    # ConfigError unless "tanh" or "relu"
        self.nonlinearity = nonlinearity
        init = {"identity_init": bool(options.pop("identity_init", False))}
        super()._split_options(options)
        return init, {"nonlinearity": nonlinearity}


class GRU(Recurrent):
    """Gated recurrent unit, PyTorch's reset-after form."""

    cell = gru


class LSTM(Recurrent):
    """Long short-term memory; ``forget_bias`` (e.g. 1.0) sets the forget-gate bias at init."""

    cell = lstm

    def _split_options(self, options):
        forget_bias = options.pop("forget_bias", None)
        if forget_bias is not None:
            forget_bias = finite_float("forget_bias", forget_bias)
        init = {"forget_bias": forget_bias}
        super()._split_options(options)
        return init, {}


LAYERS = {"rnn": RNN, "gru": GRU, "lstm": LSTM}
