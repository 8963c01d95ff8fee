"""Teacher forcing vs free running: a vanilla RNN learns to continue a sine wave.

The model reads sin(x), sin(x + 0.1), ... and predicts the next value. Trained with
teacher forcing it always reads the true previous value; trained free running it reads
its own previous prediction after a warm start of k given values, and backpropagation
runs through every fed-back prediction. Each setting (teacher forcing or free running,
warm start 2 or 10, unroll 30 values or the whole period) is trained from several seeds
and judged by its sampling loss: the MSE of a free-running generation of the whole
period after the same warm start.
"""
# %% [markdown]
# # Teacher forcing, free running and warm starts on a sine wave
#
# A one-layer tanh RNN with 20 units and a linear head predicts the next value of a
# sine wave sampled every 0.1 over one period (63 values). At step t the model reads
# an input and writes y_t, its guess for the value at t+1.
#
# * **Teacher forcing**: the input at every step is the true value.
# * **Free running after a warm start of k**: the first k inputs are true values;
#   from then on the input at step t is the model's own y_{t-1}. The gradient flows
#   back through every fed-back prediction (``SequenceRegressor``'s backward carries
#   it through y_{t-1} -> input_t).
#
# What we care about in the end is *generation*: given k true values, how well does
# the model continue the wave by itself? That is the **sampling loss** below: the
# mean squared error of a free-running pass over the whole period.

# %%
import sys
import time

from scratchrnn.core.backend import CPU
from scratchrnn.core.errors import TrainingDiverged
from scratchrnn.blocks.layers import RNN
from scratchrnn.lessons import lesson_parser, run_lesson
from scratchrnn.book.optim import make_optimizer
from scratchrnn.blocks.regression import SequenceRegressor
from scratchrnn.core.validation import int_at_least, positive_int

np = CPU.xp            # host arrays: the data and the figures


def sine_wave(step=0.1):
    """sin over one period [0, 2π) sampled every ``step``: (N,) float64 (N = 63 for 0.1)."""
    return np.sin(np.arange(0.0, 2.0 * np.pi, step))


def as_sequence(values):
    """(N,) values -> inputs (N-1, 1, 1) and next-value targets (N-1, 1, 1), time-major."""
    v = np.asarray(values, dtype=np.float64).reshape(-1, 1, 1)
    return v[:-1], v[1:]


# %% [markdown]
# ## One setting, trained
#
# Each step draws B windows of ``unroll`` consecutive values at random starting points
# (with the whole period there is only one window), predicts every next value and
# takes one Adam step on the mean squared error. Free-running settings read their own
# outputs after ``warm_start`` values during training too; teacher-forced ones read
# every true value (the warm start then matters only when the model generates).

