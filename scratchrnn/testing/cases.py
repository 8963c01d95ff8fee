"""The inputs a check feeds a user's function, and the book's answers for them.

``step_case(cell, layout, B, I, H, seed)`` and ``sequence_case(cell, layout, T, B, I, H,
num_layers, seed)`` draw random inputs (float64 unless ``dtype`` says otherwise) in the
chosen layout; the strategies (``scratchrnn.testing.strategies``) draw the same cases with
hypothesis. ``book_step`` and ``book_sequence`` run the book (``scratchrnn.book.cells``) on a case:
forward values, and the gradients of the linear loss

    L = sum(h' * dh) [+ sum(c' * dc)]            one step
    L = sum(ys * dys) + sum(h_T * dh_T) [+ sum(c_T * dc_T)]   a sequence

whose gradient at the outputs is exactly the given dh, dc (dys ...): every output element
has its own random weight, so no mistake can cancel out.
"""
from __future__ import annotations

from typing import Any, NamedTuple

from scratchrnn.book.cells import CELLS
from scratchrnn.core.backend import CPU
from scratchrnn.testing.layouts import N_GATES, check_names, to_book_layout, to_user_layout

numpy = CPU.xp


class StepCase(NamedTuple):
    """One step of one layer. params in ``layout``; state h (B, H), or (h, c) for LSTM;
    dstate likewise: the gradient arriving at the step's output state."""
    cell: str
    layout: str
    params: dict
    x: Any            # (B, I)
    state: Any        # h (B, H) | (h, c)
    dstate: Any       # dh (B, H) | (dh, dc)


class SequenceCase(NamedTuple):
    """A stack of ``num_layers`` layers over T steps. state0 and dstateT are h (L, B, H),
    or (h, c) for LSTM; dys (T, B, H) is the gradient at the top layer's outputs."""
    cell: str
    layout: str
    num_layers: int
    params: dict
    xs: Any           # (T, B, I)
    state0: Any
    dys: Any          # (T, B, H)
    dstateT: Any


def _layer_params(cell, I, H, num_layers, rng, scale, dtype):
    G = N_GATES[cell]
    layers = []
    for k in range(num_layers):
        fan_in = I if k == 0 else H
        layers.append({name: (scale * rng.standard_normal(shape) / numpy.sqrt(H)).astype(dtype)
                       for name, shape in (("W_x", (fan_in, G * H)), ("W_h", (H, G * H)),
                                           ("b_x", (G * H,)), ("b_h", (G * H,)))})
    return layers


def _state(cell, shape, rng, dtype):
    draw = lambda: rng.standard_normal(shape).astype(dtype)   # noqa: E731
    return (draw(), draw()) if cell == "lstm" else draw()


def step_case(cell="lstm", layout="scratchrnn", B=2, I=3, H=4, seed=0, scale=1.0,
              dtype=numpy.float64) -> StepCase:
    """A random ``StepCase``: weights ~ scale * N(0, 1/H), inputs and states ~ N(0, 1)."""
    check_names(cell, layout)
    rng = numpy.random.default_rng(seed)
    params = to_user_layout(_layer_params(cell, I, H, 1, rng, scale, dtype), layout, False)
    x = rng.standard_normal((B, I)).astype(dtype)
    return StepCase(cell, layout, params, x, _state(cell, (B, H), rng, dtype),
                    _state(cell, (B, H), rng, dtype))


def sequence_case(cell="lstm", layout="scratchrnn", T=3, B=2, I=3, H=4, num_layers=1, seed=0,
                  scale=1.0, dtype=numpy.float64) -> SequenceCase:
    """A random ``SequenceCase`` (same distributions as ``step_case``)."""
    check_names(cell, layout)
    rng = numpy.random.default_rng(seed)
    params = to_user_layout(_layer_params(cell, I, H, num_layers, rng, scale, dtype), layout, True)
    xs = rng.standard_normal((T, B, I)).astype(dtype)
    state0 = _state(cell, (num_layers, B, H), rng, dtype)
    dys = rng.standard_normal((T, B, H)).astype(dtype)
    return SequenceCase(cell, layout, num_layers, params, xs, state0, dys,
                        _state(cell, (num_layers, B, H), rng, dtype))


