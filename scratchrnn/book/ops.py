"""Elementwise nonlinearities and losses, each beside its derivative.

Every function takes arrays of any backend and finds the array module with
``xp_of``. Derivatives of activations are written in terms of the *output*
(``sigmoid' = s(1-s)``, ``tanh' = 1-t^2``) because the cells cache outputs.

Shapes: ``N`` is any number of rows (tokens), ``V`` the number of classes.
"""
from __future__ import annotations

from scratchrnn.core.backend import backend_of


def xp_of(a):
    """The array module (numpy or cupy) that ``a`` belongs to."""
    return backend_of(a).xp


# --------------------------------------------------------------------- activations
def sigmoid(x):
    """1 / (1 + exp(-x)), computed as (1 + tanh(x/2)) / 2: stable for any x, no overflow."""
    xp = xp_of(x)
    return 0.5 * (xp.tanh(0.5 * x) + 1.0)


def sigmoid_backward(ds, s):
    """ds: upstream grad, s = sigmoid(x). Returns dx = ds * s * (1 - s)."""
    return ds * s * (1.0 - s)


def tanh(x):
    return xp_of(x).tanh(x)


def tanh_backward(dt, t):
    """dt: upstream grad, t = tanh(x). Returns dx = dt * (1 - t^2)."""
    return dt * (1.0 - t * t)


def relu(x):
    return xp_of(x).maximum(x, 0)


def relu_backward(dr, r):
    """dr: upstream grad, r = relu(x). Returns dx = dr where x > 0, else 0."""
    return dr * (r > 0)


ACTIVATIONS = {"tanh": (tanh, tanh_backward), "relu": (relu, relu_backward)}


# ------------------------------------------------------------------------- softmax
def log_softmax(logits, axis=-1):
    """log p = z - max(z) - log(sum(exp(z - max(z)))): stable for logits of +-1e4."""
    xp = xp_of(logits)
    shifted = logits - logits.max(axis=axis, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))


def softmax(logits, axis=-1):
    """p = exp(log_softmax(z)); rows sum to 1."""
    return xp_of(logits).exp(log_softmax(logits, axis=axis))


def softmax_backward(dp, p):
    """Vector-Jacobian product of softmax along the last axis.

    dz = J^T dp with J = diag(p) - p p^T, i.e. dz = p * (dp - sum(dp * p)).
    """
    return p * (dp - (dp * p).sum(axis=-1, keepdims=True))


def log_softmax_backward(dlogp, p):
    """dz = dlogp - p * sum(dlogp) (the Jacobian of log_softmax is I - 1 p^T)."""
    return dlogp - p * dlogp.sum(axis=-1, keepdims=True)


def softmax_jacobian(p):
    """Full Jacobian dp_i/dz_j = p_i (delta_ij - p_j) for one row p of shape (V,) -> (V, V).

    Written out for teaching; training uses the p - onehot(y) shortcut below.
    """
    xp = xp_of(p)
    return xp.diag(p) - xp.outer(p, p)


# ---------------------------------------------------------------------- the losses
def cross_entropy(logits, targets, mask=None):
    """Mean negative log-likelihood over tokens, and what backward needs.

    logits: (N, V) float.  targets: (N,) int class ids.  mask: (N,) 0/1 or None.
    Returns (loss, p) where loss is a 0-d array and p = softmax(logits) (N, V).
    The mean is over unmasked tokens.
    """
    xp = xp_of(logits)
    logp = log_softmax(logits)
    nll = -xp.take_along_axis(logp, targets[:, None], axis=1)[:, 0]
    if mask is None:
        loss = nll.mean()
    else:
        mask = mask.astype(logits.dtype)
        loss = (nll * mask).sum() / xp.maximum(mask.sum(), 1.0)
    return loss, xp.exp(logp)


def cross_entropy_backward(p, targets, mask=None, dloss=1.0):
    """d loss / d logits = (p - onehot(y)) / N  (masked tokens get 0).

    This is the famous shortcut: log_softmax_backward(-onehot(y)/N, p) in one line.
    p: (N, V) softmax output.  targets: (N,) int.  Returns (N, V).
    """
    xp = xp_of(p)
    dlogits = p.copy()
    dlogits[xp.arange(p.shape[0]), targets] -= 1.0      # p - onehot(y)
    if mask is None:
        return dlogits * (dloss / p.shape[0])
    mask = mask.astype(p.dtype)
    return dlogits * (mask[:, None] * (dloss / xp.maximum(mask.sum(), 1.0)))


def mse(pred, target):
    """Mean squared error over all elements. Returns a 0-d array."""
    diff = pred - target
    return (diff * diff).mean()


def mse_backward(pred, target, dloss=1.0):
    """d mean((pred - target)^2) / d pred = 2 (pred - target) / size."""
    return (2.0 * dloss / pred.size) * (pred - target)
