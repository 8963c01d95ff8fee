"""``DIR/results.md`` and ``DIR/results.png`` from the grid's settings and its results.

The tables follow the paper's layout: one row per cell type and depth, one column per
hidden size, the loss in nats per character (mean over seeds), the best of each column in
bold. The findings check the paper's two conclusions on this run's val losses:

- gated cells beat the vanilla RNN: at every (depth, size) where both ran, LSTM < RNN and
  GRU < RNN ("equal size" means equal hidden size H, the grid's axis; the figure shows
  the same losses against parameter count, where an LSTM of size H has four times the
  recurrent weights of an RNN);
- depth helps: for every (cell, size), 2 layers < 1 layer.

The figure is val loss against parameter count (log scale): one colour per cell type, one
line per depth through the sizes.
"""
from __future__ import annotations

import os
from statistics import mean

from scratchrnn.lm.checkpoint import write_atomically

SPLITS = (("val", "Validation loss"), ("train", "Training loss"), ("test", "Test loss"))


def point_means(spec, records, split="val"):
    """{(cell, layers, size): mean loss over the seeds that finished} (nats/char)."""
    table = {}
    for cell in spec["cells"]:
        for layers in spec["layers"]:
            for size in spec["sizes"]:
                losses = [r[split]["loss"] for r in _records_of(records, spec, cell, layers, size)
                          if r.get("status") == "ok"]
                if losses:
                    table[(cell, layers, size)] = mean(losses)
    return table


def _records_of(records, spec, cell, layers, size):
    from scratchrnn.grid.points import point_name
    return [records[n] for n in (point_name(cell, layers, size, s) for s in spec["seeds"]) if n in records]


def compare(means, pairs):
    """pairs: [(better_key, worse_key, label)] -> (held labels, not-held labels) where both ran."""
    held, not_held = [], []
    for better, worse, label in pairs:
        if better in means and worse in means:
            (held if means[better] < means[worse] else not_held).append(label)
    return held, not_held


def findings(spec, records):
    """The paper's conclusions checked on this run: a list of (claim, held, not_held) tuples."""
    means = point_means(spec, records)
    result = []
    for gated in ("lstm", "gru"):
        if gated in spec["cells"] and "rnn" in spec["cells"]:
            pairs = [((gated, L, H), ("rnn", L, H), f"{L}-layer H={H}")
                     for L in spec["layers"] for H in spec["sizes"]]
            result.append((f"{gated.upper()} beats RNN at equal size", *compare(means, pairs)))
    if 1 in spec["layers"] and 2 in spec["layers"]:
        pairs = [((cell, 2, H), (cell, 1, H), f"{cell.upper()} H={H}")
                 for cell in spec["cells"] for H in spec["sizes"]]
        result.append(("depth 2 beats depth 1", *compare(means, pairs)))
    return result


def verdict(held, not_held):
    """One line: did the claim hold in the comparisons this run could make?"""
    n = len(held) + len(not_held)
    if n == 0:
        return "could not be checked (no pair of finished points to compare)"
    if not not_held:
        return f"**held** in all {n} comparisons" if n > 1 else "**held** in the one comparison"
    if not held:
        return f"**did not hold** in any of {n} comparisons" if n > 1 else "**did not hold** in the one comparison"
    return f"**held in {len(held)} of {n}** comparisons (not for {'; '.join(not_held)})"


def markdown(spec, records, title):
    """The whole results.md as a string."""
    ok = [r for r in records.values() if r.get("status") == "ok"]
    failed = [r for r in records.values() if r.get("status") == "failed"]
    total = len(spec["cells"]) * len(spec["layers"]) * len(spec["sizes"]) * len(spec["seeds"])
    budget_text = _budget_text(spec)
    lines = [f"# {title}", "",
             f"Corpus `{os.path.basename(str(spec['shared'].get('source')))}`; every point trained for "
             f"{budget_text} (same budget each); {len(ok)} of {total} points finished, {len(failed)} failed. "
             f"Losses are cross-entropy in nats per character of the final model (bits per character = "
             f"nats / ln 2), mean over {len(spec['seeds'])} seed{'s' * (len(spec['seeds']) > 1)}; "
             f"**bold** is the best of its column.", ""]
    shared = {k: v for k, v in spec["shared"].items() if k != "source"}
    if shared:
        lines += ["Shared settings: " + ", ".join(f"{k}={v}" for k, v in sorted(shared.items())) + ".", ""]
    lines += ["## Findings", ""]
    for claim, held, not_held in findings(spec, records):
        lines.append(f"- {claim}: {verdict(held, not_held)}.")
    if not findings(spec, records):
        lines.append("- This grid has no RNN to compare with and no 1- and 2-layer pair.")
    lines.append("")
    for split, heading in SPLITS:
        lines += [f"## {heading} (nats/char)", ""] + _table(spec, records, split) + [""]
    lines += ["## Parameters", ""] + _param_table(spec, records) + [""]
    if failed:
        lines += ["## Failed points", ""] + [f"- `{r['name']}`: {r.get('reason', 'no reason recorded')}"
                                             for r in failed] + [""]
    stopped = [r for r in records.values() if r.get("status") == "interrupted"]
    if stopped:
        lines += ["## Interrupted points (a re-run resumes them)", ""] + [
            f"- `{r['name']}`: {r.get('reason', 'stopped')}" for r in stopped] + [""]
    lines += ["## Machines", ""] + _machines(ok + failed) + [""]
    if ok:
        lines += ["![val loss against parameter count](results.png)", ""]
    return "\n".join(lines)


