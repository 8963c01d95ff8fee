"""Run every analysis on one model and one held-out text, and assemble the HTML report.

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

Each section is built by its own module in ``analysis/sections/``; this file only runs
them in order, times them, and writes the page and summary.json. Everything drawn lands
in out_dir as PNG files too. The text heatmaps drawn as PNG are kept to a few hundred
characters each, as matplotlib draws text slowly.
"""
from __future__ import annotations

import json
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

from scratchrnn.analysis import activations as act_mod
from scratchrnn.analysis import html_report, neurons
from scratchrnn.analysis.sections.activations import activations_section
from scratchrnn.analysis.sections.context import ReportContext
from scratchrnn.analysis.sections.gradient_flow import gradient_flow_section
from scratchrnn.analysis.sections.heatmaps import heatmaps_section
from scratchrnn.analysis.sections.neurons import neurons_section
from scratchrnn.analysis.sections.ngram import ngram_section
from scratchrnn.analysis.sections.overview import overview_section
from scratchrnn.analysis.sections.pca import pca_section
from scratchrnn.analysis.sections.saliency import saliency_section
from scratchrnn.analysis.sections.saturation import saturation_section
from scratchrnn.core.backend import CPU
from scratchrnn.core.errors import DataError

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
    ctx = ReportContext(model, vocab, text, ids, prefix, out_dir, opt)
    with clock("activations"):
        ctx.acts = act_mod.collect(model, ids, chunk=opt.chunk)
    with clock("features"):
        ctx.feats = neurons.text_features(text, prefix)
    with clock("neuron finder"):
        ctx.found = neurons.find_neurons(ctx.acts, ctx.feats, top=opt.top_units,
                                         kinds=("h", "c") if model.config["cell"] == "lstm" else ("h",))
    sections = []
    builders = [("activations", activations_section), ("heatmaps", heatmaps_section),
                ("saturation", saturation_section), ("saliency", saliency_section),
                ("gradient flow", gradient_flow_section), ("pca", pca_section),
                ("neurons", neurons_section), ("n-gram", lambda c: ngram_section(c, train_text))]
    for name, build in builders:
        with clock(name):
            sections.append(build(ctx))
    rnn_loss = float(-ctx.acts.next_logp.mean())
    ctx.summary["rnn_loss"] = rnn_loss
    ctx.summary["chars"] = len(text)
    ctx.summary["model"] = dict(model.config)
    ctx.summary["source"] = source
    with clock("report"):
        overview = overview_section(ctx, source, rnn_loss, clock.timings,
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
