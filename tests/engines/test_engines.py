"""Every engine (scratchrnn/engines) equals the book (scratchrnn/book/cells) for every cell.

The cells' two levels (textbook scans, GEMMs hoisted) are the reference. NumPy fast
engine: always run, with the compiled C step (where it builds) and without. CuPy
fused kernels: run when CuPy and a GPU are usable, otherwise skipped with the
backend's reason, and emulated on the CPU with g++ below. Equality is to float
tolerance (float64 ~1e-12, float32 ~1e-5 relative to the largest value), on
random inputs, random initial states and random incoming state gradients.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import emulated_cupy
from host import to_host
from scratchrnn import engines
from scratchrnn.blocks.layers import LAYERS
from scratchrnn.book.cells import CELLS
from scratchrnn.core.backend import cupy_unavailable_reason, get_backend
from scratchrnn.core.errors import ConfigError
from scratchrnn.engines import Engine, numpy_fast

TOL = {"float64": 1e-11, "float32": 2e-5}
VARIANTS = [("rnn", {"nonlinearity": "tanh"}), ("rnn", {"nonlinearity": "relu"}),
            ("gru", {}), ("lstm", {})]


def _random_problem(cell, T, B, I, H, dtype, seed, backend):
    rng = np.random.default_rng(seed)
    params = cell.init_params(I, H, rng, backend, dtype)
    arr = lambda *shape: backend.asarray(rng.standard_normal(shape), dtype=dtype)
    xs, dys = arr(T, B, I), arr(T, B, H)
    if cell.HAS_CELL_STATE:
        state0, dstateT = (arr(B, H), arr(B, H)), (arr(B, H), arr(B, H))
    else:
        state0, dstateT = arr(B, H), arr(B, H)
    return params, xs, state0, dys, dstateT


def _moved(problem, backend):
    """``problem`` (arrays, tuples and dicts of them) copied onto ``backend``."""
    if isinstance(problem, tuple):
        return tuple(_moved(p, backend) for p in problem)
    if isinstance(problem, dict):
        return {k: _moved(v, backend) for k, v in problem.items()}
    return backend.asarray(problem)


def _engine(cell, name, backend="numpy"):
    """The Engine called ``name`` for ``cell``; "textbook" and "reference" are the book."""
    return engines.resolve(name, cell, get_backend(backend))


def _run(cell, problem, engine, opts):
    """Forward and backward of ``engine`` (an Engine, or a name for ``_engine``)."""
    if isinstance(engine, str):
        engine = _engine(cell, engine)
    params, xs, state0, dys, dstateT = problem
    ys, stateT, cache = engine.forward(params, xs, state0, **opts)
    dxs, dstate0, grads = engine.backward(params, dys, dstateT, cache, **opts)
    return {"ys": ys, "stateT": stateT, "cache": cache, "dxs": dxs, "dstate0": dstate0,
            "grads": grads}


def _assert_close(a, b, tol, where):
    """Recursive comparison of arrays / tuples / named tuples / dicts, same types and shapes."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _assert_close(a[k], b[k], tol, f"{where}.{k}")
    elif isinstance(a, tuple):
        assert type(a) is type(b), f"{where}: {type(a).__name__} vs {type(b).__name__}"
        for k, (u, v) in enumerate(zip(a, b)):
            _assert_close(u, v, tol, f"{where}[{getattr(a, '_fields', range(len(a)))[k]}]")
    else:
        u = np.asarray(to_host(a), dtype=np.float64)         # each from the backend it lives on
        v = np.asarray(to_host(b), dtype=np.float64)
        assert u.shape == v.shape, f"{where}: shape {u.shape} vs {v.shape}"
        assert a.dtype == b.dtype, f"{where}: dtype {a.dtype} vs {b.dtype}"
        scale = max(1.0, float(np.max(np.abs(u))) if u.size else 1.0)
        err = float(np.max(np.abs(u - v))) / scale if u.size else 0.0
        assert err <= tol, f"{where}: max abs difference {err:.3g} (relative to {scale:.3g}) > {tol}"


