"""The run's data: the text read, its vocabulary, the ids split by position.

    data = prepare_data(cfg)          # Splits(vocab, train, val, test, text fingerprint)
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from scratchrnn.book.batching import split_ids
from scratchrnn.lm.corpora import load_source
from scratchrnn.lm.vocab import Vocab


@dataclass
class Splits:
    """The text encoded and cut by position: train, val, test are (N,) int host arrays."""
    vocab: Vocab
    train: object
    val: object
    test: object
    text: dict = field(default_factory=dict)   # {"chars": N, "sha256": hex} of the text used


def text_fingerprint(text):
    """{"chars": len(text), "sha256": hex digest of its UTF-8 bytes}: what a resume checks."""
    digest = hashlib.sha256()
    for start in range(0, len(text), 1 << 20):      # in chunks: no second copy of a large text
        digest.update(text[start:start + (1 << 20)].encode("utf-8"))
    return {"chars": len(text), "sha256": digest.hexdigest()}


def prepare_data(cfg, vocab=None):
    """Read the text, build (or reuse) the vocabulary, encode and split it."""
    text = load_source(cfg.source, cfg.max_chars)
    if vocab is None:
        vocab = Vocab.build(text, level=cfg.level, max_size=cfg.max_vocab)
    ids = vocab.encode(text, allow_unknown=cfg.level == "word")
    train, val, test = split_ids(ids, cfg.split)
    return Splits(vocab, train, val, test, text_fingerprint(text))
