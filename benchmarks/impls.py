"""The implementations the benchmark compares, each behind the same small interface.

``make_runner(impl, cell, T, B, I, H)`` returns an object with

    forward()   one forward pass over the whole sequence (inputs made at setup)
    backward()  the backward pass of the last forward, with a fixed random dL/dy
    update()    one plain SGD step on the parameters (and the gradients zeroed)
    sync()      wait for queued device work (GPU implementations)
    memory()    {"peak_bytes", "cache_bytes"} of one training iteration, or None values

Implementations (``IMPLS``): scratchrnn on NumPy with the fast engine (the default)
and with the cells' reference engine ("scratch-plain"), scratchrnn on CuPy, PyTorch on the CPU and on
CUDA, and the naive per-step baseline of ``benchmarks/naive.py``. Each runs in a
process of its own (see ``worker.py``); ``unavailable_reason(impl)`` says why one
cannot run here.
"""
from __future__ import annotations

import os
import tracemalloc

import numpy as np

IMPLS = ("scratch-numpy", "scratch-plain", "scratch-cupy", "torch-cpu", "torch-cuda", "naive")
LR = 1e-3


def unavailable_reason(impl):
    """None when ``impl`` can run in this process, else one sentence why not."""
    if impl in ("scratch-numpy", "scratch-plain", "naive"):
        return None
    if impl == "scratch-cupy":
        from scratchrnn.core.backend import cupy_unavailable_reason
        return cupy_unavailable_reason()
    try:
        import torch
    except Exception as exc:  # pragma: no cover - torch is optional
        return f"PyTorch is not installed ({type(exc).__name__})."
    if impl == "torch-cuda" and not torch.cuda.is_available():
        return "PyTorch has no usable CUDA device here."
    return None


# ---------------------------------------------------------------- scratchrnn
class ScratchRunner:
    def __init__(self, cell, T, B, I, H, backend="numpy", engine="fast", seed=0):
        from scratchrnn.blocks.layers import LAYERS
        self.be_name = backend
        self.layer = LAYERS[cell](I, H, backend=backend, dtype="float32", seed=seed, engine=engine)
        self.xp = self.layer.xp
        rng = np.random.default_rng(seed + 1)
        self.x = self.layer.backend.asarray(rng.standard_normal((T, B, I)), dtype=np.float32)
        self.dy = self.layer.backend.asarray(rng.standard_normal((T, B, H)), dtype=np.float32)

    def forward(self):
        self.y, _ = self.layer.forward(self.x)

    def backward(self):
        self.dx, _ = self.layer.backward(self.dy)

    def update(self):
        for k, g in self.layer.grads.items():
            self.layer.params[k] -= LR * g
        self.layer.zero_grad()

    def sync(self):
        self.layer.backend.synchronize()

    def memory(self):
        if self.be_name == "cupy":
            import cupy
            pool = cupy.get_default_memory_pool()
            self.y = self.dx = None
            pool.free_all_blocks()
            base = pool.used_bytes()
            self.forward(); self.sync()
            cache = pool.used_bytes() - base
            self.backward(); self.update(); self.sync()
            # the pool keeps every block it ever handed out, so total ~ peak demand
            return {"peak_bytes": int(pool.total_bytes() - base), "cache_bytes": int(cache),
                    "method": "cupy memory pool"}
        return _traced(self)


def _traced(runner):
    """Peak and forward-retained bytes of one training iteration, by tracemalloc
    (NumPy reports its data buffers to it). The baseline holds parameters,
    gradients and the inputs; outputs of an earlier call are dropped first.
    (Nothing is kept between iterations, so one warm iteration is the steady state.)"""
    runner.y = runner.dx = None
    if hasattr(runner, "caches"):
        runner.caches = None
    if hasattr(runner, "layer"):
        runner.layer.clear_caches()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        runner.forward()
        cache = tracemalloc.get_traced_memory()[0] - base
        runner.backward()
        runner.update()
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    return {"peak_bytes": int(peak), "cache_bytes": int(cache), "method": "tracemalloc"}


# ---------------------------------------------------------------- naive
class NaiveRunner:
    def __init__(self, cell, T, B, I, H, seed=0):
        from . import naive
        self.naive, self.cell = naive, cell
        rng = np.random.default_rng(seed)
        self.p = naive.init(cell, I, H, rng)
        rng = np.random.default_rng(seed + 1)
        self.x = rng.standard_normal((T, B, I)).astype(np.float32)
        self.dy = rng.standard_normal((T, B, H)).astype(np.float32)
        self.h0 = np.zeros((B, H), np.float32)
        self.c0 = np.zeros((B, H), np.float32) if cell == "lstm" else None

    def forward(self):
        self.y, self.caches = self.naive.forward(self.cell, self.p, self.x, self.h0, self.c0)

    def backward(self):
        self.dx, self.g = self.naive.backward(self.cell, self.p, self.dy, self.caches)

    def update(self):
        for k in self.p:
            self.p[k] -= LR * self.g[k]

    def sync(self):
        pass

    def memory(self):
        return _traced(self)


