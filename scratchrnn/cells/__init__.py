"""One recurrence per file. Each module exposes the same plain functions:

    init_params(input_size, hidden_size, rng, backend, dtype) -> params
    step_forward(params, x, state)        -> (h, state', StepCache)
    step_backward(params, dh, dstate, StepCache) -> (dx, dstate_prev, grads)
    forward(params, xs, state0)           -> (ys, stateT, Cache)      # a scan over time
    backward(params, dys, dstateT, Cache) -> (dxs, dstate0, grads)    # a reverse scan

``state`` is ``h`` (B, H) for RNN and GRU and the pair ``(h, c)`` for LSTM.
"""
from . import gru, lstm, rnn

CELLS = {"rnn": rnn, "gru": gru, "lstm": lstm}
