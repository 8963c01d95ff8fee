"""An interpolated Kneser-Ney character n-gram model: the baseline of the paper's §5.

Smoothing (interpolated Kneser-Ney, Chen & Goodman 1998, one discount per order):

    P_m(c | h) = max(a_m(h, c) - D_m, 0) / A_m(h)  +  D_m * T_m(h) / A_m(h) * P_{m-1}(c | h')

for a context h of m characters whose last m-1 characters are h'. At the highest order
(m = order-1) a_m is the raw count of h followed by c; at lower orders it is the
*continuation* count, the number of distinct characters seen just before "h c".
A_m(h) = sum over c of a_m(h, c), T_m(h) = the number of c with a_m(h, c) > 0.
D_m = n1 / (n1 + 2 n2) from the counts-of-counts of order m (Ney's estimate), clipped to
[0.1, 0.9]. The recursion bottoms out in the uniform distribution over the vocabulary,
P_{-1}(c) = 1/V, so no character of the vocabulary ever gets probability 0; a context
never seen in training (A_m(h) = 0) hands its position straight to the order below.
Near the start of a scored text the context is whatever precedes the position.

Everything is vectorised with sorted integer keys: a context of m characters gets a dense
id, the id of its (m-1)-character suffix times V plus its first character is its key,
and lookups are ``searchsorted`` calls. Fitting 300k characters at order 9 and scoring
50k take well under a second each.

``error_breakdown`` compares an RNN's per-character losses with this model's, by kind of
character and, for closing brackets and quotes, by distance to the matching opener.
"""
from __future__ import annotations

from scratchrnn.analysis.features import CLOSERS, QUOTES, python_lex
from scratchrnn.core.backend import CPU
from scratchrnn.core.errors import ConfigError, DataError, ShapeError
from scratchrnn.core.validation import positive_int

np = CPU.xp

DISCOUNT_RANGE = (0.1, 0.9)


