"""Corpora, vocabularies, splits and truncated-BPTT batching (scratchrnn.data)."""
import json
import math
import os
import sysconfig

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from scratchrnn import data
from scratchrnn.data import BatchStream, Vocab, split_ids, tokenize, unigram_entropy
from scratchrnn.errors import ConfigError, DataError


# --------------------------------------------------------------------------- corpora
@pytest.mark.parametrize("name", data.CORPORA)
def test_corpus_is_deterministic_and_truncates(name):
    full = data.load_corpus(name)
    assert len(full) > 100_000
    assert data.load_corpus(name) == full
    assert data.load_corpus(name, max_chars=1000) == full[:1000]


def test_python_docs_is_sorted_topics_joined():
    from pydoc_data.topics import topics
    assert data.load_corpus("python-docs") == "\n".join(topics[k] for k in sorted(topics))


def test_python_stdlib_is_top_level_py_files_sorted():
    root = sysconfig.get_paths()["stdlib"]
    first = sorted(n for n in os.listdir(root) if n.endswith(".py"))[0]
    with open(os.path.join(root, first), encoding="utf-8") as f:
        expected_start = f.read() + "\n"
    text = data.load_corpus("python-stdlib")
    assert text.startswith(expected_start)
    assert "def " in text and "import " in text


def test_stdlib_builder_skips_non_utf8_and_subdirectories(tmp_path, monkeypatch):
    (tmp_path / "b.py").write_bytes(b"x = 1\n")
    (tmp_path / "a.py").write_bytes(b"y = 2")
    (tmp_path / "c.py").write_bytes(b"z = '\xff'\n")          # not UTF-8: skipped
    (tmp_path / "d.txt").write_text("not python")
    (tmp_path / "pkg.py").mkdir()                             # a directory named like a file
    monkeypatch.setattr(sysconfig, "get_paths", lambda: {"stdlib": str(tmp_path)})
    data._stdlib_text.cache_clear()
    try:
        assert data.load_corpus("python-stdlib") == "y = 2\nx = 1\n\n"
    finally:
        data._stdlib_text.cache_clear()


def test_unknown_corpus_lists_choices():
    with pytest.raises(ConfigError, match="python-stdlib, python-docs"):
        data.load_corpus("linux-kernel")


@pytest.mark.parametrize("bad", [0, -5, 2.5, "100", True])
def test_bad_max_chars(bad):
    with pytest.raises(ConfigError, match="max_chars"):
        data.load_corpus("python-docs", max_chars=bad)


# --------------------------------------------------------------------------- files
def test_read_text_file_keeps_text_and_drops_bom(tmp_path):
    p = tmp_path / "t.txt"
    p.write_bytes(b"\xef\xbb\xbfh\xc3\xa9llo\r\nworld")
    assert data.read_text_file(p) == "h\u00e9llo\r\nworld"
    assert data.load_source(str(p), max_chars=3) == "h\u00e9l"


def test_load_source_takes_corpus_names():
    assert data.load_source("python-docs", max_chars=50) == data.load_corpus("python-docs")[:50]


def test_read_text_file_missing(tmp_path):
    with pytest.raises(DataError, match="does not exist") as err:
        data.read_text_file(tmp_path / "nope.txt")
    assert "nope.txt" in str(err.value)


def test_read_text_file_directory(tmp_path):
    with pytest.raises(DataError, match="directory"):
        data.read_text_file(tmp_path)


def test_read_text_file_empty(tmp_path):
    p = tmp_path / "empty.txt"
    p.write_bytes(b"")
    with pytest.raises(DataError, match="empty"):
        data.read_text_file(p)


def test_read_text_file_not_utf8(tmp_path):
    p = tmp_path / "latin1.txt"
    p.write_bytes("caf\u00e9".encode("latin-1"))
    with pytest.raises(DataError, match="not valid UTF-8") as err:
        data.read_text_file(p)
    assert "latin1.txt" in str(err.value)


# --------------------------------------------------------------------- vocabularies
def test_char_vocab_is_sorted_unique_characters():
    v = Vocab.build("hello world")
    assert v.tokens == (" ", "d", "e", "h", "l", "o", "r", "w")
    assert len(v) == 8 and v.pad_id is None and v.unk_id is None
    assert v.encode("hold").tolist() == [3, 5, 4, 1]
    assert v.encode("hold").dtype == np.int64
    assert v.decode([3, 5, 4, 1]) == "hold"
    assert v.decode(np.array([[3], [5]])) == "ho"


def test_char_vocab_same_on_every_build():
    text = data.load_corpus("python-docs", max_chars=20_000)
    assert Vocab.build(text) == Vocab.build(text[::-1])


def test_char_encode_unknown_names_the_character():
    v = Vocab.build("abc")
    with pytest.raises(DataError, match=r"'z' is not in the model's vocabulary"):
        v.encode("abzcy")


def test_char_encode_allow_unknown_drops_them():
    v = Vocab.build("abc")
    assert v.encode("azb\u00e9c", allow_unknown=True).tolist() == [0, 1, 2]


