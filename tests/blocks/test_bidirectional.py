"""Bidirectional RNN/GRU/LSTM layers: shapes, gradients, the engines, PyTorch parity, interop.

A bidirectional layer runs every layer's cell twice, forwards and over reversed time with
its own weights, and concatenates the two outputs (docs/derivations.md, "Bidirectional
layers"). The gradient checks compare the hand-written backward with float64 central
differences (``book.gradcheck.check_layer``, its default tolerance); the parity tests
compare with torch's autograd through ``nn.RNN/GRU/LSTM(bidirectional=True)`` to 1e-10.
"""
import zlib

import numpy as np
import pytest

from scratchrnn.blocks.attention import AttentionLSTM
from scratchrnn.blocks.heads import Head
from scratchrnn.blocks.layers import GRU, LSTM, RNN
from scratchrnn.blocks.model import CharLM
from scratchrnn.blocks.sequence_model import SequenceModel
from scratchrnn.blocks.stepping import check_steppable
from scratchrnn.book.gradcheck import DEFAULT_TOL, check_layer, rel_error
from scratchrnn.core.errors import ConfigError, ShapeError
from scratchrnn.interop import from_torch, to_torch_state_dict

ENGINES = ("textbook", "reference", "auto")
VARIANTS = {"rnn-tanh": (RNN, {"nonlinearity": "tanh"}), "rnn-relu": (RNN, {"nonlinearity": "relu"}),
            "gru": (GRU, {}), "lstm": (LSTM, {})}


def _seed(*parts):
    return zlib.crc32(repr(parts).encode())


def _layer(variant, I, H, L, **kwargs):
    cls, options = VARIANTS[variant]
    return cls(I, H, num_layers=L, bidirectional=True, **options, **kwargs)


# ------------------------------------------------------------------------- shapes
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_shapes_and_names_are_pytorchs(variant):
    T, B, I, H, L = 5, 3, 4, 6, 3
    layer = _layer(variant, I, H, L, dtype="float64", seed=1)
    G = layer.cell.GATES
    assert layer.num_directions == 2 and layer.output_size == 2 * H
    for k in range(L):
        for suffix in ("", "_reverse"):
            assert layer.params[f"l{k}{suffix}.W_x"].shape == ((I if k == 0 else 2 * H), G * H)
            assert layer.params[f"l{k}{suffix}.W_h"].shape == (H, G * H)
    assert len(layer.params) == 4 * 2 * L
    x = np.random.default_rng(0).standard_normal((T, B, I))
    y, state = layer.forward(x)
    assert y.shape == (T, B, 2 * H)
    for s in (state if variant == "lstm" else (state,)):
        assert s.shape == (2 * L, B, H)
    dx, dstate0 = layer.backward(np.ones_like(y))
    assert dx.shape == x.shape
    assert len(layer.caches) == 2 * L


def test_batch_first_gives_b_t_2h():
    layer = GRU(3, 4, bidirectional=True, batch_first=True, dtype="float64", seed=0)
    y, h = layer.forward(np.zeros((2, 7, 3)))
    assert y.shape == (2, 7, 8) and h.shape == (2, 2, 4)


def test_wrong_state_shape_names_two_rows_per_layer():
    layer = LSTM(3, 4, num_layers=2, bidirectional=True, dtype="float64")
    h = np.zeros((2, 5, 4))
    with pytest.raises(ShapeError, match=r"\(4, 5, 4\) \(2\*num_layers, batch, hidden\)"):
        layer.forward(np.zeros((6, 5, 3)), (h, h))
    with pytest.raises(ShapeError, match="dy must have shape"):
        layer.forward(np.zeros((6, 5, 3)))
        layer.backward(np.zeros((6, 5, 4)))          # H wide, not 2H


# ---------------------------------------------- what the two directions compute
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_each_half_is_a_one_way_layer(variant):
    """The first H outputs are a forward layer with the l0 weights; the last H are a
    forward layer with the l0_reverse weights run on the time-reversed input, reversed."""
    T, B, I, H = 6, 2, 3, 5
    rng = np.random.default_rng(_seed(variant))
    bi = _layer(variant, I, H, 1, dtype="float64", seed=3)
    cls, options = VARIANTS[variant]
    fwd = cls(I, H, dtype="float64", **options)
    rev = cls(I, H, dtype="float64", **options)
    for n in ("W_x", "W_h", "b_x", "b_h"):
        fwd.params[f"l0.{n}"][...] = bi.params[f"l0.{n}"]
        rev.params[f"l0.{n}"][...] = bi.params[f"l0_reverse.{n}"]
    x = rng.standard_normal((T, B, I))
    y, _ = bi.forward(x)
    y_f, _ = fwd.forward(x)
    y_r, _ = rev.forward(x[::-1])
    np.testing.assert_allclose(y[:, :, :H], y_f, rtol=0, atol=1e-14)
    np.testing.assert_allclose(y[:, :, H:], y_r[::-1], rtol=0, atol=1e-14)
    # the reverse direction's output at t = 0 has read the whole sequence: changing the
    # last input changes it, while the forward direction's output at t = 0 stays put
    x2 = x.copy()
    x2[-1] += 1.0
    y2, _ = bi.forward(x2)
    np.testing.assert_array_equal(y2[0, :, :H], y[0, :, :H])
    assert np.abs(y2[0, :, H:] - y[0, :, H:]).max() > 1e-6


# ------------------------------------------------------------------ gradient checks
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("L", [1, 2])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_gradients_match_finite_differences(use_engine, engine, variant, L):
    with use_engine(engine):
        layer = _layer(variant, 3, 3, L, dtype="float64", seed=_seed(variant, L))
        rows = check_layer(layer, T=4, B=2, seed=_seed("data", variant, L))
    names = {r.name for r in rows}
    assert {"l0_reverse.W_x", "l0_reverse.W_h", "x", "h0"} <= names
    assert ("c0" in names) == (variant == "lstm")
    bad = [r for r in rows if not r.passed]
    assert not bad, f"above {DEFAULT_TOL:g}: {bad}"


