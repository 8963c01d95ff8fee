"""Inside a vanilla RNN and an LSTM: their states on a text, and how far back they look.

Two small character models, a vanilla (Keras "SimpleRNN") RNN and an LSTM of the same
width, are trained briefly on Python source code (the embedded ``python-stdlib``
corpus). Then, through ``scratchrnn.analysis``: the hidden states (and the LSTM's cell
states) of the units that best track "inside a string" and bracket depth, drawn as text
heatmaps, red positive and blue negative; and the input-gradient dependency (saliency):
how much the prediction at position t depends on each earlier character, and how far
back that dependency reaches in each model.
"""
# %% [markdown]
# # Exploring a vanilla RNN and an LSTM: states, units and dependency
#
# Two models read Python's standard library character by character: an embedding of
# 16 numbers per character, one recurrent layer of ``--hidden`` units (a tanh RNN, or an
# LSTM), a linear head, softmax. Both are trained by the library's ``Trainer`` for the
# same number of steps (truncated BPTT, 64 characters x 32 streams, Adam). Code is
# the text of choice here because it is full of structure a model must remember:
# open brackets, open strings.
#
# Then three questions, each answered by ``scratchrnn.analysis``:
#
# 1. **States.** ``activations.collect`` runs a model over a stretch of held-out text
#    and keeps every unit's value at every character. ``neurons.find_neurons``
#    correlates every unit with ground-truth features of the text (``features``: inside
#    a string, bracket depth); ``heatmap.text_heatmap_png`` draws the best unit's value
#    behind each character, red above zero and blue below.
# 2. **Dependency.** ``saliency.saliency_matrix`` takes, with the model's own backward
#    pass, the gradient of the loss at position t with respect to the input at every
#    earlier position s. Its size is how much character s mattered to that prediction.
#    Averaged over many targets as a function of the distance t - s, it shows how far
#    back each model looks.
# 3. **Long-range cases.** ``saliency.long_range_targets`` picks closing brackets and
#    quotes whose opener lies far back: does the saliency spike at the opener?

# %% [markdown]
# ## Parameters
#
# Change them here in a notebook; from a terminal, ``python scripts/explorer.py --quick
# --steps 500`` overrides them. ``None`` means the default of the mode.

# %% tags=["parameters"]
quick = False       # True: tiny sizes, the whole lesson in seconds
seeds = None        # seeds per model (None: 3; 2 with quick)
seed = 0            # the first seed
steps = None        # training steps per model (None: 2000; 20 with quick)
hidden = None       # hidden units of both models (None: 64; 16 with quick)
backend = "numpy"   # numpy | cupy | auto
out = None          # output folder (None: a new lessons-out/explorer/run-N here)
replace = False     # let ``out`` overwrite this lesson's earlier outputs there

# %%
import lessonkit
from lessonkit import Param

SPEC = {                       # the settings above: kind, full-run value, quick value
    "steps": Param("int", 2000, 20, help="training steps per model"),
    "hidden": Param("int", 64, 16, help="hidden units of both models"),
}
L = lessonkit.start("explorer", globals(), SPEC)

# %%
import os  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from scratchrnn.analysis import activations, heatmap, neurons, saliency  # noqa: E402
from scratchrnn.analysis.features import python_lex  # noqa: E402
from scratchrnn.core.backend import CPU  # noqa: E402
from scratchrnn.lm.run import TrainConfig, Trainer  # noqa: E402

np = CPU.xp            # host arrays: results and figures

MODELS = {"RNN": "rnn", "LSTM": "lstm"}
FEATURES = ("in_string", "bracket_depth")
REACH_LEVEL = 0.01     # the dependency "reaches" as far as it stays above 1% of its peak


# %% [markdown]
# ## Training both models
#
# ``Trainer(cfg).run()`` is the same run as ``scratchrnn train`` (its checkpoints go to
# a temporary folder we throw away). Both models see the same windows in the same order.

