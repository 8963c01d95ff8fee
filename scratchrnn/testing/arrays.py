"""Arrays at the boundary: whatever a user's function takes and returns, the kit compares NumPy.

``to_numpy(a)`` turns a result into a host NumPy array:

- NumPy arrays, Python numbers and lists: ``numpy.asarray``;
- PyTorch tensors (CPU): detached, then read through DLPack (``numpy.from_dlpack``);
- CuPy arrays: copied to the host with ``.get()``;
- anything else with ``__dlpack__`` (JAX on CPU, ...) through DLPack, else ``__array__``.

``to_user`` is the other direction: a callable that turns each NumPy input into the user's
array type before the call (``converter("torch")`` gives ``torch.from_numpy``, a CPU tensor
that shares the NumPy buffer). Tested here: NumPy and PyTorch on CPU. CuPy goes through the
same code (``.get()`` back, ``cupy.asarray`` there) but is only exercised on a GPU machine;
JAX and other DLPack libraries are expected to work and are untested.
"""
from __future__ import annotations

from scratchrnn.core.backend import CPU

numpy = CPU.xp


def to_numpy(a):
    """A host NumPy array holding the values of ``a`` (any array type listed above)."""
    if isinstance(a, numpy.ndarray):
        return a
    if hasattr(a, "detach") and hasattr(a, "cpu"):          # a torch tensor, maybe with grad
        a = a.detach().cpu()
        if getattr(a, "is_conj", lambda: False)() or getattr(a, "is_neg", lambda: False)():
            a = a.resolve_conj().resolve_neg()
        return numpy.from_dlpack(a) if a.numel() else numpy.asarray(a.numpy())
    if type(a).__module__.startswith("cupy") and hasattr(a, "get"):
        return a.get()
    if hasattr(a, "__dlpack__") and not isinstance(a, (int, float, complex)):
        try:
            return numpy.from_dlpack(a)
        except (TypeError, RuntimeError, BufferError, ValueError):
            pass
    return numpy.asarray(a)


def converter(library: str):
    """``to_user`` for a library name: "numpy" (a copy), "torch" (CPU tensors), "cupy"."""
    name = str(library).lower()
    if name == "numpy":
        return lambda a: numpy.array(a, copy=True)
    if name == "torch":
        import torch
        return lambda a: torch.from_numpy(numpy.array(a, copy=True))
    if name == "cupy":
        import cupy
        return cupy.asarray
    raise ValueError(f"converter knows numpy, torch and cupy, not {library!r}.")


def as_user(value, to_user):
    """``value`` with every NumPy array in it (also inside dicts, tuples and lists) passed
    through ``to_user``; other values as they are."""
    if isinstance(value, numpy.ndarray):
        return to_user(value)
    if isinstance(value, dict):
        return {k: as_user(v, to_user) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return type(value)(as_user(v, to_user) for v in value)
    return value
