"""A stand-in for ``cupy`` made of NumPy, so the GPU code paths run on a machine without a GPU.

It checks three things a plain NumPy run cannot:

- **The package's CuPy dispatch.** Every array the stand-in makes is a ``DeviceArray``: not a
  ``numpy.ndarray`` but a wrapper around one (the "device memory"), as a CuPy array is not
  one either. ``backend_of`` finds its module (``__array_namespace__``, a module named
  ``cupy``) and so takes the package's CuPy path; NumPy functions and ufuncs applied to it
  dispatch back to the stand-in (``__array_ufunc__``/``__array_function__``, as CuPy does);
  mixing it with a host ``numpy.ndarray`` in one operation is a ``TypeError`` (a host array
  enters only through ``asarray`` or as ``a[:] = host``, as on CuPy), and so is any
  implicit conversion to NumPy (``np.asarray``, ``np.testing`` on it): ``asnumpy`` or
  ``.get()`` is the one way to the host, as on CuPy.
- **The fused kernels' C++ bodies.** Each ``ElementwiseKernel`` is compiled with g++ into a
  loop over the element index ``i`` and run on the arrays' memory (``EmulatedElementwiseKernel``).
- **That code never reads from the device.** Inside ``host_reads_refused()`` each operation
  that on CuPy copies device memory to the host and waits for the GPU raises ``HostRead``
  (``float()``, ``int()``, ``bool()``, ``.item()``, ``.tolist()``, ``.get()``, ``asnumpy``,
  boolean-mask indexing, ``nonzero``); outside the block they work, as on CuPy. A CUDA graph
  capture fails on exactly these, so a step that runs here without ``HostRead`` has no such
  read; it may still do other things a capture refuses, which only a GPU shows.

Its ``random.default_rng`` has only the methods ``cupy.random.Generator`` has that the
package may use (``random``, ``integers``, ``standard_normal``): NumPy's ``normal``,
``permutation`` and ``choice`` are missing there, as on CuPy.

    fake = stand_in(workdir)                      # a module that answers as cupy
    cupy_fused = fused_module(fake)               # the fused engines, bound to it
    with cupy_replaced_by(fake):                  # the whole package's GPU paths, on it
        model = CharLM(..., backend=device_backend(fake))

``SCRATCHRNN_CUPY_STAND_IN=1`` (tests/conftest.py, ``install_for_session``) makes the stand-in
*the* CuPy of a whole test session, so ``SCRATCHRNN_BACKEND=cupy python -m pytest`` rehearses
the GPU run on the CPU (what only a GPU shows: speed, CUDA graphs, the real kernels' compiler).
"""
from __future__ import annotations

import ctypes
import importlib
import subprocess
import sys
import types
from contextlib import contextmanager

import numpy as np
from numpy.lib.mixins import NDArrayOperatorsMixin

from scratchrnn.core.backend import Backend


class HostRead(AssertionError):
    """Code read a value from the (emulated) device back to the host."""


# CuPy's own words for an implicit conversion (np.asarray, np.testing) of a device array
IMPLICIT = ("Implicit conversion to a NumPy array is not allowed. "
            "Please use `.get()` to construct a NumPy array explicitly.")

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


def _check_read(what):
    if _refusing[0]:
        raise HostRead(f"{what} reads a device array back to the host")


def _read(what, method):
    """A method that reads the array to the host: HostRead inside ``host_reads_refused()``."""
    def read(self, *args, **kwargs):
        _check_read(what)
        return getattr(self._a, method)(*args, **kwargs)
    read.__name__ = method
    return read


