"""The embedded corpora and reading UTF-8 text files (scratchrnn.lm.corpora)."""
import os
import sysconfig

import pytest

from scratchrnn.core.errors import ConfigError, DataError
from scratchrnn.lm import corpora


# --------------------------------------------------------------------------- corpora
@pytest.mark.parametrize("name", corpora.CORPORA)
def test_corpus_is_deterministic_and_truncates(name):
    full = corpora.load_corpus(name)
    assert len(full) > 100_000
    assert corpora.load_corpus(name) == full
    assert corpora.load_corpus(name, max_chars=1000) == full[:1000]


def test_python_docs_is_sorted_topics_joined():
    from pydoc_data.topics import topics
    assert corpora.load_corpus("python-docs") == "\n".join(topics[k] for k in sorted(topics))


def test_python_stdlib_is_top_level_py_files_sorted():
    root = sysconfig.get_paths()["stdlib"]
    first = sorted(n for n in os.listdir(root) if n.endswith(".py"))[0]
    with open(os.path.join(root, first), encoding="utf-8") as f:
        expected_start = f.read() + "\n"
    text = corpora.load_corpus("python-stdlib")
    assert text.startswith(expected_start)
    assert "def " in text and "import " in text


def test_stdlib_builder_skips_non_utf8_and_subdirectories(tmp_path, monkeypatch):
    (tmp_path / "b.py").write_bytes(b"x = 1\n")
    (tmp_path / "a.py").write_bytes(b"y = 2")
    (tmp_path / "c.py").write_bytes(b"z = '\xff'\n")          # not UTF-8: skipped
    (tmp_path / "d.txt").write_text("not python")
    (tmp_path / "pkg.py").mkdir()                             # a directory named like a file
    monkeypatch.setattr(sysconfig, "get_paths", lambda: {"stdlib": str(tmp_path)})
    corpora._stdlib_text.cache_clear()
    try:
        assert corpora.load_corpus("python-stdlib") == "y = 2\nx = 1\n\n"
    finally:
        corpora._stdlib_text.cache_clear()


def test_unknown_corpus_lists_choices():
    with pytest.raises(ConfigError, match="python-stdlib, python-docs"):
        corpora.load_corpus("linux-kernel")


@pytest.mark.parametrize("bad", [0, -5, 2.5, "100", True])
def test_bad_max_chars(bad):
    with pytest.raises(ConfigError, match="max_chars"):
        corpora.load_corpus("python-docs", max_chars=bad)


# --------------------------------------------------------------------------- files
def test_read_text_file_keeps_text_and_drops_bom(tmp_path):
    p = tmp_path / "t.txt"
    p.write_bytes(b"\xef\xbb\xbfh\xc3\xa9llo\r\nworld")
    assert corpora.read_text_file(p) == "h\u00e9llo\r\nworld"
    assert corpora.load_source(str(p), max_chars=3) == "h\u00e9l"


def test_load_source_takes_corpus_names():
    assert corpora.load_source("python-docs", max_chars=50) == corpora.load_corpus("python-docs")[:50]


def test_read_text_file_missing(tmp_path):
    with pytest.raises(DataError, match="does not exist") as err:
        corpora.read_text_file(tmp_path / "nope.txt")
    assert "nope.txt" in str(err.value)


def test_read_text_file_directory(tmp_path):
    with pytest.raises(DataError, match="directory"):
        corpora.read_text_file(tmp_path)


def test_read_text_file_empty(tmp_path):
    p = tmp_path / "empty.txt"
    p.write_bytes(b"")
    with pytest.raises(DataError, match="empty"):
        corpora.read_text_file(p)


def test_read_text_file_not_utf8(tmp_path):
    p = tmp_path / "latin1.txt"
    p.write_bytes("caf\u00e9".encode("latin-1"))
    with pytest.raises(DataError, match="not valid UTF-8") as err:
        corpora.read_text_file(p)
    assert "latin1.txt" in str(err.value)