@pytest.mark.parametrize("variant", ["gru", "lstm"])
def test_gradients_with_dropout_between_layers(variant):
    layer = _layer(variant, 3, 3, 2, dropout=0.4, dtype="float64", seed=7)
    rows = check_layer(layer, T=4, B=2, seed=8)
    assert all(r.passed for r in rows), rows


# -------------------------------------------------------- the engines agree
@pytest.mark.parametrize("engine", ["reference", "auto"])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_engines_equal_the_textbook(use_engine, engine, variant):
    T, B, I, H, L = 7, 3, 4, 5, 2
    rng = np.random.default_rng(_seed("engines", variant))
    x = rng.standard_normal((T, B, I))
    dy = rng.standard_normal((T, B, 2 * H))
    results = {}
    for name in ("textbook", engine):
        with use_engine(name):
            layer = _layer(variant, I, H, L, dtype="float64", seed=11)
        y, state = layer.forward(x)
        dx, dstate0 = layer.backward(dy)
        results[name] = (layer.engine, y, dx, {k: g.copy() for k, g in layer.grads.items()})
    assert results["textbook"][0] == "textbook"
    _, y0, dx0, g0 = results["textbook"]
    _, y1, dx1, g1 = results[engine]
    assert rel_error(y1, y0) < 1e-12 and rel_error(dx1, dx0) < 1e-12
    for k in g0:
        assert rel_error(g1[k], g0[k]) < 1e-12, k


# ------------------------------------------------------------ PyTorch parity
TOL = 1e-10


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("batch_first", [False, True], ids=["time_major", "batch_first"])
@pytest.mark.parametrize("L", [1, 2])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_matches_torch_bidirectional(use_engine, engine, variant, L, batch_first):
    torch = pytest.importorskip("torch")
    from torch_autograd import assert_matches_torch_autograd
    nn = torch.nn
    seed = _seed("torch", variant, L, batch_first)
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    T, B, I, H = 5, 3, 4, 6
    cls = {"rnn-tanh": nn.RNN, "rnn-relu": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}[variant]
    options = {"nonlinearity": variant[4:]} if variant.startswith("rnn") else {}
    module = cls(I, H, num_layers=L, batch_first=batch_first, bidirectional=True,
                 **options).double()
    lstm = variant == "lstm"
    with use_engine(engine):
        layer = from_torch(module)
    assert layer.bidirectional and layer.batch_first == batch_first

    draw = lambda *shape: rng.standard_normal(shape)       # noqa: E731
    x = draw(B, T, I) if batch_first else draw(T, B, I)
    dy = draw(B, T, 2 * H) if batch_first else draw(T, B, 2 * H)
    states0 = [draw(2 * L, B, H) for _ in range(2 if lstm else 1)]
    dstatesT = [draw(2 * L, B, H) for _ in range(2 if lstm else 1)]
    assert_matches_torch_autograd(layer, module, x, states0, dy, dstatesT, TOL, use_engine(engine))


@pytest.mark.parametrize("variant", ["rnn-tanh", "gru", "lstm"])
def test_interop_round_trip(variant):
    torch = pytest.importorskip("torch")
    nn = torch.nn
    cls = {"rnn-tanh": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}[variant]
    module = cls(3, 5, num_layers=2, bidirectional=True).double()
    layer = from_torch(module)
    sd = to_torch_state_dict(layer)
    assert list(sd) == list(module.state_dict())           # names (with _reverse) and order
    for name, value in module.state_dict().items():
        np.testing.assert_array_equal(sd[name], value.numpy())
    np.testing.assert_array_equal(layer.params["l1_reverse.W_x"],
                                  module.weight_ih_l1_reverse.detach().numpy().T)
    # ours -> torch -> ours
    ours = _layer(variant, 3, 5, 2, dtype="float64", seed=21)
    module.load_state_dict({k: torch.from_numpy(v) for k, v in to_torch_state_dict(ours).items()})
    again = from_torch(module)
    for k in ours.params:
        np.testing.assert_array_equal(again.params[k], ours.params[k])
    x = np.random.default_rng(0).standard_normal((4, 2, 3))
    with torch.no_grad():
        ty, _ = module(torch.from_numpy(x))
    assert rel_error(ours.forward(x)[0], ty.numpy()) < 1e-12


# ------------------------------------------------------------ refused, one sentence
def _one_sentence(message):
    return message.count(". ") == 0 and message.endswith(".")


def test_blocks_that_run_forward_in_time_refuse_it():
    with pytest.raises(ConfigError) as e:
        CharLM(10, "lstm", 8, 1, bidirectional=True)
    assert "cannot be bidirectional" in str(e.value) and _one_sentence(str(e.value))
    with pytest.raises(ConfigError) as e:
        AttentionLSTM(4, 8, 2, bidirectional=True)
    assert "cannot be bidirectional" in str(e.value) and _one_sentence(str(e.value))
    with pytest.raises(ConfigError) as e:
        check_steppable(GRU(3, 4, bidirectional=True).eval())
    assert "one step at a time" in str(e.value) and _one_sentence(str(e.value))
    rnn = LSTM(3, 4, bidirectional=True)
    with pytest.raises(ConfigError) as e:
        SequenceModel(rnn, Head(4, 5))
    assert "bidirectional" in str(e.value) and _one_sentence(str(e.value))
    with pytest.raises(ConfigError, match="bidirectional"):
        SequenceModel.for_tokens(5, cell="gru", hidden_size=4, bidirectional=True)