class DeviceArray(NDArrayOperatorsMixin):
    """An array "on the device": a NumPy array ``_a`` it never hands out implicitly, and the
    stand-in module ``_xp`` it belongs to. Results of arithmetic on it, reductions to one
    value included, are DeviceArrays (on CuPy a full reduction is a 0-d device array)."""

    __slots__ = ("_a", "_xp")
    __array_priority__ = 100

    def __init__(self, a, xp):
        self._a, self._xp = a, xp

    # ---- what CuPy knows without a read: shape, dtype, strides, flags, memory
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    strides = property(lambda self: self._a.strides)
    flags = property(lambda self: self._a.flags)
    T = property(lambda self: self._wrap(self._a.T))

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        return (self._wrap(row) for row in self._a)

    def __repr__(self):
        return f"DeviceArray({self._a!r})"

    def __array_namespace__(self, api_version=None):
        return self._xp

    # ---- host reads: allowed outside host_reads_refused(), as on CuPy
    __float__ = _read("float()", "__float__")
    __int__ = _read("int()", "__int__")
    __index__ = _read("using it as an index number", "__index__")
    __bool__ = _read("bool() (an if, and, or, or a comparison chain)", "__bool__")
    __complex__ = _read("complex()", "__complex__")
    item = _read(".item()", "item")
    tolist = _read(".tolist()", "tolist")
    get = _read(".get()", "copy")

    def nonzero(self):
        _check_read(".nonzero() (its size is data-dependent)")
        return tuple(self._wrap(i) for i in self._a.nonzero())

    def __array__(self, dtype=None, copy=None):
        raise TypeError(IMPLICIT)

    # ---- dispatch, as CuPy's __array_ufunc__ / __array_function__ do
    def _wrap(self, out):
        return _wrap(out, self._xp)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if "out" in kwargs:
            kwargs["out"] = tuple(_device_only(o, ufunc.__name__) for o in kwargs["out"])
        inputs = tuple(_device_only(x, ufunc.__name__) for x in inputs)
        return self._wrap(getattr(ufunc, method)(*inputs, **kwargs))

    def __array_function__(self, func, types_, args, kwargs):
        return self._wrap(func(*_unwrap(args, func.__name__), **_unwrap(kwargs, func.__name__)))

    def __getitem__(self, key):
        _refuse_mask(key)
        return self._wrap(self._a[_unwrap(key, "indexing", host_ok=True)])

    def __setitem__(self, key, value):
        _refuse_mask(key)
        if isinstance(value, np.ndarray) and value.ndim > 0 and not (
                isinstance(key, slice) and key == slice(None)):
            # CuPy copies a host array in only as ``a[:] = host``; any other target it fills
            # with a scalar, and a non-scalar host array there is its ValueError
            raise ValueError("non-scalar numpy.ndarray cannot be used for fill (CuPy takes a host "
                             "array only as a[:] = host; move it with backend.asarray first)")
        self._a[_unwrap(key, "indexing", host_ok=True)] = _unwrap(value, "assignment", host_ok=True)

    def __getattr__(self, name):                # every other ndarray method, on the device
        if name.startswith("__"):
            raise AttributeError(name)
        attr = getattr(self._a, name)
        if not callable(attr):
            return self._wrap(attr)

        def method(*args, **kwargs):
            return self._wrap(attr(*_unwrap(args, name), **_unwrap(kwargs, name)))
        method.__name__ = name
        return method


def _device_only(x, where):
    """The NumPy array behind a DeviceArray; a host array raises TypeError (CuPy refuses
    to mix host and device arrays in one operation); numbers pass."""
    if isinstance(x, DeviceArray):
        return x._a
    if isinstance(x, np.ndarray):
        raise TypeError(f"{where}: unsupported type {type(x)} (a host NumPy array given to a device "
                        "operation; move it with backend.asarray first)")
    return x


def _unwrap(x, where, host_ok=False):
    """``x`` with every DeviceArray inside (tuples, lists, dicts) replaced by its memory."""
    if isinstance(x, DeviceArray):
        return x._a
    if isinstance(x, tuple):
        return tuple(_unwrap(v, where, host_ok) for v in x)
    if isinstance(x, list):
        return [_unwrap(v, where, host_ok) for v in x]
    if isinstance(x, dict):
        return {k: _unwrap(v, where, host_ok) for k, v in x.items()}
    if isinstance(x, np.ndarray) and not host_ok:
        return _device_only(x, where)
    return x


