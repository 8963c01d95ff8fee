"""Training throughput of the language model: characters per second of *full* training steps.

    python benchmarks/train_throughput.py                 # every cell, default TrainConfig sizes
    python -m benchmarks.train_throughput --cells lstm --rounds 9
    python benchmarks/train_throughput.py --quick         # tiny sizes, a smoke run of the script

One step is exactly what ``Trainer.train_step`` does: the next (T, B) window of the
default corpus slice, carry (or reset) the hidden state, forward + softmax cross-entropy,
backward through time, clip by global norm, Adam update. Sizes are the defaults of
``TrainConfig`` (2-layer, H=128, T=64, B=32, one-hot input, float32) unless overridden.

Method: every cell gets its own Trainer; each is warmed up, then the cells take turns
round by round (so a burst of load on the machine hits them all alike), each round
lasting about ``--round-seconds`` with a step count fixed after warm-up. A round's
throughput is steps * B * T / wall time; the table shows the median over rounds with
the min-max range. The JSON written to ``benchmarks/results/train_throughput-<date>.json``
keeps every round, the load average, and the share of the wall time this process spent
on the CPU (a value far below the thread count means other work competed for the cores).

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
import os
import platform
import statistics
import sys
import tempfile
import time

CELLS = ("rnn", "gru", "lstm")
CLEAN = 0.15        # a round is "clean" when other processes used less than this share of the CPUs
HERE = os.path.dirname(os.path.abspath(__file__))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Training throughput (chars/s of full training steps) "
                                            "for each cell at the default TrainConfig sizes.")
    p.add_argument("--cells", default=",".join(CELLS), help="comma-separated (default rnn,gru,lstm)")
    p.add_argument("--rounds", type=int, default=9, help="timed rounds per cell (at least 5)")
    p.add_argument("--round-seconds", type=float, default=2.0, help="target length of one round")
    p.add_argument("--warmup-seconds", type=float, default=2.0, help="untimed steps first, per cell")
    p.add_argument("--backend", default="numpy", choices=("numpy", "cupy"))
    p.add_argument("--threads", type=int, default=None,
                   help="BLAS/OpenMP threads (sets OMP/OPENBLAS/MKL_NUM_THREADS; default: as is)")
    p.add_argument("--source", default=None, help="corpus name or file (default: TrainConfig's)")
    p.add_argument("--max-chars", type=int, default=None, help="default: TrainConfig's slice")
    p.add_argument("--hidden-size", type=int, default=None)
    p.add_argument("--num-layers", type=int, default=None)
    p.add_argument("--seq-len", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--dtype", default=None, choices=("float32", "float64"))
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
    bad = [c for c in a.cells if c not in CELLS]
    if bad:
        p.error(f"unknown cell {bad[0]!r}; choose from {', '.join(CELLS)}")
    return a


def machine_info():
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    threads = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                               "MKL_NUM_THREADS") if os.environ.get(k)}
    return {"cpu": cpu, "cores": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), "thread_env": threads}


def versions():
    import numpy

    import scratchrnn
    v = {"scratchrnn": getattr(scratchrnn, "__version__", "?"), "numpy": numpy.__version__}
    try:
        cfg = numpy.show_config(mode="dicts")
        blas = cfg.get("Build Dependencies", {}).get("blas", {})
        v["blas"] = f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception:      # older NumPy: no dict mode
        pass
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
    from scratchrnn.runner import TrainConfig
    cfg = TrainConfig(cell=cell, max_steps=10**9, max_minutes=None, progress=False, out_dir=out_dir,
                      backend=a.backend)
    if a.quick:
        cfg.max_chars, cfg.hidden_size, cfg.seq_len, cfg.batch_size = 50_000, 32, 16, 8
    for name in ("source", "max_chars", "hidden_size", "num_layers", "seq_len", "batch_size", "dtype"):
        value = getattr(a, name)
        if value is not None:
            setattr(cfg, name, value)
    return cfg


# ------------------------------------------------------- other work on the machine (Linux)
def _busy_jiffies():
    """CPU time spent busy by the whole machine, in clock ticks (None off Linux)."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    user, nice, system, idle, iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return user + nice + system + irq + softirq + steal