# %%
def train_setting(wave, forcing, warm_start, unroll, seed, steps, hidden, lr, batch, backend):
    """Train one model; returns (model, history, last training window).

    wave: (N,) the whole sine period.  forcing: True for teacher forcing.
    warm_start: k, the given values before free running (training when not forcing,
        always when generating).  unroll: values per training window (<= N).
    history: list of (step, training loss, sampling loss) every ``steps // 20`` steps.
    """
    rng = np.random.default_rng(seed)
    model = SequenceRegressor(RNN(1, hidden, backend=backend, dtype="float64", seed=seed),
                              seed=seed + 1000)
    opt = make_optimizer("adam", lr)
    starts = np.arange(wave.size - unroll + 1)
    every = max(1, steps // 20)
    history, window = [], None
    for step in range(1, steps + 1):
        picks = rng.choice(starts, size=batch)
        windows = np.stack([wave[s:s + unroll] for s in picks], axis=1)[..., None]  # (U, B, 1)
        xs, ys = windows[:-1], windows[1:]
        model.zero_grad()
        loss, _ = model.loss(xs, ys, warm_start=None if forcing else warm_start)
        if not np.isfinite(loss):
            raise TrainingDiverged(f"the loss became {loss} at step {step} "
                                   f"(seed {seed}); lower the learning rate.")
        model.backward()
        opt.step(model.params, model.grads)
        if step % every == 0 or step == steps:
            history.append((step, loss, sampling_loss(model, wave, warm_start)[0]))
            window = (int(picks[0]), backend.asnumpy(model.forward(
                xs[:, :1], warm_start=None if forcing else warm_start)[0]).reshape(-1))
    return model, history, window


def sampling_loss(model, wave, warm_start):
    """MSE of a free-running pass over the whole period after ``warm_start`` given values,
    and the generated values (N-1,) (prediction of wave[1:])."""
    xs, ys = as_sequence(wave)
    pred, _ = model.forward(xs, warm_start=warm_start)
    pred = model.backend.asnumpy(pred).reshape(-1)
    return float(np.mean((pred - ys.reshape(-1)) ** 2)), pred


# %% [markdown]
# ## The eight settings
#
# Teacher forcing or free running, warm start 2 or 10, unroll 30 values or the whole
# period (63), each from ``--seeds`` seeds. The seed notebook's suggestion was that
# free running with warm start 2 over the whole sequence "should break training".

# %%
def settings(whole):
    """(label, forcing, warm_start, unroll) for the eight settings."""
    out = []
    for forcing in (True, False):
        for k in (2, 10):
            for unroll in (30, whole):
                name = "TF" if forcing else "FR"
                out.append((f"{name} k={k} U={'all' if unroll == whole else unroll}",
                            forcing, k, unroll))
    return out


def run_all(wave, n_seeds, first_seed, steps, hidden, lr, batch, backend):
    """label -> list over seeds of dicts (sampling loss, final training loss, curves)."""
    results = {}
    for label, forcing, k, unroll in settings(wave.size):
        runs = []
        for s in range(first_seed, first_seed + n_seeds):
            t0 = time.perf_counter()
            try:
                model, history, window = train_setting(wave, forcing, k, unroll, s, steps,
                                                       hidden, lr, batch, backend)
                loss, generated = sampling_loss(model, wave, k)
            except TrainingDiverged:
                history, window, loss, generated = [], None, float("inf"), None
            runs.append(dict(seed=s, sampling=loss, history=history, window=window,
                             generated=generated, unroll=unroll, seconds=time.perf_counter() - t0))
        results[label] = runs
        finite = [r["sampling"] for r in runs]
        print(f"{label:16s} sampling loss per seed: "
              + ", ".join(f"{v:.4f}" for v in finite), flush=True)
    return results


# %% [markdown]
# ## The figures
#
# First the seed notebook's picture for every setting (first seed): the ground truth,
# the model's prediction on its last training window (with the inputs it was trained
# on), and the free-running generation after the warm start. Then the sampling loss
# of each setting over the seeds.

# %%
def plot_predictions(wave, results, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(results)
    fig, axes = plt.subplots(2, 4, figsize=(15, 6.4), sharex=True, sharey=True)
    t = np.arange(1, wave.size)
    for ax, label in zip(axes.ravel(), labels):
        run = results[label][0]
        ax.plot(t, wave[1:], ls=":", lw=4, c="tab:blue", label="ground truth")
        if run["window"] is not None:
            start, pred = run["window"]
            ax.plot(np.arange(start + 1, start + 1 + pred.size), pred, c="gold", lw=3,
                    marker="o", ms=3, alpha=0.8, label="training prediction")
        if run["generated"] is not None:
            ax.plot(t, run["generated"], c="tab:red", lw=2, alpha=0.8, label="generated")
        ax.set_title(f"{label}: sampling MSE {run['sampling']:.3g}", fontsize=9)
        ax.set_ylim(-1.6, 1.6)
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7, loc="lower left")
    fig.suptitle("TF = teacher forcing, FR = free running, k = warm start, U = unroll "
                 f"(seed {results[labels[0]][0]['seed']})")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def geometric_mean(values, axis=None):
    """exp(mean(log values)): the typical size of losses spread over orders of magnitude."""
    return np.exp(np.mean(np.log(values), axis=axis))


def plot_sampling_losses(results, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(results)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.2))
    for i, label in enumerate(labels):
        vals = np.array([r["sampling"] for r in results[label]])
        shown = np.where(np.isfinite(vals), vals, 10.0)
        ax1.bar(i, geometric_mean(shown), color="tab:blue" if "TF" in label
                else "tab:orange", alpha=0.6)
        ax1.scatter(np.full(vals.size, i), shown, c="k", s=12, zorder=3)
        hist = [r["history"] for r in results[label] if r["history"]]
        if hist:
            steps = [h[0] for h in hist[0]]
            curve = geometric_mean([[max(h[2], 1e-12) for h in hh] for hh in hist], axis=0)
            ax2.plot(steps, curve, label=label, ls="-" if "TF" in label else "--")
    ax1.set_xticks(range(len(labels)))
    ax1.set_xticklabels(labels, rotation=30, ha="right", fontsize=8)
    ax1.set_yscale("log")
    ax1.set_ylabel("sampling MSE (bar: geometric mean; dots: seeds)")
    ax2.set_yscale("log")
    ax2.set_xlabel("training step")
    ax2.set_ylabel("sampling MSE (geometric mean over seeds)")
    ax2.legend(fontsize=7, ncol=2)
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


# %% [markdown]
# ## Run it, and the questions

