"""fast.ai lesson 6 with scratchrnn: character models from 3 characters to stateful sequences.

On a slice of the ``python-docs`` corpus: the 3-character model; the unrolled 8-character
many-to-one model; returning sequences (a prediction at every step); one-hot inputs vs a
learned embedding; the identity-initialised ReLU RNN (IRNN) vs tanh; stateful vs
stateless; the cross-entropy gradient through softmax's full Jacobian vs the p − y
shortcut; the GRU written with separate per-gate weights vs the fused weights. Ends with
a table of the validation losses.
"""
# %% [markdown]
# # fast.ai lesson 6: recurrent character models, step by step
#
# Every model here reads characters of Python's reference-manual prose (the embedded
# ``python-docs`` corpus, a slice) and predicts the next character. They are built from
# the same parts (``SequenceModel``: embedding or one-hot -> recurrent layer -> head ->
# softmax cross-entropy) and trained the same way (Adam, gradient-norm clipping at 5,
# the same number of updates of 64 windows each), so their validation losses can be
# compared. Losses are in nats per character (ln 2 = 0.69 nats is one bit).

# %%
import sys
import time
import timeit

from scratchrnn.blocks import gru_weights

from scratchrnn.book import ops
from scratchrnn.core.backend import CPU
from scratchrnn.book.batching import BatchStream, split_ids
from scratchrnn.lm.corpora import load_corpus
from scratchrnn.core.errors import TrainingDiverged
from scratchrnn.blocks.heads import cross_entropy_backward_full_jacobian, softmax_cross_entropy
from scratchrnn.blocks.layers import GRU
from scratchrnn.lessons import lesson_parser, run_lesson
from scratchrnn.book.optim import clip_grad_norm, make_optimizer
from scratchrnn.blocks.sequence_model import SequenceModel
from scratchrnn.core.validation import positive_int
from scratchrnn.lm.vocab import Vocab

np = CPU.xp            # host arrays: results and figures

BATCH = 64
EMBED = 42             # the lesson's embedding size ("n_fac")


def load_text(chars):
    """The first ``chars`` characters of python-docs, its vocabulary, and (train, val) ids."""
    text = load_corpus("python-docs", max_chars=chars)
    vocab = Vocab.build(text, "char")
    ids = np.asarray(vocab.encode(text), dtype=np.int64)
    train, val, _ = split_ids(ids, (0.9, 0.1, 0.0))
    return vocab, train, val


# %% [markdown]
# ## Windows, training and evaluation
#
# A ``BatchStream`` cuts the text into windows of T characters, time-major (T, B):
# ``x`` the characters, ``y`` the same shifted by one. The **many-to-one** models of
# the lesson's first half read a window and predict only the character after it,
# ``y[-1]``, from the last state (``return_sequences=False``); the **many-to-many**
# models predict ``y[t]`` at every step. Shuffled windows are independent, so each
# starts from a zero state (stateless); in order, window w+1 continues where window w
# stopped and a **stateful** model carries its final state over (without gradient).

# %%
def targets_for(model, batch):
    """The many-to-one target y[-1] (B,) or the many-to-many targets y (T, B)."""
    return batch.y if model.head.return_sequences else batch.y[-1]


def fit(model, stream, updates, lr=3e-3, max_norm=5.0):
    """Adam on ``updates`` windows of ``stream``; returns the training loss of each update.

    A stateful model restarts from zeros where the stream says so (the start of an epoch).
    """
    opt = make_optimizer("adam", lr)
    losses = []
    for _ in range(updates):
        batch = stream.next_batch()
        if batch.reset:
            model.reset_state()
        model.zero_grad()
        loss, _ = model.loss(batch.x, targets_for(model, batch))
        if not np.isfinite(loss):
            raise TrainingDiverged(f"the training loss became {loss}.")
        model.backward()
        clip_grad_norm(model.grads, max_norm)
        opt.step(model.params, model.grads)
        losses.append(loss)
    return np.array(losses)


