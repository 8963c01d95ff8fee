"""Errors a user can cause. The command line prints ``str(err)`` (one sentence)
and exits with status 2; no traceback is shown for these."""


class ScratchRNNError(Exception):
    """Base class: bad input, impossible settings, unusable files or devices."""


class DataError(ScratchRNNError):
    """A text or corpus that cannot be used (missing, empty, not UTF-8, too short...)."""


class ConfigError(ScratchRNNError):
    """Impossible hyper-parameters or an unknown name (cell, corpus, optimizer...)."""


class CheckpointError(ScratchRNNError):
    """A checkpoint that is missing, corrupt, truncated, or for another architecture."""


class TrainingDiverged(ScratchRNNError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


class ShapeError(ScratchRNNError, ValueError):
    """An array whose shape does not fit the layer (wrong rank, size or batch)."""
