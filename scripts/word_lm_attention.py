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

# %%
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")     # one thread: CPU seconds = compute used
os.environ.setdefault("OMP_NUM_THREADS", "1")

import re                                              # noqa: E402
import sys                                             # noqa: E402
import textwrap                                        # noqa: E402
import time                                            # noqa: E402

from scratchrnn.analysis.plots import new_figure, save_png    # noqa: E402
from scratchrnn.core.backend import CPU                     # noqa: E402
from scratchrnn.book.batching import BatchStream, split_ids        # noqa: E402
from scratchrnn.lm.corpora import load_corpus             # noqa: E402
from scratchrnn.core.errors import TrainingDiverged         # noqa: E402
from scratchrnn.lessons import lesson_parser, run_lesson      # noqa: E402
from scratchrnn.book.optim import clip_grad_norm, make_optimizer   # noqa: E402
from scratchrnn.lm.sample import choose_next              # noqa: E402
from scratchrnn.blocks.sequence_model import SequenceModel    # noqa: E402
from scratchrnn.core.validation import positive_float, positive_int         # noqa: E402
from scratchrnn.lm.vocab import Vocab                     # noqa: E402

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
    """``length`` tokens after ``prime``, each the argmax of the model's prediction."""
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
    return vocab.decode(out)


def distinct_word_share(text):
    """Distinct words / words of a sample: low when greedy decoding loops."""
    words = re.findall(r"\w+", text)
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
        cpu = 0.0                   # the CPU seconds so far, as of the last evaluation
        for step, train_loss, cpu_so_far in train(model, train_ids, steps, lr, seed, backend, every):
            curve.append((step, train_loss, *score(model, val_ids, is_word, backend)))
            cpu = cpu_so_far
        sample = greedy(model, vocab, PRIME, gen_len, backend)
        params = int(sum(p.size for p in model.params.values()))
        results[name] = dict(curve=curve, cpu=cpu, params=params, sample=sample)
        print(f"{name:30s} {params:>9,} params  {cpu:6.1f} CPU s  val {curve[-1][2]:.3f} "
              f"nats/token, {curve[-1][3]:.3f} nats/word", flush=True)
    return results


# %% [markdown]
# ## The figure: losses and greedy samples side by side

