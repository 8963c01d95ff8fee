"""Heads (``scratchrnn.blocks.heads``) and the composed ``scratchrnn.blocks.sequence_model.SequenceModel``.

Properties, float64, random shapes and weights:
- a many-to-one or many-to-many head followed by softmax cross-entropy or MSE, on top of
  an RNN/GRU/LSTM stack (with one-hot, a learned embedding, or real-valued inputs): every
  gradient agrees with central differences (normwise 1e-6);
- the softmax Jacobian product equals the p - onehot(y) shortcut.
Known answers:
- many-to-one: dL/dh_t = 0 exactly for every t < T at the head, and the states before T
  do not change its output; its output is the many-to-many output at the last step;
- uniform logits cost log V nats, with gradient (1/V - onehot(y)) / N;
- a stateful model run on two halves equals one run on the whole; a stateless one restarts.
"""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scratchrnn.blocks.heads import (
    Head,
    cross_entropy_backward_full_jacobian,
    mean_squared_error,
    softmax_cross_entropy,
)
from scratchrnn.blocks.layers import LAYERS
from scratchrnn.blocks.sequence_model import SequenceModel
from scratchrnn.book import ops
from scratchrnn.book.gradcheck import check_function, format_table, rel_error
from scratchrnn.core.errors import ConfigError, ShapeError

TOL = 1e-6


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@given(T=st.integers(1, 5), B=st.integers(1, 3), V=st.integers(2, 5), H=st.integers(1, 4),
       E=st.integers(0, 3), L=st.integers(1, 2), return_sequences=st.booleans(),
       seed=st.integers(0, 2**31 - 1))
def test_token_classifier_gradients_match_finite_differences(backend, cell, T, B, V, H, E, L,
                                                             return_sequences, seed):
    rng = np.random.default_rng(seed)
    model = SequenceModel.for_tokens(V, cell=cell, hidden_size=H, num_layers=L, embedding_size=E,
                                     return_sequences=return_sequences, backend=backend,
                                     dtype="float64", seed=seed)
    ids = backend.asarray(rng.integers(0, V, (T, B)))
    targets = backend.asarray(rng.integers(0, V, (T, B) if return_sequences else (B,)))
    model.zero_grad()
    model.loss(ids, targets)
    model.backward()
    grads = {k: g.copy() for k, g in model.grads.items()}
    assert ("embed.W" in grads) == (E > 0)
    rows = check_function(lambda: model.loss(ids, targets)[0], model.params, grads, tol=TOL)
    assert all(r.passed for r in rows), "\n" + format_table(rows)


@pytest.mark.parametrize("return_sequences", [False, True])
@given(T=st.integers(1, 5), B=st.integers(1, 3), I=st.integers(1, 3), O=st.integers(1, 3),
       H=st.integers(1, 4), seed=st.integers(0, 2**31 - 1))
def test_regression_head_gradients_match_finite_differences(backend, return_sequences, T, B, I,
                                                            O, H, seed):
    rng = np.random.default_rng(seed)
    rnn = LAYERS["lstm"](I, H, backend=backend, dtype="float64", seed=seed)
    head = Head(H, O, return_sequences=return_sequences, backend=backend, dtype="float64",
                seed=seed)
    model = SequenceModel(rnn, head, loss="mse")
    x = backend.asarray(rng.standard_normal((T, B, I)))
    target = backend.asarray(rng.standard_normal((T, B, O) if return_sequences else (B, O)))
    model.zero_grad()
    model.loss(x, target)
    dx, _ = model.backward()
    grads = {k: g.copy() for k, g in model.grads.items()}
    wrt = dict(model.params)
    wrt["x"], grads["x"] = x, dx
    rows = check_function(lambda: model.loss(x, target)[0], wrt, grads, tol=TOL)
    assert all(r.passed for r in rows), "\n" + format_table(rows)


