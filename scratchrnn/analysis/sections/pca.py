"""The PCA section: hidden-state trajectories projected on two principal components."""
from __future__ import annotations

from scratchrnn.analysis import pca as pca_mod
from scratchrnn.analysis import plots
from scratchrnn.analysis.html_report import Image, Section, Table
from scratchrnn.core.backend import CPU

np = CPU.xp


def pca_section(ctx):
    classes = pca_mod.pca_classes(ctx.text)
    rng = np.random.default_rng(ctx.opt.seed)
    N = len(ctx.text)
    pick = np.sort(rng.choice(N, size=min(N, ctx.opt.pca_points), replace=False))
    items, rows = [], []
    for k, layer in enumerate(ctx.acts.layers):
        proj, ratio, _ = pca_mod.pca(layer["h"], 2, ctx.model.backend)
        path = plots.pca_plot(proj[pick], classes[pick], ctx.png(f"pca_layer{k + 1}.png"),
                              class_names=pca_mod.PCA_CLASSES,
                              title=f"layer {k + 1} h: PC1 {ratio[0]:.0%}, PC2 {ratio[1]:.0%} of variance")
        items.append(Image(path, f"layer {k + 1}: hidden states of {len(pick):,} characters on the first two "
                                 "principal components, coloured by the character just read"))
        rows.append({"layer": k + 1, "PC1 variance": float(ratio[0]), "PC2 variance": float(ratio[1])})
    ctx.summary["pca"] = rows
    items.append(Table(rows, caption="fraction of the variance of h the two components explain"))
    expl = ("The hidden states of a layer over the whole text, centred, decomposed by the backend's SVD; "
            "each point is the state after one character, placed by its first two principal components "
            "and coloured by the class of that character (newline, space, letter, bracket, other). Clusters "
            "by class show how much of the state is taken up by the character just read.")
    return Section("pca", "PCA of hidden states", expl, items)