class NGramModel:
    """Character n-gram model over a fixed vocabulary.

    order:       n, the number of characters per n-gram; the context is n-1 characters
                 (order 1 is a unigram model).
    vocab_chars: the characters the model can predict, e.g. the RNN's vocabulary (V of them,
                 in any order; duplicates are ignored).
    """

    def __init__(self, order: int, vocab_chars):
        order = positive_int("n-gram order", order)
        chars = list(dict.fromkeys(vocab_chars))
        if not chars:
            raise ConfigError("The n-gram vocabulary is empty.")
        self.order = order
        self.vocab = chars
        self.index = {ch: k for k, ch in enumerate(chars)}
        self.V = len(chars)
        self._tables = None  # one _OrderTable per context length 0..order-1, set by fit

    # ---------------------------------------------------------------- fitting
    def fit(self, train_text: str) -> "NGramModel":
        """Count all n-grams of ``train_text`` (every character must be in the vocabulary)."""
        x = self.encode(train_text)
        if x.size < self.order:
            raise DataError(f"An order-{self.order} n-gram model needs at least {self.order} "
                            f"training characters, got {x.size}.")
        ctx_ids, ctx_keys = self._training_contexts(x)
        occurring = []  # per order m: sorted unique keys ctx_id*V + next over positions t >= m
        for m in range(self.order):
            t = np.arange(m, x.size)
            occurring.append(np.unique(ctx_ids[m][t] * self.V + x[t]))
        tables = []
        for m in range(self.order):
            if m == self.order - 1:  # raw counts at the top order
                t = np.arange(m, x.size)
                keys, counts = np.unique(ctx_ids[m][t] * self.V + x[t], return_counts=True)
            else:  # continuation counts: distinct left extensions of (h, c)
                keys, counts = self._continuation_counts(occurring[m + 1], ctx_keys[m + 1])
            tables.append(_OrderTable.build(ctx_keys[m], keys, counts, self.V))
        self._tables = tables
        return self

    def _training_contexts(self, x):
        """Dense context ids for every position of the training codes x (N,).

        Returns (ctx_ids, ctx_keys): ctx_ids[m] is (N,) int, the id of the m characters
        before position t (-1 where t < m); ctx_keys[m] is the sorted array of keys
        (suffix id * V + first character) whose index is the id. ctx_keys[0] = [0].
        """
        ctx_ids = [np.zeros(x.size, dtype=np.int64)]
        ctx_keys = [np.zeros(1, dtype=np.int64)]
        for m in range(1, self.order):
            ids = np.full(x.size, -1, dtype=np.int64)
            t = np.arange(m, x.size)
            keys = ctx_ids[m - 1][t] * self.V + x[t - m]
            uniq, inverse = np.unique(keys, return_inverse=True)
            ids[t] = inverse.reshape(-1)
            ctx_ids.append(ids)
            ctx_keys.append(uniq)
        return ctx_ids, ctx_keys

    def _continuation_counts(self, pairs_above, ctx_keys_above):
        """Continuation counts of order m from the distinct (context, next) pairs of order m+1.

        pairs_above:    (P,) sorted keys ctx_id_{m+1} * V + c of the pairs seen at order m+1.
        ctx_keys_above: (C,) keys of the order m+1 contexts (suffix id * V + first char).
        Returns (keys (Q,), counts (Q,)) for order-m pairs suffix_id * V + c.
        """
        ctx_above, c = np.divmod(pairs_above, self.V)
        suffix = ctx_keys_above[ctx_above] // self.V
        return np.unique(suffix * self.V + c, return_counts=True)

    # ---------------------------------------------------------------- scoring
    def log_probs(self, text: str):
        """(N-1,) float: ln P(text[t] | text[:t]) for t = 1..N-1 (context cut at the text start)."""
        self._require_fitted()
        y = self.encode(text)
        if y.size < 2:
            return np.zeros(0, dtype=np.float64)
        ctx = self._lookup_contexts(y)
        t = np.arange(1, y.size)
        return np.log(self._interpolate([ids[t] for ids in ctx], y[t]))

    def loss(self, text: str) -> float:
        """Mean negative log-probability (nats per character) of text[1:] given its prefix."""
        lp = self.log_probs(text)
        if lp.size == 0:
            raise DataError("Need at least two characters to compute an n-gram loss.")
        return float(-lp.mean())

    def prob_dist(self, context: str):
        """(V,) float: P(c | context) for every vocabulary character c, in ``self.vocab`` order."""
        self._require_fitted()
        y = np.concatenate([self.encode(context), np.zeros(1, dtype=np.int64)])
        last = y.size - 1
        ctx = self._lookup_contexts(y)
        ids = [np.full(self.V, col[last], dtype=np.int64) for col in ctx]
        return self._interpolate(ids, np.arange(self.V, dtype=np.int64))

    def _lookup_contexts(self, y):
        """Per order m, the (M,) training id of the m characters before each position of y
        (codes (M,)), or -1 where that context was not seen in training or t < m."""
        ctx = [np.zeros(y.size, dtype=np.int64)]
        for m in range(1, self.order):
            ids = np.full(y.size, -1, dtype=np.int64)
            t = np.arange(m, y.size)
            prev = ctx[m - 1][t]
            ids[t] = _find(self._tables[m].ctx_keys, prev * self.V + y[t - m], prev >= 0)
            ctx.append(ids)
        return ctx

    def _interpolate(self, ctx_ids, nxt):
        """(K,) probabilities of next codes nxt (K,) given context ids per order (list of (K,))."""
        p = np.full(nxt.size, 1.0 / self.V)
        for m, table in enumerate(self._tables):
            ids = ctx_ids[m]
            seen = ids >= 0
            safe = np.where(seen, ids, 0)
            a = _find_counts(table.pair_keys, table.pair_counts, safe * self.V + nxt, seen)
            total = np.where(seen, table.total[safe], 0)
            types = np.where(seen, table.types[safe], 0)
            use = total > 0
            denom = np.where(use, total, 1)
            higher = (np.maximum(a - table.discount, 0.0) + table.discount * types * p) / denom
            p = np.where(use, higher, p)
        return p

    # ---------------------------------------------------------------- helpers
    def encode(self, text: str):
        """(N,) int64 vocabulary codes of ``text``; DataError on a character outside the vocabulary."""
        try:
            return np.fromiter((self.index[ch] for ch in text), dtype=np.int64, count=len(text))
        except KeyError:
            missing = sorted({ch for ch in text if ch not in self.index})
            raise DataError(f"The text has {len(missing)} character(s) outside the n-gram "
                            f"vocabulary, e.g. {''.join(missing[:10])!r}.") from None

    def _require_fitted(self):
        if self._tables is None:
            raise DataError("The n-gram model must be fit before it can score text.")