def evaluate(model, ids, seq_len, backend):
    """Validation losses over one in-order pass: (mean over every predicted position, or
    None for a many-to-one model; mean at the last position of each window)."""
    stream = BatchStream(ids, BATCH, seq_len, backend=backend)
    model.eval()
    model.reset_state()
    every, last = [], []
    for batch in stream:
        out, _ = model.forward(batch.x)
        if model.head.return_sequences:
            every.append(softmax_cross_entropy(out, batch.y)[0])
            last.append(softmax_cross_entropy(out[-1], batch.y[-1])[0])
        else:
            last.append(softmax_cross_entropy(out, batch.y[-1])[0])
    model.train()
    model.reset_state()
    return (float(np.mean(every)) if every else None), float(np.mean(last))


# %% [markdown]
# ## The models
#
# | name | window | readout | input | cell |
# |---|---|---|---|---|
# | 3-char | 3 | many-to-one | embedding 42 | tanh RNN |
# | 8-char | 8 | many-to-one | embedding 42 | IRNN (ReLU, W_h = I) |
# | 8-char seq | 8 | many-to-many | embedding 42 | IRNN |
# | 8-char seq one-hot | 8 | many-to-many | one-hot (V) | IRNN |
# | 8-char seq tanh | 8 | many-to-many | embedding 42 | tanh RNN |
# | LSTM stateless / stateful | 8, in order | many-to-many | embedding 42 | LSTM |
# | GRU | 8 | many-to-many | embedding 42 | GRU (fused weights) |

# %%
def model_specs(hidden):
    """name -> (window, SequenceModel.for_tokens options, stream shuffled?)."""
    irnn = dict(cell="rnn", nonlinearity="relu", identity_init=True)
    return {
        "3-char": (3, dict(cell="rnn", embedding_size=EMBED, return_sequences=False), True),
        "8-char": (8, dict(irnn, embedding_size=EMBED, return_sequences=False), True),
        "8-char seq": (8, dict(irnn, embedding_size=EMBED), True),
        "8-char seq one-hot": (8, dict(irnn, embedding_size=0), True),
        "8-char seq tanh": (8, dict(cell="rnn", embedding_size=EMBED), True),
        "LSTM stateless": (8, dict(cell="lstm", embedding_size=EMBED, forget_bias=1.0), False),
        "LSTM stateful": (8, dict(cell="lstm", embedding_size=EMBED, forget_bias=1.0,
                                  stateful=True), False),
        "GRU": (8, dict(cell="gru", embedding_size=EMBED), True),
    }


def train_all(vocab, train, val, hidden, updates, seed, backend):
    """name -> dict(model, curve, val_all, val_last, seconds)."""
    results = {}
    for name, (T, options, shuffle) in model_specs(hidden).items():
        t0 = time.perf_counter()
        model = SequenceModel.for_tokens(len(vocab), hidden_size=hidden, backend=backend,
                                         seed=seed, **options)
        stream = BatchStream(train, BATCH, T, shuffle=shuffle, seed=seed, backend=backend)
        try:
            curve = fit(model, stream, updates)
            val_all, val_last = evaluate(model, val, T, backend)
        except TrainingDiverged:
            curve, val_all, val_last = np.array([]), float("inf"), float("inf")
        results[name] = dict(model=model, curve=curve, val_all=val_all, val_last=val_last,
                             seconds=time.perf_counter() - t0, window=T)
        shown = "-" if val_all is None else f"{val_all:.3f}"
        print(f"{name:20s} val loss all positions {shown:>6s}, last position "
              f"{val_last:.3f}  ({results[name]['seconds']:.1f} s)", flush=True)
    return results


# %% [markdown]
# ## The softmax Jacobian vs the p − y shortcut
#
# The lesson's pure-NumPy RNN takes the loss gradient the long way: the derivative of
# −log p_y with respect to p, then through softmax's (V, V) Jacobian diag(p) − p pᵀ.
# Multiplied out, that is p − onehot(y). We compare both on the logits of a real
# validation batch (float64) and time them.

