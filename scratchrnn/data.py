"""Text in, batches out: corpora, vocabularies, splits and truncated-BPTT batching.

    text  = load_source("python-docs")            # a named corpus, or any UTF-8 file path
    vocab = Vocab.build(text, level="char")        # sorted characters: same ids on every run
    ids   = vocab.encode(text)                     # (N,) int64 on the host
    train, val, test = split_ids(ids)              # by position: 90% / 5% / 5%
    stream = BatchStream(train, batch_size=B, seq_len=T)
    batch = stream.next_batch()                    # x, y: (T, B) int, time-major

Shapes: ``N`` tokens, ``T`` steps per window, ``B`` parallel streams, ``V`` vocabulary size.
Everything here runs on the host (``CPU.xp`` is NumPy); ``BatchStream`` can hand its
windows out on another backend (``backend="cupy"``) so a GPU run copies the ids once.
"""
from __future__ import annotations

import math
import operator
import os
import re
import sysconfig
from collections import Counter
from functools import lru_cache
from typing import Any, NamedTuple

from .backend import CPU, backend_of, get_backend
from .errors import ConfigError, DataError

_np = CPU.xp  # host-side array code (NumPy)


# ------------------------------------------------------------------------ corpora
CORPORA = ("python-stdlib", "python-docs")
"""Named corpora built from the running Python installation itself (no download).

``python-stdlib``: every top-level ``.py`` file of ``sysconfig.get_paths()["stdlib"]``,
sorted by file name, each file's text followed by a newline (files that are not valid
UTF-8 are skipped) -- a few MB of code with brackets, quotes and indentation.
``python-docs``: the reference-manual prose of ``pydoc_data.topics.topics``, the
topics sorted by key and joined by newlines (~0.5 MB of English).
Both are identical on every machine with the same Python version.
"""


@lru_cache(maxsize=None)
def _stdlib_text() -> str:
    root = sysconfig.get_paths()["stdlib"]
    names = sorted(n for n in os.listdir(root)
                   if n.endswith(".py") and os.path.isfile(os.path.join(root, n)))
    parts = []
    for name in names:
        with open(os.path.join(root, name), "rb") as f:
            raw = f.read()
        try:
            parts.append(raw.decode("utf-8") + "\n")
        except UnicodeDecodeError:
            continue
    return "".join(parts)


@lru_cache(maxsize=None)
def _docs_text() -> str:
    from pydoc_data.topics import topics
    return "\n".join(topics[key] for key in sorted(topics))


_CORPUS_BUILDERS = {"python-stdlib": _stdlib_text, "python-docs": _docs_text}


def load_corpus(name: str, max_chars: int | None = None) -> str:
    """The named corpus (one of ``CORPORA``), cut to its first ``max_chars`` characters if given."""
    if name not in _CORPUS_BUILDERS:
        raise ConfigError(f"Unknown corpus {name!r}; choose one of {', '.join(CORPORA)}.")
    text = _CORPUS_BUILDERS[name]()
    return _truncate(text, max_chars)


