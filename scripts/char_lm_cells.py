"""RNN vs GRU vs LSTM as character language models, each given the same time.

Three one-layer models of the same width learn the ``python-docs`` prose (Python's
reference manual) character by character, each for the same budget of CPU seconds.
Their validation losses are drawn against time and against steps in one figure; then
each model writes text at temperatures 0.5, 1.0 and 1.5. Which cell wins when the clock,
not the number of steps, is what is equal?
"""
# %% [markdown]
# # Which recurrent cell learns fastest? RNN, GRU and LSTM on the same clock
#
# The vanilla RNN does the least arithmetic per character, the LSTM the most (four
# gates), the GRU sits between (three). Given the same *time*, the RNN takes the most
# steps; given the same *number of steps*, the gated cells usually learn more from
# each. This lesson measures both on one figure.
#
# Each model: one-hot characters -> one recurrent layer of ``--hidden`` units -> linear
# head -> softmax cross-entropy; truncated BPTT over windows of 64 characters in 32
# parallel streams, the state carried between windows; Adam with the gradient norm
# clipped at 5. Training is the library's ``Trainer.train_step`` called in a loop
# until the model has used ``--budget`` seconds; the validation split is scored about
# a dozen times on the way, and that scoring is not charged to the budget.
#
# **The clock.** The budget is this process's CPU time (``time.process_time``) with one
# BLAS thread, not the wall clock: on a machine shared with other work the wall clock
# would hand whichever model ran during a quiet moment more computing than the others.
# On an idle machine the two are the same. The wall seconds are printed too.

# %% [markdown]
# ## Parameters
#
# Change them here in a notebook; from a terminal, ``python scripts/char_lm_cells.py
# --quick --budget 30`` overrides them. ``None`` means the default of the mode (full or quick).

# %% tags=["parameters"]
quick = False       # True: tiny sizes, the whole lesson in seconds
seeds = None        # seeds per cell (None: 3; 2 with quick)
seed = 0            # the first seed
budget = None       # CPU seconds of training per cell and seed (None: 25; 0.25 with quick)
hidden = None       # hidden units of every cell (None: 64; 32 with quick)
backend = "numpy"   # numpy | cupy | auto
out = None          # output folder (None: a new lessons-out/char_lm_cells/run-N here)
replace = False     # let ``out`` overwrite this lesson's earlier outputs there

# %%
import lessonkit
from lessonkit import Param

SPEC = {                       # the settings above: kind, full-run value, quick value
    "budget": Param("float", 25.0, 0.25, low=0, help="CPU seconds of training per cell and seed"),
    "hidden": Param("int", 64, 32, help="hidden units of every cell"),
}
L = lessonkit.start("char_lm_cells", globals(), SPEC)

# %%
import os  # noqa: E402
import re  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from scratchrnn.book.train import evaluate  # noqa: E402
from scratchrnn.core.backend import CPU  # noqa: E402
from scratchrnn.lm.run import TrainConfig, Trainer  # noqa: E402
from scratchrnn.lm.sample import generate  # noqa: E402

np = CPU.xp            # host arrays: results and figures

CELLS = ("rnn", "gru", "lstm")
TEMPERATURES = (0.5, 1.0, 1.5)
EVALUATIONS = 12       # val scorings per model, at equal slices of the budget


# %% [markdown]
# ## One model, one budget
#
# ``Trainer`` prepares the data (the vocabulary of the text's characters, a 90/5/5
# split by position), builds the model and the optimizer, and its ``train_step`` takes
# the next window through ``train.train_step`` (loss, backward, clip, Adam). Around it
# we keep our own clock. ``evaluate`` scores the validation split as one stateful pass.

# %%
def train_on_the_clock(cell, budget_s, hidden, max_chars, seed, backend, eval_tokens):
    """Train one model until it has used ``budget_s`` CPU seconds.

    Returns a dict: "trainer", "curve" (list of (cpu seconds, step, val loss, wall seconds),
    starting with the untrained model at 0), "params" (parameter count), "steps".
    """
    with tempfile.TemporaryDirectory() as tmp:     # Trainer wants a run folder; nothing is saved
        cfg = TrainConfig(source="python-docs", max_chars=max_chars, cell=cell,
                          hidden_size=hidden, num_layers=1, seq_len=64, batch_size=32,
                          lr=3e-3, grad_clip=5.0, max_minutes=None, max_steps=10**9,
                          seed=seed, backend=backend.name, out_dir=os.path.join(tmp, cell),
                          progress=False)
        trainer = Trainer(cfg)

    def score():
        return evaluate(trainer.model, trainer.data.val, 32, 64, eval_tokens)["loss"]

    curve = [(0.0, 0, score(), 0.0)]
    used, wall, every = 0.0, 0.0, budget_s / EVALUATIONS
    next_eval = every
    while used < budget_s:
        c0, w0 = time.process_time(), time.perf_counter()
        trainer.train_step()
        used += time.process_time() - c0
        wall += time.perf_counter() - w0
        if used >= next_eval or used >= budget_s:
            curve.append((used, trainer.progress.step, score(), wall))
            next_eval += every
    return {"trainer": trainer, "curve": curve, "params": trainer.model.num_params(),
            "steps": trainer.progress.step, "seed": seed}


