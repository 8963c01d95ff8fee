"""Token ids -> vectors: a learned ``Embedding`` or a fixed ``OneHot`` (embedding size 0).

ids: (T, B) int.  Output: (T, B, E) for an embedding, (T, B, V) for one-hot.
"""
from __future__ import annotations

import math

from scratchrnn.book.ops import xp_of


class Embedding:
    """A lookup table W (V, E): x = W[ids]. Backward is a scatter-add of dx into dW."""

    def __init__(self, vocab_size, embedding_size, rng, backend, dtype):
        self.backend, self.xp = backend, backend.xp
        self.output_size = embedding_size
        k = 1.0 / math.sqrt(embedding_size)
        self.params = {"W": backend.asarray(rng.uniform(-k, k, (vocab_size, embedding_size)), dtype)}
        self.grads = {"W": self.xp.zeros_like(self.params["W"])}
        self._ids = None

    def forward(self, ids):
        """ids: (T, B) int -> (T, B, E)."""
        self._ids = ids
        return self.params["W"][ids]

    def backward(self, dx):
        """dx: (T, B, E). Adds into grads["W"]; each row gets the sum of its tokens' dx."""
        E = self.output_size
        scatter_add(self.grads["W"], self._ids.reshape(-1), dx.reshape(-1, E))   # undo W[ids]


class OneHot:
    """x = onehot(ids) (T, B, V), as in min-char-rnn. No parameters."""

    def __init__(self, vocab_size, backend, dtype):
        self.xp, self.dtype = backend.xp, dtype
        self.output_size = vocab_size
        self.params, self.grads = {}, {}

    def forward(self, ids):
        """ids: (T, B) int -> (T, B, V) one-hot."""
        x = self.xp.zeros(ids.shape + (self.output_size,), dtype=self.dtype)
        rows = x.reshape(-1, self.output_size)                  # a view: (T*B, V)
        rows[self.xp.arange(rows.shape[0]), ids.reshape(-1)] = 1.0
        return x

    def backward(self, dx):
        """Nothing to learn; the input gradient stops here."""


def scatter_add(target, rows, values):
    """target[rows[i]] += values[i] for every i, repeated rows summed.

    target: (V, E).  rows: (N,) int.  values: (N, E).
    """
    xp = xp_of(target)
    if hasattr(xp, "add") and hasattr(xp.add, "at"):
        xp.add.at(target, rows, values)
    else:                                   # older CuPy: the same operation from cupyx
        import cupyx
        cupyx.scatter_add(target, rows, values)
