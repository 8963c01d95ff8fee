"""Parity with PyTorch: same weights -> same outputs, states and every gradient.

The reference is torch's own autograd through ``nn.RNN``/``nn.GRU``/``nn.LSTM``; our
layer is built from the torch module with ``from_torch`` and its gradients are read
back in torch's layout with ``to_torch_state_dict(grads=True)``. The loss is a random
linear functional of the outputs and the final states, so every output element
carries its own upstream gradient.
"""
import subprocess
import sys
import zlib

import numpy as np
import pytest

from host import to_host
from scratchrnn.blocks.layers import GRU, LSTM, RNN
from scratchrnn.book.gradcheck import rel_error
from scratchrnn.core.errors import ConfigError
from scratchrnn.interop import from_torch, to_torch_state_dict

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from torch_autograd import assert_matches_torch_autograd  # noqa: E402

VARIANTS = {"rnn-tanh": (nn.RNN, {"nonlinearity": "tanh"}),
            "rnn-relu": (nn.RNN, {"nonlinearity": "relu"}),
            "gru": (nn.GRU, {}), "lstm": (nn.LSTM, {})}
TORCH_DTYPE = {"float32": torch.float32, "float64": torch.float64}
TOL = {"float64": 1e-10, "float32": 1e-5}
ENGINES = ("textbook", "reference", "auto")


def _seed(*parts):
    return zlib.crc32(repr(parts).encode())


def _module(variant, I, H, L, batch_first=False, dtype="float64", **kwargs):
    cls, options = VARIANTS[variant]
    return cls(I, H, num_layers=L, batch_first=batch_first, **options, **kwargs).to(TORCH_DTYPE[dtype])


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("batch_first", [False, True], ids=["time_major", "batch_first"])
@pytest.mark.parametrize("L", [1, 2, 3])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_matches_torch_autograd(backend, use_engine, engine, variant, L, batch_first, dtype):
    seed = _seed(variant, L, batch_first, dtype)
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    T, B, I, H = (int(v) for v in rng.integers((1, 1, 1, 1), (7, 5, 6, 7)))
    module = _module(variant, I, H, L, batch_first, dtype)
    lstm = isinstance(module, nn.LSTM)
    with use_engine(engine):
        layer = from_torch(module, backend=backend)
    assert layer.dtype == np.dtype(dtype) and layer.batch_first == batch_first

    draw = lambda *shape: rng.standard_normal(shape).astype(dtype)   # noqa: E731
    x = draw(B, T, I) if batch_first else draw(T, B, I)
    dy = draw(B, T, H) if batch_first else draw(T, B, H)
    states0 = [draw(L, B, H) for _ in range(2 if lstm else 1)]
    dstatesT = [draw(L, B, H) for _ in range(2 if lstm else 1)]
    assert_matches_torch_autograd(layer, module, x, states0, dy, dstatesT, TOL[dtype], use_engine(engine))


# -------------------------------------------------------------------- round trips
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_from_torch_then_back_is_exact(variant, dtype):
    module = _module(variant, 3, 5, 2, dtype=dtype)
    layer = from_torch(module)
    sd = to_torch_state_dict(layer)
    assert list(sd) == list(module.state_dict())                   # names and order
    for name, value in module.state_dict().items():
        assert sd[name].dtype == np.dtype(dtype) and sd[name].flags.c_contiguous
        np.testing.assert_array_equal(sd[name], value.numpy())
    # the layout: weight_ih (G*H, I) is W_x (I, G*H) transposed
    np.testing.assert_array_equal(to_host(layer.params["l0.W_x"]), module.weight_ih_l0.detach().numpy().T)
    np.testing.assert_array_equal(to_host(layer.params["l1.b_h"]), module.bias_hh_l1.detach().numpy())


@pytest.mark.parametrize("cls", [RNN, GRU, LSTM])
def test_ours_into_torch_and_back(cls):
    ours = cls(4, 3, num_layers=3, dtype="float64", seed=9)
    module = {RNN: nn.RNN, GRU: nn.GRU, LSTM: nn.LSTM}[cls](4, 3, num_layers=3).double()
    module.load_state_dict({k: torch.from_numpy(v) for k, v in to_torch_state_dict(ours).items()})
    again = from_torch(module)
    for k in ours.params:
        np.testing.assert_array_equal(to_host(again.params[k]), to_host(ours.params[k]))
    x = np.random.default_rng(0).standard_normal((5, 2, 4))
    with torch.no_grad():
        ty, _ = module(torch.from_numpy(x))
    assert rel_error(ours.forward(x)[0], ty.numpy()) < 1e-12


def test_to_torch_state_dict_returns_copies():
    layer = GRU(2, 3, dtype="float64", seed=0)
    sd = to_torch_state_dict(layer)
    sd["bias_ih_l0"][:] = 99.0
    assert not (layer.params["l0.b_x"] == 99.0).any()
    layer.grads["l0.W_x"][...] = layer.backend.asarray(np.arange(18.0).reshape(2, 9))
    g = to_torch_state_dict(layer, grads=True)
    assert g["weight_ih_l0"].shape == (9, 2)
    np.testing.assert_array_equal(g["weight_ih_l0"], np.arange(18.0).reshape(2, 9).T)
    np.testing.assert_array_equal(g["weight_hh_l0"], 0.0)


def test_from_torch_copies_settings():
    m = nn.RNN(3, 4, num_layers=2, nonlinearity="relu", batch_first=True, dropout=0.3)
    layer = from_torch(m)
    assert isinstance(layer, RNN) and layer.nonlinearity == "relu"
    assert (layer.input_size, layer.hidden_size, layer.num_layers) == (3, 4, 2)
    assert layer.batch_first and layer.dropout == pytest.approx(0.3) and layer.training
    assert layer.dtype == np.float32
    assert from_torch(m.eval()).training is False
    assert from_torch(m, dtype="float64").dtype == np.float64
    assert isinstance(from_torch(nn.GRU(2, 2)), GRU) and isinstance(from_torch(nn.LSTM(2, 2)), LSTM)


@pytest.mark.parametrize("make,match", [
    (lambda: nn.LSTM(3, 4, bias=False), "bias=True"),
    (lambda: nn.LSTM(3, 4, proj_size=2), "proj_size"),
    (lambda: nn.Linear(3, 4), "nn.RNN, nn.GRU or nn.LSTM"),
    (lambda: nn.RNN(3, 4).half(), "float32 and float64"),
])
def test_unsupported_modules_raise_config_error(make, match):
    with pytest.raises(ConfigError, match=match):
        from_torch(make())


def test_package_imports_without_torch():
    """torch is optional: importing scratchrnn and scratchrnn.interop must not need it."""
    code = ("import sys; sys.modules['torch'] = None\n"
            "import scratchrnn, scratchrnn.interop, scratchrnn.book.gradcheck\n"
            "assert 'torch' not in [m for m in sys.modules if sys.modules[m] is not None]\n"
            "try:\n"
            "    scratchrnn.interop.from_torch(object())\n"
            "except ImportError:\n"
            "    print('needs torch')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "needs torch"
