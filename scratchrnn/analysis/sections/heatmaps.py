"""The heatmaps section: one unit's value on every character, signed, magnitude and
centred views (the unit views are shared with the neurons section)."""
from __future__ import annotations

from scratchrnn.analysis import heatmap, neurons
from scratchrnn.analysis.html_report import Html, Image, Section
from scratchrnn.analysis.sections.context import snippet
from scratchrnn.core.backend import CPU

np = CPU.xp


def display_trace(ctx, neuron, view):
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


def unit_heatmaps(ctx, neuron, name, feature=None, view="raw", magnitude=False):
    """HTML heatmap and a PNG string plot of ``neuron``'s trace on a snippet where ``feature``
    varies most (or the start of the text)."""
    vals, vmax, what = display_trace(ctx, neuron, view)
    a, b = snippet(ctx, feature)
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


def heatmaps_section(ctx):
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
        items += unit_heatmaps(ctx, neuron, f"heatmap_{k + 1}", feature, "raw", magnitude=True)
        vals, vmax, what = display_trace(ctx, neuron, "centred")
        a, b = snippet(ctx, feature)
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