# %%
def train_model(cell, hidden, steps, max_chars, seed, backend):
    """A trained CharLM and the run's data (vocab, splits) after ``steps`` steps."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrainConfig(source="python-stdlib", max_chars=max_chars, cell=cell,
                          hidden_size=hidden, num_layers=1, embedding_size=16, seq_len=64,
                          batch_size=32, lr=3e-3, max_steps=steps, max_minutes=None,
                          eval_every=steps, eval_tokens=20_000, seed=seed,
                          backend=backend.name, out_dir=os.path.join(tmp, cell), progress=False)
        trainer = Trainer(cfg)
        t0 = time.process_time()
        result = trainer.run()
    return result.model, trainer.data, result.history["val"][-1]["loss"], time.process_time() - t0


# %% [markdown]
# ## States: the units that track strings and brackets
#
# The analysed text is the start of the validation split; the training split before it
# is the lexer's ``prefix``, so a string that opened before the analysed text is known
# to be open. For the LSTM both the hidden state h and the cell state c are searched.

# %%
def best_units(model, acts, feats):
    """feature -> the Neuron (layer, kind, unit, r) with the largest |r| (h, and c for LSTM)."""
    kinds = ("h", "c") if model.config["cell"] == "lstm" else ("h",)
    found = neurons.find_neurons(acts, feats, top=1, kinds=kinds)
    return {name: hits[0] for name, hits in found.items() if hits}


def draw_unit(text, acts, neuron, start, length, path, title):
    """A text heatmap of one unit over text[start:start+length]; c is shown through tanh."""
    trace = neurons.trace(acts, neuron)
    if neuron.kind == "c":
        trace = np.tanh(trace)
    stop = start + length
    return heatmap.text_heatmap_png(text[start:stop], trace[start:stop], path, mode="signed",
                                    vmax=1.0, max_lines=14, wrap_at=90, title=title)


# %% [markdown]
# ## Dependency: saliency against distance
#
# Windows of ``W`` characters are taken from the analysed text, each started from the
# state the model had there (read from the collected activations). In every window the
# last 40 positions are targets, so each target has at least ``W - 41`` characters
# before it. Per target the saliency row is divided by its largest value; the median
# over all targets at each distance d = t - s is the dependency curve.

# %%
def state_before(model, acts, pos):
    """The model's state (batch 1) after reading characters 0..pos-1 of the analysed text."""
    xp = model.xp
    if pos <= 0:
        return None
    h = xp.asarray(np.stack([layer["h"][pos - 1] for layer in acts.layers])[:, None, :])
    if model.config["cell"] != "lstm":
        return h
    c = xp.asarray(np.stack([layer["c"][pos - 1] for layer in acts.layers])[:, None, :])
    return h, c


def dependency_curve(model, ids, acts, window, n_windows, max_distance, seed):
    """(max_distance + 1,) median over targets of saliency / row peak at each distance."""
    rng = np.random.default_rng(seed)
    starts = rng.choice(np.arange(1, ids.size - window - 1), size=n_windows, replace=False)
    targets = np.arange(window - 40, window)
    rows = []
    for s0 in starts:
        S = saliency.saliency_matrix(model, ids[s0:s0 + window + 1], targets,
                                     state=state_before(model, acts, s0))      # (K, W)
        for k, t in enumerate(targets):
            row = S[k, :t + 1][::-1]                   # distance 0 (the last input) first
            rows.append(row[:max_distance + 1] / max(row.max(), 1e-30))
    return np.median(np.array(rows), axis=0)


def reach(curve, level=REACH_LEVEL):
    """The largest distance at which the curve is still at least ``level``."""
    above = np.flatnonzero(curve >= level)
    return int(above.max()) if above.size else 0


def opener_spikes(model, text, ids, acts, prefix, window, count, path_for):
    """For closing brackets/quotes whose opener lies up to ``window`` back: the saliency at
    the opener over the mean saliency of the 10 characters around it (a spike is > 1).
    Draws the first as a heatmap (log scale, 4 decades). Returns [(char, distance, ratio)]."""
    lex = python_lex(text, prefix)
    out = []
    for k, i in enumerate(saliency.long_range_targets(text, window - 1, count, prefix)):
        d = lex.opener_distance[i]
        start = max(0, i - window + 1)
        chars = ids[start:i + 1]                       # the last one is the predicted closer
        sal = saliency.saliency(model, chars, chars.size - 2, state=state_before(model, acts, start))
        o = i - d - start                              # the opener's index in the window
        near = np.r_[sal[max(0, o - 5):o], sal[o + 1:o + 6]]
        out.append((text[i], int(d), float(sal[o] / max(near.mean(), 1e-30))))
        if k == 0:
            logged = np.clip(np.log10(np.maximum(sal, 1e-30) / sal.max()) + 4.0, 0.0, None)
            heatmap.text_heatmap_png(text[start:i + 1], np.r_[logged, 0.0], path_for(text[i]),
                                     mode="magnitude", vmax=4.0, max_lines=14, wrap_at=90,
                                     highlight=i - start,
                                     title=f"saliency for {text[i]!r}, opener {d} back (log, "
                                           "4 decades)")
    return out


