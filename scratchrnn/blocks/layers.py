"""The layer classes ``RNN``, ``GRU`` and ``LSTM``: a stack of cells with PyTorch's interface.

    lstm = LSTM(input_size=8, hidden_size=16, num_layers=2)
    y, (h, c) = lstm.forward(x)           # x (T, B, I) -> y (T, B, H); h, c (L, B, H)
    dx, (dh0, dc0) = lstm.backward(dy)    # accumulates into lstm.grads
    lstm.zero_grad()

**By default a layer runs an engine, not the cells you read.** ``engine="auto"`` (the
default) runs the backend's fast engine where one exists (``scratchrnn/engines``: NumPy's
``numpy_fast``, with its C helper where a compiler builds it; CuPy's fused GRU/LSTM
kernels), else the cells' level 2. The engines are tested equal to the cells, but they are
other code. To run the book itself, pass ``engine="textbook"`` (the cells' level 1: a scan
of ``step_forward`` and a reverse scan of ``step_backward``, in ``scratchrnn/book/cells``),
or set ``SCRATCHRNN_ENGINE=textbook``; ``engine="reference"`` runs the cells' level 2 (the
GEMMs hoisted out of the loop) and ``"fast"`` insists on the fast engine.
``layer.engine`` names the one that runs.

    LSTM(8, 16).engine                      # "fast (numpy + compiled C)": an engine
    LSTM(8, 16, engine="textbook").engine   # "textbook": book/cells/lstm.py's forward/backward

Parameters live in a flat dict ``params`` with keys ``"l{k}.W_x"``, ``"l{k}.W_h"``,
``"l{k}.b_x"``, ``"l{k}.b_h"`` for layer k (layout in ``cells/common.py``);
``grads`` has the same keys. Dropout (inverted, rate p) is applied to the output of
every layer but the last, in training mode only, and its mask is reused by backward.

``bidirectional=True`` (as PyTorch): every layer runs two scans, one over t = 0..T-1
and one over t = T-1..0 with its own weights (keys ``"l{k}_reverse.W_x"``, ...), and
concatenates their outputs: y is (T, B, 2H), the next layer's input is 2H wide, and a
state is (2L, B, H) with row 2k the forward and row 2k+1 the reverse direction of layer k
(docs/derivations.md, "Bidirectional layers"). The reverse scan is the same cell run by
the same engine on the time-flipped input, its outputs flipped back: by ``scan``'s
definition that *is* ``scan(..., reverse=True)``, and it lets every engine (textbook,
reference, fast, compiled, CuPy) run the reverse direction unchanged.
"""
from __future__ import annotations

from scratchrnn import engines
from scratchrnn.blocks.module import Module
from scratchrnn.book import cells
from scratchrnn.book.cells import gru, lstm, rnn
from scratchrnn.core.backend import get_backend, host_rng
from scratchrnn.core.errors import ConfigError, ShapeError
from scratchrnn.core.validation import finite_float, positive_int, real_array

PARAM_NAMES = ("W_x", "W_h", "b_x", "b_h")
DIRECTIONS = ("", "_reverse")        # key suffix of the forward and the reverse direction


def layer_key(k, d=0):
    """The params prefix of layer k, direction d (0 forward, 1 reverse): "l0", "l0_reverse"."""
    return f"l{k}{DIRECTIONS[d]}"


