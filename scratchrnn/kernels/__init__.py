"""Fast paths for the cells, beside the plain reference code in ``scratchrnn/cells``.

The cells' ``forward``/``backward`` are the readable reference ("plain"). This
package holds the same computations arranged for speed ("fast"):

    numpy_fast.py   NumPy: preallocated sequence buffers, in-place ufuncs with ``out=``,
                    sigmoid by one tanh pass, derivative factors computed per cache-sized
                    block of steps before the reverse loop uses them, no concatenation copies
    cpu_compiled.py optional: the LSTM and GRU step gate math as one C call per step, built
                    on first use with the system C compiler; NumPy fast path without it
                    (``SCRATCHRNN_COMPILED=0`` turns it off)
    cupy_fused.py   CuPy: one fused ``ElementwiseKernel`` per step for the gate math of
                    LSTM and GRU, forward and backward (imported only when CuPy runs)

Both return exactly the cells' ``Cache`` named tuples and the same gradients (tested
equal to the plain path in ``tests/test_fast_paths.py``). Which path runs:

    cell.forward(params, xs, state0, impl="plain")   # per call
    kernels.set_default("plain")                      # process-wide
    SCRATCHRNN_IMPL=plain                             # environment, read at import

The default is "fast".
"""
from __future__ import annotations

import os

IMPLS = ("plain", "fast")

_default = os.environ.get("SCRATCHRNN_IMPL", "fast").strip().lower() or "fast"
if _default not in IMPLS:
    _default = "fast"


def set_default(name):
    """Choose the path every cell uses when no ``impl=`` is given ("plain" or "fast")."""
    global _default
    name = str(name).strip().lower()
    if name not in IMPLS:
        raise ValueError(f"impl must be one of {', '.join(IMPLS)}, got {name!r}.")
    _default = name


def get_default():
    return _default


def fast_path(cell, xs, impl=None):
    """The module that runs ``cell`` ("rnn"|"gru"|"lstm") fast for arrays like ``xs``,
    or None when the plain path should run (asked for, or no fast path exists)."""
    impl = _default if impl is None else impl
    if impl == "plain":
        return None
    if impl != "fast":
        raise ValueError(f"impl must be one of {', '.join(IMPLS)}, got {impl!r}.")
    mod = type(xs).__module__
    if mod == "numpy":
        from . import numpy_fast
        return numpy_fast.CELLS[cell]
    if mod.startswith("cupy"):
        from . import cupy_fused
        return cupy_fused.CELLS.get(cell)
    return None
