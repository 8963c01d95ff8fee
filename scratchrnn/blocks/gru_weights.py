"""The GRU with separate per-gate weights, and the conversion to and from the fused layout.

The library's GRU (``cells/gru.py``) keeps the three gates' weights side by side, in the
order r, z, n, so each step needs one GEMM for the input and one for the hidden state::

    W_x (I, 3H) = [W_xr | W_xz | W_xn]     W_h (H, 3H) = [W_hr | W_hz | W_hn]
    b_x (3H,)   = [b_xr | b_xz | b_xn]     b_h (3H,)   = [b_hr | b_hz | b_hn]

Written gate by gate instead (as a first GRU usually is), the same step reads::

    r  = σ(x W_xr + b_xr + h W_hr + b_hr)
    z  = σ(x W_xz + b_xz + h W_hz + b_hz)
    n  = tanh(x W_xn + b_xn + r ⊙ (h W_hn + b_hn))
    h' = (1 - z) ⊙ n + z ⊙ h

``split_gru_params`` and ``fuse_gru_params`` convert between the two layouts (exactly:
they only cut and paste columns), and ``step_forward``/``step_backward`` here are the
per-gate step with its hand-written backward (docs/derivations.md, section 4), which
gives the fused cell's outputs and, once fused, its gradients.

Per-gate parameters are ``{"r": {"W_x": (I, H), "W_h": (H, H), "b_x": (H,), "b_h": (H,)},
"z": {...}, "n": {...}}``.
"""
from __future__ import annotations

from typing import Any, NamedTuple

from scratchrnn.book import ops
from scratchrnn.book.cells.common import step_weight_gradients
from scratchrnn.core.errors import ShapeError

GATE_NAMES = ("r", "z", "n")
PARAM_NAMES = ("W_x", "W_h", "b_x", "b_h")


def split_gru_params(params):
    """Fused {"W_x": (I, 3H), "W_h": (H, 3H), "b_x": (3H,), "b_h": (3H,)} -> per-gate dict.

    The per-gate arrays are copies (changing them does not change ``params``).
    """
    H3 = params["W_h"].shape[-1]
    if H3 % 3 or params["W_h"].shape[0] * 3 != H3:
        raise ShapeError(f"a GRU's W_h must be (H, 3H), got {tuple(params['W_h'].shape)}.")
    H = H3 // 3
    return {gate: {name: params[name][..., j * H:(j + 1) * H].copy() for name in PARAM_NAMES}
            for j, gate in enumerate(GATE_NAMES)}


def fuse_gru_params(gate_params):
    """Per-gate dict (see the module doc) -> fused {"W_x": (I, 3H), "W_h": (H, 3H),
    "b_x": (3H,), "b_h": (3H,)}, the gates side by side in the order r, z, n."""
    xp = ops.xp_of(gate_params["r"]["W_h"])
    return {name: xp.concatenate([gate_params[g][name] for g in GATE_NAMES], axis=-1)
            for name in PARAM_NAMES}


class StepCache(NamedTuple):
    """What one per-gate step keeps for its backward."""
    x: Any        # (B, I) input
    h_prev: Any   # (B, H) state entering the step
    r: Any        # (B, H) reset gate
    z: Any        # (B, H) update gate
    n: Any        # (B, H) candidate state
    hn: Any       # (B, H) h W_hn + b_hn, the part r scales


def step_forward(gate_params, x, h_prev):
    """One GRU step with separate gate weights.

    x: (B, I).  h_prev: (B, H).  Returns h' (B, H) and a StepCache.
    """
    r_p, z_p, n_p = (gate_params[g] for g in GATE_NAMES)
    r = ops.sigmoid(x @ r_p["W_x"] + r_p["b_x"] + h_prev @ r_p["W_h"] + r_p["b_h"])
    z = ops.sigmoid(x @ z_p["W_x"] + z_p["b_x"] + h_prev @ z_p["W_h"] + z_p["b_h"])
    hn = h_prev @ n_p["W_h"] + n_p["b_h"]
    n = ops.tanh(x @ n_p["W_x"] + n_p["b_x"] + r * hn)
    h = (1.0 - z) * n + z * h_prev
    return h, StepCache(x, h_prev, r, z, n, hn)


def step_backward(gate_params, dh, cache):
    """Undo ``step_forward`` (docs/derivations.md, section 4).

    dh: (B, H) total dL/dh' (from the output and from step t+1).
    Returns dx (B, I), dh_prev (B, H), and per-gate grads shaped like ``gate_params``.
    """
    c = cache
    r_p, z_p, n_p = (gate_params[g] for g in GATE_NAMES)
    dn = dh * (1.0 - c.z)                          # undo h' = (1 - z) n + z h: the n path
    dz = dh * (c.h_prev - c.n)                     # ... the z path
    dh_prev = dh * c.z                             # ... the z ⊙ h path
    dan = ops.tanh_backward(dn, c.n)               # undo n = tanh(a_n)
    dar = ops.sigmoid_backward(dan * c.hn, c.r)    # undo r ⊙ hn, then r = σ(a_r)
    daz = ops.sigmoid_backward(dz, c.z)            # undo z = σ(a_z)
    dhn = dan * c.r                                # undo r ⊙ hn: the hn path
    grads = {gate: step_weight_gradients(c.x, c.h_prev, da_x, da_h)  # undo x W_x, h W_h, biases
             for gate, da_x, da_h in (("r", dar, dar), ("z", daz, daz), ("n", dan, dhn))}
    dx = dar @ r_p["W_x"].T + daz @ z_p["W_x"].T + dan @ n_p["W_x"].T   # undo x W_x, per gate
    dh_prev = dh_prev + dar @ r_p["W_h"].T + daz @ z_p["W_h"].T + dhn @ n_p["W_h"].T
    return dx, dh_prev, grads


def forward(gate_params, xs, h0):
    """The per-gate step over a sequence. xs: (T, B, I).  h0: (B, H).

    Returns hs (T, B, H), h_T (B, H), and the list of T StepCaches.
    """
    xp = ops.xp_of(xs)
    hs = xp.empty(xs.shape[:2] + h0.shape[-1:], dtype=h0.dtype)
    h, caches = h0, []
    for t in range(xs.shape[0]):
        h, cache = step_forward(gate_params, xs[t], h)
        hs[t] = h
        caches.append(cache)
    return hs, h, caches


def backward(gate_params, dhs, dhT, caches):
    """BPTT for ``forward``. dhs: (T, B, H) dL/dhs.  dhT: (B, H) at the final state.

    Returns dxs (T, B, I), dh0 (B, H), per-gate grads summed over the steps.
    """
    xp = ops.xp_of(dhs)
    dxs = xp.empty(dhs.shape[:2] + caches[0].x.shape[-1:], dtype=dhs.dtype)
    total = {g: {n: xp.zeros_like(p) for n, p in gate_params[g].items()} for g in GATE_NAMES}
    dh_next = dhT
    for t in reversed(range(len(caches))):
        dxs[t], dh_next, grads = step_backward(gate_params, dhs[t] + dh_next, caches[t])
        for g in GATE_NAMES:
            for n in PARAM_NAMES:
                total[g][n] += grads[g][n]
    return dxs, dh_next, total