# ------------------------------------------------------------------ NumPy
@pytest.fixture(params=["compiled", "numpy-only"])
def fast(request):
    """``fast(cell)``: the NumPy fast Engine of a cell, with the compiled C step (where it
    builds) and without it."""
    from scratchrnn.engines import cpu_compiled
    compiled = request.param == "compiled"
    if compiled and not cpu_compiled.available():
        pytest.skip(f"compiled helper unavailable: {cpu_compiled.unavailable_reason()}")
    return lambda cell: Engine(*numpy_fast.engine(cell.NAME, compiled=compiled))


def test_textbook_equals_reference_equals_fast_by_name():
    """The registry's names: each engine of each cell on NumPy equals the textbook."""
    be = get_backend("numpy")
    for name, opts in VARIANTS:
        cell = CELLS[name]
        problem = _random_problem(cell, 5, 2, 3, 4, "float64", seed=9, backend=be)
        book = _run(cell, problem, "textbook", opts)
        for engine in ("reference", "fast", "auto"):
            _assert_close(book, _run(cell, problem, engine, opts), TOL["float64"], f"{name} {engine}")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name,opts", VARIANTS, ids=[f"{n}-{o.get('nonlinearity', '')}".strip("-")
                                                       for n, o in VARIANTS])
@pytest.mark.parametrize("T,B,I,H", [(6, 3, 4, 5), (1, 1, 2, 3), (9, 2, 1, 7)])
def test_numpy_fast_equals_reference(fast, name, opts, dtype, T, B, I, H):
    cell = CELLS[name]
    problem = _random_problem(cell, T, B, I, H, dtype, seed=T * 100 + H, backend=get_backend("numpy"))
    _assert_close(_run(cell, problem, "reference", opts), _run(cell, problem, fast(cell), opts),
                  TOL[dtype], name)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[__import__("hypothesis").HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(["rnn", "gru", "lstm"]), T=st.integers(1, 7), B=st.integers(1, 4),
       I=st.integers(1, 6), H=st.integers(1, 9), seed=st.integers(0, 2**16),
       scale=st.sampled_from([0.1, 1.0, 8.0]))
def test_numpy_fast_equals_reference_random_shapes(fast, name, T, B, I, H, seed, scale):
    """Any shape, including saturated gates (inputs scaled by 8)."""
    cell = CELLS[name]
    params, xs, state0, dys, dstateT = _random_problem(cell, T, B, I, H, "float64", seed,
                                                       get_backend("numpy"))
    problem = (params, xs * scale, state0, dys, dstateT)
    _assert_close(_run(cell, problem, "reference", {}), _run(cell, problem, fast(cell), {}),
                  TOL["float64"], name)


@pytest.mark.parametrize("chunk_bytes", [1, 100, 1 << 30])
@pytest.mark.parametrize("name", ["rnn", "gru", "lstm"])
def test_numpy_fast_backward_blocks(fast, monkeypatch, name, chunk_bytes):
    """The backward's cache-sized blocks of steps (one step, a few, all T) change nothing."""
    monkeypatch.setattr(numpy_fast, "CHUNK_BYTES", chunk_bytes)
    cell = CELLS[name]
    problem = _random_problem(cell, 7, 2, 3, 4, "float64", seed=3, backend=get_backend("numpy"))
    _assert_close(_run(cell, problem, "reference", {}), _run(cell, problem, fast(cell), {}),
                  TOL["float64"], name)


def test_fast_engine_does_not_modify_inputs():
    cell = CELLS["lstm"]
    problem = _random_problem(cell, 5, 2, 3, 4, "float64", 0, get_backend("numpy"))
    before = [np.copy(a) for a in (problem[1], *problem[2], problem[3], *problem[4])]
    before_p = {k: v.copy() for k, v in problem[0].items()}
    _run(cell, problem, "fast", {})
    after = [problem[1], *problem[2], problem[3], *problem[4]]
    for u, v in zip(before, after):
        np.testing.assert_array_equal(u, v)
    for k in before_p:
        np.testing.assert_array_equal(before_p[k], problem[0][k])


