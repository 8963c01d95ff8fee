"""Vanishing and exploding gradients: how much of ∂h_N/∂h_t survives going back in time.

Untrained RNN, GRU and LSTMs (forget-gate bias 0, +1, −2, +2, +10) read the same random
input; for every distance N−t the Jacobian of the last state with respect to the state
at t is measured by running the cells' own backward step over the forward cache. Then a
tanh RNN whose recurrent weights are large enough for its gradient norm to explode is
trained with and without gradient-norm clipping.
"""
# %% [markdown]
# # Vanishing and exploding gradients
#
# Training a recurrent network multiplies step Jacobians: the gradient that reaches
# the state at time t from a loss at time N passes through
# ∂h_N/∂h_{N-1} · ∂h_{N-1}/∂h_{N-2} · … · ∂h_{t+1}/∂h_t. If those factors are mostly
# smaller than one the product dies out geometrically (vanishing gradients: the early
# steps get no credit), if larger it grows geometrically (exploding gradients: one
# update can throw the weights far away).
#
# We measure ‖∂h_N/∂h_t‖ (for an LSTM the cell state, ‖∂c_N/∂c_t‖) as the
# root-mean-square singular value, ‖J‖_F / √H, so that J = I reads 1.
# ``scratchrnn.analysis.gradient_flow`` computes it by running the cell's hand-written
# backward step for the state only, from H probe vectors at once.

# %% [markdown]
# ## Parameters
#
# Change them here in a notebook; from a terminal, ``python scripts/vanishing_gradients.py
# --quick --seeds 5`` overrides them. ``None`` means the default of the mode (full or quick).

# %% tags=["parameters"]
quick = False       # True: tiny sizes, the whole lesson in seconds
seeds = None        # seeds per cell (None: 3; 2 with quick)
seed = 0            # the first seed
steps = None        # time steps back over which the Jacobians are measured (None: 100; 20)
updates = None      # SGD updates of each clipping run (None: 300; 30)
backend = "numpy"   # numpy | cupy | auto
out = None          # output folder (None: a new lessons-out/vanishing_gradients/run-N here)
replace = False     # let ``out`` overwrite this lesson's earlier outputs there

# %%
import lessonkit
from lessonkit import Param

SPEC = {                       # the settings above: kind, full-run value, quick value
    "steps": Param("int", 100, 20, low=10, help="time steps of the Jacobian measurement"),
    "updates": Param("int", 300, 30, low=10, help="SGD updates of each clipping run"),
}
L = lessonkit.start("vanishing_gradients", globals(), SPEC)

# %%
import time  # noqa: E402

from scratchrnn.analysis.gradient_flow import FORGET_BIASES, decay_rate, layer_flow  # noqa: E402
from scratchrnn.blocks.layers import GRU, LSTM, RNN  # noqa: E402
from scratchrnn.blocks.regression import SequenceRegressor  # noqa: E402
from scratchrnn.book.optim import clip_grad_norm, global_grad_norm, make_optimizer  # noqa: E402
from scratchrnn.core.backend import CPU  # noqa: E402

np = CPU.xp            # host arrays: inputs, results and figures

HIDDEN = 20            # the seed notebook's size


def large_recurrent_weights(layer, gain, seed):
    """Replace the (single-layer) RNN's W_h (H, H) by N(0, gain²/H) draws: a random tanh
    network with gain above 1 is chaotic, and its state Jacobians grow with distance."""
    H = layer.hidden_size
    W = np.random.default_rng(seed).normal(0.0, gain / np.sqrt(H), (H, H))
    layer.params["l0.W_h"][...] = layer.backend.asarray(W, dtype=layer.dtype)
    return layer


# %% [markdown]
# ## The cells, untrained, on random input
#
# One layer of 20 units, one input channel drawn from N(0, 1), float64 (so that tiny
# norms do not underflow), weights at their default initialisation. The LSTM's
# forget-gate bias is set to each of the notebook's values (the forget gate then starts
# near σ(b): 0.5, 0.73, 0.12, 0.88 and 0.99995). A fifth RNN has recurrent weights
# drawn with gain 3: the textbook exploding case.

