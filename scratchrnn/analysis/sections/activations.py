"""The activations section: what the one stateful forward pass collected."""
from __future__ import annotations

from scratchrnn.analysis.html_report import Section, Table


def activations_section(ctx):
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