def test_many_to_one_gradient_comes_from_the_last_step_only(backend):
    rng = np.random.default_rng(0)
    T, B, H, V = 6, 3, 4, 5
    last = Head(H, V, return_sequences=False, backend=backend, dtype="float64", seed=0)
    every = Head(H, V, return_sequences=True, backend=backend, dtype="float64", seed=0)
    hs = backend.asarray(rng.standard_normal((T, B, H)))
    logits = last.forward(hs)
    assert logits.shape == (B, V)
    assert rel_error(logits, every.forward(hs)[-1]) == 0.0         # the last step of many-to-many
    _, dlogits = softmax_cross_entropy(logits, backend.asarray(rng.integers(0, V, B)))
    dhs = last.backward(dlogits)
    assert float(abs(dhs[:-1]).max()) == 0.0                       # dL/dh_t = 0 for t < T
    assert float(abs(dhs[-1]).max()) > 0.0
    changed = hs.copy()
    changed[:-1] = backend.asarray(rng.standard_normal((T - 1, B, H)))
    assert rel_error(last.forward(changed), logits) == 0.0


def test_many_to_one_stack_learns_through_the_recurrence_only(backend):
    """Through a layer, earlier inputs still get gradient, but only via h_T."""
    rng = np.random.default_rng(1)
    model = SequenceModel.for_tokens(4, cell="gru", hidden_size=3, return_sequences=False,
                                     backend=backend, dtype="float64", seed=1)
    ids = backend.asarray(rng.integers(0, 4, (5, 2)))
    model.loss(ids, backend.asarray([1, 2]))
    reaching_the_stack, stack_backward = [], model.rnn.backward
    model.rnn.backward = lambda dhs, dstate: (reaching_the_stack.append(dhs)
                                              or stack_backward(dhs, dstate))
    dx, _ = model.backward()
    dhs = reaching_the_stack[0]                      # dL/dh_t, from the head
    assert float(abs(dhs[:-1]).max()) == 0.0
    assert float(abs(dx[0]).max()) > 0.0


def test_uniform_logits_cost_log_v(backend):
    N, V = 4, 7
    targets = backend.asarray(np.arange(N) % V)
    loss, dlogits = softmax_cross_entropy(backend.xp.zeros((N, V)), targets)
    assert loss == pytest.approx(math.log(V), abs=1e-15)
    expected = np.full((N, V), 1.0 / V)
    expected[np.arange(N), np.arange(N) % V] -= 1.0
    np.testing.assert_allclose(backend.asnumpy(dlogits), expected / N, atol=1e-16)


def test_losses_take_any_leading_shape(backend):
    rng = np.random.default_rng(2)
    logits = backend.asarray(rng.standard_normal((3, 2, 5)))
    targets = backend.asarray(rng.integers(0, 5, (3, 2)))
    loss, d = softmax_cross_entropy(logits, targets)
    flat_loss, p = ops.cross_entropy(logits.reshape(6, 5), targets.reshape(6))
    assert loss == pytest.approx(float(flat_loss), abs=1e-15) and d.shape == (3, 2, 5)
    pred, target = logits, backend.asarray(rng.standard_normal((3, 2, 5)))
    loss, dpred = mean_squared_error(pred, target)
    assert loss == pytest.approx(float(((pred - target) ** 2).mean()), abs=1e-15)
    rows = check_function(lambda: mean_squared_error(pred, target)[0], {"pred": pred},
                          {"pred": dpred})
    assert rows[0].passed
    with pytest.raises(ShapeError):
        softmax_cross_entropy(logits, targets[0])
    with pytest.raises(ShapeError):
        mean_squared_error(pred, target[0])