def test_decode_rejects_ids_outside_vocab():
    with pytest.raises(DataError, match="outside the vocabulary"):
        Vocab.build("abc").decode([0, 3])


def test_word_vocab_orders_by_count_then_token_with_specials():
    text = "b a b c b a"
    v = Vocab.build(text, level="word")
    # counts: ' ' 5, b 3, a 2, c 1
    assert v.tokens == ("<pad>", "<unk>", " ", "b", "a", "c")
    assert (v.pad_id, v.unk_id) == (0, 1)
    assert v.decode(v.encode(text)) == text


def test_word_vocab_max_size_and_unknown_words():
    v = Vocab.build("b a b c b a", level="word", max_size=2)
    assert v.tokens == ("<pad>", "<unk>", " ", "b")
    ids = v.encode("b zebra")
    assert ids.tolist() == [3, 2, 1]
    assert v.decode(ids) == "b <unk>"


def test_word_tokenize_keeps_whitespace_and_punctuation():
    text = "def f(x):\n    return x+1  # done."
    toks = tokenize(text)
    assert "".join(toks) == text
    assert toks[:5] == ["def", " ", "f", "(", "x"]
    assert "\n    " in toks
    assert Vocab.build(text, level="word").tokenize("a, b") == ["a", ",", " ", "b"]
    assert Vocab.build(text).tokenize("ab") == ["a", "b"]


@settings(max_examples=60, deadline=None)
@given(st.text(min_size=1), st.sampled_from(["char", "word"]))
def test_encode_decode_round_trip(text, level):
    v = Vocab.build(text, level=level)
    ids = v.encode(text)
    assert ids.ndim == 1 and ((ids >= 0) & (ids < len(v))).all()
    assert v.decode(ids) == text
    again = Vocab.from_json(json.loads(json.dumps(v.to_json())))
    assert again == v and again.encode(text).tolist() == ids.tolist()


def test_vocab_errors():
    with pytest.raises(DataError, match="empty"):
        Vocab.build("")
    with pytest.raises(ConfigError, match="level"):
        Vocab.build("abc", level="byte")
    with pytest.raises(ConfigError, match="word-level"):
        Vocab.build("abc", level="char", max_size=2)
    with pytest.raises(ConfigError, match="max_size"):
        Vocab.build("abc", level="word", max_size=0)


@pytest.mark.parametrize("record", [
    None,
    {"level": "byte", "tokens": ["a"]},
    {"level": "char", "tokens": []},
    {"level": "char", "tokens": ["b", "a"]},
    {"level": "char", "tokens": ["ab"]},
    {"level": "char", "tokens": ["a", "a"]},
    {"level": "word", "tokens": ["x", "<pad>", "<unk>"]},
    {"level": "word", "tokens": ["<pad>", "<unk>", 3]},
])
def test_vocab_from_json_rejects_bad_records(record):
    with pytest.raises(DataError):
        Vocab.from_json(record)


# -------------------------------------------------------------------------- splits
def test_split_ids_by_position():
    ids = np.arange(100)
    train, val, test = split_ids(ids)
    assert (len(train), len(val), len(test)) == (90, 5, 5)
    assert np.array_equal(np.concatenate([train, val, test]), ids)
    train, val, test = split_ids(ids, (0.5, 0.0, 0.5))
    assert (len(train), len(val), len(test)) == (50, 0, 50)


@pytest.mark.parametrize("fractions", [(0.9, 0.1), (0.5, 0.3, 0.3), (0.0, 0.5, 0.5),
                                       (1.2, -0.1, -0.1), ("a", 0, 0), (float("nan"), 0, 0), 3])
def test_split_ids_rejects_bad_fractions(fractions):
    with pytest.raises(ConfigError, match="fractions"):
        split_ids(np.arange(10), fractions)


# ------------------------------------------------------------------------ batching
def test_batch_stream_small_example_by_hand():
    ids = np.arange(13)                    # B=2, T=3: L = 12 // 6 * 3 = 6 steps per stream
    s = BatchStream(ids, batch_size=2, seq_len=3)
    assert len(s) == 2 and s.stateful
    b = s.next_batch()
    assert b.x.tolist() == [[0, 6], [1, 7], [2, 8]]          # (T, B): stream 1 starts at 6
    assert b.y.tolist() == [[1, 7], [2, 8], [3, 9]]
    assert (b.reset, b.epoch, b.index, b.mask) == (True, 0, 0, None)
    b = s.next_batch()
    assert b.x.tolist() == [[3, 9], [4, 10], [5, 11]]
    assert b.y.tolist() == [[4, 10], [5, 11], [6, 12]]
    assert (b.reset, b.epoch, b.index) == (False, 0, 1)
    b = s.next_batch()
    assert (b.reset, b.epoch, b.index) == (True, 1, 0)
    assert b.x.tolist() == [[0, 6], [1, 7], [2, 8]]


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 5), st.integers(1, 6), st.integers(0, 40))
def test_each_epoch_covers_every_kept_token_once_in_order(B, T, extra):
    n = B * T + 1 + extra
    ids = np.arange(n) * 7 % 1000
    s = BatchStream(ids, B, T)
    L = (n - 1) // (B * T) * T
    assert len(s) == L // T
    for epoch in range(2):
        batches = list(s)
        assert len(batches) == len(s) and all(b.epoch == epoch for b in batches)
        assert [b.reset for b in batches] == [True] + [False] * (len(s) - 1)
        xs = np.concatenate([b.x for b in batches], axis=0)      # (L, B)
        ys = np.concatenate([b.y for b in batches], axis=0)
        assert xs.shape == (L, B) and batches[0].x.shape == (T, B)
        assert np.array_equal(xs.T.reshape(-1), ids[:B * L])
        assert np.array_equal(ys.T.reshape(-1), ids[1:B * L + 1])


