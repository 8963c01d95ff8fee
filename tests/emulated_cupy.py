"""A stand-in for ``cupy`` made of NumPy, so the GPU code paths run on a machine without a GPU.

It checks two things a plain NumPy run cannot:

- **The fused kernels' C++ bodies.** Each ``ElementwiseKernel`` is compiled with g++ into a
  loop over the element index ``i`` and run on the arrays' memory (``EmulatedElementwiseKernel``).
- **That code never reads from the device.** Every array the stand-in makes is a
  ``DeviceArray``: a NumPy array that, inside ``host_reads_refused()``, raises ``HostRead`` on
  each operation that on CuPy copies device memory to the host and waits for the GPU
  (``float()``, ``int()``, ``bool()``, ``.item()``, ``.tolist()``, ``.get()``, boolean-mask
  indexing, ``nonzero``); outside the block they work, as on CuPy. A CUDA graph
  capture fails on exactly these, so a step that runs here without ``HostRead`` has no such
  read; it may still do other things a capture refuses, which only a GPU shows.

Its ``random.default_rng`` has only the methods ``cupy.random.Generator`` has that the
package may use (``random``, ``integers``, ``standard_normal``): NumPy's ``normal``,
``permutation`` and ``choice`` are missing there, as on CuPy.

    fake = stand_in(workdir)                      # a module that answers as cupy
    cupy_fused = fused_module(fake)               # the fused engines, bound to it
    with cupy_replaced_by(fake):                  # the whole package's GPU paths, on it
        model = CharLM(..., backend=device_backend(fake))
"""
from __future__ import annotations

import ctypes
import importlib
import subprocess
import sys
import types
from contextlib import contextmanager

import numpy as np

from scratchrnn.core.backend import Backend


class HostRead(AssertionError):
    """Code read a value from the (emulated) device back to the host."""


_refusing = [False]


@contextmanager
def host_reads_refused():
    """Within the block every host read of a DeviceArray raises HostRead (outside it they
    are allowed, as on CuPy, where they are slow but legal: a run reads its loss to print it)."""
    old, _refusing[0] = _refusing[0], True
    try:
        yield
    finally:
        _refusing[0] = old


def _refuse(what, allowed=None):
    """A method that raises HostRead inside ``host_reads_refused()``, else does ``allowed``."""
    def method(self, *args, **kwargs):
        if _refusing[0] or allowed is None:
            raise HostRead(f"{what} reads a device array back to the host")
        return getattr(np.asarray(self).view(np.ndarray), allowed)(*args, **kwargs)
    return method


class DeviceArray(np.ndarray):
    """A NumPy array that behaves like a CuPy array about host reads: each raises HostRead.

    Results of arithmetic on it, reductions to one value included, stay DeviceArrays
    (on CuPy a full reduction is a 0-d device array, not a host number)."""

    __float__ = _refuse("float()", "__float__")
    __int__ = _refuse("int()", "__int__")
    __index__ = _refuse("using it as an index number", "__index__")
    __bool__ = _refuse("bool() (an if, and, or, or a comparison chain)", "__bool__")
    __complex__ = _refuse("complex()", "__complex__")
    item = _refuse(".item()", "item")
    tolist = _refuse(".tolist()", "tolist")
    get = _refuse(".get()", "copy")
    nonzero = _refuse(".nonzero() (its size is data-dependent)", "nonzero")

    def __array_wrap__(self, obj, context=None, return_scalar=False):
        return np.asarray(obj).view(DeviceArray)

    def __getitem__(self, key):
        _refuse_mask(key)
        out = super().__getitem__(key)
        return out.view(DeviceArray) if isinstance(out, np.ndarray) else np.asarray(out).view(DeviceArray)

    def __setitem__(self, key, value):
        _refuse_mask(key)
        super().__setitem__(key, value)


def _refuse_mask(key):
    keys = key if isinstance(key, tuple) else (key,)
    if _refusing[0] and any(isinstance(k, np.ndarray) and k.dtype == bool and k.ndim > 0 for k in keys):
        raise HostRead("indexing with a boolean mask (its size is data-dependent)")


def on_device(a):
    """``a`` as a DeviceArray (numbers and NumPy scalars become 0-d DeviceArrays)."""
    return a if isinstance(a, DeviceArray) else np.asarray(a).view(DeviceArray)


def _wrap_function(fn):
    def wrapped(*args, **kwargs):
        out = fn(*args, **kwargs)
        if isinstance(out, tuple):
            return tuple(on_device(o) if isinstance(o, (np.ndarray, np.generic)) else o for o in out)
        return on_device(out) if isinstance(out, (np.ndarray, np.generic)) else out
    wrapped.__name__ = getattr(fn, "__name__", "function")
    return wrapped


class _Generator:
    """The part of ``cupy.random.Generator`` the package may use, on NumPy's generator."""

    def __init__(self, seed=None):
        self._rng = np.random.default_rng(seed)

    def random(self, size=None, dtype=np.float64):
        return on_device(self._rng.random(size, dtype=dtype))

    def integers(self, low, high=None, size=None, dtype=np.int64):
        return on_device(self._rng.integers(low, high, size, dtype=dtype))

    def standard_normal(self, size=None, dtype=np.float64):
        return on_device(self._rng.standard_normal(size, dtype=dtype))


