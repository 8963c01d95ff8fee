"""Exercise 2: one step of the vanilla RNN, backward (derivations §2)."""
from __future__ import annotations

from scratchrnn.book.cells import rnn
from scratchrnn.book.gradcheck import numerical_gradient
from scratchrnn.learn.exercises.base import Case, Exercise, Mistake, adjoint_property, np, rng_for

NAME = "rnn_step"


def forward(x, h_prev, W_x, W_h, b):
    """h = tanh(x W_x + h_prev W_h + b)."""
    return np.tanh(x @ W_x + h_prev @ W_h + b)


def _case(k, B, I, H, scale=1.0):
    rng = rng_for(NAME, k)
    x, h_prev = rng.standard_normal((B, I)), rng.standard_normal((B, H))
    W_x = scale * rng.standard_normal((I, H)) / np.sqrt(I)
    W_h = scale * rng.standard_normal((H, H)) / np.sqrt(H)
    b = 0.5 * rng.standard_normal(H)
    h = forward(x, h_prev, W_x, W_h, b)
    return Case(f"random {k} (B={B}, I={I}, H={H})", "random",
                {"dh": rng.standard_normal((B, H)), "x": x, "h_prev": h_prev, "h": h,
                 "W_x": W_x, "W_h": W_h}, extra={"b": b})


def cases():
    rng = rng_for(NAME, 0)
    B, I, H = 2, 3, 4
    dh = rng.standard_normal((B, H))
    W_x, W_h = rng.standard_normal((I, H)), rng.standard_normal((H, H))
    known = Case("known answer: x = 0, h_prev = 0, b = 0, so h = 0 and tanh' = 1: dx = dh W_xᵀ, "
                 "dh_prev = dh W_hᵀ, dW_x = dW_h = 0, db = Σ_batch dh", "known",
                 {"dh": dh, "x": np.zeros((B, I)), "h_prev": np.zeros((B, H)),
                  "h": np.zeros((B, H)), "W_x": W_x, "W_h": W_h}, extra={"b": np.zeros(H)},
                 expected={"dx": dh @ W_x.T, "dh_prev": dh @ W_h.T, "dW_x": np.zeros((I, H)),
                           "dW_h": np.zeros((H, H)), "db": dh.sum(axis=0)})
    sizes = [(3, 4, 5), (2, 5, 3), (4, 2, 6), (1, 3, 3), (5, 6, 4), (3, 3, 7)]
    return [known] + [_case(k, *s, scale=1.0 + 0.3 * k) for k, s in enumerate(sizes, start=1)]


def reference(case):
    a = case.args
    params = {"W_x": a["W_x"], "W_h": a["W_h"], "b_x": np.zeros(a["W_x"].shape[1]),
              "b_h": np.zeros(a["W_x"].shape[1])}
    dx, dh_prev, g = rnn.step_backward(params, a["dh"], np.zeros_like(a["dh"]),
                                       rnn.StepCache(a["x"], a["h_prev"], a["h"]))
    return {"dx": dx, "dh_prev": dh_prev, "dW_x": g["W_x"], "dW_h": g["W_h"], "db": g["b_x"]}


def numeric(case):
    a = case.args
    x, h_prev, W_x, W_h, b = (a["x"].copy(), a["h_prev"].copy(), a["W_x"].copy(),
                              a["W_h"].copy(), case.extra["b"].copy())
    loss = lambda: float((forward(x, h_prev, W_x, W_h, b) * a["dh"]).sum())   # noqa: E731
    return {"dx": numerical_gradient(loss, x), "dh_prev": numerical_gradient(loss, h_prev),
            "dW_x": numerical_gradient(loss, W_x), "dW_h": numerical_gradient(loss, W_h),
            "db": numerical_gradient(loss, b)}


def _from_da(case, da, h_prev=None):
    a = case.args
    h_prev = a["h_prev"] if h_prev is None else h_prev
    return {"dx": da @ a["W_x"].T, "dh_prev": da @ a["W_h"].T, "dW_x": a["x"].T @ da,
            "dW_h": h_prev.T @ da, "db": da.sum(axis=0)}


def _right_da(case):
    return case.args["dh"] * (1 - case.args["h"] ** 2)


MISTAKES = (
    Mistake("tanh_of_output", "tanh' is taken of the pre-activation instead of the output: h "
            "already is tanh(a), so tanh'(a) = 1 - h², not 1 - tanh(h)² (§2).",
            lambda c: _from_da(c, c.args["dh"] * (1 - np.tanh(c.args["h"]) ** 2))),
    Mistake("no_tanh_prime", "the tanh derivative is missing: undo h = tanh(a) first, "
            "da = dh ⊙ (1 - h²), then use da everywhere (§2).",
            lambda c: _from_da(c, c.args["dh"])),
    Mistake("one_minus_h_squared", "tanh' is written (1 - h)²; it is 1 - h² (§2).",
            lambda c: _from_da(c, c.args["dh"] * (1 - c.args["h"]) ** 2)),
    Mistake("mean_bias", "db is divided by B: the bias is added to every row of the batch, so "
            "its gradient is the SUM of da over the batch, not the mean.",
            lambda c: {**_from_da(c, _right_da(c)), "db": _right_da(c).mean(axis=0)}),
)


def rules(ev):
    if ev.wrong == ["dW_h"]:
        return ("dW_h is wrong while dW_x and the biases are right: check the h_prev term, "
                "dW_h = h_prevᵀ da (the state that ENTERED the step, not its output h) (§2).")
    if ev.wrong == ["dh_prev"]:
        return "only dh_prev is wrong: it is da W_hᵀ, the same da as everywhere else (§2)."
    if ev.wrong == ["dx"]:
        return "only dx is wrong: it is da W_xᵀ (§2)."
    return None



def properties(case, got):
    a = case.args
    props = [adjoint_property("W_x", a["W_x"], "x", a["x"], got["dW_x"], got["dx"])]
    props.append(adjoint_property("W_h", a["W_h"], "h_prev", a["h_prev"], got["dW_h"],
                                  got["dh_prev"]))
    return props


EXERCISE = Exercise(
    number=2, name=NAME, title="vanilla RNN: one step backward",
    section='docs/derivations.md §2 "The vanilla RNN"',
    function="rnn_step_backward",
    arguments=(("dh", "(B, H) dL/dh, the gradient arriving at this step's output"),
               ("x", "(B, I) the step's input"), ("h_prev", "(B, H) the state entering the step"),
               ("h", "(B, H) the step's output, tanh(a), cached by the forward pass"),
               ("W_x", "(I, H) input weights"), ("W_h", "(H, H) recurrent weights")),
    outputs=(("dx", "(B, I)"), ("dh_prev", "(B, H)"), ("dW_x", "(I, H)"), ("dW_h", "(H, H)"),
             ("db", "(H,)")),
    equations="a = x W_x + h_prev W_h + b        (B, H)\nh = tanh(a)",
    task="Undo the step: return the gradients of the loss with respect to x, h_prev, W_x, W_h\n"
         "and b. Use only the arguments (h is cached, so a is not needed).",
    cases=cases, reference=reference, numeric=numeric, properties=properties,
    mistakes=MISTAKES, rules=rules,
    shape_hints={"db": {"batch": "db keeps the batch axis (B, H): sum da over axis 0, the "
                                 "bias is shared by every row of the batch."}})
