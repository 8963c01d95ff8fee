"""Run every analysis on one model and one held-out text, and write the HTML report.

    result = analyze(model, vocab, text, out_dir, prefix=..., train_text=...)
    result.report_path      # out_dir/report.html: one self-contained page
    result.summary          # the numbers (also written to out_dir/summary.json)

The sections, in order (their ids are the page's anchors):

    overview       the model, the text, the RNN's held-out loss, time taken
    activations    what the one stateful forward pass collected (per layer h, c, gates)
    heatmaps       one unit's value on every character: signed and magnitude views
    saturation     fractions of time each gate is < 0.1 / > 0.9 (the paper's Fig. 3)
    saliency       gradient of one next-character loss w.r.t. every earlier input
    gradient-flow  ||dh_T/dh_t|| against T - t, untrained cells and this model
    pca            hidden-state trajectories projected on two principal components
    neurons        units that correlate best with quotes, brackets, column, indentation, comments
    ngram          the n-gram baseline and where the RNN beats it (the paper's section 5)

Everything drawn lands in out_dir as PNG files too. The text heatmaps drawn as PNG are
kept to a few hundred characters each, as matplotlib draws text slowly.
"""
from __future__ import annotations

import json
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

from scratchrnn.analysis import activations as act_mod
from scratchrnn.analysis import compare as compare_mod
from scratchrnn.analysis import gradient_flow, heatmap, html_report, neurons, plots
from scratchrnn.analysis import pca as pca_mod
from scratchrnn.analysis import saliency as sal_mod
from scratchrnn.analysis.html_report import Html, Image, Section, Table
from scratchrnn.backend import CPU
from scratchrnn.errors import DataError

np = CPU.xp

SECTION_IDS = ("overview", "activations", "heatmaps", "saturation", "saliency", "gradient-flow",
               "pca", "neurons", "ngram")
MIN_CHARS = 20


@dataclass
class ReportOptions:
    """Sizes of the analyses (the defaults fit in well under two minutes on 2 CPU cores
    for a 2-layer H=128 LSTM and 20k characters)."""
    ngram_order: int = 9
    ngram_extra_orders: tuple = (1, 3, 5)
    heatmap_chars: int = 400        # characters per HTML heatmap
    png_chars: int = 480            # characters per PNG string plot
    saliency_window: int = 160      # characters per saliency window
    saliency_targets: int = 3
    saliency_matrix_rows: int = 80  # targets in the dependency matrix
    flow_steps: int = 100           # distances 0..flow_steps in the gradient-flow plot
    flow_warmup: int = 50
    flow_windows: int = 1
    top_units: int = 5
    pca_points: int = 4000          # points drawn per PCA plot (all N enter the SVD)
    chunk: int = 256                # window of the stateful forward pass
    seed: int = 0


@dataclass
class ReportResult:
    report_path: str
    out_dir: str
    images: list
    summary: dict
    timings: dict = field(default_factory=dict)


class _Clock:
    """``with clock("name"): ...`` adds the seconds spent to ``clock.timings["name"]``."""

    def __init__(self):
        self.timings = {}

    @contextmanager
    def __call__(self, name):
        t = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - t


