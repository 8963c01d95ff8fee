"""The course, in order. Each module defines ``EXERCISE`` (see ``base.Exercise``)."""
from __future__ import annotations

from scratchrnn.learn.exercises import (
    adam,
    attention,
    bptt,
    clipping,
    gru_step,
    lstm_gates,
    rnn_step,
    softmax_ce,
)

COURSE = tuple(m.EXERCISE for m in (softmax_ce, rnn_step, bptt, lstm_gates, gru_step, clipping,
                                    adam, attention))
EXERCISES = {ex.name: ex for ex in COURSE}


def by_function(function_name):
    """The exercise whose function is called ``function_name``, or None."""
    return next((ex for ex in COURSE if ex.function == function_name), None)
