"""Every cell's backward pass against float64 finite differences, for random shapes.

Property: for any T (1-7), B (1-4), I (1-6), H (1-6), 1-3 layers, random data,
random initial states and random weights (the init scaled by 0.5-2.5, to reach
saturated gates too), the gradient of every parameter, of the input and of the
initial state(s) agrees with central differences to a normwise relative error
below 1e-6 (``scratchrnn.book.gradcheck.check_layer``, loss = a random linear
functional of the outputs and final states).

relu and its kink. relu is not differentiable at 0, and a central difference whose
two points x +- eps put some pre-activation on different sides of 0 averages the
two slopes: it is simply wrong there, whatever the backward does. Rather than
hope no pre-activation lands within ~eps of 0 (with hundreds of them per example
that happens now and then) or filter examples (which would bias the test toward
easy draws), the check detects it: for a relu RNN, ``check_layer`` records the
sign pattern of every pre-activation of every layer and step, and an element
whose +eps or -eps evaluation changes that pattern is left out of the comparison
(``Row.skipped``). Elsewhere the function is smooth (linear pieces composed with
tanh-free matrix products), so the comparison is exact to rounding. A separate
test builds a pre-activation 3e-6 from the kink to show that the naive difference
fails there and the skip is what makes the check pass.
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scratchrnn import engines
from scratchrnn.blocks.layers import LAYERS, RNN
from scratchrnn.book.cells import CELLS
from scratchrnn.book.gradcheck import (
    Row,
    check_function,
    check_layer,
    format_table,
    numerical_gradient,
    rel_error,
)
from scratchrnn.core.backend import host_rng
from scratchrnn.testing import assert_step_backward, assert_step_forward
from scratchrnn.testing.strategies import step_cases


def step_cases_of_the_kit():
    """One step of any cell, in the book's layout, drawn by the public kit's strategy."""
    return step_cases(layout="scratchrnn")

TOL = 1e-6
ENGINES = ("textbook", "reference", "auto")    # the cells' two levels, the fast engine
VARIANTS = {"rnn-tanh": ("rnn", {"nonlinearity": "tanh"}),
            "rnn-relu": ("rnn", {"nonlinearity": "relu"}),
            "gru": ("gru", {}), "lstm": ("lstm", {})}

shapes = dict(T=st.integers(1, 7), B=st.integers(1, 4), I=st.integers(1, 6), H=st.integers(1, 6))


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("variant", list(VARIANTS))
@given(L=st.integers(1, 3), seed=st.integers(0, 2**32 - 1), scale=st.floats(0.5, 2.5),
       batch_first=st.booleans(), **shapes)
def test_every_gradient_matches_finite_differences(backend, use_engine, engine, variant, T, B, I,
                                                   H, L, seed, scale, batch_first):
    with use_engine(engine):
        _check_every_gradient(backend, variant, T, B, I, H, L, seed, scale, batch_first)


def _check_every_gradient(backend, variant, T, B, I, H, L, seed, scale, batch_first):
    kind, options = VARIANTS[variant]
    layer = LAYERS[kind](I, H, num_layers=L, batch_first=batch_first, backend=backend,
                         dtype="float64", seed=seed, **options)
    for p in layer.params.values():
        p *= scale
    rows = check_layer(layer, T, B, seed=seed, tol=TOL)
    expected = set(layer.params) | {"x", "h0"} | ({"c0"} if kind == "lstm" else set())
    assert [r.name for r in rows][:len(layer.params)] == list(layer.params)
    assert {r.name for r in rows} == expected
    assert all(r.passed for r in rows), "\n" + format_table(rows)
    skipped = sum(r.skipped for r in rows)
    if variant != "rnn-relu":
        assert skipped == 0
    else:       # kinks are rare: a pre-activation must lie within ~eps of 0
        assert skipped <= 0.05 * sum(np.prod(p.shape) for p in layer.params.values()) + 3


def test_relu_kink_is_detected_and_skipped():
    """A relu pre-activation 3e-6 above 0 (eps = 1e-5): differences through b_x straddle
    the kink. The naive central difference is then off by ~35%; check_layer skips it."""
    layer = RNN(1, 1, nonlinearity="relu", dtype="float64", seed=0)
    seed = 11
    rng = np.random.default_rng(seed)             # the draws check_layer makes, in its order
    x = rng.standard_normal((1, 1, 1))
    layer.params["l0.W_x"][...] = 1.0
    layer.params["l0.W_h"][...] = 0.0
    layer.params["l0.b_h"][...] = 0.0
    layer.params["l0.b_x"][...] = layer.backend.asarray(3e-6 - x.ravel())   # pre-activation a = x + b_x = 3e-6

    rows = {r.name: r for r in check_layer(layer, T=1, B=1, seed=seed)}
    assert rows["l0.b_x"].skipped == 1 and rows["l0.b_h"].skipped == 1 and rows["x"].skipped == 1
    assert all(r.passed for r in rows.values())

    # the same derivative without kink detection is wrong
    y_weight = 1.0
    loss = lambda: float(layer.forward(x)[0].sum() * y_weight)   # noqa: E731
    layer.forward(x)
    naive = numerical_gradient(loss, layer.params["l0.b_x"])
    assert rel_error(np.ones(1), naive) > 0.1        # analytic slope is 1 on the active side


@pytest.mark.parametrize("engine", ["textbook", "reference"])
def test_a_wrong_backward_is_caught(backend, monkeypatch, use_engine, engine):
    """The check is not vacuous: a small mistake in the GRU gate derivative fails it."""
    from scratchrnn.book.cells import gru
    original = gru.gates_backward

    def wrong(dh, gates, hn, h_prev):
        dax, dah, dh_prev = original(dh, gates, hn, h_prev)
        return dax, dah, dh_prev * 1.001        # a 0.1% error on the z * h path
    monkeypatch.setattr(gru, "gates_backward", wrong)
    with use_engine(engine):                    # both levels of the book call gates_backward
        one_step = LAYERS["gru"](3, 4, backend=backend, dtype="float64", seed=1)
        rows = {r.name: r for r in check_layer(one_step, T=1, B=2, seed=1)}
        # with one step the z * h path leads only to h0: exactly that row fails
        assert [name for name, r in rows.items() if not r.passed] == ["h0"]
        assert rows["h0"].max_rel_error > 1e-5
        deep = LAYERS["gru"](3, 4, num_layers=2, backend=backend, dtype="float64", seed=1)
        rows = {r.name: r for r in check_layer(deep, T=4, B=2, seed=1)}
        assert not rows["h0"].passed and not rows["l0.W_h"].passed and not rows["x"].passed


def test_a_wrong_fast_engine_is_caught(backend, monkeypatch):
    """The layer check runs whatever engine the layer chose: spoil the fast LSTM's dW_h."""
    real = engines.resolve

    def spoiled(name, cell, backend):
        engine = real(name, cell, backend)

        def backward(*args, **kwargs):
            dxs, dstate0, grads = engine.backward(*args, **kwargs)
            return dxs, dstate0, {**grads, "W_h": grads["W_h"] * 1.001}
        return engine._replace(backward=backward)

    monkeypatch.setattr(engines, "resolve", spoiled)
    layer = LAYERS["lstm"](2, 3, num_layers=2, backend=backend, dtype="float64", seed=2,
                           engine="fast")
    assert layer.engine.startswith("fast")
    rows = {r.name: r for r in check_layer(layer, T=3, B=2, seed=2)}
    assert sorted(n for n, r in rows.items() if not r.passed) == ["l0.W_h", "l1.W_h"]