def _wrap(out, xp):
    """Array results as DeviceArrays on ``xp`` (NumPy scalars as 0-d ones), tuples item by item."""
    if isinstance(out, np.ndarray):
        return DeviceArray(out, xp)
    if isinstance(out, np.generic):
        return DeviceArray(np.asarray(out), xp)
    if isinstance(out, tuple):
        return tuple(_wrap(o, xp) for o in out)
    if isinstance(out, list):
        return [_wrap(o, xp) for o in out]
    return out


def _refuse_mask(key):
    keys = key if isinstance(key, tuple) else (key,)
    for k in keys:
        a = k._a if isinstance(k, DeviceArray) else k
        if _refusing[0] and isinstance(a, np.ndarray) and a.dtype == bool and a.ndim > 0:
            raise HostRead("indexing with a boolean mask (its size is data-dependent)")


def _device_function(fn, xp, name, host_ok=False):
    """``xp.name``: ``fn`` on the arrays' memory, array results on the device. Host arrays
    are refused, except by the functions that move data to the device (``host_ok``)."""
    def function(*args, **kwargs):
        return _wrap(fn(*_unwrap(args, f"xp.{name}", host_ok), **_unwrap(kwargs, f"xp.{name}", host_ok)), xp)
    function.__name__ = name
    return function


class _UFunc:
    """A NumPy ufunc as CuPy's: device arrays in and out (``.at``, ``.reduce`` ... too)."""

    def __init__(self, ufunc, xp):
        self._u, self._xp = ufunc, xp
        self.__name__ = ufunc.__name__

    def __call__(self, *args, **kwargs):
        return self._call("__call__", args, kwargs)

    def _call(self, method, args, kwargs):
        if "out" in kwargs:
            out = kwargs["out"]
            kwargs["out"] = tuple(_device_only(o, self.__name__) for o in out) if isinstance(out, tuple) \
                else _device_only(out, self.__name__)
        args = tuple(_device_only(a, self.__name__) for a in args)
        return _wrap(getattr(self._u, method)(*args, **kwargs), self._xp)

    def __getattr__(self, name):
        attr = getattr(self._u, name)
        if callable(attr):
            return lambda *args, **kwargs: self._call(name, args, kwargs)
        return attr


class _Generator:
    """The part of ``cupy.random.Generator`` the package may use, on NumPy's generator."""

    def __init__(self, xp, seed=None):
        self._rng, self._xp = np.random.default_rng(seed), xp

    def random(self, size=None, dtype=np.float64):
        return _wrap(np.asarray(self._rng.random(size, dtype=dtype)), self._xp)

    def integers(self, low, high=None, size=None, dtype=np.int64):
        return _wrap(np.asarray(self._rng.integers(low, high, size, dtype=dtype)), self._xp)

    def standard_normal(self, size=None, dtype=np.float64):
        return _wrap(np.asarray(self._rng.standard_normal(size, dtype=dtype)), self._xp)


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
        for p, a in zip(self.params, args):
            if p[0] == "raw" and not isinstance(a, DeviceArray):
                raise TypeError(f"{self.name}: argument {p[-1]} is a {type(a).__name__}, not a device array")
        arrays = [a._a for a in args if isinstance(a, DeviceArray)]
        ctype = "double" if arrays[0].dtype == np.float64 else "float"
        cargs = []
        for p, a in zip(self.params, args):
            if p[0] == "raw":
                a = a._a
                assert a.flags.c_contiguous and a.dtype == arrays[0].dtype, p
                cargs.append(a.ctypes.data_as(ctypes.POINTER(_CTYPES[ctype])))
            else:       # a Python int: shapes are host numbers, never device reads
                assert isinstance(a, int) and not isinstance(a, (np.ndarray, DeviceArray)), p
                cargs.append(ctypes.c_int(a))
        self._lib(ctype).run(ctypes.c_long(size), *cargs)


def _refused_function(name, fn, xp):
    """``xp.name``, refused inside ``host_reads_refused()`` (its result's size needs a read)."""
    wrapped = _device_function(fn, xp, name)

    def function(*args, **kwargs):
        if _refusing[0]:
            raise HostRead(f"xp.{name}() reads a device array back to the host (its size is data-dependent)")
        return wrapped(*args, **kwargs)
    function.__name__ = name
    return function


