"""Text in: the embedded corpora and UTF-8 text files.

    text = load_source("python-docs")              # a named corpus, or any UTF-8 file path
    text = load_source("notes.txt", max_chars=10_000)

Both corpora are built from the running Python installation itself (no download), so
they are identical on every machine with the same Python version.
"""
from __future__ import annotations

import os
import sysconfig
from functools import lru_cache

from .errors import ConfigError, DataError
from .validation import positive_int

CORPORA = ("python-stdlib", "python-docs")
"""Named corpora built from the running Python installation itself (no download).

``python-stdlib``: every top-level ``.py`` file of ``sysconfig.get_paths()["stdlib"]``,
sorted by file name, each file's text followed by a newline (files that are not valid
UTF-8 are skipped) -- a few MB of code with brackets, quotes and indentation.
``python-docs``: the reference-manual prose of ``pydoc_data.topics.topics``, the
topics sorted by key and joined by newlines (~0.5 MB of English).
Both are identical on every machine with the same Python version.
"""


@lru_cache(maxsize=None)
def _stdlib_text() -> str:
    root = sysconfig.get_paths()["stdlib"]
    names = sorted(n for n in os.listdir(root)
                   if n.endswith(".py") and os.path.isfile(os.path.join(root, n)))
    parts = []
    for name in names:
        with open(os.path.join(root, name), "rb") as f:
            raw = f.read()
        try:
            parts.append(raw.decode("utf-8") + "\n")
        except UnicodeDecodeError:
            continue
    return "".join(parts)


@lru_cache(maxsize=None)
def _docs_text() -> str:
    from pydoc_data.topics import topics
    return "\n".join(topics[key] for key in sorted(topics))


_CORPUS_BUILDERS = {"python-stdlib": _stdlib_text, "python-docs": _docs_text}


def load_corpus(name: str, max_chars: int | None = None) -> str:
    """The named corpus (one of ``CORPORA``), cut to its first ``max_chars`` characters if given."""
    if name not in _CORPUS_BUILDERS:
        raise ConfigError(f"Unknown corpus {name!r}; choose one of {', '.join(CORPORA)}.")
    text = _CORPUS_BUILDERS[name]()
    return _truncate(text, max_chars)


def read_text_file(path) -> str:
    """The whole of a UTF-8 text file (a leading byte-order mark is dropped; newlines kept as is).

    Raises DataError when the path is missing, is a directory, cannot be read,
    is empty, or is not valid UTF-8.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise DataError(f"The text file {path!r} does not exist.")
    if os.path.isdir(path):
        raise DataError(f"The path {path!r} is a directory, not a text file.")
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise DataError(f"The text file {path!r} cannot be read ({exc.strerror or exc}).") from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"The file {path!r} is not valid UTF-8 text "
                        f"(bad byte at offset {exc.start}).") from exc
    if not text:
        raise DataError(f"The text file {path!r} is empty.")
    return text


def load_source(source: str, max_chars: int | None = None) -> str:
    """A corpus name from ``CORPORA`` or else the path of a UTF-8 file, as text."""
    if source in CORPORA:
        return load_corpus(source, max_chars)
    return _truncate(read_text_file(source), max_chars)


def _truncate(text: str, max_chars: int | None) -> str:
    """The first ``max_chars`` characters of ``text`` (all of it when None)."""
    if max_chars is None:
        return text
    return text[:positive_int("max_chars", max_chars)]
