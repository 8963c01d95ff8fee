"""One step of training, and scoring: the few lines that teach how a language model learns.

A training step takes one window of truncated BPTT, ``batch.x`` and ``batch.y`` of shape
(T, B), and the recurrent state carried from the window before:

    loss  = cross-entropy of predicting y from x       (the forward pass)
    grads = d loss / d params                           (backpropagation through time)
    grads = clip(grads)                                 (exploding gradients cut to a norm)
    params -= optimizer(grads)                          (the update)

Everything around it (the data, the budget, evaluation, checkpoints, resuming, the
progress bar) lives in ``runner.py``.
"""
from __future__ import annotations

import math

from scratchrnn.book.batching import BatchStream
from scratchrnn.book.optim import clip_grad_norm, clip_grad_value
from scratchrnn.core.backend import CPU
from scratchrnn.core.errors import DataError, TrainingDiverged

LN2 = math.log(2.0)


def train_step(model, optimizer, batch, state, grad_clip=0.0, clip_value=0.0):
    """One window of truncated BPTT: forward, backward, clip, update.

    batch: has ``x``, ``y`` (T, B) int and ``mask`` (T, B) 0/1 or None.
    state: the state carried from the previous window (h (L, B, H), or (h, c) for LSTM).
    grad_clip: clip the global gradient norm to this (0: off).
    clip_value: clip each gradient element into [-clip_value, clip_value] (0: off).

    Returns (loss in nats/token before the update, the state to carry into the next window).
    Raises TrainingDiverged, before touching the weights, when the loss is NaN or infinite.
    """
    model.zero_grad()                                   # gradients accumulate: start from zero
    loss, state = model.loss(batch.x, batch.y, state, batch.mask)
    if not math.isfinite(loss):
        raise TrainingDiverged(f"The training loss became {loss}.")
    model.backward()                                    # BPTT through this window only
    if clip_value:
        clip_grad_value(model.grads, clip_value)
    if grad_clip:
        clip_grad_norm(model.grads, grad_clip)
    optimizer.step(model.params, model.grads)
    return loss, state


def evaluate(model, ids, batch_size, seq_len, max_tokens=None, pad_id=None):
    """Score ``ids`` (N,) as one stateful pass over B streams (state carried, no dropout).

    Returns {"loss": nats/token, "bpc": bits/token, "perplexity", "accuracy", "tokens"}.
    """
    np = CPU.xp
    if max_tokens is not None and len(ids) > max_tokens + 1:
        ids = ids[:max_tokens + 1]
    B = max(1, min(batch_size, (len(ids) - 1) // seq_len))
    T = min(seq_len, (len(ids) - 1) // B)
    if T < 1:
        raise DataError(f"The evaluation text has only {len(ids)} tokens; it needs at least 2.")
    stream = BatchStream(ids, B, T, pad_id=pad_id, backend=model.backend)
    was_training = model.rnn.training
    model.eval()
    total, correct, count, state = 0.0, 0, 0, model.initial_state(B)
    try:
        for batch in stream:
            logits, state = model.forward(batch.x, state)
            y = batch.y
            keep = model.xp.ones(y.shape, dtype=bool) if batch.mask is None else batch.mask
            n = int(keep.sum())
            loss, _ = model.loss_from_logits(logits, y, batch.mask)
            total += loss * n
            correct += int(((logits.argmax(axis=-1) == y) & keep).sum())
            count += n
    finally:
        model.train(was_training)
    loss = total / max(count, 1)
    return {"loss": loss, "bpc": loss / LN2, "perplexity": float(np.exp(min(loss, 700.0))),
            "accuracy": correct / max(count, 1), "tokens": count}
