"""``import cupy`` gives the NumPy stand-in for CuPy (tests/emulated_cupy.py).

For a CPU rehearsal of a GPU run: with ``tests/stand_in`` first on ``PYTHONPATH`` every
process (pytest, its workers, the command-line subprocesses the tests start) imports the
stand-in as ``cupy``, the backend's probe finds "one device", and
``SCRATCHRNN_BACKEND=cupy`` takes the package's real CuPy paths on the CPU::

    PYTHONPATH=tests/stand_in:$PWD SCRATCHRNN_BACKEND=cupy python -m pytest ...

(``REHEARSE=1 bash benchmarks/gpu_session.sh suite`` does this). Kernels are built with g++ into
a temporary folder of this process, removed at exit. Never put this on the path of a
real GPU run: it hides the real CuPy.
"""
import atexit
import os
import shutil
import sys
import tempfile

_TESTS = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if _TESTS not in sys.path:
    sys.path.append(_TESTS)

import emulated_cupy  # noqa: E402  (needs the tests folder on the path first)

_workdir = tempfile.mkdtemp(prefix="cupy-stand-in-")
atexit.register(shutil.rmtree, _workdir, True)
sys.modules[__name__] = emulated_cupy.stand_in(_workdir)
