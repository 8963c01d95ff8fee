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

# %% [markdown]
# ## Parameters
#
# Change them here in a notebook; from a terminal, ``python scripts/sine_teacher_forcing.py
# --quick --seeds 5`` overrides them. ``None`` means the default of the mode (full or quick).

# %% tags=["parameters"]
quick = False       # True: tiny sizes, the whole lesson in seconds
seeds = None        # seeds per setting (None: 3; 2 with quick)
seed = 0            # the first seed
steps = None        # Adam steps per run (None: 600; 40 with quick)
hidden = None       # RNN units (None: 20; 8 with quick)
backend = "numpy"   # numpy | cupy | auto
out = None          # output folder (None: a new lessons-out/sine_teacher_forcing/run-N here)
replace = False     # let ``out`` overwrite this lesson's earlier outputs there

# %%
import lessonkit
from lessonkit import Param

SPEC = {                       # the settings above: kind, full-run value, quick value
    "steps": Param("int", 600, 40, help="Adam steps per run"),
    "hidden": Param("int", 20, 8, help="units of the RNN"),
}
L = lessonkit.start("sine_teacher_forcing", globals(), SPEC)

# %%
import time  # noqa: E402

from scratchrnn.blocks.layers import RNN  # noqa: E402
from scratchrnn.blocks.regression import SequenceRegressor  # noqa: E402
from scratchrnn.book.optim import make_optimizer  # noqa: E402
from scratchrnn.core.backend import CPU  # noqa: E402
from scratchrnn.core.errors import TrainingDiverged  # noqa: E402

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
def plot_predictions(wave, results):
    labels = list(results)
    fig = lessonkit.new_figure(15, 6.4)
    axes = fig.subplots(2, 4, sharex=True, sharey=True)
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
    return L.figure(fig, "predictions")


def geometric_mean(values, axis=None):
    """exp(mean(log values)): the typical size of losses spread over orders of magnitude."""
    return np.exp(np.mean(np.log(values), axis=axis))


def plot_sampling_losses(results):
    labels = list(results)
    fig = lessonkit.new_figure(13, 4.2)
    ax1, ax2 = fig.subplots(1, 2)
    for i, label in enumerate(labels):
        vals = np.array([r["sampling"] for r in results[label]])
        shown = np.log10(np.maximum(np.where(np.isfinite(vals), vals, 10.0), 1e-12))
        m, sd = shown.mean(), shown.std(ddof=1) if shown.size > 1 else 0.0
        ax1.bar(i, 10 ** m, color="tab:blue" if "TF" in label else "tab:orange", alpha=0.6)
        ax1.errorbar(i, 10 ** m, yerr=[[10 ** m - 10 ** (m - sd)], [10 ** (m + sd) - 10 ** m]],
                     c="k", capsize=4, lw=1)
        ax1.scatter(np.full(vals.size, i), 10 ** shown, c="k", s=12, zorder=3)
        hist = [r["history"] for r in results[label] if r["history"]]
        if hist:
            n = min(len(hh) for hh in hist)
            steps = [h[0] for h in hist[0][:n]]
            logs = [[np.log10(max(h[2], 1e-12)) for h in hh[:n]] for hh in hist]
            m_c = np.mean(logs, axis=0)
            s_c = np.std(logs, axis=0, ddof=1) if len(logs) > 1 else np.zeros_like(m_c)
            line, = ax2.plot(steps, 10 ** m_c, label=label, ls="-" if "TF" in label else "--")
            ax2.fill_between(steps, 10 ** (m_c - s_c), 10 ** (m_c + s_c), alpha=0.12,
                             color=line.get_color(), lw=0)
    ax1.set_xticks(range(len(labels)))
    ax1.set_xticklabels(labels, rotation=30, ha="right", fontsize=8)
    ax1.set_yscale("log")
    ax1.set_ylabel("sampling MSE (bar: geometric mean,\nwhisker: × geometric sd; dots: seeds)")
    ax2.set_yscale("log")
    ax2.set_xlabel("training step")
    ax2.set_ylabel("sampling MSE (geometric mean ± sd over seeds)")
    ax2.legend(fontsize=7, ncol=2)
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    return L.figure(fig, "sampling_loss")


# %% [markdown]
# ## Run it, and the questions

# %%
def log_sampling(results, label):
    """log10 sampling MSE per seed of one setting (a diverged run counts as 10)."""
    return [float(np.log10(max(r["sampling"] if np.isfinite(r["sampling"]) else 10.0, 1e-12)))
            for r in results[label]]


