"""The book: one recurrence per file, leaf modules that import no engine.

Each module exposes the same plain functions:

    init_params(input_size, hidden_size, rng, backend, dtype) -> params
    step_forward(params, x, state)               -> (h, state', StepCache)
    step_backward(params, dh, dstate, StepCache) -> (dx, dstate_prev, grads)
    forward(params, xs, state0)                  -> (ys, stateT, Cache)     # level 1: a scan
    backward(params, dys, dstateT, Cache)        -> (dxs, dstate0, grads)   # of the step
    forward_hoisted / backward_hoisted           (same in and out)          # level 2: GEMMs
                                                                            # out of the loop
``state`` is ``h`` (B, H) for RNN and GRU and the pair ``(h, c)`` for LSTM; ``common.py``
holds the fused weight layout and the level-2 GEMMs. The engines (``scratchrnn.engines``)
compute the same things faster and are tested against these functions.

``CELLS`` is the package's one table of cells by name; ``by_name`` is its one check.
"""
from scratchrnn.book.cells import gru, lstm, rnn
from scratchrnn.core.errors import ConfigError

CELLS = {cell.NAME: cell for cell in (rnn, gru, lstm)}


def by_name(name):
    """The cell module called ``name`` ("rnn", "gru" or "lstm"); ConfigError for any other."""
    try:
        return CELLS[name]
    except (KeyError, TypeError):
        raise ConfigError(f"Unknown cell {name!r}; choose one of {', '.join(CELLS)}.") from None
