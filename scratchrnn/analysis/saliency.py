"""Saliency: how much each earlier character matters to predicting the next one.

For a window of characters x_0 .. x_T (ids (T+1,)) and a target position t, the loss is

    L_t = -ln P(x_{t+1} | x_0 .. x_t)

and the saliency of position s is the size of dL_t/dv_s, the gradient at the s-th input
vector v_s (a one-hot vector, or an embedding row), taken by the model's own hand-written
backward (``CharLM.backward`` returns it as ``dx``). Nothing after t can influence L_t, so
the map is zero there; a model that forgets fast has a map concentrated just before t.

Many targets at once: the window is repeated in B batch columns and column b masks in
only its own target t_b, so one forward and one backward give the whole (B, T) map. The
masked loss is the mean over the B selected positions, so each column's gradient is
multiplied back by B.

Two ways to turn the gradient (E numbers per position) into one number:
  "norm"        ||dL_t/dv_s||_2 (the paper's "gradient magnitude")
  "grad_input"  |<dL_t/dv_s, v_s>|, gradient times input: for one-hot input, the component
                of the gradient on the character that was actually there.
"""
from __future__ import annotations

from scratchrnn.core.backend import CPU, backend_of
from scratchrnn.core.errors import DataError

np = CPU.xp

MODES = ("norm", "grad_input")


def saliency_matrix(model, ids, targets=None, mode="norm", state=None):
    """Saliency of every position of a window for several targets, in one pass.

    model:   a CharLM.
    ids:     (T+1,) int, the window; position t predicts ids[t+1].
    targets: positions t in 0..T-1 to explain (default: all T).
    state:   initial state for the window (batch 1, as ``model.initial_state(1)``) or None.
    Returns S (K, T) float64 host array, K = len(targets): S[k, s] = saliency of input
    position s for the loss of target targets[k] (0 for s > targets[k]).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}.")
    ids = np.asarray(backend_of(ids).asnumpy(ids)).reshape(-1).astype(np.int64)
    T = ids.size - 1
    if T < 1:
        raise DataError("A saliency window needs at least two characters.")
    targets = np.arange(T) if targets is None else np.asarray(targets, dtype=np.int64).reshape(-1)
    if targets.size == 0 or targets.min() < 0 or targets.max() >= T:
        raise ValueError(f"targets must be non-empty positions in 0..{T - 1}.")
    K = targets.size
    xp, backend = model.xp, model.backend
    x = np.repeat(ids[:-1, None], K, axis=1)                   # (T, K) the window, K times
    y = np.repeat(ids[1:, None], K, axis=1)                    # (T, K) next characters
    mask = np.zeros((T, K), dtype=np.float64)
    mask[targets, np.arange(K)] = 1.0                          # column k scores only t_k
    if state is not None:
        state = _repeat_state(state, K, xp)
    was_training = model.rnn.training
    model.eval()
    try:
        model.zero_grad()
        model.loss(backend.asarray(x), backend.asarray(y), state, backend.asarray(mask))
        dx, _ = model.backward()                               # (T, K, E) dL/d(input vectors)
        model.zero_grad()                                      # leave no gradient behind
    finally:
        model.train(was_training)
    dx = backend.asnumpy(dx).astype(np.float64) * K           # undo the mean over K targets
    if mode == "norm":
        sal = np.sqrt((dx * dx).sum(axis=-1))                  # (T, K)
    else:
        vectors = backend.asnumpy(model.embed.forward(backend.asarray(x))).astype(np.float64)
        sal = np.abs((dx * vectors).sum(axis=-1))
    return sal.T.copy()                                        # (K, T)


def saliency(model, ids, target, mode="norm", state=None):
    """(T,) saliency of each position of the window ids (T+1,) for the loss at ``target``."""
    return saliency_matrix(model, ids, [target], mode, state)[0]


def _repeat_state(state, K, xp):
    if isinstance(state, tuple):
        return tuple(xp.repeat(s, K, axis=1) for s in state)
    return xp.repeat(state, K, axis=1)


def long_range_targets(text, max_distance, count=3, prefix=""):
    """Characters of ``text`` worth explaining: closing brackets and closing quotes whose
    opener is furthest back, but less than ``max_distance`` characters back and inside
    ``text``. Brackets and quotes take turns (the furthest bracket, then the furthest quote,
    then the next bracket, ...), and no two picks lie within ``max_distance`` of each other.
    Returns up to ``count`` indices into ``text``, in text order.
    ``prefix``: text before ``text``, for the lexer (see ``features``)."""
    from scratchrnn.analysis.features import CLOSERS, QUOTES, python_lex

    lex = python_lex(text, prefix)
    kinds = {"bracket": [], "quote": []}
    for i, (ch, d) in enumerate(zip(text, lex.opener_distance)):
        if 0 < d < max_distance and d <= i and (ch in CLOSERS or ch in QUOTES):
            kinds["bracket" if ch in CLOSERS else "quote"].append((d, i))
    queues = [sorted(q, key=lambda di: (-di[0], di[1])) for q in kinds.values()]
    chosen = []
    while len(chosen) < count and any(queues):
        for q in queues:                          # take turns: bracket, quote, bracket, ...
            while q:
                _, i = q.pop(0)
                if all(abs(i - j) >= max_distance for j in chosen):
                    chosen.append(i)
                    break
            if len(chosen) == count:
                break
    return sorted(chosen)
