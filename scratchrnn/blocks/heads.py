"""Readouts of a recurrent layer: many-to-many (every step) or many-to-one (the last step),
and the two losses they are trained with.

    head = Head(hidden_size=16, output_size=V, return_sequences=False)   # many-to-one
    logits = head.forward(hs)                      # hs (T, B, H) -> logits (B, V), from hs[-1]
    loss, dlogits = softmax_cross_entropy(logits, targets)               # targets (B,) int
    dhs = head.backward(dlogits)                   # (T, B, H): zero at every t < T

``return_sequences=True`` (Keras's name; many-to-many) reads every step instead:
``(T, B, H) -> (T, B, O)``, and the loss is the mean over all T·B predictions.
For regression use ``mean_squared_error`` in place of the cross-entropy.
``cross_entropy_backward_full_jacobian`` computes the cross-entropy gradient the long
way, through softmax's full (V, V) Jacobian, to show it equals the p - onehot(y) shortcut.

Many-to-one: y = h_T W + b reads only the last state, so dL/dh_t = 0 for t < T at
the head; earlier steps learn only through the recurrence (BPTT from h_T back).
"""
from __future__ import annotations

from scratchrnn.blocks.linear import Linear
from scratchrnn.book import ops
from scratchrnn.core.backend import get_backend, host_rng
from scratchrnn.core.errors import ShapeError
from scratchrnn.core.validation import positive_int


class Head:
    """A linear readout y = h W + b of the last step or of every step.

    hidden_size: H.  output_size: O (classes V, or regression targets).
    return_sequences: True -> every step (T, B, H) -> (T, B, O) (many-to-many);
        False -> the last step only, (T, B, H) -> (B, O) (many-to-one).
    backend, dtype, seed: as for the layer classes (seed draws W and b).
    ``params``/``grads``: {"W": (H, O), "b": (O,)}.
    """

    def __init__(self, hidden_size, output_size, return_sequences=True, backend=None,
                 dtype="float32", seed=None):
        self.hidden_size = positive_int("hidden_size", hidden_size)
        self.output_size = positive_int("output_size", output_size)
        self.return_sequences = bool(return_sequences)
        self.backend = get_backend(backend)
        self.xp = self.backend.xp
        self.dtype = self.backend.dtype(dtype)
        self.linear = Linear(self.hidden_size, self.output_size, host_rng(seed), self.backend,
                             self.dtype)
        self.params, self.grads = self.linear.params, self.linear.grads
        self._shape = None

    def forward(self, hs):
        """hs: (T, B, H).  Returns (T, B, O) if return_sequences, else (B, O) from hs[-1]."""
        hs = self.xp.asarray(hs, dtype=self.dtype)
        if hs.ndim != 3 or hs.shape[2] != self.hidden_size or 0 in hs.shape[:2]:
            raise ShapeError(f"the head reads states shaped (T, B, {self.hidden_size}), "
                             f"got {tuple(hs.shape)}.")
        self._shape = hs.shape
        if not self.return_sequences:
            return self.linear.forward(hs[-1])                            # (B, O)
        T, B, H = hs.shape
        return self.linear.forward(hs.reshape(T * B, H)).reshape(T, B, self.output_size)

    def backward(self, dout):
        """dout: dL/d(output), (T, B, O) or (B, O).  Adds into grads.

        Returns dhs (T, B, H); with return_sequences=False only dhs[-1] is non-zero.
        """
        if self._shape is None:
            raise RuntimeError("backward() needs a forward() first.")
        T, B, H = self._shape
        want = (T, B, self.output_size) if self.return_sequences else (B, self.output_size)
        dout = self.xp.asarray(dout, dtype=self.dtype)
        if dout.shape != want:
            raise ShapeError(f"dout must have shape {want}, got {tuple(dout.shape)}.")
        if self.return_sequences:
            return self.linear.backward(dout.reshape(T * B, -1)).reshape(T, B, H)  # undo h W + b
        dhs = self.xp.zeros((T, B, H), dtype=self.dtype)                  # t < T: not read
        dhs[-1] = self.linear.backward(dout)                              # undo h_T W + b
        return dhs


def softmax_cross_entropy(logits, targets):
    """Mean cross-entropy of integer targets under softmax(logits), and its gradient.

    logits: (..., V), e.g. (B, V) many-to-one or (T, B, V) many-to-many.
    targets: (...) int class ids, the leading shape of logits.
    Returns (loss as a Python float, dlogits shaped like logits) with
    dlogits = (softmax(logits) - onehot(targets)) / N, N the number of predictions.
    """
    xp = ops.xp_of(logits)
    targets = xp.asarray(targets)
    if targets.shape != logits.shape[:-1] or targets.dtype.kind not in "iu":
        raise ShapeError(f"targets must be integers shaped {tuple(logits.shape[:-1])}, "
                         f"got {targets.dtype.name} {tuple(targets.shape)}.")
    V = logits.shape[-1]
    flat_logits, flat_targets = logits.reshape(-1, V), targets.reshape(-1)
    loss, p = ops.cross_entropy(flat_logits, flat_targets)
    dlogits = ops.cross_entropy_backward(p, flat_targets)      # undo softmax + NLL (section 1)
    return float(loss), dlogits.reshape(logits.shape)


def mean_squared_error(pred, target):
    """Mean of (pred - target)² over all elements, and its gradient.

    pred, target: the same shape, e.g. (B, O) or (T, B, O).
    Returns (loss as a Python float, dpred = 2 (pred - target) / size).
    """
    xp = ops.xp_of(pred)
    target = xp.asarray(target, dtype=pred.dtype)
    if target.shape != pred.shape:
        raise ShapeError(f"target must have shape {tuple(pred.shape)}, got {tuple(target.shape)}.")
    return float(ops.mse(pred, target)), ops.mse_backward(pred, target)  # undo the mean square


def cross_entropy_backward_full_jacobian(p, targets):
    """d(mean cross-entropy)/d logits the long way, through softmax's full Jacobian.

    p: (N, V) softmax probabilities.  targets: (N,) int.  Returns dlogits (N, V).
    Per row n: dp_n = -onehot(y_n) / (N p_n[y_n]) (undo -log p_y and the mean), then
    dz_n = J_nᵀ dp_n with J_n = diag(p_n) - p_n p_nᵀ (undo p = softmax(z); section 1).
    It equals the shortcut (p - onehot(y)) / N of ``ops.cross_entropy_backward``; this
    version builds a (V, V) matrix per row and is for teaching only.
    """
    xp = ops.xp_of(p)
    N = p.shape[0]
    rows = xp.arange(N)
    dp = xp.zeros_like(p)
    dp[rows, targets] = -1.0 / (N * p[rows, targets])                 # undo -mean(log p_y)
    return xp.stack([ops.softmax_jacobian(p[n]).T @ dp[n] for n in range(N)])  # undo softmax


LOSSES = {"cross_entropy": softmax_cross_entropy, "mse": mean_squared_error}