class _OrderTable:
    """The counts of one order m: contexts, (context, next) pairs, totals and the discount.

    ctx_keys:    (C,) sorted keys of the contexts of m characters (index = context id).
    pair_keys:   (P,) sorted keys ctx_id * V + next code, pair_counts (P,) their a_m counts.
    total:       (C,) A_m(h); types: (C,) T_m(h); discount: D_m.
    """

    def __init__(self, ctx_keys, pair_keys, pair_counts, total, types, discount):
        self.ctx_keys, self.pair_keys, self.pair_counts = ctx_keys, pair_keys, pair_counts
        self.total, self.types, self.discount = total, types, discount

    @classmethod
    def build(cls, ctx_keys, pair_keys, pair_counts, V):
        ctx_of_pair = pair_keys // V
        total = np.bincount(ctx_of_pair, weights=pair_counts, minlength=ctx_keys.size)
        types = np.bincount(ctx_of_pair, minlength=ctx_keys.size).astype(np.float64)
        n1 = float(np.sum(pair_counts == 1))
        n2 = float(np.sum(pair_counts == 2))
        d = n1 / (n1 + 2.0 * n2) if n1 + n2 > 0 else DISCOUNT_RANGE[0]
        d = min(max(d, DISCOUNT_RANGE[0]), DISCOUNT_RANGE[1])
        return cls(ctx_keys, pair_keys, pair_counts.astype(np.float64), total, types, d)


def _find(sorted_keys, keys, valid):
    """(K,) index of each of keys (K,) in sorted_keys, or -1 if absent or not valid (K,) bool."""
    if sorted_keys.size == 0:
        return np.full(keys.size, -1, dtype=np.int64)
    pos = np.searchsorted(sorted_keys, keys)
    pos_c = np.minimum(pos, sorted_keys.size - 1)
    hit = valid & (sorted_keys[pos_c] == keys)
    return np.where(hit, pos_c, -1)


def _find_counts(sorted_keys, counts, keys, valid):
    """(K,) counts[index of key] for each of keys (K,), 0.0 where absent or not valid."""
    idx = _find(sorted_keys, keys, valid)
    return np.where(idx >= 0, counts[np.maximum(idx, 0)] if counts.size else 0.0, 0.0)


# -------------------------------------------------------------------- error breakdown
CATEGORIES = ("closing bracket/quote", "newline", "indent / line start", "space",
              "word start", "in-word", "other")
"""The kinds of predicted character ``error_breakdown`` reports, in precedence order."""

DISTANCE_EDGES = (1, 10, 20, 40, 80, 160)
"""Lower edges of the distance buckets (characters back to the opener); the last is open."""


