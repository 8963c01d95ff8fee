"""A word-level language model with RMSProp and greedy generation, then a 2-layer LSTM
with and without attention over its last K outputs.

On the ``python-docs`` prose (Python's reference manual), cut into words, whitespace and
punctuation: first the one-layer LSTM of the TensorFlow hackathon (a learned embedding
of size √V, RMSProp, generation by argmax), then its exercise, a 2-layer LSTM whose top
layer attends over its own last K outputs (as TensorFlow's AttentionCellWrapper), next
to the same 2-layer LSTM without attention. Same data, same number of updates; the
validation losses per token and per word, and the greedy samples side by side.
"""
# %% [markdown]
# # A word-level LSTM, and does attention over past outputs help?
#
# **Words as tokens.** ``Vocab.build(text, level="word", max_size=N)`` cuts the text into
# runs of letters/digits, runs of whitespace and single punctuation marks (so decoding
# gives the text back), keeps the N most frequent and maps the rest to ``<unk>``. The
# model predicts every next token, spaces included; we report the loss **per token**
# and **per word**: the same total of nats over the validation text divided by the
# number of word tokens in it (what a word-level perplexity counts), so a model is not
# flattered by the easy spaces.
#
# **The models** (``SequenceModel.for_tokens``: embedding -> recurrent stack -> head ->
# softmax cross-entropy from ``heads``), each trained with RMSProp, the optimizer the
# hackathon chose, for the same number of updates on the same windows:
#
# * the hackathon's model: embedding of size √V, one LSTM layer;
# * its exercise without attention: two LSTM layers;
# * its exercise: two LSTM layers, the top one attending over its last K outputs
#   (``attention.AttentionLSTM``; equations in docs/derivations.md, section 9).
#
# The learning rate is 1e-3 for all three (``--lr``). RMSProp's first updates are large
# (its running mean of g² starts at zero), and at 3e-3 the attention model, whose
# output is an unbounded linear projection that is also fed back through its window,
# jumped to a loss of about 10⁵ within three updates in a trial before recovering;
# try it with ``--lr 3e-3``.
#
# Windows of 32 tokens in 32 parallel streams, the state carried from one window to the
# next (truncated BPTT; the carried state is a constant, no gradient crosses windows).

# %% [markdown]
# ## Parameters
#
# Change them here in a notebook; from a terminal, ``python scripts/word_lm_attention.py
# --quick --steps 100`` overrides them. ``None`` means the default of the mode.

# %% tags=["parameters"]
quick = False       # True: tiny sizes, the whole lesson in seconds
seeds = None        # seeds per model (None: 3; 2 with quick)
seed = 0            # the first seed
steps = None        # RMSProp updates per model (None: 600; 6 with quick)
hidden = None       # LSTM units (None: 96; 16 with quick)
vocab_size = None   # the most frequent tokens kept (None: 1500; 300 with quick)
attn_length = 4     # K, how many past outputs the attention reads
lr = 1e-3           # RMSProp learning rate of every model
backend = "numpy"   # numpy | cupy | auto
out = None          # output folder (None: a new lessons-out/word_lm_attention/run-N here)
replace = False     # let ``out`` overwrite this lesson's earlier outputs there

# %%
import lessonkit
from lessonkit import Param

SPEC = {                       # the settings above: kind, full-run value, quick value
    "steps": Param("int", 600, 6, help="RMSProp updates per model"),
    "hidden": Param("int", 96, 16, help="LSTM units of every layer"),
    "vocab_size": Param("int", 1500, 300, low=10, help="vocabulary size (most frequent tokens)"),
    "attn_length": Param("int", 4, help="K, how many past outputs the attention reads"),
    "lr": Param("float", 1e-3, low=0, help="RMSProp learning rate"),
}
L = lessonkit.start("word_lm_attention", globals(), SPEC)

# %%
import re  # noqa: E402
import textwrap  # noqa: E402
import time  # noqa: E402

