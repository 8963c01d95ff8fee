"""The overview section: the model, the text, the RNN's held-out loss, time taken."""
from __future__ import annotations

from scratchrnn.analysis.html_report import Section, Table
from scratchrnn.core.backend import CPU

np = CPU.xp


def overview_section(ctx, source, rnn_loss, timings, total):
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
