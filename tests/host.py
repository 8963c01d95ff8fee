"""``to_host``: any array of the package (NumPy, CuPy, the stand-in for CuPy) as a NumPy array.

CuPy refuses implicit conversion (``np.asarray``, ``np.testing`` on a device array raise
TypeError), so a test that compares arrays which may live on the GPU compares
``to_host(a)``: the explicit copy of the backend the array lives on (``backend_of``).
"""
from __future__ import annotations

from scratchrnn.core.backend import backend_of


def to_host(a):
    """``a`` as a host ``numpy.ndarray`` (numbers and lists too); no copy for NumPy arrays."""
    return backend_of(a).asnumpy(a)
