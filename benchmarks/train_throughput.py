"""Training throughput of the language model, scratchrnn against PyTorch: characters per
second of *full* training steps.

    python -m benchmarks.train_throughput                  # every cell, scratchrnn and PyTorch
    python -m benchmarks.train_throughput --cells lstm --rounds 9 --threads 1
    python benchmarks/train_throughput.py --quick          # tiny sizes, a smoke run of the script

One scratchrnn step is exactly what ``Trainer.train_step`` does: the next (T, B) window of
the corpus, carry (or reset) the hidden state, forward + softmax cross-entropy, backward
through time, clip by global norm, Adam update. The PyTorch step (``torch_lm.TorchLMRun``)
is the same model on the same windows: ``nn.RNN``/``nn.GRU``/``nn.LSTM`` on one-hot
inputs, an ``nn.Linear`` head, cross-entropy, autograd, ``clip_grad_norm_``,
``torch.optim.Adam``. Sizes: a 2-layer model with H=256, T=64, B=32, float32 on
``TrainConfig``'s corpus (python-stdlib, first 2M characters, V=101) unless overridden.

Method: each implementation runs in a process of its own (spawned; OpenBLAS's and
PyTorch's thread pools never share one), holding one run per cell. Each run is warmed
up, which fixes its steps per round (about ``--round-seconds``). Then the rounds go
cell by cell, the two implementations taking turns, the order swapped every round (so
a burst of load hits both alike); after each turn the harness waits until the worker's
BLAS threads stop spinning. A round's throughput is steps * B * T / wall time; the
table shows the median over rounds with the min-max range and the ratio
scratchrnn / PyTorch (ratio of the medians, and the range of the per-round ratios of
paired rounds). The JSON written to ``benchmarks/results/train_throughput-<date>.json``
keeps every round, the load average, and each round's CPU share (process CPU time /
wall time).

On a shared machine, other processes distort the numbers (multithreaded BLAS suffers
most), so each round also records the share of the CPUs that *other* processes used
while it ran (from /proc/stat); ``--wait-idle S`` waits for a quiet moment before
starting and before each round, and the table adds the median over the "clean" rounds
(other load under 15%). ``--threads 1`` makes the measurement far less sensitive to load.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
if __package__ in (None, ""):       # run as a script: make the benchmarks package importable
    sys.path.insert(0, os.path.dirname(HERE))

from benchmarks import running  # noqa: E402  (after the path fix above)

CELLS = ("rnn", "gru", "lstm")
IMPLS = ("scratch", "torch")
CLEAN = 0.15        # a round is "clean" when other processes used less than this share of the CPUs


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.train_throughput",
                                description="Training throughput (chars/s of full training steps) "
                                            "per cell, scratchrnn against PyTorch.")
    p.add_argument("--cells", default=",".join(CELLS), help="comma-separated (default rnn,gru,lstm)")
    p.add_argument("--impls", default=",".join(IMPLS),
                   help="comma-separated: scratch (scratchrnn's Trainer), torch (PyTorch); default both")
    p.add_argument("--rounds", type=int, default=9, help="timed rounds per cell (at least 5)")
    p.add_argument("--round-seconds", type=float, default=2.0, help="target length of one round")
    p.add_argument("--warmup-seconds", type=float, default=2.0, help="untimed steps first, per cell")
    p.add_argument("--backend", default="numpy", choices=("numpy", "cupy"),
                   help="scratchrnn's backend; with cupy PyTorch runs on CUDA")
    p.add_argument("--threads", type=int, default=None,
                   help="BLAS/OpenMP threads per process (OMP/OPENBLAS/MKL_NUM_THREADS and "
                        "torch.set_num_threads; default: as is)")
    p.add_argument("--source", default=None, help="corpus name or file (default: TrainConfig's)")
    p.add_argument("--max-chars", type=int, default=None, help="default: TrainConfig's slice")
    p.add_argument("--hidden-size", type=int, default=256)
    p.add_argument("--num-layers", type=int, default=2)
    p.add_argument("--seq-len", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    p.add_argument("--quick", action="store_true",
                   help="tiny sizes and short rounds: checks the script works, numbers mean little")
    p.add_argument("--wait-idle", type=float, default=0.0, metavar="SECONDS",
                   help="first wait up to this long for other processes to leave the CPUs idle, "
                        "and up to min(SECONDS, 60) before each round")
    p.add_argument("--out", default=os.path.join(HERE, "results"), help="directory for the JSON")
    p.add_argument("--no-save", action="store_true", help="print the table only")
    p.add_argument("--tag", default="", help="appended to the JSON file name, e.g. threads2")
    a = p.parse_args(argv)
    if a.rounds < 5 and not a.quick:
        p.error("--rounds must be at least 5 (medians over fewer rounds are not worth reporting)")
    a.cells = [c.strip() for c in a.cells.split(",") if c.strip()]
    a.impls = [c.strip() for c in a.impls.split(",") if c.strip()]
    for given, known, what in ((a.cells, CELLS, "cell"), (a.impls, IMPLS, "implementation")):
        bad = [c for c in given if c not in known]
        if bad or not given:
            p.error(f"unknown {what} {bad[0] if bad else ''!r}; choose from {', '.join(known)}")
    if a.quick:
        a.max_chars, a.hidden_size, a.seq_len, a.batch_size = 50_000, 32, 16, 8
        a.rounds, a.round_seconds, a.warmup_seconds = min(a.rounds, 3), 0.2, 0.2
    return a


def machine_info():
    """The harness's machine record, plus the BLAS/OpenMP thread variables in force."""
    threads = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                               "MKL_NUM_THREADS") if os.environ.get(k)}
    return dict(running.machine_info(), thread_env=threads)


