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

# %%
import sys
import time

from scratchrnn.analysis.gradient_flow import FORGET_BIASES, decay_rate, layer_flow
from scratchrnn.analysis.plots import gradient_flow_plot
from scratchrnn.core.backend import CPU
from scratchrnn.blocks.layers import GRU, LSTM, RNN
from scratchrnn.lessons import run_lesson
from scratchrnn.book.optim import clip_grad_norm, global_grad_norm, make_optimizer
from scratchrnn.blocks.regression import SequenceRegressor

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


# %% [markdown]
# ## Gradient clipping
#
# An exploding gradient is a single enormous step. The usual remedy rescales the
# whole gradient when its global norm exceeds a threshold (``clip_grad_norm``), which
# keeps its direction and bounds the step at ``lr * max_norm``. The task: a tanh RNN
# (32 units, recurrent gain 2) reads N(0, 1) noise and must output the value it read
# two steps earlier; 60 steps per sequence, plain SGD, learning rate 0.1, with and
# without clipping at norm 1, from several seeds.

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


def plot_clipping(runs, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    colours = {"no clipping": "tab:red", "clip_grad_norm 1": "tab:blue"}
    for label, seeds in runs.items():
        for i, r in enumerate(seeds):
            kw = dict(c=colours[label], lw=0.9, alpha=0.7, label=label if i == 0 else None)
            axes[0].plot(r["loss"], **kw)
            axes[1].plot(r["norm"], **kw)
            axes[2].plot(r["move"], **kw)
    for ax, name in zip(axes, ("training loss (MSE)", "gradient norm before clipping",
                               "step size ‖Δθ‖ = lr × applied norm")):
        ax.set_yscale("log")
        ax.set_xlabel("update")
        ax.set_title(name, fontsize=10)
        ax.grid(alpha=0.3, which="both")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


# %% [markdown]
# ## Run it, and the questions

# %%
def main(args, backend, answers):
    steps = 20 if args.quick else 100
    t0 = time.perf_counter()
    gain = 3.0
    cells = the_cells(backend, args.seed, gain)
    flows = measure_flow(cells, steps, 4 if args.quick else 16, args.seed, backend)
    curves = {label: (np.arange(flows[label][which].size), flows[label][which])
              for label, (_, which) in cells.items()}
    gradient_flow_plot(curves, f"{args.out}/vanishing_gradients.png",
                       xlabel="distance N - t (steps)",
                       ylabel="‖∂h_N/∂h_t‖  (LSTM: ‖∂c_N/∂c_t‖)")
    rates = {label: decay_rate(curves[label][1]) for label in curves}
    at = min(steps, 50)
    for label in curves:
        print(f"{label:22s} rate per step {rates[label]:.3f}   norm at N-t={at}: "
              f"{curves[label][1][at]:.3g}")
    print(f"Jacobian norms in {time.perf_counter() - t0:.1f} s")

    decaying = [k for k, r in rates.items() if r < 0.99]
    flat = [k for k, r in rates.items() if 0.99 <= r <= 1.01]
    exploding = [k for k, r in rates.items() if r > 1.01]
    answers.add("Which cells' gradients decay and which explode (untrained, random input)?",
                f"fitted rate per step over {steps} steps: " + "; ".join(
                    f"{k} {r:.3f}" for k, r in rates.items())
                + f". Decay (<0.99): {', '.join(decaying) or 'none'}; about flat: "
                f"{', '.join(flat) or 'none'}; grow (>1.01): {', '.join(exploding) or 'none'}.",
                None)
    lstm_h10 = flows["LSTM fb=+10"]
    answers.add("Is the LSTM by construction free of exploding gradients?",
                f"no: with forget bias +10 ‖∂c_N/∂c_t‖ grows by {rates['LSTM fb=+10']:.3f} per "
                f"step, reaching {lstm_h10['c'][at]:.3g} at distance {at} "
                f"(‖∂h_N/∂h_t‖ through h alone: {lstm_h10['h'][at]:.3g}).",
                rates["LSTM fb=+10"] > 1.0)
    order = [f"LSTM fb={b:+g}" for b in sorted(FORGET_BIASES)]
    answers.add("Does the initialisation (here the forget-gate bias) matter a lot?",
                "norm at distance " + str(at) + " by forget bias: " + "; ".join(
                    f"{k.split('=')[1]} {curves[k][1][at]:.3g}" for k in order)
                + ". A larger bias keeps more gradient (the norms rise with the bias).",
                all(curves[a][1][at] < curves[b][1][at] for a, b in zip(order, order[1:])))
    answers.add("Does a plain RNN vanish and a large-weight RNN explode?",
                f"default init: rate {rates['RNN']:.3f} per step, norm {curves['RNN'][1][at]:.3g} "
                f"at distance {at}; recurrent gain {gain:g}: rate "
                f"{rates[f'RNN W_h gain {gain:g}']:.3f}, norm "
                f"{curves[f'RNN W_h gain {gain:g}'][1][at]:.3g}.",
                rates["RNN"] < 1.0 < rates[f"RNN W_h gain {gain:g}"])

    # ---- clipping
    updates = 30 if args.quick else 300
    n_seeds = 1 if args.quick else 3
    t0 = time.perf_counter()
    runs = {label: [train_echo(max_norm, args.seed + s, updates, backend)
                    for s in range(n_seeds)]
            for label, max_norm in (("no clipping", None), ("clip_grad_norm 1", 1.0))}
    plot_clipping(runs, f"{args.out}/gradient_clipping.png")
    print(f"clipping runs in {time.perf_counter() - t0:.1f} s")

    def summary(r):
        done = r["loss"].size
        tail = r["loss"][-50:].mean() if done else float("nan")
        return (f"{done}/{updates} updates finite, last-50 mean loss {tail:.3g}, "
                f"max gradient norm {r['norm'].max():.3g}, max step {r['move'].max():.3g}")

    lines = []
    for label, seeds in runs.items():
        for s, r in enumerate(seeds):
            lines.append(f"{label}, seed {args.seed + s}: {summary(r)}")
            print(lines[-1])
    tail = {label: [r["loss"][-50:].mean() if r["loss"].size == updates else float("inf")
                    for r in seeds] for label, seeds in runs.items()}
    answers.add("What does gradient clipping do to a model whose gradient norm explodes?",
                " | ".join(lines) + ". The target's variance is about 1.",
                all(c < 1.0 and c < u for c, u in zip(tail["clip_grad_norm 1"],
                                                        tail["no clipping"])))


# %%
if __name__ == "__main__":
    sys.exit(run_lesson(main, __doc__))