# ---------------------------------------------------------------- torch
class TorchRunner:
    def __init__(self, cell, T, B, I, H, device="cpu", threads=None, seed=0):
        import torch
        self.torch = torch
        if threads:
            torch.set_num_threads(int(threads))
        torch.manual_seed(seed)
        if device == "cuda":      # the harness's --tf32, the same as CUPY_TF32 on the CuPy side
            tf32 = os.environ.get("SCRATCHRNN_BENCH_TF32", "0") == "1"
            torch.backends.cuda.matmul.allow_tf32 = tf32
            torch.backends.cudnn.allow_tf32 = tf32
        cls = {"rnn": torch.nn.RNN, "gru": torch.nn.GRU, "lstm": torch.nn.LSTM}[cell]
        self.device = torch.device(device)
        self.mod = cls(I, H).to(self.device, torch.float32)
        rng = np.random.default_rng(seed + 1)
        self.x = torch.tensor(rng.standard_normal((T, B, I)), dtype=torch.float32,
                              device=self.device, requires_grad=True)
        self.dy = torch.tensor(rng.standard_normal((T, B, H)), dtype=torch.float32,
                               device=self.device)

    def forward(self):
        self.y, _ = self.mod(self.x)

    def backward(self):
        self.y.backward(self.dy)     # = d(sum(y * dy)): dx and every parameter grad

    def update(self):
        with self.torch.no_grad():
            for p in self.mod.parameters():
                p.add_(p.grad, alpha=-LR)
                p.grad = None
        self.x.grad = None

    def sync(self):
        if self.device.type == "cuda":
            self.torch.cuda.synchronize()

    def memory(self):
        if self.device.type != "cuda":
            return {"peak_bytes": None, "cache_bytes": None,
                    "method": "not measured (PyTorch CPU allocations are invisible to tracemalloc)"}
        cuda = self.torch.cuda
        self.y = None
        cuda.synchronize()
        base = cuda.memory_allocated()
        cuda.reset_peak_memory_stats()
        self.forward(); self.sync()
        cache = cuda.memory_allocated() - base
        self.backward(); self.update(); self.sync()
        return {"peak_bytes": int(cuda.max_memory_allocated() - base), "cache_bytes": int(cache),
                "method": "torch.cuda.max_memory_allocated"}


def make_runner(impl, cell, T, B, I, H, threads=None):
    if impl == "scratch-numpy":
        return ScratchRunner(cell, T, B, I, H, "numpy", "fast")
    if impl == "scratch-plain":
        return ScratchRunner(cell, T, B, I, H, "numpy", "reference")
    if impl == "scratch-cupy":
        return ScratchRunner(cell, T, B, I, H, "cupy", "auto")
    if impl == "torch-cpu":
        return TorchRunner(cell, T, B, I, H, "cpu", threads)
    if impl == "torch-cuda":
        return TorchRunner(cell, T, B, I, H, "cuda", threads)
    if impl == "naive":
        return NaiveRunner(cell, T, B, I, H)
    raise ValueError(f"unknown implementation {impl!r}; choose from {', '.join(IMPLS)}")


# ---------------------------------------------------------------- GEMM peak
def gemm_peak(impl, n=2048, reps=5):
    """Best GFLOP/s of an n x n x n float32 GEMM with this implementation's library."""
    import time
    if impl.startswith("torch"):
        import torch
        dev = "cuda" if impl == "torch-cuda" else "cpu"
        a = torch.randn(n, n, device=dev)
        b = torch.randn(n, n, device=dev)
        c = torch.empty(n, n, device=dev)
        sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
        mm = lambda: torch.mm(a, b, out=c)
    elif impl == "scratch-cupy":
        import cupy
        a = cupy.random.standard_normal((n, n), dtype=cupy.float32)
        b = cupy.random.standard_normal((n, n), dtype=cupy.float32)
        c = cupy.empty((n, n), cupy.float32)
        sync = cupy.cuda.get_current_stream().synchronize
        mm = lambda: cupy.matmul(a, b, out=c)
    else:
        rng = np.random.default_rng(0)
        a = rng.standard_normal((n, n), dtype=np.float32)
        b = rng.standard_normal((n, n), dtype=np.float32)
        c = np.empty((n, n), np.float32)
        sync = lambda: None
        mm = lambda: np.matmul(a, b, out=c)
    mm(); sync()
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        mm(); sync()
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n ** 3 / best / 1e9