def analyze(model, vocab, text, out_dir, prefix="", train_text=None, source="", options=None,
            title="Inside a recurrent network"):
    """Run all analyses of ``model`` (a CharLM over ``vocab``, character level) on ``text``
    and write out_dir/report.html, the PNGs and out_dir/summary.json.

    prefix:     the text that came before ``text`` (for the Python lexer of the features).
    train_text: the n-gram baseline's training text (None: the n-gram section says so).
    source:     a line describing where ``text`` comes from, shown in the report.
    Returns a ReportResult.
    """
    opt = options or ReportOptions()
    if vocab.level != "char":
        raise DataError("The analyses work on character-level models only.")
    if len(text) < MIN_CHARS:
        raise DataError(f"The text to analyse has {len(text)} characters; it needs at least {MIN_CHARS}.")
    os.makedirs(out_dir, exist_ok=True)
    clock = _Clock()
    started = time.perf_counter()
    ids = vocab.encode(text)
    ctx = _Context(model, vocab, text, ids, prefix, out_dir, opt, clock)
    with clock("activations"):
        ctx.acts = act_mod.collect(model, ids, chunk=opt.chunk)
    with clock("features"):
        ctx.feats = neurons.text_features(text, prefix)
    with clock("neuron finder"):
        ctx.found = neurons.find_neurons(ctx.acts, ctx.feats, top=opt.top_units,
                                         kinds=("h", "c") if model.config["cell"] == "lstm" else ("h",))
    sections = []
    builders = [("activations", _activations_section), ("heatmaps", _heatmaps_section),
                ("saturation", _saturation_section), ("saliency", _saliency_section),
                ("gradient flow", _flow_section), ("pca", _pca_section),
                ("neurons", _neurons_section), ("n-gram", lambda c: _ngram_section(c, train_text))]
    for name, build in builders:
        with clock(name):
            sections.append(build(ctx))
    rnn_loss = float(-ctx.acts.next_logp.mean())
    ctx.summary["rnn_loss"] = rnn_loss
    ctx.summary["chars"] = len(text)
    ctx.summary["model"] = dict(model.config)
    ctx.summary["source"] = source
    with clock("report"):
        overview = _overview_section(ctx, source, rnn_loss, clock.timings,
                                     time.perf_counter() - started)
        doc = html_report.build_report([overview] + sections, title,
                                       f"{model.config['num_layers']}-layer {model.config['cell'].upper()} "
                                       f"H={model.config['hidden_size']} on {len(text):,} characters"
                                       + (f" of {source}" if source else ""))
        path = html_report.write_report(os.path.join(out_dir, "report.html"), doc)
    ctx.summary["timings_s"] = {k: round(v, 3) for k, v in clock.timings.items()}
    ctx.summary["total_s"] = round(time.perf_counter() - started, 3)
    with open(os.path.join(out_dir, "summary.json"), "w", encoding="utf-8") as f:
        json.dump(_jsonable(ctx.summary), f, indent=1)
    return ReportResult(path, out_dir, ctx.images, ctx.summary, dict(clock.timings))


class _Context:
    """What the section builders share."""

    def __init__(self, model, vocab, text, ids, prefix, out_dir, opt, clock):
        self.model, self.vocab, self.text, self.ids, self.prefix = model, vocab, text, ids, prefix
        self.out_dir, self.opt, self.clock = out_dir, opt, clock
        self.cell = model.config["cell"]
        self.images = []
        self.summary = {}
        self.acts = self.feats = self.found = None

    def png(self, name):
        path = os.path.join(self.out_dir, name)
        self.images.append(path)
        return path


# ---------------------------------------------------------------- sections
def _overview_section(ctx, source, rnn_loss, timings, total):
    cfg = ctx.model.config
    rows = [{"what": "cell", "value": cfg["cell"]}, {"what": "layers", "value": cfg["num_layers"]},
            {"what": "hidden units per layer", "value": cfg["hidden_size"]},
            {"what": "vocabulary", "value": len(ctx.vocab)},
            {"what": "parameters", "value": f"{ctx.model.num_params():,}"},
            {"what": "analysed text", "value": f"{len(ctx.text):,} characters" + (f" ({source})" if source else "")},
            {"what": "RNN loss on it", "value": f"{rnn_loss:.4f} nats/char ({rnn_loss / np.log(2):.3f} bits/char)"}]
    times = [{"step": k, "seconds": round(v, 2)} for k, v in timings.items()]
    times.append({"step": "total (before writing the page)", "seconds": round(total, 2)})
    expl = ("Analyses after Karpathy, Johnson & Fei-Fei (2015), \"Visualizing and Understanding "
            "Recurrent Networks\", computed with this package's own hand-written forward and backward "
            "passes on held-out text the model did not train on.")
    return Section("overview", "Overview", expl,
                   [Table(rows, ["what", "value"], "the model and the text"),
                    Table(times, ["step", "seconds"], "time per analysis")])