def test_shuffled_stream_visits_every_window_once_in_a_seeded_order():
    ids = np.arange(2 * 4 * 10 + 1)
    s = BatchStream(ids, 2, 4, shuffle=True, seed=3)
    assert not s.stateful and len(s) == 10
    orders = []
    for _ in range(2):
        batches = list(s)
        assert all(b.reset for b in batches)
        starts = [int(b.x[0, 0]) // 4 for b in batches]
        assert sorted(starts) == list(range(10))
        orders.append(starts)
    assert orders[0] != orders[1] and orders[0] != list(range(10))
    again = BatchStream(ids, 2, 4, shuffle=True, seed=3)
    assert [int(b.x[0, 0]) // 4 for b in again] == orders[0]
    other = BatchStream(ids, 2, 4, shuffle=True, seed=4)
    assert [int(b.x[0, 0]) // 4 for b in other] != orders[0]


@pytest.mark.parametrize("shuffle", [False, True])
def test_resume_from_state_dict_serves_the_same_batches(shuffle):
    ids = np.arange(3 * 5 * 7 + 4) % 11
    s = BatchStream(ids, 3, 5, shuffle=shuffle, seed=9)
    for _ in range(len(s) + 3):                        # into the second epoch
        s.next_batch()
    state = json.loads(json.dumps(s.state_dict()))
    assert state["epoch"] == 1 and state["index"] == 3
    assert math.isclose(s.epoch_progress, 1 + 3 / 7) and s.iteration == 10
    resumed = BatchStream(ids, 3, 5, shuffle=shuffle, seed=0)
    resumed.load_state_dict(state)
    for _ in range(2 * len(s)):
        a, b = s.next_batch(), resumed.next_batch()
        assert np.array_equal(a.x, b.x) and np.array_equal(a.y, b.y)
        assert (a.reset, a.epoch, a.index) == (b.reset, b.epoch, b.index)


def test_resume_refuses_a_different_stream():
    s = BatchStream(np.arange(100), 2, 5)
    state = s.state_dict()
    with pytest.raises(ConfigError, match="batch_size"):
        BatchStream(np.arange(100), 3, 5).load_state_dict(state)
    with pytest.raises(ConfigError, match="invalid"):
        s.load_state_dict(dict(state, index=len(s)))


def test_pad_mask_marks_padding_targets():
    ids = np.array([5, 6, 0, 0, 7, 8, 0, 9, 4])
    b = BatchStream(ids, 2, 2, pad_id=0).next_batch()
    assert b.mask.dtype == bool and b.mask.shape == (2, 2)
    assert np.array_equal(b.mask, b.y != 0)
    assert not b.mask.all()


def test_too_short_text_says_how_much_is_needed():
    with pytest.raises(DataError, match="needs at least 201 characters"):
        BatchStream(np.arange(200), batch_size=4, seq_len=50)
    BatchStream(np.arange(201), batch_size=4, seq_len=50)


@pytest.mark.parametrize("kw", [{"batch_size": 0}, {"seq_len": -1}, {"seq_len": 2.5},
                                {"seed": -1}, {"batch_size": "4"}])
def test_batch_stream_bad_settings(kw):
    args = dict(batch_size=2, seq_len=3) | kw
    with pytest.raises(ConfigError):
        BatchStream(np.arange(50), **args)


def test_batch_stream_needs_1d_integer_ids():
    with pytest.raises(DataError, match="1-D integer"):
        BatchStream(np.zeros(50), 2, 3)
    with pytest.raises(DataError, match="1-D integer"):
        BatchStream(np.zeros((5, 10), dtype=int), 2, 3)


# ---------------------------------------------------------------------- statistics
def test_unigram_entropy():
    assert math.isclose(unigram_entropy(np.array([0, 1, 2, 3] * 5)), math.log(4))
    assert unigram_entropy(np.array([7, 7, 7])) == 0.0
    assert math.isclose(unigram_entropy([0, 0, 0, 1]),
                        -(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))
    with pytest.raises(DataError):
        unigram_entropy(np.array([], dtype=int))
