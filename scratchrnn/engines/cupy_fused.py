"""The CuPy fast path: one fused elementwise kernel per step for the gate math.

On a GPU the plain ``xp`` path launches ~15-20 small kernels per step (each ufunc,
each slice assignment, each temporary); here a step is one cuBLAS GEMM
(``h @ W_h``) plus ONE ``cupy.ElementwiseKernel`` that reads the pre-activations
and writes every output of the step (gates, c, tanh(c), h), and a backward step is
ONE kernel (all gate gradients and dc_prev) plus one GEMM (``da @ W_hᵀ``). The
loop-free GEMMs before and after the time loop are the NumPy fast path's
(``cells.common.weight_gradients``), written for any ``xp``.

The kernels are written in the notation of the plain code (``cells/lstm.py``,
``cells/gru.py``), one thread per (b, j) element of the (B, H) state. Math runs in
``double`` for float64 storage and in ``float`` for float32 and float16 storage
(float16 storage with float32 math: ``forward_half``). No value crosses between host
and device inside the time loop: sizes are Python ints, everything else stays on
the device.

RNN keeps the plain ``xp`` path on CuPy (its step is a GEMM plus one ufunc).

Tested equal to the cells in tests/test_engines.py (skipped without a GPU).
"""
from __future__ import annotations

from functools import lru_cache

import cupy

from ..cells import gru as _gru
from ..cells import lstm as _lstm
from ..cells.common import previous_states, weight_gradients

# ------------------------------------------------------------------ kernel sources
_PRELUDE = """
    const int b = i / H, j = i % H;
    const int k4 = b * 4 * H + j;                 // (b, gate 0, j) in a (B, 4H) row
"""

_LSTM_FWD = """
    C a_i = (C)ax[k4]         + (C)ah[k4];
    C a_f = (C)ax[k4 + H]     + (C)ah[k4 + H];
    C a_g = (C)ax[k4 + 2 * H] + (C)ah[k4 + 2 * H];
    C a_o = (C)ax[k4 + 3 * H] + (C)ah[k4 + 3 * H];
    C ig = (C)0.5 * tanh((C)0.5 * a_i) + (C)0.5;     // sigma(a) = (1 + tanh(a/2)) / 2
    C fg = (C)0.5 * tanh((C)0.5 * a_f) + (C)0.5;
    C gg = tanh(a_g);
    C og = (C)0.5 * tanh((C)0.5 * a_o) + (C)0.5;
    C cn = fg * (C)c_prev[i] + ig * gg;                // c' = f c + i g
    C tc = tanh(cn);
    gates[k4] = ig; gates[k4 + H] = fg; gates[k4 + 2 * H] = gg; gates[k4 + 3 * H] = og;
    c[i] = cn;
    tanh_c[i] = tc;
    h[i] = og * tc;                                    // h' = o tanh(c')
"""

_LSTM_BWD = """
    C ig = (C)gates[k4], fg = (C)gates[k4 + H], gg = (C)gates[k4 + 2 * H], og = (C)gates[k4 + 3 * H];
    C tc = (C)tanh_c[i];
    C dh = (C)dy[i] + (C)dh_next[i];
    C dc = (C)dc_next[i] + dh * og * ((C)1 - tc * tc);     // undo h = o tanh(c), c path
    C d_o = dh * tc;                                         // ... o path
    da[k4]         = dc * gg * ig * ((C)1 - ig);             // undo i = sigma(a_i), c = .. + i g
    da[k4 + H]     = dc * (C)c_prev[i] * fg * ((C)1 - fg);   // undo f = sigma(a_f), c = f c_prev ..
    da[k4 + 2 * H] = dc * ig * ((C)1 - gg * gg);             // undo g = tanh(a_g)
    da[k4 + 3 * H] = d_o * og * ((C)1 - og);                 // undo o = sigma(a_o)
    dc_prev[i] = dc * fg;
"""

