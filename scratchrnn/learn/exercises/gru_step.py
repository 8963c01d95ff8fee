"""Exercise 5: one GRU step backward, PyTorch's reset-after form (derivations §4)."""
from __future__ import annotations

from scratchrnn.book.cells import gru
from scratchrnn.book.gradcheck import numerical_gradient
from scratchrnn.book.ops import sigmoid
from scratchrnn.learn.exercises.base import Case, Exercise, Mistake, adjoint_property, np, rng_for

NAME = "gru_step"
NAMES = ("dx", "dh_prev", "dW_x", "dW_h", "db_x", "db_h")


def forward(x, h_prev, W_x, W_h, b_x, b_h):
    """h', gates [r, z, n] (B, 3H), hn = a_h,n (B, H)."""
    H = h_prev.shape[1]
    ax, ah = x @ W_x + b_x, h_prev @ W_h + b_h
    r = sigmoid(ax[:, :H] + ah[:, :H])
    z = sigmoid(ax[:, H:2 * H] + ah[:, H:2 * H])
    n = np.tanh(ax[:, 2 * H:] + r * ah[:, 2 * H:])
    return (1 - z) * n + z * h_prev, np.concatenate([r, z, n], axis=1), ah[:, 2 * H:]


def _case(k, B, I, H):
    rng = rng_for(NAME, k)
    x, h_prev = rng.standard_normal((B, I)), rng.standard_normal((B, H))
    W_x = rng.standard_normal((I, 3 * H)) / np.sqrt(I)
    W_h = rng.standard_normal((H, 3 * H)) / np.sqrt(H)
    b_x, b_h = 0.5 * rng.standard_normal(3 * H), 0.5 * rng.standard_normal(3 * H)
    _, gates, hn = forward(x, h_prev, W_x, W_h, b_x, b_h)
    return Case(f"random {k} (B={B}, I={I}, H={H})", "random",
                {"dh": rng.standard_normal((B, H)), "x": x, "h_prev": h_prev, "gates": gates,
                 "hn": hn, "W_x": W_x, "W_h": W_h}, extra={"b_x": b_x, "b_h": b_h})


def cases():
    rng = rng_for(NAME, 0)
    B, I, H = 2, 2, 3
    dh = rng.standard_normal((B, H))
    W_x, W_h = rng.standard_normal((I, 3 * H)), rng.standard_normal((H, 3 * H))
    half, zero = np.full((B, H), 0.5), np.zeros((B, H))
    # r = z = 1/2, n = 0, hn = 0, h_prev = 0: dn = dh/2, da_n = dh/2, dz = 0, dr = 0
    dax = np.concatenate([zero, zero, dh / 2], axis=1)
    dah = np.concatenate([zero, zero, dh / 4], axis=1)
    known = Case("known answer: r = z = 1/2, n = 0, a_h,n = 0, h_prev = 0, x = 0: dax = [0, 0, "
                 "dh/2], dah = [0, 0, dh/4]", "known",
                 {"dh": dh, "x": np.zeros((B, I)), "h_prev": zero, "gates": np.concatenate(
                     [half, half, zero], 1), "hn": zero, "W_x": W_x, "W_h": W_h},
                 expected={"dx": dax @ W_x.T, "dh_prev": dh / 2 + dah @ W_h.T,
                           "dW_x": np.zeros((I, 3 * H)), "dW_h": np.zeros((H, 3 * H)),
                           "db_x": dax.sum(0), "db_h": dah.sum(0)})
    sizes = [(2, 3, 3), (3, 2, 4), (1, 4, 2), (4, 3, 5), (2, 5, 3)]
    return [known] + [_case(k, *s) for k, s in enumerate(sizes, start=1)]


def reference(case):
    a = case.args
    GH = a["W_x"].shape[1]
    params = {"W_x": a["W_x"], "W_h": a["W_h"], "b_x": np.zeros(GH), "b_h": np.zeros(GH)}
    dx, dh_prev, g = gru.step_backward(params, a["dh"], np.zeros_like(a["dh"]),
                                       gru.StepCache(a["x"], a["h_prev"], a["gates"], a["hn"]))
    return dict(zip(NAMES, (dx, dh_prev, g["W_x"], g["W_h"], g["b_x"], g["b_h"])))


def numeric(case):
    a = case.args
    arrays = {"dx": a["x"].copy(), "dh_prev": a["h_prev"].copy(), "dW_x": a["W_x"].copy(),
              "dW_h": a["W_h"].copy(), "db_x": case.extra["b_x"].copy(),
              "db_h": case.extra["b_h"].copy()}
    loss = lambda: float((forward(*arrays.values())[0] * a["dh"]).sum())   # noqa: E731
    return {k: numerical_gradient(loss, v) for k, v in arrays.items()}


