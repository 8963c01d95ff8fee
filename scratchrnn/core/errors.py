"""Errors a user can cause. The command line prints ``str(err)`` (one sentence)
and exits with status 2; no traceback is shown for these.

Every class is a ``ValueError`` too, so code written for NumPy or PyTorch
(``except ValueError``) catches them.
"""


class ScratchRNNError(ValueError):
    """Base class: bad input, impossible settings, unusable files or devices."""


class DataError(ScratchRNNError):
    """A text or corpus that cannot be used (missing, empty, not UTF-8, too short...)."""


class ConfigError(ScratchRNNError):
    """Impossible hyper-parameters or an unknown name (cell, corpus, optimizer...)."""


class CheckpointError(ScratchRNNError):
    """A checkpoint that is missing, corrupt, truncated, or for another architecture."""


class TrainingDiverged(ScratchRNNError):
    """The loss became NaN, infinite or far above its start; the last good checkpoint is kept."""


class ArgumentTypeError(ConfigError, TypeError):
    """An argument of the wrong kind (a string where a number goes, complex data where
    real numbers go); a ``TypeError`` as well as a ``ConfigError``."""


class ShapeError(ScratchRNNError):
    """An array whose shape does not fit the layer (wrong rank, size or batch)."""


class BackendUnavailable(ScratchRNNError):
    """Asked for a backend this machine cannot provide (one sentence says why)."""
