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

# %% [markdown]
# ## Parameters
#
# Change them here in a notebook; from a terminal, ``python scripts/fastai_lesson6.py
# --quick --updates 500`` overrides them. ``None`` means the default of the mode.

# %% tags=["parameters"]
quick = False       # True: tiny sizes, the whole lesson in seconds
seeds = None        # seeds per model (None: 3; 2 with quick)
seed = 0            # the first seed
chars = None        # characters of python-docs used (None: 600000; 12000 with quick)
updates = None      # Adam updates per model (None: 2500; 8 with quick)
hidden = None       # hidden units (None: 64; 16 with quick)
backend = "numpy"   # numpy | cupy | auto
out = None          # output folder (None: a new lessons-out/fastai_lesson6/run-N here)
replace = False     # let ``out`` overwrite this lesson's earlier outputs there

# %%
import lessonkit
from lessonkit import Param

SPEC = {                       # the settings above: kind, full-run value, quick value
    "chars": Param("int", 600_000, 12_000, low=2000, help="characters of python-docs to use"),
    "updates": Param("int", 2500, 8, help="Adam updates (of 64 windows) per model"),
    "hidden": Param("int", 64, 16, help="hidden units of every model"),
}
L = lessonkit.start("fastai_lesson6", globals(), SPEC)

# %%
import time  # noqa: E402
import timeit  # noqa: E402

from scratchrnn import gru_weights, ops  # noqa: E402
from scratchrnn.blocks.heads import cross_entropy_backward_full_jacobian, softmax_cross_entropy  # noqa: E402,E501
from scratchrnn.blocks.layers import GRU  # noqa: E402
from scratchrnn.blocks.sequence_model import SequenceModel  # noqa: E402
from scratchrnn.book.batching import BatchStream, split_ids  # noqa: E402
from scratchrnn.book.optim import clip_grad_norm, make_optimizer  # noqa: E402
from scratchrnn.core.backend import CPU  # noqa: E402
from scratchrnn.core.errors import TrainingDiverged  # noqa: E402
from scratchrnn.lm.corpora import load_corpus  # noqa: E402
from scratchrnn.lm.vocab import Vocab  # noqa: E402

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
# | 8-char | 8 | many-to-one | embedding 42 | tanh RNN |
# | 8-char seq | 8 | many-to-many | embedding 42 | tanh RNN |
# | 8-char seq one-hot | 8 | many-to-many | one-hot (V) | tanh RNN |
# | 8-char seq IRNN | 8 | many-to-many | embedding 42 | IRNN (ReLU, W_h = I) |
# | LSTM stateless / stateful | 8, in order | many-to-many | embedding 42 | LSTM |
# | GRU | 8 | many-to-many | embedding 42 | GRU (fused weights) |
#
# Each comparison changes one thing: 3-char vs 8-char only the window (more context),
# 8-char vs 8-char seq only the readout, and so on. A many-to-one model gets one target per
# window, so the text is long enough (600 000 characters) that no model runs out of fresh
# windows: every model sees each training window about once or twice.