def test_check_layer_refuses_float32(backend):
    with pytest.raises(ValueError, match="float64"):
        check_layer(LAYERS["lstm"](2, 2, backend=backend), T=2, B=1)


def test_check_layer_restores_params_and_grads(backend):
    layer = LAYERS["lstm"](2, 3, num_layers=2, backend=backend, dtype="float64", seed=4)
    for g in layer.grads.values():
        g[...] = 0.25
    before = {k: backend.asnumpy(v).copy() for k, v in layer.params.items()}
    check_layer(layer, T=3, B=2, seed=0)
    for k in layer.params:
        np.testing.assert_array_equal(backend.asnumpy(layer.params[k]), before[k])
        np.testing.assert_array_equal(backend.asnumpy(layer.grads[k]), 0.25)


# -------------------------------------------------- one step at a time == whole sequence
def _random_state(rng, backend, kind, B, H, scale=1.0):
    draw = lambda: backend.asarray(scale * rng.standard_normal((B, H)))   # noqa: E731
    return (draw(), draw()) if kind == "lstm" else draw()


def _parts(state):
    return state if isinstance(state, tuple) else (state,)


@pytest.mark.parametrize("level", [1, 2])
@pytest.mark.parametrize("variant", list(VARIANTS))
@given(seed=st.integers(0, 2**32 - 1), **shapes)
def test_step_functions_agree_with_the_sequence(backend, level, variant, T, B, I, H, seed):
    """Level 1 (the scans of the step functions) and level 2 (the GEMMs hoisted) both equal
    a hand-written loop over ``step_forward`` / ``step_backward``, to 1e-12."""
    kind, options = VARIANTS[variant]
    cell = CELLS[kind]
    rng = np.random.default_rng(seed)
    params = cell.init_params(I, H, host_rng(seed), backend, np.float64)
    xs = backend.asarray(rng.standard_normal((T, B, I)))
    dys = backend.asarray(rng.standard_normal((T, B, H)))
    state0 = _random_state(rng, backend, kind, B, H)
    dstateT = _random_state(rng, backend, kind, B, H)

    forward, backward = ((cell.forward, cell.backward) if level == 1
                         else (cell.forward_hoisted, cell.backward_hoisted))
    ys, stateT, cache = forward(params, xs, state0, **options)
    dxs, dstate0, grads = backward(params, dys, dstateT, cache, **options)

    state, step_ys, step_caches = state0, [], []
    for t in range(T):
        y, state, c = cell.step_forward(params, xs[t], state, **options)
        step_ys.append(backend.asnumpy(y))
        step_caches.append(c)
    close = lambda a, b: rel_error(a, b) < 1e-12     # noqa: E731
    assert close(np.stack(step_ys), ys)
    for a, b in zip(_parts(state), _parts(stateT)):
        assert close(a, b)

    dstate, step_dxs = dstateT, [None] * T
    total = {k: np.zeros(v.shape) for k, v in params.items()}
    for t in reversed(range(T)):
        step_dxs[t], dstate, g = cell.step_backward(params, dys[t], dstate, step_caches[t], **options)
        for k in total:
            total[k] += backend.asnumpy(g[k])
        step_dxs[t] = backend.asnumpy(step_dxs[t])
    assert close(np.stack(step_dxs), dxs)
    for a, b in zip(_parts(dstate), _parts(dstate0)):
        assert close(a, b)
    for k in params:
        assert close(total[k], grads[k]), k


