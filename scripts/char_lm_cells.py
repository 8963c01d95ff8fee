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

# %%
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")     # one thread: CPU seconds = compute used
os.environ.setdefault("OMP_NUM_THREADS", "1")

import re                                              # noqa: E402
import sys                                             # noqa: E402
import tempfile                                        # noqa: E402
import time                                            # noqa: E402

from scratchrnn.analysis.plots import new_figure, save_png    # noqa: E402
from scratchrnn.core.backend import CPU                     # noqa: E402
from scratchrnn.lessons import lesson_parser, run_lesson      # noqa: E402
from scratchrnn.lm.run import TrainConfig, Trainer     # noqa: E402
from scratchrnn.lm.sample import generate                 # noqa: E402
from scratchrnn.book.train import evaluate                  # noqa: E402
from scratchrnn.core.validation import positive_float, positive_int   # noqa: E402

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
            "steps": trainer.progress.step}


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


def plot_curves(results, budget_s, path):
    fig = new_figure(12.0, 4.3)
    ax_t, ax_s = fig.subplots(1, 2)
    for cell, r in results.items():
        c = np.array(r["curve"])
        label = f"{cell.upper()} ({r['params']:,} params, {r['steps']} steps)"
        ax_t.plot(c[:, 0], c[:, 2], marker="o", ms=3, c=COLOURS[cell], label=label)
        ax_s.plot(c[:, 1], c[:, 2], marker="o", ms=3, c=COLOURS[cell], label=cell.upper())
    ax_t.set_xlabel(f"CPU seconds of training (budget {budget_s:g} s each)")
    ax_s.set_xlabel("training steps (64 x 32 characters each)")
    for ax in (ax_t, ax_s):
        ax.set_ylabel("validation loss (nats / char)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    ax_t.set_title("equal time: who is ahead at each moment")
    ax_s.set_title("equal steps: who learns more per update")
    fig.tight_layout()
    return save_png(fig, path)


# %% [markdown]
# ## Run it, and the questions

# %%
def loss_at_step(curve, step):
    """Validation loss at ``step`` by linear interpolation along a model's curve."""
    c = np.array(curve)
    return float(np.interp(step, c[:, 1], c[:, 2]))


def main(args, backend, answers):
    budget = positive_float("--budget", args.budget) if args.budget else (
        0.4 if args.quick else 15.0)
    hidden = positive_int("--hidden", args.hidden) if args.hidden else (32 if args.quick else 128)
    max_chars = 60_000 if args.quick else None
    eval_tokens = 2_000 if args.quick else 20_000
    length = 80 if args.quick else 300
    t0 = time.perf_counter()
    results = {}
    for cell in CELLS:
        r = train_on_the_clock(cell, budget, hidden, max_chars, args.seed, backend, eval_tokens)
        results[cell] = r
        final = r["curve"][-1]
        print(f"{cell.upper():5s} {r['params']:>7,} params: {r['steps']:5d} steps in "
              f"{final[0]:.1f} CPU s ({final[3]:.1f} s wall), val loss {r['curve'][0][2]:.3f} "
              f"-> {final[2]:.3f} nats/char", flush=True)
    path = plot_curves(results, budget, os.path.join(args.out, "char_lm_cells_curves.png"))
    print(f"figure: {path}")

    trainer = results["rnn"]["trainer"]
    train_text = trainer.data.vocab.decode(trainer.data.train)
    known = set(WORD.findall(train_text))
    shares = {}
    for cell, r in results.items():
        samples = samples_for(r["trainer"], length, args.seed, known)
        shares[cell] = {t: s for t, (_, s) in samples.items()}
        for temp, (text, share) in samples.items():
            print(f"----- {cell.upper()} at temperature {temp} ({share:.0%} real words) -----")
            print("The " + text)
    print(f"(all in {time.perf_counter() - t0:.1f} s)")

    final = {cell: r["curve"][-1][2] for cell, r in results.items()}
    winner = min(final, key=final.get)
    steps = {cell: r["steps"] for cell, r in results.items()}
    answers.add("With the same training time, which cell reaches the lowest validation loss?",
                f"{winner.upper()}: after {budget:g} CPU seconds each, val loss "
                + ", ".join(f"{c.upper()} {final[c]:.3f}" for c in CELLS)
                + " nats/char (ln V = "
                f"{np.log(len(trainer.data.vocab)):.2f} is guessing); the steps taken: "
                + ", ".join(f"{c.upper()} {steps[c]}" for c in CELLS)
                + ". Expected (Karpathy et al. 2015): a gated cell ahead of the vanilla RNN.",
                winner in ("gru", "lstm"))
    common = min(steps.values())
    per_step = {cell: loss_at_step(r["curve"], common) for cell, r in results.items()}
    best_per_step = min(per_step, key=per_step.get)
    answers.add("Per update, which cell learns most (all compared at the step count the "
                "slowest reached)?",
                f"at step {common}: " + ", ".join(f"{c.upper()} {per_step[c]:.3f}" for c in CELLS)
                + f" nats/char; best {best_per_step.upper()}. Expected: the gated cells "
                "(GRU, LSTM) below the RNN.",
                per_step["rnn"] > min(per_step["gru"], per_step["lstm"]))
    mean_share = {t: float(np.nanmean([shares[c][t] for c in CELLS])) for t in TEMPERATURES}
    answers.add("What does the sampling temperature do to the text?",
                "share of sampled words that are words of the training text, mean over the "
                "three models: " + ", ".join(f"T={t:g} {mean_share[t]:.0%}" for t in TEMPERATURES)
                + "; per model: " + "; ".join(
                    f"{c.upper()} " + "/".join(f"{shares[c][t]:.0%}" for t in TEMPERATURES)
                    for c in CELLS)
                + ". Expected: fewer real words as the temperature rises.",
                bool(mean_share[0.5] >= mean_share[1.0] >= mean_share[1.5]))


# %%
def build_parser():
    p = lesson_parser("char_lm_cells.py", __doc__)
    p.add_argument("--budget", type=float, default=0.0,
                   help="CPU seconds of training per cell (default 15; 0.4 with --quick)")
    p.add_argument("--hidden", type=int, default=0,
                   help="hidden units of every cell (default 128; 32 with --quick)")
    return p


if __name__ == "__main__":
    sys.exit(run_lesson(main, __doc__, parser=build_parser()))
