"""Functions an exercise may call, so that it is about one thing: here the book's RNN step
backward in the signature of exercise 2, for the BPTT exercise (exercise 3)."""
from __future__ import annotations

from scratchrnn.book.cells import rnn
from scratchrnn.core.backend import CPU

np = CPU.xp


def rnn_step_backward(dh, x, h_prev, h, W_x, W_h):
    """The book's ``scratchrnn/book/cells/rnn.py: step_backward`` for h = tanh(x W_x + h_prev W_h + b).

    dh: (B, H) the TOTAL gradient at this step's output h.  x: (B, I).  h_prev, h: (B, H).
    W_x: (I, H).  W_h: (H, H).  Returns dx (B, I), dh_prev (B, H), dW_x (I, H), dW_h (H, H),
    db (H,): the contributions of this one step.
    """
    H = W_h.shape[0]
    params = {"W_x": W_x, "W_h": W_h, "b_x": np.zeros(H), "b_h": np.zeros(H)}
    dx, dh_prev, g = rnn.step_backward(params, dh, np.zeros_like(dh), rnn.StepCache(x, h_prev, h))
    return dx, dh_prev, g["W_x"], g["W_h"], g["b_x"]
