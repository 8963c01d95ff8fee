"""Generation: warm the state up on a prime text, then draw one token at a time.

Strategies (``choose_next``):
    argmax   the most likely token (deterministic, tends to loop)
    sample   draw from softmax(logits / temperature)
    topk     draw from the k most likely tokens only, renormalised
    rand     uniform over the vocabulary: what an untrained model amounts to, a baseline
"""
from __future__ import annotations

from scratchrnn.book import ops
from scratchrnn.core.backend import CPU, host_rng
from scratchrnn.core.errors import ConfigError
from scratchrnn.core.validation import int_at_least, positive_float, positive_int

STRATEGIES = ("sample", "argmax", "topk", "rand")


def choose_next(logits, strategy, rng, temperature=1.0, top_k=None):
    """Pick the next token id from host logits (V,); a token whose logit is -inf is
    never chosen. Returns a Python int."""
    np = CPU.xp
    if strategy == "argmax":
        return int(np.argmax(logits))
    if strategy == "rand":                                 # uniform over the allowed tokens
        allowed = np.flatnonzero(np.isfinite(logits))
        return int(allowed[rng.integers(len(allowed))])
    x = logits.astype(np.float64)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        # shift first so the best logit becomes 0: a tiny temperature sends the others to
        # -inf (the argmax in the limit) instead of overflowing to inf - inf = NaN
        z = (x - x.max()) / temperature
    if strategy == "topk":
        kth = np.sort(z)[-top_k]
        z = np.where(z >= kth, z, -np.inf)                 # keep the k best
    p = ops.softmax(z)
    return int(rng.choice(len(p), p=p / p.sum()))


MAX_LENGTH = 10_000_000     # tokens one sample may ask for (minutes of generation, not years)


def validate_options(strategy, temperature, top_k, length, seed=None):
    """Raise ConfigError (one sentence) for settings that cannot work."""
    if strategy not in STRATEGIES:
        raise ConfigError(f"Unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}.")
    positive_float("temperature", temperature)
    if strategy == "topk" and top_k is None:
        raise ConfigError("the topk strategy needs --top-k of at least 1.")
    if top_k is not None:
        positive_int("top-k", top_k)
    int_at_least("length", length, 0)
    if length > MAX_LENGTH:
        raise ConfigError(f"length must be at most {MAX_LENGTH:,} tokens, got {length:,}; "
                          f"sample in several runs for more.")
    if seed is not None:
        int_at_least("seed", seed, 0)


def generate(model, vocab, length, prime="", strategy="sample", temperature=1.0, top_k=None,
             seed=None):
    """Generate ``length`` tokens after ``prime`` and return them as text (prime excluded).

    The prime is fed through the model first so the state "knows" it; an empty prime
    starts from the zero state and a random first token. Unknown characters in the
    prime raise DataError (from ``vocab.encode``).
    """
    return "".join(generate_pieces(model, vocab, length, prime, strategy, temperature, top_k, seed))


def generate_pieces(model, vocab, length, prime="", strategy="sample", temperature=1.0, top_k=None,
                    seed=None):
    """``generate``, one token's text at a time as it is drawn (for printing as it goes).
    The options are checked before the first token."""
    validate_options(strategy, temperature, top_k, length, seed)
    if top_k is not None:
        top_k = min(top_k, len(vocab))
    rng = host_rng(seed)
    prime_ids = vocab.encode(prime) if prime else []
    return _pieces(model, vocab, length, prime_ids, strategy, temperature, top_k, rng)


def _pieces(model, vocab, length, prime_ids, strategy, temperature, top_k, rng):
    was_training = model.rnn.training
    model.eval()
    try:
        state = model.initial_state(1)
        if len(prime_ids):
            logits, state = model.forward(model.xp.asarray(prime_ids).reshape(-1, 1), state)
            last = _allowed_logits(model, logits[-1, 0], vocab)
        else:
            last = None
        for _ in range(length):
            first_choice = strategy if last is not None else "rand"   # no prime: a random start
            if last is None:
                last = _allowed_logits(model, model.xp.zeros(len(vocab)), vocab)
            token = choose_next(last, first_choice, rng, temperature, top_k)
            yield vocab.decode([token])
            logits, state = model.step_logits([token], state)
            last = _allowed_logits(model, logits[0], vocab)
    finally:
        model.train(was_training)


def _allowed_logits(model, logits, vocab):
    """Host float64 copy of one row of logits (V,), with the padding token (word level)
    set to -inf so it is never generated."""
    row = model.backend.asnumpy(logits).astype(CPU.xp.float64)
    if vocab.pad_id is not None:
        row[vocab.pad_id] = -CPU.xp.inf
    return row