def _derive(case, n_unscaled=False, no_direct=False, z_swapped=False, dz_sign=False,
            no_recurrent=False, bh_from_dax=False):
    """§4's backward with a switch for each typical mistake."""
    a = case.args
    H = a["h_prev"].shape[1]
    dh, h_prev, hn = a["dh"], a["h_prev"], a["hn"]
    r, z, n = (a["gates"][:, k * H:(k + 1) * H] for k in range(3))
    dn = dh * z if z_swapped else dh * (1 - z)
    dz = dh * (n - h_prev) if dz_sign else dh * (h_prev - n)
    direct = 0 if no_direct else (dh * (1 - z) if z_swapped else dh * z)
    dan = dn * (1 - n ** 2)
    da_r, da_z = dan * hn * r * (1 - r), dz * z * (1 - z)
    dax = np.concatenate([da_r, da_z, dan], axis=1)
    dah = np.concatenate([da_r, da_z, dan if n_unscaled else r * dan], axis=1)
    dh_prev = direct + (0 if no_recurrent else dah @ a["W_h"].T)
    return {"dx": dax @ a["W_x"].T, "dh_prev": np.asarray(dh_prev) + np.zeros_like(h_prev),
            "dW_x": a["x"].T @ dax, "dW_h": h_prev.T @ dah, "db_x": dax.sum(0),
            "db_h": dax.sum(0) if bh_from_dax else dah.sum(0)}


MISTAKES = (
    Mistake("n_unscaled", "the n block of dah lacks the factor r: the reset gate scales only "
            "h W_hn + b_hn, so dah's n block is r ⊙ da_n while dax's is da_n (§4).",
            lambda c: _derive(c, n_unscaled=True)),
    Mistake("no_direct", "dh_prev lacks the direct path z ⊙ dh: h' = (1 - z) ⊙ n + z ⊙ h_prev "
            "uses h_prev itself, not only through W_h (§4).", lambda c: _derive(c, no_direct=True)),
    Mistake("z_swapped", "z and 1 - z are swapped: h' = (1 - z) ⊙ n + z ⊙ h_prev, so "
            "dn = dh ⊙ (1 - z) and the direct path is dh ⊙ z (§4).",
            lambda c: _derive(c, z_swapped=True)),
    Mistake("dz_sign", "dz has the wrong sign: ∂h'/∂z = h_prev - n, not n - h_prev (§4).",
            lambda c: _derive(c, dz_sign=True)),
    Mistake("no_recurrent", "dh_prev lacks dah W_hᵀ: h_prev also enters the gates through "
            "h_prev W_h (§4).", lambda c: _derive(c, no_recurrent=True)),
    Mistake("bh_from_dax", "db_h equals db_x: the hidden bias gets dah (whose n block is "
            "r ⊙ da_n), not dax (§4).", lambda c: _derive(c, bh_from_dax=True)),
)


def rules(ev):
    if set(ev.wrong) == {"dh_prev"}:
        return ("only dh_prev is wrong: it has two parts, the direct z ⊙ dh and dah W_hᵀ "
                "(§4).")
    if set(ev.wrong) == {"dW_h", "db_h", "dh_prev"}:
        return ("dW_h, db_h and dh_prev are wrong while dW_x, db_x and dx are right: the "
                "error is in dah, the hidden side (check the r ⊙ da_n block) (§4).")
    return None



def properties(case, got):
    a = case.args
    props = [adjoint_property("W_x", a["W_x"], "x", a["x"], got["dW_x"], got["dx"])]
    return props


EXERCISE = Exercise(
    number=5, name=NAME, title="GRU: one step backward (reset-after form)",
    section='docs/derivations.md §4 "GRU"',
    function="gru_step_backward",
    arguments=(("dh", "(B, H) the total dL/dh'"), ("x", "(B, I)"),
               ("h_prev", "(B, H) the state entering the step"),
               ("gates", "(B, 3H) the post-activations [r, z, n], cached"),
               ("hn", "(B, H) a_h,n = h_prev W_hn + b_hn, cached"),
               ("W_x", "(I, 3H)"), ("W_h", "(H, 3H)")),
    outputs=(("dx", "(B, I)"), ("dh_prev", "(B, H)"), ("dW_x", "(I, 3H)"), ("dW_h", "(H, 3H)"),
             ("db_x", "(3H,)"), ("db_h", "(3H,)")),
    equations="a_x = x W_x + b_x      a_h = h_prev W_h + b_h       each (B, 3H): [r | z | n]\n"
              "r = σ(a_x,r + a_h,r)   z = σ(a_x,z + a_h,z)\n"
              "n = tanh(a_x,n + r ⊙ a_h,n)          (hn = a_h,n is an argument)\n"
              "h' = (1 - z) ⊙ n + z ⊙ h_prev",
    task="Return the gradients with respect to x, h_prev, W_x, W_h, b_x and b_h. The input\n"
         "side and the hidden side get different pre-activation gradients (dax and dah).",
    cases=cases, reference=reference, numeric=numeric, properties=properties,
    mistakes=MISTAKES, rules=rules)
