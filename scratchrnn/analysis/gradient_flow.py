"""Gradient flow: how fast does the gradient of a late state die out going back in time?

For one layer run over T steps (states s_1 .. s_T from inputs x_1 .. x_T and s_0), the
quantity is the Jacobian J_d = dh_T / dh_{T-d} for d = 0 .. T (and, for an LSTM, also
dc_T / dc_{T-d}). It is reported as the root-mean-square singular value

    ||J_d||_F / sqrt(H)

so that d = 0 (J = I) gives 1, and an RNN whose step Jacobian is a*Q (Q orthogonal) gives
exactly a^d. The input of the layer (what the layer below sends) is held fixed, so this is
the layer's own recurrence; for a stack it is exact, since h_t of layer k reaches h_T of
layer k only through layer k's recurrence.

How it is computed: the state part of the cell's hand-written ``step_backward`` (its
``gates_backward`` and ``dh_prev = da @ W_hᵀ``; ``state_step_backward``) is run in a reverse scan
over the forward cache, starting from H probe vectors at once (the rows of the identity as
a batch of H, each batch row of the forward pass repeated H times; for an LSTM the probes
at h_T and those at c_T ride in one batch of 2H), with no gradient arriving from the
outputs (dy = 0). After undoing step T-d+1 the carried state gradient
is the matrix J_d (one row per probe), read off at every d. With B sequences the squared
norms are averaged over them.
"""
from __future__ import annotations

from scratchrnn.book.cells import gru, lstm, rnn
from scratchrnn.core.backend import CPU, backend_of

np = CPU.xp

FORGET_BIASES = (0.0, 1.0, -2.0, 2.0, 10.0)
"""The LSTM forget-gate biases of the untrained sweep: none, the common +1, a closing gate,
and two that hold it open."""


def _step_cache(cell, cache, t, rep):
    """The StepCache of step t rebuilt from a whole-sequence Cache, each row repeated by ``rep``."""
    h_prev = cache.h0 if t == 0 else cache.hs[t - 1]
    if cell is rnn:
        return rnn.StepCache(x=rep(cache.xs[t]), h_prev=rep(h_prev), h=rep(cache.hs[t]))
    if cell is gru:
        return gru.StepCache(x=rep(cache.xs[t]), h_prev=rep(h_prev), gates=rep(cache.gates[t]),
                             hn=rep(cache.hns[t]))
    c_prev = cache.c0 if t == 0 else cache.cs[t - 1]
    return lstm.StepCache(x=rep(cache.xs[t]), h_prev=rep(h_prev), c_prev=rep(c_prev),
                          gates=rep(cache.gates[t]), tanh_c=rep(cache.tanh_cs[t]))


def state_step_backward(cell, params, dstate, step, nonlinearity="tanh"):
    """Undo one step for the recurrent state only: dL/d(state after step) -> dL/d(state before).

    The same computation as the state part of the cell's ``step_backward`` (its gate math,
    ``gates_backward``, then ``dh_prev = da @ W_hᵀ``), without the input gradient and the
    weight gradients, which this analysis does not need (they would triple the work; the
    two are tested equal). ``step`` is the cell's StepCache; no gradient comes from the output.
    """
    W_hT = params["W_h"].T
    if cell is lstm:
        dh, dc = dstate
        da, dc_prev = lstm.gates_backward(dh, dc, step.gates, step.c_prev, step.tanh_c)
        return da @ W_hT, dc_prev                                  # undo h_prev W_h
    if cell is gru:
        dax, dah, dh_prev = gru.gates_backward(dstate, step.gates, step.hn, step.h_prev)
        return dh_prev + dah @ W_hT                                # z path + undo h_prev W_h
    _, act_backward = rnn.activation(nonlinearity)
    return act_backward(dstate, step.h) @ W_hT                     # undo h = act(a), h_prev W_h


