"""The RNN against an n-gram baseline on the same held-out text (the paper's section 5).

    cmp = compare(text, rnn_logp, train_text, vocab_chars, order=9, prefix=prefix)
    cmp.rnn_loss, cmp.ngram_loss        # nats per character on text[1:]
    cmp.breakdown                       # ngram.error_breakdown: by kind of character and distance

The n-gram model (``ngram.NGramModel``, interpolated Kneser-Ney) is fit on ``train_text``
(the training split, or a slice of it) over the RNN's own character vocabulary, and scores
every character of ``text`` from the characters before it, exactly the positions the RNN's
``rnn_logp`` covers (``activations.collect(...).next_logp``). Both start without context at
the start of ``text``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from scratchrnn.analysis.ngram import NGramModel, error_breakdown
from scratchrnn.core.backend import CPU
from scratchrnn.core.errors import DataError

np = CPU.xp


@dataclass
class Comparison:
    """What ``compare`` returns. Losses are mean nats per predicted character (text[1:]).

    rnn_logp, ngram_logp: (N-1,) per-character log-probabilities.
    orders: [{"order": n, "loss": nats}] for the extra n-gram orders asked for.
    breakdown: ``ngram.error_breakdown``'s {"by_category", "by_distance"}.
    """

    order: int
    rnn_loss: float
    ngram_loss: float
    rnn_logp: object
    ngram_logp: object
    breakdown: dict
    orders: list
    train_chars: int
    fit_seconds: float


def compare(text, rnn_logp, train_text, vocab_chars, order=9, prefix="", extra_orders=()):
    """Fit an order-``order`` n-gram model on ``train_text`` and compare it with the RNN.

    text:       the held-out text, N characters (all in ``vocab_chars``).
    rnn_logp:   (N-1,) ln P_rnn(text[t] | text[:t]) for t = 1..N-1.
    train_text: the n-gram model's training text.
    prefix:     text before ``text`` in its document (for the lexer of the breakdown).
    extra_orders: other n-gram orders whose held-out loss to report as well.
    Returns a Comparison.
    """
    rnn_logp = np.asarray(rnn_logp, dtype=np.float64).reshape(-1)
    if len(text) < 2:
        raise DataError("The n-gram comparison needs at least two characters of text.")
    if rnn_logp.shape != (len(text) - 1,):
        raise ValueError(f"rnn_logp must have shape ({len(text) - 1},), got {rnn_logp.shape}.")
    started = time.perf_counter()
    model = NGramModel(order, vocab_chars).fit(train_text)
    fit_seconds = time.perf_counter() - started
    ngram_logp = model.log_probs(text)
    orders = []
    for n in extra_orders:
        if n == order:
            orders.append({"order": n, "loss": float(-ngram_logp.mean())})
        else:
            orders.append({"order": n, "loss": NGramModel(n, vocab_chars).fit(train_text).loss(text)})
    breakdown = error_breakdown(text, rnn_logp, ngram_logp, prefix=prefix)
    return Comparison(order, float(-rnn_logp.mean()), float(-ngram_logp.mean()), rnn_logp,
                      ngram_logp, breakdown, orders, len(train_text), fit_seconds)


def advantage(cmp):
    """(N-1,) how many nats the RNN saves over the n-gram model at each predicted character
    (positive where the RNN is better): ln P_rnn - ln P_ngram."""
    return cmp.rnn_logp - cmp.ngram_logp