class _Stream:
    """``cupy.cuda.Stream`` as far as the package and its tests use it. Work here is done when
    it is queued. A capture (``begin_capture`` .. ``end_capture``) refuses host reads, as a
    CUDA stream capture does; the graph it returns replays nothing when launched (the work
    already ran while it was captured), so a test of a captured step checks here that the
    step reads nothing back, and only a GPU checks the replay."""

    def __init__(self, non_blocking=False):
        self._capture = None

    def synchronize(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def begin_capture(self):
        self._capture = host_reads_refused()
        self._capture.__enter__()

    def end_capture(self):
        capture, self._capture = self._capture, None
        capture.__exit__(None, None, None)
        return types.SimpleNamespace(launch=lambda stream=None: None)


@contextmanager
def _using_allocator(allocator=None):
    yield


class _MemoryPool:
    """``cupy`` memory pools with nothing behind them: they allocate nothing and count 0 bytes
    (memory figures from a rehearsal mean nothing; only a GPU measures them)."""

    malloc = None

    def __init__(self, *args):
        pass

    def free_all_blocks(self):
        pass

    def used_bytes(self):
        return 0

    def total_bytes(self):
        return 0


def _cuda_namespace():
    """``cupy.cuda``: one device named for what it is, streams, a memory pool that allocates nothing."""
    runtime = types.SimpleNamespace(
        getDeviceCount=lambda: 1, driverGetVersion=lambda: 0, runtimeGetVersion=lambda: 0,
        getDeviceProperties=lambda device: {"name": b"NumPy stand-in for CuPy (no GPU)"})
    return types.SimpleNamespace(
        runtime=runtime, Stream=_Stream, get_current_stream=_Stream, using_allocator=_using_allocator,
        MemoryPool=_MemoryPool)


# the functions that take host data to the device (everything else refuses host arrays;
# cupy.ascontiguousarray documents a cupy.ndarray argument, so it refuses them here too)
TO_DEVICE = ("asarray", "array", "asanyarray")


def stand_in(workdir):
    """A module that answers as ``cupy`` does for this package: NumPy's functions and ufuncs
    on device arrays (``DeviceArray``) only, their array results on the device; NumPy's
    dtypes as they are; ``random`` with the Generator above; ``ElementwiseKernel`` compiled by
    g++ into ``workdir``; ``asnumpy`` (an explicit copy to the host, refused inside
    ``host_reads_refused()``) as a plain ``numpy.ndarray``; ``cuda`` with one device, streams
    and their capture (``_Stream``)."""
    fake = types.ModuleType("cupy")
    fake.__doc__ = __doc__
    fake.__file__ = __file__
    fake.ndarray = DeviceArray
    fake.ElementwiseKernel = type("ElementwiseKernel", (EmulatedElementwiseKernel,),
                                  {"workdir": str(workdir)})
    generator = lambda seed=None: _Generator(fake, seed)
    fake.random = types.SimpleNamespace(default_rng=generator, Generator=generator)
    fake.__version__ = "stand-in (NumPy " + np.__version__ + ")"
    fake.cuda = _cuda_namespace()
    pool = _MemoryPool()
    fake.get_default_memory_pool = lambda: pool

    def asnumpy(a, stream=None):
        if isinstance(a, DeviceArray):
            _check_read("asnumpy()")
            return a._a.copy()
        return np.array(a)
    fake.asnumpy = asnumpy
    for name in ("nonzero", "flatnonzero", "argwhere", "unique", "count_nonzero"):
        setattr(fake, name, _refused_function(name, getattr(np, name), fake))
    for name in TO_DEVICE:
        setattr(fake, name, _device_function(getattr(np, name), fake, name, host_ok=True))

    def __getattr__(name):
        obj = getattr(np, name)
        if isinstance(obj, np.ufunc):
            return _UFunc(obj, fake)
        if callable(obj) and not isinstance(obj, type):
            return _device_function(obj, fake, name)
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
