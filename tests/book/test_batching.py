"""Splits by position and truncated-BPTT batching (scratchrnn.book.batching)."""
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from host import to_host
from scratchrnn.book.batching import BatchStream, split_ids
from scratchrnn.core.errors import ConfigError, DataError


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
        xs = np.concatenate([to_host(b.x) for b in batches], axis=0)      # (L, B)
        ys = np.concatenate([to_host(b.y) for b in batches], axis=0)
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
