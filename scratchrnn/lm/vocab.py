"""Tokens and ids: the vocabulary of a text, encoding and decoding.

    vocab = Vocab.build(text, level="char")        # sorted characters: same ids on every run
    ids   = vocab.encode(text)                     # (N,) int64 on the host
    text  = vocab.decode(ids)

Shapes: ``N`` tokens, ``V`` vocabulary size. Everything here runs on the host
(``CPU.xp`` is NumPy).
"""
from __future__ import annotations

import re
from collections import Counter

from scratchrnn.core.backend import CPU, backend_of
from scratchrnn.core.errors import ConfigError, DataError
from scratchrnn.core.validation import positive_int

_np = CPU.xp  # host-side array code (NumPy)

_WORD_RE = re.compile(r"\w+|\s+|[^\w\s]")
PAD, UNK = "<pad>", "<unk>"


def tokenize(text: str) -> list[str]:
    """Word-level tokens that lose nothing: runs of word characters, runs of whitespace,
    and single punctuation marks, so ``"".join(tokenize(t)) == t`` for every string."""
    return _WORD_RE.findall(text)


ENCODE_CHUNK = 1 << 16     # characters encoded at a time (bounded temporaries)


class Vocab:
    """A fixed, deterministic mapping between tokens and ids 0..V-1.

    ``level="char"``: the tokens are the sorted unique characters of the text (by code
    point), exactly as char-rnn; there are no special tokens (``pad_id``/``unk_id`` are None).
    ``level="word"``: id 0 is ``<pad>``, id 1 is ``<unk>``, then the tokens of ``tokenize``
    sorted by (-count, token), the most frequent ``max_size`` of them when given (so
    ``len(vocab) <= max_size + 2``). Whitespace and punctuation are tokens too, and decoding
    concatenates tokens with nothing between them, so ``decode(encode(t)) == t`` whenever
    every token of ``t`` is in the vocabulary; unknown words become ``<unk>``.
    """

    LEVELS = ("char", "word")

    def __init__(self, tokens, level: str):
        """tokens: the token of each id, in id order. Prefer ``Vocab.build`` or ``from_json``."""
        if level not in self.LEVELS:
            raise ConfigError(f"Unknown vocabulary level {level!r}; choose char or word.")
        self.level = level
        self.tokens = tuple(tokens)
        self._index = {tok: i for i, tok in enumerate(self.tokens)}
        if level == "char":
            text = "".join(self.tokens)
            self._codepoints = _np.frombuffer(text.encode("utf-32-le", "surrogatepass"),
                                              dtype="<u4").copy()   # (V,) sorted

    # ---------------------------------------------------------------- building
    @classmethod
    def build(cls, text: str, level: str = "char", max_size: int | None = None) -> "Vocab":
        """The vocabulary of ``text``; ``max_size`` keeps the most frequent words (word level only)."""
        if not text:
            raise DataError("Cannot build a vocabulary from an empty text.")
        if level == "char":
            if max_size is not None:
                raise ConfigError("max_size applies only to word-level vocabularies.")
            return cls(sorted(set(text)), "char")
        if level == "word":
            counts = Counter(tokenize(text))
            ranked = sorted(counts, key=lambda tok: (-counts[tok], tok))
            if max_size is not None:
                ranked = ranked[:positive_int("max_size", max_size)]
            return cls([PAD, UNK] + [t for t in ranked if t not in (PAD, UNK)], "word")
        raise ConfigError(f"Unknown vocabulary level {level!r}; choose char or word.")

    # ------------------------------------------------------------------ basics
    def __len__(self) -> int:
        return len(self.tokens)

    def __eq__(self, other) -> bool:
        return isinstance(other, Vocab) and (self.level, self.tokens) == (other.level, other.tokens)

    def __repr__(self) -> str:
        return f"Vocab(level={self.level!r}, size={len(self)})"

    @property
    def pad_id(self) -> int | None:
        """Id of ``<pad>`` (word level), None at char level."""
        return self._index[PAD] if self.level == "word" else None

    @property
    def unk_id(self) -> int | None:
        """Id of ``<unk>`` (word level), None at char level."""
        return self._index[UNK] if self.level == "word" else None

    def tokenize(self, text: str) -> list[str]:
        """The tokens of ``text`` at this vocabulary's level (characters or ``tokenize``)."""
        return list(text) if self.level == "char" else tokenize(text)

    # -------------------------------------------------------- encode / decode
    def encode(self, text: str, allow_unknown: bool = False):
        """``text`` -> ids (N,) int64 on the host.

        Word level: unknown words map to ``<unk>``. Char level has no ``<unk>``: an unknown
        character raises DataError naming it, unless ``allow_unknown`` is True, in which
        case unknown characters are dropped.
        """
        if self.level == "word":
            unk = self.unk_id
            return _np.array([self._index.get(t, unk) for t in tokenize(text)], dtype=_np.int64)
        out, n = _np.empty(len(text), dtype=_np.int64), 0
        for start in range(0, len(text), ENCODE_CHUNK):    # in chunks: the temporaries stay
            part = self._encode_chars(text, start, allow_unknown)   # small, whatever the text
            out[n:n + len(part)] = part
            n += len(part)
        return out if n == len(out) else out[:n].copy()     # (dropped unknown characters)

    def _encode_chars(self, text, start, allow_unknown):
        """ids (int64) of ``text[start:start + ENCODE_CHUNK]`` (char level)."""
        chunk = text[start:start + ENCODE_CHUNK]
        cps = _np.frombuffer(chunk.encode("utf-32-le", "surrogatepass"), dtype="<u4")
        pos = _np.searchsorted(self._codepoints, cps)
        known = self._codepoints[_np.minimum(pos, len(self) - 1)] == cps
        if not known.all():
            if not allow_unknown:
                bad = chunk[int(_np.argmin(known))]
                raise DataError(f"The character {bad!r} is not in the model's vocabulary.")
            pos = pos[known]
        return pos.astype(_np.int64, copy=False)

    def decode(self, ids) -> str:
        """ids (N,) int (host or device array, or list) -> text; tokens joined with nothing between."""
        ids = _np.asarray(backend_of(ids).asnumpy(ids)).reshape(-1).astype(_np.int64)
        if ids.size and (ids.min() < 0 or ids.max() >= len(self)):
            bad = int(ids[(ids < 0) | (ids >= len(self))][0])
            raise DataError(f"The id {bad} is outside the vocabulary of {len(self)} tokens.")
        if self.level == "char":
            return self._codepoints[ids].tobytes().decode("utf-32-le", "surrogatepass")
        return "".join(self.tokens[i] for i in ids.tolist())

    # ------------------------------------------------------------- persistence
    def to_json(self) -> dict:
        """A JSON-serialisable record: ``{"level": ..., "tokens": [token of id 0, 1, ...]}``."""
        return {"level": self.level, "tokens": list(self.tokens)}

    @classmethod
    def from_json(cls, record: dict) -> "Vocab":
        """The vocabulary saved by ``to_json``; a malformed record raises DataError."""
        if not isinstance(record, dict) or record.get("level") not in cls.LEVELS:
            raise DataError("The vocabulary record has no valid 'level' (char or word).")
        tokens = record.get("tokens")
        if not isinstance(tokens, list) or not tokens or not all(isinstance(t, str) for t in tokens):
            raise DataError("The vocabulary record's 'tokens' must be a non-empty list of strings.")
        if len(set(tokens)) != len(tokens):
            raise DataError("The vocabulary record lists the same token twice.")
        if record["level"] == "char" and (any(len(t) != 1 for t in tokens) or tokens != sorted(tokens)):
            raise DataError("A char-level vocabulary record must list single characters in sorted order.")
        if record["level"] == "word" and tokens[:2] != [PAD, UNK]:
            raise DataError("A word-level vocabulary record must start with <pad> and <unk>.")
        return cls(tokens, record["level"])
