"""The stand-in for CuPy (tests/emulated_cupy.py) takes the package's real CuPy path.

A CPU rehearsal of a GPU run is only worth what the stand-in shares with CuPy: here
``backend_of`` sees its arrays as CuPy's (the cupy ``Backend`` on the stand-in, so the
book's ``xp`` code, the optimizers and the checkpoints take their GPU branch), ``asnumpy``
hands back a plain ``numpy.ndarray``, and what CuPy refuses is refused: implicit
conversion to NumPy, host arrays inside device operations, and (inside
``host_reads_refused()``) every read back to the host. Each check has its control: the
same call on a NumPy array goes the NumPy way.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import emulated_cupy
from emulated_cupy import DeviceArray, HostRead, host_reads_refused
from scratchrnn.blocks.model import CharLM
from scratchrnn.book import ops
from scratchrnn.book.optim import make_optimizer
from scratchrnn.core.backend import CPU, backend_of

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    return emulated_cupy.stand_in(tmp_path_factory.mktemp("stand_in"))


@pytest.fixture(scope="module")
def dev(fake):
    return emulated_cupy.device_backend(fake)


def test_backend_of_sees_a_device_array_as_cupy_on_the_stand_in(fake, dev):
    x = dev.asarray(np.arange(6.0).reshape(2, 3))
    assert type(x) is DeviceArray and not isinstance(x, np.ndarray)
    found = backend_of(x)
    assert found.name == "cupy" and found.is_gpu and found.xp is fake and found == dev
    assert backend_of(np.zeros(2)) is CPU                     # the control: host arrays
    assert backend_of(x.sum()).xp is fake                     # a full reduction stays on the device


def test_asnumpy_hands_back_a_plain_numpy_array(dev):
    x = dev.asarray(np.arange(4.0))
    for host in (dev.asnumpy(x), backend_of(x).asnumpy(x), dev.xp.asnumpy(x), x.get()):
        assert type(host) is np.ndarray
        np.testing.assert_array_equal(host, np.arange(4.0))
    host = dev.asnumpy(x)
    host[0] = 99.0                                            # a copy: the device keeps its value
    assert float(x[0]) == 0.0


def test_implicit_conversion_is_refused_as_on_cupy(dev):
    x = dev.asarray(np.ones(3))
    with pytest.raises(TypeError, match="Implicit conversion to a NumPy array is not allowed"):
        np.asarray(x)
    with pytest.raises(TypeError, match="Implicit conversion"):
        np.testing.assert_allclose(x, np.ones(3))
    with pytest.raises(TypeError, match="Implicit conversion"):
        CPU.asnumpy(x)                                        # the NumPy backend cannot take it either


def test_host_arrays_are_refused_in_device_operations(dev):
    x, host = dev.asarray(np.ones(3)), np.ones(3)
    for operation in (lambda: x + host, lambda: np.add(x, host), lambda: dev.xp.exp(host),
                      lambda: dev.xp.matmul(host, x), lambda: dev.xp.concatenate([x, host]),
                      lambda: dev.xp.ascontiguousarray(host)):
        with pytest.raises(TypeError, match="host NumPy array"):
            operation()
    assert type(x + 1.0) is DeviceArray and type(np.exp(x)) is DeviceArray    # numbers are fine
    assert type(dev.xp.concatenate([x, x])) is DeviceArray                   # NumPy functions dispatch
    assert type(dev.xp.asarray(host)) is DeviceArray                         # the way onto the device


def test_a_host_array_is_copied_in_only_by_a_full_slice(dev):
    x = dev.asarray(np.zeros((2, 3)))
    x[:] = np.ones((2, 3))                                    # CuPy's one host-to-device assignment
    x[0, 1] = np.float64(5.0)                                 # scalars fill anywhere
    np.testing.assert_array_equal(dev.asnumpy(x), [[1.0, 5.0, 1.0], [1.0, 1.0, 1.0]])
    for target in ((Ellipsis), (0,), (slice(None), 0)):
        with pytest.raises(ValueError, match="non-scalar numpy.ndarray"):
            x[target] = np.zeros(x[target].shape)


def test_in_place_and_out_arguments_write_the_device_array(dev):
    x = dev.asarray(np.arange(3.0))
    view = x[1:]
    x += 1.0
    dev.xp.multiply(x, 2.0, out=x)
    np.testing.assert_array_equal(dev.asnumpy(x), [2.0, 4.0, 6.0])
    np.testing.assert_array_equal(dev.asnumpy(view), [4.0, 6.0])             # views share memory


def test_host_reads_are_refused_inside_the_block_and_allowed_outside(dev):
    x = dev.asarray(np.arange(3.0))
    reads = [lambda: float(x.sum()), lambda: bool(x[0] == 0), lambda: x.item(0), lambda: x.get(),
             lambda: dev.asnumpy(x), lambda: x[x > 0], lambda: dev.xp.nonzero(x), lambda: x.tolist()]
    for read in reads:
        read()                                                 # outside: legal, as on CuPy
        with host_reads_refused(), pytest.raises(HostRead):
            read()
    with host_reads_refused():
        y = x * 2.0 + x.sum()                                  # device work, no read: fine
    assert type(y) is DeviceArray


def test_the_book_dispatches_to_the_stand_in(dev):
    x = dev.asarray(np.linspace(-2.0, 2.0, 5))
    with host_reads_refused():
        s = ops.sigmoid(x)
    assert type(s) is DeviceArray
    np.testing.assert_allclose(dev.asnumpy(s), 1.0 / (1.0 + np.exp(-np.linspace(-2.0, 2.0, 5))))


@pytest.mark.skipif(shutil.which("g++") is None, reason="g++ is not installed (the kernels are built with it)")
def test_a_model_on_the_stand_in_takes_the_gpu_engines_and_keeps_state_on_the_device(fake, dev):
    with emulated_cupy.cupy_replaced_by(fake):
        model = CharLM(9, "lstm", 6, 1, seed=0, backend=dev)
        assert model.rnn.engine == "fast (cupy fused kernels)"
        opt = make_optimizer("adam", 0.01)
        grads = {k: dev.xp.ones_like(p) for k, p in model.params.items()}
        opt.step(model.params, grads)
    assert all(type(p) is DeviceArray for p in model.params.values())
    assert all(type(a) is DeviceArray for store in opt.state.values() for a in store.values())
    assert all(type(a) is np.ndarray for a in model.state_arrays().values())   # saved from the host


def test_the_stand_in_is_cupy_for_a_whole_process_with_tests_stand_in_on_the_path():
    """``tests/stand_in`` first on PYTHONPATH: ``import cupy`` is the stand-in, the backend's
    probe finds a device, and ``get_backend("cupy")`` runs on it (the rehearsal's set-up)."""
    code = ("import cupy, numpy as np; from scratchrnn.core.backend import get_backend, backend_of, "
            "cupy_unavailable_reason as r; be = get_backend('cupy'); x = be.asarray([1.0, 2.0]); "
            "print(r(), type(x).__name__, backend_of(x).name, type(be.asnumpy(x)).__name__, cupy.__version__)")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "tests" / "stand_in"), str(ROOT)]))
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[:4] == ["None", "DeviceArray", "cupy", "ndarray"], out.stdout
    assert "stand-in" in out.stdout