def versions():
    import numpy

    import scratchrnn
    from scratchrnn.engines import blas_kernel
    v = {"scratchrnn": getattr(scratchrnn, "__version__", "?"), "numpy": numpy.__version__}
    v["blas"] = blas_kernel.describe()
    try:
        import subprocess
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True,
                             text=True, timeout=10)
        if rev.returncode == 0:
            v["git"] = rev.stdout.strip()
    except (OSError, ValueError):
        pass
    return v


def build_config(a, cell, out_dir):
    """scratchrnn's TrainConfig for one cell at the benchmark's sizes (the PyTorch run reads it too)."""
    from scratchrnn.lm.run import TrainConfig
    cfg = TrainConfig(cell=cell, max_steps=10**9, max_minutes=None, progress=False, out_dir=out_dir,
                      backend=a.backend)
    for name in ("source", "max_chars", "hidden_size", "num_layers", "seq_len", "batch_size", "dtype"):
        value = getattr(a, name)
        if value is not None:
            setattr(cfg, name, value)
    return cfg


# ------------------------------------------------------- other work on the machine (Linux)
def wait_for_idle(max_wait_s, threshold, log):
    """Wait (up to max_wait_s) for other processes to use less than ``threshold`` of the CPUs
    (``running.wait_for_idle``, this process being the only one of ours that runs)."""
    return running.wait_for_idle([os.getpid()], max_wait_s, threshold, log=log)[0]


# ------------------------------------------------------- one implementation in one process
class _ScratchRun:
    """scratchrnn's Trainer, stepped as the command line steps it."""

    def __init__(self, cfg, threads):
        from scratchrnn.lm.run import Trainer
        self.trainer = Trainer(cfg)
        self.trainer.model.train()
        self.train_step, self.synchronize = self.trainer.train_step, self.trainer.backend.synchronize
        self.num_params, self.vocab = self.trainer.model.num_params(), len(self.trainer.data.vocab)


class _TorchRun:
    def __init__(self, cfg, threads):
        from benchmarks.torch_lm import TorchLMRun
        run = TorchLMRun(cfg, device="cuda" if cfg.backend == "cupy" else "cpu", threads=threads)
        self.train_step, self.synchronize = run.train_step, run.synchronize
        self.num_params, self.vocab = run.num_params(), run.V


