"""A trained language model on disk: which arrays and metadata a run checkpoint holds.

Array keys: ``param/<name>`` (the model), ``optim/<slot>/<name>`` (optimizer state),
``state/h`` and ``state/c`` (the hidden state carried into the next window).
Metadata: ``kind``, ``model`` (CharLM config), ``train`` (TrainConfig as a dict),
``vocab``, ``step``, ``stream``, ``optim``, ``history``, ``best``, ``elapsed_s``.
"""
from __future__ import annotations

from .checkpoint import load_checkpoint
from .errors import CheckpointError, ConfigError
from .model import CharLM
from .vocab import Vocab

KIND = "scratchrnn-lm"


def split_arrays(arrays, prefix):
    """The arrays whose key starts with ``prefix + "/"``, with the prefix removed."""
    n = len(prefix) + 1
    return {k[n:]: v for k, v in arrays.items() if k.startswith(prefix + "/")}


def read_run(path):
    """(arrays, meta) of a scratchrnn language-model checkpoint; CheckpointError otherwise."""
    arrays, meta = load_checkpoint(path)
    if meta.get("kind") != KIND or not isinstance(meta.get("model"), dict) or "vocab" not in meta:
        raise CheckpointError(f"The file {str(path)!r} is not a scratchrnn language-model checkpoint.")
    return arrays, meta


def load_model(path, backend=None):
    """Rebuild the model saved at ``path`` on ``backend``. Returns (model, vocab, meta)."""
    arrays, meta = read_run(path)
    try:
        vocab = Vocab.from_json(meta["vocab"])
        model = CharLM.from_config(meta["model"], backend=backend)
        model.load_arrays(split_arrays(arrays, "param"))
    except (KeyError, TypeError, ValueError, ConfigError) as exc:
        raise CheckpointError(f"The checkpoint {str(path)!r} is damaged or inconsistent ({exc}).") from None
    return model, vocab, meta
