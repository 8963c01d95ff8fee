"""Hypothesis strategies for recurrent-network code (needs ``pip install hypothesis``, or
``pip install scratchrnn[test]``).

    from hypothesis import given
    from scratchrnn.testing import strategies as rst

    @given(rst.step_cases("lstm", layout="torch"))
    def test_my_lstm_step(case):
        assert_step_backward(my_backward, case=case)

The arrays themselves come from NumPy's generator seeded by a drawn integer (fast, and
hypothesis still shrinks the sizes and the seed); the weights are scaled by a drawn factor
in [0.5, 2.5] so that saturated gates are reached too.
"""
from __future__ import annotations

try:
    from hypothesis import strategies as st
except ImportError:          # pragma: no cover - depends on the environment
    raise ImportError("scratchrnn.testing.strategies needs hypothesis: "
                      "pip install hypothesis (or pip install 'scratchrnn[test]').") from None

from scratchrnn.core.backend import CPU
from scratchrnn.testing.cases import sequence_case, step_case
from scratchrnn.testing.layouts import CELL_KINDS, LAYOUTS

numpy = CPU.xp

seeds = st.integers(0, 2**32 - 1)
scales = st.floats(0.5, 2.5)


def sizes(max_T=6, max_B=4, max_I=6, max_H=6):
    """(T, B, I, H), each at least 1."""
    return st.tuples(st.integers(1, max_T), st.integers(1, max_B), st.integers(1, max_I),
                     st.integers(1, max_H))


def layer_counts(max_layers=3):
    """A number of stacked layers, 1..max_layers."""
    return st.integers(1, max_layers)


def dtypes(floats=("float64", "float32")):
    """A NumPy float dtype (float64 first, which is what shrinking reaches)."""
    return st.sampled_from([numpy.dtype(d) for d in floats])


def cell_kinds():
    """"rnn", "gru" or "lstm"."""
    return st.sampled_from(CELL_KINDS)


def layouts():
    """"scratchrnn" (W_x (I, G*H) ...) or "torch" (weight_ih_l0 (G*H, I) ...)."""
    return st.sampled_from(LAYOUTS)


@st.composite
def cell_params(draw, cell="lstm", layout="scratchrnn", I=None, H=None, num_layers=1,
                dtype=numpy.float64):
    """A parameter dict for a cell (one layer: ``W_x`` ... / ``weight_ih_l0`` ...; more than
    one: ``l0.W_x`` ... / ``weight_ih_l1`` ...), gate order i, f, g, o (LSTM), r, z, n (GRU)."""
    I = I or draw(st.integers(1, 6))
    H = H or draw(st.integers(1, 6))
    case = sequence_case(cell, layout, 1, 1, I, H, num_layers, draw(seeds), draw(scales), dtype)
    if num_layers == 1 and layout == "scratchrnn":
        return {k.split(".", 1)[1]: v for k, v in case.params.items()}
    return case.params


@st.composite
def cell_states(draw, cell="lstm", B=None, H=None, num_layers=None, dtype=numpy.float64):
    """A state: h, or (h, c) for an LSTM; (B, H), or (L, B, H) when num_layers is given."""
    B = B or draw(st.integers(1, 4))
    H = H or draw(st.integers(1, 6))
    shape = (B, H) if num_layers is None else (num_layers, B, H)
    rng = numpy.random.default_rng(draw(seeds))
    draw_one = lambda: rng.standard_normal(shape).astype(dtype)   # noqa: E731
    return (draw_one(), draw_one()) if cell == "lstm" else draw_one()


@st.composite
def step_cases(draw, cell=None, layout=None, dtype=numpy.float64, max_B=4, max_I=6, max_H=6):
    """A ``StepCase`` (params, x, state, dstate) for ``check_step_forward/backward``;
    the cell kind and layout are drawn too when not given."""
    cell = cell or draw(cell_kinds())
    layout = layout or draw(layouts())
    _, B, I, H = draw(sizes(1, max_B, max_I, max_H))
    return step_case(cell, layout, B, I, H, draw(seeds), draw(scales), dtype)


@st.composite
def sequence_cases(draw, cell=None, layout=None, max_layers=2, dtype=numpy.float64, max_T=5,
                   max_B=3, max_I=4, max_H=4):
    """A ``SequenceCase`` for ``check_sequence_forward/backward``."""
    cell = cell or draw(cell_kinds())
    layout = layout or draw(layouts())
    T, B, I, H = draw(sizes(max_T, max_B, max_I, max_H))
    return sequence_case(cell, layout, T, B, I, H, draw(layer_counts(max_layers)), draw(seeds),
                         draw(scales), dtype)