# %% [markdown]
# ## Samples at three temperatures
#
# ``generate`` warms the state up on a prime and then draws one character at a time
# from softmax(logits / temperature). Below 1 the distribution sharpens toward the
# likeliest character (safe, repetitive); above 1 it flattens toward uniform
# (adventurous, misspelt). One number per sample says which: the share of its words
# (runs of letters) that occur somewhere in the training text.

# %%
WORD = re.compile(r"[A-Za-z]+")


def real_word_share(sample, known_words):
    """Fraction of the letter runs of ``sample`` that are words of the training text
    (NaN when the sample has none)."""
    words = WORD.findall(sample)
    return float(np.mean([w in known_words for w in words])) if words else float("nan")


def samples_for(trainer, length, seed, known_words):
    """temperature -> (sample text, real-word share) for one trained model."""
    out = {}
    for k, temp in enumerate(TEMPERATURES):
        text = generate(trainer.model, trainer.data.vocab, length, prime="The ",
                        strategy="sample", temperature=temp, seed=seed + k)
        out[temp] = (text, real_word_share(text, known_words))
    return out


# %% [markdown]
# ## The figure: validation loss against time and against steps

# %%
COLOURS = {"rnn": "tab:blue", "gru": "tab:green", "lstm": "tab:red"}


def mean_curve(runs, key, grid):
    """(seeds, len(grid)): each seed's val loss interpolated at ``grid`` along column key."""
    return np.array([np.interp(grid, np.array(r["curve"])[:, key], np.array(r["curve"])[:, 2])
                     for r in runs])


