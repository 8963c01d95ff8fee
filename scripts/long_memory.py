"""Long memory: the adding problem and the copy-memory task for RNN, IRNN, GRU and LSTM as
the gap grows, and how far back truncated BPTT lets a learned dependency reach.

The two synthetic tasks of Hochreiter & Schmidhuber (1997) and Arjovsky et al. (2016) put
the information a model needs a chosen number of steps before the step that needs it.
Each cell is trained with the same budget at every gap, from several seeds, and scored on
fresh sequences; the gap at which each cell fails is read off. Then an LSTM is trained on a
recall task with truncated backpropagation through time of several lengths.
"""
# %% [markdown]
# # Long memory: where gates matter
#
# A recurrent network can only use what its state still holds, and it can only *learn* to
# hold something if the gradient from the step that needs it survives the way back (see
# ``vanishing_gradients.py``). Two tasks make the distance explicit:
#
# * **The adding problem** (Hochreiter & Schmidhuber 1997). Each step reads two numbers:
#   a value drawn from U(0, 1) and a marker, 1 at exactly two steps and 0 elsewhere. After
#   the last step the model must output the sum of the two marked values. One marker falls
#   in the first half of the sequence, the other in the second, so the first marked value
#   lies up to T steps back. Always answering 1 (the mean of the sum) scores an MSE of
#   1/6 ≈ 0.167; we report the **normalised MSE**, the MSE divided by that, so 1 is "learnt
#   nothing" and 0 is perfect.
# * **Copy memory** (Hochreiter & Schmidhuber 1997; the setting of Arjovsky et al. 2016).
#   The first K = 2 steps show symbols from an alphabet of 4, then come ``gap`` blank
#   steps, then a delimiter; in the K steps after it the model must write the K symbols
#   back, in order. Only those K outputs are scored: **accuracy** is the share written
#   correctly (chance 25 %).
#
# The cells: the tanh RNN, the IRNN (ReLU with the recurrent matrix started at the
# identity, Le et al. 2015), the GRU and the LSTM (forget-gate bias 1, the usual choice for
# long memory; Gers et al. 2000). All have ``hidden`` units, a linear head, Adam and the
# gradient norm clipped at 1, learning rate 0.01, and the same number of updates of 32
# sequences at every gap.
# A cell **fails** at a gap when its mean over the seeds is worse than a threshold:
# accuracy below 90 % on copy memory, normalised MSE above 0.1 on the adding problem.

# %% [markdown]
# ## Parameters
#
# Change them here in a notebook; from a terminal, ``python scripts/long_memory.py --quick
# --updates 800`` overrides them. ``None`` means the default of the mode (full or quick).

# %% tags=["parameters"]
quick = False       # True: tiny sizes, the whole lesson in seconds
seeds = None        # seeds per cell and gap (None: 3; 2 with quick)
seed = 0            # the first seed
updates = None      # Adam updates per run (None: 1500; 15 with quick)
hidden = None       # hidden units of every cell (None: 32; 8 with quick)
backend = "numpy"   # numpy | cupy | auto
out = None          # output folder (None: a new lessons-out/long_memory/run-N here)
replace = False     # let ``out`` overwrite this lesson's earlier outputs there

# %%
import lessonkit
from lessonkit import Param

SPEC = {                       # the settings above: kind, full-run value, quick value
    "updates": Param("int", 1500, 15, help="Adam updates (of 32 sequences) per run"),
    "hidden": Param("int", 32, 8, help="hidden units of every cell"),
}
L = lessonkit.start("long_memory", globals(), SPEC)

# %%
import time  # noqa: E402

from scratchrnn.blocks.heads import Head, mean_squared_error, softmax_cross_entropy  # noqa: E402
from scratchrnn.blocks.layers import GRU, LSTM, RNN  # noqa: E402
from scratchrnn.book.optim import clip_grad_norm, make_optimizer  # noqa: E402
from scratchrnn.core.backend import CPU  # noqa: E402

np = CPU.xp            # host arrays: the data, results and figures

