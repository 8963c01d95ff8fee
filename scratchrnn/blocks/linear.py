"""The output head: logits = h W + b.

h: (N, H).  W: (H, V).  b: (V,).  logits: (N, V).
"""
from __future__ import annotations

import math


class Linear:
    """An affine map with PyTorch's init U(±1/sqrt(fan_in))."""

    def __init__(self, in_size, out_size, rng, backend, dtype):
        k = 1.0 / math.sqrt(in_size)
        self.params = {"W": backend.asarray(rng.uniform(-k, k, (in_size, out_size)), dtype),
                       "b": backend.asarray(rng.uniform(-k, k, (out_size,)), dtype)}
        self.grads = {n: backend.xp.zeros_like(p) for n, p in self.params.items()}
        self._h = None

    def forward(self, h):
        """h: (N, H) -> (N, V)."""
        self._h = h
        return h @ self.params["W"] + self.params["b"]

    def backward(self, dlogits):
        """dlogits: (N, V). Adds into grads; returns dh (N, H)."""
        self.grads["W"] += self._h.T @ dlogits          # undo h W
        self.grads["b"] += dlogits.sum(axis=0)          # undo + b
        return dlogits @ self.params["W"].T             # undo h W, for the layer below