def _activations_section(ctx):
    rows = []
    for k, layer in enumerate(ctx.acts.layers):
        for name, a in layer.items():
            rows.append({"layer": k + 1, "value": name, "shape": f"{a.shape[0]} x {a.shape[1]}",
                         "mean": float(a.mean()), "std": float(a.std()),
                         "min": float(a.min()), "max": float(a.max())})
    expl = ("One stateful forward pass of the model over the whole text, batch 1, in windows of "
            f"{ctx.opt.chunk} steps with the state carried between windows, collects at every character "
            "the hidden state h of every layer and, for gated cells, every gate (LSTM: cell state c and "
            "gates i, f, g, o; GRU: gates r, z, n), read from the caches the cells keep for backward.")
    return Section("activations", "Activations", expl, [Table(rows, caption="what was collected")])


def _snippet(ctx, feature=None, length=None):
    """(start, stop) of a snippet of the text, where ``feature`` varies most if given."""
    length = min(length or ctx.opt.heatmap_chars, len(ctx.text))
    start = 0 if feature is None else neurons.best_window(feature, length)
    return start, start + length


def _display_trace(ctx, neuron, view):
    """(values (N,), vmax, what) of ``neuron`` for a heatmap.

    view "raw":     h as it is (in (-1, 1)); c through tanh, as the LSTM itself reads it.
    view "centred": the trace minus its mean over the whole text, full colour at 2.5
                    standard deviations: shows what a correlation sees even when the unit
                    sits far from 0 all the time.
    """
    tr = neurons.trace(ctx.acts, neuron)
    if view == "centred":
        sd = float(tr.std()) or 1.0
        return tr - tr.mean(), 2.5 * sd, f"{neuron.label} minus its mean (full colour at 2.5 sd)"
    if neuron.kind == "c":
        return np.tanh(tr), 1.0, f"tanh({neuron.label})"
    return tr, 1.0, neuron.label


def _unit_heatmaps(ctx, neuron, name, feature=None, view="raw", magnitude=False):
    """HTML heatmap and a PNG string plot of ``neuron``'s trace on a snippet where ``feature``
    varies most (or the start of the text)."""
    vals, vmax, what = _display_trace(ctx, neuron, view)
    a, b = _snippet(ctx, feature)
    r = f"  (r = {neuron.r:+.2f})" if np.isfinite(neuron.r) else ""
    items = [Html(heatmap.text_heatmap_html(ctx.text[a:b], vals[a:b], mode="signed", vmax=vmax),
                  f"{what}{r}, signed view: red positive, blue negative (characters {a}-{b - 1})")]
    if magnitude:
        mag = np.abs(vals[a:b])
        items.append(Html(heatmap.text_heatmap_html(ctx.text[a:b], mag, mode="magnitude",
                                                    vmax=max(float(mag.max()), 1e-12)),
                          f"|{what}|, magnitude view"))
    p = min(b, a + ctx.opt.png_chars)
    path = heatmap.text_heatmap_png(ctx.text[a:p], vals[a:p], ctx.png(f"{name}.png"), mode="signed",
                                    vmax=vmax, title=what + r)
    items.append(Image(path, f"the same as a PNG string plot (first {p - a} characters of the snippet)"))
    return items


def _heatmaps_section(ctx):
    items = []
    shown = []                     # the best h unit for quotes and for the position in the line
    feats = {f: ctx.feats[f] for f in ("in_string", "column") if f in ctx.feats}
    for feat, hits in neurons.find_neurons(ctx.acts, feats, top=1, kinds=("h",)).items():
        if hits and all(hits[0] != n for n, _ in shown):
            shown.append((hits[0], feat))
    if not shown:                                      # no feature varies: the most active unit
        u = int(np.argmax(ctx.acts[0]["h"].std(axis=0)))
        shown.append((neurons.Neuron(0, "h", u, float("nan")), None))
    for k, (neuron, feat) in enumerate(shown):
        feature = ctx.feats.get(feat)
        items += _unit_heatmaps(ctx, neuron, f"heatmap_{k + 1}", feature, "raw", magnitude=True)
        vals, vmax, what = _display_trace(ctx, neuron, "centred")
        a, b = _snippet(ctx, feature)
        items.append(Html(heatmap.text_heatmap_html(ctx.text[a:b], vals[a:b], mode="signed", vmax=vmax),
                          f"{what}: the centred view"))
        if ctx.cell in ("lstm", "gru"):
            gate = "f" if ctx.cell == "lstm" else "z"
            g = ctx.acts[neuron.layer][gate][:, neuron.unit]
            items.append(Html(heatmap.text_heatmap_html(ctx.text[a:b], g[a:b], mode="magnitude", vmax=1.0),
                              f"the {gate} gate of the same unit (layer {neuron.layer + 1}, unit {neuron.unit}), "
                              "magnitude view, 0 white to 1 full colour"))
    expl = ("The text coloured character by character by the value of one unit after reading that "
            "character. Signed view: red for positive, blue for negative, white at zero (h is in (-1, 1)). "
            "Magnitude view: the absolute value in one hue, white at 0. Centred view: the value minus its "
            "mean over the whole text, which shows the unit's changes when it sits far from zero. "
            "Hover a character for its exact value. The units shown are the hidden units (h) that "
            "correlate best with being inside a string and with the position in the line; the neurons "
            "section searches the cell states too.")
    return Section("heatmaps", "Neuron heatmaps", expl, items)


