"""Where a scratchrnn layer's forward+backward time goes: GEMM, allocation, the rest.

    gemm_s    the same GEMMs the cell does (same shapes, same order, outputs
              preallocated), timed alone: the floor if elementwise work were free
    alloc_s   fresh-allocation cost, estimated as (first touch of new pages - rewrite
              of reused pages, per byte, on a 64 MiB block) x the bytes one iteration
              allocates (tracemalloc peak); an upper bound, since malloc recycles blocks
              under its 32 MiB mmap threshold without new page faults
    rest_s    total - gemm - alloc: elementwise gate math, Python and call overhead
"""
from __future__ import annotations

import statistics
import time

import numpy as np


def _median_time(fn, reps):
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _gemm_replay(layer, shape):
    """A function doing every GEMM of one fwd+bwd of layer 0, with preallocated outputs."""
    xp = layer.xp
    p = layer.layer_params(0)
    W_x, W_h = p["W_x"], p["W_h"]
    T, B, I = shape
    H, GH = W_h.shape
    dt = W_h.dtype
    xs2 = xp.ones((T * B, I), dt)
    ax = xp.empty((T * B, GH), dt)
    h = xp.ones((B, H), dt)
    hs = xp.ones((T * B, H), dt)
    da = xp.ones((T * B, GH), dt)
    dW_x, dW_h = xp.empty_like(W_x), xp.empty_like(W_h)
    dxs = xp.empty((T * B, I), dt)
    step_out = xp.empty((B, GH), dt)
    dh = xp.empty((B, H), dt)
    W_hT = xp.ascontiguousarray(W_h.T)                  # as the fast path does (NN GEMM)

    def run():
        xp.matmul(xs2, W_x, out=ax)
        for _ in range(T):
            xp.matmul(h, W_h, out=step_out)
        for t in range(T):
            xp.matmul(da[t * B:(t + 1) * B], W_hT, out=dh)
        xp.matmul(xs2.T, da, out=dW_x)
        xp.matmul(hs.T, da, out=dW_h)
        xp.matmul(da, W_x.T, out=dxs)
        layer.backend.synchronize()
    return run


def breakdown(runner, reps=3, memory=None):
    layer = runner.layer

    def fwdbwd():
        runner.forward()
        runner.backward()
        runner.sync()

    fwdbwd()
    total = _median_time(fwdbwd, reps)
    gemm = _median_time(_gemm_replay(layer, tuple(runner.x.shape)), reps)
    out = {"total_s": total, "gemm_s": gemm}
    if layer.backend.name == "numpy":
        # first-touch cost per byte on a 64 MiB block (fresh pages vs. rewriting reused ones),
        # times the bytes one iteration allocates: an upper bound (malloc recycles blocks < 32 MiB)
        nbytes = max((memory or runner.memory())["peak_bytes"], 1)
        n = (64 << 20) // 4
        reused = np.empty(n, np.float32)
        reused.fill(1.0)

        def fresh():
            a = np.empty(n, np.float32)
            a.fill(1.0)

        per_byte = max(0.0, min(_median_time(fresh, 1) for _ in range(3))
                       - min(_median_time(lambda: reused.fill(1.0), 1) for _ in range(3))) / (4 * n)
        out["alloc_s"] = min(per_byte * nbytes, total)
        out["alloc_bytes"] = int(nbytes)
    else:
        out["alloc_s"] = 0.0
    out["rest_s"] = total - gemm - out["alloc_s"]       # may dip below 0 within timing noise
    for k in ("gemm", "alloc", "rest"):
        out[k + "_frac"] = out[k + "_s"] / total if total else 0.0
    return out