def test_compiled_backward_on_a_reference_cache(fast):
    """A cache made by the book's forward goes through the fast backward unchanged."""
    cell = CELLS["lstm"]
    params, xs, state0, dys, dstateT = _random_problem(cell, 5, 2, 3, 4, "float32", 4,
                                                       get_backend("numpy"))
    _, _, cache = cell.forward(params, xs, state0)
    _assert_close(cell.backward(params, dys, dstateT, cache),
                  fast(cell).backward(params, dys, dstateT, cache), TOL["float32"], "lstm")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("above", [False, True], ids=["at-the-limit", "above-it"])
def test_compiled_lstm_batch_one_loop_equals_reference(monkeypatch, dtype, above):
    """At batch 1 and H up to BATCH_ONE_MAX_H the compiled LSTM runs its whole time loop in
    one C call (the vector-matrix products in C); above that H, the per-step path. Both equal
    the book, and the one-call loop is the one that ran."""
    from scratchrnn.engines import cpu_compiled
    if not cpu_compiled.available():
        pytest.skip(f"compiled helper unavailable: {cpu_compiled.unavailable_reason()}")
    called, real = [], cpu_compiled._function
    monkeypatch.setattr(cpu_compiled, "_function", lambda name, dt: called.append(name) or real(name, dt))
    cell, H = CELLS["lstm"], cpu_compiled.BATCH_ONE_MAX_H + int(above)
    problem = _random_problem(cell, 7, 1, 5, H, dtype, seed=H, backend=get_backend("numpy"))
    engine = Engine(*numpy_fast.engine("lstm", compiled=True))
    _assert_close(_run(cell, problem, "reference", {}), _run(cell, problem, engine, {}), TOL[dtype],
                  "lstm")
    one_call = {"lstm_seq_fwd_b1", "lstm_seq_bwd_b1"}
    assert (one_call <= set(called)) is not above and (one_call & set(called) == set()) is above
    params, xs, state0, dys, dstateT = problem                  # a NaN still propagates
    xs[2, 0, 0] = np.nan
    got = _run(cell, (params, xs, state0, dys, dstateT), engine, {})
    assert np.isfinite(got["ys"][:2]).all() and np.isnan(got["ys"][2:]).all()
    assert np.isnan(got["grads"]["W_h"]).any() and np.isnan(got["dxs"][:3]).all()


def test_backward_can_run_twice_on_one_cache(fast):
    """The fast backward leaves the cache intact (the book's does too)."""
    cell = CELLS["gru"]
    params, xs, h0, dys, dhT = _random_problem(cell, 4, 2, 3, 5, "float64", 1, get_backend("numpy"))
    engine = fast(cell)
    _, _, cache = engine.forward(params, xs, h0)
    first = engine.backward(params, dys, dhT, cache)
    second = engine.backward(params, dys, dhT, cache)
    _assert_close(first, second, 0.0, "gru")


@pytest.mark.parametrize("name", ["rnn", "gru", "lstm"])
def test_layer_engines_are_equal_and_named(monkeypatch, name):
    """The layer (2 layers, dropout off) gives the same outputs and grads on every engine;
    the default is "auto", the fast engine on NumPy, and the layer says which one runs.
    (NumPy named: SCRATCHRNN_BACKEND=cupy must not move it; the CuPy engines have their own tests.)"""
    monkeypatch.delenv("SCRATCHRNN_ENGINE", raising=False)
    results = {}
    for engine in ("textbook", "reference", "fast", None):
        layer = LAYERS[name](3, 6, num_layers=2, dtype="float64", seed=3, engine=engine, backend="numpy")
        rng = np.random.default_rng(0)
        x = rng.standard_normal((5, 2, 3))
        y, state = layer.forward(x)
        dx, dstate = layer.backward(rng.standard_normal(y.shape))
        results[engine] = {"y": y, "dx": dx, "grads": dict(layer.grads)}
        assert f"engine={layer.engine!r}" in repr(layer)
        if engine is None:
            assert layer.engine.startswith("fast (numpy")
        elif engine != "fast":
            assert layer.engine == engine
    for engine in ("reference", "fast", None):
        _assert_close(results["textbook"], results[engine], TOL["float64"], f"{name} {engine}")


