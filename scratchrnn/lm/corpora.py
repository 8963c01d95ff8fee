"""Text in: the embedded corpora and UTF-8 text files.

    text = load_source("python-docs")              # a named corpus, or any UTF-8 file path
    text = load_source("notes.txt", max_chars=10_000)

Both corpora are built from the running Python installation itself (no download), so
they are identical on every machine with the same Python version.
"""
from __future__ import annotations

import codecs
import os
import stat
import sysconfig
from functools import lru_cache

from scratchrnn.core.errors import ConfigError, DataError
from scratchrnn.core.validation import positive_int

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


def check_corpus(name: str) -> str:
    """``name`` when it is one of ``CORPORA``; ConfigError (one sentence) otherwise."""
    if name not in _CORPUS_BUILDERS:
        raise ConfigError(f"Unknown corpus {name!r}; choose one of {', '.join(CORPORA)}.")
    return name


def load_corpus(name: str, max_chars: int | None = None) -> str:
    """The named corpus (one of ``CORPORA``), cut to its first ``max_chars`` characters if given."""
    text = _CORPUS_BUILDERS[check_corpus(name)]()
    return _truncate(text, max_chars)


READ_CHUNK = 1 << 20    # bytes read at a time


def read_text_file(path, max_chars: int | None = None) -> str:
    """A UTF-8 text file (a leading byte-order mark is dropped; newlines kept as is), at most
    its first ``max_chars`` characters, read in bounded chunks: never more than about
    4 bytes per character wanted (UTF-8's longest), whatever the file's size.

    Raises DataError when the path is missing, is not a regular file (a directory, FIFO
    or device, refused without opening it, so nothing blocks), cannot be read, is empty,
    or is not valid UTF-8.
    """
    path = os.fspath(path)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise DataError(f"The text file {path!r} does not exist.") from None
    except OSError as exc:
        raise DataError(f"The text file {path!r} cannot be read ({exc.strerror or exc}).") from None
    if stat.S_ISDIR(info.st_mode):
        raise DataError(f"The path {path!r} is a directory, not a text file.")
    if not stat.S_ISREG(info.st_mode):
        raise DataError(f"The path {path!r} is not a regular file (a pipe, socket or device); "
                        f"save the text to a file first.")
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    parts, chars, offset = [], 0, 0
    try:
        with open(path, "rb") as f:
            while max_chars is None or chars < max_chars:
                want = READ_CHUNK if max_chars is None else min(READ_CHUNK, 4 * (max_chars - chars) + 4)
                block = f.read(want)
                part = decoder.decode(block, final=not block)
                parts.append(part)
                chars += len(part)
                offset += len(block)
                if not block:
                    break
    except OSError as exc:
        raise DataError(f"The text file {path!r} cannot be read ({exc.strerror or exc}).") from exc
    except UnicodeDecodeError as exc:
        raise DataError(f"The file {path!r} is not valid UTF-8 text "
                        f"(bad byte at offset {offset - len(block) + max(exc.start, 0)}).") from exc
    text = "".join(parts)
    if max_chars is not None:
        text = text[:max_chars]
    if not text:
        raise DataError(f"The text file {path!r} is empty.")
    return text


def load_source(source: str, max_chars: int | None = None) -> str:
    """A corpus name from ``CORPORA`` or else the path of a UTF-8 file, as text."""
    if source in CORPORA:
        return load_corpus(source, max_chars)
    if max_chars is not None:
        positive_int("max_chars", max_chars)
    return read_text_file(source, max_chars)


def _truncate(text: str, max_chars: int | None) -> str:
    """The first ``max_chars`` characters of ``text`` (all of it when None)."""
    if max_chars is None:
        return text
    return text[:positive_int("max_chars", max_chars)]