_GRU_PRELUDE = """
    const int b = i / H, j = i % H;
    const int k3 = b * 3 * H + j;                 // (b, gate 0, j) in a (B, 3H) row
"""

_GRU_FWD = """
    C ahr = (C)ah[k3] + (C)b_h[j], ahz = (C)ah[k3 + H] + (C)b_h[j + H];
    C ahn = (C)ah[k3 + 2 * H] + (C)b_h[j + 2 * H];
    C r = (C)0.5 * tanh((C)0.5 * ((C)ax[k3] + ahr)) + (C)0.5;
    C z = (C)0.5 * tanh((C)0.5 * ((C)ax[k3 + H] + ahz)) + (C)0.5;
    C n = tanh((C)ax[k3 + 2 * H] + r * ahn);                 // reset gate scales h W_hn + b_hn
    gates[k3] = r; gates[k3 + H] = z; gates[k3 + 2 * H] = n;
    hn[i] = ahn;
    h[i] = n + z * ((C)h_prev[i] - n);                       // (1 - z) n + z h
"""

_GRU_BWD = """
    C r = (C)gates[k3], z = (C)gates[k3 + H], n = (C)gates[k3 + 2 * H];
    C dh = (C)dy[i] + (C)dh_gemm[i] + (C)dh_direct[i];      // all paths into h'
    C dn = dh * ((C)1 - z);                                  // undo h' = (1-z) n + z h
    C dz = dh * ((C)h_prev[i] - n);
    C dan = dn * ((C)1 - n * n);                             // undo n = tanh(.)
    C dar = dan * (C)hn[i] * r * ((C)1 - r);                 // undo r = sigma(.) through r a_h,n
    C daz = dz * z * ((C)1 - z);                             // undo z = sigma(.)
    dax[k3] = dar; dax[k3 + H] = daz; dax[k3 + 2 * H] = dan;
    dah[k3] = dar; dah[k3 + H] = daz; dah[k3 + 2 * H] = dan * r;
    dh_direct_out[i] = dh * z;                               // the z h_prev path
"""


def _compute_type(dtype):
    return "double" if cupy.dtype(dtype) == cupy.float64 else "float"


@lru_cache(maxsize=None)
def _kernel(name, dtype_name):
    """Compile (once per dtype) the named kernel; math in ``C`` (double or float)."""
    C = _compute_type(dtype_name)
    typedef = f"typedef {C} C;\n"
    if name == "lstm_fwd":
        return cupy.ElementwiseKernel(
            "raw T ax, raw T ah, raw T c_prev, int32 H",
            "raw T gates, raw T c, raw T tanh_c, raw T h",
            typedef + _PRELUDE + _LSTM_FWD, f"scratchrnn_lstm_fwd_{C}")
    if name == "lstm_bwd":
        return cupy.ElementwiseKernel(
            "raw T dy, raw T dh_next, raw T dc_next, raw T gates, raw T c_prev, raw T tanh_c, int32 H",
            "raw T da, raw T dc_prev",
            typedef + _PRELUDE + _LSTM_BWD, f"scratchrnn_lstm_bwd_{C}")
    if name == "gru_fwd":
        return cupy.ElementwiseKernel(
            "raw T ax, raw T ah, raw T b_h, raw T h_prev, int32 H",
            "raw T gates, raw T hn, raw T h",
            typedef + _GRU_PRELUDE + _GRU_FWD, f"scratchrnn_gru_fwd_{C}")
    if name == "gru_bwd":
        return cupy.ElementwiseKernel(
            "raw T dy, raw T dh_gemm, raw T dh_direct, raw T gates, raw T hn, raw T h_prev, int32 H",
            "raw T dax, raw T dah, raw T dh_direct_out",
            typedef + _GRU_PRELUDE + _GRU_BWD, f"scratchrnn_gru_bwd_{C}")
    raise KeyError(name)


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
    ax = (xs.reshape(T * B, I) @ params["W_x"]).reshape(T, B, 4 * H)
    ax += params["b_x"] + params["b_h"]                       # one GEMM for all T, biases once
    gates = cupy.empty((T, B, 4 * H), dt)
    hs, cs, tanh_cs = (cupy.empty((T, B, H), dt) for _ in range(3))
    ah = cupy.empty((B, 4 * H), dt)
    k = _kernel("lstm_fwd", dt.name)
    h, c = h0c, c0c
    for t in range(T):
        cupy.matmul(h, W_h, out=ah)
        k(ax[t], ah, c, H, gates[t], cs[t], tanh_cs[t], hs[t], size=B * H)
        h, c = hs[t], cs[t]
    return hs, (hs[-1], cs[-1]), _lstm.Cache(xs, h0, c0, hs, cs, gates, tanh_cs)


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
    ax = (xs.reshape(T * B, I) @ params["W_x"]).reshape(T, B, 3 * H)
    ax += params["b_x"]
    gates = cupy.empty((T, B, 3 * H), dt)
    hs, hns = cupy.empty((T, B, H), dt), cupy.empty((T, B, H), dt)
    ah = cupy.empty((B, 3 * H), dt)
    k = _kernel("gru_fwd", dt.name)
    h = _c(h0, dt)
    for t in range(T):
        cupy.matmul(h, W_h, out=ah)                           # b_h is added inside the kernel
        k(ax[t], ah, b_h, h, H, gates[t], hns[t], hs[t], size=B * H)
        h = hs[t]
    return hs, hs[-1], _gru.Cache(xs, h0, hs, gates, hns)


