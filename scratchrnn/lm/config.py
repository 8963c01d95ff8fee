"""The training run's settings: ``TrainConfig``, its validation, and its JSON form.

    cfg = TrainConfig(source="python-docs", cell="gru", max_steps=500).validate()

Every field has a command-line flag of the same name (``seq_len`` is ``--seq-length``);
``validate`` says in one sentence, naming the flag, what cannot work.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from scratchrnn.book import cells
from scratchrnn.core.errors import ConfigError
from scratchrnn.core.validation import finite_float, int_at_least, positive_float, positive_int

ARCHITECTURE = ("source", "max_chars", "level", "max_vocab", "cell", "hidden_size", "num_layers",
                "embedding_size", "nonlinearity", "forget_bias", "dtype", "split")


def _flag(name):
    """The command-line spelling of a TrainConfig field."""
    return "seq-length" if name == "seq_len" else name.replace("_", "-")


@dataclass
class TrainConfig:
    """Everything a run needs. Defaults: a 2-layer LSTM on the stdlib corpus, sized for 2 CPU cores."""
    source: str = "python-stdlib"   # a corpus name (corpora.CORPORA) or a UTF-8 file path
    max_chars: int | None = 2_000_000
    level: str = "char"             # "char" or "word"
    max_vocab: int | None = None    # word level: keep the most frequent tokens
    cell: str = "lstm"
    hidden_size: int = 128
    num_layers: int = 2
    embedding_size: int = 0         # 0: one-hot input
    dropout: float = 0.0
    nonlinearity: str = "tanh"      # RNN only
    forget_bias: float = 0.0        # LSTM only; 0 learns as PyTorch's init does (benchmarks/learning_curve.py)
    dtype: str = "float32"
    seq_len: int = 64
    batch_size: int = 32
    shuffle: bool = False           # shuffled windows (state reset every window)
    split: tuple = (0.9, 0.05, 0.05)
    optimizer: str = "adam"
    lr: float = 2e-3
    lr_decay: float = 1.0           # multiply lr by this every epoch after lr_decay_after
    lr_decay_after: int = 0
    grad_clip: float = 5.0          # clip by global norm; 0 turns it off
    clip_value: float = 0.0         # clip each element into [-v, v]; 0 turns it off
    max_steps: int | None = None
    max_epochs: float | None = None
    max_minutes: float | None = 3.0
    eval_every: int = 100
    eval_tokens: int = 100_000      # score at most this many val tokens per evaluation
    patience: int | None = None     # stop after this many evaluations without improvement
    seed: int = 0
    backend: str | None = None     # None: $SCRATCHRNN_BACKEND, else numpy
    out_dir: str = "runs/latest"
    progress: bool = True

    def validate(self):
        """ConfigError (one sentence) for settings that cannot work."""
        for name in ("hidden_size", "num_layers", "seq_len", "batch_size", "eval_every", "eval_tokens"):
            positive_int(_flag(name), getattr(self, name))
        for name in ("max_steps", "patience", "max_chars", "max_vocab"):
            if getattr(self, name) is not None:
                positive_int(_flag(name), getattr(self, name))
        int_at_least("embedding-size (0: one-hot)", self.embedding_size, 0)
        for name in ("max_epochs", "max_minutes"):
            if getattr(self, name) is not None:
                positive_float(_flag(name), getattr(self, name))
        positive_float("lr", self.lr)
        finite_float("dropout", self.dropout, 0.0, 1.0, high_open=True)
        finite_float("forget-bias", self.forget_bias)
        finite_float("lr-decay", self.lr_decay, 0.0, low_open=True)
        int_at_least("lr-decay-after", self.lr_decay_after, 0)
        int_at_least("seed", self.seed, 0)
        for name in ("grad_clip", "clip_value"):
            finite_float(f"{_flag(name)} (0: off)", getattr(self, name), 0.0)
        if not isinstance(self.split, (tuple, list)) or len(self.split) != 3:
            raise ConfigError(f"split must be three fractions, got {self.split!r}.")
        for part in self.split:
            finite_float("each --split fraction", part, 0.0, 1.0)
        cells.by_name(self.cell)
        if self.level not in ("char", "word"):
            raise ConfigError(f"level must be 'char' or 'word', got {self.level!r}.")
        if self.max_steps is None and self.max_epochs is None and self.max_minutes is None:
            raise ConfigError("give at least one of max-steps, max-epochs or max-minutes.")
        return self

    def to_json(self):
        d = dataclasses.asdict(self)
        d["split"] = list(self.split)
        return d

    @classmethod
    def from_json(cls, d):
        known = {f.name for f in dataclasses.fields(cls)}
        d = {k: v for k, v in d.items() if k in known}
        if "split" in d:
            d["split"] = tuple(d["split"])
        return cls(**d)