def _saturation_section(ctx):
    sat = act_mod.gate_saturation(ctx.acts)
    expl = ("For every unit and every sigmoid gate, the fraction of the characters of the whole analysed "
            "text at which the gate is below 0.1 (left-saturated) and above 0.9 (right-saturated), as in "
            "the paper's Figure 3. Each dot is one unit, coloured by layer; a unit on the dashed diagonal "
            "is saturated all the time. Forget gates that sit near the top-left are integrators that "
            "remember for a long time; units near the origin are gates that respond to the input.")
    if not sat:
        return Section("saturation", "Gate saturation",
                       expl + " A vanilla RNN has no gates, so there is nothing to show.",
                       [])
    path = plots.gate_saturation_scatter(sat, ctx.png("gate_saturation.png"))
    rows = act_mod.saturation_summary(sat)
    ctx.summary["saturation"] = rows
    return Section("saturation", "Gate saturation", expl,
                   [Image(path, f"gate saturation over {ctx.acts.num_steps:,} characters"),
                    Table(rows, caption="per gate and layer")])


def _state_at(ctx, pos):
    """The model's state (batch 1) after reading characters 0..pos-1 (zeros at pos 0)."""
    xp = ctx.model.xp
    if pos <= 0:
        return None
    hs = xp.asarray(np.stack([layer["h"][pos - 1] for layer in ctx.acts.layers])[:, None, :])
    if ctx.cell == "lstm":
        cs = xp.asarray(np.stack([layer["c"][pos - 1] for layer in ctx.acts.layers])[:, None, :])
        return hs, cs
    return hs


def _saliency_section(ctx):
    W = min(ctx.opt.saliency_window, len(ctx.text))
    targets = sal_mod.long_range_targets(ctx.text, W - 1, ctx.opt.saliency_targets, ctx.prefix)
    if not targets:
        targets = [W - 1]
    items, rows = [], []
    for k, i in enumerate(targets):
        start = max(0, i - W + 1)
        window = ctx.ids[start:i + 1]                      # the last id is the predicted one
        t = window.size - 2                                # position that predicts it
        sal = sal_mod.saliency(ctx.model, window, t, state=_state_at(ctx, start))
        vals = np.concatenate([_decades(sal, SALIENCY_DECADES), [0.0]])   # the target itself: 0
        snippet = ctx.text[start:i + 1]
        ch = ctx.text[i]
        caption = (f"predicting {ch!r} (character {i}) from the {t + 1} characters before it: "
                   f"|dL/dx_s| per input position s on a log scale, full colour at the largest, white "
                   f"{SALIENCY_DECADES} decades below; outlined = the predicted character")
        items.append(Html(heatmap.text_heatmap_html(snippet, vals, mode="magnitude", vmax=SALIENCY_DECADES,
                                                    highlight=len(snippet) - 1), caption))
        if k == 0:
            path = heatmap.text_heatmap_png(snippet, vals, ctx.png("saliency.png"), mode="magnitude",
                                            vmax=SALIENCY_DECADES, highlight=len(snippet) - 1,
                                            title=f"saliency for predicting {ch!r} (log scale, "
                                                  f"{SALIENCY_DECADES} decades)")
            items.append(Image(path, "the first of these as a PNG string plot"))
        back = np.arange(t, -1, -1)                         # distance of each position to t
        rows.append({"target": repr(ch), "position": i,
                     "saliency at t (last input)": float(sal[t]),
                     "mean 1-10 back": float(sal[max(0, t - 10):t].mean()) if t > 0 else float("nan"),
                     "mean >50 back": float(sal[back > 50].mean()) if np.any(back > 50) else float("nan")})
    # the whole dependency matrix of the first window
    i = targets[0]
    start = max(0, i - W + 1)
    window = ctx.ids[start:i + 1]
    T = window.size - 1
    rows_shown = np.arange(max(0, T - ctx.opt.saliency_matrix_rows), T)
    S = sal_mod.saliency_matrix(ctx.model, window, rows_shown, state=_state_at(ctx, start))
    path = _saliency_matrix_png(S, rows_shown, ctx.png("saliency_matrix.png"))
    items.append(Image(path, f"the last {rows_shown.size} targets of the first window at once: row t = the "
                             "loss of predicting character t+1, column s = input position (log colour "
                             "scale; right of the diagonal is the future, always zero)"))
    ctx.summary["saliency"] = rows
    items.insert(0, Table(rows, caption="saliency near and far from the target"))
    expl = ("The gradient of the loss of one next-character prediction, -ln P(x_{t+1} | x_0..x_t), with "
            "respect to the input vector at every earlier position, computed by the model's hand-written "
            "backward pass (the dx it returns at the input). Its size says how much that character "
            "mattered to this prediction. Targets are closing brackets and quotes whose opener lies far "
            "back: a model that tracks the bracket shows a spot of saliency at the opener.")
    return Section("saliency", "Saliency", expl, items)