def test_engine_names_are_checked(monkeypatch):
    with pytest.raises(ConfigError, match="engine must be one of"):
        LAYERS["rnn"](2, 2, engine="turbo")
    monkeypatch.setenv("SCRATCHRNN_ENGINE", "turbo")
    with pytest.raises(ConfigError, match="SCRATCHRNN_ENGINE"):
        LAYERS["rnn"](2, 2)
    monkeypatch.setenv("SCRATCHRNN_ENGINE", "Textbook")
    assert LAYERS["gru"](2, 2).engine == "textbook"
    monkeypatch.setenv("SCRATCHRNN_ENGINE", "")
    assert LAYERS["gru"](2, 2).engine.startswith("fast")


def test_no_fast_rnn_on_cupy_is_one_sentence():
    """RNN has no fused CuPy kernel: "fast" says so, "auto" falls back to the reference."""
    fake_cupy = type("Backend", (), {"name": "cupy"})()
    with pytest.raises(ConfigError, match="no fast engine for RNN on cupy"):
        engines.resolve("fast", CELLS["rnn"], fake_cupy)
    assert engines.resolve("auto", CELLS["rnn"], fake_cupy).name == "reference"


@pytest.mark.parametrize("name", ["rnn", "gru", "lstm"])
def test_cell_modules_import_no_engine(name):
    """The book is a leaf: importing a cell module (in a fresh interpreter) loads no engine."""
    code = (f"import sys, scratchrnn.book.cells.{name}\n"
            "print(','.join(m for m in sys.modules if m.startswith('scratchrnn.engines')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"scratchrnn.book.cells.{name} imported {out.stdout.strip()}"


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", ["gru", "lstm"])
def test_nan_propagates_through_the_fast_engine(fast, name, dtype):
    """A NaN input reaches the outputs and gradients of its own sequence only (the C helper
    is built without -ffast-math, so nothing assumes finite numbers), as in the book."""
    cell = CELLS[name]
    params, xs, state0, dys, dstateT = _random_problem(cell, 4, 2, 3, 5, dtype, 6,
                                                       get_backend("numpy"))
    xs[1, 0, 0] = np.nan
    for engine in (fast(cell), _engine(cell, "reference")):
        got = _run(cell, (params, xs, state0, dys, dstateT), engine, {})
        assert np.isnan(got["ys"][1:, 0]).all() and np.isfinite(got["ys"][:, 1]).all()
        assert np.isfinite(got["ys"][0]).all()
        assert np.isnan(got["grads"]["W_h"]).any() and np.isnan(got["dxs"][:2, 0]).all()
        assert np.isfinite(got["dxs"][:, 1]).all()


def test_c_helper_and_cupy_kernels_share_one_source():
    """Both are assembled from gate_math's statements; the C build has no -ffast-math."""
    from scratchrnn.engines import cpu_compiled, gate_math
    for op in gate_math.OPS.values():
        body = gate_math.expand(op)
        assert body in cpu_compiled.SOURCE
        assert body in gate_math.cuda_kernel(op, "float")[2]
    assert not any("fast-math" in f for f in cpu_compiled.FLAGS)


def test_no_compiler_says_so_once_and_falls_back(monkeypatch, tmp_path):
    from scratchrnn.engines import cpu_compiled
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    monkeypatch.setenv("SCRATCHRNN_CACHE", str(tmp_path))
    monkeypatch.delenv("SCRATCHRNN_COMPILED", raising=False)
    for attr, value in (("_lib", None), ("_tried", False), ("_error", None)):
        monkeypatch.setattr(cpu_compiled, attr, value)
    with pytest.warns(RuntimeWarning, match="compiled CPU step is off") as record:
        assert not cpu_compiled.available()
        assert not cpu_compiled.available()
        assert numpy_fast.engine("lstm")[0] == "fast (numpy)"
    assert len(record) == 1 and "\n" not in str(record[0].message)
    layer = LAYERS["lstm"](2, 3, dtype="float64", seed=0, backend="numpy")     # the CPU engine's test
    assert layer.engine == "fast (numpy)"
    layer.forward(np.ones((2, 1, 2)))


# ------------------------------------------------------------------ CuPy
# needs_cupy (tests/conftest.py): skipped with the reason without a GPU, failed without
# one when SCRATCHRNN_BACKEND=cupy asked for it.
CUPY_REASON = cupy_unavailable_reason()


@pytest.mark.needs_cupy
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name,opts", VARIANTS, ids=[f"{n}-{o.get('nonlinearity', '')}".strip("-")
                                                       for n, o in VARIANTS])
