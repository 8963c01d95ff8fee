"""The training loss curve as a PNG (matplotlib, Agg: no display needed)."""
from __future__ import annotations

import math
import os


def plot_loss_curve(history, path):
    """history: {"train": [{"step", "loss"}...], "val": [{"step", "loss"}...]} -> PNG at ``path``.

    Losses are drawn in bits per token; written to a temporary file and moved into place.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for key, style in (("train", dict(lw=0.8, alpha=0.7)), ("val", dict(marker="o", lw=1.5))):
        rows = history.get(key, [])
        if rows:
            ax.plot([r["step"] for r in rows], [r["loss"] / math.log(2) for r in rows],
                    label=key, **style)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (bits per token)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    tmp = f"{path}.tmp.png"
    fig.savefig(tmp)
    os.replace(tmp, path)
