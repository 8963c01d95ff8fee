"""Optional compiled helper for the LSTM and GRU steps on the CPU (beside the NumPy fast path).

At small batch sizes a NumPy step is bounded by call overhead (~0.7 µs per ufunc,
~17 calls per LSTM step forward+backward), and at mid sizes by the ~10 passes the
gate math makes over each (B, G·H) block. Here the whole gate math of one step is
ONE C function (one pass, SIMD ``tanh`` from glibc's libmvec), generated from the
elementwise statements of ``gate_math.py`` (the CuPy kernels' source too), called through
``ctypes``; the GEMMs stay NumPy's (OpenBLAS). A step is then: forward
``h @ W_h`` + one call; backward one call + ``da @ W_hᵀ``. At batch 1 (H up to
``BATCH_ONE_MAX_H``) the LSTM's whole time loop is one call instead: the per-step
vector-matrix products are done in C, which saves two NumPy/BLAS calls and one ctypes
call a step (fwd+bwd 1.6x faster at T50 H100; docs/performance.md §2).

The C source below is compiled on first use with the system C compiler
(``$CC`` or ``cc``) into ``$SCRATCHRNN_CACHE`` (default ``~/.cache/scratchrnn``),
keyed by a hash of source, flags, compiler and CPU. It is built without -ffast-math
(NaN and inf propagate). Nothing is required: if there is no compiler or the build
fails, one warning line says so and ``available()`` is False (so is it with
``SCRATCHRNN_COMPILED=0``, silently); the NumPy fast engine then runs. Tested equal to the
cells in tests/engines/test_engines.py.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

from scratchrnn.book.cells import gru as _gru
from scratchrnn.book.cells import lstm as _lstm
from scratchrnn.book.cells.common import previous_states, weight_gradients
from scratchrnn.core.backend import CPU
from scratchrnn.engines import gate_math

np = CPU.xp   # host NumPy, through the backend seam

SIMD_TANH = """
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
/* glibc's libmvec has SIMD tanh; math.h declares it only under -ffast-math, which
   this build does not use (it would let the compiler assume no NaN or inf). */
__attribute__((simd("notinbranch"))) double tanh(double);
__attribute__((simd("notinbranch"))) float tanhf(float);
#endif
"""
BATCH_ONE_LOOPS = """
/* The LSTM's whole time loop at batch 1 (one call per sequence, no BLAS call per step):
   the product h W_h is a vector-matrix product, done here row by row of W_h (H, 4H);
   the gate math of each step is the generated lstm_fwd / lstm_bwd above. */
#define BATCH_ONE_LOOPS(C, SUF)                                                        \
void lstm_seq_fwd_b1_##SUF(long T, long H, const C *restrict W_h, const C *h0,          \
                           const C *c0, C *gates, C *hs, C *cs, C *tanh_cs,              \
                           C *restrict ah) {                                             \
  const C *h = h0, *c = c0;                                                              \
  for (long t = 0; t < T; ++t) {                                                         \
    for (long n = 0; n < 4 * H; ++n) ah[n] = 0;                                          \
    for (long k = 0; k < H; ++k) {                /* ah = h W_h */                       \
      const C hk = h[k], *restrict w = W_h + k * 4 * H;                                  \
      for (long n = 0; n < 4 * H; ++n) ah[n] += hk * w[n];                               \
    }                                                                                    \
    lstm_fwd_##SUF(1, H, ah, c, gates + t * 4 * H, cs + t * H, tanh_cs + t * H,         \
                   hs + t * H);                                                          \
    h = hs + t * H; c = cs + t * H;                                                      \
  }                                                                                      \
}                                                                                        \
void lstm_seq_bwd_b1_##SUF(long T, long H, const C *restrict W_hT, const C *dys,        \
                           const C *gates, const C *cs, const C *c0, const C *tanh_cs,  \
                           C *das, C *restrict dh, C *restrict dc, C *restrict dc_prev) { \
  for (long t = T - 1; t >= 0; --t) {                                                    \
    const C *c_prev = t > 0 ? cs + (t - 1) * H : c0;                                    \
    C *restrict da = das + t * 4 * H;                                                    \
    lstm_bwd_##SUF(1, H, dys + t * H, dh, dc, gates + t * 4 * H, c_prev,                \
                   tanh_cs + t * H, da, dc_prev);                                        \
    for (long k = 0; k < H; ++k) dh[k] = 0;                                              \
    for (long n = 0; n < 4 * H; ++n) {            /* undo h_prev W_h: dh = da W_hᵀ, */   \
      const C dan = da[n], *restrict w = W_hT + n * H;  /* as rows of W_hᵀ (4H, H): */   \
      for (long k = 0; k < H; ++k) dh[k] += dan * w[k]; /* no reduction to reorder */    \
    }                                                                                    \
    for (long k = 0; k < H; ++k) dc[k] = dc_prev[k];                                     \
  }                                                                                      \
}
BATCH_ONE_LOOPS(float, f32)
BATCH_ONE_LOOPS(double, f64)
"""

SOURCE = (gate_math.c_source().replace("#include <stddef.h>\n", "#include <stddef.h>\n" + SIMD_TANH, 1)
          + BATCH_ONE_LOOPS)
"""The C helper: ``gate_math``'s elementwise statements in loops, float and double, and the
LSTM's batch-1 time loops around them."""