def read_text_file(path) -> str:
    """The whole of a UTF-8 text file (a leading byte-order mark is dropped; newlines kept as is).

    Raises DataError when the path is missing, is a directory, cannot be read,
    is empty, or is not valid UTF-8.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise DataError(f"The text file {path!r} does not exist.")
    if os.path.isdir(path):
        raise DataError(f"The path {path!r} is a directory, not a text file.")
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise DataError(f"The text file {path!r} cannot be read ({exc.strerror or exc}).") from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"The file {path!r} is not valid UTF-8 text "
                        f"(bad byte at offset {exc.start}).") from exc
    if not text:
        raise DataError(f"The text file {path!r} is empty.")
    return text


def load_source(source: str, max_chars: int | None = None) -> str:
    """A corpus name from ``CORPORA`` or else the path of a UTF-8 file, as text."""
    if source in CORPORA:
        return load_corpus(source, max_chars)
    return _truncate(read_text_file(source), max_chars)


def _truncate(text: str, max_chars: int | None) -> str:
    """The first ``max_chars`` characters of ``text`` (all of it when None)."""
    if max_chars is None:
        return text
    return text[:_positive_int("max_chars", max_chars)]


def _positive_int(name: str, value) -> int:
    """``value`` as an int when it is a whole number >= 1, else ConfigError."""
    try:
        as_int = operator.index(value)
    except TypeError:
        as_int = None
    if as_int is None or isinstance(value, bool) or as_int < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}.")
    return as_int


# -------------------------------------------------------------------- vocabularies
_WORD_RE = re.compile(r"\w+|\s+|[^\w\s]")
PAD, UNK = "<pad>", "<unk>"


def tokenize(text: str) -> list[str]:
    """Word-level tokens that lose nothing: runs of word characters, runs of whitespace,
    and single punctuation marks, so ``"".join(tokenize(t)) == t`` for every string."""
    return _WORD_RE.findall(text)


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
                ranked = ranked[:_positive_int("max_size", max_size)]
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
        cps = _np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")
        pos = _np.searchsorted(self._codepoints, cps)
        known = self._codepoints[_np.minimum(pos, len(self) - 1)] == cps
        if not known.all():
            if not allow_unknown:
                bad = text[int(_np.argmin(known))]
                raise DataError(f"The character {bad!r} is not in the model's vocabulary.")
            pos = pos[known]
        return pos.astype(_np.int64)

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


# -------------------------------------------------------------------------- splits
def split_ids(ids, fractions=(0.9, 0.05, 0.05)):
    """Cut ids (N,) by position into (train, val, test) views of sizes ~ fractions * N.

    fractions: three numbers summing to 1; train's must be > 0, val's and test's >= 0
    (0 gives an empty split). Train takes the first ``int(f0*N)`` ids, val the next
    ``int(f1*N)``, test the rest.
    """
    try:
        f = [float(x) for x in fractions]
    except (TypeError, ValueError):
        raise ConfigError(f"Split fractions must be three numbers, got {fractions!r}.") from None
    if len(f) != 3 or not all(math.isfinite(x) for x in f):
        raise ConfigError(f"Split fractions must be three finite numbers, got {fractions!r}.")
    if f[0] <= 0 or f[1] < 0 or f[2] < 0:
        raise ConfigError(f"Split fractions must be positive for train and non-negative otherwise, got {fractions!r}.")
    if abs(sum(f) - 1.0) > 1e-6:
        raise ConfigError(f"Split fractions must sum to 1, got {fractions!r} (sum {sum(f):g}).")
    n = len(ids)
    n_train, n_val = int(f[0] * n), int(f[1] * n)
    return ids[:n_train], ids[n_train:n_train + n_val], ids[n_train + n_val:]


# ------------------------------------------------------------------- statistics
def unigram_entropy(ids) -> float:
    """Entropy in nats per token of the empirical unigram distribution of ids (N,) int.

    A language model whose cross-entropy is below this has learned more than token
    frequencies (the loss of the best context-free predictor on the same ids).
    """
    ids = _np.asarray(backend_of(ids).asnumpy(ids)).reshape(-1)
    if ids.size == 0:
        raise DataError("Cannot compute the entropy of an empty id array.")
    counts = _np.bincount(ids.astype(_np.int64))
    p = counts[counts > 0] / ids.size
    return float(-(p * _np.log(p)).sum())


# ---------------------------------------------------------- truncated-BPTT batches
class Batch(NamedTuple):
    """One window of truncated BPTT.

    x, y: (T, B) int token ids, time-major; ``y[t, b]`` is the token after ``x[t, b]``.
    reset: True when the hidden state must start from zero for this window (the first
        window of an epoch, or every window of a shuffled stream); otherwise carry the
        final state of the previous window into this one (detached: no gradient flows back).
    epoch: the epoch this window belongs to (0-based).  index: its position in that epoch.
    mask: (T, B) bool, False where ``y`` is the pad id; None when the stream has no pad id.
    """
    x: Any
    y: Any
    reset: bool
    epoch: int
    index: int
    mask: Any


class BatchStream:
    """ids (N,) cut into B contiguous streams, served as windows of T steps (as char-rnn).

    The ids are trimmed to ``B * L`` tokens, L the largest multiple of T with
    ``B * L + 1 <= N``, and stream b is ``ids[b*L : (b+1)*L]``; window w holds steps
    ``w*T .. w*T+T-1`` of every stream, so window w+1 continues exactly where window w
    stopped and the hidden state can be carried across them. An epoch is ``len(stream)``
    windows and sees each kept token once as an input, in order.

    ``shuffle=True`` visits the windows of each epoch in a random order drawn from
    ``(seed, epoch)`` (reproducible, resumable); consecutive windows are then unrelated, so
    ``stateful`` is False and every batch has ``reset=True``.
    ``backend`` ("numpy", "cupy", a Backend, or None for NumPy) is where x, y and mask
    live; they are views into one array copied there once, so do not write into them.
    """

    def __init__(self, ids, batch_size: int, seq_len: int, shuffle: bool = False,
                 seed: int = 0, pad_id: int | None = None, backend=None):
        """ids: (N,) int token ids (host or device)."""
        B = _positive_int("batch_size", batch_size)
        T = _positive_int("seq_len", seq_len)
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ConfigError(f"seed must be a non-negative integer, got {seed!r}.")
        host = _np.asarray(backend_of(ids).asnumpy(ids))
        if host.ndim != 1 or (host.size and host.dtype.kind not in "iu"):
            raise DataError(f"Token ids must be a 1-D integer array, got shape {host.shape} "
                            f"and dtype {host.dtype}.")
        need = B * T + 1
        if host.size < need:
            raise DataError(f"The text has {host.size} tokens but batch_size {B} x seq_len {T} "
                            f"needs at least {need} characters (tokens); use a longer text or "
                            f"a smaller batch_size or seq_len.")
        L = (host.size - 1) // (B * T) * T
        xs = _np.ascontiguousarray(host[:B * L].reshape(B, L).T)         # (L, B)
        ys = _np.ascontiguousarray(host[1:B * L + 1].reshape(B, L).T)    # (L, B)
        self._backend = get_backend(backend)
        self._x = self._backend.asarray(xs.astype(_np.int64))
        self._y = self._backend.asarray(ys.astype(_np.int64))
        self.batch_size, self.seq_len = B, T
        self.shuffle, self.seed, self.pad_id = bool(shuffle), seed, pad_id
        self.epoch, self.index = 0, 0
        self._order_epoch, self._order = None, None

    # --------------------------------------------------------------- counting
    def __len__(self) -> int:
        """Windows per epoch."""
        return self._x.shape[0] // self.seq_len

    @property
    def stateful(self) -> bool:
        """True when the hidden state may be carried from one window to the next."""
        return not self.shuffle

    @property
    def iteration(self) -> int:
        """Windows served since the start of epoch 0."""
        return self.epoch * len(self) + self.index

    @property
    def epoch_progress(self) -> float:
        """Epochs done as a fraction, e.g. 3.2 (for checkpoint names and logs)."""
        return self.epoch + self.index / len(self)

    # ---------------------------------------------------------------- serving
    def _window_order(self):
        """(W,) int: the window visited at each position of the current epoch."""
        if self._order_epoch != self.epoch:
            if self.shuffle:
                self._order = _np.random.default_rng([self.seed, self.epoch]).permutation(len(self))
            else:
                self._order = _np.arange(len(self))
            self._order_epoch = self.epoch
        return self._order

    def next_batch(self) -> Batch:
        """The next window (moving on to the next epoch after the last one)."""
        w = int(self._window_order()[self.index])
        rows = slice(w * self.seq_len, (w + 1) * self.seq_len)
        x, y = self._x[rows], self._y[rows]
        mask = None if self.pad_id is None else (y != self.pad_id)
        batch = Batch(x, y, self.index == 0 or not self.stateful, self.epoch, self.index, mask)
        self.index += 1
        if self.index == len(self):
            self.epoch, self.index = self.epoch + 1, 0
        return batch

    def __iter__(self):
        """The remaining windows of the current epoch."""
        epoch = self.epoch
        while self.epoch == epoch:
            yield self.next_batch()

    # ----------------------------------------------------------------- resume
    def state_dict(self) -> dict:
        """JSON-serialisable position of the stream; the shuffled order is drawn from
        (seed, epoch), so these few numbers are the whole random state."""
        return {"epoch": self.epoch, "index": self.index, "seed": self.seed,
                "shuffle": self.shuffle, "batch_size": self.batch_size,
                "seq_len": self.seq_len, "num_windows": len(self)}

    def load_state_dict(self, state: dict) -> None:
        """Continue from ``state_dict()``: the next batches are those the saved stream would serve."""
        mine = self.state_dict()
        for key in ("shuffle", "batch_size", "seq_len", "num_windows"):
            if state.get(key) != mine[key]:
                raise ConfigError(f"Cannot resume the batch stream: saved {key} is "
                                  f"{state.get(key)!r} but this stream has {mine[key]!r}.")
        epoch, index, seed = state.get("epoch"), state.get("index"), state.get("seed")
        if not all(isinstance(v, int) and v >= 0 for v in (epoch, index, seed)) or index >= len(self):
            raise ConfigError("Cannot resume the batch stream: its saved epoch, index or seed is invalid.")
        self.epoch, self.index, self.seed = epoch, index, seed
        self._order_epoch = None