SALIENCY_DECADES = 4


def _decades(values, decades):
    """log10(values / max) + decades, clipped at 0: 0 (white) ``decades`` below the largest."""
    top = float(values.max())
    if not top > 0:
        return np.zeros_like(values)
    return np.clip(np.log10(np.maximum(values, top * 10.0 ** -decades) / top) + decades, 0.0, None)


def _saliency_matrix_png(S, rows, path):
    fig = plots.new_figure(6.0, 3.6)
    ax = fig.subplots()
    tiny = max(float(S[S > 0].min()) if np.any(S > 0) else 1e-12, float(S.max()) * 1e-6)
    img = np.log10(np.maximum(S, tiny))
    im = ax.imshow(img, aspect="auto", cmap="magma", interpolation="nearest",
                   extent=(-0.5, S.shape[1] - 0.5, rows[-1] + 0.5, rows[0] - 0.5))
    ax.set_xlabel("input position s")
    ax.set_ylabel("target t (predicts character t+1)")
    fig.colorbar(im, ax=ax, label="log10 |dL_t / dx_s|")
    fig.tight_layout()
    return plots.save_png(fig, path)


def _flow_section(ctx):
    opt = ctx.opt
    steps = max(1, min(opt.flow_steps, len(ctx.ids) - 1))
    warm = max(0, min(opt.flow_warmup, len(ctx.ids) - steps))
    windows = gradient_flow.text_windows(ctx.ids, warm + steps, opt.flow_windows)
    cfg = ctx.model.config
    flows = gradient_flow.untrained_sweep(cfg["vocab_size"], cfg["hidden_size"], windows, warm,
                                          seed=opt.seed, max_distance=steps)
    flows = {f"untrained {k}": v for k, v in flows.items()}
    trained = gradient_flow.model_flow(ctx.model, windows, warm, steps)
    for k, f in enumerate(trained):
        flows[f"trained {cfg['cell'].upper()} layer {k + 1}"] = f
    items = []
    path = plots.gradient_flow_plot(gradient_flow.curves_for_plot(flows, "h"), ctx.png("gradient_flow.png"),
                                    ylabel="||dh_T/dh_t||_F / sqrt(H)")
    items.append(Image(path, "hidden-state gradient flow, RNN, GRU and LSTM with forget-gate bias 0, +1, "
                             "-2, +2, +10 (untrained) and this model (trained)"))
    c_curves = gradient_flow.curves_for_plot(flows, "c")
    if c_curves:
        path = plots.gradient_flow_plot(c_curves, ctx.png("gradient_flow_c.png"),
                                        ylabel="||dc_T/dc_t||_F / sqrt(H)")
        items.append(Image(path, "LSTM cell-state gradient flow"))
    rows = []
    for label, f in flows.items():
        for which, norms in f.items():
            d10 = norms[min(10, norms.size - 1)]
            rows.append({"model": label, "state": which, f"norm at {min(10, norms.size - 1)} steps": float(d10),
                         f"norm at {norms.size - 1} steps": float(norms[-1]),
                         "fitted decay per step": gradient_flow.decay_rate(norms, 1, min(norms.size, 31))
                         if norms.size > 2 else float("nan")})
    ctx.summary["gradient_flow"] = rows
    items.append(Table(rows, caption="per curve: the norm at 10 and at the largest distance, and the "
                                     "geometric rate fitted over distances 1-30"))
    expl = ("How much of the gradient at the last state of a window reaches the state T - t steps "
            "earlier: the norm of the Jacobian dh_T/dh_t (and dc_T/dc_t for an LSTM) as its root-mean-square "
            "singular value, so 1 at distance 0. It is computed by running the state part of each cell's "
            "hand-written step backward in a reverse scan from all H unit vectors at once, on "
            f"{windows.shape[1]} window(s) of this text ({warm} warm-up steps, then {steps}). A vanilla RNN's "
            "gradient dies out geometrically; an LSTM's cell state carries it far when the forget gate is "
            "open (bias +10: almost no decay) and loses it fast when the gate is mostly shut (bias -2).")
    return Section("gradient-flow", "Gradient flow", expl, items)


