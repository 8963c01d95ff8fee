"""Exercise 7: one Adam update of one parameter array (derivations §12)."""
from __future__ import annotations

from scratchrnn.book import optim
from scratchrnn.learn.exercises.base import Case, Exercise, Mistake, np, rng_for

NAME = "adam"


def cases():
    rng = rng_for(NAME, 0)
    g = rng.standard_normal((2, 3))
    p = rng.standard_normal((2, 3))
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    known = Case("known answer: t = 1 from m = v = 0: m = 0.1 g, v = 0.001 g², and the step is "
                 "lr · g / (|g| + eps) ≈ lr · sign(g)", "known",
                 {"param": p, "grad": g, "m": np.zeros_like(g), "v": np.zeros_like(g), "t": 1,
                  "lr": lr, "beta1": b1, "beta2": b2, "eps": eps},
                 expected={"param": p - lr * g / (np.abs(g) + eps), "m": 0.1 * g,
                           "v": 0.001 * g * g})
    out = [known]
    for k, (t, gscale, eps, b1, b2) in enumerate([(1, 1.0, 1e-8, 0.9, 0.999),
                                                  (2, 0.1, 1e-8, 0.9, 0.999),
                                                  (7, 1e-3, 1e-3, 0.8, 0.99),
                                                  (30, 3.0, 1e-8, 0.5, 0.9),
                                                  (3, 1e-2, 1e-2, 0.9, 0.95)], start=1):
        rng = rng_for(NAME, k)
        shape = [(3, 4), (5,), (2, 6), (4, 4), (3,)][k - 1]
        m = 0.5 * gscale * rng.standard_normal(shape) if t > 1 else np.zeros(shape)
        v = (gscale * rng.standard_normal(shape)) ** 2 if t > 1 else np.zeros(shape)
        out.append(Case(f"random {k} (t={t}, eps={eps:g}, betas=({b1}, {b2}))", "random",
                        {"param": rng.standard_normal(shape),
                         "grad": gscale * rng.standard_normal(shape), "m": m, "v": v, "t": t,
                         "lr": 10 ** rng.uniform(-3, -1), "beta1": b1, "beta2": b2, "eps": eps}))
    return out


def reference(case):
    a = case.args
    opt = optim.Adam(a["lr"], beta1=a["beta1"], beta2=a["beta2"], eps=a["eps"])
    p, m, v = a["param"].copy(), a["m"].copy(), a["v"].copy()
    opt.state = {"m": {"p": m}, "v": {"p": v}}          # the running means so far
    opt.update_all({"p": p}, {"p": a["grad"]}, a["t"], a["lr"])
    return {"param": p, "m": m, "v": v}


def _update(case, correct=True, eps_inside=False, v_of_g=False, betas_swapped=False,
            t_shift=0, uphill=False):
    a = case.args
    b1, b2 = (a["beta2"], a["beta1"]) if betas_swapped else (a["beta1"], a["beta2"])
    g, t = a["grad"], a["t"] + t_shift
    m = b1 * a["m"] + (1 - b1) * g
    v = b2 * a["v"] + (1 - b2) * (g if v_of_g else g * g)
    m_hat, v_hat = (m / (1 - b1 ** t), v / (1 - b2 ** t)) if correct else (m, v)
    with np.errstate(invalid="ignore"):
        step = m_hat / (np.sqrt(v_hat + a["eps"]) if eps_inside else np.sqrt(v_hat) + a["eps"])
    return {"param": a["param"] + a["lr"] * step if uphill else a["param"] - a["lr"] * step,
            "m": m, "v": v}


MISTAKES = (
    Mistake("no_bias_correction", "there is no bias correction: m and v start at 0, so divide "
            "them by (1 - beta1^t) and (1 - beta2^t) before the step (§12).",
            lambda c: _update(c, correct=False)),
    Mistake("eps_inside", "eps is inside the square root: the step is m̂ / (sqrt(v̂) + eps) "
            "(§12).", lambda c: _update(c, eps_inside=True)),
    Mistake("v_of_g", "v must average the SQUARED gradient, g ⊙ g, not g (§12).",
            lambda c: _update(c, v_of_g=True)),
    Mistake("betas_swapped", "beta1 and beta2 are swapped: m (the mean of g) uses beta1, v "
            "(the mean of g²) uses beta2 (§12).", lambda c: _update(c, betas_swapped=True)),
    Mistake("t_plus_one", "the bias correction uses t + 1: t already counts from 1 (the first "
            "update has t = 1) (§12).", lambda c: _update(c, t_shift=1)),
    Mistake("uphill", "the step goes uphill: param -= lr · m̂ / (sqrt(v̂) + eps), not += (§12).",
            lambda c: _update(c, uphill=True)),
)


def rules(ev):
    if ev.wrong == ["param"]:
        return ("m and v are right but the parameter is not: check the bias correction and the "
                "step lr · m̂ / (sqrt(v̂) + eps) (§12).")
    if "m" in ev.wrong and "v" not in ev.wrong:
        return "m is wrong while v is right: m = beta1 · m + (1 - beta1) · g (§12)."
    if "v" in ev.wrong and "m" not in ev.wrong:
        return "v is wrong while m is right: v = beta2 · v + (1 - beta2) · g² (§12)."
    return None


EXERCISE = Exercise(
    number=7, name=NAME, title="the Adam update",
    section='docs/derivations.md §12 "Adam"',
    function="adam_update",
    arguments=(("param", "array, any shape S"), ("grad", "S, its gradient"),
               ("m", "S, the running mean of g (0 before the first step)"),
               ("v", "S, the running mean of g² (0 before the first step)"),
               ("t", "int, the step number, 1 for the first update"), ("lr", "float"),
               ("beta1", "float"), ("beta2", "float"), ("eps", "float")),
    outputs=(("param", "S, after the update"), ("m", "S, updated"), ("v", "S, updated")),
    equations="m = beta1 m + (1 - beta1) g          v = beta2 v + (1 - beta2) g²\n"
              "m̂ = m / (1 - beta1^t)              v̂ = v / (1 - beta2^t)\n"
              "param = param - lr · m̂ / (sqrt(v̂) + eps)",
    task="Return the new (param, m, v). (New arrays or the arguments changed in place.)",
    cases=cases, reference=reference, mistakes=MISTAKES, rules=rules,
    equations_title="What it computes")
