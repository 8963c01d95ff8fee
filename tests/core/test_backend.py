"""backend: names, errors with reasons, the auto fallback, the env default, host round trips."""
import numpy as np
import pytest

from scratchrnn.core import backend as backend_mod
from scratchrnn.core.backend import (
    Backend,
    BackendUnavailable,
    backend_of,
    cupy_unavailable_reason,
    get_backend,
    host_rng,
)

NO_GPU = cupy_unavailable_reason()


@pytest.mark.parametrize("name", ["numpy", "NumPy", " numpy "])
def test_numpy_by_name(name):
    be = get_backend(name)
    assert be.name == "numpy" and be.xp is np and not be.is_gpu


def test_backend_fixture_names_itself(backend):
    assert get_backend(backend.name) is backend or get_backend(backend.name) == backend
    assert get_backend(backend) is backend          # a Backend passes through unchanged
    assert backend.is_gpu == (backend.name == "cupy")


@pytest.mark.parametrize("name", ["torch", "gpu", "", "cuda"])
def test_unknown_name_is_a_value_error(name):
    with pytest.raises(ValueError, match="Unknown backend.*numpy, cupy, auto"):
        get_backend(name)


@pytest.mark.skipif(NO_GPU is None, reason="a usable GPU is present")
def test_cupy_without_gpu_says_why():
    with pytest.raises(BackendUnavailable) as info:
        get_backend("cupy")
    message = str(info.value)
    assert message.startswith("The cupy backend was requested but cannot run:")
    assert NO_GPU in message and message.endswith(".")
    assert NO_GPU[0].isupper() and NO_GPU.endswith(".")     # one sentence


def test_auto_falls_back_to_numpy_or_uses_the_gpu():
    be = get_backend("auto")
    assert be.name == ("numpy" if NO_GPU else "cupy")


def test_auto_falls_back_when_cupy_probe_fails(monkeypatch):
    monkeypatch.setattr(backend_mod, "_cupy_probe", lambda: (None, "No GPU in this test."))
    assert get_backend("auto").name == "numpy"
    with pytest.raises(BackendUnavailable, match="No GPU in this test."):
        get_backend("cupy")
    assert backend_mod.cupy_unavailable_reason() == "No GPU in this test."


@pytest.mark.parametrize("value,expected", [("numpy", "numpy"), ("NUMPY", "numpy"),
                                            ("auto", None), ("", "numpy")])
def test_environment_variable_sets_the_default(monkeypatch, value, expected):
    monkeypatch.setenv("SCRATCHRNN_BACKEND", value)
    expected = expected or ("numpy" if NO_GPU else "cupy")
    assert get_backend().name == expected
    assert get_backend(None).name == expected


def test_unset_environment_means_numpy(monkeypatch):
    monkeypatch.delenv("SCRATCHRNN_BACKEND", raising=False)
    assert get_backend().name == "numpy"


def test_bad_environment_value_is_reported(monkeypatch):
    monkeypatch.setenv("SCRATCHRNN_BACKEND", "tensorflow")
    with pytest.raises(ValueError, match="tensorflow"):
        get_backend()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_asarray_asnumpy_round_trip(backend, dtype):
    host = np.random.default_rng(0).standard_normal((3, 4)).astype(dtype)
    dev = backend.asarray(host)
    assert isinstance(dev, backend.xp.ndarray) and dev.dtype == np.dtype(dtype)
    back = backend.asnumpy(dev)
    assert isinstance(back, np.ndarray)
    np.testing.assert_array_equal(back, host)
    assert backend_of(dev).name == backend.name
    # dtype conversion on the way in, and lists
    assert backend.asarray([[1, 2]], dtype="float32").dtype == np.float32
    np.testing.assert_array_equal(backend.asnumpy(backend.asarray([1.5, 2.5])), [1.5, 2.5])


def test_asnumpy_on_numpy_is_copy_free():
    a = np.arange(4.0)
    assert get_backend("numpy").asnumpy(a) is a


def test_dtype_helper(backend):
    assert backend.dtype("float32") == np.float32
    assert backend.dtype(np.float64) == np.float64
    with pytest.raises(ValueError, match="floating"):
        backend.dtype("int32")


def test_seeded_generators_repeat(backend):
    a = backend.asnumpy(backend.rng(7).random(5))
    b = backend.asnumpy(backend.rng(7).random(5))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(host_rng(3).standard_normal(4), host_rng(3).standard_normal(4))
    backend.synchronize()        # a no-op on numpy, a stream sync on cupy


def test_backend_of_host_objects():
    assert backend_of(np.zeros(2)).name == "numpy"
    assert backend_of(1.0).name == "numpy"
    assert isinstance(backend_of([1]), Backend)
