"""Optional compiled helper for the LSTM and GRU steps on the CPU (beside the NumPy fast path).

At small batch sizes a NumPy step is bounded by call overhead (~0.7 µs per ufunc,
~17 calls per LSTM step forward+backward), and at mid sizes by the ~10 passes the
gate math makes over each (B, G·H) block. Here the whole gate math of one step is
ONE C function (one pass, SIMD ``tanh`` from glibc's libmvec), called through
``ctypes``; the GEMMs stay NumPy's (OpenBLAS). A step is then: forward
``h @ W_h`` + one call; backward one call + ``da @ W_hᵀ``.

The C source below is compiled on first use with the system C compiler
(``$CC`` or ``cc``) into ``$SCRATCHRNN_CACHE`` (default ``~/.cache/scratchrnn``),
keyed by source, compiler and CPU. Nothing is required: if there is no compiler,
or ``SCRATCHRNN_COMPILED=0``, or the build fails, ``available()`` is False and the
NumPy fast engine runs. Tested equal to the cells in tests/test_engines.py.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

from ..backend import CPU
from ..cells import gru as _gru
from ..cells import lstm as _lstm
from ..cells.common import previous_states, weight_gradients

np = CPU.xp   # host NumPy, through the backend seam

SOURCE = r"""
#include <math.h>
#include <stddef.h>

/* One LSTM step, gate order i, f, g, o; rows b of a (B, 4H) block; T = float or double.
   forward:  a = g_io (x W_x + b, overwritten) + ah (h W_h);  i,f,o = sigma(a), g = tanh(a)
             c = f c_prev + i g;  tanh_c = tanh(c);  h = o tanh_c
   backward: dh = dy + dh_next;  dc = dc_next + dh o (1 - tanh_c^2)
             da_i = dc g i(1-i)  da_f = dc c_prev f(1-f)  da_g = dc i (1-g^2)
             da_o = dh tanh_c o(1-o);  dc_prev = dc f                                   */
#define LSTM(T, SUF, TANH)                                                                \
void lstm_fwd_##SUF(long B, long H, T *restrict g_io, const T *restrict ah,               \
                    const T *restrict c_prev, T *restrict c, T *restrict tanh_c,          \
                    T *restrict h) {                                                      \
  for (long b = 0; b < B; ++b) {                                                          \
    T *g = g_io + b * 4 * H; const T *a = ah + b * 4 * H;                                 \
    const T *cp = c_prev + b * H; T *cb = c + b * H, *tc = tanh_c + b * H, *hb = h + b * H; \
    for (long j = 0; j < 2 * H; ++j) g[j] = (T)0.5 * TANH((T)0.5 * (g[j] + a[j])) + (T)0.5; \
    for (long j = 2 * H; j < 3 * H; ++j) g[j] = TANH(g[j] + a[j]);                        \
    for (long j = 3 * H; j < 4 * H; ++j) g[j] = (T)0.5 * TANH((T)0.5 * (g[j] + a[j])) + (T)0.5; \
    for (long j = 0; j < H; ++j) cb[j] = g[H + j] * cp[j] + g[j] * g[2 * H + j];          \
    for (long j = 0; j < H; ++j) tc[j] = TANH(cb[j]);                                     \
    for (long j = 0; j < H; ++j) hb[j] = g[3 * H + j] * tc[j];                            \
  }                                                                                       \
}                                                                                         \
void lstm_bwd_##SUF(long B, long H, const T *restrict dy, const T *restrict dh_next,     \
                    const T *restrict dc_next, const T *restrict gates,                   \
                    const T *restrict c_prev, const T *restrict tanh_c,                   \
                    T *restrict da, T *restrict dc_prev) {                                \
  for (long b = 0; b < B; ++b) {                                                          \
    const T *g = gates + b * 4 * H; T *d = da + b * 4 * H;                                \
    const T *y = dy + b * H, *hn = dh_next + b * H, *cn = dc_next + b * H;                \
    const T *cp = c_prev + b * H, *tc = tanh_c + b * H; T *dcp = dc_prev + b * H;         \
    for (long j = 0; j < H; ++j) {                                                        \
      T i = g[j], f = g[H + j], gg = g[2 * H + j], o = g[3 * H + j], t = tc[j];           \
      T dh = y[j] + hn[j];                                                                \
      T dc = cn[j] + dh * o * ((T)1 - t * t);                                             \
      d[j] = dc * gg * i * ((T)1 - i);                                                    \
      d[H + j] = dc * cp[j] * f * ((T)1 - f);                                             \
      d[2 * H + j] = dc * i * ((T)1 - gg * gg);                                           \
      d[3 * H + j] = dh * t * o * ((T)1 - o);                                             \
      dcp[j] = dc * f;                                                                    \
    }                                                                                     \
  }                                                                                       \
}
LSTM(float, f32, tanhf)
LSTM(double, f64, tanh)

