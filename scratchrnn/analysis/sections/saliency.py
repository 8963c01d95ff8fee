"""The saliency section: the gradient of one next-character loss w.r.t. every earlier input."""
from __future__ import annotations

from scratchrnn.analysis import heatmap, plots
from scratchrnn.analysis import saliency as sal_mod
from scratchrnn.analysis.html_report import Html, Image, Section, Table
from scratchrnn.core.backend import CPU

np = CPU.xp

SALIENCY_DECADES = 4


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


def saliency_section(ctx):
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