_CTYPES = {"double": ctypes.c_double, "float": ctypes.c_float}


class EmulatedElementwiseKernel:
    """cupy.ElementwiseKernel with only ``raw`` arrays and int32 scalars, run by g++-built code."""

    workdir = None

    def __init__(self, in_params, out_params, operation, name, preamble=""):
        self.params = [p.split() for p in (in_params + ", " + out_params).split(",")]
        self.operation, self.name, self.preamble = operation, name, preamble
        self.libs = {}

    def _lib(self, ctype):
        if ctype in self.libs:
            return self.libs[ctype]
        args = ", ".join(f"{ctype}* {p[-1]}" if p[0] == "raw" else f"int {p[-1]}"
                         for p in self.params)
        src = ("#include <cmath>\n#include <cstddef>\nusing std::tanh;\n" + self.preamble +
               f'extern "C" void run(long n, {args}) {{\n'
               f"  for (long i = 0; i < n; ++i) {{\n{self.operation}\n  }}\n}}\n")
        base = f"{self.workdir}/{self.name}_{ctype}"
        with open(base + ".cpp", "w") as f:
            f.write(src)
        subprocess.run(["g++", "-O1", "-shared", "-fPIC", "-o", base + ".so", base + ".cpp"],
                       check=True, capture_output=True)
        lib = ctypes.CDLL(base + ".so")
        self.libs[ctype] = lib
        return lib

    def __call__(self, *args, size):
        arrays = [a for a in args if isinstance(a, np.ndarray)]
        ctype = "double" if arrays[0].dtype == np.float64 else "float"
        cargs = []
        for p, a in zip(self.params, args):
            if p[0] == "raw":
                assert a.flags.c_contiguous and a.dtype == arrays[0].dtype, p
                cargs.append(a.ctypes.data_as(ctypes.POINTER(_CTYPES[ctype])))
            else:       # a Python int: shapes are host numbers, never device reads
                assert isinstance(a, int) and not isinstance(a, np.ndarray), p
                cargs.append(ctypes.c_int(a))
        self._lib(ctype).run(ctypes.c_long(size), *cargs)


def _refused_function(name, fn):
    """``xp.name``, refused inside ``host_reads_refused()`` (its result's size needs a read)."""
    wrapped = _wrap_function(fn)

    def function(*args, **kwargs):
        if _refusing[0]:
            raise HostRead(f"xp.{name}() reads a device array back to the host (its size is data-dependent)")
        return wrapped(*args, **kwargs)
    return function


def stand_in(workdir):
    """A module that answers as ``cupy`` does for this package: NumPy's functions, with their
    array results made DeviceArrays; NumPy's dtypes and ufuncs as they are; ``random``
    with the Generator above; ``ElementwiseKernel`` compiled by g++ into ``workdir``;
    ``asnumpy`` (an explicit, allowed copy to the host) as a plain NumPy array."""
    fake = types.ModuleType("cupy")
    fake.__doc__ = __doc__
    fake.ndarray = DeviceArray
    fake.ElementwiseKernel = type("ElementwiseKernel", (EmulatedElementwiseKernel,),
                                  {"workdir": str(workdir)})
    fake.random = types.SimpleNamespace(default_rng=_Generator, Generator=_Generator)
    fake.asnumpy = lambda a: np.array(a.view(np.ndarray) if isinstance(a, np.ndarray) else a)
    for name in ("nonzero", "flatnonzero", "argwhere", "unique", "count_nonzero"):
        setattr(fake, name, _refused_function(name, getattr(np, name)))

    def __getattr__(name):
        obj = getattr(np, name)
        if callable(obj) and not isinstance(obj, (type, np.ufunc)):
            return _wrap_function(obj)
        return obj
    fake.__getattr__ = __getattr__
    return fake


def device_backend(fake):
    """A Backend named "cupy" whose ``xp`` is the stand-in: the package then takes its GPU
    paths (the fused engines, the device training step) on the CPU."""
    return Backend("cupy", fake)


@contextmanager
def cupy_replaced_by(fake):
    """Within the block, ``import cupy`` gives ``fake`` and the package's CuPy modules are
    imported afresh against it (``scratchrnn.engines.cupy_fused`` imports cupy at its top, so
    on a machine without CuPy it cannot be imported otherwise). Afterwards ``sys.modules``
    and the ``scratchrnn.engines`` package attribute are as they were, so a real GPU test run
    later in the same session gets the real module."""
    import scratchrnn.engines as package
    names = ("cupy", FUSED)
    saved = {k: sys.modules.get(k) for k in names}
    saved_attr = package.__dict__.get("cupy_fused")
    sys.modules["cupy"] = fake
    sys.modules.pop(FUSED, None)
    package.__dict__.pop("cupy_fused", None)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
        if saved_attr is None:
            package.__dict__.pop("cupy_fused", None)
        else:
            package.cupy_fused = saved_attr


FUSED = "scratchrnn.engines.cupy_fused"


def fused_module(fake):
    """``scratchrnn.engines.cupy_fused`` imported against ``fake``; it keeps working after
    the import because it holds ``fake`` as its ``cupy``."""
    with cupy_replaced_by(fake):
        return importlib.import_module(FUSED)