def plot_curves(results, budget_s):
    """Validation loss against CPU time and against steps, mean ± sd over seeds."""
    fig = lessonkit.new_figure(12.0, 4.6)
    ax_t, ax_s = fig.subplots(1, 2)
    t_grid = np.linspace(0.0, budget_s, 40)
    for cell, runs in results.items():
        steps = [r["steps"] for r in runs]
        s_grid = np.linspace(0, min(steps), 40)
        label = f"{cell.upper()} ({runs[0]['params']:,} params, {np.mean(steps):.0f} steps)"
        lessonkit.band(ax_t, t_grid, mean_curve(runs, 0, t_grid), label, color=COLOURS[cell])
        lessonkit.band(ax_s, s_grid, mean_curve(runs, 1, s_grid), cell.upper(),
                       color=COLOURS[cell])
    ax_t.set_xlabel(f"CPU seconds of training (budget {budget_s:g} s each)")
    ax_s.set_xlabel("training steps (64 x 32 characters each)")
    for ax in (ax_t, ax_s):
        ax.set_ylabel("validation loss (nats / char)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        top = max(np.array(r["curve"])[1, 2] for runs in results.values() for r in runs)
        ax.set_ylim(top=top)
    ax_t.set_title("equal time: who is ahead at each moment", fontsize=10)
    ax_s.set_title("equal steps: who learns more per update", fontsize=10)
    fig.tight_layout()
    return L.figure(fig, "curves")


def trend(runs, budget_s):
    """(a, b): val loss ≈ a + b·ln(CPU s) fitted to the seeds' curves over the second half
    of the budget: where a curve is heading."""
    t, y = [], []
    for r in runs:
        c = np.array(r["curve"])
        keep = c[:, 0] >= budget_s / 2
        t += list(c[keep, 0])
        y += list(c[keep, 2])
    b, a = np.polyfit(np.log(t), y, 1)
    return float(a), float(b)


# %% [markdown]
# ## Run it, and the questions

# %%
def loss_at_step(curve, step):
    """Validation loss at ``step`` by linear interpolation along a model's curve."""
    c = np.array(curve)
    return float(np.interp(step, c[:, 1], c[:, 2]))


def main(L):
    P = L.P
    max_chars = 30_000 if P.quick else None
    eval_tokens = 1_000 if P.quick else 20_000
    length = 40 if P.quick else 300
    results = {cell: [] for cell in CELLS}
    for s in L.seeds:
        for cell in CELLS:
            r = train_on_the_clock(cell, P.budget, P.hidden, max_chars, s, L.backend,
                                   eval_tokens)
            results[cell].append(r)
            final = r["curve"][-1]
            print(f"seed {s} {cell.upper():5s} {r['params']:>7,} params: {r['steps']:5d} steps "
                  f"in {final[0]:.1f} CPU s ({final[3]:.1f} s wall), val loss "
                  f"{r['curve'][0][2]:.3f} -> {final[2]:.3f} nats/char", flush=True)
    plot_curves(results, P.budget)

    first = results["rnn"][0]["trainer"]
    known = set(WORD.findall(first.data.vocab.decode(first.data.train)))
    shares = {cell: {t: [] for t in TEMPERATURES} for cell in CELLS}
    for cell, runs in results.items():
        for i, r in enumerate(runs):
            samples = samples_for(r["trainer"], length, r["seed"], known)
            for temp, (text, share) in samples.items():
                shares[cell][temp].append(share)
                if i == 0:
                    print(f"----- {cell.upper()} at temperature {temp} ({share:.0%} real "
                          f"words), seed {r['seed']} -----\nThe {text}")

    final = {cell: [r["curve"][-1][2] for r in runs] for cell, runs in results.items()}
    steps = {cell: [r["steps"] for r in runs] for cell, runs in results.items()}
    mean = {cell: float(np.mean(v)) for cell, v in final.items()}
    winner = min(mean, key=mean.get)
    gated = min(("gru", "lstm"), key=mean.get)
    held, how = lessonkit.compare(final[gated], final["rnn"])
    trends = {cell: trend(runs, P.budget) for cell, runs in results.items()}
    heading = []
    for cell in ("gru", "lstm"):
        (a_g, b_g), (a_r, b_r) = trends[cell], trends["rnn"]
        ahead = mean[cell] < mean["rnn"]
        if ahead:
            heading.append(f"{cell.upper()} already ahead")
        elif b_g < b_r:                     # falling faster: the lines cross ahead
            cross = float(np.exp((a_r - a_g) / (b_g - b_r)))
            heading.append(f"{cell.upper()} falling faster ({b_g:+.3f} vs {b_r:+.3f} nats per "
                           f"e-fold of time), crossing the RNN's trend near {cross:.0f} CPU s")
        else:
            heading.append(f"{cell.upper()} not closing the gap on its trend ({b_g:+.3f} vs "
                           f"{b_r:+.3f} nats per e-fold of time)")
    L.answer("With the same training time, which cell reaches the lowest validation loss?",
             f"{winner.upper()}: after {P.budget:g} CPU seconds each, val loss "
             + ", ".join(f"{c.upper()} {lessonkit.pm(final[c])}" for c in CELLS)
             + f" nats/char over {P.seeds} seeds (ln V = {np.log(len(first.data.vocab)):.2f} "
             "is guessing); steps taken " + ", ".join(f"{c.upper()} {np.mean(steps[c]):.0f}"
                                                      for c in CELLS)
             + f". The best gated cell ({gated.upper()}) against the RNN: {how}; "
             f"{lessonkit.verdict(held)} (Karpathy et al. 2015: a gated cell ahead). Where the "
             "curves are heading (val loss ≈ a + b·ln t over the second half): "
             + "; ".join(heading) + ".", held)

    common = min(min(v) for v in steps.values())
    per_step = {cell: [loss_at_step(r["curve"], common) for r in runs]
                for cell, runs in results.items()}
    best_gated = min(("gru", "lstm"), key=lambda c: np.mean(per_step[c]))
    held, how = lessonkit.compare(per_step[best_gated], per_step["rnn"])
    L.answer("Per update, which cell learns most (all compared at the step count the "
             "slowest reached)?",
             f"at step {common}: " + ", ".join(f"{c.upper()} {lessonkit.pm(per_step[c])}"
                                               for c in CELLS)
             + f" nats/char; {best_gated.upper()} against the RNN: {how}; "
             f"{lessonkit.verdict(held)} (expected: the gated cells below the RNN).", held)

    per_temp = {t: [float(np.nanmean([shares[c][t][i] for c in CELLS]))
                    for i in range(P.seeds)] for t in TEMPERATURES}
    falls = all(np.mean(per_temp[a]) > np.mean(per_temp[b])
                for a, b in zip(TEMPERATURES, TEMPERATURES[1:]))
    L.answer("What does the sampling temperature do to the text?",
             "share of sampled words that are words of the training text, mean over the "
             "three cells, mean ± sd over seeds: " + ", ".join(
                 f"T={t:g} {lessonkit.pm([100 * v for v in per_temp[t]], 0)}%"
                 for t in TEMPERATURES)
             + f"; {lessonkit.verdict(falls)} (fewer real words as the temperature rises).",
             falls)


# %%
L.run(main)