# ------------------------------------------------------------------------ the book
def _f64(a):
    return numpy.array(a, dtype=numpy.float64)


def _parts(state):
    return tuple(state) if isinstance(state, tuple) else (state,)


def book_step(case: StepCase, with_grads=True):
    """The book on a step case, in float64: ({"h": h', ["c": c']}, grads or None) where
    grads names the user's parameter names plus "x", "h" (and "c")."""
    cell = CELLS[case.cell]
    (params,) = to_book_layout({k: _f64(v) for k, v in case.params.items()}, 1, case.layout,
                               False)
    state = tuple(_f64(s) for s in _parts(case.state))
    x = _f64(case.x)
    _, new_state, cache = cell.step_forward(params, x, state if case.cell == "lstm" else state[0])
    names = ("h", "c")
    outputs = dict(zip(names, _parts(new_state)))
    if not with_grads:
        return outputs, None
    dstate = tuple(_f64(d) for d in _parts(case.dstate))
    if case.cell == "lstm":
        dx, dprev, g = cell.step_backward(params, dstate[0], (numpy.zeros_like(dstate[0]),
                                                              dstate[1]), cache)
    else:
        dx, dprev, g = cell.step_backward(params, dstate[0], numpy.zeros_like(dstate[0]), cache)
    grads = to_user_layout([g], case.layout, False)
    grads["x"] = dx
    grads.update(zip(names, _parts(dprev)))
    return outputs, grads


def book_step_loss(case: StepCase, params_book, x, state):
    """The linear loss of ``book_step`` for arrays the finite differences perturb."""
    cell = CELLS[case.cell]
    _, new_state, _ = cell.step_forward(params_book, x, state if case.cell == "lstm" else state[0])
    return float(sum((s * _f64(d)).sum() for s, d in zip(_parts(new_state), _parts(case.dstate))))


def book_sequence(case: SequenceCase, with_grads=True):
    """The book on a sequence case, in float64: ({"ys", "h_T", ["c_T"]}, grads or None),
    grads named like the user's parameters plus "xs", "h0" (and "c0")."""
    layers = to_book_layout({k: _f64(v) for k, v in case.params.items()}, case.num_layers,
                            case.layout, True)
    ys, statesT, caches = _stack_forward(case.cell, layers, _f64(case.xs),
                                         tuple(_f64(s) for s in _parts(case.state0)))
    names = ("h_T", "c_T")
    outputs = {"ys": ys, **dict(zip(names, statesT))}
    if not with_grads:
        return outputs, None
    cell = CELLS[case.cell]
    dys = _f64(case.dys)
    dT = tuple(_f64(d) for d in _parts(case.dstateT))
    grads_book = [None] * case.num_layers
    d0 = [None] * case.num_layers
    for k in reversed(range(case.num_layers)):
        dstate = tuple(d[k] for d in dT)
        dys, dstate0, grads_book[k] = cell.backward(
            layers[k], dys, dstate if case.cell == "lstm" else dstate[0], caches[k])
        d0[k] = _parts(dstate0)
    grads = to_user_layout(grads_book, case.layout, True)
    grads["xs"] = dys
    for j, name in enumerate(("h0", "c0")[:len(dT)]):
        grads[name] = numpy.stack([d0[k][j] for k in range(case.num_layers)])
    return outputs, grads


def _stack_forward(kind, layers, xs, states0):
    cell = CELLS[kind]
    ys, finals, caches = xs, [], []
    for k, params in enumerate(layers):
        s0 = tuple(s[k] for s in states0)
        ys, sT, cache = cell.forward(params, ys, s0 if kind == "lstm" else s0[0])
        finals.append(_parts(sT))
        caches.append(cache)
    statesT = tuple(numpy.stack([f[j] for f in finals]) for j in range(len(states0)))
    return ys, statesT, caches


def book_sequence_loss(case: SequenceCase, layers, xs, states0):
    """The linear loss of ``book_sequence`` for arrays the finite differences perturb."""
    ys, statesT, _ = _stack_forward(case.cell, layers, xs, states0)
    total = (ys * _f64(case.dys)).sum()
    for s, d in zip(statesT, _parts(case.dstateT)):
        total += (s * _f64(d)).sum()
    return float(total)
