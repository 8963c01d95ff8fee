"""Matplotlib figures of the analyses, written as PNG files from plain host arrays.

Figures are built on ``matplotlib.figure.Figure`` with an Agg canvas, so nothing here
touches pyplot's global state or needs a display. Each function returns the path it wrote.
"""
from __future__ import annotations

import os

from scratchrnn.core.backend import CPU

np = CPU.xp

DPI = 100


def new_figure(width_in: float, height_in: float):
    """A fresh ``Figure`` of the given size in inches with its own Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def save_png(fig, path) -> str:
    """Write ``fig`` to ``path`` as PNG (parent folders are created); return the path."""
    path = os.fspath(path)
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    fig.savefig(path, format="png", dpi=DPI)
    return path


def layer_colors(n: int) -> list:
    """n distinct colours (tab10, cycling) for layers or classes."""
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return [cmap(k % 10) for k in range(n)]


def gate_saturation_scatter(sat: dict, path, layer_names=None) -> str:
    """The paper's gate-saturation figure: one panel per gate type.

    sat: gate name -> (left_frac (U,), right_frac (U,), layer_ids (U,)), U = units of that
         gate over all layers; left_frac = fraction of time steps the gate is below 0.1
         (left-saturated), right_frac = fraction above 0.9 (right-saturated), layer_ids the
         integer layer (0-based) of each unit.
    layer_names: optional labels for the layers (default "layer 1", "layer 2", ...).
    Each point is a unit; x = left fraction, y = right fraction, colour = layer. The
    diagonal x + y = 1 bounds the possible region (a unit saturated at every step lies on it).
    """
    names = list(sat)
    if not names:
        raise ValueError("gate_saturation_scatter needs at least one gate.")
    n_layers = 1 + max(int(np.max(np.asarray(sat[g][2]))) if len(sat[g][2]) else 0 for g in names)
    labels = layer_names or [f"layer {k + 1}" for k in range(n_layers)]
    colors = layer_colors(n_layers)
    fig = new_figure(3.2 * len(names), 3.4)
    axes = fig.subplots(1, len(names), squeeze=False)[0]
    for ax, gate in zip(axes, names):
        left, right, layer = (np.asarray(a).reshape(-1) for a in sat[gate])
        ax.plot([0, 1], [1, 0], color="0.6", lw=1, ls="--", zorder=0)
        for k in range(n_layers):
            sel = layer.astype(int) == k
            if np.any(sel):
                ax.scatter(left[sel], right[sel], s=12, alpha=0.7, color=colors[k], label=labels[k])
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_aspect("equal")
        ax.set_title(f"{gate} gate")
        ax.set_xlabel("fraction left-saturated (< 0.1)")
    axes[0].set_ylabel("fraction right-saturated (> 0.9)")
    axes[-1].legend(loc="upper right", fontsize=8, frameon=False)
    fig.tight_layout()
    return save_png(fig, path)


def gradient_flow_plot(curves: dict, path, xlabel="distance back in time (steps)",
                       ylabel="gradient norm") -> str:
    """Gradient norm against distance, log-scaled y, one line per label.

    curves: label -> (distances (K,), norms (K,)); K may differ between labels. Norms that
            are zero or negative are dropped (they cannot be shown on a log axis).
    """
    fig = new_figure(5.5, 3.6)
    ax = fig.subplots()
    for label, (dist, norms) in curves.items():
        dist = np.asarray(dist, dtype=np.float64).reshape(-1)
        norms = np.asarray(norms, dtype=np.float64).reshape(-1)
        keep = np.isfinite(norms) & (norms > 0)
        ax.plot(dist[keep], norms[keep], marker=".", ms=3, lw=1.2, label=str(label))
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, which="both", alpha=0.3)
    if curves:
        ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return save_png(fig, path)


def pca_plot(points, classes, path, class_names=None, title=None) -> str:
    """Scatter of 2-D projections coloured by class.

    points:      (N, 2) coordinates (e.g. the first two principal components of hidden states).
    classes:     (N,) class of each point: integer codes (into class_names) or strings.
    class_names: labels for integer codes, e.g. ``features.CHAR_CLASSES``.
    """
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"points must have shape (N, 2), got {pts.shape}.")
    cls = np.asarray(classes).reshape(-1)
    if cls.shape[0] != pts.shape[0]:
        raise ValueError(f"classes must have shape ({pts.shape[0]},), got {cls.shape}.")
    present = list(dict.fromkeys(cls.tolist()))  # first-seen order
    if class_names is not None and cls.dtype.kind in "iu":
        present = sorted(present)
    colors = layer_colors(len(present))
    fig = new_figure(5.2, 4.4)
    ax = fig.subplots()
    for color, c in zip(colors, present):
        sel = cls == c
        label = class_names[c] if class_names is not None and isinstance(c, int) else str(c)
        ax.scatter(pts[sel, 0], pts[sel, 1], s=6, alpha=0.6, color=color, label=label)
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    if title:
        ax.set_title(title)
    ax.legend(fontsize=8, markerscale=2, frameon=False, loc="best")
    fig.tight_layout()
    return save_png(fig, path)


def ngram_vs_rnn_bar(breakdown: dict, path, rnn_label="RNN", ngram_label="n-gram") -> str:
    """Grouped bars of mean loss, RNN beside n-gram, from ``ngram.error_breakdown``.

    breakdown: {"by_category": rows, "by_distance": rows} (either may be missing); rows are
               dicts with a "category" or "distance" label, "count", "rnn_loss", "ngram_loss".
               Rows with count 0 are left out. One panel per non-empty list.
    """
    panels = [(key, [r for r in breakdown.get(key, []) if r["count"] > 0])
              for key in ("by_category", "by_distance")]
    panels = [(k, rows) for k, rows in panels if rows]
    if not panels:
        raise ValueError("ngram_vs_rnn_bar got a breakdown with no positions.")
    fig = new_figure(5.0 * len(panels), 3.8)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (key, rows) in zip(axes, panels):
        label_key = "category" if key == "by_category" else "distance"
        x = np.arange(len(rows))
        ax.bar(x - 0.2, [r["rnn_loss"] for r in rows], width=0.4, label=rnn_label)
        ax.bar(x + 0.2, [r["ngram_loss"] for r in rows], width=0.4, label=ngram_label)
        ax.set_xticks(x)
        ax.set_xticklabels([f"{r[label_key]}\n(n={r['count']})" for r in rows],
                           rotation=30 if len(rows) > 4 else 0, ha="right" if len(rows) > 4 else "center",
                           fontsize=7)
        ax.set_ylabel("mean loss (nats)")
        ax.set_title("by kind of character" if key == "by_category"
                     else "closing characters by distance to opener")
        ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return save_png(fig, path)