def _pca_section(ctx):
    classes = pca_mod.pca_classes(ctx.text)
    rng = np.random.default_rng(ctx.opt.seed)
    N = len(ctx.text)
    pick = np.sort(rng.choice(N, size=min(N, ctx.opt.pca_points), replace=False))
    items, rows = [], []
    for k, layer in enumerate(ctx.acts.layers):
        proj, ratio, _ = pca_mod.pca(layer["h"], 2, ctx.model.backend)
        path = plots.pca_plot(proj[pick], classes[pick], ctx.png(f"pca_layer{k + 1}.png"),
                              class_names=pca_mod.PCA_CLASSES,
                              title=f"layer {k + 1} h: PC1 {ratio[0]:.0%}, PC2 {ratio[1]:.0%} of variance")
        items.append(Image(path, f"layer {k + 1}: hidden states of {len(pick):,} characters on the first two "
                                 "principal components, coloured by the character just read"))
        rows.append({"layer": k + 1, "PC1 variance": float(ratio[0]), "PC2 variance": float(ratio[1])})
    ctx.summary["pca"] = rows
    items.append(Table(rows, caption="fraction of the variance of h the two components explain"))
    expl = ("The hidden states of a layer over the whole text, centred, decomposed by the backend's SVD; "
            "each point is the state after one character, placed by its first two principal components "
            "and coloured by the class of that character (newline, space, letter, bracket, other). Clusters "
            "by class show how much of the state is taken up by the character just read.")
    return Section("pca", "PCA of hidden states", expl, items)


FEATURE_TEXT = {"in_string": "inside a string literal (quotes included)",
                "bracket_depth": "bracket nesting depth",
                "column": "position in the line",
                "indentation": "indentation of the line",
                "in_comment": "inside a # comment"}


def _neurons_section(ctx):
    items, rows = [], []
    for name, hits in ctx.found.items():
        for rank, n in enumerate(hits):
            rows.append({"feature": name, "rank": rank + 1, "unit": n.label, "r": n.r})
        if not hits:
            rows.append({"feature": name, "rank": "", "unit": "(feature constant on this text)", "r": None})
    ctx.summary["neurons"] = rows
    items.append(Table(rows, ["feature", "rank", "unit", "r"],
                       "the units whose activation correlates best (Pearson r) with each feature"))
    for name, hits in ctx.found.items():
        if not hits:
            continue
        best = hits[0]
        a, b = _snippet(ctx, ctx.feats[name])
        feat_html = heatmap.text_heatmap_html(ctx.text[a:b], ctx.feats[name][a:b], mode="magnitude")
        items.append(Html(feat_html, f"the feature {name!r} ({FEATURE_TEXT.get(name, name)}) on the snippet"))
        view = "raw" if best.kind == "h" else "centred"   # h lies in (-1, 1); c may sit far from 0
        items += _unit_heatmaps(ctx, best, f"neuron_{name}", ctx.feats[name], view)
    expl = ("Ground-truth features computed from the text by a small Python lexer: inside a string, "
            "bracket depth, position in the line, indentation, inside a comment. Every unit of every layer "
            "(h" + (" and the cell state c" if ctx.cell == "lstm" else "") + ") is correlated with each over "
            "the whole analysed text; the best units by |r| are listed, and the best one per feature is "
            "shown as a heatmap next to the feature itself: an h unit as it is, a cell state centred on "
            "its mean over the text (so the colour shows what the correlation sees). Negative r means "
            "the unit is low where the feature is high.")
    return Section("neurons", "Interpretable neurons", expl, items)