BATCH_ONE_MAX_H = 128
"""The batch-1 loops run up to this H; above it W_h (4H² elements) no longer fits the L2
cache, the vector-matrix product is bound by memory, and two BLAS threads do it faster."""

FLAGS = ["-O3", "-march=native", "-fno-math-errno", "-fPIC", "-shared"]
"""No -ffast-math: NaN and inf must propagate so that a diverging run is detected."""
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
    key = hashlib.sha256("\n".join([SOURCE, cc, " ".join(FLAGS), _cpu_key(),
                                    platform.platform()]).encode()).hexdigest()[:16]
    cache = Path(os.environ.get("SCRATCHRNN_CACHE", Path.home() / ".cache" / "scratchrnn"))
    so = cache / f"cell_steps_{key}.so"
    if not so.exists():
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cache) as tmp:
            src = Path(tmp) / "cell_steps.c"
            src.write_text(SOURCE)
            out = Path(tmp) / so.name
            subprocess.run([cc, *FLAGS, "-o", str(out), str(src), "-lm"], check=True,
                           capture_output=True, timeout=120)
            os.replace(out, so)                      # atomic: concurrent builds are safe
    lib = ctypes.CDLL(str(so))
    for suf in ("f32", "f64"):
        for op in gate_math.OPS.values():
            fn = getattr(lib, f"{op.name}_{suf}")
            fn.argtypes = [ctypes.c_long, ctypes.c_long] + [ctypes.c_void_p] * (
                len(op.inputs) + len(op.outputs))
            fn.restype = None
    for suf in ("f32", "f64"):
        getattr(lib, f"lstm_seq_fwd_b1_{suf}").argtypes = [ctypes.c_long] * 2 + [ctypes.c_void_p] * 8
        getattr(lib, f"lstm_seq_bwd_b1_{suf}").argtypes = [ctypes.c_long] * 2 + [ctypes.c_void_p] * 10
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
            _lib, _error = None, f"{type(exc).__name__}: {exc}".splitlines()[0]
            warnings.warn(f"scratchrnn: the compiled CPU step is off ({_error}); "
                          "the NumPy fast engine runs instead.", RuntimeWarning, stacklevel=2)
    return _lib is not None


def unavailable_reason():
    return None if available() else (_error or "disabled by SCRATCHRNN_COMPILED=0")


def supports(*arrays):
    """The helper handles C-contiguous float32/float64 arrays of one dtype."""
    dt = arrays[0].dtype
    return dt in (np.float32, np.float64) and all(a.dtype == dt for a in arrays)


