"""Benchmarks for scratchrnn: ``python -m benchmarks --help``.

Each implementation (scratchrnn NumPy fast/plain, scratchrnn CuPy, PyTorch CPU/CUDA,
a naive per-step NumPy baseline) runs in its own worker process; the harness
alternates them round by round and writes results/RESULTS.md, results/<tag>.json
and the scaling plots results/scaling_*.png. See docs/performance.md.
"""
