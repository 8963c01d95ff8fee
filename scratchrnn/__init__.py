"""scratchrnn: RNN, GRU and LSTM from scratch, with hand-written backpropagation
through time, on NumPy (CPU) or CuPy (CUDA) through one ``xp`` seam.

The folders are the table of contents (``docs/architecture.md`` draws them)::

    book/      the textbook: ops, scan, the cells, batching, optimizers, the training step,
               gradient checks, and the whole model on one page (start at book/onepage.py)
    blocks/    the parts built from the book: the RNN/GRU/LSTM layer classes, embedding,
               linear and heads, the language model, attention, regression, stepping
    engines/   the cells' math arranged for speed, and the one dispatcher that picks them
    lm/        the language-model tool: corpora, vocabulary, the training run, checkpoints,
               run folders, sampling
    analysis/  the report that opens a trained model up;  grid/  many models at once
    cli/       the ``scratchrnn`` command, one module per subcommand
    core/      what every layer shares: the backend (``xp``), errors, validation

The layer classes are loaded on first use, so that importing a cell module
(``scratchrnn.book.cells.lstm``) loads the book alone, without the engines. The flat module
names of earlier versions (``scratchrnn.layers``, ``scratchrnn.cells``, ...) still import,
with a one-line ``DeprecationWarning`` naming the new place."""
from scratchrnn._moved import install as _install_moved_names
from scratchrnn.core import threads as _threads  # noqa: F401  before NumPy: the thread policy's
from scratchrnn.core.backend import get_backend  # measure of the machine's load starts here

__version__ = "0.1.0"
__all__ = ["RNN", "GRU", "LSTM", "get_backend", "__version__"]

_install_moved_names()


def __getattr__(name):
    if name in ("RNN", "GRU", "LSTM"):
        from scratchrnn.blocks import layers
        return getattr(layers, name)
    raise AttributeError(f"module 'scratchrnn' has no attribute {name!r}")


def __dir__():
    """What ``__all__`` lists: the public names, not the module's own machinery."""
    return sorted(__all__)
