"""One implementation in one process: ``python -m benchmarks.worker IMPL``.

The harness talks to it with one JSON object per line on stdin/stdout:

    {"op": "setup", "cell", "T", "B", "I", "H", "min_round_s", "warmup_s"}
        builds the model and inputs, warms up, and picks how many iterations
        make one timed round (enough to last ``min_round_s``)
    {"op": "round"}      times that many training iterations -> per-phase medians (s)
    {"op": "memory"}     peak / forward-retained bytes of a training iteration
    {"op": "peak"}       best GFLOP/s of a 2048^3 float32 GEMM on this library
    {"op": "breakdown"}  scratchrnn only: where the fwd+bwd time goes (see ``breakdown.py``)
    {"op": "quit"}

Separate processes keep OpenBLAS's and PyTorch's thread pools from competing for
the same cores, and let the harness alternate implementations round by round.
The first line the worker writes is {"ready": true} or {"unavailable": reason}.
"""
from __future__ import annotations

import json
import os
import statistics
import sys
import time


def _reply(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def _iteration(r):
    t0 = time.perf_counter()
    r.forward(); r.sync()
    t1 = time.perf_counter()
    r.backward(); r.sync()
    t2 = time.perf_counter()
    r.update(); r.sync()
    t3 = time.perf_counter()
    return t1 - t0, t2 - t1, t3 - t0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    impl = argv[0]
    threads = int(os.environ.get("SCRATCHRNN_BENCH_THREADS", "0")) or None
    from . import impls
    reason = impls.unavailable_reason(impl)
    if reason:
        _reply({"unavailable": reason})
        return 0
    _reply({"ready": True, "pid": os.getpid()})
    runner, reps, case, per, last_memory = None, 1, None, 0.0, None
    for line in sys.stdin:
        msg = json.loads(line)
        op = msg["op"]
        try:
            if op == "setup":
                runner = None
                case = {k: msg[k] for k in ("cell", "T", "B", "I", "H")}
                runner = impls.make_runner(impl, threads=threads, **case)
                t_start = time.perf_counter()
                first = _iteration(runner)[2]                # includes one-off allocations
                n = 1
                while time.perf_counter() - t_start < msg.get("warmup_s", 0.2) and n < 50:
                    _iteration(runner)
                    n += 1
                # one more iteration to calibrate, unless the first already fills a round
                per = first if first >= msg.get("min_round_s", 0.15) else \
                    min(_iteration(runner)[2], first)
                reps = max(1, min(200, int(msg.get("min_round_s", 0.15) / max(per, 1e-9)) + 1))
                _reply({"ok": True, "reps": reps, "first_s": first, "warmup_iters": n})
            elif op == "round":
                rows = [_iteration(runner) for _ in range(reps)]
                fwd, bwd, train = (statistics.median(col) for col in zip(*rows))
                _reply({"ok": True, "fwd": fwd, "bwd": bwd, "fwdbwd": fwd + bwd, "train": train,
                        "reps": reps})
            elif op == "memory":
                last_memory = runner.memory()
                _reply({"ok": True, **last_memory})
            elif op == "peak":
                _reply({"ok": True, "gflops": impls.gemm_peak(impl)})
            elif op == "breakdown":
                from .breakdown import breakdown
                _reply({"ok": True, **breakdown(runner, reps=1 if per > 1.0 else 3,
                                                memory=last_memory)})
            elif op == "quit":
                _reply({"ok": True})
                return 0
            else:
                _reply({"error": f"unknown op {op!r}"})
        except Exception as exc:  # report, keep serving
            import traceback
            _reply({"error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
