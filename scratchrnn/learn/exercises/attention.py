"""Exercise 8 (stretch): the attention read-out over past outputs, backward (derivations §9).

The book's attention (``scratchrnn/blocks/attention.py: AttentionLSTM._step_backward``) undoes the
read-out inside one method together with the LSTM step and the window shift, so the answer
here is §9's read-out lines written out on their own (``_readout_backward``); the grader
checks them, like the learner's, against float64 central differences of the forward.
"""
from __future__ import annotations

from scratchrnn.book import ops
from scratchrnn.book.gradcheck import numerical_gradient
from scratchrnn.learn.exercises.base import Case, Exercise, Mistake, np, rng_for

NAME = "attention"
NAMES = ("dM", "dq", "dW_k", "dW_q", "db_q", "dv")


def forward(M, q, W_k, W_q, b_q, v):
    """a (B, H), and e (B, K, D), alpha (B, K) for the backward."""
    e = np.tanh(M @ W_k + (q @ W_q + b_q)[:, None, :])
    alpha = ops.softmax(e @ v)
    return np.einsum("bk,bkh->bh", alpha, M), e, alpha


def _case(k, B, K, H, Q, D, scale=1.0, label=None):
    rng = rng_for(NAME, k)
    args = {"da": rng.standard_normal((B, H)), "M": rng.standard_normal((B, K, H)),
            "q": rng.standard_normal((B, Q)),
            "W_k": scale * rng.standard_normal((H, D)) / np.sqrt(H),
            "W_q": scale * rng.standard_normal((Q, D)) / np.sqrt(Q),
            "b_q": 0.3 * rng.standard_normal(D), "v": scale * rng.standard_normal(D)}
    return Case(label or f"random {k} (B={B}, K={K}, H={H}, D={D})", "random", args)


def cases():
    rng = rng_for(NAME, 0)
    B, K, H, Q, D = 2, 3, 2, 4, 3
    M, da = rng.standard_normal((B, K, H)), rng.standard_normal((B, H))
    # v = 0: every score is 0 and alpha = 1/K whatever M and q are; de = ds v = 0, so only the
    # direct read-out reaches M, and only v gets a gradient through the scores
    W_k, W_q, b_q = rng.standard_normal((H, D)), rng.standard_normal((Q, D)), np.zeros(D)
    q = rng.standard_normal((B, Q))
    e = np.tanh(M @ W_k + (q @ W_q)[:, None, :])
    dalpha = np.einsum("bh,bkh->bk", da, M)
    ds = (dalpha - dalpha.mean(axis=1, keepdims=True)) / K
    known = Case("known answer: v = 0, so every score is 0 and alpha = 1/K: dM_j = da / K, dq, "
                 "dW_k, dW_q, db_q = 0, dv = Σ ds_j e_j with ds = (dα − mean dα) / K", "known",
                 {"da": da, "M": M, "q": q, "W_k": W_k, "W_q": W_q, "b_q": b_q, "v": np.zeros(D)},
                 expected={"dM": np.repeat(da[:, None, :] / K, K, axis=1),
                           "dq": np.zeros((B, Q)), "dW_k": np.zeros((H, D)),
                           "dW_q": np.zeros((Q, D)), "db_q": np.zeros(D),
                           "dv": np.einsum("bk,bkd->d", ds, e)})
    sizes = [(2, 3, 2, 4, 3), (3, 4, 3, 6, 2), (1, 5, 2, 4, 4), (2, 2, 4, 8, 3)]
    return [known] + [_case(k, *s, scale=1.0 + 0.3 * k) for k, s in enumerate(sizes, start=1)]