# %%
def main(args, backend, answers):
    n_seeds = positive_int("--seeds", args.seeds) if args.seeds else (1 if args.quick else 3)
    steps = positive_int("--steps", args.steps) if args.steps else (40 if args.quick else 600)
    if not args.quick:
        int_at_least("--seeds", n_seeds, 3)
    wave = sine_wave()
    t0 = time.perf_counter()
    results = run_all(wave, n_seeds, args.seed, steps, hidden=8 if args.quick else 20,
                      lr=1e-2, batch=8, backend=backend)
    print(f"trained {len(results)} settings x {n_seeds} seeds, {steps} steps each, "
          f"in {time.perf_counter() - t0:.1f} s")
    plot_predictions(wave, results, f"{args.out}/sine_predictions.png")
    plot_sampling_losses(results, f"{args.out}/sine_sampling_loss.png")

    gm = {label: float(geometric_mean([max(r["sampling"], 1e-12) for r in runs]))
          for label, runs in results.items()}
    med = {label: float(np.median([r["sampling"] for r in runs]))
           for label, runs in results.items()}
    line = "; ".join(f"{k} {v:.3g}" for k, v in med.items())
    print("median sampling MSE per setting: " + line)

    tf = [gm[k] for k in gm if k.startswith("TF")]
    fr = [gm[k] for k in gm if k.startswith("FR")]
    answers.add("Teacher forcing or learning on its own samples: which generates better?",
                f"median sampling MSE per setting over {n_seeds} seeds: {line}. Geometric mean "
                f"over the four settings each: teacher forcing {geometric_mean(tf):.3g}, "
                f"free running {geometric_mean(fr):.3g} (the notebook: teacher forcing "
                f"trains better, free running is much harder).",
                bool(geometric_mean(tf) < geometric_mean(fr)))
    final = {label: float(np.median([r["history"][-1][1] for r in runs if r["history"]] or
                                    [float("inf")])) for label, runs in results.items()}
    answers.add("What should the surrogate be: is the training loss a good guide to generation?",
                "median final training loss vs sampling MSE: " + "; ".join(
                    f"{k} {final[k]:.3g} vs {med[k]:.3g}" for k in results)
                + ". Teacher-forced training losses are one-step errors; only the sampling "
                "loss measures what generation needs.", None)
    whole = "U=all"
    hard, easy = gm[f"FR k=2 {whole}"], gm["FR k=10 U=30"]
    answers.add("Does free running with warm start 2 on the whole sequence break training "
                "(the notebook's expectation)?",
                f"its sampling MSE (geometric mean over seeds) is {hard:.3g} against "
                f"{easy:.3g} for free running with k=10, U=30 and "
                f"{gm['TF k=2 U=all']:.3g} for teacher forcing with k=2 on the whole sequence.",
                hard > max(easy, gm["TF k=2 U=all"]))
    k_effect = {m: (gm[f"{m} k=2 U=30"] * gm[f"{m} k=2 {whole}"]) ** 0.5 /
                (gm[f"{m} k=10 U=30"] * gm[f"{m} k=10 {whole}"]) ** 0.5 for m in ("TF", "FR")}
    answers.add("How does the warm start affect the result?",
                f"sampling MSE with k=2 divided by that with k=10 (geometric mean over unrolls "
                f"and seeds): teacher forcing x{k_effect['TF']:.3g}, free running "
                f"x{k_effect['FR']:.3g}; more given values help when the ratio is above 1.",
                k_effect["TF"] > 1 and k_effect["FR"] > 1)
    u_effect = {m: (gm[f"{m} k=2 U=30"] * gm[f"{m} k=10 U=30"]) ** 0.5 /
                (gm[f"{m} k=2 {whole}"] * gm[f"{m} k=10 {whole}"]) ** 0.5 for m in ("TF", "FR")}
    answers.add("Unroll 30 vs the whole sequence (the structure longer than the unroll)?",
                f"sampling MSE with U=30 divided by that with the whole period: teacher forcing "
                f"x{u_effect['TF']:.3g}, free running x{u_effect['FR']:.3g} (above 1: the "
                f"short unroll, which never sees a whole period, generates worse).", None)
    spread = {k: max(r["sampling"] for r in v) / max(min(r["sampling"] for r in v), 1e-12)
              for k, v in results.items()}
    answers.add("Does the seed matter (the notebook's 'run it several times')?",
                "largest/smallest sampling MSE over seeds per setting: "
                + "; ".join(f"{k} x{v:.3g}" for k, v in spread.items()) + ".", None)


# %%
def build_parser():
    p = lesson_parser("sine_teacher_forcing.py", __doc__)
    p.add_argument("--seeds", type=int, default=0,
                   help="seeds per setting (>= 3 in a full run; default 3, 1 with --quick)")
    p.add_argument("--steps", type=int, default=0,
                   help="training steps per run (default 600; 40 with --quick)")
    return p


if __name__ == "__main__":
    sys.exit(run_lesson(main, __doc__, parser=build_parser()))
