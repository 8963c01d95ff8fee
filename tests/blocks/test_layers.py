"""The layer classes: invariants that any correct stack of cells must keep."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scratchrnn.blocks.layers import GRU, LAYERS, LSTM, RNN
from scratchrnn.book.gradcheck import check_layer, format_table, rel_error
from scratchrnn.core.errors import ConfigError, ShapeError

VARIANTS = {"rnn-tanh": ("rnn", {"nonlinearity": "tanh"}),
            "rnn-relu": ("rnn", {"nonlinearity": "relu"}),
            "gru": ("gru", {}), "lstm": ("lstm", {})}
ENGINES = ("textbook", "reference", "auto")


def make(variant, backend, I=3, H=4, L=2, **kwargs):
    kind, options = VARIANTS[variant]
    kwargs.setdefault("dtype", "float64")
    return LAYERS[kind](I, H, num_layers=L, backend=backend, **options, **kwargs)


def _state(layer, rng, B):
    be = layer.backend
    draw = lambda: be.asarray(rng.standard_normal((layer.num_layers, B, layer.hidden_size)))  # noqa
    return (draw(), draw()) if layer.cell.HAS_CELL_STATE else draw()


def _parts(state):
    return state if isinstance(state, tuple) else (state,)


def _host(layer, a):
    return layer.backend.asnumpy(a)


def _grads(layer):
    return {k: _host(layer, v).copy() for k, v in layer.grads.items()}


def _close(a, b, tol=1e-12):
    return rel_error(a, b) < tol


# ----------------------------------------------------- chunks: T = T1 + (T - T1)
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("variant", list(VARIANTS))
@given(T=st.integers(2, 8), B=st.integers(1, 3), L=st.integers(1, 3), seed=st.integers(0, 2**32 - 1),
       data=st.data())
def test_running_in_two_chunks_equals_running_at_once(backend, use_engine, engine, variant, T, B, L,
                                                      seed, data):
    """Forward: feed the first chunk's final state to the second. Backward: the second
    chunk's dL/d(initial state) is the first chunk's dL/d(final state); grads add up."""
    T1 = data.draw(st.integers(1, T - 1), label="T1")
    with use_engine(engine):
        layer = make(variant, backend, L=L, seed=seed)
        rng = np.random.default_rng(seed)
        be = layer.backend
        x = be.asarray(rng.standard_normal((T, B, 3)))
        dy = be.asarray(rng.standard_normal((T, B, 4)))
        s0, dsT = _state(layer, rng, B), _state(layer, rng, B)

        y, sT = layer.forward(x, s0)
        dx, ds0 = layer.backward(dy, dsT)
        whole = _grads(layer)

        layer.zero_grad()
        y1, s1 = layer.forward(x[:T1], s0)
        y2, s2 = layer.forward(x[T1:], s1)
        dx2, ds1 = layer.backward(dy[T1:], dsT)        # the second chunk's cache is the live one
        layer.forward(x[:T1], s0)                       # rebuild the first chunk's cache
        dx1, ds0_chunked = layer.backward(dy[:T1], ds1)
        chunked = _grads(layer)

    assert _close(np.concatenate([_host(layer, y1), _host(layer, y2)]), y)
    for a, b in zip(_parts(s2), _parts(sT)):
        assert _close(a, b)
    assert _close(np.concatenate([_host(layer, dx1), _host(layer, dx2)]), dx)
    for a, b in zip(_parts(ds0_chunked), _parts(ds0)):
        assert _close(a, b)
    for k in whole:
        assert _close(chunked[k], whole[k]), k


# -------------------------------------------------------------------- batch_first
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_batch_first_is_time_major_transposed(backend, variant):
    tm = make(variant, backend, L=2, seed=5)
    bf = make(variant, backend, L=2, seed=5, batch_first=True)
    rng = np.random.default_rng(0)
    T, B = 5, 3
    x = rng.standard_normal((T, B, 3))
    dy = rng.standard_normal((T, B, 4))
    s0, dsT = _state(tm, rng, B), _state(tm, rng, B)

    y, sT = tm.forward(x, s0)
    dx, ds0 = tm.backward(dy, dsT)
    y_bf, sT_bf = bf.forward(x.transpose(1, 0, 2), s0)
    dx_bf, ds0_bf = bf.backward(dy.transpose(1, 0, 2), dsT)

    assert y_bf.shape == (B, T, 4) and dx_bf.shape == (B, T, 3)
    np.testing.assert_array_equal(_host(bf, y_bf), _host(tm, y).transpose(1, 0, 2))
    np.testing.assert_array_equal(_host(bf, dx_bf), _host(tm, dx).transpose(1, 0, 2))
    for a, b in zip(_parts(sT_bf) + _parts(ds0_bf), _parts(sT) + _parts(ds0)):
        np.testing.assert_array_equal(_host(bf, a), _host(tm, b))   # states stay (L, B, H)
    for k in tm.grads:
        np.testing.assert_array_equal(_host(bf, bf.grads[k]), _host(tm, tm.grads[k]))


# ------------------------------------------------------------------------ dropout
@pytest.mark.parametrize("variant", ["rnn-tanh", "lstm"])
def test_dropout_only_in_training_mode(backend, variant):
    plain = make(variant, backend, L=3, seed=2)
    dropped = make(variant, backend, L=3, seed=2, dropout=0.5)
    x = np.random.default_rng(1).standard_normal((4, 2, 3))
    y_ref = _host(plain, plain.forward(x)[0])
    dropped.eval()
    assert not dropped.training
    np.testing.assert_array_equal(_host(dropped, dropped.forward(x)[0]), y_ref)
    dropped.train()
    y1 = _host(dropped, dropped.forward(x)[0])
    y2 = _host(dropped, dropped.forward(x)[0])
    assert not np.allclose(y1, y_ref) and not np.allclose(y1, y2)   # a fresh mask each pass
    one_layer = make(variant, backend, L=1, seed=2, dropout=0.5)    # nothing to drop between
    np.testing.assert_array_equal(_host(one_layer, one_layer.forward(x)[0]),
                                  _host(plain, make(variant, backend, L=1, seed=2).forward(x)[0]))


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_dropout_mask_is_reused_by_backward(backend, use_engine, engine, variant):
    """Gradient check in training mode: check_layer re-seeds the dropout generator before
    every forward pass, so the finite differences see the very mask that the analytic
    forward drew; backward must have used that mask too, or the check fails."""
    with use_engine(engine):
        layer = make(variant, backend, I=2, H=3, L=3, seed=4, dropout=0.4)
        rows = check_layer(layer, T=3, B=2, seed=4)
    assert all(r.passed for r in rows), "\n" + format_table(rows)


def test_dropout_mask_statistics(backend):
    layer = make("rnn-tanh", backend, I=2, H=200, L=2, seed=0, dropout=0.25)
    layer.forward(np.ones((10, 20, 2)))
    mask = _host(layer, layer.dropout_masks[0])
    assert layer.dropout_masks[1] is None                     # never after the top layer
    kept = mask > 0
    assert abs(kept.mean() - 0.75) < 0.01
    np.testing.assert_allclose(mask[kept], 1 / 0.75)   # inverted dropout keeps the mean


# -------------------------------------------------------------------------- grads
def test_grads_accumulate_and_zero_grad_clears(backend):
    layer = make("gru", backend, seed=3)
    rng = np.random.default_rng(3)
    x, dy = rng.standard_normal((4, 2, 3)), rng.standard_normal((4, 2, 4))
    assert all((_host(layer, g) == 0).all() for g in layer.grads.values())
    layer.forward(x)
    layer.backward(dy)
    once = _grads(layer)
    assert any(np.abs(g).max() > 0 for g in once.values())
    layer.backward(dy)                                 # same cache, same gradient again
    for k, g in _grads(layer).items():
        np.testing.assert_allclose(g, 2 * once[k], rtol=1e-12, atol=1e-15)
    arrays = dict(layer.grads)
    layer.zero_grad()
    for k, g in layer.grads.items():
        assert g is arrays[k]                          # cleared in place (optimizers hold them)
        assert (_host(layer, g) == 0).all()


def test_backward_before_forward(backend):
    with pytest.raises(RuntimeError, match="forward"):
        make("lstm", backend).backward(np.zeros((2, 1, 4)))


def test_default_state_is_zeros(backend):
    for variant in VARIANTS:
        layer = make(variant, backend, seed=1)
        x = np.random.default_rng(0).standard_normal((3, 2, 3))
        y0, s0 = layer.forward(x)
        y1, s1 = layer.forward(x, layer.zero_state(2))
        np.testing.assert_array_equal(_host(layer, y0), _host(layer, y1))
        dx, ds = layer.backward(np.ones((3, 2, 4)))    # dstate None = no gradient at the end
        assert all(p.shape == (2, 2, 4) for p in _parts(ds))


# --------------------------------------------------------------------- bad inputs
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_shape_errors_are_clear(backend, variant):
    layer = make(variant, backend, I=3, H=4, L=2)
    with pytest.raises(ShapeError, match=r"input must have shape \(T, B, 3\), got \(5, 2, 4\)"):
        layer.forward(np.zeros((5, 2, 4)))
    with pytest.raises(ShapeError, match=r"input must have shape \(T, B, 3\), got \(5, 3\)"):
        layer.forward(np.zeros((5, 3)))
    with pytest.raises(ShapeError, match="got \\(0, 2, 3\\)"):
        layer.forward(np.zeros((0, 2, 3)))
    bad_state = np.zeros((1, 2, 4))
    if layer.cell.HAS_CELL_STATE:
        with pytest.raises(ShapeError, match=r"pair \(h, c\)"):
            layer.forward(np.zeros((5, 2, 3)), bad_state)
        bad_state = (bad_state, bad_state)
    with pytest.raises(ShapeError, match=r"initial state must have shape \(2, 2, 4\).*got \(1, 2, 4\)"):
        layer.forward(np.zeros((5, 2, 3)), bad_state)
    layer.forward(np.zeros((5, 2, 3)))
    with pytest.raises(ShapeError, match="dy"):
        layer.backward(np.zeros((5, 2, 3)))
    with pytest.raises(ShapeError, match=r"T=5, B=2"):
        layer.backward(np.zeros((4, 2, 4)))
    bf = make(variant, backend, I=3, H=4, batch_first=True)
    with pytest.raises(ShapeError, match=r"\(B, T, 3\)"):
        bf.forward(np.zeros((2, 5, 4)))
    assert issubclass(ShapeError, ValueError)


@pytest.mark.parametrize("kwargs", [
    dict(input_size=0), dict(hidden_size=0), dict(num_layers=0), dict(hidden_size=2.5),
    dict(input_size=True), dict(num_layers="2"), dict(dropout=1.0), dict(dropout=-0.1),
])
@pytest.mark.parametrize("cls", [RNN, GRU, LSTM])
def test_config_errors(cls, kwargs):
    args = dict(input_size=3, hidden_size=4, num_layers=1)
    args.update(kwargs)
    with pytest.raises(ConfigError):
        cls(**args)


def test_config_errors_of_options():
    with pytest.raises(ConfigError, match="nonlinearity"):
        RNN(2, 3, nonlinearity="sigmoid")
    with pytest.raises(ConfigError, match="unknown options: forget_bias"):
        GRU(2, 3, forget_bias=1.0)
    with pytest.raises(ConfigError, match="unknown options"):
        LSTM(2, 3, identity_init=True)
    with pytest.raises(ValueError, match="floating"):
        LSTM(2, 3, dtype="int32")


# ----------------------------------------------------------------- initialisation
def test_lstm_forget_bias(backend):
    H = 5
    layer = LSTM(3, H, num_layers=2, forget_bias=1.0, backend=backend, seed=0)
    for k in range(2):
        b_x, b_h = _host(layer, layer.params[f"l{k}.b_x"]), _host(layer, layer.params[f"l{k}.b_h"])
        np.testing.assert_array_equal(b_x[H:2 * H], 1.0)
        np.testing.assert_array_equal(b_h[H:2 * H], 0.0)
        for part in (b_x[:H], b_x[2 * H:], b_h[:H], b_h[2 * H:]):
            assert np.abs(part).max() > 0 and np.abs(part).max() <= 1 / np.sqrt(H)
    # the forget gate starts at sigma(1) ~ 0.73 when the weights see no input
    default = LSTM(3, H, seed=0, backend=backend)
    assert not np.allclose(_host(default, default.params["l0.b_x"])[H:2 * H], 1.0)


def test_rnn_identity_init(backend):
    layer = RNN(3, 4, num_layers=2, nonlinearity="relu", identity_init=True, backend=backend, seed=0)
    for k in range(2):
        np.testing.assert_array_equal(_host(layer, layer.params[f"l{k}.W_h"]), np.eye(4))
        np.testing.assert_array_equal(_host(layer, layer.params[f"l{k}.b_x"]), 0.0)
        np.testing.assert_array_equal(_host(layer, layer.params[f"l{k}.b_h"]), 0.0)
    assert np.abs(_host(layer, layer.params["l0.W_x"])).max() > 0
    # with zero input, a positive state passes through relu(h I) unchanged
    h0 = np.abs(np.random.default_rng(0).standard_normal((2, 1, 4)))
    y, hT = layer.forward(np.zeros((6, 1, 3)), h0)
    np.testing.assert_allclose(_host(layer, hT)[0], h0[0], rtol=1e-6)


def test_init_is_pytorch_uniform_and_seeded(backend):
    a = LSTM(3, 16, num_layers=2, seed=7, backend=backend)
    b = LSTM(3, 16, num_layers=2, seed=7, backend=backend)
    c = LSTM(3, 16, num_layers=2, seed=8, backend=backend)
    for k in a.params:
        w = _host(a, a.params[k])
        assert w.dtype == np.float32 and np.abs(w).max() <= 0.25
        np.testing.assert_array_equal(w, _host(b, b.params[k]))
        assert not np.array_equal(w, _host(c, c.params[k]))
    assert a.params["l0.W_x"].shape == (3, 64) and a.params["l1.W_x"].shape == (16, 64)
    assert a.params["l0.W_h"].shape == (16, 64) and a.params["l0.b_h"].shape == (64,)


@pytest.mark.parametrize("cls", [RNN, GRU, LSTM])
def test_numpy_integer_sizes_are_accepted_and_stored_as_int(cls):
    """Sizes often come out of NumPy arithmetic (np.int64): accepted, stored as plain int."""
    layer = cls(np.int64(3), np.int32(4), num_layers=np.int64(2), seed=0)
    assert (layer.input_size, layer.hidden_size, layer.num_layers) == (3, 4, 2)
    assert all(type(v) is int for v in (layer.input_size, layer.hidden_size, layer.num_layers))
    assert layer.params["l1.W_h"].shape == (4, 4 * {RNN: 1, GRU: 3, LSTM: 4}[cls])


@pytest.mark.parametrize("kwargs,fragment", [
    (dict(input_size=3.0, hidden_size=4), "input_size"),
    (dict(input_size=3, hidden_size=True), "hidden_size"),
    (dict(input_size=3, hidden_size=4, num_layers=0), "num_layers"),
    (dict(input_size=3, hidden_size=4, dropout=float("nan")), "dropout"),
    (dict(input_size=3, hidden_size=4, dropout=1.0), "dropout"),
])
def test_bad_sizes_name_the_parameter_and_are_value_errors(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment) as info:
        LSTM(**kwargs)
    assert isinstance(info.value, ConfigError)