def plot_dependency(curves, reaches):
    """curves: name -> [seed] (D+1,) dependency curves; drawn as log10, mean ± sd."""
    fig = lessonkit.new_figure(7.5, 4.4)
    ax = fig.subplots()
    for name, runs in curves.items():
        logs = np.log10(np.maximum(np.asarray(runs), 1e-30))
        lessonkit.band(ax, np.arange(logs.shape[1]), logs,
                       f"{name}: reaches {lessonkit.pm(reaches[name], 0)} characters back")
    ax.axhline(np.log10(REACH_LEVEL), c="0.5", ls=":", lw=1)
    ax.set_xlabel("distance t - s back from the prediction (characters)")
    ax.set_ylabel("log10 |dL_t / dx_s| / its peak (median over targets)")
    ax.set_title("how far back the next-character prediction depends on the input", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return L.figure(fig, "dependency")


# %% [markdown]
# ## Run it, and the questions

# %%
def analyse(name, cell, P, s, backend, window, n_windows, max_d):
    """Train one model and analyse it: val loss, best units, dependency curve, spikes."""
    max_chars = 60_000 if P.quick else 800_000
    n_chars = 1_500 if P.quick else 6_000
    model, data, val, cpu = train_model(cell, P.hidden, P.steps, max_chars, s, backend)
    ids = np.asarray(data.val[:n_chars])
    text = data.vocab.decode(ids)
    prefix = data.vocab.decode(data.train)
    acts = activations.collect(model, ids)
    feats = neurons.text_features(text, prefix, FEATURES)
    # like with like: the best of the H units of h in both models (the LSTM's c separately)
    units_h = {f: hits[0] for f, hits in neurons.find_neurons(acts, feats, 1, ("h",)).items()
               if hits}
    units_c = ({f: hits[0] for f, hits in neurons.find_neurons(acts, feats, 1, ("c",)).items()
                if hits} if cell == "lstm" else {})
    curve = dependency_curve(model, ids, acts, window, n_windows, max_d, s)
    r = dict(model=model, val=val, cpu=cpu, text=text, acts=acts, units_h=units_h,
             units_c=units_c, curve=curve, reach=reach(curve), feats=feats, ids=ids,
             prefix=prefix, seed=s)
    print(f"seed {s} {name:5s} {model.num_params():,} params, {P.steps} steps in {cpu:.1f} CPU "
          f"s: val {val:.3f} nats/char; " + "; ".join(
              f"best {f} h unit {n.label} r={n.r:+.2f}" for f, n in units_h.items())
          + f"; dependency reaches {r['reach']} chars", flush=True)
    return r


def main(L):
    P = L.P
    window, n_windows, max_d = (60, 2, 20) if P.quick else (160, 6, 100)
    results = {name: [analyse(name, cell, P, s, L.backend, window, n_windows, max_d)
                      for s in L.seeds] for name, cell in MODELS.items()}

    curves = {n: [r["curve"] for r in runs] for n, runs in results.items()}
    reaches = {n: [r["reach"] for r in runs] for n, runs in results.items()}
    plot_dependency(curves, reaches)
    first = {name: runs[0] for name, runs in results.items()}   # the heatmaps: first seed
    text, feats = first["RNN"]["text"], first["RNN"]["feats"]
    start = neurons.best_window(feats["in_string"], 400)
    for name, r in first.items():
        kinds = ("h", "c") if name == "LSTM" else ("h",)   # the LSTM: best h and best c unit
        shown = [hit for kind in kinds for hit in neurons.find_neurons(
            r["acts"], {"s": feats["in_string"]}, 1, (kind,))["s"]]
        for neuron in shown:
            what = f"tanh(c[{neuron.unit}])" if neuron.kind == "c" else f"h[{neuron.unit}]"
            L.written(draw_unit(
                text, r["acts"], neuron, start, 400,
                L.path(f"{name.lower()}_{neuron.kind}.png"),
                f"{name} {what}, r = {neuron.r:+.2f} with 'inside a string': red > 0, blue < 0"))
    spikes = {}
    for name, r in first.items():
        path = L.path(f"saliency_{name.lower()}.png")
        spikes[name] = opener_spikes(r["model"], r["text"], r["ids"], r["acts"], r["prefix"],
                                     window, 3, lambda ch, p=path: str(p))
        if spikes[name]:
            L.written(path)

    pm = lessonkit.pm
    val = {n: [r["val"] for r in runs] for n, runs in results.items()}
    params = {n: runs[0]["model"].num_params() for n, runs in results.items()}
    cpu = {n: np.mean([r["cpu"] for r in runs]) for n, runs in results.items()}
    held, how = lessonkit.compare(val["LSTM"], val["RNN"])
    L.answer("Which model predicts the next character better after the same brief training?",
             f"val loss RNN {pm(val['RNN'])}, LSTM {pm(val['LSTM'])} nats/char after {P.steps} "
             f"steps each over {P.seeds} seeds ({params['RNN']:,} vs {params['LSTM']:,} "
             f"parameters; {cpu['RNN']:.0f} vs {cpu['LSTM']:.0f} CPU s per seed). The LSTM is "
             f"{how}; {lessonkit.verdict(held)} (the explorer notebook: the LSTM ahead).", held)
    held, how = lessonkit.compare(reaches["LSTM"], reaches["RNN"], lower_is_better=False)
    at = {n: {d: pm([float(np.log10(max(c[d], 1e-30))) for c in curves[n]], 1)
              for d in (10, 30, max_d) if d < curves[n][0].size} for n in curves}
    L.answer("How far back does the prediction depend on the input?",
             f"the median saliency stays above {REACH_LEVEL:.0%} of its peak up to "
             f"{pm(reaches['RNN'], 0)} characters back in the RNN and {pm(reaches['LSTM'], 0)} "
             "in the LSTM (log10 relative saliency at distance " + "; ".join(
                 f"{n}: " + ", ".join(f"{d} -> {v}" for d, v in a.items())
                 for n, a in at.items())
             + f"). The LSTM's reach is {how} characters; {lessonkit.verdict(held)} (the LSTM "
             "looks further back than the RNN).", held)
    for feat, what in (("in_string", "inside a string (quote-like)"),
                       ("bracket_depth", "bracket depth")):
        r_h = {n: [abs(r["units_h"][feat].r) if feat in r["units_h"] else 0.0 for r in runs]
               for n, runs in results.items()}
        r_c = [abs(r["units_c"][feat].r) if feat in r["units_c"] else 0.0
               for r in results["LSTM"]]
        held, how = lessonkit.compare(r_h["LSTM"], r_h["RNN"], lower_is_better=False)
        L.answer(f"Is there a unit that tracks {what}?",
                 f"the best |r| among the {P.hidden} hidden units h of each model: RNN "
                 f"{pm(r_h['RNN'], 2)}, LSTM {pm(r_h['LSTM'], 2)} over {P.seeds} seeds (first "
                 "seed's units: " + ", ".join(
                     f"{n} {runs[0]['units_h'][feat].label} r = {runs[0]['units_h'][feat].r:+.2f}"
                     for n, runs in results.items() if feat in runs[0]["units_h"])
                 + f"); the LSTM's cell state c, another {P.hidden} candidates: "
                 f"{pm(r_c, 2)}. LSTM h against RNN h is {how}; {lessonkit.verdict(held)} "
                 "(Karpathy et al.: the LSTM has the clearer such unit).", held)
    L.answer("At a closing bracket or quote, does the saliency spike at its opener?",
             "saliency at the opener / mean of the 10 characters around it (first seed): "
             + "; ".join(f"{n}: " + (", ".join(f"{ch!r} {d} back x{ratio:.2g}"
                                               for ch, d, ratio in s)
                                     or "no such closer in the analysed text")
                         for n, s in spikes.items()) + ".")


# %%
L.run(main)
