"""The naive baseline: recurrent layers written the way min-char-rnn writes them.

Every step does its own GEMM on the concatenation ``[x_t, h_prev]`` (one weight
matrix ``W`` of shape (I+H, G*H), as in Karpathy's ``lstm.py``), keeps its
intermediates in Python lists, and the backward pass accumulates the weight
gradients one step at a time (``dW += hin_t.T @ da_t``). Nothing is
preallocated and every elementwise expression makes a new array. Batched
(B rows per step) and float32, so the comparison with scratchrnn is about the
*organisation* of the computation, not about batching.

Equations and gate orders are PyTorch's, like scratchrnn's, so the outputs can
be compared (``tests/test_benchmarks_smoke.py`` checks the gradients against
scratchrnn on a small size).
"""
from __future__ import annotations

import numpy as np

GATES = {"rnn": 1, "gru": 3, "lstm": 4}


def _sigmoid(a):
    with np.errstate(over="ignore"):              # exp(-a) -> inf gives the right limit 0
        return 1.0 / (1.0 + np.exp(-a))


def init(cell, I, H, rng, dtype=np.float32):
    """W (I+H, G*H) over the concatenation [x, h]; b_x, b_h (G*H,) as PyTorch keeps two biases."""
    G = GATES[cell]
    k = 1.0 / np.sqrt(H)
    return {"W": rng.uniform(-k, k, (I + H, G * H)).astype(dtype),
            "b_x": rng.uniform(-k, k, G * H).astype(dtype),
            "b_h": rng.uniform(-k, k, G * H).astype(dtype)}


def from_scratchrnn(p):
    """Naive params from a scratchrnn layer's {W_x, W_h, b_x, b_h}."""
    return {"W": np.concatenate([p["W_x"], p["W_h"]], axis=0), "b_x": p["b_x"].copy(),
            "b_h": p["b_h"].copy()}


def forward(cell, p, xs, h0, c0=None):
    """xs (T, B, I), h0 (B, H) [, c0]. Returns ys (T, B, H) and a list of per-step caches."""
    T = xs.shape[0]
    I = xs.shape[2]
    H = h0.shape[1]
    h, c = h0, c0
    ys, caches = [], []
    for t in range(T):
        hin = np.concatenate([xs[t], h], axis=1)              # [x_t, h_prev]  (B, I+H)
        if cell == "rnn":
            h = np.tanh(hin @ p["W"] + p["b_x"] + p["b_h"])
            caches.append((hin, h))
        elif cell == "lstm":
            a = hin @ p["W"] + p["b_x"] + p["b_h"]
            i = _sigmoid(a[:, :H])
            f = _sigmoid(a[:, H:2 * H])
            g = np.tanh(a[:, 2 * H:3 * H])
            o = _sigmoid(a[:, 3 * H:])
            c_prev = c
            c = f * c_prev + i * g
            tc = np.tanh(c)
            h = o * tc
            caches.append((hin, i, f, g, o, c_prev, tc))
        else:  # gru, reset-after: the hidden part needs its own GEMM
            ax = xs[t] @ p["W"][:I] + p["b_x"]
            ah = h @ p["W"][I:] + p["b_h"]
            r = _sigmoid(ax[:, :H] + ah[:, :H])
            z = _sigmoid(ax[:, H:2 * H] + ah[:, H:2 * H])
            n = np.tanh(ax[:, 2 * H:] + r * ah[:, 2 * H:])
            h_prev = h
            h = (1 - z) * n + z * h_prev
            caches.append((hin, r, z, n, ah[:, 2 * H:], h_prev))
        ys.append(h)
    return np.stack(ys), caches


def backward(cell, p, dys, caches):
    """dys (T, B, H). Returns dxs (T, B, I) and grads {"W", "b_x", "b_h"}."""
    T, B, H = dys.shape
    I = p["W"].shape[0] - H
    dW = np.zeros_like(p["W"])
    dbx = np.zeros_like(p["b_x"])
    dbh = np.zeros_like(p["b_h"])
    dxs = []
    dh_next = np.zeros((B, H), dys.dtype)
    dc_next = np.zeros((B, H), dys.dtype)
    for t in reversed(range(T)):
        dh = dys[t] + dh_next
        if cell == "rnn":
            hin, h = caches[t]
            da = dh * (1 - h * h)                              # undo tanh
            dW += hin.T @ da                                   # undo [x, h] W
            dbx += da.sum(0)
            dbh += da.sum(0)
            dhin = da @ p["W"].T
        elif cell == "lstm":
            hin, i, f, g, o, c_prev, tc = caches[t]
            do = dh * tc
            dc = dc_next + dh * o * (1 - tc * tc)              # undo h = o tanh(c)
            di, df, dg = dc * g, dc * c_prev, dc * i           # undo c = f c_prev + i g
            dc_next = dc * f
            da = np.concatenate([di * i * (1 - i), df * f * (1 - f),
                                 dg * (1 - g * g), do * o * (1 - o)], axis=1)
            dW += hin.T @ da
            dbx += da.sum(0)
            dbh += da.sum(0)
            dhin = da @ p["W"].T
        else:
            hin, r, z, n, hn, h_prev = caches[t]
            dn = dh * (1 - z)
            dz = dh * (h_prev - n)
            dan = dn * (1 - n * n)
            dar = dan * hn * r * (1 - r)
            daz = dz * z * (1 - z)
            dax = np.concatenate([dar, daz, dan], axis=1)
            dah = np.concatenate([dar, daz, dan * r], axis=1)
            dW[:I] += hin[:, :I].T @ dax
            dW[I:] += hin[:, I:].T @ dah
            dbx += dax.sum(0)
            dbh += dah.sum(0)
            dhin = np.concatenate([dax @ p["W"][:I].T, dah @ p["W"][I:].T + dh * z], axis=1)
        dxs.append(dhin[:, :I])
        dh_next = dhin[:, I:]
    return np.stack(dxs[::-1]), {"W": dW, "b_x": dbx, "b_h": dbh}
