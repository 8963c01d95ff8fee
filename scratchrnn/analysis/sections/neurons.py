"""The neurons section: the units that correlate best with quotes, brackets, column,
indentation and comments."""
from __future__ import annotations

from scratchrnn.analysis import heatmap
from scratchrnn.analysis.html_report import Html, Section, Table
from scratchrnn.analysis.sections.context import snippet
from scratchrnn.analysis.sections.heatmaps import unit_heatmaps

FEATURE_TEXT = {"in_string": "inside a string literal (quotes included)",
                "bracket_depth": "bracket nesting depth",
                "column": "position in the line",
                "indentation": "indentation of the line",
                "in_comment": "inside a # comment"}


def neurons_section(ctx):
    items, rows = [], []
    for name, hits in ctx.found.items():
        for rank, n in enumerate(hits):
            rows.append({"feature": name, "rank": rank + 1, "unit": n.label, "r": n.r})
        if not hits:
            rows.append({"feature": name, "rank": "", "unit": "(feature constant on this text)", "r": None})
    ctx.summary["neurons"] = rows
    items.append(Table(rows, ["feature", "rank", "unit", "r"],
                       "the units whose activation correlates best (Pearson r) with each feature"))
    for name, hits in ctx.found.items():
        if not hits:
            continue
        best = hits[0]
        a, b = snippet(ctx, ctx.feats[name])
        feat_html = heatmap.text_heatmap_html(ctx.text[a:b], ctx.feats[name][a:b], mode="magnitude")
        items.append(Html(feat_html, f"the feature {name!r} ({FEATURE_TEXT.get(name, name)}) on the snippet"))
        view = "raw" if best.kind == "h" else "centred"   # h lies in (-1, 1); c may sit far from 0
        items += unit_heatmaps(ctx, best, f"neuron_{name}", ctx.feats[name], view)
    expl = ("Ground-truth features computed from the text by a small Python lexer: inside a string, "
            "bracket depth, position in the line, indentation, inside a comment. Every unit of every layer "
            "(h" + (" and the cell state c" if ctx.cell == "lstm" else "") + ") is correlated with each over "
            "the whole analysed text; the best units by |r| are listed, and the best one per feature is "
            "shown as a heatmap next to the feature itself: an h unit as it is, a cell state centred on "
            "its mean over the text (so the colour shows what the correlation sees). Negative r means "
            "the unit is low where the feature is high.")
    return Section("neurons", "Interpretable neurons", expl, items)