def flow_from_cache(cell, params, cache, step_options=None, max_distance=None):
    """Jacobian norms from one layer's forward cache.

    cell:   the cell module (``cells.rnn``, ``cells.gru`` or ``cells.lstm``).
    params: that layer's {"W_x", "W_h", "b_x", "b_h"}.
    cache:  the layer's ``Cache`` over T steps and B sequences (``layer.caches[k]``).
    step_options: e.g. {"nonlinearity": "relu"} for an RNN.
    max_distance: stop after this many steps back (default T).
    Returns {"h": (D+1,) float64} -- and "c" for LSTM -- the RMS singular value of
    dh_T/dh_{T-d} (dc_T/dc_{T-d}) for d = 0..D, averaged over the B sequences.
    """
    opts = dict(step_options or {})
    xp = backend_of(cache.hs).xp
    T, B, H = cache.hs.shape
    D = T if max_distance is None else min(int(max_distance), T)
    eye = xp.tile(xp.eye(H, dtype=cache.hs.dtype), (B, 1))        # (B*H, H): row b*H+j = e_j
    zero = xp.zeros_like(eye)
    if cell is lstm:       # two probe blocks in one batch: [e_j at h_T | e_j at c_T]
        copies = 2
        dstate = (xp.concatenate([eye, zero]), xp.concatenate([zero, eye]))
        read = {"h": lambda ds: ds[0][:B * H], "c": lambda ds: ds[1][B * H:]}
    else:
        copies = 1
        dstate = eye
        read = {"h": lambda ds: ds}
    rep = lambda a: xp.tile(xp.repeat(a, H, axis=0), (copies, 1))  # (B, .) -> (copies*B*H, .)
    norms = {which: [_rms_norm(get(dstate), B, H, xp)] for which, get in read.items()}
    for t in range(T - 1, T - 1 - D, -1):
        step = _step_cache(cell, cache, t, rep)
        dstate = state_step_backward(cell, params, dstate, step, **opts)         # undo step t
        for which, get in read.items():
            norms[which].append(_rms_norm(get(dstate), B, H, xp))
    return {which: np.asarray(v, dtype=np.float64) for which, v in norms.items()}


def _rms_norm(J, B, H, xp):
    """sqrt(mean over the B sequences of ||J_b||_F^2 / H), J: (B*H, H) stacked Jacobians."""
    J = J.astype(xp.float64)
    return float(xp.sqrt((J * J).sum() / (B * H)))


def layer_flow(layer, xs, state=None, max_distance=None):
    """Jacobian norms of every layer of a Recurrent stack (``layers.RNN/GRU/LSTM``) run on
    xs (T, B, I) from ``state``. Returns a list, per layer, of ``flow_from_cache``'s dict."""
    was_training = layer.training
    layer.eval()
    try:
        layer.forward(xs, state)
    finally:
        layer.train(was_training)
    return [flow_from_cache(layer.cell, layer.layer_params(k), layer.caches[k],
                            layer.cell_options, max_distance) for k in range(layer.num_layers)]


def model_flow(model, windows, warmup=0, max_distance=None):
    """Jacobian norms for a CharLM over text windows.

    windows: (W, B) int ids, B sequences of W characters; the first ``warmup`` steps only
             set the state, the reverse scan covers at most the last W - warmup steps.
    Returns a list per layer of {"h": ..., "c": ...} as ``flow_from_cache``.
    """
    windows = np.asarray(windows, dtype=np.int64)
    W = windows.shape[0]
    D = W - warmup if max_distance is None else min(max_distance, W - warmup)
    x = model.embed.forward(model.xp.asarray(windows))          # (W, B, E)
    return layer_flow(model.rnn, x, None, D)


def text_windows(ids, length, count, seed=0):
    """(length, count) int: ``count`` windows of ``length`` ids cut at spread-out places of ids (N,)."""
    ids = np.asarray(ids, dtype=np.int64).reshape(-1)
    if ids.size < length:
        reps = -(-length // max(ids.size, 1))
        ids = np.tile(ids, reps)
    starts = np.linspace(0, ids.size - length, count).astype(np.int64)
    return np.stack([ids[s:s + length] for s in starts], axis=1)


def untrained_sweep(vocab_size, hidden_size, windows, warmup=0, forget_biases=FORGET_BIASES,
                    seed=0, max_distance=None, backend=None, dtype="float32"):
    """Curves of freshly initialised one-layer models on the same windows.

    Returns label -> {"h": norms, "c": norms (LSTM)} for "RNN", "GRU" and
    "LSTM fb=<b>" for each forget-gate bias b (weights drawn with seed ``seed``; in float32
    norms below ~1e-38 underflow to 0 and drop out of a log plot).
    """
    from scratchrnn.blocks.model import CharLM

    specs = [("RNN", "rnn", None), ("GRU", "gru", None)]
    specs += [(f"LSTM fb={b:+g}", "lstm", b) for b in forget_biases]
    out = {}
    for label, cell, fb in specs:
        model = CharLM(vocab_size, cell, hidden_size, 1, forget_bias=1.0 if fb is None else fb,
                       dtype=dtype, seed=seed, backend=backend)
        out[label] = model_flow(model, windows, warmup, max_distance)[0]
    return out


def decay_rate(norms, start=1, stop=None):
    """Geometric rate per step fitted to norms[d] ~ C * rate^d over d in [start, stop)
    (least squares on the log; zero norms are left out). Returns the rate."""
    norms = np.asarray(norms, dtype=np.float64)
    d = np.arange(norms.size)[start:stop]
    y = norms[start:stop]
    keep = y > 0
    slope = np.polyfit(d[keep], np.log(y[keep]), 1)[0]
    return float(np.exp(slope))


def curves_for_plot(flows, which="h"):
    """label -> (distances, norms) for ``plots.gradient_flow_plot`` from label -> flow dict."""
    return {label: (np.arange(f[which].size), f[which]) for label, f in flows.items() if which in f}