def _readout_backward(a, softmax=True, direct=True, keys=True, tanh_prime=True):
    """§9's read-out lines, with a switch for each typical mistake."""
    M, W_k, W_q, v, da = a["M"], a["W_k"], a["W_q"], a["v"], a["da"]
    _, e, alpha = forward(M, a["q"], W_k, W_q, a["b_q"], v)
    dalpha = np.einsum("bh,bkh->bk", da, M)                        # undo a = Σ α_j M_j
    dM = alpha[:, :, None] * da[:, None, :] if direct else np.zeros_like(M)
    ds = alpha * (dalpha - (alpha * dalpha).sum(axis=1, keepdims=True)) if softmax else dalpha
    dv = np.einsum("bk,bkd->d", ds, e)                             # undo s = e · v
    de = ds[:, :, None] * v
    dp = de * (1 - e ** 2) if tanh_prime else de                   # undo tanh
    dW_k = np.einsum("bkh,bkd->hd", M, dp)                         # undo M W_k
    if keys:
        dM = dM + dp @ W_k.T
    dyq = dp.sum(axis=1)                                           # undo the broadcast over j
    return {"dM": dM, "dq": dyq @ W_q.T, "dW_k": dW_k, "dW_q": a["q"].T @ dyq,
            "db_q": dyq.sum(axis=0), "dv": dv}


def reference(case):
    return _readout_backward(case.args)


def numeric(case):
    a = case.args
    arrays = {"dM": a["M"].copy(), "dq": a["q"].copy(), "dW_k": a["W_k"].copy(),
              "dW_q": a["W_q"].copy(), "db_q": a["b_q"].copy(), "dv": a["v"].copy()}
    loss = lambda: float((forward(*arrays.values())[0] * a["da"]).sum())   # noqa: E731
    return {k: numerical_gradient(loss, x) for k, x in arrays.items()}


MISTAKES = (
    Mistake("no_softmax", "the softmax is not undone: ds = α ⊙ (dα − Σ_j α_j dα_j), not dα "
            "(§9, the softmax Jacobian of §1).",
            lambda c: _readout_backward(c.args, softmax=False)),
    Mistake("no_direct", "dM lacks α_j da: the window rows are read out directly, "
            "a = Σ_j α_j M_j, besides entering the scores (§9).",
            lambda c: _readout_backward(c.args, direct=False)),
    Mistake("no_keys", "dM lacks dp W_kᵀ: the window rows also enter the scores through M W_k "
            "(§9).", lambda c: _readout_backward(c.args, keys=False)),
    Mistake("no_tanh_prime", "the tanh is not undone: dp = de ⊙ (1 − e²) before the products "
            "with M and q (§9).", lambda c: _readout_backward(c.args, tanh_prime=False)),
)


def rules(ev):
    if set(ev.wrong) == {"dM"}:
        return ("only dM is wrong: it has two parts, α_j da (the read-out) and dp W_kᵀ (the "
                "keys) (§9).")
    return None


EXERCISE = Exercise(
    number=8, name=NAME, title="(stretch) attention over past outputs: the read-out backward",
    section='docs/derivations.md §9 "Attention over past outputs"',
    function="attention_backward",
    arguments=(("da", "(B, H) dL/da, the gradient at the read-out"),
               ("M", "(B, K, H) the window: the last K outputs"),
               ("q", "(B, Q) the query (the LSTM's [c, h], Q = 2H in the book)"),
               ("W_k", "(H, D)"), ("W_q", "(Q, D)"), ("b_q", "(D,)"), ("v", "(D,)")),
    outputs=(("dM", "(B, K, H)"), ("dq", "(B, Q)"), ("dW_k", "(H, D)"), ("dW_q", "(Q, D)"),
             ("db_q", "(D,)"), ("dv", "(D,)")),
    equations="e_j = tanh(M_j W_k + q W_q + b_q)      (B, K, D)   one row per window slot j\n"
              "s_j = e_j · v                         (B, K)\n"
              "α = softmax(s) over j                 (B, K)\n"
              "a = Σ_j α_j M_j                        (B, H)      the read-out",
    task="Return the gradients of the loss with respect to M, q, W_k, W_q, b_q and v, given da.\n"
         "Recompute e and α from the arguments first (the forward is four lines).",
    cases=cases, reference=reference, numeric=numeric, mistakes=MISTAKES, rules=rules,
    shape_hints={"dq": {"other": "dq keeps the window axis: the query is broadcast over the K "
                                 "rows, so sum dp over j before the product with W_qᵀ."},
                 "db_q": dict.fromkeys(("batch", "other"), "db_q keeps an axis: the bias is "
                                       "added for every batch row and every window slot, so "
                                       "sum over both.")})