from scratchrnn.blocks.sequence_model import SequenceModel  # noqa: E402
from scratchrnn.book.batching import BatchStream, split_ids  # noqa: E402
from scratchrnn.book.optim import clip_grad_norm, make_optimizer  # noqa: E402
from scratchrnn.core.backend import CPU  # noqa: E402
from scratchrnn.core.errors import TrainingDiverged  # noqa: E402
from scratchrnn.lm.corpora import load_corpus  # noqa: E402
from scratchrnn.lm.sample import choose_next  # noqa: E402
from scratchrnn.lm.vocab import Vocab  # noqa: E402

np = CPU.xp            # host arrays: results and figures

SEQ_LEN, BATCH = 32, 32
PRIME = "The default"
WORDLIKE = re.compile(r"\w")


# %% [markdown]
# ## The data
#
# The 90/5/5 split is by position. ``word_mask`` marks which vocabulary entries are
# words (start with a letter, digit or underscore): whitespace and punctuation tokens
# are predicted like the others but do not count as words.

# %%
def load_words(max_chars, max_vocab):
    """(vocab, train ids (N,), val ids (M,), is_word (V,) bool)."""
    text = load_corpus("python-docs", max_chars=max_chars)
    vocab = Vocab.build(text, "word", max_size=max_vocab)
    ids = vocab.encode(text)
    train, val, _ = split_ids(ids, (0.9, 0.05, 0.05))
    is_word = np.array([bool(WORDLIKE.match(tok)) for tok in vocab.tokens])
    is_word[vocab.unk_id] = True           # an out-of-vocabulary token is a rare word
    return vocab, train, val, is_word


# %% [markdown]
# ## Training, scoring, greedy generation
#
# One update: the loss of a window (``model.loss`` from the carried state), the
# hand-written backward, the gradient norm clipped at 5, one RMSProp step.
# Scoring runs over the whole validation split in order, carrying the state.
# Greedy generation warms the state up on a prime and then always takes the
# likeliest next token (``choose_next(..., "argmax", ...)``), as the hackathon does.

# %%
def train(model, train_ids, steps, lr, seed, backend, every):
    """RMSProp for ``steps`` windows of ``train_ids`` (N,). Every ``every`` steps (and at
    the last) yields (step, mean training loss since the last yield, CPU seconds so far)."""
    stream = BatchStream(train_ids, BATCH, SEQ_LEN, seed=seed, backend=backend)
    opt = make_optimizer("rmsprop", lr)
    state, cpu, losses = None, 0.0, []
    for step in range(1, steps + 1):
        c0 = time.process_time()
        batch = stream.next_batch()
        if batch.reset:
            state = None                                   # an epoch starts from zeros
        model.zero_grad()
        loss, state = model.loss(batch.x, batch.y, state)
        if not np.isfinite(loss):
            raise TrainingDiverged(f"the training loss became {loss} at step {step}.")
        model.backward()                                   # BPTT within the window
        clip_grad_norm(model.grads, 5.0)
        opt.step(model.params, model.grads)
        cpu += time.process_time() - c0
        losses.append(loss)
        if step % every == 0 or step == steps:
            yield step, float(np.mean(losses[-every:])), cpu


def score(model, val_ids, is_word, backend):
    """Validation (nats per token, nats per word) in one stateful in-order pass."""
    stream = BatchStream(val_ids, BATCH, SEQ_LEN, backend=backend)
    model.eval()
    total, tokens, words, state = 0.0, 0, 0, None
    for batch in stream:
        loss, state = model.loss(batch.x, batch.y, state)
        y = backend.asnumpy(batch.y)
        total += loss * y.size
        tokens += y.size
        words += int(is_word[y].sum())
    model.train()
    return total / tokens, total / max(words, 1)


def greedy(model, vocab, prime, length, backend):
    """The ``length`` token ids after ``prime``, each the argmax of the model's prediction."""
    model.eval()
    ids = backend.asarray(vocab.encode(prime).reshape(-1, 1))
    logits, state = model.forward(ids)
    out, rng = [], np.random.default_rng(0)               # argmax draws nothing
    for _ in range(length):
        row = backend.asnumpy(logits[-1, 0]).astype(np.float64)
        row[vocab.pad_id] = -np.inf                       # padding is never generated
        token = choose_next(row, "argmax", rng)
        out.append(token)
        logits, state = model.forward(backend.asarray([[token]]), state)
    model.train()
    return out


