"""scratchrnn: RNN, GRU and LSTM from scratch, with hand-written backpropagation
through time, on NumPy (CPU) or CuPy (CUDA) through one ``xp`` seam."""
from .backend import get_backend
from .layers import GRU, LSTM, RNN

__version__ = "0.1.0"
__all__ = ["RNN", "GRU", "LSTM", "get_backend", "__version__"]
