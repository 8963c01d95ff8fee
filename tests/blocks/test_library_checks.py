"""The library checks what the command checks: a bad argument to a layer class (or to
``from_torch``) raises the project's own error class -- a ``ConfigError`` (so a ``ValueError``),
an ``ArgumentTypeError`` (also a ``TypeError``) or a ``ShapeError`` -- whose message names the
argument, never a bare NumPy error and never a silently wrong layer."""
import numpy as np
import pytest

import scratchrnn
from scratchrnn.core.errors import (
    ArgumentTypeError,
    ConfigError,
    ScratchRNNError,
    ShapeError,
)

pytestmark = pytest.mark.bad_input("library")


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_a_forget_bias_that_is_not_finite_is_refused(value):
    with pytest.raises(ConfigError, match="forget_bias"):
        scratchrnn.LSTM(4, 8, forget_bias=value)


def test_a_forget_bias_that_is_a_string_is_a_type_error():
    with pytest.raises(ArgumentTypeError, match="forget_bias") as info:
        scratchrnn.LSTM(4, 8, forget_bias="1")
    assert isinstance(info.value, TypeError) and isinstance(info.value, ValueError)


def test_a_valid_forget_bias_is_still_set():
    layer = scratchrnn.LSTM(4, 8, forget_bias=1.5, dtype="float64")
    assert np.all(layer.params["l0.b_x"][8:16] == 1.5)


@pytest.mark.parametrize("dtype", ["floaty", "int32", "complex64", "bool", 3])
def test_a_dtype_that_is_not_float32_or_float64_is_refused(dtype):
    with pytest.raises(ConfigError, match="dtype"):
        scratchrnn.GRU(4, 8, dtype=dtype)


@pytest.mark.parametrize("seed", [-1, 1.5, "0", True])
def test_a_seed_that_numpy_cannot_take_is_refused(seed):
    with pytest.raises(ConfigError, match="seed"):
        scratchrnn.RNN(4, 8, seed=seed)


def test_valid_seeds_still_work():
    a, b = scratchrnn.RNN(4, 8, seed=0), scratchrnn.RNN(4, 8, seed=np.int64(0))
    assert np.array_equal(a.params["l0.W_x"], b.params["l0.W_x"])
    scratchrnn.RNN(4, 8, seed=None)


@pytest.mark.parametrize("cls", ["RNN", "GRU", "LSTM"])
def test_complex_input_is_refused_not_truncated(cls):
    layer = getattr(scratchrnn, cls)(3, 5, dtype="float64")
    x = np.ones((2, 1, 3)) + 1j
    with pytest.raises(ArgumentTypeError, match="input.*complex"):
        layer.forward(x)
    with pytest.raises(ArgumentTypeError, match="initial state.*complex"):
        state = np.zeros((1, 1, 5)) * 1j
        layer.forward(x.real, (state, state) if cls == "LSTM" else state)


def test_input_that_is_not_numbers_is_refused_naming_it():
    with pytest.raises(ArgumentTypeError, match="input"):
        scratchrnn.GRU(3, 5).forward([[["a", "b", "c"]]])


def test_from_torch_with_weights_of_another_size_names_the_parameter():
    torch = pytest.importorskip("torch")
    from scratchrnn.interop import from_torch

    module = torch.nn.LSTM(4, 8, num_layers=2)
    module.weight_hh_l1 = torch.nn.Parameter(torch.zeros(32, 7))
    with pytest.raises(ShapeError, match="weight_hh_l1.*\\(32, 7\\)"):
        from_torch(module)
    assert isinstance(ShapeError("x"), ScratchRNNError)


def test_charlm_ids_outside_the_vocabulary_or_not_integers_are_refused_naming_ids():
    from scratchrnn.blocks.model import CharLM

    model = CharLM(10, "lstm", 8, 1)
    with pytest.raises(ConfigError, match=r"ids must be token ids in \[0, 10\)"):
        model.forward(np.full((3, 2), 99))
    with pytest.raises(ConfigError, match="ids"):
        model.forward(np.full((3, 2), -1))
    with pytest.raises(ShapeError, match="ids must be token ids"):
        model.forward(np.ones((3, 2)) + 1j)
    logits, _ = model.forward(np.full((3, 2), 9))
    assert logits.shape == (3, 2, 10)


def test_charlm_checks_its_arguments_like_the_layers():
    from scratchrnn.blocks.model import CharLM

    for kwargs, name in ((dict(forget_bias=float("nan")), "forget_bias"), (dict(dtype="int32"), "dtype"),
                         (dict(seed=-1), "seed")):
        with pytest.raises(ConfigError, match=name):
            CharLM(10, "lstm", 8, 1, **kwargs)