CELLS = ("RNN", "IRNN", "GRU", "LSTM")
COLOURS = {"RNN": "tab:blue", "IRNN": "tab:purple", "GRU": "tab:green", "LSTM": "tab:red"}
K, ALPHABET = 2, 4                 # copy memory: symbols to remember, symbols to choose from
BLANK, DELIM = 0, ALPHABET + 1     # input ids: 0 blank, 1..4 symbols, 5 the delimiter
BATCH, LR, CLIP = 32, 1e-2, 1.0
COPY_FAIL, ADD_FAIL = 0.9, 0.1     # fail: accuracy below 90 %; normalised MSE above 0.1
ADD_BASELINE = 1.0 / 6.0           # MSE of always answering 1 (the variance of U + U)


# %% [markdown]
# ## The tasks
#
# Both are generated afresh for every update (there is no fixed training set to
# memorise) and from a separate generator for the test sequences. Arrays are time-major.

# %%
def adding_batch(rng, T, batch):
    """Inputs (T, B, 2): [value, marker]; targets (B, 1): the sum of the two marked values.
    One marker lies in the first half, the other in the second (T >= 2)."""
    values = rng.uniform(0.0, 1.0, (T, batch))
    first = rng.integers(0, T // 2, batch)
    second = rng.integers(T // 2, T, batch)
    marks = np.zeros((T, batch))
    marks[first, np.arange(batch)] = 1.0
    marks[second, np.arange(batch)] = 1.0
    xs = np.stack([values, marks], axis=2)
    ys = (values[first, np.arange(batch)] + values[second, np.arange(batch)])[:, None]
    return xs, ys


def one_hot(ids, n):
    """(…) int -> (…, n) float one-hot."""
    return np.eye(n)[ids]


def copy_batch(rng, gap, batch):
    """Copy memory with ``gap`` blanks. Inputs (T, B, 6) one-hot with T = 2K + gap + 1;
    targets (K, B) int: the K symbols, to be written at the last K steps."""
    symbols = rng.integers(1, ALPHABET + 1, (K, batch))
    T = 2 * K + gap + 1
    ids = np.full((T, batch), BLANK)
    ids[:K] = symbols
    ids[K + gap] = DELIM
    return one_hot(ids, ALPHABET + 2), symbols - 1            # classes 0..3


# %% [markdown]
# ## One model, trained and scored
#
# A recurrent layer of the chosen cell, then ``heads.Head``: many-to-one (the last state)
# for the adding problem, many-to-many for copy memory, where only the last K steps'
# logits enter the loss (their gradient is put back into a zero array of all T steps, so
# the other steps contribute nothing).

# %%
def make_layer(cell, inputs, hidden, seed, backend):
    if cell == "IRNN":
        return RNN(inputs, hidden, nonlinearity="relu", identity_init=True, seed=seed,
                   backend=backend)
    if cell == "LSTM":
        return LSTM(inputs, hidden, forget_bias=1.0, seed=seed, backend=backend)
    return {"RNN": RNN, "GRU": GRU}[cell](inputs, hidden, seed=seed, backend=backend)


class Reader:
    """layer -> head; ``params``/``grads`` are the parts' own arrays under prefixes."""

    def __init__(self, cell, inputs, outputs, hidden, seed, backend, many_to_one):
        self.layer = make_layer(cell, inputs, hidden, seed, backend)
        self.head = Head(hidden, outputs, return_sequences=not many_to_one, backend=backend,
                         seed=seed + 1)
        self.xp = self.layer.xp
        self.params = {**{f"rnn.{k}": v for k, v in self.layer.params.items()},
                       **{f"head.{k}": v for k, v in self.head.params.items()}}
        self.grads = {**{f"rnn.{k}": v for k, v in self.layer.grads.items()},
                      **{f"head.{k}": v for k, v in self.head.grads.items()}}

    def zero_grad(self):
        for g in self.grads.values():
            g[...] = 0

    def forward(self, xs, state=None):
        hs, state = self.layer.forward(self.xp.asarray(xs, dtype=self.layer.dtype), state)
        return self.head.forward(hs), state

    def backward(self, dout):
        self.layer.backward(self.head.backward(dout))


def copy_loss(out, targets, backend):
    """Cross-entropy of the last K steps' logits (T, B, V) against targets (K, B); returns
    (loss, dout (T, B, V) zero before the last K steps, accuracy)."""
    xp = backend.xp
    loss, dlast = softmax_cross_entropy(out[-K:], xp.asarray(targets))
    dout = xp.zeros_like(out)
    dout[-K:] = dlast
    acc = float((backend.asnumpy(out[-K:]).argmax(axis=2) == targets).mean())
    return loss, dout, acc


def train_task(task, cell, length, seed, P, backend, test_size=512):
    """Train one model on ``task`` ("adding": T = length; "copy": gap = length) for
    P.updates updates; returns its test score (normalised MSE or accuracy)."""
    rng, test_rng = np.random.default_rng(seed), np.random.default_rng(10_000 + seed)
    if task == "adding":
        model = Reader(cell, 2, 1, P.hidden, seed, backend, many_to_one=True)
        make = lambda r, b: adding_batch(r, length, b)
    else:
        model = Reader(cell, ALPHABET + 2, ALPHABET, P.hidden, seed, backend,
                       many_to_one=False)
        make = lambda r, b: copy_batch(r, length, b)
    opt = make_optimizer("adam", LR)
    for _ in range(P.updates):
        xs, ys = make(rng, BATCH)
        model.zero_grad()
        out, _ = model.forward(xs)
        if task == "adding":
            loss, dout = mean_squared_error(out, ys)
        else:
            loss, dout, _ = copy_loss(out, ys, backend)
        if not np.isfinite(loss):
            return 10.0 if task == "adding" else 0.0           # diverged: scored as failed
        model.backward(dout)
        clip_grad_norm(model.grads, CLIP)
        opt.step(model.params, model.grads)
    xs, ys = make(test_rng, test_size)
    out, _ = model.forward(xs)
    if task == "adding":
        mse = float(np.mean((backend.asnumpy(out).astype(np.float64) - ys) ** 2))
        return min(mse / ADD_BASELINE, 10.0) if np.isfinite(mse) else 10.0
    return copy_loss(out, ys, backend)[2]


# %% [markdown]
# ## Truncated BPTT: how far back can a learned dependency reach?
#
# Language models are trained on windows of a fixed length: the state is carried from one
# window to the next, but the gradient stops at the window's start. A recall task makes
# the consequence visible. A sequence of ``T = 32`` steps holds one symbol at a random
# position, blanks elsewhere, and a delimiter at step T − 2; at the last step the model
# must name the symbol, which lies d steps back. The LSTM reads the whole sequence, but the
# gradient from the last step flows back only through the last ``k`` steps (the windows
# are aligned to the end, so that holds for every sequence; ``k = 32`` is full BPTT).
# Accuracy is then measured separately for every distance d. Two training sets:
#
# * **far only**: every symbol lies d = 16 … 31 back, so with k ≤ 16 no gradient ever
#   reaches a symbol from the step that needs it;
# * **every distance**: d = 2 … 31, so short examples, inside the window, are mixed in.
#   Does what the LSTM learns from them (store the symbol, hold it over blanks) carry
#   beyond the window?

# %%
RECALL_T = 32
RECALL_FROM = {"far only": 16, "every distance": 2}


def recall_batch(rng, batch, nearest):
    """Inputs (T, B, 6), targets (B,), distances (B,) from the symbol to the last step,
    uniform over nearest … T - 1."""
    pos = rng.integers(0, RECALL_T - nearest, batch)
    symbols = rng.integers(1, ALPHABET + 1, batch)
    ids = np.full((RECALL_T, batch), BLANK)
    ids[pos, np.arange(batch)] = symbols
    ids[RECALL_T - 2] = DELIM
    return one_hot(ids, ALPHABET + 2), symbols - 1, RECALL_T - 1 - pos


def train_truncated(k, nearest, seed, P, backend, test_size=2048):
    """LSTM on the recall task (distances nearest … T-1) with the gradient truncated to the
    last k steps; returns (distances (D,), accuracy at each distance (D,))."""
    rng, test_rng = np.random.default_rng(seed), np.random.default_rng(20_000 + seed)
    model = Reader("LSTM", ALPHABET + 2, ALPHABET, P.hidden, seed, backend, many_to_one=True)
    opt = make_optimizer("adam", LR)
    xp = model.xp
    for _ in range(P.updates):
        xs, ys, _ = recall_batch(rng, BATCH, nearest)
        state = None
        if k < RECALL_T:                                   # earlier windows: state only
            _, state = model.layer.forward(xp.asarray(xs[:-k], dtype=model.layer.dtype))
        model.zero_grad()
        out, _ = model.forward(xs[-k:], state)             # the last window, from that state
        _, dout = softmax_cross_entropy(out, xp.asarray(ys))
        model.backward(dout)                               # BPTT through the last k steps
        clip_grad_norm(model.grads, CLIP)
        opt.step(model.params, model.grads)
    xs, ys, dist = recall_batch(test_rng, test_size, nearest)
    out, _ = model.forward(xs)
    right = backend.asnumpy(out).argmax(axis=1) == ys
    distances = np.arange(nearest, RECALL_T)
    return distances, np.array([right[dist == d].mean() if np.any(dist == d) else np.nan
                                for d in distances])


def reach(distances, accuracy, level=0.5):
    """The largest distance d such that accuracy is at least ``level`` at every d' <= d
    (0 when it is below already at the nearest distance)."""
    below = np.flatnonzero(~(accuracy >= level))
    if not below.size:
        return int(distances[-1])
    return int(distances[below[0] - 1]) if below[0] > 0 else 0


# %% [markdown]
# ## The figures

# %%
def plot_gaps(scores, lengths):
    """Adding problem and copy memory: score against gap length, mean ± sd over seeds."""
    fig = lessonkit.new_figure(12.5, 4.4)
    ax_a, ax_c = fig.subplots(1, 2)
    for ax, task in ((ax_a, "adding"), (ax_c, "copy")):
        for cell in CELLS:
            runs = np.array(scores[task][cell]).T                # (seeds, gaps)
            x = np.array(lengths[task], dtype=float)
            lessonkit.band(ax, x, runs, cell, color=COLOURS[cell], marker="o", ms=4)
        ax.set_xscale("log", base=2)
        ax.set_xticks(lengths[task])
        ax.set_xticklabels([str(v) for v in lengths[task]])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    ax_a.axhline(ADD_FAIL, c="0.4", ls=":", lw=1)
    ax_a.axhline(1.0, c="0.7", ls="--", lw=1)
    ax_a.set_xlabel("sequence length T (the first marked value up to T steps back)")
    ax_a.set_ylabel("test MSE / 0.167 (1 = always answering 1)")
    ax_a.set_yscale("log")
    ax_a.set_title("adding problem (dotted: the failure threshold)", fontsize=10)
    ax_c.axhline(COPY_FAIL, c="0.4", ls=":", lw=1)
    ax_c.axhline(1.0 / ALPHABET, c="0.7", ls="--", lw=1)
    ax_c.set_xlabel("gap (blank steps between the symbols and the delimiter)")
    ax_c.set_ylabel(f"share of the {K} symbols written back correctly")
    ax_c.set_ylim(0.0, 1.02)
    ax_c.set_title("copy memory (dashed: chance; dotted: the threshold)", fontsize=10)
    fig.tight_layout()
    return L.figure(fig, "gaps")


def plot_truncation(curves):
    """Recall accuracy against distance, one band per truncation length k, per training set."""
    fig = lessonkit.new_figure(12.5, 4.4)
    axes = fig.subplots(1, len(curves), sharey=True)
    for ax, (condition, by_k) in zip(axes, curves.items()):
        for k, (d, runs) in by_k.items():
            line = lessonkit.band(ax, d, runs, "full BPTT" if k >= RECALL_T else f"k = {k}",
                                  marker=".", ms=3)
            if k < RECALL_T:
                ax.axvline(k - 1, c=line.get_color(), ls=":", lw=1)
        ax.axhline(1.0 / ALPHABET, c="0.7", ls="--", lw=1)
        ax.set_xlim(0, RECALL_T)
        ax.set_xlabel("distance from the symbol to the step that must name it")
        ax.set_title(f"trained on {condition} (dotted: k − 1, the gradient's reach)",
                     fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("recall accuracy (LSTM; dashed: chance)")
    axes[0].set_ylim(0.0, 1.02)
    fig.tight_layout()
    return L.figure(fig, "truncation")


# %% [markdown]
# ## Run it, and the questions

# %%
def fails_at(lengths, runs, task):
    """The first length at which the mean over seeds is past the threshold (None: never)."""
    for length, vals in zip(lengths, runs):
        m = float(np.mean(vals))
        if (m < COPY_FAIL) if task == "copy" else (m > ADD_FAIL):
            return length
    return None


def main(L):
    P = L.P
    lengths = ({"adding": [4, 8], "copy": [2, 4]} if P.quick else
               {"adding": [10, 20, 40, 80], "copy": [5, 10, 20, 40]})
    scores = {task: {cell: [] for cell in CELLS} for task in lengths}   # [gap][seed]
    for task, gaps in lengths.items():
        for cell in CELLS:
            for g in gaps:
                t0 = time.perf_counter()
                vals = [train_task(task, cell, g, s, P, L.backend) for s in L.seeds]
                scores[task][cell].append(vals)
                print(f"{task:6s} {cell:4s} length {g:3d}: {lessonkit.pm(vals)} "
                      f"({time.perf_counter() - t0:.1f} s)", flush=True)
    plot_gaps(scores, lengths)

    ks = [3, 6] if P.quick else [5, 10, 20, RECALL_T]
    curves = {}
    for condition, nearest in RECALL_FROM.items():
        curves[condition] = {}
        for k in ks:
            runs = [train_truncated(k, nearest, s, P, L.backend) for s in L.seeds]
            curves[condition][k] = (runs[0][0], [acc for _, acc in runs])
            print(f"recall, {condition}, truncated BPTT k={k}: mean accuracy "
                  f"{lessonkit.pm([float(np.nanmean(a)) for _, a in runs], 2)}", flush=True)
    plot_truncation(curves)

    pm = lessonkit.pm
    for task, what, unit in (("copy", "copy memory", "accuracy"),
                             ("adding", "the adding problem", "normalised MSE")):
        gaps = lengths[task]
        fail = {cell: fails_at(gaps, scores[task][cell], task) for cell in CELLS}
        rank = lambda c, fail=fail: fail[c] if fail[c] is not None else 10 ** 9
        said = "; ".join(f"{c} " + (f"fails at {fail[c]}" if fail[c] is not None
                                    else f"never fails up to {gaps[-1]}") for c in CELLS)
        longest = {c: pm(scores[task][c][-1], 2) for c in CELLS}
        gated = min(rank("GRU"), rank("LSTM"))
        held = gated > rank("RNN")
        L.answer(f"On {what}, at which gap does each cell fail ({P.updates} updates each, "
                 f"{P.seeds} seeds)?",
                 f"{said} (mean over seeds past the threshold: {unit} "
                 + (f"below {COPY_FAIL:.0%}" if task == "copy" else f"above {ADD_FAIL:g}")
                 + f"). {unit[0].upper() + unit[1:]} at the longest ({gaps[-1]}): "
                 + ", ".join(f"{c} {v}" for c, v in longest.items())
                 + f". A gated cell lasting longer than the vanilla RNN: "
                 f"{lessonkit.verdict(held)}.", held)
    short, full = ks[0], ks[-1]
    name = lambda k: "full BPTT" if k >= RECALL_T else f"k = {k}"
    far = {k: [float(np.nanmean(a)) for a in runs]
           for k, (_, runs) in curves["far only"].items()}
    held, how = lessonkit.compare(far[full], far[short], lower_is_better=False)
    held = held and np.mean(far[short]) < 0.5
    L.answer("When every dependency is longer than the window (distances "
             f"{RECALL_FROM['far only']}-{RECALL_T - 1}), can truncated BPTT learn it?",
             "recall accuracy (chance 0.25): " + "; ".join(
                 f"{name(k)} {pm(far[k], 2)}" for k in ks)
             + f". Full BPTT against {name(short)}: {how}; {lessonkit.verdict(held)} (no "
             "gradient reaches a symbol further back than the window, so a short window "
             "stays near chance while full BPTT learns).", held)
    d_all = curves["every distance"][ks[0]][0]
    reaches = {k: [reach(d_all, a) for a in runs]
               for k, (_, runs) in curves["every distance"].items()}
    beyond = [k for k in ks if k < RECALL_T and np.mean(reaches[k]) > k - 1]
    L.answer("With short examples mixed in (distances 2-31), how far back does the learned "
             "recall reach with truncated BPTT of k steps?",
             "largest distance recalled with at least 50 % accuracy (twice chance) at every "
             "shorter distance: " + "; ".join(f"{name(k)} {pm(reaches[k], 1)}" for k in ks)
             + ". " + (f"With k = {', '.join(map(str, beyond))} the recall reaches beyond the "
                       "window: what the LSTM learned within it (store the symbol, hold it over "
                       "blanks) carries further than any gradient did." if beyond else
                       "No truncated run recalls beyond its window: the reach follows k.")
             + " Compare the far-only task, where nothing inside the window teaches it.")


# %%
L.run(main)