# ------------------------------------------------------ the gradcheck helpers themselves
def test_rel_error_is_normwise():
    a = np.array([1.0, 1e-13])
    b = np.array([1.0, 3e-13])        # elementwise the second entry is 50% off ...
    assert rel_error(a, b) < 1e-12    # ... but against the array's scale it is rounding noise
    assert rel_error([2.0, 0.0], [1.0, 0.0]) == pytest.approx(1 / 3)
    assert rel_error(np.zeros(3), np.zeros(3)) == 0.0                  # the floor: no 0/0
    assert rel_error(np.zeros(2), np.full(2, 1e-14), floor=1e-6) == pytest.approx(1e-8)
    assert rel_error(np.zeros(0), np.zeros(0)) == 0.0
    with pytest.raises(ValueError, match="shape"):
        rel_error(np.zeros(2), np.zeros(3))


def test_numerical_gradient_restores_and_differences_exactly(backend):
    x = backend.asarray(np.array([[0.5, -1.0], [2.0, 3.0]]))
    before = backend.asnumpy(x).copy()
    g = numerical_gradient(lambda: (x ** 3).sum(), x)
    assert isinstance(g, np.ndarray) and g.dtype == np.float64
    np.testing.assert_allclose(g, 3 * before ** 2, rtol=1e-9)
    np.testing.assert_array_equal(backend.asnumpy(x), before)       # restored bit for bit

    def boom():
        raise RuntimeError("loss failed")
    with pytest.raises(RuntimeError):
        numerical_gradient(boom, x)
    np.testing.assert_array_equal(backend.asnumpy(x), before)       # also when f raises