def main(L):
    P = L.P
    wave = sine_wave()
    t0 = time.perf_counter()
    results = run_all(wave, P.seeds, P.seed, P.steps, hidden=P.hidden, lr=1e-2, batch=8,
                      backend=L.backend)
    print(f"trained {len(results)} settings x {P.seeds} seeds, {P.steps} steps each, "
          f"in {time.perf_counter() - t0:.1f} s")
    plot_predictions(wave, results)
    plot_sampling_losses(results)

    logs = {label: log_sampling(results, label) for label in results}
    gm = {label: float(10 ** np.mean(v)) for label, v in logs.items()}
    line = "; ".join(f"{k} {lessonkit.pm(v, 2)}" for k, v in logs.items())
    print("log10 sampling MSE per setting (mean ± sd over seeds): " + line)

    per_seed = lambda prefix: list(np.mean([logs[k] for k in logs if k.startswith(prefix)],
                                           axis=0))
    tf, fr = per_seed("TF"), per_seed("FR")
    held, how = lessonkit.compare(tf, fr)
    L.answer("Teacher forcing or learning on its own samples: which generates better?",
             f"log10 sampling MSE, mean ± sd over {P.seeds} seeds: {line}. Averaged over the "
             f"four settings of each: teacher forcing {lessonkit.pm(tf, 2)}, free running "
             f"{lessonkit.pm(fr, 2)}; teacher forcing is {how} (decades); "
             f"{lessonkit.verdict(held)} (the notebook: teacher forcing trains better, free "
             "running is much harder).", held)
    final = {label: float(np.median([r["history"][-1][1] for r in runs if r["history"]] or
                                    [float("inf")])) for label, runs in results.items()}
    names = list(results)
    rank = lambda v: np.argsort(np.argsort(v))
    rho = float(np.corrcoef(rank([final[k] for k in names]), rank([gm[k] for k in names]))[0, 1])
    best_train, best_gen = min(names, key=final.get), min(names, key=gm.get)
    L.answer("What should the surrogate be: is the training loss a good guide to generation?",
             "median final training loss vs geometric-mean sampling MSE: " + "; ".join(
                 f"{k} {final[k]:.3g} vs {gm[k]:.3g}" for k in names)
             + f". Rank correlation between the two over the {len(names)} settings: "
             f"{rho:+.2f}; the lowest training loss is {best_train}'s, the best generation "
             + ("the same setting's." if best_train == best_gen else f"{best_gen}'s.")
             + " (A teacher-forced training loss is a one-step error; the sampling loss is "
             "what generation needs.)")
    hard = logs["FR k=2 U=all"]
    others = list(np.maximum(logs["FR k=10 U=30"], logs["TF k=2 U=all"]))
    held, how = lessonkit.compare(others, hard)
    L.answer("Does free running with warm start 2 on the whole sequence break training "
             "(the notebook's expectation)?",
             f"log10 sampling MSE {lessonkit.pm(hard, 2)}, against "
             f"{lessonkit.pm(logs['FR k=10 U=30'], 2)} for free running with k=10, U=30 and "
             f"{lessonkit.pm(logs['TF k=2 U=all'], 2)} for teacher forcing with k=2 on the "
             f"whole sequence; the worse of those two is {how}; "
             f"{lessonkit.verdict(held)}.", held)
    effect = {m: list(np.mean([np.subtract(logs[f"{m} k=2 {u}"], logs[f"{m} k=10 {u}"])
                              for u in ("U=30", "U=all")], axis=0)) for m in ("TF", "FR")}
    held = all(np.mean(v) > 0 for v in effect.values())
    L.answer("How does the warm start affect the result?",
             f"log10(sampling MSE with k=2 / with k=10), averaged over the two unrolls: "
             f"teacher forcing {lessonkit.pm(effect['TF'], 2)}, free running "
             f"{lessonkit.pm(effect['FR'], 2)} (above 0: more given values help); "
             f"{lessonkit.verdict(held)}.", held)
    u_effect = {m: list(np.mean([np.subtract(logs[f"{m} {k} U=30"], logs[f"{m} {k} U=all"])
                                for k in ("k=2", "k=10")], axis=0)) for m in ("TF", "FR")}
    L.answer("Unroll 30 vs the whole sequence (the structure longer than the unroll)?",
             f"log10(sampling MSE with U=30 / with the whole period): teacher forcing "
             f"{lessonkit.pm(u_effect['TF'], 2)}, free running {lessonkit.pm(u_effect['FR'], 2)} "
             "(above 0: the short unroll, which never sees a whole period, generates worse).")
    spread = {k: float(max(v) - min(v)) for k, v in logs.items()}
    L.answer("Does the seed matter (the notebook's 'run it several times')?",
             "decades between the best and the worst seed per setting: "
             + "; ".join(f"{k} {v:.2f}" for k, v in spread.items()) + ".")


# %%
L.run(main)