def _ngram_section(ctx, train_text):
    expl = ("An interpolated Kneser-Ney character n-gram model, fit on the training split, scores the same "
            "held-out characters as the RNN. The breakdown shows where each is better, by kind of character "
            "and, for closing brackets and quotes, by how far back the opener is (the paper's section 5: "
            "the RNN's edge should grow with the distance, where the n-gram's fixed context runs out).")
    if not train_text:
        return Section("ngram", "n-gram baseline",
                       expl + " The training text is not available here, so the baseline was not fit.", [])
    orders = tuple(n for n in ctx.opt.ngram_extra_orders if n < ctx.opt.ngram_order)
    cmp = compare_mod.compare(ctx.text, ctx.acts.next_logp, train_text, ctx.vocab.tokens,
                              ctx.opt.ngram_order, ctx.prefix, orders)
    loss_rows = [{"model": f"RNN ({ctx.cell.upper()})", "loss (nats/char)": cmp.rnn_loss,
                  "bits/char": cmp.rnn_loss / np.log(2)}]
    for r in cmp.orders:
        loss_rows.append({"model": f"{r['order']}-gram", "loss (nats/char)": r["loss"],
                          "bits/char": r["loss"] / np.log(2)})
    loss_rows.append({"model": f"{cmp.order}-gram", "loss (nats/char)": cmp.ngram_loss,
                      "bits/char": cmp.ngram_loss / np.log(2)})
    ctx.summary["ngram"] = {"order": cmp.order, "train_chars": cmp.train_chars, "rnn_loss": cmp.rnn_loss,
                            "ngram_loss": cmp.ngram_loss, "orders": cmp.orders,
                            "by_category": cmp.breakdown["by_category"],
                            "by_distance": cmp.breakdown["by_distance"]}
    items = [Table(loss_rows, caption=f"held-out loss on {len(ctx.text) - 1:,} predicted characters; "
                                      f"n-gram models fit on {cmp.train_chars:,} training characters")]
    cols_c = ["category", "count", "rnn_loss", "ngram_loss", "rnn_better"]
    items.append(Table(cmp.breakdown["by_category"], cols_c,
                       "mean loss (nats) by kind of predicted character; rnn_better = fraction of "
                       "positions where the RNN's loss is lower"))
    cols_d = ["distance", "count", "rnn_loss", "ngram_loss", "rnn_better"]
    items.append(Table(cmp.breakdown["by_distance"], cols_d, "closing brackets and quotes by distance "
                                                             "to their opener (characters)"))
    try:
        path = plots.ngram_vs_rnn_bar(cmp.breakdown, ctx.png("ngram_vs_rnn.png"),
                                      rnn_label=ctx.cell.upper(), ngram_label=f"{cmp.order}-gram")
        items.append(Image(path, "the two tables as bars"))
    except ValueError:
        pass
    adv = np.concatenate([[0.0], compare_mod.advantage(cmp)])         # per character of the text
    a, b = _snippet(ctx)
    items.append(Html(heatmap.text_heatmap_html(ctx.text[a:b], adv[a:b], mode="signed", vmax=3.0),
                      "ln P_RNN - ln P_n-gram per character: red where the RNN predicted the character "
                      "better, blue where the n-gram did (full colour at 3 nats)"))
    return Section("ngram", "n-gram baseline", expl, items)


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, float):
        return x if np.isfinite(x) else None
    if hasattr(x, "item") and getattr(x, "ndim", 1) == 0:
        return _jsonable(x.item())
    return x