def test_cupy_auto_equals_reference_on_gpu(name, opts, dtype):
    """The fused CuPy kernels (the reference for RNN) against the book's xp code, both on the GPU."""
    cell = CELLS[name]
    problem = _random_problem(cell, 7, 3, 5, 6, dtype, seed=11, backend=get_backend("cupy"))
    auto = _engine(cell, "auto", "cupy")
    assert auto.name == ("reference" if name == "rnn" else "fast (cupy fused kernels)")
    _assert_close(_run(cell, problem, "reference", opts), _run(cell, problem, auto, opts),
                  TOL[dtype], name)


@pytest.mark.needs_cupy
@pytest.mark.parametrize("name", ["gru", "lstm"])
def test_cupy_fused_equals_numpy_reference(name):
    """GPU fast path against the CPU reference, so a bug shared by both GPU paths shows."""
    cell = CELLS[name]
    cpu = _random_problem(cell, 6, 2, 3, 4, "float64", seed=5, backend=get_backend("numpy"))
    gpu = _moved(cpu, get_backend("cupy"))
    _assert_close(_run(cell, cpu, "reference", {}), _run(cell, gpu, _engine(cell, "fast", "cupy"), {}),
                  TOL["float64"], name)


def test_cupy_tests_skip_with_reason():
    """Where CuPy cannot run, the reason is a sentence (and the GPU tests above say it)."""
    if CUPY_REASON is None:
        pytest.skip("CuPy runs here; the GPU tests ran instead.")
    assert isinstance(CUPY_REASON, str) and len(CUPY_REASON) > 10


# ------------------------------------------------------------------ CuPy kernels, emulated on the CPU
# Without a GPU the fused kernels would go untested. Their C++ bodies are plain
# per-element code, so here each ElementwiseKernel is compiled with g++ into a loop
# over the element index ``i`` and run on NumPy arrays, and ``cupy_fused`` is imported
# against a stand-in ``cupy`` module built from NumPy: the whole GPU path (kernel
# math, indexing, the Python time loops) is checked against the book.

@pytest.fixture(scope="module")
def emulated_cupy_fused(tmp_path_factory):
    if shutil.which("g++") is None:
        pytest.skip("g++ is not installed, so the CuPy kernels cannot be emulated on the CPU.")
    return emulated_cupy.fused_module(emulated_cupy.stand_in(tmp_path_factory.mktemp("kernels")))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", ["gru", "lstm"])
@pytest.mark.parametrize("T,B,I,H", [(6, 3, 4, 5), (1, 1, 2, 3)])
def test_cupy_kernels_emulated_on_cpu_equal_reference(emulated_cupy_fused, name, dtype, T, B, I, H):
    cell = CELLS[name]
    problem = _random_problem(cell, T, B, I, H, dtype, seed=7 + T, backend=get_backend("numpy"))
    on_device = _moved(problem, emulated_cupy.device_backend(emulated_cupy_fused.cupy))
    fused = Engine(*emulated_cupy_fused.ENGINES[name])
    _assert_close(_run(cell, problem, "reference", {}), _run(cell, on_device, fused, {}), TOL[dtype], name)


def test_cupy_kernel_sources_name_every_raw_argument(emulated_cupy_fused):
    """Every parameter a kernel declares is used in its body (catches renamed arguments)."""
    for key in ("lstm_fwd", "lstm_bwd", "gru_fwd", "gru_bwd"):
        k = emulated_cupy_fused._kernel(key, "float64")
        for p in k.params:
            assert re.search(rf"\b{p[-1]}\b", k.operation), (key, p[-1])
