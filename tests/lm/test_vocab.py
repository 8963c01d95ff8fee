"""Vocabularies, tokenizing, encoding and decoding (scratchrnn.lm.vocab)."""
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchrnn.core.errors import ConfigError, DataError
from scratchrnn.lm.corpora import load_corpus
from scratchrnn.lm.vocab import Vocab, tokenize


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
    text = load_corpus("python-docs", max_chars=20_000)
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

