"""Sequence regression (``scratchrnn.blocks.regression``): teacher forcing and free running.

Properties, for random shapes, weights and data in float64:
- the free-running backward (BPTT through every fed-back output y_{t-1} -> input_t)
  agrees with central differences for every parameter, the warm-start inputs and the
  initial state(s), for RNN, GRU and LSTM stacks of 1-2 layers (normwise 1e-6);
- the teacher-forced backward (the layer's scan) agrees likewise.
Known answers:
- identity maps (relu RNN with W_x = I, W_h = 0, head W = I, zero biases) reproduce the
  warm-start inputs and then repeat the last one;
- free running with k >= T is teacher forcing, outputs and gradients;
- free running gives the outputs of teacher forcing on its own fed-back outputs, but
  not its gradients: the feedback path adds a non-zero part, and inputs after the warm
  start get no gradient.
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scratchrnn.blocks.layers import LAYERS
from scratchrnn.blocks.regression import SequenceRegressor
from scratchrnn.book.gradcheck import check_function, format_table, rel_error
from scratchrnn.core.errors import ConfigError, ShapeError

TOL = 1e-6
KINDS = ("rnn", "gru", "lstm")


def _model(backend, kind, I, H, L, seed, output_size=None):
    layer = LAYERS[kind](I, H, num_layers=L, backend=backend, dtype="float64", seed=seed)
    return SequenceRegressor(layer, output_size=output_size, seed=seed + 1)


def _states(backend, kind, L, B, H, rng):
    n = 2 if kind == "lstm" else 1
    arrays = [backend.asarray(rng.standard_normal((L, B, H))) for _ in range(n)]
    return arrays, (tuple(arrays) if n == 2 else arrays[0])


def _check(backend, model, kind, xs, state_arrays, state, warm_start, rng):
    """Random linear functional of ys and the final state vs finite differences."""
    T, B, _ = xs.shape
    w_y = backend.asarray(rng.standard_normal((T, B, model.output_size)))
    w_s = [backend.asarray(rng.standard_normal(a.shape)) for a in state_arrays]
    as_state = (lambda s: tuple(s)) if kind == "lstm" else (lambda s: s[0])

    def loss(scale=False):
        ys, stateT = model.forward(xs, state, warm_start)
        mag = abs if scale else (lambda a: a)
        total = mag(ys * w_y).sum()
        for s, w in zip(stateT if kind == "lstm" else (stateT,), w_s):
            total = total + mag(s * w).sum()
        return float(total)

    model.zero_grad()
    model.forward(xs, state, warm_start)
    dxs, dstate0 = model.backward(w_y, as_state(w_s))
    grads = {k: g.copy() for k, g in model.grads.items()}
    wrt = dict(model.params)
    wrt["x"], grads["x"] = xs, dxs
    for name, s, ds in zip(("h0", "c0"), state_arrays, dstate0 if kind == "lstm" else (dstate0,)):
        wrt[name], grads[name] = s, ds
    rows = check_function(loss, wrt, grads, tol=TOL, loss_scale=loss(scale=True))
    assert all(r.passed for r in rows), "\n" + format_table(rows)
    return dxs


@pytest.mark.parametrize("kind", KINDS)
@given(T=st.integers(1, 6), B=st.integers(1, 3), I=st.integers(1, 3), H=st.integers(1, 4),
       L=st.integers(1, 2), k=st.integers(1, 6), seed=st.integers(0, 2**31 - 1))
def test_free_running_gradients_match_finite_differences(backend, kind, T, B, I, H, L, k, seed):
    rng = np.random.default_rng(seed)
    model = _model(backend, kind, I, H, L, seed)
    xs = backend.asarray(rng.standard_normal((T, B, I)))
    arrays, state = _states(backend, kind, L, B, H, rng)
    dxs = _check(backend, model, kind, xs, arrays, state, k, rng)
    assert float(abs(dxs[k:]).max(initial=0.0)) == 0.0        # inputs after the warm start unread


@pytest.mark.parametrize("kind", KINDS)
@given(T=st.integers(1, 6), B=st.integers(1, 3), I=st.integers(1, 3), O=st.integers(1, 3),
       H=st.integers(1, 4), L=st.integers(1, 2), seed=st.integers(0, 2**31 - 1))
def test_teacher_forcing_gradients_match_finite_differences(backend, kind, T, B, I, O, H, L, seed):
    rng = np.random.default_rng(seed)
    model = _model(backend, kind, I, H, L, seed, output_size=O)
    xs = backend.asarray(rng.standard_normal((T, B, I)))
    arrays, state = _states(backend, kind, L, B, H, rng)
    _check(backend, model, kind, xs, arrays, state, None, rng)


def test_mse_loss_gradient_matches_finite_differences(backend):
    rng = np.random.default_rng(3)
    model = _model(backend, "gru", 2, 3, 2, seed=3)
    xs = backend.asarray(rng.standard_normal((5, 2, 2)))
    targets = backend.asarray(rng.standard_normal((5, 2, 2)))
    model.zero_grad()
    model.loss(xs, targets, warm_start=2)
    model.backward()
    grads = {k: g.copy() for k, g in model.grads.items()}
    rows = check_function(lambda: model.loss(xs, targets, warm_start=2)[0], model.params, grads)
    assert all(r.passed for r in rows), "\n" + format_table(rows)


@pytest.mark.parametrize("L", [1, 2])
def test_identity_maps_reproduce_the_warm_start(backend, L):
    """y_t = relu(x_t) = x_t for positive inputs; after k steps the last given value repeats."""
    I, T, B, k = 3, 8, 2, 3
    layer = LAYERS["rnn"](I, I, num_layers=L, nonlinearity="relu", backend=backend,
                          dtype="float64", seed=0)
    for n, p in layer.params.items():
        p[...] = backend.xp.eye(I) if n.endswith("W_x") else 0.0
    model = SequenceRegressor(layer, seed=0)
    model.params["head.W"][...] = backend.xp.eye(I)
    model.params["head.b"][...] = 0.0
    xs = np.abs(np.random.default_rng(0).standard_normal((T, B, I))) + 0.1
    ys, _ = model.forward(xs, warm_start=k)
    ys = backend.asnumpy(ys)
    np.testing.assert_array_equal(ys[:k], xs[:k])
    np.testing.assert_array_equal(ys[k:], np.broadcast_to(xs[k - 1], (T - k, B, I)))


@pytest.mark.parametrize("kind", KINDS)
def test_free_running_with_every_input_given_is_teacher_forcing(backend, kind):
    rng = np.random.default_rng(1)
    model = _model(backend, kind, 2, 3, 2, seed=1)
    xs = backend.asarray(rng.standard_normal((5, 2, 2)))
    targets = backend.asarray(rng.standard_normal((5, 2, 2)))
    results = []
    for warm_start in (None, 5, 9):
        model.zero_grad()
        loss, stateT = model.loss(xs, targets, warm_start=warm_start)
        dxs, _ = model.backward()
        results.append((loss, dxs, {k: g.copy() for k, g in model.grads.items()}))
    for loss, dxs, grads in results[1:]:
        assert abs(loss - results[0][0]) < 1e-12
        assert rel_error(dxs, results[0][1]) < 1e-12
        assert all(rel_error(grads[k], results[0][2][k]) < 1e-12 for k in grads)


@pytest.mark.parametrize("kind", KINDS)
def test_feedback_path_carries_gradient(backend, kind):
    """Free running = teacher forcing on its own outputs, in value; the gradients differ by
    the part that flows through y_{t-1} -> input_t, which teacher forcing cuts."""
    rng = np.random.default_rng(2)
    T, B, I, k = 6, 2, 2, 2
    model = _model(backend, kind, I, 4, 2, seed=2)
    xs = backend.asarray(rng.standard_normal((T, B, I)))
    w_y = backend.asarray(rng.standard_normal((T, B, I)))

    model.zero_grad()
    ys_free, _ = model.forward(xs, warm_start=k)
    dxs_free, _ = model.backward(w_y)
    free = {n: g.copy() for n, g in model.grads.items()}

    fed = backend.xp.concatenate([xs[:k], ys_free[k - 1:T - 1]])   # the inputs free running read
    model.zero_grad()
    ys_forced, _ = model.forward(fed)
    model.backward(w_y)
    assert rel_error(ys_forced, ys_free) < 1e-12
    for name, g in model.grads.items():
        assert rel_error(free[name], g) > 1e-6, name                # feedback adds to every weight
    assert float(abs(dxs_free[:k]).max()) > 0.0


def test_bad_settings_are_refused(backend):
    model = _model(backend, "rnn", 2, 3, 1, seed=0, output_size=1)
    xs = np.zeros((4, 1, 2))
    with pytest.raises(ConfigError, match="output_size"):
        model.forward(xs, warm_start=2)
    model = _model(backend, "rnn", 2, 3, 1, seed=0)
    with pytest.raises(ConfigError, match="warm_start"):
        model.forward(xs, warm_start=0)
    with pytest.raises(ShapeError):
        model.forward(np.zeros((4, 1, 3)))
    with pytest.raises(ShapeError):
        model.loss(xs, np.zeros((4, 1, 1)))
    dropped = SequenceRegressor(LAYERS["gru"](2, 3, num_layers=2, dropout=0.5, backend=backend))
    with pytest.raises(ConfigError, match="dropout"):
        dropped.forward(xs, warm_start=1)
    dropped.eval().forward(xs, warm_start=1)