def _own_jiffies():
    """CPU time of this process (all its threads), in clock ticks."""
    try:
        with open("/proc/self/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
        return int(rest[11]) + int(rest[12])          # utime, stime
    except (OSError, ValueError, IndexError):
        return None


class ForeignLoad:
    """Share of the machine's CPU capacity used by *other* processes between start and stop."""

    def start(self):
        self.t, self.busy, self.own = time.perf_counter(), _busy_jiffies(), _own_jiffies()
        return self

    def stop(self):
        busy, own = _busy_jiffies(), _own_jiffies()
        if None in (busy, own, self.busy, self.own):
            return None
        hz, cores = os.sysconf("SC_CLK_TCK"), os.cpu_count() or 1
        capacity = (time.perf_counter() - self.t) * hz * cores
        return max(0.0, ((busy - self.busy) - (own - self.own)) / capacity) if capacity else None


def wait_for_idle(max_wait_s, threshold, log):
    """Wait (up to max_wait_s) for a 1-second window in which other processes use less than
    ``threshold`` of the CPUs. Returns the last measured foreign load."""
    deadline, load = time.perf_counter() + max_wait_s, None
    while True:
        probe = ForeignLoad().start()
        time.sleep(1.0)
        load = probe.stop()
        if load is None or load < threshold or time.perf_counter() >= deadline:
            return load
        log(f"waiting for the machine to go quiet: other processes use {100 * load:.0f}% of the CPUs")


def timed_steps(trainer, steps):
    """Wall seconds, process CPU seconds and foreign load for ``steps`` full training steps."""
    trainer.backend.synchronize()
    probe = ForeignLoad().start()
    c0, t0 = time.process_time(), time.perf_counter()
    for _ in range(steps):
        trainer.train_step()
    trainer.backend.synchronize()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return wall, cpu, probe.stop()


def run(a, log=print):
    from scratchrnn.runner import Trainer

    tmp = tempfile.mkdtemp(prefix="scratchrnn-bench-")
    trainers, steps_per_round, info = {}, {}, {}
    for cell in a.cells:
        cfg = build_config(a, cell, os.path.join(tmp, cell))
        trainer = Trainer(cfg)
        trainer.model.train()
        # warm-up: at least 3 steps and warmup_seconds; its pace fixes the round length
        n, t0 = 0, time.perf_counter()
        while n < 3 or time.perf_counter() - t0 < a.warmup_seconds:
            trainer.train_step()
            n += 1
        per_step = (time.perf_counter() - t0) / n
        steps_per_round[cell] = max(1, round(a.round_seconds / per_step))
        trainers[cell] = trainer
        info[cell] = {"params": trainer.model.num_params(), "vocab": len(trainer.data.vocab),
                      "warmup_steps": n, "steps_per_round": steps_per_round[cell]}
        log(f"{cell}: {info[cell]['params']:,} parameters, vocab {info[cell]['vocab']}, "
            f"warm-up {n} steps ({per_step * 1e3:.1f} ms/step) -> {steps_per_round[cell]} steps/round")

    rounds = {cell: [] for cell in a.cells}
    for r in range(a.rounds):
        for cell in a.cells:
            if a.wait_idle > 0:          # a quiet machine before each round, if it comes soon
                wait_for_idle(min(a.wait_idle, 60.0), CLEAN, log)
            trainer = trainers[cell]
            steps = steps_per_round[cell]
            wall, cpu, foreign = timed_steps(trainer, steps)
            chars = steps * trainer.cfg.batch_size * trainer.cfg.seq_len
            rounds[cell].append({"steps": steps, "wall_s": wall, "cpu_s": cpu, "foreign_load": foreign,
                                 "chars_per_s": chars / wall, "ms_per_step": 1e3 * wall / steps})
        log(f"round {r + 1}/{a.rounds}: " + "  ".join(
            f"{c} {rounds[c][-1]['chars_per_s']:,.0f} chars/s" for c in a.cells))

    results = {}
    for cell in a.cells:
        rates = [x["chars_per_s"] for x in rounds[cell]]
        clean = [x["chars_per_s"] for x in rounds[cell]
                 if x["foreign_load"] is not None and x["foreign_load"] < CLEAN]
        ms = [x["ms_per_step"] for x in rounds[cell]]
        results[cell] = dict(info[cell], rounds=rounds[cell],
                             chars_per_s={"median": statistics.median(rates), "min": min(rates),
                                          "max": max(rates),
                                          "clean_median": statistics.median(clean) if clean else None,
                                          "clean_rounds": len(clean)},
                             ms_per_step={"median": statistics.median(ms), "min": min(ms), "max": max(ms)},
                             cpu_share=statistics.median(x["cpu_s"] / x["wall_s"] for x in rounds[cell]),
                             foreign_load=_median_or_none([x["foreign_load"] for x in rounds[cell]]))
    cfg0 = trainers[a.cells[0]].cfg
    config = {k: getattr(cfg0, k) for k in ("source", "max_chars", "hidden_size", "num_layers",
                                             "embedding_size", "seq_len", "batch_size", "dtype",
                                             "optimizer", "lr", "grad_clip", "dropout", "backend")}
    return config, results


def _median_or_none(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def markdown(record):
    c = record["config"]
    lines = [f"Training throughput, {record['date']}: {c['num_layers']}-layer, H={c['hidden_size']}, "
             f"T={c['seq_len']}, B={c['batch_size']}, {c['dtype']}, {c['optimizer']} "
             f"(clip {c['grad_clip']}), {c['source']!r} first {c['max_chars']:,} chars, "
             f"backend {c['backend']}; {record['rounds']} rounds per cell.",
             "",
             "| cell | parameters | chars/s (median) | min – max | ms/step (median) "
             "| chars/s, clean rounds (median, n) | CPU share | other load |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for cell, r in record["results"].items():
        cps, ms, other = r["chars_per_s"], r["ms_per_step"], r["foreign_load"]
        clean = ("—" if cps["clean_median"] is None
                 else f"{cps['clean_median']:,.0f} ({cps['clean_rounds']})")
        lines.append(f"| {cell} | {r['params']:,} | {cps['median']:,.0f} | "
                     f"{cps['min']:,.0f} – {cps['max']:,.0f} | {ms['median']:.1f} | {clean} | "
                     f"{r['cpu_share']:.2f} | {'n/a' if other is None else f'{100 * other:.0f}%'} |")
    m = record["machine"]
    lines += ["", f"Machine: {m['cpu']} ({m['cores']} cores), {m['platform']}, Python {m['python']}; "
                  f"load average before/after {m['loadavg_before']} / {m['loadavg_after']}.",
              "Versions: " + ", ".join(f"{k} {v}" for k, v in record["versions"].items()) + ".",
              "CPU share = median over rounds of process CPU time / wall time (above 1 with "
              "multithreaded BLAS). Other load = median share of all CPUs used by other processes "
              "during a round; numbers taken with other load well above 0 understate the speed. "
              f"Clean rounds: other load below {100 * CLEAN:.0f}%."]
    return "\n".join(lines)


def main(argv=None):
    a = parse_args(argv)
    if a.threads is not None:      # must happen before NumPy is imported
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(a.threads)
    load = lambda: [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None  # noqa: E731
    log = lambda msg: print(msg, file=sys.stderr, flush=True)   # noqa: E731
    if a.wait_idle > 0:
        wait_for_idle(a.wait_idle, CLEAN, log)
    loadavg_before = load()
    started = time.perf_counter()
    config, results = run(a, log)
    now = _dt.datetime.now()
    record = {"benchmark": "train_throughput", "date": now.strftime("%Y-%m-%d"),
              "command": "python benchmarks/train_throughput.py " + " ".join(argv or sys.argv[1:]),
              "time": now.isoformat(timespec="seconds"), "quick": a.quick, "rounds": a.rounds,
              "round_seconds": a.round_seconds, "warmup_seconds": a.warmup_seconds,
              "config": config, "results": results,
              "machine": dict(machine_info(), loadavg_before=loadavg_before, loadavg_after=load()),
              "versions": versions(), "wall_s": round(time.perf_counter() - started, 1)}
    print(markdown(record))
    if not a.no_save:
        os.makedirs(a.out, exist_ok=True)
        suffix = ("-quick" if a.quick else "") + (f"-{a.tag}" if a.tag else "")
        path = os.path.join(a.out, f"train_throughput-{record['date']}{suffix}.json")
        with open(path, "w") as f:
            json.dump(record, f, indent=1)
        log(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