# %%
def plot(results, steps, path):
    names = list(results)
    fig = new_figure(13.0, 5.0)
    grid = fig.add_gridspec(len(names), 2, width_ratios=(1.0, 1.3))
    ax = fig.add_subplot(grid[:, 0])
    for name in names:
        c = np.array(results[name]["curve"])
        ax.plot(c[1:, 0], c[1:, 3], marker="o", ms=3,
                label=f"{name}: {c[-1, 3]:.2f} ({results[name]['cpu']:.0f} CPU s)")
    untrained = np.mean([results[n]["curve"][0][3] for n in names])
    ax.set_title(f"untrained: {untrained:.1f} nats per word (off the scale)", fontsize=9)
    ax.set_xlabel(f"RMSProp updates ({SEQ_LEN} x {BATCH} tokens each)")
    ax.set_ylabel("validation loss (nats per word)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    for k, name in enumerate(names):
        t = fig.add_subplot(grid[k, 1])
        t.set_axis_off()
        _, _, tok, word = results[name]["curve"][-1]
        shown = (PRIME + results[name]["sample"]).replace("\n", " ↵ ")
        t.text(0.0, 1.0, f"{name}: val {tok:.2f} nats/token, {word:.2f} nats/word; greedy:\n"
               + "\n".join(textwrap.wrap(shown, 90)[:5]),
               va="top", ha="left", family="DejaVu Sans Mono", fontsize=8)
    fig.tight_layout()
    return save_png(fig, path)


def write_markdown(results, path):
    """The table of losses and the samples, as markdown beside the figure."""
    lines = ["| model | parameters | CPU s | val nats/token | val nats/word |", "|---|---|---|---|---|"]
    for name, r in results.items():
        _, _, tok, word = r["curve"][-1]
        lines.append(f"| {name} | {r['params']:,} | {r['cpu']:.0f} | {tok:.3f} | {word:.3f} |")
    lines.append("")
    for name, r in results.items():
        lines += [f"**{name}**, greedy:", "", "```", (PRIME + r["sample"]).rstrip(), "```", ""]
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    return path


# %% [markdown]
# ## Run it, and the questions

# %%
def main(args, backend, answers):
    steps = positive_int("--steps", args.steps) if args.steps else (6 if args.quick else 640)
    K = positive_int("--attn-length", args.attn_length)
    lr = positive_float("--lr", args.lr)
    hidden = 16 if args.quick else 128
    vocab, train_ids, val_ids, is_word = load_words(90_000 if args.quick else None,
                                                    300 if args.quick else 2000)
    if args.quick:
        val_ids = val_ids[:2 * BATCH * SEQ_LEN + 1]
    print(f"{len(vocab)} tokens in the vocabulary; {len(train_ids):,} train, {len(val_ids):,} val "
          f"tokens ({int(is_word[val_ids].sum()):,} val words)")
    models = build_models(len(vocab), hidden, K, args.seed, backend)
    t0 = time.perf_counter()
    results = run_all(models, train_ids, val_ids, is_word, vocab, steps, lr, args.seed,
                      backend, 12 if args.quick else 40)
    figure = plot(results, steps, os.path.join(args.out, "word_lm_attention.png"))
    table = write_markdown(results, os.path.join(args.out, "word_lm_attention.md"))
    print(f"figure: {figure}; table and samples: {table} ({time.perf_counter() - t0:.1f} s)")
    for name, r in results.items():
        print(f"----- {name}, greedy -----\n{PRIME}{r['sample']}")

    names = list(results)
    one, two, att = (results[n] for n in names)
    word = {n: r["curve"][-1][3] for n, r in results.items()}
    first = one["curve"][0][3]
    answers.add("Does the hackathon's one-layer word LSTM learn with RMSProp?",
                f"val loss {first:.2f} -> {word[names[0]]:.2f} nats per word "
                f"({one['curve'][-1][2]:.2f} nats per token) in {steps} updates "
                f"({one['cpu']:.0f} CPU s); uniform guessing would be "
                f"{np.log(len(vocab)):.2f} nats per token.",
                bool(word[names[0]] < first))
    gain = word[names[1]] - word[names[2]]
    answers.add(f"Did attention over the last {K} outputs help at this budget?",
                f"2-layer LSTM {word[names[1]]:.3f} vs with attention {word[names[2]]:.3f} nats "
                f"per word after {steps} updates each ({'better' if gain > 0 else 'worse'} by "
                f"{abs(gain):.3f}); the attention model has {att['params']:,} parameters against "
                f"{two['params']:,} and took {att['cpu']:.0f} against {two['cpu']:.0f} CPU s "
                "(the hackathon leaves this model untrained, so there is no result to expect).",
                None)
    shares = {n: distinct_word_share(r["sample"]) for n, r in results.items()}
    answers.add("What does greedy (argmax) generation produce?",
                "distinct words / words in each greedy sample: " + "; ".join(
                    f"{n} " + (f"{s:.0%}" if np.isfinite(s) else "no words at all")
                    for n, s in shares.items())
                + ". Expected: argmax decoding falls into loops (well under 100% distinct).",
                bool(all(s < 0.9 for s in shares.values()))
                if all(np.isfinite(s) for s in shares.values()) else None)


# %%
def build_parser():
    p = lesson_parser("word_lm_attention.py", __doc__)
    p.add_argument("--steps", type=int, default=0,
                   help="RMSProp updates per model (default 640; 6 with --quick)")
    p.add_argument("--attn-length", type=int, default=4,
                   help="K, how many past outputs the attention reads (default 4)")
    p.add_argument("--lr", type=float, default=1e-3,
                   help="RMSProp learning rate of every model (default 1e-3)")
    return p


if __name__ == "__main__":
    sys.exit(run_lesson(main, __doc__, parser=build_parser()))