def test_numerical_gradient_float32_uses_the_step_actually_taken():
    x = np.array([1000.0, 0.1], dtype=np.float32)
    g = numerical_gradient(lambda: float((x.astype(np.float64) * [2.0, 3.0]).sum()), x, eps=1e-3)
    np.testing.assert_allclose(g, [2.0, 3.0], rtol=1e-9)    # 1000 +- 1e-3 rounds in float32


def test_numerical_gradient_region_marks_kinks():
    x = np.array([2e-6, 1.0, -1.0])
    f = lambda: np.maximum(x, 0).sum()                      # noqa: E731
    g = numerical_gradient(f, x, eps=1e-5, region=lambda: x > 0)
    assert np.isnan(g[0]) and g[1] == pytest.approx(1.0) and g[2] == 0.0


def test_check_function_for_any_function():
    """The generic helper a model can reuse: a loss closure, the arrays, the analytic grads."""
    rng = np.random.default_rng(0)
    W, v = rng.standard_normal((3, 4)), rng.standard_normal(3)
    loss = lambda: float(np.tanh(v @ W).sum())             # noqa: E731
    dW = np.outer(v, 1 - np.tanh(v @ W) ** 2)
    dv = W @ (1 - np.tanh(v @ W) ** 2)
    rows = check_function(loss, {"W": W, "v": v}, {"W": dW, "v": dv})
    assert [r.name for r in rows] == ["W", "v"] and all(r.passed for r in rows)
    rows = check_function(loss, {"W": W, "v": v}, {"W": dW, "v": dv * 1.01})
    assert rows[0].passed and not rows[1].passed
    with pytest.raises(ValueError, match="no analytic gradient"):
        check_function(loss, {"W": W}, {})
    with pytest.raises(ValueError, match="shape"):
        check_function(loss, {"W": W}, {"W": dW.T})


def test_format_table():
    rows = [Row("l0.W_x", 1.5e-11, True), Row("h0", 2e-3, False, skipped=2)]
    text = format_table(rows, {"cell": ["lstm", "lstm"]})
    lines = text.splitlines()
    assert lines[0].split() == ["cell", "parameter", "max", "rel", "error", "result", "skipped"]
    assert lines[2].split() == ["lstm", "l0.W_x", "1.50e-11", "pass", "0"]
    assert lines[3].split() == ["lstm", "h0", "2.00e-03", "FAIL", "2"]
    assert "skipped" not in format_table(rows[:1])
    with pytest.raises(ValueError, match="values"):
        format_table(rows, {"cell": ["x"]})


# ------------------------------------------- the same property through the public test kit
@given(case=step_cases_of_the_kit())
def test_every_step_backward_through_the_public_kit(case):
    """The cells' own step functions, as a user of ``scratchrnn.testing`` would check theirs:
    every gate block of every parameter, the input and the state against the book and
    float64 central differences (the project eats its own cooking)."""
    cell = CELLS[case.cell]

    def forward(params, x, state):
        return cell.step_forward(params, x, state)[1]

    def backward(params, x, state, dstate):
        _, _, cache = cell.step_forward(params, x, state)
        if case.cell == "lstm":
            dx, (dh, dc), grads = cell.step_backward(params, dstate[0],
                                                     (np.zeros_like(dstate[0]), dstate[1]), cache)
            return {**grads, "x": dx, "h": dh, "c": dc}
        dx, dh, grads = cell.step_backward(params, dstate, np.zeros_like(dstate), cache)
        return {**grads, "x": dx, "h": dh}

    assert_step_forward(forward, case=case)
    assert_step_backward(backward, case=case)
