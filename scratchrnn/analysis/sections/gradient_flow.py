"""The gradient-flow section: ||dh_T/dh_t|| against T - t, untrained cells and this model."""
from __future__ import annotations

from scratchrnn.analysis import gradient_flow, plots
from scratchrnn.analysis.html_report import Image, Section, Table


def gradient_flow_section(ctx):
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
