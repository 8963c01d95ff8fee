"""Text heatmaps: each character of a text shaded by one value, as HTML or as a PNG.

This is how the paper shows single cells ("quote cell", "line-length cell"): the text
with every character's background set by the cell's activation at that character.

Two colour modes:
  signed     values in [-1, 1] (tanh outputs, say): red for positive, blue for negative,
             white at 0, saturating at |v| = vmax (default 1).
  magnitude  values >= 0 (gate activations, saliency): one hue from white at 0 to full at
             vmax (default: the largest value).
``highlight`` marks one character (the target of a saliency map) with an outline.
"""
from __future__ import annotations

import html

from scratchrnn.core.backend import CPU

np = CPU.xp

POSITIVE_RGB = (214, 39, 40)  # red
NEGATIVE_RGB = (31, 119, 180)  # blue
MAGNITUDE_RGB = (230, 110, 0)  # orange
MODES = ("signed", "magnitude")

NEWLINE_MARK = "\u21b5"  # ↵, drawn in place of each newline before the line break
TAB_MARK = "\u2192"  # →, used in PNGs only


def scaled_values(values, n: int, mode: str, vmax=None):
    """(N,) values mapped to [-1, 1] (signed) or [0, 1] (magnitude) for colouring.

    values: (N,) floats, one per character; n = N, checked. NaN counts as 0.
    vmax:   the value that gets the full colour; default 1 for signed, max(values) for
            magnitude (1 if all values are 0).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}.")
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if v.shape != (n,):
        raise ValueError(f"values must have shape ({n},) to match the text, got {v.shape}.")
    v = np.nan_to_num(v, nan=0.0, posinf=0.0, neginf=0.0)
    if vmax is None:
        vmax = 1.0 if mode == "signed" else (float(np.max(v)) if v.size and np.max(v) > 0 else 1.0)
    if vmax <= 0:
        raise ValueError(f"vmax must be positive, got {vmax}.")
    lo = -1.0 if mode == "signed" else 0.0
    return np.clip(v / vmax, lo, 1.0)


def cell_rgb(s: float) -> tuple:
    """Background (r, g, b) ints 0..255 for one scaled value s in [-1, 1]: white blended
    toward red (s > 0), blue (s < 0); magnitude mode passes s >= 0 and uses ``magnitude_rgb``."""
    target = POSITIVE_RGB if s >= 0 else NEGATIVE_RGB
    return _blend(target, abs(s))


def magnitude_rgb(s: float) -> tuple:
    """Background (r, g, b) for a scaled magnitude s in [0, 1]."""
    return _blend(MAGNITUDE_RGB, s)


def _blend(target, a: float) -> tuple:
    return tuple(int(round(255 + a * (t - 255))) for t in target)


def _colour_fn(mode: str):
    return cell_rgb if mode == "signed" else magnitude_rgb


def _html_char(ch: str) -> str:
    """The escaped, visible form of one character inside a ``white-space: pre-wrap`` block."""
    if ch == "\n":
        return NEWLINE_MARK
    if ch == "\t":
        return "\t"
    if ord(ch) < 32 or ord(ch) == 127:
        return "\u00b7"  # a middle dot for other control characters
    return html.escape(ch, quote=True)


def text_heatmap_html(text: str, values, title=None, mode="signed", vmax=None,
                      highlight=None) -> str:
    """An HTML fragment: ``text`` with each character on a background set by its value.

    text:      N characters.
    values:    (N,) float, one per character (see ``scaled_values`` for mode and vmax).
    title:     optional heading shown above the text (escaped).
    highlight: optional index of a character to outline (e.g. a saliency target).
    Every character is one ``<span class="hc">`` with an inline background colour and a
    tooltip "index: value"; a newline is shown as ↵ followed by a real line break. The
    fragment carries its own inline styles, so it renders the same anywhere.
    """
    raw = np.asarray(values, dtype=np.float64).reshape(-1)
    scaled = scaled_values(values, len(text), mode, vmax)
    colour = _colour_fn(mode)
    parts = ['<div class="heatmap-block" style="margin:0.6em 0">']
    if title:
        parts.append(f'<div class="heatmap-title" style="font-weight:600;margin-bottom:0.2em">'
                     f'{html.escape(str(title))}</div>')
    parts.append('<div class="heatmap" style="font-family:DejaVu Sans Mono,Menlo,Consolas,'
                 'monospace;font-size:13px;line-height:1.45;white-space:pre-wrap;'
                 'word-break:break-all;border:1px solid #ddd;padding:6px;background:#fff">')
    for i, ch in enumerate(text):
        r, g, b = colour(float(scaled[i]))
        fg = "#fff" if abs(scaled[i]) > 0.65 else "#111"
        outline = ";outline:2px solid #000" if highlight is not None and i == highlight else ""
        parts.append(f'<span class="hc" title="{i}: {raw[i]:.3g}" '
                     f'style="background:rgb({r},{g},{b});color:{fg}{outline}">'
                     f'{_html_char(ch)}</span>')
        if ch == "\n":
            parts.append("\n")
    parts.append("</div></div>")
    return "".join(parts)


def wrap_lines(text: str, wrap_at: int, max_lines=None) -> list:
    """Split ``text`` into display rows of at most ``wrap_at`` characters, breaking after
    every newline. Returns a list of rows, each a list of (index into text, char)."""
    if wrap_at < 1:
        raise ValueError(f"wrap_at must be at least 1, got {wrap_at}.")
    rows, row = [], []
    for i, ch in enumerate(text):
        row.append((i, ch))
        if ch == "\n" or len(row) == wrap_at:
            rows.append(row)
            row = []
            if max_lines is not None and len(rows) >= max_lines:
                return rows
    if row:
        rows.append(row)
    return rows


def text_heatmap_png(text: str, values, path, mode="signed", vmax=None, max_lines=40,
                     wrap_at=100, title=None, highlight=None, fontsize=9) -> str:
    """Draw the heatmap as a PNG "string plot": one coloured cell per character.

    text:   N characters; values (N,) float, one per character.
    path:   the PNG to write (parent folders are created). Returns the path.
    Lines break at newlines (drawn as ↵) and after ``wrap_at`` characters; only the first
    ``max_lines`` display lines are drawn. ``highlight`` outlines one character.
    """
    import warnings

    from matplotlib.patches import Rectangle

    from scratchrnn.analysis.plots import new_figure, save_png

    scaled = scaled_values(values, len(text), mode, vmax)
    colour = _colour_fn(mode)
    rows = wrap_lines(text, wrap_at, max_lines) or [[]]
    n_cols = max(1, max(len(r) for r in rows))
    img = np.ones((len(rows), n_cols, 3))
    for y, row in enumerate(rows):
        for x, (i, _) in enumerate(row):
            img[y, x] = np.asarray(colour(float(scaled[i]))) / 255.0
    cell_w, cell_h = fontsize * 0.0095, fontsize * 0.021  # inches per cell
    top = 0.35 if title else 0.08
    fig = new_figure(n_cols * cell_w + 0.2, len(rows) * cell_h + top + 0.08)
    height = fig.get_figheight()
    ax = fig.add_axes([0.1 / fig.get_figwidth(), 0.08 / height,
                       n_cols * cell_w / fig.get_figwidth(), len(rows) * cell_h / height])
    ax.imshow(img, aspect="auto", interpolation="nearest", extent=(-0.5, n_cols - 0.5, len(rows) - 0.5, -0.5))
    ax.set_axis_off()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # glyphs missing from the font are drawn as boxes
        for y, row in enumerate(rows):
            for x, (i, ch) in enumerate(row):
                if highlight is not None and i == highlight:
                    ax.add_patch(Rectangle((x - 0.5, y - 0.5), 1, 1, fill=False, lw=1.5, ec="black"))
                shown = NEWLINE_MARK if ch == "\n" else TAB_MARK if ch == "\t" else ch
                if shown.isspace() or not shown.isprintable():
                    continue
                fg = "white" if abs(scaled[i]) > 0.65 else "black"
                ax.text(x, y, shown, ha="center", va="center", family="DejaVu Sans Mono",
                        fontsize=fontsize, color=fg if ch != "\n" else "0.5")
        if title:
            fig.text(0.1 / fig.get_figwidth(), 1 - 0.05 / height, str(title), va="top", fontsize=10)
    return save_png(fig, path)
