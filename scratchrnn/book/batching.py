"""Ids out as batches: splits by position and truncated-BPTT windows.

    train, val, test = split_ids(ids)              # by position: 90% / 5% / 5%
    stream = BatchStream(train, batch_size=B, seq_len=T)
    batch = stream.next_batch()                    # x, y: (T, B) int, time-major

Shapes: ``N`` tokens, ``T`` steps per window, ``B`` parallel streams.
The ids are cut on the host (``CPU.xp`` is NumPy); ``BatchStream`` can hand its windows
out on another backend (``backend="cupy"``) so a GPU run copies the ids once.
"""
from __future__ import annotations

import math
from typing import Any, NamedTuple

from scratchrnn.core.backend import CPU, backend_of, get_backend
from scratchrnn.core.errors import ConfigError, DataError
from scratchrnn.core.validation import int_at_least, positive_int

_np = CPU.xp  # host-side array code (NumPy)

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
        B = positive_int("batch_size", batch_size)
        T = positive_int("seq_len", seq_len)
        seed = int_at_least("seed", seed, 0)
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