# %%
def jacobian_vs_shortcut(model, val, backend, repeats):
    """Largest difference between the two gradients, and seconds per call of each."""
    stream = BatchStream(val, BATCH, 8, backend=backend)
    batch = stream.next_batch()
    model.eval()
    out, _ = model.forward(batch.x)
    model.train()
    logits = out.reshape(-1, out.shape[-1]).astype("float64")             # (T*B, V)
    targets = batch.y.reshape(-1)
    p = ops.softmax(logits)
    long_way = cross_entropy_backward_full_jacobian(p, targets)
    shortcut = ops.cross_entropy_backward(p, targets)
    diff = float(abs(backend.asnumpy(long_way - shortcut)).max())
    t_long, t_short = interleaved_best(
        (lambda: cross_entropy_backward_full_jacobian(p, targets),
         lambda: ops.cross_entropy_backward(p, targets)), repeats, backend)
    return diff, t_long, t_short, p.shape


def interleaved_best(functions, rounds, backend):
    """Best seconds per call of each function, timed in alternating rounds (so a busy
    moment of a shared machine does not fall on one of them only)."""
    best = [float("inf")] * len(functions)
    for _ in range(rounds):
        for i, fn in enumerate(functions):
            t0 = timeit.default_timer()
            fn()
            backend.synchronize()
            best[i] = min(best[i], timeit.default_timer() - t0)
    return best


# %% [markdown]
# ## The GRU with separate vs combined weights
#
# The lesson writes the GRU first with a weight matrix per gate, then with the
# matrices side by side so one product serves all three gates. ``gru_weights`` cuts the
# trained GRU's fused (I, 3H)/(H, 3H) weights into per-gate matrices; we run the
# per-gate step over a validation batch and the fused layer (its step-by-step
# "textbook" engine, so only the weight layout differs), in float64, and compare the
# outputs, the gradients (per-gate gradients fused back) and the time (with, for scale,
# the fused layer on the default engine that training uses).

# %%
def separate_vs_combined(model, val, backend, repeats):
    """(largest output difference, largest gradient difference, seconds per forward +
    backward: per-gate, fused textbook, fused on the default engine)."""
    stream = BatchStream(val, BATCH, 8, backend=backend)
    batch = stream.next_batch()
    trained = model.rnn.layer_params(0)
    H = model.rnn.hidden_size
    fused = GRU(model.rnn.input_size, H, backend=backend, dtype="float64", engine="textbook")
    engine = GRU(model.rnn.input_size, H, backend=backend, dtype="float64")   # default engine
    for name, value in trained.items():
        fused.params[f"l0.{name}"][...] = value.astype("float64")
        engine.params[f"l0.{name}"][...] = value.astype("float64")
    gates = gru_weights.split_gru_params(fused.layer_params(0))
    xs = model.embed.forward(batch.x).astype("float64")                 # (T, B, E)
    h0 = fused.xp.zeros((xs.shape[1], H), dtype="float64")
    dhs = fused.backend.asarray(np.random.default_rng(0).normal(size=xs.shape[:2] + (H,)),
                                dtype="float64")

    def per_gate():
        hs, hT, caches = gru_weights.forward(gates, xs, h0)
        return hs, gru_weights.backward(gates, dhs, fused.xp.zeros_like(h0), caches)

    def combined(layer=fused):
        layer.zero_grad()
        hs, _ = layer.forward(xs)
        return hs, layer.backward(dhs)

    hs_sep, (dxs_sep, _, grads_sep) = per_gate()
    hs_fused, (dxs_fused, _) = combined()
    out_diff = float(abs(backend.asnumpy(hs_sep - hs_fused)).max())
    regrouped = gru_weights.fuse_gru_params(grads_sep)
    grad_diff = max(float(abs(backend.asnumpy(regrouped[n] - fused.grads[f"l0.{n}"])).max())
                    for n in regrouped)
    grad_diff = max(grad_diff, float(abs(backend.asnumpy(dxs_sep - dxs_fused)).max()))
    t_sep, t_fused, t_engine = interleaved_best((per_gate, combined, lambda: combined(engine)),
                                                repeats, backend)
    return out_diff, grad_diff, t_sep, t_fused, t_engine


# %% [markdown]
# ## The figures and the table