class Recurrent(Module):
    """A stack of ``num_layers`` cells of one kind; subclasses pick the cell.

    backend: "numpy", "cupy", "auto", a Backend, or None for ``$SCRATCHRNN_BACKEND``
    (numpy when unset).  dtype: "float32" (default) or "float64".  seed: weights and
    dropout masks are drawn from it (the same seed gives the same weights on CPU and GPU).
    engine: "auto" (runs an engine, see the module doc), "textbook" (runs the cells'
    level 1, the book), "reference" (the cells' level 2), "fast", or None for
    ``$SCRATCHRNN_ENGINE`` (auto when unset); ``self.engine`` names what runs.
    bidirectional: two scans per layer, one reversed, outputs concatenated (module doc).
    """

    cell = None          # the cell module (cells/rnn.py, cells/gru.py, cells/lstm.py)

    def __init__(self, input_size, hidden_size, num_layers=1, dropout=0.0, batch_first=False,
                 backend=None, dtype="float32", seed=None, engine=None, bidirectional=False,
                 **cell_options):
        self.input_size = input_size = positive_int("input_size", input_size)
        self.hidden_size = hidden_size = positive_int("hidden_size", hidden_size)
        self.num_layers = num_layers = positive_int("num_layers", num_layers)
        self.dropout = finite_float("dropout", dropout, 0.0, 1.0, high_open=True)
        self.batch_first = bool(batch_first)
        self.bidirectional = bool(bidirectional)
        self.num_directions = D = 2 if self.bidirectional else 1
        self.output_size = D * hidden_size
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
            layer_in = input_size if k == 0 else D * hidden_size
            for d in range(D):
                p = self.cell.init_params(layer_in, hidden_size, rng, self.backend, self.dtype,
                                          **self._init_options)
                self.params.update({f"{layer_key(k, d)}.{n}": p[n] for n in PARAM_NAMES})
        self.grads = {k: self.xp.zeros_like(v) for k, v in self.params.items()}
        self._dropout_rng = self.backend.rng(seed)
        self._caches = None          # per layer and direction (row k*D + d): the cell's Cache
        self._masks = None           # per layer below the top: dropout mask or None

    @property
    def caches(self):
        """Per layer (and direction: row k*D + d, as the state), the cell's ``Cache`` of the
        last forward (read-only); None before one. A reverse cache is in flipped time."""
        return None if self._caches is None else tuple(self._caches)

    @property
    def dropout_masks(self):
        """Per layer, the dropout mask (T, B, H) applied to its output in the last forward, or
        None where none was (the top layer, eval mode, dropout 0); None before a forward."""
        return None if self._masks is None else tuple(self._masks)

    @property
    def dropout_rng(self):
        """The generator the dropout masks are drawn from (the backend's ``rng``). Assign a
        generator to put one back, e.g. after ``seed_dropout`` held the masks fixed."""
        return self._dropout_rng

    @dropout_rng.setter
    def dropout_rng(self, generator):
        self._dropout_rng = generator

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

    def layer_params(self, k, d=0):
        """The four arrays of layer k, direction d (0 forward, 1 reverse), under the cell's
        own names."""
        return {n: self.params[f"{layer_key(k, d)}.{n}"] for n in PARAM_NAMES}

    # ---- state helpers: h (L*D, B, H), or (h, c) for LSTM; D = 2 when bidirectional
    def zero_state(self, batch_size):
        """The all-zero initial state for a batch of ``batch_size``."""
        rows = self.num_layers * self.num_directions
        z = lambda: self.xp.zeros((rows, batch_size, self.hidden_size), self.dtype)
        return (z(), z()) if self.cell.HAS_CELL_STATE else z()

    def state_of_layer(self, state, k):
        """Row k of a stacked state (layer k, or layer k // 2 direction k % 2 when
        bidirectional): h (B, H), or (h, c) for LSTM."""
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
        want = (self.num_layers * self.num_directions, batch_size, self.hidden_size)
        arrays = []
        for a in parts:
            a = real_array(self.xp, a, self.dtype, what)
            if a.shape != want:
                rows = "2*num_layers" if self.bidirectional else "num_layers"
                raise ShapeError(f"{what} must have shape {want} ({rows}, batch, hidden), "
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
        """x: (T, B, I), or (B, T, I) when batch_first.  state: h (L*D, B, H), or (h, c) for
        LSTM, or None for zeros (D = 2 when bidirectional, else 1).
        Returns y (T, B, D*H) (or (B, T, D*H)) and the final state."""
        xs = self._as_sequence(x, self.input_size, "input")
        state0 = self.as_state(state, xs.shape[1], "initial state")
        drop = self.training and self.dropout > 0.0
        D = self.num_directions
        self._caches, self._masks, finals = [], [], []
        for k in range(self.num_layers):
            outputs = []
            for d in range(D):
                xs_d = xs if d == 0 else self._flip_time(xs)     # the reverse scan reads T-1..0
                ys_d, stateT, cache = self._engine.forward(self.layer_params(k, d), xs_d,
                                                           self.state_of_layer(state0, k * D + d),
                                                           **self._step_options)
                outputs.append(ys_d if d == 0 else self._flip_time(ys_d))  # back to time order
                self._caches.append(cache)
                finals.append(stateT)
            xs = outputs[0] if D == 1 else self.xp.concatenate(outputs, axis=2)   # (T, B, D*H)
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
        dys = self._as_sequence(dy, self.output_size, "dy")
        T, B = self._caches[-1].xs.shape[:2]
        if dys.shape[:2] != (T, B):
            raise ShapeError(f"dy must match the output of forward (T={T}, B={B}).")
        dstateT = self.as_state(dstate, B, "dstate")
        D, H = self.num_directions, self.hidden_size
        dstate0 = [None] * (self.num_layers * D)
        for k in reversed(range(self.num_layers)):
            dxs = None
            for d in range(D):
                row = k * D + d
                dys_d = dys if D == 1 else dys[:, :, d * H:(d + 1) * H]   # undo the concatenation
                if d == 1:
                    dys_d = self._flip_time(dys_d)       # the reverse scan's outputs, its order
                dxs_d, dstate0[row], grads = self._engine.backward(
                    self.layer_params(k, d), dys_d, self.state_of_layer(dstateT, row),
                    self._caches[row], **self._step_options)
                if d == 1:
                    dxs_d = self._flip_time(dxs_d)       # undo the flip of its input
                dxs = dxs_d if dxs is None else dxs + dxs_d   # both directions read the same x
                for n in PARAM_NAMES:
                    self.grads[f"{layer_key(k, d)}.{n}"] += grads[n]
            if k > 0:
                mask = self._masks[k - 1]
                dys = dxs if mask is None else dxs * mask    # undo the dropout below layer k
        dx = dxs.transpose(1, 0, 2) if self.batch_first else dxs
        return dx, self.stack_layers(dstate0)

    def _flip_time(self, a):
        """a (T, ...) in reverse time order, as a contiguous copy (engines write into it)."""
        return self.xp.ascontiguousarray(a[::-1])

    __call__ = forward

    def __repr__(self):
        return (f"{type(self).__name__}({self.input_size}, {self.hidden_size}, "
                f"num_layers={self.num_layers}, "
                f"{'bidirectional=True, ' if self.bidirectional else ''}backend={self.backend.name!r}, "
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


LAYERS = {layer.cell.NAME: layer for layer in (RNN, GRU, LSTM)}
"""The layer class of each cell, keyed by the cell's own name (``book.cells.CELLS``)."""


def layer_class(name):
    """The layer class (RNN, GRU or LSTM) of the cell called ``name``; ConfigError otherwise."""
    return LAYERS[cells.by_name(name).NAME]
