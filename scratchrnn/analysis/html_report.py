"""One self-contained HTML report: inline CSS, images as base64 data URIs, no scripts.

A report is a title and a list of ``Section``s; a section has an id (its anchor), a
title, an explanation (plain text, blank lines separate paragraphs) and items:

    Image(path, caption)        a PNG file, read now and embedded as a data URI
    Html(fragment, caption)     an HTML fragment embedded as is (e.g. a text heatmap)
    Table(rows, columns, caption)  rows are dicts; columns picks and orders the keys

The page makes no request of any kind: a Content-Security-Policy forbids everything but
inline styles and data: images, and ``build_report`` refuses fragments whose src/href
or CSS url() point anywhere but a data: URI or an in-page #anchor.
"""
from __future__ import annotations

import base64
import html
import os
import re
from dataclasses import dataclass, field

from scratchrnn.lm.checkpoint import write_atomically

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

_ID_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
_ATTR_REF_RE = re.compile(r"""\b(?:src|href|srcset|action|poster|data|xlink:href)\s*=\s*(["']?)([^"'\s>]*)""",
                          re.IGNORECASE)
_CSS_REF_RE = re.compile(r"""url\(\s*["']?([^"')\s]*)|@import""", re.IGNORECASE)
_TAG_RE = re.compile(r"<[A-Za-z][^>]*>")
_STYLE_RE = re.compile(r"<style[^>]*>(.*?)</style>", re.IGNORECASE | re.DOTALL)

_CSS = """
body{font-family:-apple-system,"Segoe UI",Roboto,"DejaVu Sans",Arial,sans-serif;margin:0;
 color:#222;background:#fafafa;line-height:1.5}
header{background:#243447;color:#fff;padding:1.2em 2em}
header h1{margin:0;font-size:1.6em}
header p{margin:.3em 0 0;opacity:.85}
nav{padding:.8em 2em;background:#eef1f4;border-bottom:1px solid #d8dde3}
nav a{margin-right:1.2em;color:#1f5f99;text-decoration:none;white-space:nowrap}
main{padding:0 2em 3em;max-width:1200px}
section{background:#fff;border:1px solid #e1e4e8;border-radius:6px;margin:1.5em 0;padding:.5em 1.5em 1.2em}
section h2{border-bottom:1px solid #eee;padding-bottom:.3em}
.explanation{color:#444;max-width:80em}
figure{margin:1em 0}
figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.9em;color:#555;margin-top:.3em}
table{border-collapse:collapse;margin:.5em 0;font-size:.92em}
th,td{border:1px solid #ddd;padding:.25em .7em;text-align:right}
th{background:#f3f5f7}
td.text,th.text{text-align:left}
.empty{color:#888;font-style:italic}
"""


@dataclass(frozen=True)
class Image:
    """A PNG file to embed. path: the file; caption: plain text under it; alt: alt text."""

    path: str
    caption: str = ""
    alt: str = ""


@dataclass(frozen=True)
class Html:
    """An HTML fragment embedded verbatim (it must not reference anything outside the page)."""

    fragment: str
    caption: str = ""


@dataclass(frozen=True)
class Table:
    """A table. rows: list of dicts; columns: keys to show, in order (default: the keys
    of the first row); floats are shown with ``float_format``."""

    rows: list
    columns: list | None = None
    caption: str = ""
    float_format: str = "{:.4g}"


@dataclass(frozen=True)
class Section:
    """One part of the report. id: its anchor (a letter, then letters, digits, _ or -)."""

    id: str
    title: str
    explanation: str = ""
    items: list = field(default_factory=list)


def build_report(sections, title: str, subtitle: str = "") -> str:
    """The whole report as one HTML document (str) with a table of contents.

    Raises ValueError for a bad or repeated section id, an unknown item type, or a
    fragment that refers to an outside resource; FileNotFoundError for a missing image.
    """
    seen = set()
    for s in sections:
        if not _ID_RE.match(s.id):
            raise ValueError(f"Section id {s.id!r} is not a valid anchor "
                             "(start with a letter; then letters, digits, _ or -).")
        if s.id in seen:
            raise ValueError(f"Section id {s.id!r} is used twice.")
        seen.add(s.id)
    esc = html.escape
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>{esc(title)}</title>", f"<style>{_CSS}</style></head><body>",
             f"<header><h1>{esc(title)}</h1>" + (f"<p>{esc(subtitle)}</p>" if subtitle else "")
             + "</header>"]
    if sections:
        parts.append("<nav>" + "".join(f'<a href="#{s.id}">{esc(s.title)}</a>' for s in sections)
                     + "</nav>")
    parts.append("<main>")
    for s in sections:
        parts.append(render_section(s))
    parts.append("</main></body></html>")
    doc = "\n".join(parts)
    bad = external_references(doc)
    if bad:
        raise ValueError(f"The report would load outside resources: {bad[:5]}.")
    return doc


