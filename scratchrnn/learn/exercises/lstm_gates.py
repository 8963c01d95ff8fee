"""Exercise 4: the LSTM's gate backward, from dh and dc_next to da and dc_prev (§3)."""
from __future__ import annotations

from scratchrnn.book.cells import lstm
from scratchrnn.book.gradcheck import numerical_gradient
from scratchrnn.book.ops import sigmoid
from scratchrnn.learn.exercises.base import Case, Exercise, Mistake, np, rng_for

NAME = "lstm_gates"
GATES = ("i", "f", "g", "o")


def forward(a, c_prev):
    """h, c from the pre-activations a (B, 4H) and c_prev (B, H)."""
    H = c_prev.shape[1]
    i, f, o = sigmoid(a[:, :H]), sigmoid(a[:, H:2 * H]), sigmoid(a[:, 3 * H:])
    g = np.tanh(a[:, 2 * H:3 * H])
    c = f * c_prev + i * g
    return o * np.tanh(c), c


def _gates(a):
    H = a.shape[1] // 4
    out = sigmoid(a)
    out[:, 2 * H:3 * H] = np.tanh(a[:, 2 * H:3 * H])
    return out


def _case(k, B, H, scale=1.5):
    rng = rng_for(NAME, k)
    a = scale * rng.standard_normal((B, 4 * H))
    c_prev = rng.standard_normal((B, H))
    _, c = forward(a, c_prev)
    return Case(f"random {k} (B={B}, H={H})", "random",
                {"dh": rng.standard_normal((B, H)), "dc_next": rng.standard_normal((B, H)),
                 "gates": _gates(a), "c_prev": c_prev, "tanh_c": np.tanh(c)}, extra={"a": a})


def cases():
    rng = rng_for(NAME, 0)
    B, H = 2, 3
    dh, dc_next = rng.standard_normal((B, H)), rng.standard_normal((B, H))
    half, zero, one = np.full((B, H), 0.5), np.zeros((B, H)), np.ones((B, H))
    dc = dc_next + dh * 0.5                       # tanh_c = 0, so tanh' = 1; o = 1/2
    known = Case("known answer: i = f = o = 1/2, g = 0, c_prev = 1, tanh(c) = 0: dc = dc_next + "
                 "dh/2, da = [0, dc/4, dc/2, 0], dc_prev = dc/2", "known",
                 {"dh": dh, "dc_next": dc_next,
                  "gates": np.concatenate([half, half, zero, half], 1), "c_prev": one,
                  "tanh_c": zero},
                 expected={"da": np.concatenate([zero, dc * 0.25, dc * 0.5, zero], 1),
                           "dc_prev": dc * 0.5})
    sizes = [(2, 3), (3, 4), (1, 5), (4, 2), (2, 6)]
    return [known] + [_case(k, *s) for k, s in enumerate(sizes, start=1)]


def reference(case):
    a = case.args
    da, dc_prev = lstm.gates_backward(a["dh"], a["dc_next"], a["gates"], a["c_prev"], a["tanh_c"])
    return {"da": da, "dc_prev": dc_prev}


def numeric(case):
    a = case.args
    pre, c_prev = case.extra["a"].copy(), a["c_prev"].copy()

    def loss():
        h, c = forward(pre, c_prev)
        return float((h * a["dh"]).sum() + (c * a["dc_next"]).sum())
    return {"da": numerical_gradient(loss, pre), "dc_prev": numerical_gradient(loss, c_prev)}


def _derive(case, swap_if=False, no_f=False, no_dc_next=False, tanh_of_output=False,
            sigmoid_g=False, do_without_tanh=False):
    """The §3 block with a switch for each typical mistake."""
    a = case.args
    H = a["c_prev"].shape[1]
    gates, dh, tanh_c = a["gates"], a["dh"], a["tanh_c"]
    i, f, g, o = (gates[:, k * H:(k + 1) * H] for k in range(4))
    slope = 1 - np.tanh(tanh_c) ** 2 if tanh_of_output else 1 - tanh_c ** 2
    dc = (0 if no_dc_next else a["dc_next"]) + dh * o * slope
    do = dh if do_without_tanh else dh * tanh_c
    di, dg, df = dc * g, dc * i, dc * a["c_prev"]
    dc_prev = dc if no_f else dc * f
    blocks = [di * i * (1 - i), df * f * (1 - f),
              dg * g * (1 - g) if sigmoid_g else dg * (1 - g ** 2), do * o * (1 - o)]
    if swap_if:
        blocks[0], blocks[1] = blocks[1], blocks[0]
    return {"da": np.concatenate(blocks, axis=1), "dc_prev": dc_prev}


