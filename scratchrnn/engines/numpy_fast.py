"""The NumPy fast engine of the three cells: the book's math, fewer passes over memory.

Same inputs, outputs, ``Cache`` named tuples and gradients as ``cells/rnn.py``,
``cells/gru.py`` and ``cells/lstm.py`` (tested equal in ``tests/engines/test_engines.py``).
What changes, and why each pays on a CPU (numbers in docs/performance.md):

1. Every sequence buffer (outputs, cache, gate gradients) is allocated once per call
   at its full (T, B, ·) size and written in place: ``np.matmul(h, W_h, out=...)`` and
   ufuncs with ``out=``; no per-step temporaries, no stacking copies.
2. One tanh pass gives all gates: σ(a) = ½·tanh(½a) + ½, and the ½ is folded into a
   scaled copy of the sigmoid gates' weight and bias columns (exact: a power of two),
   so a step applies ``tanh`` once over (B, G·H) and then ``t·m + s`` with per-column
   vectors (m, s) = (½, ½) for sigmoid gates and (1, 0) for tanh gates.
3. The input GEMM of all T steps writes straight into the gate buffer, the two biases
   added once.
4. Backward: every derivative factor that does not depend on the incoming gradient
   (e.g. g·i·(1-i) for the input gate of an LSTM) is computed for a block of steps at
   once *into the gate-gradient buffer itself*, the block sized to stay in the L2 cache
   (all T steps when B·H is small, one step when it is large: see ``CHUNK_BYTES``); the
   reverse loop then only multiplies by dh / dc and does ``dh_prev = da @ W_hᵀ``
   (3-9 calls per step instead of ~20).
5. The weight and input gradients after the loop are the cells' own level-2 GEMMs
   (``cells.common.weight_gradients``), shared by every engine.
6. The per-step backward GEMM ``da_t @ W_hᵀ`` reads a C-contiguous copy of W_hᵀ made once
   per call: OpenBLAS runs this "NN" product 1.2-1.7x faster than the "NT" one on the
   transposed view at B = 32-128 (measured).
"""
from __future__ import annotations

from scratchrnn.book.cells import gru as _gru
from scratchrnn.book.cells import lstm as _lstm
from scratchrnn.book.cells import rnn as _rnn
from scratchrnn.book.cells.common import previous_states, weight_gradients
from scratchrnn.core.backend import CPU

np = CPU.xp   # host NumPy, through the backend seam


def _dtype(*arrays):
    return np.result_type(*arrays)


def _gate_affine(pattern, H, dt):
    """Per-column (scale, shift) for G gates: "s" (sigmoid) -> (½, ½), "t" (tanh) -> (1, 0)."""
    scale = np.concatenate([np.full(H, 0.5 if k == "s" else 1.0, dt) for k in pattern])
    shift = np.concatenate([np.full(H, 0.5 if k == "s" else 0.0, dt) for k in pattern])
    return scale, shift


CHUNK_BYTES = 1 << 19
"""Backward computes its gradient-independent factors for a block of steps just before
the reverse loop consumes them, so the block stays in the L2 cache: all T at once
makes ~15 passes over a (T, B, G*H) array in main memory, which costs more than the
per-call overhead it saves once B*G*H is large. A block holds ~CHUNK_BYTES of factors."""


