"""Which OpenBLAS kernels NumPy runs, and whether the CPU could run faster ones.

NumPy's wheels ship OpenBLAS built for many CPUs at once (DYNAMIC_ARCH): when the
library loads it picks a kernel set for the CPU, unless ``OPENBLAS_CORETYPE`` names one.
An environment that sets ``OPENBLAS_CORETYPE=Haswell`` on a CPU with AVX-512 makes every
GEMM run AVX2 code: on this project's Zen 5 host that halves float32 GEMM speed (a 2048³
GEMM on 2 cores: 228 GFLOP/s with "Haswell", 421-434 with OpenBLAS's own choice,
"SkylakeX"), while PyTorch's oneDNN kernels use AVX-512 either way (docs/performance.md).

scratchrnn never changes the variable: it is the user's (or the machine's) choice, and
it must be set before NumPy loads. It reports: ``openblas_kernel()`` names the kernel set
in use, ``blas_advice()`` gives one sentence when the CPU has AVX-512 and the kernels do
not use it. The benchmark records name the kernel set (``describe()``); ``scratchrnn
train`` prints the advice.
"""
from __future__ import annotations

import ctypes
import os

AVX512_NEEDED = frozenset({"avx512f", "avx512dq", "avx512cd", "avx512bw", "avx512vl"})
"""The AVX-512 subsets of OpenBLAS's AVX-512 kernels (SkylakeX and later)."""

AVX512_KERNELS = frozenset({"SkylakeX", "Cooperlake", "SapphireRapids"})
"""OpenBLAS's x86 kernel sets that use AVX-512."""


def cpu_flags(cpuinfo_path="/proc/cpuinfo"):
    """The instruction-set flags of the first CPU in ``/proc/cpuinfo``; empty where there
    is no such file (not Linux)."""
    try:
        with open(cpuinfo_path) as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "flags":
                    return set(value.split())
    except OSError:
        pass
    return set()


def openblas_kernel():
    """The kernel set the loaded OpenBLAS runs ("Haswell", "SkylakeX", ...), or None where
    NumPy's BLAS is not an OpenBLAS that says. Imports NumPy (which loads the BLAS)."""
    import numpy  # noqa: F401  (loads the BLAS library)
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "openblas" in line and ".so" in line}
    except OSError:
        return None
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in ("scipy_openblas_get_corename64_", "scipy_openblas_get_corename",
                     "openblas_get_corename64_", "openblas_get_corename"):
            fn = getattr(lib, name, None)
            if fn is not None:
                fn.restype = ctypes.c_char_p
                return fn().decode()
    return None


def blas_advice(kernel=None, flags=None, environ=None):
    """One sentence when this CPU has AVX-512 and OpenBLAS runs kernels without it; else None.

    kernel: as ``openblas_kernel()`` (None: ask it).  flags: as ``cpu_flags()``.
    """
    environ = os.environ if environ is None else environ
    kernel = openblas_kernel() if kernel is None else kernel
    flags = cpu_flags() if flags is None else flags
    if not kernel or kernel in AVX512_KERNELS or not AVX512_NEEDED <= set(flags):
        return None
    forced = environ.get("OPENBLAS_CORETYPE")
    fix = (f"OPENBLAS_CORETYPE={forced} is set: unset it" if forced else
           "set OPENBLAS_CORETYPE=SkylakeX before Python starts")
    return (f"NumPy's OpenBLAS runs its {kernel} kernels on a CPU with AVX-512; {fix} "
            "for faster GEMMs (1.9x on the Zen 5 host of docs/performance.md).")


def describe():
    """NumPy's BLAS in one line for benchmark records, e.g. "scipy-openblas 0.3.31,
    Haswell kernels (OPENBLAS_CORETYPE=Haswell)". Imports NumPy."""
    import numpy
    try:
        blas = numpy.show_config(mode="dicts").get("Build Dependencies", {}).get("blas", {})
        text = f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception:                       # older NumPy: no dict mode
        text = "?"
    kernel = openblas_kernel()
    if kernel:
        forced = os.environ.get("OPENBLAS_CORETYPE")
        text += f", {kernel} kernels" + (f" (OPENBLAS_CORETYPE={forced})" if forced else "")
    return text
