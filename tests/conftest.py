"""Shared test setup: the ``backend`` and ``use_engine`` fixtures and the Hypothesis profiles.

Backends: a test that takes ``backend`` runs once on NumPy and once on CuPy. The
CuPy run is skipped, with ``cupy_unavailable_reason()`` as the reason, on a machine
without a usable GPU -- unless ``SCRATCHRNN_BACKEND=cupy`` is set: then the GPU
was asked for explicitly, so its absence fails the CuPy runs instead of hiding
them. Tests that take no backend use ``get_backend()``, i.e. the default that
``SCRATCHRNN_BACKEND`` picks. A test that runs on CuPy only carries the
``@pytest.mark.needs_cupy`` marker, which does the same: skipped with the reason
without a GPU, failed when ``SCRATCHRNN_BACKEND=cupy`` asked for one (``require_cupy``).

Engines: a layer runs the cells' textbook scans, their hoisted "reference" form, or
a fast engine (``scratchrnn.engines``). ``use_engine(name)`` is a context manager
that sets ``$SCRATCHRNN_ENGINE`` (the default of every layer made inside it) for a
block and restores it, so a test parametrised over ``ENGINES`` checks every engine
through the layer classes ("auto" is the fast engine where the backend has one).

Hypothesis profiles (``HYPOTHESIS_PROFILE`` picks one; otherwise "ci" when the
``CI`` variable is set to anything but ""/0/false, else "dev"):
    ci        few examples, derandomized (the same examples every run), no deadline
    dev       a moderate number of fresh random examples
    thorough  200 examples, for a long run before a release
"""
from __future__ import annotations

import os
from contextlib import contextmanager

import pytest
from hypothesis import HealthCheck, settings

from scratchrnn.core.backend import cupy_unavailable_reason, default_backend_name, get_backend

_common = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", max_examples=12, derandomize=True, print_blob=True, **_common)
settings.register_profile("dev", max_examples=40, **_common)
settings.register_profile("thorough", max_examples=200, **_common)


def _profile_name():
    explicit = os.environ.get("HYPOTHESIS_PROFILE", "").strip()
    if explicit:
        return explicit
    ci = os.environ.get("CI", "").strip().lower()
    return "ci" if ci not in ("", "0", "false", "no") else "dev"


settings.load_profile(_profile_name())


def require_cupy():
    """Go on only where CuPy runs: otherwise skip with the reason, or fail where
    ``SCRATCHRNN_BACKEND=cupy`` demanded the GPU (a run meant to test it must not pass
    by skipping every GPU test)."""
    reason = cupy_unavailable_reason()
    if reason is not None:
        if default_backend_name() == "cupy":
            pytest.fail(f"SCRATCHRNN_BACKEND=cupy but {reason}", pytrace=False)
        pytest.skip(reason)


def pytest_configure(config):
    config.addinivalue_line("markers", "needs_cupy: runs on CuPy only; skipped without a usable GPU, "
                            "failed without one when SCRATCHRNN_BACKEND=cupy")
    config.addinivalue_line("markers", "bad_input(area): a bad-input case, counted by area in the README")


def pytest_runtest_setup(item):
    if item.get_closest_marker("needs_cupy") is not None:
        require_cupy()


@pytest.fixture(scope="session", params=["numpy", "cupy"])
def backend(request):
    """A ``scratchrnn.core.backend.Backend``: numpy, then cupy (see ``require_cupy``)."""
    if request.param == "cupy":
        require_cupy()
    return get_backend(request.param)


ENGINES = ("textbook", "reference", "auto")


@contextmanager
def _use_engine(name):
    old = os.environ.get("SCRATCHRNN_ENGINE")
    os.environ["SCRATCHRNN_ENGINE"] = name
    try:
        yield name
    finally:
        if old is None:
            os.environ.pop("SCRATCHRNN_ENGINE", None)
        else:
            os.environ["SCRATCHRNN_ENGINE"] = old


@pytest.fixture(scope="session")
def use_engine():
    """``with use_engine("textbook"): ...`` makes the layers built in the block run that engine."""
    return _use_engine


@pytest.fixture(scope="session")
def default_backend():
    """The backend ``SCRATCHRNN_BACKEND`` picks (numpy when unset)."""
    return get_backend()


def pytest_report_header(config):
    reason = cupy_unavailable_reason()
    return [f"scratchrnn: hypothesis profile {settings.get_current_profile_name()!r}, "
            f"default backend {default_backend_name()!r}, "
            f"cupy {'available' if reason is None else 'unavailable: ' + reason}"]


# ---- bad-input cases, counted by area for the README (tests/bad_input_count.py)
# A test marked ``@pytest.mark.bad_input("area")`` feeds the project something a careless or
# hostile user would; the files below hold nothing else, so their tests count under one area.
BAD_INPUT_FILES = {"test_hostile_input.py": "command line", "test_cli_errors.py": "command line",
                   "test_checkpoint_validation.py": "checkpoints"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        area = BAD_INPUT_FILES.get(os.path.basename(str(item.fspath)))
        if area and item.get_closest_marker("bad_input") is None:
            item.add_marker(pytest.mark.bad_input(area))
