"""The checks every entry point shares: one place that says what a valid number is.

Each returns the value (as a plain Python ``int``/``float``) or raises ``ConfigError``
with one sentence that names the parameter: ``name`` is what the user typed, e.g.
``"hidden_size"`` from Python or ``"--rnn-size"`` from the command line.
"""
from __future__ import annotations

import math
import numbers

from scratchrnn.core.errors import ArgumentTypeError, ConfigError


def positive_int(name, value):
    """``value`` as an int >= 1. Accepts Python and NumPy integers, not bools or floats."""
    return int_at_least(name, value, 1)


def int_at_least(name, value, low):
    """``value`` as an int >= ``low`` (NumPy integers accepted; bools and floats refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ArgumentTypeError(f"{name} must be an integer >= {low}, got {value!r}.")
    if value < low:
        what = "a positive integer" if low == 1 else f"an integer >= {low}"
        raise ConfigError(f"{name} must be {what}, got {value!r}.")
    return int(value)


def finite_float(name, value, low=None, high=None, low_open=False, high_open=False):
    """``value`` as a finite float inside the given bounds (open or closed at each end)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ArgumentTypeError(f"{name} must be a number, got {value!r}.")
    try:
        value = float(value)
    except OverflowError:                   # an integer beyond any float, e.g. 10**400
        raise ConfigError(f"{name} must be a finite number, got an integer of "
                          f"{len(str(abs(int(value))))} digits.") from None
    if not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {value!r}.")
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        left = "(" if low_open or low is None else "["
        right = ")" if high_open or high is None else "]"
        lo = "-inf" if low is None else repr(low)
        hi = "inf" if high is None else repr(high)
        raise ConfigError(f"{name} must be in {left}{lo}, {hi}{right}, got {value!r}.")
    return value


def positive_float(name, value):
    """``value`` as a finite float > 0."""
    value = finite_float(name, value)
    if not value > 0:
        raise ConfigError(f"{name} must be a positive number, got {value!r}.")
    return value


def seed_value(name, value):
    """A random seed: None (fresh entropy) or an integer >= 0, as NumPy's generators take."""
    if value is None:
        return None
    return int_at_least(name, value, 0)


def real_array(xp, value, dtype, name):
    """``value`` as a real floating array of ``dtype`` on ``xp``; complex numbers (whose
    imaginary part would be dropped) and things that are not numbers are refused."""
    if xp.iscomplexobj(value):
        raise ArgumentTypeError(f"{name} must hold real numbers, got complex ones (the "
                                f"imaginary part would be lost); pass x.real if that is meant.")
    try:
        return xp.asarray(value, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise ArgumentTypeError(f"{name} must be an array of numbers ({exc}).") from None