# %%
def plot_results(results, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(14, 4.6))
    for name, r in results.items():
        c = r["curve"]
        if c.size:
            k = max(1, c.size // 25)
            smooth = np.convolve(c, np.ones(k) / k, mode="valid")
            ax1.plot(np.arange(smooth.size) + k, smooth, label=name, lw=1.2)
    ax1.set_xlabel("update (64 windows each)")
    ax1.set_ylabel("training loss (nats/char, running mean)")
    ax1.grid(alpha=0.3)
    ax1.legend(fontsize=8)
    names = list(results)
    y = np.arange(len(names))
    last = [results[n]["val_last"] for n in names]
    every = [results[n]["val_all"] if results[n]["val_all"] is not None else np.nan
             for n in names]
    ax2.barh(y - 0.2, last, height=0.4, label="last position of the window")
    ax2.barh(y + 0.2, every, height=0.4, label="every position (many-to-many)")
    for yi, a, b in zip(y, last, every):
        ax2.text(a, yi - 0.2, f" {a:.3f}", va="center", fontsize=7)
        if np.isfinite(b):
            ax2.text(b, yi + 0.2, f" {b:.3f}", va="center", fontsize=7)
    ax2.set_yticks(y)
    ax2.set_yticklabels(names, fontsize=8)
    ax2.invert_yaxis()
    ax2.set_xlabel("validation loss (nats/char)")
    ax2.set_xlim(0, np.nanmax(last + every) * 1.15)
    ax2.legend(fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2)
    ax2.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def loss_table(results):
    """The validation losses as a markdown table."""
    rows = ["| model | window | val loss, last position | val loss, every position "
            "| final train loss | seconds |", "|---|---|---|---|---|---|"]
    for name, r in results.items():
        every = "-" if r["val_all"] is None else f"{r['val_all']:.3f}"
        train = f"{r['curve'][-50:].mean():.3f}" if r["curve"].size else "diverged"
        rows.append(f"| {name} | {r['window']} | {r['val_last']:.3f} | {every} | {train} "
                    f"| {r['seconds']:.1f} |")
    return "\n".join(rows)


# %% [markdown]
# ## Run it, and the questions

# %%
def main(args, backend, answers):
    chars = positive_int("--chars", args.chars) if args.chars else (
        12_000 if args.quick else 150_000)
    updates = positive_int("--updates", args.updates) if args.updates else (
        8 if args.quick else 2000)
    hidden = 16 if args.quick else 128
    vocab, train, val = load_text(chars)
    print(f"python-docs slice: {chars} characters, {len(vocab)} distinct; "
          f"{train.size} train / {val.size} validation; {updates} updates of {BATCH} per model")
    results = train_all(vocab, train, val, hidden, updates, args.seed, backend)
    table = loss_table(results)
    print(table)
    with open(f"{args.out}/fastai_lesson6_losses.md", "w", encoding="utf-8") as f:
        f.write(table + "\n")
    plot_results(results, f"{args.out}/fastai_lesson6_losses.png")

    repeats = 3 if args.quick else 20
    diff, t_long, t_short, shape = jacobian_vs_shortcut(results["8-char seq"]["model"], val,
                                                        backend, repeats)
    out_diff, grad_diff, t_sep, t_fused, t_engine = separate_vs_combined(
        results["GRU"]["model"], val, backend, repeats)
    print(f"softmax Jacobian vs shortcut: max difference {diff:.2e}; {t_long * 1e3:.3f} ms vs "
          f"{t_short * 1e3:.3f} ms for {shape[0]} rows of {shape[1]}")
    print(f"GRU separate vs combined: outputs differ by {out_diff:.2e}, gradients by "
          f"{grad_diff:.2e}; {t_sep * 1e3:.2f} ms vs {t_fused * 1e3:.2f} ms per forward+backward "
          f"({t_engine * 1e3:.2f} ms on the default engine)")

    r = results
    uniform = float(np.log(len(vocab)))
    answers.add("The 3-char model: how well does it predict the 4th character?",
                f"validation loss {r['3-char']['val_last']:.3f} nats/char "
                f"(uniform guessing over {len(vocab)} characters: {uniform:.3f}).",
                r["3-char"]["val_last"] < uniform)
    answers.add("Does the unrolled 8-char model beat the 3-char model (more context)?",
                f"next-character validation loss {r['8-char']['val_last']:.3f} with 8 characters "
                f"vs {r['3-char']['val_last']:.3f} with 3 (final training loss "
                f"{r['8-char']['curve'][-50:].mean():.3f} vs "
                f"{r['3-char']['curve'][-50:].mean():.3f}; "
                f"the training text holds {train.size // 8} windows of 8 and {train.size // 3} "
                f"of 3, so {updates} updates of {BATCH} are {updates * BATCH * 8 / train.size:.1f} "
                f"and {updates * BATCH * 3 / train.size:.1f} epochs: a gap between training and "
                f"validation loss is overfitting).",
                r["8-char"]["val_last"] < r["3-char"]["val_last"])
    answers.add("Returning sequences: what does a prediction at every step buy?",
                f"at the last position (same context as the many-to-one model) "
                f"{r['8-char seq']['val_last']:.3f} vs {r['8-char']['val_last']:.3f} many-to-one "
                f"after the same {updates} updates (8 targets per window instead of 1); over "
                f"every position {r['8-char seq']['val_all']:.3f} (early positions see less "
                f"context).", r["8-char seq"]["val_last"] < r["8-char"]["val_last"])
    answers.add("One-hot vs embedding inputs?",
                f"every-position loss: one-hot {r['8-char seq one-hot']['val_all']:.3f}, "
                f"embedding {EMBED} {r['8-char seq']['val_all']:.3f} "
                f"({r['8-char seq one-hot']['seconds']:.1f} s vs "
                f"{r['8-char seq']['seconds']:.1f} s to train).", None)
    answers.add("IRNN (ReLU, identity init) vs tanh?",
                f"every-position loss: IRNN {r['8-char seq']['val_all']:.3f}, tanh "
                f"{r['8-char seq tanh']['val_all']:.3f}.", None)
    answers.add("Stateful vs stateless (the same in-order windows, LSTM)?",
                f"every-position loss: stateful {r['LSTM stateful']['val_all']:.3f}, stateless "
                f"{r['LSTM stateless']['val_all']:.3f}; at the last position "
                f"{r['LSTM stateful']['val_last']:.3f} vs {r['LSTM stateless']['val_last']:.3f} "
                f"(a stateful model's first positions see the previous window).",
                r["LSTM stateful"]["val_all"] < r["LSTM stateless"]["val_all"])
    answers.add("Is the gradient through softmax's full Jacobian the p - y shortcut?",
                f"largest difference {diff:.2e} on {shape[0]} rows x {shape[1]} classes "
                f"(float64); the Jacobian way takes {t_long * 1e3:.3f} ms, the shortcut "
                f"{t_short * 1e3:.3f} ms (x{t_long / t_short:.0f}).",
                diff < 1e-12 and t_long > t_short)
    answers.add("GRU with separate vs combined weights: is it the same model?",
                f"outputs differ by {out_diff:.2e}, gradients by {grad_diff:.2e} (float64, "
                f"the trained GRU's weights on a validation batch).",
                out_diff < 1e-10 and grad_diff < 1e-10)
    answers.add("Are the combined weights faster (the lesson's claim)?",
                f"forward + backward over a batch of {BATCH} x 8: per-gate {t_sep * 1e3:.2f} ms, "
                f"fused {t_fused * 1e3:.2f} ms (x{t_sep / t_fused:.2f}), both stepping in Python; "
                f"the fused layer on its default engine ({results['GRU']['model'].rnn.engine}) "
                f"{t_engine * 1e3:.2f} ms (best of {repeats} interleaved rounds; "
                f"a shared machine).",
                t_fused < t_sep)
    best = min(r, key=lambda n: r[n]["val_last"])
    answers.add("Which model has the lowest validation loss at the last position?",
                f"{best}: {r[best]['val_last']:.3f} nats/char; the whole table is in "
                f"fastai_lesson6_losses.md beside the figure.", None)


# %%
def build_parser():
    p = lesson_parser("fastai_lesson6.py", __doc__)
    p.add_argument("--chars", type=int, default=0,
                   help="characters of python-docs to use (default 150000; 12000 with --quick)")
    p.add_argument("--updates", type=int, default=0,
                   help="training updates per model (default 2000; 8 with --quick)")
    return p


if __name__ == "__main__":
    sys.exit(run_lesson(main, __doc__, parser=build_parser()))
