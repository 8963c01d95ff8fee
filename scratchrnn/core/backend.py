"""The one place that knows NumPy from CuPy.

Every other module does its array math through ``backend.xp``, which is the
``numpy`` module or the ``cupy`` module. The same code therefore runs on the
CPU and on a CUDA GPU::

    be = get_backend("auto")          # "numpy" | "cupy" | "auto"
    x = be.xp.zeros((3, 4), dtype=be.xp.float32)
    host = be.asnumpy(x)              # always a numpy.ndarray

``SCRATCHRNN_BACKEND`` (numpy, cupy or auto) sets the default when no name is
given. ``auto`` picks CuPy only when it imports *and* a CUDA device answers.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy

from scratchrnn.core.errors import BackendUnavailable, ConfigError

BACKEND_NAMES = ("numpy", "cupy", "auto")


@dataclass(frozen=True)
class Backend:
    """An array library plus the few helpers the package needs around it."""

    name: str
    xp: Any = field(repr=False)

    @property
    def is_gpu(self) -> bool:
        return self.name == "cupy"

    def asarray(self, a, dtype=None):
        """Move ``a`` (host or device array, or list) onto this backend."""
        return self.xp.asarray(a, dtype=dtype)

    def asnumpy(self, a) -> numpy.ndarray:
        """Return ``a`` as a host ``numpy.ndarray`` (a no-op copy-free view on NumPy)."""
        if self.is_gpu and isinstance(a, self.xp.ndarray):
            return self.xp.asnumpy(a)
        if isinstance(a, numpy.ndarray):
            return a
        return numpy.asarray(a)

    def rng(self, seed=None):
        """A seeded random generator *on this backend* (``xp.random.default_rng``)."""
        return self.xp.random.default_rng(_checked_seed(seed))

    def dtype(self, name) -> numpy.dtype:
        """``"float32"``/``"float64"``/a dtype -> a NumPy dtype object (CuPy shares them)."""
        from scratchrnn.core.errors import ConfigError
        try:
            dt = numpy.dtype(name)
        except (TypeError, ValueError):
            raise ConfigError(f"dtype must be 'float32' or 'float64', got {name!r}.") from None
        if dt.kind != "f":
            raise ConfigError(f"dtype must be a floating type ('float32' or 'float64'), got {dt.name!r}.")
        return dt

    def synchronize(self) -> None:
        """Wait for queued GPU work (no-op on NumPy); use before reading a clock."""
        if self.is_gpu:
            self.xp.cuda.get_current_stream().synchronize()


def host_rng(seed=None) -> numpy.random.Generator:
    """A NumPy generator on the host. Parameters are initialised here and then
    moved to the backend, so the same seed gives the same weights on CPU and GPU."""
    return numpy.random.default_rng(_checked_seed(seed))


def _checked_seed(seed):
    """None, a generator or seed sequence as it is, else an integer >= 0 (ConfigError naming seed)."""
    if seed is None or isinstance(seed, (numpy.random.Generator, numpy.random.SeedSequence,
                                         numpy.random.BitGenerator)):
        return seed
    from scratchrnn.core.validation import seed_value
    return seed_value("seed", seed)


def cupy_unavailable_reason() -> str | None:
    """``None`` when CuPy can run here, else one sentence saying why it cannot."""
    return _cupy_probe()[1]


@lru_cache(maxsize=1)
def _cupy_probe():
    try:
        import cupy  # noqa: F401  (optional dependency)
    except Exception as exc:  # ImportError, or a broken CUDA install
        return None, (f"CuPy is not installed ({type(exc).__name__}); "
                      "install it with: pip install 'scratchrnn[gpu]'.")
    try:
        n = cupy.cuda.runtime.getDeviceCount()
        if n < 1:
            return None, "CuPy is installed but no CUDA GPU was found."
        cupy.zeros(1).sum().item()  # a real round trip through the device
    except Exception as exc:
        return None, f"CuPy is installed but no CUDA GPU is usable ({type(exc).__name__}: {exc})."
    return cupy, None


def default_backend_name() -> str:
    """The name in ``SCRATCHRNN_BACKEND``, or ``"numpy"``."""
    return os.environ.get("SCRATCHRNN_BACKEND", "numpy").strip().lower() or "numpy"


def get_backend(name: str | Backend | None = None) -> Backend:
    """Return the backend called ``name`` ("numpy", "cupy" or "auto").

    ``None`` means ``$SCRATCHRNN_BACKEND`` (default "numpy"). A ``Backend`` is
    returned unchanged. Raises ``BackendUnavailable`` with the reason when CuPy
    is asked for but cannot run, and ``ConfigError`` for an unknown name.
    """
    if isinstance(name, Backend):
        return name
    name = default_backend_name() if name is None else str(name).strip().lower()
    if name not in BACKEND_NAMES:
        raise ConfigError(f"Unknown backend {name!r}; choose one of {', '.join(BACKEND_NAMES)}.")
    if name == "numpy":
        return _NUMPY
    cupy, reason = _cupy_probe()
    if cupy is not None:
        return Backend("cupy", cupy)
    if name == "auto":
        return _NUMPY
    raise BackendUnavailable(f"The cupy backend was requested but cannot run: {reason}")


def backend_of(a) -> Backend:
    """The backend an array lives on (CuPy arrays -> cupy, everything else -> numpy).

    The array names its own module: a type defined in ``cupy`` (``cupy.ndarray``), or
    ``a.__array_namespace__()`` (the array API standard's way), and a module called
    ``cupy`` is the cupy backend on that very module."""
    if type(a) is numpy.ndarray:
        return _NUMPY
    xp = _array_module(a)
    if getattr(xp, "__name__", None) == "cupy":
        return Backend("cupy", xp)
    return _NUMPY


def _array_module(a):
    """The module whose array ``a`` is, or None (numbers, lists, ...)."""
    top = type(a).__module__.partition(".")[0]
    if top == "cupy":
        return sys.modules.get("cupy")
    namespace = getattr(a, "__array_namespace__", None)
    if namespace is None:
        return None
    try:
        return namespace()
    except Exception:       # a namespace that cannot answer is not a device module
        return None


_NUMPY = Backend("numpy", numpy)
CPU = _NUMPY
