"""The language model: embed -> recurrent stack -> linear head -> softmax cross-entropy.

One batch, top to bottom (T steps, B streams, V tokens, E input width, H hidden)::

    ids (T, B) ──embed──▶ x (T, B, E) ──rnn──▶ h (T, B, H) ──head──▶ logits (T·B, V)
                                                        ──cross-entropy vs targets──▶ loss

``backward()`` drives the same road in reverse and *adds* into ``grads``.
``params`` and ``grads`` are flat dicts whose arrays are the very arrays the parts
own ("embed.W", "rnn.l0.W_x", ..., "head.W", "head.b"), so an optimizer that
updates them in place updates the model.
"""
from __future__ import annotations

from typing import Any, NamedTuple

from scratchrnn.blocks.embedding import Embedding, OneHot
from scratchrnn.blocks.layers import layer_class
from scratchrnn.blocks.linear import Linear
from scratchrnn.blocks.module import Module
from scratchrnn.book import ops
from scratchrnn.core.backend import get_backend, host_rng
from scratchrnn.core.errors import ConfigError, ShapeError
from scratchrnn.core.validation import int_at_least

CONFIG_KEYS = ("vocab_size", "cell", "hidden_size", "num_layers", "embedding_size", "dropout",
               "nonlinearity", "forget_bias", "dtype")


class LossCache(NamedTuple):
    """What ``loss`` keeps for ``backward``."""
    targets: Any    # (T*B,) int
    mask: Any       # (T*B,) or None
    probs: Any      # (T*B, V) softmax of the logits
    shape: tuple    # (T, B)