def _function(name, dt):
    """The compiled ``gate_math`` op ``name`` for dtype dt (float32 or float64)."""
    if not available():
        raise RuntimeError(f"the compiled helper is unavailable: {unavailable_reason()}")
    return getattr(_lib, f"{name}_{'f32' if dt == np.float32 else 'f64'}")


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
    fwd = _function("lstm_fwd", dt)
    step_g, step_h = gates.strides[0], hs.strides[0]
    p_g, p_h, p_c, p_tc = (a.ctypes.data for a in (gates, hs, cs, tanh_cs))
    p_ah = ah.ctypes.data
    if B == 1 and H <= BATCH_ONE_MAX_H:                         # the whole loop in one call
        _function("lstm_seq_fwd_b1", dt)(T, H, W_h.ctypes.data, h0c.ctypes.data, c0c.ctypes.data,
                                         p_g, p_h, p_c, p_tc, p_ah)
        return hs, (hs[-1], cs[-1]), _lstm.Cache(xs=xs, h0=h0, c0=c0, hs=hs, cs=cs,
                                                 gates=gates, tanh_cs=tanh_cs)
    h, p_cprev = h0c, c0c.ctypes.data
    for t in range(T):
        np.matmul(h, W_h, out=ah)
        fwd(B, H, p_ah, p_cprev, p_g + t * step_g, p_c + t * step_h, p_tc + t * step_h,
            p_h + t * step_h)
        h, p_cprev = hs[t], p_c + t * step_h
    return hs, (hs[-1], cs[-1]), _lstm.Cache(xs=xs, h0=h0, c0=c0, hs=hs, cs=cs,
                                             gates=gates, tanh_cs=tanh_cs)


def lstm_backward(params, dys, dstateT, cache):
    xs, h0, c0, hs, cs, gates, tanh_cs = (cache.xs, cache.h0, cache.c0, cache.hs, cache.cs,
        cache.gates, cache.tanh_cs)
    T, B, H = hs.shape
    dt = np.result_type(dys, hs)
    dys = np.ascontiguousarray(dys, dtype=dt)
    c0c = np.ascontiguousarray(c0, dtype=dt)
    das = np.empty((T, B, 4 * H), dt)
    dh_next = np.array(dstateT[0], dtype=dt, copy=True, order="C")
    dc_a = np.array(dstateT[1], dtype=dt, copy=True, order="C")
    dc_b = np.empty((B, H), dt)
    sg, sh = gates.strides[0], hs.strides[0]
    p_g, p_tc, p_c, p_dy, p_da = (a.ctypes.data for a in (gates, tanh_cs, cs, dys, das))
    p_dh = dh_next.ctypes.data
    if B == 1 and H <= BATCH_ONE_MAX_H:                         # the whole loop in one call
        W_hT = np.ascontiguousarray(params["W_h"].T, dtype=dt)
        _function("lstm_seq_bwd_b1", dt)(T, H, W_hT.ctypes.data, p_dy, p_g, p_c, c0c.ctypes.data,
                                         p_tc, p_da, p_dh, dc_a.ctypes.data, dc_b.ctypes.data)
        dxs, grads = weight_gradients(xs, previous_states(h0, hs), das, None, params["W_x"])
        return dxs, (dh_next, dc_a), grads
    W_hT = np.ascontiguousarray(params["W_h"].T, dtype=dt)
    bwd = _function("lstm_bwd", dt)
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
    fwd = _function("gru_fwd", dt)
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
        fwd(B, H, p_ah, p_bh, p_hprev, p_g + t * sg, p_hn + t * sh, p_h + t * sh)
        h, p_hprev = hs[t], p_h + t * sh
    return hs, hs[-1], _gru.Cache(xs=xs, h0=h0, hs=hs, gates=gates, hns=hns)


def gru_backward(params, dys, dhT, cache):
    xs, h0, hs, gates, hns = cache.xs, cache.h0, cache.hs, cache.gates, cache.hns
    T, B, H = hs.shape
    dt = np.result_type(dys, hs)
    bwd = _function("gru_bwd", dt)
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


def contiguous_ok(cache):
    """The compiled backward indexes the cache arrays by raw strides: they must be C-contiguous."""
    return all(a.flags.c_contiguous for a in cache[2:] if hasattr(a, "flags"))
