"""Exercise 6: clipping the gradients by their global norm (derivations §11)."""
from __future__ import annotations

from scratchrnn.book import optim
from scratchrnn.learn.exercises.base import Case, Exercise, Mistake, np, rng_for

NAME = "clipping"
KEYS = ("W_x", "W_h", "b")
SHAPES = {"W_x": (3, 8), "W_h": (2, 8), "b": (8,)}


def _grads(rng, scale):
    return {k: scale * rng.standard_normal(s) for k, s in SHAPES.items()}


def cases():
    known_grads = {"W_x": np.zeros((3, 8)), "W_h": np.zeros((2, 8)), "b": np.zeros(8)}
    known_grads["W_x"][0, 0], known_grads["W_h"][1, 2] = 3.0, 4.0
    expected = {k: v / 5.0 for k, v in known_grads.items()}
    expected["norm"] = np.float64(5.0)
    out = [Case("known answer: one 3 and one 4, max_norm 1: norm 5, every array scaled by 1/5",
                "known", {"grads": known_grads, "max_norm": 1.0}, expected=expected)]
    for k, (label, scale, max_norm) in enumerate([("far above the limit", 3.0, 1.0),
                                                  ("above the limit", 1.0, 2.5),
                                                  ("below the limit", 0.05, 5.0),
                                                  ("just below the limit", 0.5, 4.0)], start=1):
        out.append(Case(f"random {k}: {label}", "random",
                        {"grads": _grads(rng_for(NAME, k), scale), "max_norm": max_norm}))
    out.append(Case("all gradients zero", "edge", {"grads": _grads(rng_for(NAME, 9), 0.0),
                                                   "max_norm": 1.0}))
    return out


def reference(case):
    grads = {k: v.copy() for k, v in case.args["grads"].items()}
    norm = optim.clip_grad_norm(grads, case.args["max_norm"])
    return {**grads, "norm": np.float64(norm)}


def unpack(flat):
    if "out.n" not in flat or int(flat["out.n"]) != 2:
        return None, "return the tuple (clipped, norm): a dict of arrays and a number"
    if "out.0.keys" not in flat:
        return None, "the first value returned should be a dict of the clipped arrays"
    missing = [k for k in KEYS if f"out.0.{k}" not in flat]
    if missing:
        return None, f"the dict returned lacks {', '.join(missing)}"
    if "out.1" not in flat:
        return None, "the second value returned should be the norm, a number"
    return {**{k: flat[f"out.0.{k}"] for k in KEYS}, "norm": flat["out.1"]}, None


def _norm(grads):
    return np.sqrt(sum((g * g).sum() for g in grads.values()))


def _scaled(case, scale_of, norm_of=_norm):
    grads = case.args["grads"]
    norm = norm_of(grads)
    with np.errstate(divide="ignore", invalid="ignore"):
        s = scale_of(norm, case.args["max_norm"])
        return {**{k: v * s for k, v in grads.items()}, "norm": np.float64(norm)}


def _right_scale(norm, max_norm):
    return max_norm / norm if norm > max_norm else 1.0


def _per_array(case):
    m = case.args["max_norm"]
    out = {}
    for k, g in case.args["grads"].items():
        n = np.sqrt((g * g).sum())
        out[k] = g * (m / n) if n > m else g.copy()
    return {**out, "norm": np.float64(_norm(case.args["grads"]))}


def _after(case):
    ref = reference(case)
    return {**ref, "norm": np.float64(_norm({k: ref[k] for k in KEYS}))}


MISTAKES = (
    Mistake("per_array", "each array is clipped by its own norm: the norm is global, "
            "sqrt(Σ over ALL arrays of Σ g²), and one scale multiplies every array (§11).",
            _per_array),
    Mistake("always", "gradients below the limit are scaled too (up, or to NaN when all are "
            "0): scale only when norm > max_norm (§11).",
            lambda c: _scaled(c, lambda n, m: m / n)),
    Mistake("no_sqrt", "the norm lacks the square root: ‖g‖ = sqrt(Σ g²), not Σ g² (§11).",
            lambda c: _scaled(c, _right_scale, lambda g: _norm(g) ** 2)),
    Mistake("by_value", "the elements are clamped to ±max_norm (clipping by value): clipping "
            "by norm multiplies every array by max_norm / norm and keeps the direction (§11).",
            lambda c: {**{k: np.clip(v, -c.args["max_norm"], c.args["max_norm"])
                          for k, v in c.args["grads"].items()},
                       "norm": np.float64(_norm(c.args["grads"]))}),
    Mistake("norm_after", "the norm returned is the one after clipping: return the norm "
            "BEFORE clipping (training logs it to show how far above the limit it was).", _after),
    Mistake("inverted", "the scale is inverted: multiply by max_norm / norm (< 1), not "
            "norm / max_norm (§11).",
            lambda c: _scaled(c, lambda n, m: n / m if n > m else 1.0)),
)


def rules(ev):
    if ev.wrong == ["norm"]:
        return ("only the norm returned is wrong: it is sqrt(Σ g²) over every array, before "
                "clipping (§11).")
    return None


def properties(case, got):
    after = float(np.sqrt(sum((np.asarray(got[k], dtype=np.float64) ** 2).sum() for k in KEYS)))
    m = case.args["max_norm"]
    return [("the clipped norm is at most max_norm", after <= m * (1 + 1e-9),
             f"it is {after:.4g} > {m:g}")]


EXERCISE = Exercise(
    number=6, name=NAME, title="clipping the gradients by their global norm",
    section='docs/derivations.md §11 "Clipping by the global norm"',
    function="clip_by_global_norm",
    arguments=(("grads", "dict name -> array, e.g. W_x (I, G·H), W_h (H, G·H), b (G·H,)"),
               ("max_norm", "float > 0")),
    outputs=(("W_x", "(3, 8), as given"), ("W_h", "(2, 8), as given"), ("b", "(8,), as given"),
             ("norm", "() the global norm before clipping")),
    equations="norm = sqrt(Σ over every array g of Σ g²)\n"
              "if norm > max_norm: every g becomes g · max_norm / norm",
    task="Return (clipped, norm): a dict with the same keys holding the clipped arrays, and the\n"
         "global norm before clipping. (Changing the arrays in place is fine too.)",
    cases=cases, reference=reference, mistakes=MISTAKES, rules=rules, properties=properties,
    unpack=unpack, equations_title="What it computes",
    returns="    clipped   dict name -> array: the same keys and shapes as grads\n"
            "    norm      float: the global norm before clipping")