def render_section(section: Section) -> str:
    """One ``<section>`` element: heading, explanation paragraphs, then the items."""
    out = [f'<section id="{section.id}"><h2>{html.escape(section.title)}</h2>']
    for para in re.split(r"\n\s*\n", section.explanation.strip()):
        if para.strip():
            out.append(f'<p class="explanation">{html.escape(para.strip())}</p>')
    for item in section.items:
        out.append(render_item(item))
    out.append("</section>")
    return "\n".join(out)


def render_item(item) -> str:
    """HTML for one Image, Html or Table item."""
    if isinstance(item, Image):
        return (f'<figure><img src="{png_data_uri(item.path)}" alt="{html.escape(item.alt or item.caption)}">'
                + _caption(item.caption) + "</figure>")
    if isinstance(item, Html):
        bad = external_references(item.fragment)
        if bad:
            raise ValueError(f"An Html item refers to outside resources: {bad[:5]}.")
        return f"<figure>{item.fragment}{_caption(item.caption)}</figure>"
    if isinstance(item, Table):
        return render_table(item)
    raise ValueError(f"Unknown report item type {type(item).__name__}; use Image, Html or Table.")


def _caption(text: str) -> str:
    return f"<figcaption>{html.escape(text)}</figcaption>" if text else ""


def render_table(table: Table) -> str:
    """A ``<table>`` from the rows of ``table``; missing keys show as empty cells."""
    rows = list(table.rows)
    if not rows:
        return f'<figure><p class="empty">(no rows)</p>{_caption(table.caption)}</figure>'
    columns = list(table.columns) if table.columns is not None else list(rows[0])
    numeric = {c: all(_is_number(r.get(c)) for r in rows if r.get(c) is not None) for c in columns}
    head = "".join(f'<th class="{"num" if numeric[c] else "text"}">{html.escape(str(c))}</th>'
                   for c in columns)
    body = []
    for r in rows:
        cells = "".join(f'<td class="{"num" if numeric[c] else "text"}">'
                        f"{html.escape(_format_cell(r.get(c), table.float_format))}</td>"
                        for c in columns)
        body.append(f"<tr>{cells}</tr>")
    cap = f"<caption>{html.escape(table.caption)}</caption>" if table.caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _is_number(v) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) or hasattr(v, "dtype")


def _format_cell(v, float_format: str) -> str:
    if v is None:
        return ""
    if isinstance(v, float) or (hasattr(v, "dtype") and getattr(v.dtype, "kind", "") == "f"):
        return float_format.format(float(v))
    return str(v)


def png_data_uri(path) -> str:
    """``data:image/png;base64,...`` for the PNG file at ``path`` (ValueError if not a PNG)."""
    with open(path, "rb") as f:
        data = f.read()
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise ValueError(f"{os.fspath(path)!r} is not a PNG file.")
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def external_references(doc: str) -> list:
    """What in ``doc`` would make a browser load something: inside tags, every src/href/...
    attribute value and CSS url() that is neither a data: URI nor an in-page #anchor; inside
    <style> blocks, every such url() and every @import. Text between tags is not looked at."""
    bad = []
    for tag in _TAG_RE.finditer(doc):
        for m in _ATTR_REF_RE.finditer(tag.group(0)):
            value = m.group(2)
            if not (value.startswith("#") or value.lower().startswith("data:")):
                bad.append(m.group(0))
        bad.extend(_css_references(tag.group(0)))
    for block in _STYLE_RE.finditer(doc):
        bad.extend(_css_references(block.group(1)))
    return bad


def _css_references(css: str) -> list:
    return [m.group(0) for m in _CSS_REF_RE.finditer(css)
            if m.group(0).lower() == "@import" or not (m.group(1) or "").lower().startswith("data:")]


def write_report(path, doc: str) -> str:
    """Write ``doc`` to ``path`` atomically (``checkpoint.write_atomically``), creating
    parent folders. Returns the path."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_atomically(path, lambda f: f.write(doc.encode("utf-8")))
    return path