def _budget_text(spec):
    budget = spec["budget"]
    return f"{budget['steps']:,} steps" if budget.get("steps") else f"{budget['minutes']:g} minutes"


def _table(spec, records, split):
    means = point_means(spec, records, split)
    sizes = spec["sizes"]
    best = {H: min((v for (c, L, h), v in means.items() if h == H), default=None) for H in sizes}
    rows = ["| cell | layers | " + " | ".join(f"H={H}" for H in sizes) + " |",
            "|---|---:|" + "---:|" * len(sizes)]
    for cell in spec["cells"]:
        for layers in spec["layers"]:
            cells = []
            for H in sizes:
                value = means.get((cell, layers, H))
                if value is None:
                    states = {r.get("status") for r in _records_of(records, spec, cell, layers, H)}
                    cells.append("failed" if "failed" in states else "–")
                else:
                    text = f"{value:.3f}"
                    cells.append(f"**{text}**" if value == best[H] else text)
            rows.append(f"| {cell.upper()} | {layers} | " + " | ".join(cells) + " |")
    return rows


def _param_table(spec, records):
    from scratchrnn.grid.points import point_name
    rows = ["| cell | layers | " + " | ".join(f"H={H}" for H in spec["sizes"]) + " |",
            "|---|---:|" + "---:|" * len(spec["sizes"])]
    for cell in spec["cells"]:
        for layers in spec["layers"]:
            counts = []
            for H in spec["sizes"]:
                found = [records[n]["params"] for n in (point_name(cell, layers, H, s) for s in spec["seeds"])
                         if n in records and "params" in records[n]]
                counts.append(f"{found[0]:,}" if found else "–")
            rows.append(f"| {cell.upper()} | {layers} | " + " | ".join(counts) + " |")
    return rows


def _machines(records):
    seen = {}
    for r in records:
        m = r.get("machine")
        if m:
            key = (m.get("host"), m.get("cpu"), m.get("cores"))
            seen.setdefault(key, []).append(r)
    out = []
    for (host, cpu, cores), rs in seen.items():
        m = rs[0]["machine"]
        out.append(f"- {host}: {cpu}, {cores} cores, Python {m.get('python')}, NumPy {m.get('numpy')}, "
                   f"BLAS threads {m.get('blas_threads')}; {len(rs)} point{'s' * (len(rs) > 1)}")
    return out or ["- none yet"]


def plot(spec, records, path, title=None):
    """Val loss against parameter count (log x) -> PNG at ``path``: one colour per cell, one
    line per depth along the sizes (solid 1 layer, dashed 2, dotted 3), a marker per point."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    means = point_means(spec, records)
    params = {(r["cell"], r["layers"], r["size"]): r["params"]
              for r in records.values() if r.get("status") == "ok"}
    fig = Figure(figsize=(7, 4.5), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    styles, markers = ("-", "--", ":", "-."), "os^D"
    colours = {cell: f"C{i}" for i, cell in enumerate(spec["cells"])}
    for cell in spec["cells"]:
        for d, layers in enumerate(spec["layers"]):
            keys = sorted((k for k in means if k[:2] == (cell, layers)), key=lambda k: params[k])
            if keys:
                ax.plot([params[k] for k in keys], [means[k] for k in keys], color=colours[cell],
                        ls=styles[d % len(styles)], marker=markers[d % len(markers)], ms=6, lw=1.4)
    for cell in spec["cells"]:
        ax.plot([], [], color=colours[cell], lw=3, label=cell.upper())
    for d, layers in enumerate(spec["layers"]):
        ax.plot([], [], color="gray", ls=styles[d % len(styles)], marker=markers[d % len(markers)],
                label=f"{layers} layer{'s' * (layers > 1)}")
    ax.set_xscale("log")
    ax.set_xlabel("parameters")
    ax.set_ylabel("val loss (nats/char)")
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    write_atomically(path, lambda f: fig.savefig(f, format="png"))


def write_report(directory, spec, records, title="Grid results"):
    """Write results.md and (once a point has finished) results.png into ``directory``."""
    text = markdown(spec, records, title).encode("utf-8")
    write_atomically(os.path.join(directory, "results.md"), lambda f: f.write(text))
    if any(r.get("status") == "ok" for r in records.values()):
        corpus = os.path.basename(str(spec["shared"].get("source")))
        plot(spec, records, os.path.join(directory, "results.png"), f"{corpus}, {_budget_text(spec)} per point")
