"""scratchrnn.testing: the project's property tests, public, for anyone's RNN code.

In the spirit of ``numpy.testing``: checks that compare YOUR function with the book
(``scratchrnn.book.cells``, ``ops``, ``optim``) and with float64 central differences, each returning
a ``Report`` (one row per output, parameter gate block and input: max relative error, pass)
and each with an ``assert_*`` form for pytest that raises ``AssertionError`` with the table.

    from scratchrnn.testing import assert_step_backward, converter
    assert_step_backward(my_lstm_backward, "lstm", layout="torch", to_user=converter("torch"))

Checks (signatures of the function you pass are in ``scratchrnn.testing.checks``):
    check_step_forward / check_step_backward           one step of an RNN, GRU or LSTM cell
    check_sequence_forward / check_sequence_backward   a stack of layers over T steps (BPTT)
    check_softmax_cross_entropy                        the loss and its gradient
    check_clip_grad_norm                               clipping by the global norm
    check_adam_update                                  the Adam update
    check_gradients                                    any backward (a whole model) against
                                                       differences of its own forward
Layouts: "scratchrnn" (W_x (I, G*H) ...) and "torch" (weight_ih_l0 (G*H, I) ...), gate order
i, f, g, o (LSTM) and r, z, n (GRU) in both. Arrays: NumPy and PyTorch CPU tensors are tested;
CuPy and other DLPack arrays convert through the same boundary (``arrays``).
Strategies for hypothesis: ``scratchrnn.testing.strategies`` (imported on first use, so
this module does not need hypothesis).
"""
from scratchrnn.testing.arrays import converter, to_numpy
from scratchrnn.testing.cases import SequenceCase, StepCase, sequence_case, step_case
from scratchrnn.testing.checks import (
    assert_adam_update,
    assert_clip_grad_norm,
    assert_gradients,
    assert_sequence_backward,
    assert_sequence_forward,
    assert_softmax_cross_entropy,
    assert_step_backward,
    assert_step_forward,
    check_adam_update,
    check_clip_grad_norm,
    check_gradients,
    check_sequence_backward,
    check_sequence_forward,
    check_softmax_cross_entropy,
    check_step_backward,
    check_step_forward,
)
from scratchrnn.testing.layouts import CELL_KINDS, GATES, LAYOUTS
from scratchrnn.testing.report import Report, Row

__all__ = ["CELL_KINDS", "GATES", "LAYOUTS", "Report", "Row", "SequenceCase", "StepCase",
           "assert_adam_update", "assert_clip_grad_norm", "assert_gradients",
           "assert_sequence_backward", "assert_sequence_forward", "assert_softmax_cross_entropy",
           "assert_step_backward", "assert_step_forward", "check_adam_update",
           "check_clip_grad_norm", "check_gradients",
           "check_sequence_backward", "check_sequence_forward", "check_softmax_cross_entropy",
           "check_step_backward", "check_step_forward", "converter", "sequence_case",
           "step_case", "strategies", "to_numpy"]


def __getattr__(name):
    if name == "strategies":                  # hypothesis only when the strategies are used
        import importlib
        return importlib.import_module(".strategies", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
