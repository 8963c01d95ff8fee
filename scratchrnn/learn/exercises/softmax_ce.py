"""Exercise 1: softmax + cross-entropy, the loss and its gradient (derivations §1)."""
from __future__ import annotations

from scratchrnn.book import ops
from scratchrnn.book.gradcheck import numerical_gradient
from scratchrnn.learn.exercises.base import Case, Exercise, Mistake, np, rng_for

NAME = "softmax_ce"


def _case(k, kind, label, N, V, scale):
    rng = rng_for(NAME, k)
    logits = scale * rng.standard_normal((N, V))
    if kind == "edge":
        logits = 1000.0 * rng.choice([-1.0, 1.0], size=(N, V)) + rng.standard_normal((N, V))
    return Case(label, kind, {"logits": logits, "targets": rng.integers(0, V, size=N)})


def cases():
    N, V = 2, 4
    known = Case("known answer: all logits 0, so p = 1/V, loss = log V, dlogits = (1/V - "
                 "onehot) / N", "known",
                 {"logits": np.zeros((N, V)), "targets": np.array([1, 3])},
                 expected={"loss": np.log(V), "dlogits": (np.full((N, V), 1 / V)
                                                          - np.eye(V)[[1, 3]]) / N})
    out = [known] + [_case(k, "random", f"random {k}", 3 + k % 4, 4 + k % 5, 3.0)
                     for k in range(1, 7)]
    out.append(_case(7, "edge", "logits ±1000", 4, 5, 1.0))
    return out


def reference(case):
    loss, p = ops.cross_entropy(case.args["logits"], case.args["targets"])
    return {"loss": np.asarray(loss),
            "dlogits": ops.cross_entropy_backward(p, case.args["targets"])}


def numeric(case):
    z, y = case.args["logits"].copy(), case.args["targets"]
    return {"dlogits": numerical_gradient(lambda: float(ops.cross_entropy(z, y)[0]), z)}


def _p(case, axis=1):
    z = case.args["logits"]
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _onehot(case):
    return np.eye(case.args["logits"].shape[1])[case.args["targets"]]


def _model(loss_factor=1.0, d=None):
    def model(case):
        ref = reference(case)
        return {"loss": ref["loss"] * (loss_factor(case) if callable(loss_factor) else loss_factor),
                "dlogits": d(case) if d else ref["dlogits"]}
    return model


def _N(case):
    return case.args["logits"].shape[0]


def _columns_minus_one(case):
    d = _p(case).copy()
    d[:, case.args["targets"]] -= 1.0
    return d / _N(case)


def _axis0(case):
    logp = ops.log_softmax(case.args["logits"], axis=0)
    N = _N(case)
    return {"loss": -logp[np.arange(N), case.args["targets"]].mean(),
            "dlogits": (np.exp(logp) - _onehot(case)) / N}


MISTAKES = (
    Mistake("not_divided_by_n", "the gradient is not divided by N: the loss is the mean over "
            "the N rows, so dlogits = (p - onehot(y)) / N (§1).",
            _model(d=lambda c: _p(c) - _onehot(c))),
    Mistake("loss_summed", "the loss is summed over the rows, not averaged: divide it by N "
            "(dlogits already is).", _model(loss_factor=_N)),
    Mistake("no_onehot", "dlogits lacks the - onehot(y) term: the gradient of -log p_y is "
            "p - onehot(y), not p (§1).", _model(d=lambda c: _p(c) / _N(c))),
    Mistake("sign", "dlogits has the wrong sign: it is p - onehot(y), not onehot(y) - p.",
            _model(d=lambda c: (_onehot(c) - _p(c)) / _N(c))),
    Mistake("columns", "d[:, y] -= 1 subtracts 1 in whole columns: subtract it only at each "
            "row's own target, d[np.arange(N), y] -= 1.", _model(d=_columns_minus_one)),
    Mistake("axis0", "the softmax is taken over the wrong axis: normalise each row over its V "
            "classes (axis=1), not each column over the N rows.", _axis0),
)


def rules(ev):
    edge = [n for n, labels in ev.nonfinite.items() if labels == ["logits ±1000"]]
    if edge == ["loss"] and "dlogits" in ev.right:
        return ("the loss is inf for logits of ±1000 although dlogits is right: p underflows to "
                "0 there and log(0) = -inf; take log p from log-softmax, z - max(z) - log Σ "
                "exp(z - max(z)), not log(softmax(z)) (§1 'Stability').")
    if edge:
        return ("exp overflows for large logits (NaN or inf on the case 'logits ±1000' only): "
                "subtract each row's max before exp, as log_softmax does (§1 'Stability').")
    return None


def properties(case, got):
    s = float(np.abs(np.asarray(got["dlogits"]).sum(axis=1)).max())
    return [("every row of dlogits sums to 0 (softmax's rows sum to 1)", s < 1e-9,
             f"a row sums to {s:.2e}")]


EXERCISE = Exercise(
    number=1, name=NAME, title="softmax + cross-entropy: the loss and its gradient",
    section='docs/derivations.md §1 "Softmax and cross-entropy"',
    function="softmax_cross_entropy",
    arguments=(("logits", "(N, V) float64, one row of class scores per token"),
               ("targets", "(N,) int, the class index of each row")),
    outputs=(("loss", "() the mean of -log softmax(logits)[n, targets[n]] over the N rows"),
             ("dlogits", "(N, V) dloss/dlogits")),
    equations="p = softmax(z) row by row:  p[n, v] = exp(z[n, v]) / sum_u exp(z[n, u])\n"
              "loss = -(1/N) sum_n log p[n, y_n]",
    task="Return the loss (a float or 0-d array) and its gradient with respect to the logits.\n"
         "Keep it stable for logits of ±1000.",
    cases=cases, reference=reference, numeric=numeric, mistakes=MISTAKES, nan_rules=rules,
    properties=properties)