def _chunks(T, step_bytes):
    """Blocks (start, stop) of steps covering T-1 .. 0, last block first."""
    K = max(1, min(T, CHUNK_BYTES // max(1, step_bytes)))
    stop = T
    while stop > 0:
        start = max(0, stop - K)
        yield start, stop
        stop = start


def _prev(s0, ss, start, stop):
    """The states entering steps start..stop-1 (s0 before step 0) as a list of 1 or 2 views."""
    if start > 0:
        return [(slice(0, stop - start), ss[start - 1:stop - 1])]
    parts = [(slice(0, 1), s0[None])]
    if stop > 1:
        parts.append((slice(1, stop), ss[0:stop - 1]))
    return parts


def _input_gemm(xs, W_x, bias, out):
    """out (T, B, GH) <- xs W_x + bias, one GEMM."""
    T, B, I = xs.shape
    np.matmul(xs.reshape(T * B, I), W_x, out=out.reshape(T * B, out.shape[-1]))
    out += bias
    return out


# ===================================================================== RNN
def rnn_forward(params, xs, h0, nonlinearity="tanh"):
    _rnn.activation(nonlinearity)                              # validates the name
    T, B, _ = xs.shape
    W_h = params["W_h"]
    H = W_h.shape[0]
    dt = _dtype(xs, W_h)
    hs = np.empty((T, B, H), dt)
    _input_gemm(xs, params["W_x"], params["b_x"] + params["b_h"], hs)   # hs[t] = a_x,t for now
    tmp = np.empty((B, H), dt)
    h = h0
    for t in range(T):
        np.matmul(h, W_h, out=tmp)
        h = hs[t]
        h += tmp                                                # a = a_x + h W_h
        if nonlinearity == "tanh":
            np.tanh(h, out=h)
        else:
            np.maximum(h, 0, out=h)
    return hs, hs[-1], _rnn.Cache(xs=xs, h0=h0, hs=hs)


def rnn_backward(params, dys, dhT, cache, nonlinearity="tanh"):
    _rnn.activation(nonlinearity)
    xs, h0, hs = cache.xs, cache.h0, cache.hs
    T, B, H = hs.shape
    dt = _dtype(dys, hs)
    das = np.empty((T, B, H), dt)
    W_hT = np.ascontiguousarray(params["W_h"].T)                # NN GEMM per step: faster
    dh = np.empty((B, H), dt)
    dh_next = np.array(dhT, dtype=dt, copy=True)
    for start, stop in _chunks(T, B * H * das.itemsize):
        d, h = das[start:stop], hs[start:stop]                  # act'(a) for a block of steps
        if nonlinearity == "tanh":
            np.multiply(h, h, out=d)
            np.subtract(1.0, d, out=d)                          # 1 - h²
        else:
            np.greater(h, 0, out=d)                             # relu' = [h > 0]
        for t in range(stop - 1, start - 1, -1):
            np.add(dys[t], dh_next, out=dh)
            das[t] *= dh                                        # undo h = act(a)
            np.matmul(das[t], W_hT, out=dh_next)                # undo h_prev W_h
    dxs, grads = weight_gradients(xs, previous_states(h0, hs), das, None, params["W_x"])
    return dxs, dh_next, grads


# ===================================================================== LSTM
def lstm_forward(params, xs, state0):
    h0, c0 = state0
    T, B, _ = xs.shape
    W_h = params["W_h"]
    H = W_h.shape[0]
    dt = _dtype(xs, W_h)
    m, s = _gate_affine("ssts", H, dt)                          # i, f, g, o
    gates = np.empty((T, B, 4 * H), dt)
    _input_gemm(xs, params["W_x"] * m, (params["b_x"] + params["b_h"]) * m, gates)
    W_h_m = W_h * m
    hs, cs, tanh_cs = (np.empty((T, B, H), dt) for _ in range(3))
    tmp = np.empty((B, 4 * H), dt)
    ig = np.empty((B, H), dt)
    h, c = h0, c0
    for t in range(T):
        a = gates[t]
        np.matmul(h, W_h_m, out=tmp)
        a += tmp                                                # m·(a_x + h W_h)
        np.tanh(a, out=a)
        a *= m
        a += s                                                  # σ for i, f, o; tanh for g
        i, f, g, o = a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H], a[:, 3 * H:]
        np.multiply(f, c, out=cs[t])
        np.multiply(i, g, out=ig)
        c = cs[t]
        c += ig                                                 # c' = f c + i g
        np.tanh(c, out=tanh_cs[t])
        h = np.multiply(o, tanh_cs[t], out=hs[t])               # h' = o tanh(c')
    return hs, (hs[-1], cs[-1]), _lstm.Cache(xs=xs, h0=h0, c0=c0, hs=hs, cs=cs,
                                             gates=gates, tanh_cs=tanh_cs)


def lstm_backward(params, dys, dstateT, cache):
    xs, h0, c0, hs, cs, gates, tanh_cs = (cache.xs, cache.h0, cache.c0, cache.hs, cache.cs,
        cache.gates, cache.tanh_cs)
    T, B, H = hs.shape
    dt = _dtype(dys, hs)
    i, f, g, o = (gates[..., k * H:(k + 1) * H] for k in range(4))
    das = np.empty((T, B, 4 * H), dt)
    di, df, dg, do = (das[..., k * H:(k + 1) * H] for k in range(4))
    W_hT = np.ascontiguousarray(params["W_h"].T)                # NN GEMM per step: faster
    dh_next = np.array(dstateT[0], dtype=dt, copy=True)
    dc_next = np.array(dstateT[1], dtype=dt, copy=True)
    dh = np.empty((B, H), dt)
    dc = np.empty((B, H), dt)
    blocks = list(_chunks(T, 4 * B * H * das.itemsize))
    e_buf = np.empty((blocks[0][1] - blocks[0][0], B, H), dt)
    for start, stop in blocks:
        # Factors independent of the incoming gradient, for this block, into da itself:
        #   da_i = dc·[g i(1-i)]   da_f = dc·[c_prev f(1-f)]   da_g = dc·[i (1-g²)]
        #   da_o = dh·[tanh_c o(1-o)]                           dc  = dc_next + dh·[o (1-tanh_c²)]
        blk = slice(start, stop)
        np.subtract(1.0, i[blk], out=di[blk]); di[blk] *= i[blk]; di[blk] *= g[blk]
        np.subtract(1.0, f[blk], out=df[blk]); df[blk] *= f[blk]
        for rows, c_prev in _prev(c0, cs, start, stop):
            df[start:stop][rows] *= c_prev
        np.multiply(g[blk], g[blk], out=dg[blk]); np.subtract(1.0, dg[blk], out=dg[blk])
        dg[blk] *= i[blk]
        np.subtract(1.0, o[blk], out=do[blk]); do[blk] *= o[blk]; do[blk] *= tanh_cs[blk]
        e = e_buf[:stop - start]
        np.multiply(tanh_cs[blk], tanh_cs[blk], out=e)
        np.subtract(1.0, e, out=e); e *= o[blk]
        for t in range(stop - 1, start - 1, -1):
            np.add(dys[t], dh_next, out=dh)
            np.multiply(dh, e[t - start], out=dc)
            dc += dc_next                                       # undo h = o tanh(c), c path
            ifg = das[t].reshape(B, 4, H)[:, :3]
            np.multiply(ifg, dc[:, None, :], out=ifg)           # undo c = f c_prev + i g, gates
            do[t] *= dh                                         # undo h = o tanh(c), o path
            np.multiply(dc, f[t], out=dc_next)                  # dc_prev
            np.matmul(das[t], W_hT, out=dh_next)                # undo h_prev W_h
    dxs, grads = weight_gradients(xs, previous_states(h0, hs), das, None, params["W_x"])
    return dxs, (dh_next, dc_next), grads


# ===================================================================== GRU
def gru_forward(params, xs, h0):
    T, B, _ = xs.shape
    W_h = params["W_h"]
    H = W_h.shape[0]
    dt = _dtype(xs, W_h)
    m, _ = _gate_affine("sst", H, dt)                           # r, z, n
    axs = np.empty((T, B, 3 * H), dt)
    _input_gemm(xs, params["W_x"] * m, params["b_x"] * m, axs)  # ½ on the r, z columns
    W_h_m, b_h_m = W_h * m, params["b_h"] * m
    gates = np.empty((T, B, 3 * H), dt)
    hs, hns = np.empty((T, B, H), dt), np.empty((T, B, H), dt)
    ah = np.empty((B, 3 * H), dt)
    h = h0
    for t in range(T):
        np.matmul(h, W_h_m, out=ah)
        ah += b_h_m                                             # [½a_h,r | ½a_h,z | a_h,n]
        rz = gates[t, :, :2 * H]
        np.add(axs[t, :, :2 * H], ah[:, :2 * H], out=rz)
        np.tanh(rz, out=rz)
        rz *= 0.5
        rz += 0.5                                               # r, z = σ(a_x + a_h)
        r, z = rz[:, :H], rz[:, H:]
        hn = hns[t]
        np.copyto(hn, ah[:, 2 * H:])
        n = gates[t, :, 2 * H:]
        np.multiply(r, hn, out=n)
        n += axs[t, :, 2 * H:]
        np.tanh(n, out=n)                                       # n = tanh(a_x,n + r a_h,n)
        h_new = hs[t]
        np.subtract(h, n, out=h_new)
        h_new *= z
        h_new += n                                              # h' = n + z (h - n)
        h = h_new
    return hs, hs[-1], _gru.Cache(xs=xs, h0=h0, hs=hs, gates=gates, hns=hns)


def gru_backward(params, dys, dhT, cache):
    xs, h0, hs, gates, hns = cache.xs, cache.h0, cache.hs, cache.gates, cache.hns
    T, B, H = hs.shape
    dt = _dtype(dys, hs)
    r, z, n = (gates[..., k * H:(k + 1) * H] for k in range(3))
    dax = np.empty((T, B, 3 * H), dt)
    fr, fz, fn = (dax[..., k * H:(k + 1) * H] for k in range(3))
    dah = np.empty((T, B, 3 * H), dt)
    W_hT = np.ascontiguousarray(params["W_h"].T)                # NN GEMM per step: faster
    dh_next = np.array(dhT, dtype=dt, copy=True)
    dh = np.empty((B, H), dt)
    dhz = np.empty((B, H), dt)
    for start, stop in _chunks(T, 3 * B * H * dax.itemsize):
        # Factors for this block of steps, into dax itself:
        #   da_n = dh·[(1-z)(1-n²)]   da_r = da_n·[hn r(1-r)]   da_z = dh·[(h_prev-n) z(1-z)]
        blk = slice(start, stop)
        np.subtract(1.0, r[blk], out=fr[blk]); fr[blk] *= r[blk]; fr[blk] *= hns[blk]
        np.subtract(1.0, z[blk], out=fz[blk]); fz[blk] *= z[blk]
        fzb, nb = fz[blk], n[blk]
        for rows, h_prev in _prev(h0, hs, start, stop):
            fzb[rows] *= h_prev - nb[rows]
        np.multiply(nb, nb, out=fn[blk]); np.subtract(1.0, fn[blk], out=fn[blk])
        fn[blk] *= 1.0 - z[blk]
        for t in range(stop - 1, start - 1, -1):
            np.add(dys[t], dh_next, out=dh)
            dan = fn[t]
            dan *= dh                                           # undo n = tanh(.), h' = (1-z) n
            fr[t] *= dan                                        # undo r = σ(.) through r a_h,n
            fz[t] *= dh                                         # undo z = σ(.)
            np.copyto(dah[t, :, :2 * H], dax[t, :, :2 * H])      # r, z see a_x + a_h alike
            np.multiply(dan, r[t], out=dah[t, :, 2 * H:])       # a_h,n is scaled by r
            np.matmul(dah[t], W_hT, out=dh_next)                # undo h_prev W_h
            np.multiply(dh, z[t], out=dhz)
            dh_next += dhz                                      # ... plus the z h_prev path
    dxs, grads = weight_gradients(xs, previous_states(h0, hs), dax, dah, params["W_x"])
    return dxs, dh_next, grads


# ===================================================================== the engine
def _with_compiled(compiled_fn, numpy_fn, contiguous_cache=False):
    """Run ``compiled_fn`` when the C helper can take these arrays, else ``numpy_fn``.
    The arrays are the call's arguments: params (a dict), arrays, state tuples, a cache."""
    from scratchrnn.engines import cpu_compiled

    def run(params, *args):
        arrays = [params["W_x"], params["W_h"]]
        for a in args:
            arrays += list(a) if isinstance(a, tuple) else [a]
        cache = args[2] if contiguous_cache else None
        arrays = [a for a in arrays if hasattr(a, "dtype")]
        if cpu_compiled.supports(*arrays) and (cache is None or cpu_compiled.contiguous_ok(cache)):
            return compiled_fn(params, *args)
        return numpy_fn(params, *args)
    return run


def engine(cell_name, compiled=None):
    """The NumPy fast engine of one cell ("rnn" | "gru" | "lstm") as (name, forward, backward).

    compiled: run the LSTM and GRU gate math through the C helper (``cpu_compiled``);
    None uses it where it builds (and ``SCRATCHRNN_COMPILED`` is not 0). RNN has no C step.
    """
    from scratchrnn.engines import cpu_compiled
    if cell_name == "rnn":
        return "fast (numpy)", rnn_forward, rnn_backward
    forward, backward = {"lstm": (lstm_forward, lstm_backward),
                         "gru": (gru_forward, gru_backward)}[cell_name]
    if compiled is None:
        compiled = cpu_compiled.available()
    if not compiled:
        return "fast (numpy)", forward, backward
    c_forward, c_backward = {"lstm": (cpu_compiled.lstm_forward, cpu_compiled.lstm_backward),
                             "gru": (cpu_compiled.gru_forward, cpu_compiled.gru_backward)}[cell_name]
    return ("fast (numpy + compiled C)", _with_compiled(c_forward, forward),
            _with_compiled(c_backward, backward, contiguous_cache=True))