def error_breakdown(text: str, rnn_logp, ngram_logp, distance_edges=DISTANCE_EDGES,
                    prefix: str = "") -> dict:
    """Where does the RNN beat the n-gram model? (paper §5).

    text:       the scored text, N characters.
    rnn_logp:   (N-1,) ln P_rnn(text[t] | text[:t]) for t = 1..N-1.
    ngram_logp: (N-1,) the same for the n-gram model.
    distance_edges: increasing lower edges of the distance buckets for closing characters.
    prefix:     text that precedes ``text`` in its document, so strings and brackets open
                before ``text`` starts are known (see ``features``); only ``text`` is scored.

    Each predicted position t gets the first matching category of ``CATEGORIES``:
    a closing bracket or the first character of a string's closing quote (matched by the
    Python-aware lexer of ``features``; its opener may lie in the prefix); a newline; leading
    whitespace of a line or the first character after it; a space; a letter/digit/_ after a
    non-word character (word start) or after a word character (in-word); anything else.

    Returns {"by_category": rows, "by_distance": rows}, lists of dicts with keys
    category|distance, count, rnn_loss, ngram_loss (mean nats), rnn_better (fraction of
    positions where the RNN's loss is lower). "by_distance" covers the closing characters,
    bucketed by t - (index of the matching opener). Categories without positions are kept
    with count 0 and NaN means, so tables keep their shape.
    """
    rnn = -np.asarray(rnn_logp, dtype=np.float64).reshape(-1)
    ngr = -np.asarray(ngram_logp, dtype=np.float64).reshape(-1)
    n = len(text)
    if rnn.shape != (max(n - 1, 0),) or ngr.shape != rnn.shape:
        raise ShapeError(f"rnn_logp and ngram_logp must both have shape ({max(n - 1, 0)},) "
                         f"for a text of {n} characters, got {rnn.shape} and {ngr.shape}.")
    cats, dist = _categorise(text, prefix)
    cats, dist = cats[1:], dist[1:]  # position t predicts text[t], t >= 1
    by_category = [_summary_row("category", name, rnn[cats == k], ngr[cats == k])
                   for k, name in enumerate(CATEGORIES)]
    edges = list(distance_edges)
    by_distance = []
    for j, lo in enumerate(edges):
        hi = edges[j + 1] if j + 1 < len(edges) else None
        mask = (dist >= lo) & (dist < hi) if hi is not None else (dist >= lo)
        label = f"{lo}-{hi - 1}" if hi is not None else f">={lo}"
        by_distance.append(_summary_row("distance", label, rnn[mask], ngr[mask]))
    return {"by_category": by_category, "by_distance": by_distance}


def _categorise(text: str, prefix: str = ""):
    """((N,) int category codes into CATEGORIES, (N,) int distance to opener or -1)."""
    lex = python_lex(text, prefix)
    n = len(text)
    cats = np.empty(n, dtype=np.int64)
    dist = np.full(n, -1, dtype=np.int64)
    tail = prefix[prefix.rfind("\n") + 1:]
    at_line_start = not tail.strip(" \t")  # in the leading whitespace of a line (or just past it)
    for i, ch in enumerate(text):
        prev = text[i - 1] if i > 0 else (prefix[-1] if prefix else "\n")
        if lex.opener_distance[i] > 0 and (ch in CLOSERS or ch in QUOTES):
            cats[i], dist[i] = 0, lex.opener_distance[i]
        elif ch == "\n":
            cats[i] = 1
        elif at_line_start:
            cats[i] = 2
        elif ch == " ":
            cats[i] = 3
        elif _is_word(ch):
            cats[i] = 5 if _is_word(prev) else 4
        else:
            cats[i] = 6
        if ch == "\n":
            at_line_start = True
        elif ch not in " \t":
            at_line_start = False
    return cats, dist


def _is_word(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def _summary_row(key, label, rnn_loss, ngram_loss) -> dict:
    """One table row: count, mean losses and the RNN's win rate over the given positions."""
    count = int(rnn_loss.size)
    nan = float("nan")
    return {key: label, "count": count,
            "rnn_loss": float(rnn_loss.mean()) if count else nan,
            "ngram_loss": float(ngram_loss.mean()) if count else nan,
            "rnn_better": float(np.mean(rnn_loss < ngram_loss)) if count else nan}
