"""Exercise 3: backpropagation through time over a sequence, carrying dh_next (§2, §5)."""
from __future__ import annotations

from scratchrnn.book.cells import rnn
from scratchrnn.book.gradcheck import numerical_gradient
from scratchrnn.learn.exercises.base import Case, Exercise, Mistake, adjoint_property, np, rng_for
from scratchrnn.learn.given import rnn_step_backward

NAME = "bptt"


def forward(xs, h0, W_x, W_h, b):
    """hs (T, B, H): h_t = tanh(x_t W_x + h_{t-1} W_h + b)."""
    hs, h = [], h0
    for x in xs:
        h = np.tanh(x @ W_x + h @ W_h + b)
        hs.append(h)
    return np.stack(hs)


def _case(k, T, B, I, H, label=None, zero=False):
    rng = rng_for(NAME, k)
    xs, h0 = rng.standard_normal((T, B, I)), rng.standard_normal((B, H))
    W_x = rng.standard_normal((I, H)) / np.sqrt(I)
    W_h = 1.2 * rng.standard_normal((H, H)) / np.sqrt(H)
    b = 0.3 * rng.standard_normal(H)
    dhs = rng.standard_normal((T, B, H))
    if zero:                  # a loss on the last output only: dh_next carries everything
        dhs[:-1] = 0.0
    return Case(label or f"random {k} (T={T}, B={B}, I={I}, H={H})", "random",
                {"dhs": dhs, "xs": xs, "h0": h0, "hs": forward(xs, h0, W_x, W_h, b),
                 "W_x": W_x, "W_h": W_h}, extra={"b": b})


def cases():
    rng = rng_for(NAME, 0)
    T, B, I, H = 3, 2, 3, 2
    dhs, W_x = rng.standard_normal((T, B, H)), rng.standard_normal((I, H))
    # with W_h = 0 the steps do not talk to each other: each is its own exercise-2 step with
    # x = 0, h = tanh(0) = 0, so tanh' = 1 and da_t = dhs[t]
    h0 = rng.standard_normal((B, H))
    known = Case("known answer: xs = 0, b = 0, W_h = 0, so every h_t = 0 and da_t = dhs[t]: "
                 "dxs = dhs W_xᵀ, dh0 = 0, dW_x = 0, dW_h = h0ᵀ dhs[0], db = Σ_t,batch dhs",
                 "known", {"dhs": dhs, "xs": np.zeros((T, B, I)), "h0": h0,
                  "hs": np.zeros((T, B, H)), "W_x": W_x, "W_h": np.zeros((H, H))},
                 extra={"b": np.zeros(H)},
                 expected={"dxs": dhs @ W_x.T, "dh0": np.zeros((B, H)), "dW_x": np.zeros((I, H)),
                           "dW_h": h0.T @ dhs[0], "db": dhs.sum(axis=(0, 1))})
    sizes = [(4, 2, 3, 3), (3, 3, 2, 4), (5, 1, 4, 2), (2, 2, 2, 5)]
    out = [known] + [_case(k, *s) for k, s in enumerate(sizes, start=1)]
    out.append(_case(9, 4, 2, 3, 3, label="loss on the last output only", zero=True))
    return out


def reference(case):
    a = case.args
    H = a["W_h"].shape[0]
    params = {"W_x": a["W_x"], "W_h": a["W_h"], "b_x": np.zeros(H), "b_h": np.zeros(H)}
    dxs, dh0, g = rnn.backward(params, a["dhs"], np.zeros_like(a["h0"]),
                               rnn.Cache(a["xs"], a["h0"], a["hs"]))
    return {"dxs": dxs, "dh0": dh0, "dW_x": g["W_x"], "dW_h": g["W_h"], "db": g["b_x"]}


def numeric(case):
    a = case.args
    xs, h0, W_x, W_h, b = (a["xs"].copy(), a["h0"].copy(), a["W_x"].copy(), a["W_h"].copy(),
                           case.extra["b"].copy())
    loss = lambda: float((forward(xs, h0, W_x, W_h, b) * a["dhs"]).sum())   # noqa: E731
    return {"dxs": numerical_gradient(loss, xs), "dh0": numerical_gradient(loss, h0),
            "dW_x": numerical_gradient(loss, W_x), "dW_h": numerical_gradient(loss, W_h),
            "db": numerical_gradient(loss, b)}


