"""What the section builders share: the model, the text, what the analyses collected,
and where the pictures go."""
from __future__ import annotations

import os

from scratchrnn.analysis import neurons


class ReportContext:
    """What the section builders share. ``acts``, ``feats`` and ``found`` are filled in by
    the report before any section is built; each section adds its numbers to ``summary``."""

    def __init__(self, model, vocab, text, ids, prefix, out_dir, opt):
        self.model, self.vocab, self.text, self.ids, self.prefix = model, vocab, text, ids, prefix
        self.out_dir, self.opt = out_dir, opt
        self.cell = model.config["cell"]
        self.images = []
        self.summary = {}
        self.acts = self.feats = self.found = None

    def png(self, name):
        """The path of a new picture ``name`` in the output folder (remembered in ``images``)."""
        path = os.path.join(self.out_dir, name)
        self.images.append(path)
        return path


def snippet(ctx, feature=None, length=None):
    """(start, stop) of a snippet of the text, where ``feature`` varies most if given."""
    length = min(length or ctx.opt.heatmap_chars, len(ctx.text))
    start = 0 if feature is None else neurons.best_window(feature, length)
    return start, start + length