def distinct_word_share(ids, is_word):
    """Distinct word tokens / word tokens of a sample (token ids, not decoded text, so a
    run of tokens that decodes to one glued word still counts as many): low when greedy
    decoding loops. A sample without a single word token (only spaces and punctuation)
    is scored over all its tokens instead."""
    words = [i for i in ids if is_word[i]] or list(ids)
    return len(set(words)) / len(words) if words else float("nan")


# %% [markdown]
# ## The three models

# %%
def build_models(V, hidden, attn_length, seed, backend):
    """name -> SequenceModel; all share the embedding size √V and the head onto V tokens."""
    common = dict(embedding_size=max(2, round(V ** 0.5)), hidden_size=hidden,
                  return_sequences=True, backend=backend, seed=seed, forget_bias=1.0)
    return {
        "LSTM 1 layer": SequenceModel.for_tokens(V, "lstm", num_layers=1, **common),
        "LSTM 2 layers": SequenceModel.for_tokens(V, "lstm", num_layers=2, **common),
        f"LSTM 2 layers + attention K={attn_length}": SequenceModel.for_tokens(
            V, "lstm", num_layers=2, attn_length=attn_length, **common),
    }


def run_all(models, train_ids, val_ids, is_word, vocab, steps, lr, seed, backend, gen_len):
    """name -> dict(curve [(step, train loss, val/token, val/word)], cpu, params, sample)."""
    results = {}
    every = max(1, steps // 8)
    for name, model in models.items():
        curve = [(0, float("nan"), *score(model, val_ids, is_word, backend))]
        cpu = 0.0
        for step, train_loss, cpu in train(model, train_ids, steps, lr, seed, backend, every):  # noqa: B007 (the last cpu is kept)
            curve.append((step, train_loss, *score(model, val_ids, is_word, backend)))
        ids = greedy(model, vocab, PRIME, gen_len, backend)
        params = int(sum(p.size for p in model.params.values()))
        results[name] = dict(curve=curve, cpu=cpu, params=params, ids=ids, seed=seed,
                             sample=vocab.decode(ids))
        print(f"{name:30s} {params:>9,} params  {cpu:6.1f} CPU s  val {curve[-1][2]:.3f} "
              f"nats/token, {curve[-1][3]:.3f} nats/word", flush=True)
    return results


# %% [markdown]
# ## The figure: losses and greedy samples side by side

# %%
def plot(results, steps):
    """results: name -> list over seeds. Val loss per word (mean ± sd) and the first
    seed's greedy samples."""
    names = list(results)
    fig = lessonkit.new_figure(13.0, 5.0)
    grid = fig.add_gridspec(len(names), 2, width_ratios=(1.0, 1.3))
    ax = fig.add_subplot(grid[:, 0])
    for name in names:
        runs = results[name]
        x = np.array(runs[0]["curve"])[1:, 0]
        words = [np.array(r["curve"])[1:, 3] for r in runs]
        final = [w[-1] for w in words]
        lessonkit.band(ax, x, words, f"{name}: {lessonkit.pm(final, 2)}", marker="o", ms=3)
    untrained = np.mean([r["curve"][0][3] for n in names for r in results[n]])
    ax.set_title(f"untrained: {untrained:.1f} nats per word (off the scale)", fontsize=9)
    ax.set_xlabel(f"RMSProp updates ({SEQ_LEN} x {BATCH} tokens each)")
    ax.set_ylabel("validation loss (nats per word)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    for k, name in enumerate(names):
        t = fig.add_subplot(grid[k, 1])
        t.set_axis_off()
        r = results[name][0]
        _, _, tok, word = r["curve"][-1]
        shown = (PRIME + r["sample"]).replace("\n", " ↵ ")
        t.text(0.0, 1.0, f"{name}, seed {r['seed']}: val {tok:.2f} nats/token, {word:.2f} "
               "nats/word; greedy:\n" + "\n".join(textwrap.wrap(shown, 90)[:5]),
               va="top", ha="left", family="DejaVu Sans Mono", fontsize=8)
    fig.tight_layout()
    return L.figure(fig, "losses")


def write_markdown(results):
    """The table of losses (mean ± sd over seeds) and the first seed's samples, as markdown."""
    lines = ["| model | parameters | CPU s per seed | val nats/token | val nats/word |",
             "|---|---|---|---|---|"]
    for name, runs in results.items():
        tok = [r["curve"][-1][2] for r in runs]
        word = [r["curve"][-1][3] for r in runs]
        lines.append(f"| {name} | {runs[0]['params']:,} | "
                     f"{np.mean([r['cpu'] for r in runs]):.0f} | {lessonkit.pm(tok)} | "
                     f"{lessonkit.pm(word)} |")
    lines.append("")
    for name, runs in results.items():
        lines += [f"**{name}**, seed {runs[0]['seed']}, greedy:", "", "```",
                  (PRIME + runs[0]["sample"]).rstrip(), "```", ""]
    return L.text_file("samples.md", "\n".join(lines))


# %% [markdown]
# ## Run it, and the questions

# %%
def main(L):
    P = L.P
    K = P.attn_length
    vocab, train_ids, val_ids, is_word = load_words(90_000 if P.quick else None, P.vocab_size)
    if P.quick:
        val_ids = val_ids[:2 * BATCH * SEQ_LEN + 1]
    print(f"{len(vocab)} tokens in the vocabulary; {len(train_ids):,} train, {len(val_ids):,} val "
          f"tokens ({int(is_word[val_ids].sum()):,} val words)")
    results = {}
    for s in L.seeds:
        models = build_models(len(vocab), P.hidden, K, s, L.backend)
        for name, r in run_all(models, train_ids, val_ids, is_word, vocab, P.steps, P.lr, s,
                               L.backend, 12 if P.quick else 40).items():
            results.setdefault(name, []).append(r)
    plot(results, P.steps)
    write_markdown(results)
    for name, runs in results.items():
        print(f"----- {name}, seed {runs[0]['seed']}, greedy -----\n{PRIME}{runs[0]['sample']}")

    names = list(results)
    pm = lessonkit.pm
    word = {n: [r["curve"][-1][3] for r in runs] for n, runs in results.items()}
    token = {n: [r["curve"][-1][2] for r in runs] for n, runs in results.items()}
    first = [r["curve"][0][3] for r in results[names[0]]]
    held, how = lessonkit.compare(word[names[0]], first)
    L.answer("Does the hackathon's one-layer word LSTM learn with RMSProp?",
             f"val loss {pm(first, 2)} -> {pm(word[names[0]], 2)} nats per word "
             f"({pm(token[names[0]], 2)} nats per token) in {P.steps} updates over {P.seeds} "
             f"seeds; uniform guessing would be {np.log(len(vocab)):.2f} nats per token; "
             f"{lessonkit.verdict(held)} (lower than untrained in every seed).", held)
    two, att = names[1], names[2]
    _, how = lessonkit.compare(word[att], word[two])
    cpu = {n: np.mean([r["cpu"] for r in runs]) for n, runs in results.items()}
    L.answer(f"Did attention over the last {K} outputs help at this budget?",
             f"2-layer LSTM {pm(word[two])} vs with attention {pm(word[att])} nats per word after "
             f"{P.steps} updates each: attention is {how}; it has "
             f"{results[att][0]['params']:,} parameters against {results[two][0]['params']:,} "
             f"and took {cpu[att]:.0f} against {cpu[two]:.0f} CPU s per seed (the hackathon "
             "leaves this model untrained, so there is no result to expect).")
    shares = {n: [distinct_word_share(r["ids"], is_word) for r in runs]
              for n, runs in results.items()}
    wordless = sum(not any(is_word[i] for i in r["ids"]) for runs in results.values()
                   for r in runs)
    loops = all(v < 0.9 for vals in shares.values() for v in vals)
    L.answer("What does greedy (argmax) generation produce?",
             "distinct word tokens / word tokens in each greedy sample (counted on token ids), "
             "mean ± sd over seeds: " + "; ".join(
                 f"{n} {pm([100 * v for v in vals], 0)}%" for n, vals in shares.items())
             + (f" ({wordless} sample(s) held no word at all and are scored over all their "
                "tokens)" if wordless else "")
             + f"; {lessonkit.verdict(loops)} (argmax decoding falls into loops: under 90% "
             "distinct in every sample).", loops)


# %%
L.run(main)
