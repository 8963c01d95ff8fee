"""scratchrnn: RNN, GRU and LSTM from scratch, with hand-written backpropagation
through time, on NumPy (CPU) or CuPy (CUDA) through one ``xp`` seam.

The layer classes are loaded on first use, so that importing a cell module
(``scratchrnn.cells.lstm``) loads the book alone, without the engines."""
from .backend import get_backend

__version__ = "0.1.0"
__all__ = ["RNN", "GRU", "LSTM", "get_backend", "__version__"]


def __getattr__(name):
    if name in ("RNN", "GRU", "LSTM"):
        from . import layers
        return getattr(layers, name)
    raise AttributeError(f"module 'scratchrnn' has no attribute {name!r}")