@given(N=st.integers(1, 6), V=st.integers(2, 6), seed=st.integers(0, 2**31 - 1))
def test_full_jacobian_equals_the_shortcut(backend, N, V, seed):
    rng = np.random.default_rng(seed)
    logits = backend.asarray(3.0 * rng.standard_normal((N, V)))
    targets = backend.asarray(rng.integers(0, V, N))
    _, p = ops.cross_entropy(logits, targets)
    long_way = cross_entropy_backward_full_jacobian(p, targets)
    assert rel_error(long_way, ops.cross_entropy_backward(p, targets)) < 1e-12
    rows = check_function(lambda: ops.cross_entropy(logits, targets)[0], {"z": logits},
                          {"z": long_way})
    assert rows[0].passed, format_table(rows)


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_stateful_carries_the_state_and_stateless_restarts(backend, cell):
    rng = np.random.default_rng(3)
    ids = backend.asarray(rng.integers(0, 6, (8, 2)))
    whole = SequenceModel.for_tokens(6, cell=cell, hidden_size=4, backend=backend,
                                     dtype="float64", seed=3)
    out_whole, _ = whole.forward(ids)
    stateful = SequenceModel.for_tokens(6, cell=cell, hidden_size=4, stateful=True,
                                        backend=backend, dtype="float64", seed=3)
    first, _ = stateful.forward(ids[:5])
    second, _ = stateful.forward(ids[5:])
    assert rel_error(backend.xp.concatenate([first, second]), out_whole) < 1e-14
    stateful.reset_state()
    assert rel_error(stateful.forward(ids[5:])[0], whole.forward(ids[5:])[0]) == 0.0
    stateless = SequenceModel.for_tokens(6, cell=cell, hidden_size=4, backend=backend,
                                         dtype="float64", seed=3)
    stateless.forward(ids[:5])
    assert rel_error(stateless.forward(ids[5:])[0], whole.forward(ids[5:])[0]) == 0.0
    assert rel_error(second, out_whole[5:]) < 1e-14 and rel_error(second, stateless.forward(
        ids[5:])[0]) > 1e-6


def test_irnn_is_available(backend):
    """Identity-initialised relu RNN (IRNN) for the lessons: W_h = I, zero biases."""
    model = SequenceModel.for_tokens(5, cell="rnn", hidden_size=3, nonlinearity="relu",
                                     identity_init=True, backend=backend, dtype="float64", seed=0)
    np.testing.assert_array_equal(backend.asnumpy(model.params["rnn.l0.W_h"]), np.eye(3))
    assert float(abs(model.params["rnn.l0.b_x"]).max()) == 0.0


def test_bad_settings_are_refused(backend):
    rnn = LAYERS["rnn"](2, 3, backend=backend)
    with pytest.raises(ConfigError, match="loss"):
        SequenceModel(rnn, Head(3, 2, backend=backend), loss="hinge")
    with pytest.raises(ConfigError, match="head"):
        SequenceModel(rnn, Head(4, 2, backend=backend))
    with pytest.raises(ConfigError, match="cell"):
        SequenceModel.for_tokens(5, cell="transformer")
    with pytest.raises(ConfigError, match="output_size"):
        Head(3, 0)
    head = Head(3, 2, return_sequences=False, backend=backend)
    head.forward(backend.xp.zeros((4, 1, 3)))
    with pytest.raises(ShapeError):
        head.backward(backend.xp.zeros((4, 1, 2)))


@pytest.mark.parametrize("return_sequences", [False, True])
def test_attention_stack_under_a_head_matches_finite_differences(backend, return_sequences):
    rng = np.random.default_rng(4)
    model = SequenceModel.for_tokens(5, cell="lstm", hidden_size=3, num_layers=2, embedding_size=2,
                                     attn_length=3, return_sequences=return_sequences,
                                     backend=backend, dtype="float64", seed=4)
    assert "rnn.attn.W_k" in model.params and "embed.W" in model.params
    ids = backend.asarray(rng.integers(0, 5, (4, 2)))
    targets = backend.asarray(rng.integers(0, 5, (4, 2) if return_sequences else (2,)))
    model.zero_grad()
    model.loss(ids, targets)
    model.backward()
    grads = {k: g.copy() for k, g in model.grads.items()}
    rows = check_function(lambda: model.loss(ids, targets)[0], model.params, grads, tol=TOL)
    assert all(r.passed for r in rows), "\n" + format_table(rows)
    with pytest.raises(ConfigError, match="attention"):
        SequenceModel.for_tokens(5, cell="gru", attn_length=3)