/* One GRU step (reset-after), gate order r, z, n; a (B, 3H) block.
   forward:  g_io holds a_x = x W_x + b_x on entry; ah = h W_h (b_h added here)
             r, z = sigma(a_x + a_h);  hn = a_h,n;  n = tanh(a_x,n + r hn);  h = n + z (h_prev - n)
   backward: dh = dy + dh_gemm + dh_z  (dh_gemm = da_h W_h^T, dh_z = z dh, both from step t+1)
             da_n = dh (1-z)(1-n^2);  da_r = da_n hn r(1-r);  da_z = dh (h_prev - n) z(1-z)
             dax = [da_r, da_z, da_n];  dah = [da_r, da_z, da_n r];  dh_z_out = z dh          */
#define GRU(T, SUF, TANH)                                                                 \
void gru_fwd_##SUF(long B, long H, T *restrict g_io, const T *restrict ah,                \
                   const T *restrict b_h, const T *restrict h_prev, T *restrict hn,       \
                   T *restrict h) {                                                       \
  for (long b = 0; b < B; ++b) {                                                          \
    T *g = g_io + b * 3 * H; const T *a = ah + b * 3 * H;                                 \
    const T *hp = h_prev + b * H; T *hnb = hn + b * H, *hb = h + b * H;                   \
    for (long j = 0; j < 2 * H; ++j)                                                      \
      g[j] = (T)0.5 * TANH((T)0.5 * (g[j] + (a[j] + b_h[j]))) + (T)0.5;                   \
    for (long j = 0; j < H; ++j) {                                                        \
      T n_in = a[2 * H + j] + b_h[2 * H + j];                                             \
      hnb[j] = n_in;                                                                      \
      g[2 * H + j] = TANH(g[2 * H + j] + g[j] * n_in);                                    \
    }                                                                                     \
    for (long j = 0; j < H; ++j) {                                                        \
      T n = g[2 * H + j];                                                                 \
      hb[j] = n + g[H + j] * (hp[j] - n);                                                 \
    }                                                                                     \
  }                                                                                       \
}                                                                                         \
void gru_bwd_##SUF(long B, long H, const T *restrict dy, const T *restrict dh_gemm,      \
                   const T *restrict dh_z, const T *restrict gates, const T *restrict hn, \
                   const T *restrict h_prev, T *restrict dax, T *restrict dah,           \
                   T *restrict dh_z_out) {                                                \
  for (long b = 0; b < B; ++b) {                                                          \
    const T *g = gates + b * 3 * H; T *dx = dax + b * 3 * H, *dhh = dah + b * 3 * H;      \
    const T *y = dy + b * H, *hg = dh_gemm + b * H, *hz = dh_z + b * H;                   \
    const T *hnb = hn + b * H, *hp = h_prev + b * H; T *hzo = dh_z_out + b * H;           \
    for (long j = 0; j < H; ++j) {                                                        \
      T r = g[j], z = g[H + j], n = g[2 * H + j];                                         \
      T dh = y[j] + hg[j] + hz[j];                                                        \
      T dan = dh * ((T)1 - z) * ((T)1 - n * n);                                           \
      T dar = dan * hnb[j] * r * ((T)1 - r);                                              \
      T daz = dh * (hp[j] - n) * z * ((T)1 - z);                                          \
      dx[j] = dar; dx[H + j] = daz; dx[2 * H + j] = dan;                                  \
      dhh[j] = dar; dhh[H + j] = daz; dhh[2 * H + j] = dan * r;                           \
      hzo[j] = z * dh;                                                                    \
    }                                                                                     \
  }                                                                                       \
}
GRU(float, f32, tanhf)
GRU(double, f64, tanh)
"""

_FLAGS = ["-O3", "-march=native", "-ffast-math", "-fPIC", "-shared"]
_lib = None
_tried = False
_error = None


def _cpu_key():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return line
    except OSError:
        pass
    return platform.processor() + platform.machine()


def _build():
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise RuntimeError("no C compiler found (set CC)")
    key = hashlib.sha256("\n".join([SOURCE, cc, " ".join(_FLAGS), _cpu_key(),
                                    platform.platform()]).encode()).hexdigest()[:16]
    cache = Path(os.environ.get("SCRATCHRNN_CACHE", Path.home() / ".cache" / "scratchrnn"))
    so = cache / f"cell_steps_{key}.so"
    if not so.exists():
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cache) as tmp:
            src = Path(tmp) / "cell_steps.c"
            src.write_text(SOURCE)
            out = Path(tmp) / so.name
            subprocess.run([cc, *_FLAGS, "-o", str(out), str(src), "-lm"], check=True,
                           capture_output=True, timeout=120)
            os.replace(out, so)                      # atomic: concurrent builds are safe
    lib = ctypes.CDLL(str(so))
    for suf in ("f32", "f64"):
        for name, nargs in (("lstm_fwd_", 6), ("lstm_bwd_", 8), ("gru_fwd_", 6), ("gru_bwd_", 9)):
            fn = getattr(lib, name + suf)
            fn.argtypes = [ctypes.c_long, ctypes.c_long] + [ctypes.c_void_p] * nargs
            fn.restype = None
    return lib


def available():
    """True when the helper is built (or builds now) and not disabled by SCRATCHRNN_COMPILED=0."""
    global _lib, _tried, _error
    if os.environ.get("SCRATCHRNN_COMPILED", "1").strip() in ("0", "false", "no", "off"):
        return False
    if not _tried:
        _tried = True
        try:
            _lib = _build()
        except Exception as exc:                     # no compiler, failed build, no libm ...
            _lib, _error = None, f"{type(exc).__name__}: {exc}"
    return _lib is not None


def unavailable_reason():
    return None if available() else (_error or "disabled by SCRATCHRNN_COMPILED=0")


def supports(*arrays):
    """The helper handles C-contiguous float32/float64 arrays of one dtype."""
    dt = arrays[0].dtype
    return dt in (np.float32, np.float64) and all(a.dtype == dt for a in arrays)


def _fns(dt):
    if not available():
        raise RuntimeError(f"the compiled LSTM helper is unavailable: {unavailable_reason()}")
    suf = "f32" if dt == np.float32 else "f64"
    return getattr(_lib, "lstm_fwd_" + suf), getattr(_lib, "lstm_bwd_" + suf)


def lstm_forward(params, xs, state0):
    h0, c0 = state0
    T, B, I = xs.shape
    W_h = params["W_h"]
    H = W_h.shape[0]
    dt = np.result_type(xs, W_h)
    h0c = np.ascontiguousarray(h0, dtype=dt)
    c0c = np.ascontiguousarray(c0, dtype=dt)
    W_h = np.ascontiguousarray(W_h, dtype=dt)
    gates = np.empty((T, B, 4 * H), dt)
    np.matmul(xs.reshape(T * B, I), params["W_x"], out=gates.reshape(T * B, 4 * H))
    gates += params["b_x"] + params["b_h"]                      # a_x of every step, biases once
    hs, cs, tanh_cs = (np.empty((T, B, H), dt) for _ in range(3))
    ah = np.empty((B, 4 * H), dt)
    fwd, _ = _fns(dt)
    step_g, step_h = gates.strides[0], hs.strides[0]
    p_g, p_h, p_c, p_tc = (a.ctypes.data for a in (gates, hs, cs, tanh_cs))
    p_ah = ah.ctypes.data
    h, p_cprev = h0c, c0c.ctypes.data
    for t in range(T):
        np.matmul(h, W_h, out=ah)
        fwd(B, H, p_g + t * step_g, p_ah, p_cprev, p_c + t * step_h, p_tc + t * step_h,
            p_h + t * step_h)
        h, p_cprev = hs[t], p_c + t * step_h
    return hs, (hs[-1], cs[-1]), _lstm.Cache(xs, h0, c0, hs, cs, gates, tanh_cs)


def lstm_backward(params, dys, dstateT, cache):
    xs, h0, c0, hs, cs, gates, tanh_cs = (cache.xs, cache.h0, cache.c0, cache.hs, cache.cs,
        cache.gates, cache.tanh_cs)
    T, B, H = hs.shape
    dt = np.result_type(dys, hs)
    dys = np.ascontiguousarray(dys, dtype=dt)
    c0c = np.ascontiguousarray(c0, dtype=dt)
    W_hT = np.ascontiguousarray(params["W_h"].T, dtype=dt)
    das = np.empty((T, B, 4 * H), dt)
    dh_next = np.array(dstateT[0], dtype=dt, copy=True, order="C")
    dc_a = np.array(dstateT[1], dtype=dt, copy=True, order="C")
    dc_b = np.empty((B, H), dt)
    _, bwd = _fns(dt)
    sg, sh = gates.strides[0], hs.strides[0]
    p_g, p_tc, p_c, p_dy, p_da = (a.ctypes.data for a in (gates, tanh_cs, cs, dys, das))
    p_dh = dh_next.ctypes.data
    for t in range(T - 1, -1, -1):
        p_cprev = p_c + (t - 1) * sh if t > 0 else c0c.ctypes.data
        bwd(B, H, p_dy + t * sh, p_dh, dc_a.ctypes.data, p_g + t * sg, p_cprev, p_tc + t * sh,
            p_da + t * sg, dc_b.ctypes.data)
        np.matmul(das[t], W_hT, out=dh_next)                    # undo h_prev W_h
        dc_a, dc_b = dc_b, dc_a
    dxs, grads = weight_gradients(xs, previous_states(h0, hs), das, None, params["W_x"])
    return dxs, (dh_next, dc_a), grads


def gru_forward(params, xs, h0):
    T, B, I = xs.shape
    W_h = params["W_h"]
    H = W_h.shape[0]
    dt = np.result_type(xs, W_h)
    fwd = getattr(_lib_checked(), "gru_fwd_" + _suffix(dt))
    h0c = np.ascontiguousarray(h0, dtype=dt)
    W_h = np.ascontiguousarray(W_h, dtype=dt)
    b_h = np.ascontiguousarray(params["b_h"], dtype=dt)
    gates = np.empty((T, B, 3 * H), dt)
    np.matmul(xs.reshape(T * B, I), params["W_x"], out=gates.reshape(T * B, 3 * H))
    gates += params["b_x"]                                      # a_x of every step
    hs, hns = np.empty((T, B, H), dt), np.empty((T, B, H), dt)
    ah = np.empty((B, 3 * H), dt)
    sg, sh = gates.strides[0], hs.strides[0]
    p_g, p_h, p_hn, p_ah, p_bh = (a.ctypes.data for a in (gates, hs, hns, ah, b_h))
    h, p_hprev = h0c, h0c.ctypes.data
    for t in range(T):
        np.matmul(h, W_h, out=ah)
        fwd(B, H, p_g + t * sg, p_ah, p_bh, p_hprev, p_hn + t * sh, p_h + t * sh)
        h, p_hprev = hs[t], p_h + t * sh
    return hs, hs[-1], _gru.Cache(xs, h0, hs, gates, hns)


def gru_backward(params, dys, dhT, cache):
    xs, h0, hs, gates, hns = cache.xs, cache.h0, cache.hs, cache.gates, cache.hns
    T, B, H = hs.shape
    dt = np.result_type(dys, hs)
    bwd = getattr(_lib_checked(), "gru_bwd_" + _suffix(dt))
    dys = np.ascontiguousarray(dys, dtype=dt)
    h0c = np.ascontiguousarray(h0, dtype=dt)
    W_hT = np.ascontiguousarray(params["W_h"].T, dtype=dt)
    dax = np.empty((T, B, 3 * H), dt)
    dah = np.empty((T, B, 3 * H), dt)
    dh_gemm = np.array(dhT, dtype=dt, copy=True, order="C")     # dL/dh_T enters here ...
    dz_a = np.zeros((B, H), dt)                                 # ... with no z-path term yet
    dz_b = np.empty((B, H), dt)
    sg, sh = gates.strides[0], hs.strides[0]
    p_g, p_hn, p_h, p_dy, p_dax, p_dah = (a.ctypes.data for a in (gates, hns, hs, dys, dax, dah))
    p_dhg = dh_gemm.ctypes.data
    for t in range(T - 1, -1, -1):
        p_hprev = p_h + (t - 1) * sh if t > 0 else h0c.ctypes.data
        bwd(B, H, p_dy + t * sh, p_dhg, dz_a.ctypes.data, p_g + t * sg, p_hn + t * sh, p_hprev,
            p_dax + t * sg, p_dah + t * sg, dz_b.ctypes.data)
        np.matmul(dah[t], W_hT, out=dh_gemm)                    # undo h_prev W_h
        dz_a, dz_b = dz_b, dz_a
    dh0 = dh_gemm + dz_a                                        # both paths into h0
    dxs, grads = weight_gradients(xs, previous_states(h0, hs), dax, dah, params["W_x"])
    return dxs, dh0, grads


def _lib_checked():
    if not available():
        raise RuntimeError(f"the compiled helper is unavailable: {unavailable_reason()}")
    return _lib


def _suffix(dt):
    return "f32" if dt == np.float32 else "f64"


def contiguous_ok(cache):
    """The compiled backward indexes the cache arrays by raw strides: they must be C-contiguous."""
    return all(a.flags.c_contiguous for a in cache[2:] if hasattr(a, "flags"))