# %%
def model_specs(hidden):
    """name -> (window, SequenceModel.for_tokens options, stream shuffled?)."""
    irnn = dict(cell="rnn", nonlinearity="relu", identity_init=True)
    return {
        "3-char": (3, dict(cell="rnn", embedding_size=EMBED, return_sequences=False), True),
        "8-char": (8, dict(cell="rnn", embedding_size=EMBED, return_sequences=False), True),
        "8-char seq": (8, dict(cell="rnn", embedding_size=EMBED), True),
        "8-char seq one-hot": (8, dict(cell="rnn", embedding_size=0), True),
        "8-char seq IRNN": (8, dict(irnn, embedding_size=EMBED), True),
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
def plot_results(results):
    """Training curves (mean ± sd over seeds) and validation losses with error bars."""
    fig = lessonkit.new_figure(14, 5.0)
    ax1, ax2 = fig.subplots(1, 2)
    for name, runs in results.items():
        curves = [r["curve"] for r in runs if r["curve"].size]
        if curves:
            n = min(c.size for c in curves)
            k = max(1, n // 25)
            smooth = [np.convolve(c[:n], np.ones(k) / k, mode="valid") for c in curves]
            lessonkit.band(ax1, np.arange(smooth[0].size) + k, smooth, name, lw=1.2)
    ax1.set_xlabel("update (64 windows each)")
    ax1.set_ylabel("training loss (nats/char, running mean)")
    ax1.grid(alpha=0.3)
    ax1.legend(fontsize=7)
    names = list(results)
    y = np.arange(len(names))
    for off, key, label in ((-0.2, "val_last", "last position of the window"),
                            (0.2, "val_all", "every position (many-to-many)")):
        stats = [lessonkit.mean_sd([r[key] for r in results[n]]) if results[n][0][key]
                 is not None else (np.nan, np.nan) for n in names]
        m = np.array([a for a, _ in stats])
        sd = np.array([b for _, b in stats])
        ax2.barh(y + off, m, height=0.4, xerr=sd, capsize=3, label=label)
        for yi, a, b in zip(y, m, sd):
            if np.isfinite(a):
                ax2.text(a + b, yi + off, f" {a:.3f}", va="center", fontsize=7)
    ax2.set_yticks(y)
    ax2.set_yticklabels(names, fontsize=8)
    ax2.invert_yaxis()
    ax2.set_xlabel("validation loss (nats/char), mean ± sd over seeds")
    ax2.legend(fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2)
    ax2.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    return L.figure(fig, "losses")


def loss_table(results):
    """The validation losses (mean ± sd over seeds) as a markdown table."""
    rows = ["| model | window | val loss, last position | val loss, every position "
            "| final train loss | seconds per seed |", "|---|---|---|---|---|---|"]
    for name, runs in results.items():
        every = ("-" if runs[0]["val_all"] is None
                 else lessonkit.pm([r["val_all"] for r in runs]))
        train = lessonkit.pm([float(r["curve"][-50:].mean()) if r["curve"].size
                              else float("nan") for r in runs])
        rows.append(f"| {name} | {runs[0]['window']} | "
                    f"{lessonkit.pm([r['val_last'] for r in runs])} | {every} | {train} "
                    f"| {np.mean([r['seconds'] for r in runs]):.1f} |")
    return "\n".join(rows)


# %% [markdown]
# ## Run it, and the questions

# %%
def main(L):
    P = L.P
    vocab, train, val = load_text(P.chars)
    print(f"python-docs slice: {P.chars} characters, {len(vocab)} distinct; "
          f"{train.size} train / {val.size} validation; {P.updates} updates of {BATCH} per "
          f"model; seeds {L.seeds}")
    results = {}
    for s in L.seeds:
        for name, r in train_all(vocab, train, val, P.hidden, P.updates, s, L.backend).items():
            results.setdefault(name, []).append(r)
    table = loss_table(results)
    print(table)
    L.text_file("losses.md", table + "\n")
    plot_results(results)

    repeats = 3 if P.quick else 20
    diff, t_long, t_short, shape = jacobian_vs_shortcut(results["8-char seq"][0]["model"], val,
                                                        L.backend, repeats)
    out_diff, grad_diff, t_sep, t_fused, t_engine = separate_vs_combined(
        results["GRU"][0]["model"], val, L.backend, repeats)
    print(f"softmax Jacobian vs shortcut: max difference {diff:.2e}; {t_long * 1e3:.3f} ms vs "
          f"{t_short * 1e3:.3f} ms for {shape[0]} rows of {shape[1]}")
    print(f"GRU separate vs combined: outputs differ by {out_diff:.2e}, gradients by "
          f"{grad_diff:.2e}; {t_sep * 1e3:.2f} ms vs {t_fused * 1e3:.2f} ms per forward+backward "
          f"({t_engine * 1e3:.2f} ms on the default engine)")

    last = {n: [r["val_last"] for r in runs] for n, runs in results.items()}
    every = {n: [r["val_all"] for r in runs] for n, runs in results.items()}
    pm = lessonkit.pm
    uniform = float(np.log(len(vocab)))
    held = all(v < uniform for v in last["3-char"])
    L.answer("The 3-char model: how well does it predict the 4th character?",
             f"validation loss {pm(last['3-char'])} nats/char over {P.seeds} seeds (uniform "
             f"guessing over {len(vocab)} characters: {uniform:.3f}); "
             f"{lessonkit.verdict(held)} (below guessing in every seed).", held)
    held, how = lessonkit.compare(last["8-char"], last["3-char"])
    seen = P.updates * BATCH
    L.answer("Does the 8-char model beat the 3-char model (more context, the same tanh RNN)?",
             f"next-character validation loss {pm(last['8-char'])} with 8 characters vs "
             f"{pm(last['3-char'])} with 3; 8 characters are {how}; {lessonkit.verdict(held)}. "
             f"Each saw {seen:,} windows: {seen * 8 / train.size:.2f} and "
             f"{seen * 3 / train.size:.2f} passes over the {train.size:,} training characters.",
             held)
    held, how = lessonkit.compare(last["8-char seq"], last["8-char"])
    L.answer("Returning sequences: what does a prediction at every step buy?",
             f"at the last position (the same context as the many-to-one model) "
             f"{pm(last['8-char seq'])} vs {pm(last['8-char'])} many-to-one after the same "
             f"{P.updates} updates (8 targets per window instead of 1): returning sequences "
             f"is {how}; {lessonkit.verdict(held)}. Over every position "
             f"{pm(every['8-char seq'])} (early positions see less context).", held)
    better = "one-hot" if np.mean(every["8-char seq one-hot"]) < np.mean(every["8-char seq"]) \
        else f"the embedding of {EMBED}"
    L.answer("One-hot vs embedding inputs?",
             f"every-position loss: one-hot {pm(every['8-char seq one-hot'])}, embedding "
             f"{EMBED} {pm(every['8-char seq'])}: {better} lower on average "
             f"({np.mean([r['seconds'] for r in results['8-char seq one-hot']]):.1f} s vs "
             f"{np.mean([r['seconds'] for r in results['8-char seq']]):.1f} s to train).")
    better = "IRNN" if np.mean(every["8-char seq IRNN"]) < np.mean(every["8-char seq"]) \
        else "tanh"
    L.answer("IRNN (ReLU, identity init) vs tanh?",
             f"every-position loss: IRNN {pm(every['8-char seq IRNN'])}, tanh "
             f"{pm(every['8-char seq'])}: {better} lower on average.")
    held, how = lessonkit.compare(every["LSTM stateful"], every["LSTM stateless"])
    L.answer("Stateful vs stateless (the same in-order windows, LSTM)?",
             f"every-position loss: stateful {pm(every['LSTM stateful'])}, stateless "
             f"{pm(every['LSTM stateless'])}; at the last position {pm(last['LSTM stateful'])} "
             f"vs {pm(last['LSTM stateless'])}. Stateful is {how}; {lessonkit.verdict(held)} "
             f"(a stateful model's first positions see the previous window).", held)
    held = diff < 1e-12 and t_long > t_short
    L.answer("Is the gradient through softmax's full Jacobian the p - y shortcut?",
             f"largest difference {diff:.2e} on {shape[0]} rows x {shape[1]} classes "
             f"(float64); the Jacobian way takes {t_long * 1e3:.3f} ms, the shortcut "
             f"{t_short * 1e3:.3f} ms (x{t_long / t_short:.0f}); "
             f"{lessonkit.verdict(held)} (equal, and the shortcut faster).", held)
    held = out_diff < 1e-10 and grad_diff < 1e-10
    L.answer("GRU with separate vs combined weights: is it the same model?",
             f"outputs differ by {out_diff:.2e}, gradients by {grad_diff:.2e} (float64, "
             f"the trained GRU's weights on a validation batch); {lessonkit.verdict(held)}.",
             held)
    held = t_fused < t_sep
    L.answer("Are the combined weights faster (the lesson's claim)?",
             f"forward + backward over a batch of {BATCH} x 8: per-gate {t_sep * 1e3:.2f} ms, "
             f"fused {t_fused * 1e3:.2f} ms (x{t_sep / t_fused:.2f}), both stepping in Python; "
             f"the fused layer on its default engine "
             f"({results['GRU'][0]['model'].rnn.engine}) {t_engine * 1e3:.2f} ms (best of "
             f"{repeats} interleaved rounds; a shared machine); {lessonkit.verdict(held)}.", held)
    best = min(last, key=lambda n: np.mean(last[n]))
    L.answer("Which model has the lowest validation loss at the last position?",
             f"{best}: {pm(last[best])} nats/char; the whole table is in "
             "fastai_lesson6_losses.md beside the figure.")


# %%
L.run(main)