MISTAKES = (
    Mistake("swap_if", "the f and i blocks of da are swapped: da = [da_i, da_f, da_g, da_o], "
            "PyTorch's gate order i, f, g, o (§3).", lambda c: _derive(c, swap_if=True)),
    Mistake("no_f", "dc_prev lacks the factor f: c = f ⊙ c_prev + i ⊙ g, so dc_prev = dc ⊙ f "
            "(§3).", lambda c: _derive(c, no_f=True)),
    Mistake("no_dc_next", "dc_next is not added: the cell state also flows on to step t+1, so "
            "dc = dc_next + dh ⊙ o ⊙ (1 - tanh(c)²) (§3).", lambda c: _derive(c, no_dc_next=True)),
    Mistake("tanh_of_output", "tanh' is taken of the pre-activation instead of the output: "
            "tanh_c already is tanh(c), so the slope is 1 - tanh_c², not 1 - tanh(tanh_c)² (§3).",
            lambda c: _derive(c, tanh_of_output=True)),
    Mistake("sigmoid_g", "the g block uses σ' = g(1 - g); g = tanh(a_g), so its slope is "
            "1 - g² (§3).", lambda c: _derive(c, sigmoid_g=True)),
    Mistake("do_without_tanh", "the o block lacks the factor tanh(c): h = o ⊙ tanh(c), so "
            "do = dh ⊙ tanh(c) (§3).", lambda c: _derive(c, do_without_tanh=True)),
)


def rules(ev):
    if "da" not in ev.wrong or "da" in ev.bad_shape:
        return None
    swapped = ev.swapped_blocks("da", GATES)
    if swapped:
        return (f"the {swapped[1]} and {swapped[0]} blocks of da are swapped: da = [da_i, da_f, "
                f"da_g, da_o], PyTorch's gate order (§3).")
    ok = ev.blocks("da", GATES)
    bad = [g for g, good in zip(GATES, ok) if not good]
    if len(bad) == 1:
        return (f"only the {bad[0]} block of da is wrong: check d{bad[0]} and the derivative of "
                f"{bad[0]}'s activation (§3).")
    if bad == ["i", "f", "g"] and "dc_prev" in ev.wrong:
        return ("da_i, da_f, da_g and dc_prev are wrong while da_o is right: the error is in "
                "dc, the gradient at the cell state (dc_next + dh ⊙ o ⊙ (1 - tanh(c)²)).")
    return None


EXERCISE = Exercise(
    number=4, name=NAME, title="LSTM: the gate backward (da and dc_prev)",
    section='docs/derivations.md §3 "LSTM"',
    function="lstm_gates_backward",
    arguments=(("dh", "(B, H) the total dL/dh at this step's output"),
               ("dc_next", "(B, H) dL/dc arriving from step t+1"),
               ("gates", "(B, 4H) the post-activations [i, f, g, o], cached"),
               ("c_prev", "(B, H) the cell state entering the step"),
               ("tanh_c", "(B, H) tanh(c) of the new cell state, cached")),
    outputs=(("da", "(B, 4H) dL/da, blocks [da_i, da_f, da_g, da_o]"),
             ("dc_prev", "(B, H) dL/dc_prev")),
    equations="a = x W_x + b_x + h_prev W_h + b_h     (B, 4H), blocks a_i, a_f, a_g, a_o\n"
              "i = σ(a_i)   f = σ(a_f)   g = tanh(a_g)   o = σ(a_o)\n"
              "c = f ⊙ c_prev + i ⊙ g\nh = o ⊙ tanh(c)",
    task="Return da, the gradient at the four pre-activation blocks in the order i, f, g, o,\n"
         "and dc_prev. Take every derivative from the cached outputs (σ' = s(1-s), tanh' = 1-t²).",
    cases=cases, reference=reference, numeric=numeric, mistakes=MISTAKES, rules=rules)