class CharLM(Module):
    """A character (or word) level language model with hand-written backward."""

    def __init__(self, vocab_size, cell="lstm", hidden_size=128, num_layers=2, embedding_size=0,
                 dropout=0.0, nonlinearity="tanh", forget_bias=0.0, backend=None,
                 dtype="float32", seed=None, bidirectional=False):
        if bidirectional:
            raise ConfigError("a language model predicts the next character from the ones before "
                              "it, so it cannot be bidirectional (the reverse scan would read the "
                              "answer).")
        layer = layer_class(cell)
        vocab_size = int_at_least("vocab_size", vocab_size, 1)
        hidden_size = int_at_least("hidden_size", hidden_size, 1)
        num_layers = int_at_least("num_layers", num_layers, 1)
        embedding_size = int_at_least("embedding_size", embedding_size, 0)
        self.config = {"vocab_size": vocab_size, "cell": cell, "hidden_size": hidden_size,
                       "num_layers": num_layers, "embedding_size": embedding_size,
                       "dropout": float(dropout), "nonlinearity": nonlinearity,
                       "forget_bias": forget_bias, "dtype": str(dtype)}
        self.backend = get_backend(backend)
        self.xp = self.backend.xp
        dtype = self.backend.dtype(dtype)
        rng = host_rng(seed)
        self.embed = (Embedding(vocab_size, embedding_size, rng, self.backend, dtype)
                      if embedding_size else OneHot(vocab_size, self.backend, dtype))
        options = {"nonlinearity": nonlinearity} if cell == "rnn" else {}
        if cell == "lstm":
            options["forget_bias"] = forget_bias
        self.rnn = layer(self.embed.output_size, hidden_size, num_layers, dropout=dropout,
                                backend=self.backend, dtype=dtype, seed=seed, **options)
        self.head = Linear(hidden_size, vocab_size, rng, self.backend, dtype)
        self.gather([("embed", self.embed), ("rnn", self.rnn), ("head", self.head)])
        self._cache = None

    @classmethod
    def from_config(cls, config, backend=None, seed=None):
        """Build an (untrained) model from ``config`` as saved in a checkpoint."""
        return cls(**{k: config[k] for k in CONFIG_KEYS}, backend=backend, seed=seed)

    @property
    def vocab_size(self):
        return self.config["vocab_size"]

    # ---- modes
    def train(self, mode=True):
        self.rnn.train(mode)
        return self

    def initial_state(self, batch_size):
        """All-zero recurrent state: h (L, B, H), or (h, c) for LSTM."""
        return self.rnn.zero_state(batch_size)

    # ---- the passes
    def forward(self, ids, state=None):
        """ids: (T, B) int.  state: as ``initial_state`` or None.

        Returns logits (T, B, V) and the final state.
        """
        ids = self.xp.asarray(ids)
        if ids.ndim != 2:
            raise ShapeError(f"ids must be a (T, B) integer array, got shape {tuple(ids.shape)}.")
        if ids.dtype.kind not in "iu":
            raise ShapeError(f"ids must be token ids (integers), got an array of {ids.dtype}.")
        if not self.backend.is_gpu and ids.size and (int(ids.min()) < 0 or int(ids.max()) >= self.vocab_size):
            raise ConfigError(f"ids must be token ids in [0, {self.vocab_size}), got values from "
                              f"{int(ids.min())} to {int(ids.max())}.")
        x = self.embed.forward(ids)                        # (T, B, E)
        hs, state = self.rnn.forward(x, state)             # (T, B, H)
        T, B, H = hs.shape
        logits = self.head.forward(hs.reshape(T * B, H))   # (T*B, V)
        return logits.reshape(T, B, -1), state

    def loss(self, ids, targets, state=None, mask=None):
        """Mean cross-entropy (nats per token) of predicting ``targets`` from ``ids``.

        ids, targets: (T, B) int.  mask: (T, B) 0/1 or None.
        Returns (loss as a Python float, final state); keeps what backward needs.
        """
        loss, state = self.loss_array(ids, targets, state, mask)
        return float(loss), state

    def loss_array(self, ids, targets, state=None, mask=None):
        """``loss`` with the loss left where it was computed: a 0-d array on the backend's
        device, so that a GPU training step need not wait to read it (engines.device_step)."""
        logits, state = self.forward(ids, state)
        loss, self._cache = self._loss_and_cache(logits, targets, mask)
        return loss, state

    def loss_from_logits(self, logits, targets, mask=None):
        """logits: (T, B, V).  targets: (T, B) int.  mask: (T, B) or None.

        Returns (mean cross-entropy as a Python float, LossCache).
        """
        loss, cache = self._loss_and_cache(logits, targets, mask)
        return float(loss), cache

    def _loss_and_cache(self, logits, targets, mask):
        """(mean cross-entropy as a 0-d array, LossCache) for logits (T, B, V)."""
        T, B, V = logits.shape
        targets = self.xp.asarray(targets).reshape(T * B)
        mask = None if mask is None else self.xp.asarray(mask).reshape(T * B)
        loss, probs = ops.cross_entropy(logits.reshape(T * B, V), targets, mask)
        return loss, LossCache(targets, mask, probs, (T, B))

    def backward(self, dstate=None):
        """Backpropagate the last ``loss`` (dloss = 1). Adds into ``grads``.

        dstate: gradient at the final state (None: zeros, as in truncated BPTT).
        Returns dx (T, B, E) at the input vectors and dL/d(initial state).
        """
        c = self._cache
        if c is None:
            raise RuntimeError("backward() needs loss() first.")
        T, B = c.shape
        dlogits = ops.cross_entropy_backward(c.probs, c.targets, c.mask)   # undo softmax + NLL
        dhs = self.head.backward(dlogits)                                  # undo the head
        dx, dstate0 = self.rnn.backward(dhs.reshape(T, B, -1), dstate)     # undo the stack (BPTT)
        self.embed.backward(dx)                                            # undo the lookup
        return dx, dstate0

    def step_logits(self, token_ids, state):
        """One step for generation: token_ids (B,) int -> logits (B, V), new state."""
        logits, state = self.forward(self.xp.asarray(token_ids).reshape(1, -1), state)
        return logits[0], state

    # ---- parameters in and out (host numpy arrays)
    def state_arrays(self):
        """The parameters as host arrays, keyed like ``params``."""
        return {k: self.backend.asnumpy(v) for k, v in self.params.items()}

    def load_arrays(self, arrays):
        """Copy host arrays (keyed like ``params``) into the parameters, in place."""
        missing = sorted(set(self.params) - set(arrays))
        if missing:
            raise ConfigError(f"the saved parameters lack {missing[0]!r}; "
                              "they belong to another architecture.")
        for k, p in self.params.items():
            a = arrays[k]
            if tuple(a.shape) != tuple(p.shape):
                raise ConfigError(f"parameter {k!r} has shape {tuple(a.shape)} but this model "
                                  f"needs {tuple(p.shape)}; it belongs to another architecture.")
            p[...] = self.backend.asarray(a, dtype=p.dtype)

    def num_params(self):
        return int(sum(p.size for p in self.params.values()))
