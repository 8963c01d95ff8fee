"""The CuPy fast path: one fused elementwise kernel per step for the gate math.

On a GPU the book's ``xp`` code launches ~15-20 small kernels per step (each ufunc,
each slice assignment, each temporary); here a step is one cuBLAS GEMM
(``h @ W_h``) plus ONE ``cupy.ElementwiseKernel`` that reads the pre-activations
and writes every output of the step (gates, c, tanh(c), h), and a backward step is
ONE kernel (all gate gradients and dc_prev) plus one GEMM (``da @ W_hᵀ``). The
loop-free GEMMs before and after the time loop are the NumPy fast path's
(``cells.common.weight_gradients``), written for any ``xp``.

The kernel bodies are generated from the elementwise statements of ``gate_math.py``
(the source of the compiled CPU helper too), in the notation of the book
(``cells/lstm.py``, ``cells/gru.py``), one thread per (b, j) element of the (B, H) state.
Math runs in ``double`` for float64 arrays and in ``float`` otherwise. No value crosses between host
and device inside the time loop: sizes are Python ints, everything else stays on
the device.

RNN has no kernel here: on CuPy it runs the cells' reference level (its step is a
GEMM plus one ufunc already).

Tested equal to the cells in tests/engines/test_engines.py (skipped without a GPU).
"""
from __future__ import annotations

from functools import lru_cache

import cupy

from scratchrnn.book.cells import gru as _gru
from scratchrnn.book.cells import lstm as _lstm
from scratchrnn.book.cells.common import previous_states, weight_gradients
from scratchrnn.engines import gate_math


@lru_cache(maxsize=None)
def _kernel(name, dtype_name):
    """Compile (once per dtype) the ``gate_math`` op ``name``; math in double for float64
    storage, in float otherwise."""
    ctype = "double" if cupy.dtype(dtype_name) == cupy.float64 else "float"
    in_params, out_params, operation, preamble = gate_math.cuda_kernel(gate_math.OPS[name], ctype)
    return cupy.ElementwiseKernel(in_params, out_params, operation, f"scratchrnn_{name}_{ctype}",
                                  preamble=preamble)


def _dtype(*arrays):
    return cupy.result_type(*arrays)


def _c(a, dt):
    """A C-contiguous array of dtype dt (no copy when it already is one)."""
    return cupy.ascontiguousarray(a, dtype=dt)


# ===================================================================== LSTM
def lstm_forward(params, xs, state0):
    h0, c0 = state0
    T, B, I = xs.shape
    H = params["W_h"].shape[0]
    dt = _dtype(xs, params["W_h"])
    W_h = _c(params["W_h"], dt)
    h0c, c0c = _c(h0, dt), _c(c0, dt)
    gates = (xs.reshape(T * B, I) @ params["W_x"]).reshape(T, B, 4 * H).astype(dt, copy=False)
    gates += params["b_x"] + params["b_h"]                    # one GEMM for all T, biases once
    hs, cs, tanh_cs = (cupy.empty((T, B, H), dt) for _ in range(3))
    ah = cupy.empty((B, 4 * H), dt)
    k = _kernel("lstm_fwd", dt.name)
    h, c = h0c, c0c
    for t in range(T):
        cupy.matmul(h, W_h, out=ah)
        k(ah, c, H, gates[t], cs[t], tanh_cs[t], hs[t], size=B * H)   # gates[t]: a_x in, gates out
        h, c = hs[t], cs[t]
    return hs, (hs[-1], cs[-1]), _lstm.Cache(xs=xs, h0=h0, c0=c0, hs=hs, cs=cs,
                                             gates=gates, tanh_cs=tanh_cs)


def lstm_backward(params, dys, dstateT, cache):
    xs, h0, c0, hs, cs, gates, tanh_cs = (cache.xs, cache.h0, cache.c0, cache.hs, cache.cs,
        cache.gates, cache.tanh_cs)
    T, B, H = hs.shape
    dt = _dtype(dys, hs)
    dys = _c(dys, dt)
    W_hT = _c(params["W_h"].T, dt)
    das = cupy.empty((T, B, 4 * H), dt)
    dh_next = _c(dstateT[0], dt).copy()
    dc_next = _c(dstateT[1], dt).copy()
    dc_prev = cupy.empty((B, H), dt)
    c0c = _c(c0, dt)
    k = _kernel("lstm_bwd", dt.name)
    for t in range(T - 1, -1, -1):
        c_prev = cs[t - 1] if t > 0 else c0c
        k(dys[t], dh_next, dc_next, gates[t], c_prev, tanh_cs[t], H, das[t], dc_prev, size=B * H)
        cupy.matmul(das[t], W_hT, out=dh_next)                # undo h_prev W_h
        dc_next, dc_prev = dc_prev, dc_next
    dxs, grads = weight_gradients(xs, previous_states(h0, hs), das, None, params["W_x"])
    return dxs, (dh_next, dc_next), grads


# ===================================================================== GRU
def gru_forward(params, xs, h0):
    T, B, I = xs.shape
    H = params["W_h"].shape[0]
    dt = _dtype(xs, params["W_h"])
    W_h = _c(params["W_h"], dt)
    b_h = _c(params["b_h"], dt)
    gates = (xs.reshape(T * B, I) @ params["W_x"]).reshape(T, B, 3 * H).astype(dt, copy=False)
    gates += params["b_x"]                                    # one GEMM for all T
    hs, hns = cupy.empty((T, B, H), dt), cupy.empty((T, B, H), dt)
    ah = cupy.empty((B, 3 * H), dt)
    k = _kernel("gru_fwd", dt.name)
    h = _c(h0, dt)
    for t in range(T):
        cupy.matmul(h, W_h, out=ah)                           # b_h is added inside the kernel
        k(ah, b_h, h, H, gates[t], hns[t], hs[t], size=B * H)   # gates[t]: a_x in, gates out
        h = hs[t]
    return hs, hs[-1], _gru.Cache(xs=xs, h0=h0, hs=hs, gates=gates, hns=hns)


def gru_backward(params, dys, dhT, cache):
    xs, h0, hs, gates, hns = cache.xs, cache.h0, cache.hs, cache.gates, cache.hns
    T, B, H = hs.shape
    dt = _dtype(dys, hs)
    dys = _c(dys, dt)
    W_hT = _c(params["W_h"].T, dt)
    dax = cupy.empty((T, B, 3 * H), dt)
    dah = cupy.empty((T, B, 3 * H), dt)
    dh_gemm = _c(dhT, dt).copy()                  # dL/dh_T enters as the "GEMM" term ...
    dh_z = cupy.zeros((B, H), dt)            # ... with no z h path term yet
    dh_z_out = cupy.empty((B, H), dt)
    h0c = _c(h0, dt)
    k = _kernel("gru_bwd", dt.name)
    for t in range(T - 1, -1, -1):
        h_prev = hs[t - 1] if t > 0 else h0c
        k(dys[t], dh_gemm, dh_z, gates[t], hns[t], h_prev, H, dax[t], dah[t], dh_z_out,
          size=B * H)
        cupy.matmul(dah[t], W_hT, out=dh_gemm)                # undo h_prev W_h
        dh_z, dh_z_out = dh_z_out, dh_z
    dh0 = dh_gemm + dh_z                                   # both paths into h0
    dxs, grads = weight_gradients(xs, previous_states(h0, hs), dax, dah, params["W_x"])
    return dxs, dh0, grads


ENGINES = {"gru": ("fast (cupy fused kernels)", gru_forward, gru_backward),
           "lstm": ("fast (cupy fused kernels)", lstm_forward, lstm_backward)}
