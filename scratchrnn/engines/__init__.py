"""Engines: the cells' computations arranged for speed, below one dispatcher.

The cells (``scratchrnn/book/cells``) are the book: read them, and trust them. But the
layer classes (``scratchrnn.blocks.layers``) do not run them by default: ``engine="auto"``,
the default, runs an engine. To run the book, pass ``engine="textbook"`` to the layer (or
set ``SCRATCHRNN_ENGINE=textbook``). ``engine=`` picks what runs:

    "textbook"   the cells' level 1: a scan of ``step_forward`` / ``step_backward``
    "reference"  the cells' level 2: the same math with the GEMMs hoisted out of the loop
    "fast"       the fast engine for the backend and cell:
                   NumPy  numpy_fast.py (preallocated buffers, in-place ufuncs), with the
                          LSTM and GRU gate math of a step in ONE C call (cpu_compiled.py)
                          where a C compiler builds it (``SCRATCHRNN_COMPILED=0`` turns it off)
                   CuPy   cupy_fused.py: one fused elementwise kernel per step (LSTM, GRU);
                          RNN has none (its step is already one GEMM and one ufunc)
    "auto"       "fast" where it exists, else "reference" (the default; ``$SCRATCHRNN_ENGINE``
                 sets another default)

Every engine returns the cells' ``Cache`` named tuples and the same gradients, and is
tested equal to the cells in ``tests/engines/test_engines.py``. The gate math is written three
times: in the cells, in ``numpy_fast.py``, and in ``gate_math.py``, whose C statements
both the C helper and the CuPy kernels are generated from (docs/architecture.md: where
each copy lives and which test pins it); the weight gradients after the loop are the
cells' ``common.weight_gradients`` everywhere.
Engines import cells; cells never import engines.

Beside the cell engines, ``device_step.py`` is the engine of a whole training step: the book's
``train.train_step`` with nothing read back to the host mid-step. ``training_step`` below picks
it on a GPU and the book's step elsewhere, so this file is the one seam that chooses what runs.
"""
from __future__ import annotations

import functools
import os
from typing import Callable, NamedTuple

from scratchrnn.core.errors import ConfigError

ENGINE_NAMES = ("auto", "textbook", "reference", "fast")


class Engine(NamedTuple):
    """What a layer runs: ``name`` says which engine it is (e.g. "fast (numpy + compiled C)");
    forward / backward have the signatures of the cell's ``forward`` / ``backward``."""
    name: str
    forward: Callable
    backward: Callable


def check_name(name, what="engine"):
    """``name`` lower-cased if it is one of ENGINE_NAMES; ConfigError otherwise."""
    choice = str(name).strip().lower()
    if choice not in ENGINE_NAMES:
        raise ConfigError(f"{what} must be one of {', '.join(ENGINE_NAMES)}, got {name!r}.")
    return choice


def default_name():
    """``$SCRATCHRNN_ENGINE`` (checked), or "auto" when it is unset or empty."""
    value = os.environ.get("SCRATCHRNN_ENGINE", "").strip()
    return check_name(value, "SCRATCHRNN_ENGINE") if value else "auto"


def _fast(cell, backend):
    """The fast Engine of ``cell`` on ``backend``, or None when there is none."""
    if backend.name == "numpy":
        from scratchrnn.engines import numpy_fast
        return Engine(*numpy_fast.engine(cell.NAME))
    if backend.name == "cupy" and cell.NAME in ("gru", "lstm"):
        from scratchrnn.engines import cupy_fused
        return Engine(*cupy_fused.ENGINES[cell.NAME])
    return None


def resolve(name, cell, backend):
    """The Engine that runs ``cell`` (a module of ``scratchrnn.book.cells``) on ``backend``.

    name: one of ENGINE_NAMES, or None for ``default_name()``. ConfigError for an unknown
    name, or for "fast" where no fast engine exists (RNN on CuPy).
    """
    choice = default_name() if name is None else check_name(name)
    if choice == "textbook":
        return Engine("textbook", cell.forward, cell.backward)
    if choice == "fast" or choice == "auto":
        fast = _fast(cell, backend)
        if fast is not None:
            return fast
        if choice == "fast":
            raise ConfigError(f"there is no fast engine for {cell.NAME.upper()} on {backend.name}; "
                              f"use engine='reference' or 'auto'.")
    return Engine("reference", cell.forward_hoisted, cell.backward_hoisted)


def training_step(model, optimizer, backend):
    """The training step a run calls as ``step(batch, state, grad_clip, clip_value) ->
    (loss, state)``: on a GPU the device step (``device_step.DeviceStep``, nothing read back
    mid-step; the loss comes back as a 0-d device array), elsewhere the book's
    ``train.train_step`` itself."""
    if backend.is_gpu:
        from scratchrnn.engines.device_step import DeviceStep
        return DeviceStep(model, optimizer)
    from scratchrnn.book.train import train_step
    return functools.partial(train_step, model, optimizer)
