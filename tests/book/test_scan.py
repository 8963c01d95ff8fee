"""scan: equals the Python loop it stands for, forward and reversed, for tuples too."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scratchrnn.book.scan import scan
from scratchrnn.core.backend import get_backend


def _loop(step, carry, xs, reverse=False):
    """The reference: a plain loop, outputs collected in time order."""
    T = (xs[0] if isinstance(xs, tuple) else xs).shape[0]
    order = range(T - 1, -1, -1) if reverse else range(T)
    ys = [None] * T
    for t in order:
        x_t = tuple(x[t] for x in xs) if isinstance(xs, tuple) else xs[t]
        carry, ys[t] = step(carry, x_t)
    return carry, ys


def _rnn_step(W):
    """A small nonlinear recurrence, so that order matters."""
    def step(h, x):
        h = np.tanh(x + h @ W)
        return h, h * 2.0
    return step


def _data(seed, T, B, H):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((T, B, H)), rng.standard_normal((B, H)), rng.standard_normal((H, H))


def test_scan_equals_python_loop(backend):
    xs, h0, W = (backend.asarray(a) for a in _data(0, 6, 3, 4))
    xp = backend.xp

    def step(h, x):
        h = xp.tanh(x + h @ W)
        return h, h * 2.0

    hT, ys = scan(step, h0, xs)
    ref_hT, ref_ys = _loop(step, h0, xs)
    np.testing.assert_array_equal(backend.asnumpy(hT), backend.asnumpy(ref_hT))
    np.testing.assert_array_equal(backend.asnumpy(ys), backend.asnumpy(xp.stack(ref_ys)))
    assert ys.dtype == xs.dtype


@given(T=st.integers(1, 7), B=st.integers(1, 3), H=st.integers(1, 4),
       seed=st.integers(0, 2**31 - 1), reverse=st.booleans())
def test_scan_equals_loop_for_any_shape(T, B, H, seed, reverse):
    xs, h0, W = _data(seed, T, B, H)
    step = _rnn_step(W)
    hT, ys = scan(step, h0, xs, reverse=reverse)
    ref_hT, ref_ys = _loop(step, h0, xs, reverse=reverse)
    np.testing.assert_array_equal(hT, ref_hT)
    np.testing.assert_array_equal(ys, np.stack(ref_ys))
    assert ys.shape == (T, B, H)


@given(T=st.integers(1, 7), B=st.integers(1, 3), H=st.integers(1, 4), seed=st.integers(0, 2**31 - 1))
def test_reverse_equals_flip_scan_flip(T, B, H, seed):
    xs, h0, W = _data(seed, T, B, H)
    step = _rnn_step(W)
    hT, ys = scan(step, h0, xs, reverse=True)
    hT_f, ys_f = scan(step, h0, xs[::-1])
    np.testing.assert_array_equal(hT, hT_f)
    np.testing.assert_array_equal(ys, ys_f[::-1])


def test_tuple_xs_and_tuple_ys(backend):
    xp = backend.xp
    a = backend.asarray(np.arange(12.0).reshape(4, 3))
    b = backend.asarray(np.arange(4.0) * 10)

    def step(carry, x):
        x_a, x_b = x
        carry = carry + x_a.sum() + x_b
        return carry, (x_a * 2, carry, x_b[None])

    total, (ys_a, ys_c, ys_b) = scan(step, backend.asarray(0.0), (a, b))
    ref_total, ref = _loop(step, backend.asarray(0.0), (a, b))
    assert float(total) == float(ref_total) == float(a.sum() + b.sum())
    for got, want in zip((ys_a, ys_c, ys_b), zip(*ref)):
        np.testing.assert_array_equal(backend.asnumpy(got), backend.asnumpy(xp.stack(want)))
    assert ys_a.shape == (4, 3) and ys_c.shape == (4,) and ys_b.shape == (4, 1)


@given(T=st.integers(1, 6), shapes=st.lists(st.lists(st.integers(1, 3), max_size=2), min_size=1,
                                            max_size=3), reverse=st.booleans())
def test_tuple_of_arbitrary_shapes(T, shapes, reverse):
    rng = np.random.default_rng(T)
    xs = tuple(rng.standard_normal((T, *s)) for s in shapes)

    def step(carry, x):
        carry = carry * 0.5 + sum(v.sum() for v in x)
        return carry, tuple(v * carry for v in x)

    c, ys = scan(step, 0.0, xs, reverse=reverse)
    ref_c, ref = _loop(step, 0.0, xs, reverse=reverse)
    assert c == ref_c
    for got, want in zip(ys, zip(*ref)):
        np.testing.assert_array_equal(got, np.stack(want))


def test_none_outputs_and_length_without_xs():
    carry, ys = scan(lambda c, x: (c + 1, None), 0, None, length=5)
    assert carry == 5 and ys is None
    seen = []
    scan(lambda c, x: (c, seen.append(x)), 0, np.arange(3), reverse=True)
    assert seen == [2, 1, 0]


def test_scan_errors():
    with pytest.raises(ValueError, match="xs or a length"):
        scan(lambda c, x: (c, x), 0, None)
    with pytest.raises(ValueError, match="same leading length"):
        scan(lambda c, x: (c, x[0]), 0, (np.zeros(3), np.zeros(4)))


def test_scan_runs_on_the_default_backend(default_backend):
    xp = default_backend.xp
    xs = default_backend.asarray(np.arange(5.0))
    c, ys = scan(lambda c, x: (c + x, c * x), xp.asarray(0.0), xs)
    assert float(c) == 10.0
    np.testing.assert_array_equal(default_backend.asnumpy(ys), [0, 0, 2, 9, 24])
    assert get_backend().name == default_backend.name