def timed_steps(run, steps):
    """Wall seconds, process CPU seconds and foreign load for ``steps`` full training steps."""
    run.synchronize()
    probe = running.LoadMeter([os.getpid()])
    c0, t0 = time.process_time(), time.perf_counter()
    for _ in range(steps):
        run.train_step()
    run.synchronize()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return wall, cpu, probe.foreign()


def worker(conn, impl, a):
    """Serve one implementation: ("setup", cell) -> warm-up info; ("round", cell) -> one timed
    round; ("quit",). Replies {"error": ...} instead of raising."""
    import traceback
    make = {"scratch": _ScratchRun, "torch": _TorchRun}[impl]
    tmp, runs, steps = tempfile.mkdtemp(prefix=f"scratchrnn-bench-{impl}-"), {}, {}
    while True:
        op, *args = conn.recv()
        try:
            if op == "quit":
                conn.send({"ok": True})
                return
            cell = args[0]
            if op == "setup":
                run = runs[cell] = make(build_config(a, cell, os.path.join(tmp, cell)), a.threads)
                # warm-up: at least 3 steps and warmup_seconds; its pace fixes the round length
                n, t0 = 0, time.perf_counter()
                while n < 3 or time.perf_counter() - t0 < a.warmup_seconds:
                    run.train_step()
                    n += 1
                run.synchronize()
                per_step = (time.perf_counter() - t0) / n
                steps[cell] = max(1, round(a.round_seconds / per_step))
                conn.send({"params": run.num_params, "vocab": run.vocab, "warmup_steps": n,
                           "warmup_ms_per_step": 1e3 * per_step, "steps_per_round": steps[cell]})
            elif op == "round":
                wall, cpu, foreign = timed_steps(runs[cell], steps[cell])
                chars = steps[cell] * a.batch_size * a.seq_len
                conn.send({"steps": steps[cell], "wall_s": wall, "cpu_s": cpu, "foreign_load": foreign,
                           "chars_per_s": chars / wall, "ms_per_step": 1e3 * wall / steps[cell]})
        except Exception as exc:       # report, keep serving
            conn.send({"error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()})


class Worker:
    """A spawned process running ``worker`` for one implementation."""

    def __init__(self, impl, a):
        ctx = multiprocessing.get_context("spawn")
        self.impl, (self.conn, child) = impl, ctx.Pipe()
        self.proc = ctx.Process(target=worker, args=(child, impl, a), daemon=True)
        self.proc.start()

    def ask(self, *msg):
        self.conn.send(msg)
        reply = self.conn.recv()
        if "error" in reply:
            raise RuntimeError(f"{self.impl} worker: {reply['error']}\n{reply.get('trace', '')}")
        return reply

    def close(self):
        try:
            self.ask("quit")
        except (OSError, EOFError, RuntimeError):
            pass
        self.proc.join(5)


def unavailable_reason(impl, a):
    if impl != "torch":
        if a.backend == "cupy":
            from scratchrnn.core.backend import cupy_unavailable_reason
            return cupy_unavailable_reason()
        return None
    try:
        import torch
    except Exception as exc:  # pragma: no cover - torch is optional
        return f"PyTorch is not installed ({type(exc).__name__})."
    if a.backend == "cupy" and not torch.cuda.is_available():
        return "PyTorch has no usable CUDA device here."
    return None


def run(a, log=print):
    unavailable = {i: r for i in a.impls if (r := unavailable_reason(i, a))}
    for impl, reason in unavailable.items():
        log(f"{impl}: skipped ({reason})")
    impls = [i for i in a.impls if i not in unavailable]
    if not impls:
        raise SystemExit("train_throughput: nothing to measure here: " +
                         "; ".join(f"{i}: {r.rstrip('.')}" for i, r in unavailable.items()) + ".")
    workers = {impl: Worker(impl, a) for impl in impls}
    try:
        info = {cell: {} for cell in a.cells}
        for cell in a.cells:
            for impl, w in workers.items():
                info[cell][impl] = r = w.ask("setup", cell)
                log(f"{cell} {impl}: {r['params']:,} parameters, vocab {r['vocab']}, warm-up "
                    f"{r['warmup_steps']} steps ({r['warmup_ms_per_step']:.1f} ms/step) -> "
                    f"{r['steps_per_round']} steps/round")
                running.settle(w.proc.pid)
        rounds = {cell: {impl: [] for impl in impls} for cell in a.cells}
        for r in range(a.rounds):
            order = impls[r % len(impls):] + impls[:r % len(impls)]     # swap who goes first
            for cell in a.cells:
                for impl in order:
                    if a.wait_idle > 0:          # a quiet machine before each round, if it comes soon
                        wait_for_idle(min(a.wait_idle, 60.0), CLEAN, log)
                    rounds[cell][impl].append(workers[impl].ask("round", cell))
                    running.settle(workers[impl].proc.pid)
            log(f"round {r + 1}/{a.rounds}: " + "  ".join(
                f"{c} {i} {rounds[c][i][-1]['chars_per_s']:,.0f}" for c in a.cells for i in impls)
                + " chars/s")
    finally:
        for w in workers.values():
            w.close()
    results = {cell: {impl: summarize(info[cell][impl], rounds[cell][impl]) for impl in impls}
               for cell in a.cells}
    if {"scratch", "torch"} <= set(impls):
        for cell in a.cells:
            s, t = results[cell]["scratch"], results[cell]["torch"]
            paired = [x["chars_per_s"] / y["chars_per_s"] for x, y in zip(s["rounds"], t["rounds"])]
            results[cell]["scratch_over_torch"] = {
                "ratio_of_medians": s["chars_per_s"]["median"] / t["chars_per_s"]["median"],
                "paired_median": statistics.median(paired), "paired_min": min(paired),
                "paired_max": max(paired)}
    cfg0 = build_config(a, a.cells[0], os.path.join(tempfile.gettempdir(), "unused"))
    config = {k: getattr(cfg0, k) for k in ("source", "max_chars", "hidden_size", "num_layers",
                                             "embedding_size", "seq_len", "batch_size", "dtype",
                                             "optimizer", "lr", "grad_clip", "dropout", "backend")}
    config["threads"] = a.threads
    return config, results, unavailable


def summarize(info, rounds):
    rates = [x["chars_per_s"] for x in rounds]
    clean = [x["chars_per_s"] for x in rounds if x["foreign_load"] is not None and x["foreign_load"] < CLEAN]
    ms = [x["ms_per_step"] for x in rounds]
    return dict(info, rounds=rounds,
                chars_per_s={"median": statistics.median(rates), "min": min(rates), "max": max(rates),
                             "clean_median": statistics.median(clean) if clean else None,
                             "clean_rounds": len(clean)},
                ms_per_step={"median": statistics.median(ms), "min": min(ms), "max": max(ms)},
                cpu_share=statistics.median(x["cpu_s"] / x["wall_s"] for x in rounds),
                foreign_load=_median_or_none([x["foreign_load"] for x in rounds]))


def _median_or_none(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def markdown(record):
    c = record["config"]
    threads = "threads as is" if c["threads"] is None else f"{c['threads']} thread(s)"
    lines = [f"Training throughput, {record['date']}: {c['num_layers']}-layer, H={c['hidden_size']}, "
             f"T={c['seq_len']}, B={c['batch_size']}, one-hot input, {c['dtype']}, {c['optimizer']} "
             f"lr {c['lr']:g} (clip {c['grad_clip']:g}, global norm), {c['source']!r} first "
             f"{c['max_chars']:,} chars, backend {c['backend']}, "
             f"{threads} per process; "
             f"{record['rounds']} rounds per cell.",
             "",
             "| cell | implementation | parameters | chars/s (median) | min – max | ms/step (median) "
             "| chars/s, clean rounds (median, n) | CPU share | other load | scratchrnn / PyTorch |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for cell, by_impl in record["results"].items():
        ratio = by_impl.get("scratch_over_torch")
        for impl in IMPLS:
            if impl not in by_impl:
                continue
            r = by_impl[impl]
            cps, ms, other = r["chars_per_s"], r["ms_per_step"], r["foreign_load"]
            clean = ("—" if cps["clean_median"] is None
                     else f"{cps['clean_median']:,.0f} ({cps['clean_rounds']})")
            shown = ("" if ratio is None or impl != "scratch" else
                     f"**{ratio['ratio_of_medians']:.2f}** (paired rounds {ratio['paired_min']:.2f} – "
                     f"{ratio['paired_max']:.2f})")
            lines.append(f"| {cell} | {'scratchrnn' if impl == 'scratch' else 'PyTorch'} | {r['params']:,} | "
                         f"{cps['median']:,.0f} | {cps['min']:,.0f} – {cps['max']:,.0f} | {ms['median']:.1f} | "
                         f"{clean} | {r['cpu_share']:.2f} | "
                         f"{'n/a' if other is None else f'{100 * other:.0f}%'} | {shown} |")
    m = record["machine"]
    lines += [""] + [f"{impl}: not measured ({why})" for impl, why in record["unavailable"].items()]
    lines += [f"Machine: {m['cpu']} ({m['cores']} cores), {m['platform']}, Python {m['python']}; "
              f"load average before/after {m['loadavg_before']} / {m['loadavg_after']}.",
              "Versions: " + ", ".join(f"{k} {v}" for k, v in record["versions"].items()) + ".",
              "Each implementation runs in its own process; rounds alternate between them. "
              "scratchrnn / PyTorch = ratio of the median chars/s (above 1: scratchrnn faster). "
              "CPU share = median over rounds of process CPU time / wall time (above 1 with "
              "multithreaded BLAS). Other load = median share of all CPUs used by other processes "
              "during a round; numbers taken with other load well above 0 understate the speed. "
              f"Clean rounds: other load below {100 * CLEAN:.0f}%."]
    return "\n".join(lines)


def main(argv=None):
    a = parse_args(argv)
    if a.threads is not None:      # inherited by the spawned workers before they import NumPy/torch
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(a.threads)
    load = lambda: [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None  # noqa: E731
    log = lambda msg: print(msg, file=sys.stderr, flush=True)   # noqa: E731
    if a.wait_idle > 0:
        wait_for_idle(a.wait_idle, CLEAN, log)
    loadavg_before = load()
    started = time.perf_counter()
    config, results, unavailable = run(a, log)
    now = _dt.datetime.now()
    record = {"benchmark": "train_throughput", "date": now.strftime("%Y-%m-%d"),
              "command": "python -m benchmarks.train_throughput " + " ".join(argv or sys.argv[1:]),
              "time": now.isoformat(timespec="seconds"), "quick": a.quick, "rounds": a.rounds,
              "round_seconds": a.round_seconds, "warmup_seconds": a.warmup_seconds,
              "config": config, "results": results, "unavailable": unavailable,
              "machine": dict(machine_info(), loadavg_before=loadavg_before, loadavg_after=load()),
              "versions": versions(), "gpu": running.gpu_info(),
              "wall_s": round(time.perf_counter() - started, 1)}
    text = markdown(record)
    print(text)
    if not a.no_save:
        os.makedirs(a.out, exist_ok=True)
        suffix = ("-quick" if a.quick else "") + (f"-{a.tag}" if a.tag else "")
        path = os.path.join(a.out, f"train_throughput-{record['date']}{suffix}")
        with open(path + ".json", "w") as f:
            json.dump(record, f, indent=1)
        with open(path + ".md", "w") as f:
            f.write(text + "\n")
        log(f"wrote {path}.json and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