# %%
def the_cells(backend, seed, explode_gain):
    """label -> (layer, which state to read: "h" or "c")."""
    kw = dict(backend=backend, dtype="float64", seed=seed)
    cells = {"RNN": (RNN(1, HIDDEN, **kw), "h"), "GRU": (GRU(1, HIDDEN, **kw), "h")}
    for b in FORGET_BIASES:
        cells[f"LSTM fb={b:+g}"] = (LSTM(1, HIDDEN, forget_bias=b, **kw), "c")
    cells[f"RNN W_h gain {explode_gain:g}"] = (
        large_recurrent_weights(RNN(1, HIDDEN, **kw), explode_gain, seed + 1), "h")
    return cells


def measure_flow(cells, steps, batch, seed, backend):
    """label -> {"h": (steps+1,), "c": ... (LSTM)} norms of ∂state_N/∂state_{N-d}, d = 0..N."""
    xs = np.random.default_rng(seed).normal(size=(steps, batch, 1))
    return {label: layer_flow(layer, backend.asarray(xs))[0]
            for label, (layer, _) in cells.items()}


def plot_flow(curves, at, path_suffix):
    """Mean over seeds of log10 ‖∂state_N/∂state_{N-d}‖ per cell, ± one sd as a band."""
    fig = lessonkit.new_figure(8.0, 4.6)
    ax = fig.subplots()
    for label, runs in curves.items():
        logs = np.log10(np.maximum(np.asarray(runs), 1e-300))
        lessonkit.band(ax, np.arange(logs.shape[1]), logs, label, lw=1.3)
    ax.axvline(at, c="0.5", ls=":", lw=1)
    ax.set_xlabel("distance N - t (steps)")
    ax.set_ylabel("log10 ‖∂h_N/∂h_t‖  (LSTM: ‖∂c_N/∂c_t‖)")
    ax.set_title("how much gradient survives going back in time (untrained cells)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    return L.figure(fig, path_suffix)


# %% [markdown]
# ## Gradient clipping
#
# An exploding gradient is a single enormous step. The usual remedy rescales the
# whole gradient when its global norm exceeds a threshold (``clip_grad_norm``), which
# keeps its direction and bounds the step at ``lr * max_norm``. The task: a tanh RNN
# (32 units, recurrent gain 2) reads N(0, 1) noise and must output the value it read
# two steps earlier; 60 steps per sequence, plain SGD, learning rate 0.1, with and
# without clipping at norm 1, from several seeds. Each method gets its own row of
# panels, so the clipped runs are not squashed under the unclipped ones' scale.

# %%
def echo_batch(rng, steps, batch, delay):
    """Inputs (T, B, 1) ~ N(0, 1) and targets: the input ``delay`` steps earlier (0 before)."""
    xs = rng.normal(size=(steps, batch, 1))
    ys = np.zeros_like(xs)
    ys[delay:] = xs[:-delay]
    return xs, ys


def train_echo(max_norm, seed, updates, backend, hidden=32, gain=2.0, lr=0.1, steps=60,
               batch=16, delay=2):
    """SGD on the echo task; max_norm None trains without clipping.

    Returns per update: the loss, the gradient norm before clipping, and the step size
    ‖Δθ‖ = lr × the norm actually applied; stops early if the loss is no longer finite.
    """
    rng = np.random.default_rng(seed)
    layer = large_recurrent_weights(RNN(1, hidden, backend=backend, dtype="float64",
                                        seed=seed), gain, seed + 7)
    model = SequenceRegressor(layer, seed=seed + 1)
    opt = make_optimizer("sgd", lr)
    losses, norms, moves = [], [], []
    for _ in range(updates):
        xs, ys = echo_batch(rng, steps, batch, delay)
        model.zero_grad()
        loss, _ = model.loss(backend.asarray(xs), backend.asarray(ys))
        if not np.isfinite(loss):
            break
        model.backward()
        norm = global_grad_norm(model.grads)
        if not np.isfinite(norm):
            break
        if max_norm is not None:
            clip_grad_norm(model.grads, max_norm)
        opt.step(model.params, model.grads)
        losses.append(loss)
        norms.append(norm)
        moves.append(lr * (norm if max_norm is None else min(norm, max_norm)))
    return dict(loss=np.array(losses), norm=np.array(norms), move=np.array(moves))


def plot_clipping(runs, suffix):
    """One row per method (its own log scale): loss, gradient norm, step size per seed."""
    fig = lessonkit.new_figure(14.0, 6.6)
    axes = fig.subplots(len(runs), 3, squeeze=False)
    colours = {"no clipping": "tab:red", "clip_grad_norm 1": "tab:blue"}
    for row, (label, seeds) in zip(axes, runs.items()):
        for i, r in enumerate(seeds):
            kw = dict(c=colours[label], lw=0.9, alpha=0.4 + 0.6 / (i + 1), label=f"seed {i}")
            row[0].plot(r["loss"], **kw)
            row[1].plot(r["norm"], **kw)
            row[2].plot(r["move"], **kw)
        for ax, name in zip(row, ("training loss (MSE)", "gradient norm before clipping",
                                  "step size ‖Δθ‖ = lr × applied norm")):
            ax.set_yscale("log")
            ax.set_title(f"{label}: {name}", fontsize=9)
            ax.grid(alpha=0.3, which="both")
        row[0].axhline(1.0, c="0.4", ls=":", lw=1)        # the target's variance
        row[0].legend(fontsize=7)
    for ax in axes[-1]:
        ax.set_xlabel("update")
    fig.tight_layout()
    return L.figure(fig, suffix)


# %% [markdown]
# ## Run it, and the questions
#
# Every number below is a mean ± standard deviation over the seeds (the weights and the
# random input change with the seed).

# %%
def main(L):
    P, backend = L.P, L.backend
    steps, at = P.steps, min(P.steps, 50)
    gain = 3.0
    norms = {}                                     # label -> [seed] (steps+1,) norms
    for s in L.seeds:
        cells = the_cells(backend, s, gain)
        flows = measure_flow(cells, steps, 4 if P.quick else 16, s, backend)
        for label, (_, which) in cells.items():
            norms.setdefault(label, []).append(flows[label][which])
        lstm_h10 = flows["LSTM fb=+10"]["h"]
        norms.setdefault("LSTM fb=+10 (through h)", []).append(lstm_h10)
    plot_flow({k: v for k, v in norms.items() if "through h" not in k}, at, "jacobians")
    rates = {label: [decay_rate(n) for n in runs] for label, runs in norms.items()}
    at_d = {label: [float(n[at]) for n in runs] for label, runs in norms.items()}
    for label in norms:
        print(f"{label:26s} rate per step {lessonkit.pm(rates[label])}   norm at N-t={at}: "
              f"{np.mean(at_d[label]):.3g}")

    mean_rate = {k: float(np.mean(v)) for k, v in rates.items() if "through h" not in k}
    decaying = [k for k, r in mean_rate.items() if r < 0.99]
    flat = [k for k, r in mean_rate.items() if 0.99 <= r <= 1.01]
    exploding = [k for k, r in mean_rate.items() if r > 1.01]
    L.answer("Which cells' gradients decay and which explode (untrained, random input)?",
             f"fitted rate per step over {steps} steps, {P.seeds} seeds: " + "; ".join(
                 f"{k} {lessonkit.pm(rates[k])}" for k in mean_rate)
             + f". Decay (<0.99): {', '.join(decaying) or 'none'}; about flat: "
             f"{', '.join(flat) or 'none'}; grow (>1.01): {', '.join(exploding) or 'none'}.")

    log_at = {k: np.log10(np.maximum(v, 1e-300)) for k, v in at_d.items()}
    held, how = lessonkit.compare(log_at["LSTM fb=+0"], log_at["RNN"], lower_is_better=False)
    L.answer("Does the LSTM's gradient survive longer than the vanilla RNN's (default init)?",
             f"log10 of the norm at distance {at}: LSTM (cell state, forget bias 0) "
             f"{lessonkit.pm(log_at['LSTM fb=+0'], 1)}, RNN {lessonkit.pm(log_at['RNN'], 1)}, "
             f"GRU {lessonkit.pm(log_at['GRU'], 1)}; the LSTM is {how} (decades); "
             f"{lessonkit.verdict(held)}.", held)

    h10 = "LSTM fb=+10"
    grows = all(r > 1.0 for r in rates[h10])
    L.answer("Is the LSTM by construction free of exploding gradients?",
             f"{'no' if grows else 'here it did not explode'}: with forget bias +10 "
             f"‖∂c_N/∂c_t‖ changes by a factor {lessonkit.pm(rates[h10])} per step, "
             f"reaching {np.mean(at_d[h10]):.3g} at distance {at} (‖∂h_N/∂h_t‖ through h "
             f"alone: {np.mean(at_d[h10 + ' (through h)']):.3g}); "
             f"{lessonkit.verdict(grows)} (a rate above 1 in every seed).", grows)

    order = [f"LSTM fb={b:+g}" for b in sorted(FORGET_BIASES)]
    rising = all(np.mean(log_at[a]) < np.mean(log_at[b]) for a, b in zip(order, order[1:]))
    L.answer("Does the initialisation (here the forget-gate bias) matter a lot?",
             f"log10 norm at distance {at} by forget bias: " + "; ".join(
                 f"{k.split('=')[1]} {lessonkit.pm(log_at[k], 1)}" for k in order)
             + (". The norms rise with the bias at every step of it: "
                if rising else ". The norms do not rise with the bias at every step: ")
             + f"{lessonkit.verdict(rising)}.", rising)

    big = f"RNN W_h gain {gain:g}"
    both = all(r < 1.0 for r in rates["RNN"]) and all(r > 1.0 for r in rates[big])
    L.answer("Does a plain RNN vanish and a large-weight RNN explode?",
             f"default init: rate {lessonkit.pm(rates['RNN'])} per step, norm "
             f"{np.mean(at_d['RNN']):.3g} at distance {at}; recurrent gain {gain:g}: rate "
             f"{lessonkit.pm(rates[big])}, norm {np.mean(at_d[big]):.3g}; "
             f"{lessonkit.verdict(both)} (in every seed).", both)

    # ---- clipping
    t0 = time.perf_counter()
    runs = {label: [train_echo(max_norm, s, P.updates, backend) for s in L.seeds]
            for label, max_norm in (("no clipping", None), ("clip_grad_norm 1", 1.0))}
    plot_clipping(runs, "clipping")
    print(f"clipping runs in {time.perf_counter() - t0:.1f} s")
    tail = max(5, P.updates // 6)
    last = {label: [float(r["loss"][-tail:].mean()) if r["loss"].size == P.updates
                    else float("inf") for r in seeds] for label, seeds in runs.items()}
    peak = {label: [float(r["norm"].max()) if r["norm"].size else float("nan")
                    for r in seeds] for label, seeds in runs.items()}
    done = {label: sum(r["loss"].size == P.updates for r in seeds) for label, seeds in runs.items()}
    held, how = lessonkit.compare(last["clip_grad_norm 1"], last["no clipping"])
    held = held and all(v < 1.0 for v in last["clip_grad_norm 1"])
    L.answer("What does gradient clipping do to a model whose gradient norm explodes?",
             f"mean loss over the last {tail} of {P.updates} updates: clipped "
             f"{lessonkit.pm(last['clip_grad_norm 1'])}, unclipped "
             f"{lessonkit.pm(last['no clipping'])} (the target's variance is about 1; "
             f"finished without overflow: {done['clip_grad_norm 1']} and {done['no clipping']} "
             f"of {P.seeds} seeds); largest gradient norm before clipping "
             f"{max(peak['clip_grad_norm 1']):.3g} vs {max(peak['no clipping']):.3g}. Clipping is "
             f"{how}; {lessonkit.verdict(held)} (clipped below 1 and ahead in every seed).", held)


# %%
L.run(main)
