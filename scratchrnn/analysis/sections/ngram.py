"""The n-gram section: the baseline and where the RNN beats it (the paper's section 5)."""
from __future__ import annotations

from scratchrnn.analysis import compare as compare_mod
from scratchrnn.analysis import heatmap, plots
from scratchrnn.analysis.html_report import Html, Image, Section, Table
from scratchrnn.analysis.sections.context import snippet
from scratchrnn.core.backend import CPU

np = CPU.xp


def ngram_section(ctx, train_text):
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
    a, b = snippet(ctx)
    items.append(Html(heatmap.text_heatmap_html(ctx.text[a:b], adv[a:b], mode="signed", vmax=3.0),
                      "ln P_RNN - ln P_n-gram per character: red where the RNN predicted the character "
                      "better, blue where the n-gram did (full colour at 3 nats)"))
    return Section("ngram", "n-gram baseline", expl, items)
