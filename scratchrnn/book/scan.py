"""``scan``: the one loop over time in the package (the semantics of ``jax.lax.scan``).

    carry, ys = scan(step, carry, xs)

is, in plain Python::

    ys = []
    for x in xs:                 # xs[0], xs[1], ... along axis 0
        carry, y = step(carry, x)
        ys.append(y)
    return carry, stack(ys)

``xs`` may be one array or a tuple of arrays with the same leading length T
(each step gets the tuple of their t-th slices); ``step`` may return one array,
a tuple of arrays, or ``None`` as ``y``, and ``ys`` has the same structure,
stacked on a new axis 0. With ``reverse=True`` the steps run t = T-1 ... 0 and
``ys[t]`` is still the output of step t, so ``scan(f, c, xs, reverse=True)``
equals flipping xs, scanning, and flipping ys back.

The outputs are written into arrays allocated once at the first step, not
collected in a list and stacked: one copy per step, no growth.
"""
from __future__ import annotations

from scratchrnn.book.ops import xp_of


def scan(step, carry, xs, length=None, reverse=False):
    """Run ``step(carry, x_t) -> (carry, y_t)`` over axis 0 of ``xs``; see the module doc.

    xs: an array (T, ...), a tuple of such arrays, or None (then ``length`` gives T).
    Returns (final carry, ys) with ys stacked on axis 0 in time order.
    """
    is_tuple = isinstance(xs, tuple)
    xs_tuple = xs if is_tuple else (() if xs is None else (xs,))
    T = length if length is not None else (xs_tuple[0].shape[0] if xs_tuple else None)
    if T is None:
        raise ValueError("scan needs xs or a length.")
    if any(x.shape[0] != T for x in xs_tuple):
        raise ValueError("every array in xs must have the same leading length T.")

    ys = None           # allocated from the first step's output
    y_is_tuple = False
    for t in (range(T - 1, -1, -1) if reverse else range(T)):
        x_t = tuple(x[t] for x in xs_tuple) if is_tuple else (xs_tuple[0][t] if xs_tuple else None)
        carry, y = step(carry, x_t)
        if y is None:
            continue
        if ys is None:
            y_is_tuple = isinstance(y, tuple)
            ys = tuple(_stack_buffer(v, T) for v in (y if y_is_tuple else (y,)))
        for buf, v in zip(ys, y if y_is_tuple else (y,)):
            buf[t] = v
    if ys is None:
        return carry, None
    return carry, (ys if y_is_tuple else ys[0])


def _stack_buffer(y, T):
    """An uninitialised (T, *y.shape) array on y's backend with y's dtype."""
    return xp_of(y).empty((T,) + tuple(y.shape), dtype=y.dtype)