def gru_backward(params, dys, dhT, cache):
    xs, h0, hs, gates, hns = cache.xs, cache.h0, cache.hs, cache.gates, cache.hns
    T, B, H = hs.shape
    dt = _dtype(dys, hs)
    dys = _c(dys, dt)
    W_hT = _c(params["W_h"].T, dt)
    dax = cupy.empty((T, B, 3 * H), dt)
    dah = cupy.empty((T, B, 3 * H), dt)
    dh_gemm = _c(dhT, dt).copy()                  # dL/dh_T enters as the "GEMM" term ...
    dh_direct = cupy.zeros((B, H), dt)            # ... with no direct term yet
    dh_direct_out = cupy.empty((B, H), dt)
    h0c = _c(h0, dt)
    k = _kernel("gru_bwd", dt.name)
    for t in range(T - 1, -1, -1):
        h_prev = hs[t - 1] if t > 0 else h0c
        k(dys[t], dh_gemm, dh_direct, gates[t], hns[t], h_prev, H, dax[t], dah[t], dh_direct_out,
          size=B * H)
        cupy.matmul(dah[t], W_hT, out=dh_gemm)                # undo h_prev W_h
        dh_direct, dh_direct_out = dh_direct_out, dh_direct
    dh0 = dh_gemm + dh_direct                                   # both paths into h0
    dxs, grads = weight_gradients(xs, previous_states(h0, hs), dax, dah, params["W_x"])
    return dxs, dh0, grads


# ===================================================================== float16 storage
def forward_half(name, params, xs, state0):
    """Forward with float16 storage and float32 math in the fused kernels (GEMMs in
    float16 on cuBLAS). Returns ys (T, B, H) float16. Whether it pays is unmeasured
    (no GPU was available when this was written): see docs/performance.md."""
    half = lambda a: cupy.asarray(a, dtype=cupy.float16)
    p16 = {k: half(v) for k, v in params.items()}
    if name == "lstm":
        ys, _, _ = lstm_forward(p16, half(xs), (half(state0[0]), half(state0[1])))
    elif name == "gru":
        ys, _, _ = gru_forward(p16, half(xs), half(state0))
    else:
        raise ValueError(f"no fused float16 path for {name!r}")
    return ys


ENGINES = {"gru": ("fast (cupy fused kernels)", gru_forward, gru_backward),
           "lstm": ("fast (cupy fused kernels)", lstm_forward, lstm_backward)}