def _loop(case, add_next=True, accumulate=True, wrap_h0=False, order="reverse"):
    """A BPTT loop with a switch for each typical mistake."""
    a = case.args
    T = a["xs"].shape[0]
    dxs = np.zeros_like(a["xs"])
    dh_next = np.zeros_like(a["h0"])
    total = None
    steps = reversed(range(T)) if order == "reverse" else range(T)
    for t in steps:
        h_prev = a["hs"][t - 1] if (t > 0 or wrap_h0) else a["h0"]
        dh = a["dhs"][t] + dh_next if add_next else a["dhs"][t]
        dxs[t], dh_next, *g = rnn_step_backward(dh, a["xs"][t], h_prev, a["hs"][t], a["W_x"],
                                                a["W_h"])
        total = g if (total is None or not accumulate) else [s + x for s, x in zip(total, g)]
    return {"dxs": dxs, "dh0": dh_next, "dW_x": total[0], "dW_h": total[1], "db": total[2]}


MISTAKES = (
    Mistake("no_dh_next", "dh_next is not added: h_t feeds the output AND step t+1, so the "
            "gradient at h_t is dhs[t] + dh_next (§2).", lambda c: _loop(c, add_next=False)),
    Mistake("overwrite", "dW_x, dW_h and db hold one step only: every step adds to the same "
            "weights, so add each step's gradients up (+=) (§2).",
            lambda c: _loop(c, accumulate=False)),
    Mistake("wrap_h0", "the first step uses hs[-1] (the LAST state) as h_prev: at t = 0 the "
            "state entering the step is h0.", lambda c: _loop(c, wrap_h0=True)),
    Mistake("forward_order", "the loop runs forward in time: BPTT starts at the last step and "
            "carries dh_next back to the first, for t in reversed(range(T)).",
            lambda c: _loop(c, order="forward")),
)


def rules(ev):
    if ev.wrong == ["dh0"] or (set(ev.wrong) == {"dh0"}):
        return ("only dh0 is wrong: it is the dh_prev that the FIRST step (t = 0) returns, "
                "after the loop has reached it.")
    if "dxs" in ev.right and set(ev.wrong) >= {"dW_x", "dW_h", "db"} and "dh0" in ev.right:
        return ("dxs and dh0 are right but the weight gradients are not: each step's dW_x, "
                "dW_h and db must be added up over all T steps.")
    return None



def properties(case, got):
    a = case.args
    props = [adjoint_property("W_x", a["W_x"], "xs", a["xs"], got["dW_x"], got["dxs"])]
    return props


EXERCISE = Exercise(
    number=3, name=NAME, title="BPTT over a sequence from a step backward, carrying dh_next",
    section='docs/derivations.md §2 "The vanilla RNN" (and §5)',
    function="rnn_bptt",
    arguments=(("dhs", "(T, B, H) dL/dh_t from the outputs of every step"),
               ("xs", "(T, B, I) inputs"), ("h0", "(B, H) the initial state"),
               ("hs", "(T, B, H) the states after each step (cached by the forward pass)"),
               ("W_x", "(I, H)"), ("W_h", "(H, H)")),
    outputs=(("dxs", "(T, B, I)"), ("dh0", "(B, H)"), ("dW_x", "(I, H)"), ("dW_h", "(H, H)"),
             ("db", "(H,)")),
    equations="for t = 0 .. T-1:  h_t = tanh(x_t W_x + h_{t-1} W_h + b)    (h_{-1} = h0)\n"
              "loss L depends on every h_t; dhs[t] is its direct gradient at h_t",
    task="Run the step backward from the last step to the first. The step backward is given:\n"
         "    from scratchrnn.learn.given import rnn_step_backward\n"
         "    dx, dh_prev, dW_x, dW_h, db = rnn_step_backward(dh, x, h_prev, h, W_x, W_h)\n"
         "(exercise 2's function: the gradients of ONE step, for the total dh at its output).",
    cases=cases, reference=reference, numeric=numeric, properties=properties,
    mistakes=MISTAKES, rules=rules,
    imports="from scratchrnn.learn.given import rnn_step_backward   # exercise 2, done for you")
