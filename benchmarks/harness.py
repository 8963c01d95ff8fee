"""The benchmark driver: ``python -m benchmarks [--quick] [...]`` (``--help`` lists options).

For every case (cell x size) it alternates the implementations round by round,
each in its own worker process (``worker.py``), and reports medians with min-max:
forward, backward, fwd+bwd and a full training step (fwd + bwd + SGD update),
tokens/s, achieved GFLOP/s against a GEMM peak measured on the same device, peak
memory against the cells' documented cache formula, and ratios to PyTorch.

Writes a markdown table on stdout and to ``<out>/RESULTS.md``, the JSON record
``<out>/<tag>.json`` (machine, versions, date, every round) and the log-log
scaling plots ``<out>/scaling_<T|B|H>.png`` with the fitted exponent per curve.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from .impls import IMPLS

HERE = Path(__file__).resolve().parent
CELLS = ("rnn", "gru", "lstm")
GRID = [(64, 32, 64, 128), (64, 32, 256, 256), (50, 1, 65, 100), (100, 64, 512, 512),
        (100, 128, 1024, 1024)]
SWEEP_BASE = {"T": 64, "B": 32, "H": 256}            # I = H in the H sweep, else I = 256
SWEEPS = {"T": [16, 32, 64, 128, 256], "B": [1, 4, 16, 64, 128], "H": [64, 128, 256, 512]}
QUICK_GRID = [(8, 4, 8, 16), (5, 1, 7, 9)]
QUICK_SWEEPS = {"T": [4, 8], "B": [1, 4], "H": [8, 16]}
DEFAULT_IMPLS = ("scratch-numpy", "scratch-plain", "scratch-cupy", "torch-cpu", "torch-cuda", "naive")
SWEEP_IMPLS = ("scratch-numpy", "torch-cpu", "scratch-cupy", "torch-cuda")
GATES = {"rnn": 1, "gru": 3, "lstm": 4}


def gemm_flops(cell, T, B, I, H):
    """GEMM FLOPs of one forward+backward: forward 2TB(I+H)GH; backward twice that
    (dW_x, dW_h; dx, dh_prev). Elementwise work is not counted."""
    return 6.0 * T * B * (I + H) * GATES[cell] * H


def size_name(T, B, I, H):
    return f"T{T} B{B} I{I} H{H}"


# ------------------------------------------------------------------ workers
class Worker:
    """One implementation in its own process, spoken to in JSON lines."""

    def __init__(self, impl, threads):
        env = dict(os.environ)
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = str(threads)
        env["SCRATCHRNN_BENCH_THREADS"] = str(threads)
        root = str(HERE.parent)
        env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
        self.impl = impl
        self.proc = subprocess.Popen([sys.executable, "-m", "benchmarks.worker", impl], cwd=root,
                                     env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, bufsize=1)
        first = self._read()
        self.unavailable = first.get("unavailable")

    def _read(self):
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"worker {self.impl} died (exit code {self.proc.poll()})")
        return json.loads(line)

    def ask(self, op, **kw):
        self.proc.stdin.write(json.dumps({"op": op, **kw}) + "\n")
        self.proc.stdin.flush()
        reply = self._read()
        if "error" in reply:
            raise RuntimeError(f"{self.impl} {op}: {reply['error']}\n{reply.get('trace', '')}")
        return reply

    def close(self):
        try:
            if self.proc.poll() is None and not self.unavailable:
                self.ask("quit")
        except Exception:
            pass
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=30)
        except Exception:
            self.proc.kill()


# ------------------------------------------------------------------ other load on the machine
def _cpu_jiffies():
    """(busy, total) jiffies of all CPUs from /proc/stat, or None off Linux."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    return sum(v) - idle, sum(v)


def _own_jiffies(pids):
    """utime + stime of the given processes (this harness and its workers)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, ValueError, IndexError):
            pass
    return total


class LoadMeter:
    """CPU time used by *other* processes while a case ran, as a fraction of all cores.

    Another job on the machine steals cycles from the timed code (and with several
    BLAS threads it can stall them badly), so each case records this next to its
    times; numbers taken with foreign load well above 0 are not clean."""

    def __init__(self, pids):
        self.pids = list(pids)
        self.start = (_cpu_jiffies(), _own_jiffies(self.pids))

    def foreign(self):
        end = (_cpu_jiffies(), _own_jiffies(self.pids))
        if self.start[0] is None or end[0] is None:
            return None
        d_busy = end[0][0] - self.start[0][0]
        d_total = end[0][1] - self.start[0][1]
        d_own = end[1] - self.start[1]
        return max(0.0, (d_busy - d_own) / d_total) if d_total > 0 else None


def settle(pid, max_s=0.5, probe_s=0.02):
    """Wait until process ``pid`` stops using CPU. OpenBLAS worker threads keep spinning
    for ~70 ms after the last GEMM; the next implementation's round would lose a core
    to them (measured: numpy rounds ran ~1.6x slower that way)."""
    end = time.time() + max_s
    prev = _own_jiffies([pid])
    while time.time() < end:
        time.sleep(probe_s)
        cur = _own_jiffies([pid])
        if cur == prev:
            return
        prev = cur


def wait_for_idle(pids, max_wait_s, threshold=0.15, probe_s=1.0, log=None):
    """Wait (at most ``max_wait_s``) until other processes use < ``threshold`` of the CPUs."""
    waited = 0.0
    while waited < max_wait_s:
        m = LoadMeter(pids)
        time.sleep(probe_s)
        waited += probe_s
        f = m.foreign()
        if f is None or f < threshold:
            return f, waited
    if log:
        log(f"    (machine still busy after {waited:.0f} s; timing anyway)")
    return None, waited


# ------------------------------------------------------------------ one case
def run_case(workers, case, rounds, min_round_s, warmup_s, memory=True, breakdown=False, log=None,
             wait_idle_s=0.0):
    pids = [os.getpid()] + [w.proc.pid for w in workers.values()]
    if wait_idle_s > 0:
        wait_for_idle(pids, wait_idle_s, log=log)
    meter = LoadMeter(pids)
    res = {}
    for name, w in workers.items():
        res[name] = {"setup": w.ask("setup", **case, min_round_s=min_round_s, warmup_s=warmup_s),
                     "rounds": []}
    names = list(workers)
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]   # rotate who goes first
        for name in order:
            res[name]["rounds"].append(workers[name].ask("round"))
            settle(workers[name].proc.pid)
    foreign = meter.foreign()
    for name, w in workers.items():
        res[name]["foreign_load"] = foreign
        rr = res[name]
        for ph in ("fwd", "bwd", "fwdbwd", "train"):
            vals = [x[ph] for x in rr["rounds"]]
            rr[ph] = {"median_ms": 1e3 * statistics.median(vals), "min_ms": 1e3 * min(vals),
                      "max_ms": 1e3 * max(vals)}
        if memory:
            rr["memory"] = w.ask("memory")
        if breakdown and name == "scratch-numpy":
            rr["breakdown"] = w.ask("breakdown")
        if log:
            log(f"    {name:14s} fwd+bwd {rr['fwdbwd']['median_ms']:9.2f} ms  "
                f"train {rr['train']['median_ms']:9.2f} ms  (other load {100 * (foreign or 0):.0f}%)")
    return res


def enrich(case, res, peaks):
    """Derived numbers: tokens/s, GFLOP/s, % of peak, ratios, memory vs formula."""
    from scratchrnn.cells import CELLS as CELL_MODULES
    T, B, I, H = (case[k] for k in "TBIH")
    flops = gemm_flops(case["cell"], T, B, I, H)
    formula = CELL_MODULES[case["cell"]].cache_elements(T, B, I, H) * 4
    xs_bytes = T * B * I * 4
    torch_cpu = res.get("torch-cpu", {}).get("fwdbwd", {}).get("median_ms")
    torch_gpu = res.get("torch-cuda", {}).get("fwdbwd", {}).get("median_ms")
    numpy_ms = res.get("scratch-numpy", {}).get("fwdbwd", {}).get("median_ms")
    for name, rr in res.items():
        ms = rr["fwdbwd"]["median_ms"]
        gpu = name in ("scratch-cupy", "torch-cuda")
        peak = peaks.get("gpu" if gpu else "cpu")
        rr["tokens_per_s"] = T * B / (rr["train"]["median_ms"] / 1e3)
        rr["gflops"] = flops / (ms / 1e3) / 1e9
        rr["frac_peak"] = rr["gflops"] / peak if peak else None
        ref = torch_gpu if gpu else torch_cpu
        rr["ratio_torch"] = ms / ref if ref else None
        if name == "scratch-cupy" and numpy_ms:
            rr["speedup_vs_numpy"] = numpy_ms / ms
        if name == "naive" and numpy_ms:
            rr["slowdown_vs_scratch"] = ms / numpy_ms
        mem = rr.get("memory") or {}
        if mem.get("peak_bytes") is not None and name.startswith("scratch"):
            mem["formula_bytes"] = formula
            mem["cache_vs_formula"] = (mem["cache_bytes"] + xs_bytes) / formula
            mem["peak_vs_formula"] = (mem["peak_bytes"] + xs_bytes) / formula
    return res


# ------------------------------------------------------------------ targets
def evaluate_targets(grid_results):
    """The issue's targets, each with value, threshold and whether it is met."""
    out = []

    def find(cell, size):
        for r in grid_results:
            c = r["case"]
            if c["cell"] == cell and (c["T"], c["B"], c["I"], c["H"]) == size:
                return r["results"]
        return None

    runs = {(r["case"]["cell"], r["case"]["T"], r["case"]["B"], r["case"]["I"], r["case"]["H"])
            for r in grid_results}
    sizes_run = {k[1:] for k in runs}

    def add(name, value, threshold, sense="<=", size=None):
        cell = name.split()[0]
        if size is not None and (size not in sizes_run or (
                cell in CELLS and (cell, *size) not in runs)):
            return                                   # that case was not part of this run
        if value is None:
            out.append({"target": name, "value": None, "threshold": threshold, "met": None})
            return
        met = value <= threshold if sense == "<=" else value >= threshold
        row = {"target": name, "value": round(value, 3), "threshold": threshold, "met": met,
               "by": round(value / threshold, 3)}
        cell = name.split()[0]
        res = find(cell, size) if size is not None and cell in CELLS else None
        bd = (res or {}).get("scratch-numpy", {}).get("breakdown")
        if not met and bd:                           # where scratchrnn's fwd+bwd time goes
            row["where_time_goes"] = {k: round(bd[k + "_frac"], 3) for k in ("gemm", "alloc", "rest")}
        out.append(row)

    def ratio(res, name="scratch-numpy", key="ratio_torch"):
        return None if res is None or name not in res else res[name].get(key)

    for cell in CELLS:
        for size in ((100, 64, 512, 512), (100, 128, 1024, 1024)):
            add(f"{cell} fwd+bwd / torch CPU at {size_name(*size)}", ratio(find(cell, size)), 1.0,
                size=size)
        add(f"{cell} fwd+bwd / torch CPU at {size_name(64, 32, 256, 256)}",
            ratio(find(cell, (64, 32, 256, 256))), 1.3 if cell == "lstm" else 0.8,
            size=(64, 32, 256, 256))
        add(f"{cell} fwd+bwd / torch CPU at batch 1 ({size_name(50, 1, 65, 100)})",
            ratio(find(cell, (50, 1, 65, 100))), 0.5, size=(50, 1, 65, 100))
        for size in ((100, 64, 512, 512), (100, 128, 1024, 1024)):
            add(f"{cell} fraction of GEMM peak at {size_name(*size)}",
                ratio(find(cell, size), key="frac_peak"), 0.75, ">=", size=size)
        for size in GRID:
            add(f"{cell} naive / scratchrnn at {size_name(*size)}",
                ratio(find(cell, size), "naive", "slowdown_vs_scratch"), 2.0, ">=", size=size)
        for size in GRID:
            res = find(cell, size)
            mem = None if res is None or "scratch-numpy" not in res else \
                res["scratch-numpy"].get("memory", {}).get("cache_vs_formula")
            add(f"{cell} forward cache / formula at {size_name(*size)}", mem, 1.2, size=size)
    add("lstm CuPy / cuDNN fwd+bwd at T100 B64 I512 H512",
        ratio(find("lstm", (100, 64, 512, 512)), "scratch-cupy"), 1.5, size=(100, 64, 512, 512))
    add("lstm CuPy speed-up over NumPy at T100 B128 I1024 H1024",
        ratio(find("lstm", (100, 128, 1024, 1024)), "scratch-cupy", "speedup_vs_numpy"), 20.0, ">=",
        size=(100, 128, 1024, 1024))
    return out


# ------------------------------------------------------------------ reporting
def _fmt(v, spec=".2f", none="—"):
    return none if v is None else format(v, spec)


def markdown(record):
    lines = []
    m = record["machine"]
    lines.append(f"# scratchrnn benchmark — {record['date']}")
    lines.append("")
    lines.append(f"Command: `{record['command']}`  ")
    lines.append(f"Machine: {m['cpu']} ({m['cores']} cores), {m['platform']}; threads {record['threads']}; niceness {record.get('niceness') or 0}; "
                 f"load average before/after {m['loadavg_before']} / {m['loadavg_after']}  ")
    lines.append("Versions: " + ", ".join(f"{k} {v}" for k, v in record["versions"].items()) + "  ")
    lines.append("GEMM peak (2048³ float32): " + ", ".join(
        f"{k} {v:.0f} GFLOP/s" for k, v in record["gemm_peak_gflops"].items()) + "  ")
    if record["unavailable"]:
        lines.append("Not measured here: " + "; ".join(
            f"{k}: {v}" for k, v in record["unavailable"].items()) + "  ")
    lines.append(f"Rounds per case: {record['rounds']} (alternating, each implementation in its own "
                 "process); times are medians, [min–max] over rounds; float32; one layer. "
                 "'other load' = CPU time used by processes outside the benchmark while the case ran, "
                 "as a share of all cores: above ~10% the times are disturbed.")
    lines.append("")
    lines.append("## Size grid")
    lines.append("")
    lines.append("| cell | size | impl | fwd ms | bwd ms | fwd+bwd ms [min–max] | train ms | tokens/s "
                 "| GFLOP/s | % peak | peak MB | ×torch | other load |")
    lines.append("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in record["grid"]:
        c = r["case"]
        for name, rr in r["results"].items():
            mem = rr.get("memory") or {}
            pb = mem.get("peak_bytes")
            fb = rr["fwdbwd"]
            lines.append(
                f"| {c['cell']} | {size_name(c['T'], c['B'], c['I'], c['H'])} | {name} "
                f"| {rr['fwd']['median_ms']:.2f} | {rr['bwd']['median_ms']:.2f} "
                f"| {fb['median_ms']:.2f} [{fb['min_ms']:.2f}–{fb['max_ms']:.2f}] "
                f"| {rr['train']['median_ms']:.2f} | {rr['tokens_per_s']:,.0f} | {rr['gflops']:.1f} "
                f"| {_fmt(None if rr['frac_peak'] is None else 100 * rr['frac_peak'], '.0f')} "
                f"| {_fmt(None if pb is None else pb / 2**20, '.1f')} "
                f"| {_fmt(rr['ratio_torch'])} "
                f"| {_fmt(None if rr.get('foreign_load') is None else 100 * rr['foreign_load'], '.0f')}% |")
    bds = [(r["case"], name, rr["breakdown"]) for r in record["grid"]
           for name, rr in r["results"].items() if "breakdown" in rr]
    if bds:
        lines.append("")
        lines.append("## Where fwd+bwd time goes (scratchrnn)")
        lines.append("")
        lines.append("GEMM = the layer's GEMMs replayed alone with the same shapes; alloc = estimated "
                     "first-touch cost of freshly allocated buffers; rest = elementwise gate math, "
                     "Python and call overhead.")
        lines.append("")
        lines.append("| cell | size | impl | total ms | GEMM | alloc | rest |")
        lines.append("|---|---|---|---:|---:|---:|---:|")
        for c, name, b in bds:
            lines.append(f"| {c['cell']} | {size_name(c['T'], c['B'], c['I'], c['H'])} | {name} "
                         f"| {1e3 * b['total_s']:.2f} | {100 * b['gemm_frac']:.0f}% "
                         f"| {100 * b['alloc_frac']:.0f}% | {100 * b['rest_frac']:.0f}% |")
    mems = [(r["case"], name, rr["memory"]) for r in record["grid"]
            for name, rr in r["results"].items()
            if name.startswith("scratch") and (rr.get("memory") or {}).get("formula_bytes")]
    if mems:
        lines.append("")
        lines.append("## Memory against the documented cache formula")
        lines.append("")
        lines.append("cache = bytes a forward leaves allocated (+ the inputs, which the formula counts); "
                     "peak = highest allocation during fwd+bwd+update (+ inputs).")
        lines.append("")
        lines.append("| cell | size | impl | formula MB | cache MB | cache/formula | peak MB | peak/formula |")
        lines.append("|---|---|---|---:|---:|---:|---:|---:|")
        for c, name, mem in mems:
            lines.append(f"| {c['cell']} | {size_name(c['T'], c['B'], c['I'], c['H'])} | {name} "
                         f"| {mem['formula_bytes'] / 2**20:.1f} | {mem['cache_bytes'] / 2**20:.1f} "
                         f"| {mem['cache_vs_formula']:.2f} | {mem['peak_bytes'] / 2**20:.1f} "
                         f"| {mem['peak_vs_formula']:.2f} |")
    if record.get("sweeps"):
        lines.append("")
        lines.append("## Scaling sweeps (fwd+bwd ms, fitted exponent of time ~ size^k)")
        lines.append("")
        for var, sweep in record["sweeps"].items():
            lines.append(f"- **{var}** ({', '.join(str(v) for v in sweep['values'])}): " + "; ".join(
                f"{cell} {impl} k={fit['exponent']:.2f}" for cell, per in sweep["fits"].items()
                for impl, fit in per.items()))
    lines.append("")
    lines.append("## Targets")
    lines.append("")
    lines.append("Ratios are scratchrnn (fast path) / other, except 'naive / scratchrnn'. Where a target "
                 "is missed, 'by' is value / threshold and the last column is scratchrnn's fwd+bwd time "
                 "split into GEMM / allocation / rest (elementwise + Python) for that case.")
    lines.append("")
    lines.append("| target | value | threshold | met | by | GEMM / alloc / rest |")
    lines.append("|---|---:|---:|---|---:|---|")
    for t in record["targets"]:
        met = "not measured" if t["met"] is None else ("yes" if t["met"] else "**no**")
        w = t.get("where_time_goes")
        split = f"{100 * w['gemm']:.0f}% / {100 * w['alloc']:.0f}% / {100 * w['rest']:.0f}%" if w else ""
        by = _fmt(t.get("by"), ".2f") if t["met"] is False else ""
        lines.append(f"| {t['target']} | {_fmt(t['value'], '.3f')} | {t['threshold']} | {met} "
                     f"| {by} | {split} |")
    return "\n".join(lines) + "\n"


def fit_exponent(xs, ys):
    import math
    lx = [math.log(x) for x in xs]
    ly = [math.log(y) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    sxx = sum((a - mx) ** 2 for a in lx)
    k = sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sxx if sxx else 0.0
    return k, math.exp(my - k * mx)


def plot_sweeps(record, out):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    paths = []
    for var, sweep in record["sweeps"].items():
        fig, ax = plt.subplots(figsize=(6.4, 4.6))
        for cell, per in sweep["curves"].items():
            for impl, ys in per.items():
                xs = sweep["values"][:len(ys)]
                fit = sweep["fits"][cell][impl]
                line, = ax.plot(xs, ys, "o-" if impl.startswith("scratch") else "s--",
                                label=f"{cell} {impl} (k={fit['exponent']:.2f})")
                ax.plot(xs, [fit["scale"] * x ** fit["exponent"] for x in xs], ":",
                        color=line.get_color(), linewidth=0.8)
        base = ", ".join(f"{k}={v}" for k, v in sweep["base"].items())
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(var)
        ax.set_ylabel("fwd+bwd time (ms)")
        ax.set_title(f"scaling in {var} ({base}); dotted: fitted power law")
        ax.legend(fontsize=7)
        ax.grid(True, which="both", alpha=0.3)
        fig.tight_layout()
        p = Path(out) / f"scaling_{var}.png"
        fig.savefig(p, dpi=110)
        plt.close(fig)
        paths.append(str(p))
    return paths


# ------------------------------------------------------------------ main
def machine_info():
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), "hostname_hash": hash(platform.node()) & 0xffff}


def versions():
    import numpy
    v = {"numpy": numpy.__version__}
    try:
        cfg = numpy.show_config(mode="dicts")
        blas = cfg.get("Build Dependencies", {}).get("blas", {})
        v["blas"] = f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception:
        pass
    for mod in ("torch", "cupy", "scipy"):
        try:
            v[mod] = __import__(mod).__version__
        except Exception:
            pass
    try:
        v["scratchrnn_commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE,
                                                capture_output=True, text=True).stdout.strip()
    except Exception:
        pass
    return v


def _set_autogroup_nice(delta, log, restore=None):
    """Set this session's autogroup nice (Linux); returns the previous value, or None."""
    path = "/proc/self/autogroup"
    try:
        with open(path) as f:
            before = int(f.read().split("nice")[1])
        value = restore if restore is not None else max(-20, min(19, before + delta))
        with open(path, "w") as f:
            f.write(str(value))
        return before
    except (OSError, ValueError, IndexError) as exc:
        if restore is None:
            log(f"autogroup nice not changed: {exc}")
        return None


def parse_args(argv):
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes, no waiting: a smoke run in seconds")
    ap.add_argument("--cells", default=",".join(CELLS), help="comma list of rnn,gru,lstm")
    ap.add_argument("--impls", default=",".join(DEFAULT_IMPLS),
                    help=f"comma list from {','.join(IMPLS)} (unavailable ones are reported and skipped)")
    ap.add_argument("--sizes", default=None,
                    help="grid sizes 'T,B,I,H;T,B,I,H;...' (default: the five of issue #4)")
    ap.add_argument("--no-sweeps", action="store_true", help="skip the T/B/H scaling sweeps")
    ap.add_argument("--sweep-cells", default="lstm,gru,rnn", help="cells in the scaling sweeps")
    ap.add_argument("--rounds", type=int, default=5, help="alternating timed rounds per case (>= 5)")
    ap.add_argument("--min-round-s", type=float, default=None,
                    help="each round repeats the iteration until it lasts this long (default 0.15)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                    help="BLAS / torch threads per worker (default: all cores)")
    ap.add_argument("--wait-idle", type=float, default=0.0, metavar="S",
                    help="before each case wait up to S seconds for other processes to leave the CPUs")
    ap.add_argument("--nice", type=int, default=0, metavar="N",
                    help="add N to the benchmark's niceness (negative N raises its CPU priority over "
                         "other jobs on a shared machine; needs privileges, ignored without)")
    ap.add_argument("--no-breakdown", action="store_true", help="skip the per-phase breakdown")
    ap.add_argument("--out", default=str(HERE / "results"), help="output folder")
    ap.add_argument("--from-json", default=None, metavar="PATH",
                    help="run nothing: recompute targets and rewrite the tables/plots of a saved JSON")
    ap.add_argument("--tag", default=None, help="JSON file name (default: cpu, or gpu when one ran)")
    return ap.parse_args(argv)


def rerender(path, out=None):
    """Recompute targets and rewrite RESULTS.md / plots from a saved JSON record."""
    path = Path(path)
    record = json.loads(path.read_text())
    record["targets"] = evaluate_targets(record["grid"])
    out = Path(out) if out else path.parent
    tag = path.stem
    path.write_text(json.dumps(record, indent=1))
    md = markdown(record)
    (out / ("RESULTS.md" if tag in ("cpu", "gpu") else f"RESULTS-{tag}.md")).write_text(md)
    if record.get("sweeps"):
        plot_sweeps(record, out)
    print(md)
    return record


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    a = parse_args(argv)
    if a.from_json:
        return rerender(a.from_json)
    t_start = time.time()
    log = lambda s: print(s, file=sys.stderr, flush=True)
    cells = [c.strip() for c in a.cells.split(",") if c.strip()]
    for c in cells + a.sweep_cells.split(","):
        if c not in CELLS:
            raise SystemExit(f"unknown cell {c!r}; choose from {', '.join(CELLS)}")
    impl_names = [i.strip() for i in a.impls.split(",") if i.strip()]
    for i in impl_names:
        if i not in IMPLS:
            raise SystemExit(f"unknown implementation {i!r}; choose from {', '.join(IMPLS)}")
    if a.sizes:
        grid = [tuple(int(v) for v in s.split(",")) for s in a.sizes.split(";") if s.strip()]
    else:
        grid = QUICK_GRID if a.quick else GRID
    sweeps = {} if a.no_sweeps else (QUICK_SWEEPS if a.quick else SWEEPS)
    rounds = max(5, a.rounds)
    min_round_s = a.min_round_s if a.min_round_s is not None else (0.0 if a.quick else 0.15)
    warmup_s = 0.0 if a.quick else 0.3

    niceness = None
    autogroup_before = None
    if a.nice and hasattr(os, "nice"):
        try:
            niceness = os.nice(a.nice)                    # workers inherit it
        except OSError as exc:
            log(f"could not change niceness by {a.nice}: {exc}")
        # With Linux's scheduler autogroups, niceness only ranks processes inside one
        # session; the autogroup's own nice ranks sessions against each other.
        autogroup_before = _set_autogroup_nice(a.nice, log)
    loadavg_before = os.getloadavg() if hasattr(os, "getloadavg") else None
    log(f"starting workers: {', '.join(impl_names)} ({a.threads} threads each)")
    workers, unavailable = {}, {}
    try:
        for name in impl_names:
            w = Worker(name, a.threads)
            if w.unavailable:
                unavailable[name] = w.unavailable
                log(f"  {name}: not available — {w.unavailable}")
                w.close()
            else:
                workers[name] = w
        peaks = {}
        for name, w in workers.items():
            if a.quick:
                continue
            g = w.ask("peak")["gflops"]
            key = "gpu" if name in ("scratch-cupy", "torch-cuda") else "cpu"
            peaks[f"{name}"] = g
            peaks[key] = max(peaks.get(key, 0.0), g)
        grid_results = []
        for size in grid:
            for cell in cells:
                case = dict(zip("TBIH", size), cell=cell)
                log(f"{cell} {size_name(*size)}")
                res = run_case(workers, case, rounds, min_round_s, warmup_s,
                               breakdown=not a.no_breakdown, log=log, wait_idle_s=a.wait_idle)
                grid_results.append({"case": case, "results": enrich(case, res, peaks)})
        sweep_out = {}
        sweep_workers = {k: w for k, w in workers.items() if k in SWEEP_IMPLS}
        for var, values in sweeps.items():
            base = dict(SWEEP_BASE) if not a.quick else {"T": 8, "B": 4, "H": 8}
            sw = {"values": values, "base": {k: v for k, v in base.items() if k != var},
                  "curves": {}, "fits": {}, "cases": []}
            for cell in [c for c in a.sweep_cells.split(",") if c]:
                sw["curves"][cell] = {k: [] for k in sweep_workers}
                for v in values:
                    s = dict(base, **{var: v})
                    I = s["H"] if var == "H" else (8 if a.quick else 256)
                    case = {"cell": cell, "T": s["T"], "B": s["B"], "I": I, "H": s["H"]}
                    log(f"sweep {var}: {cell} {size_name(case['T'], case['B'], I, case['H'])}")
                    res = run_case(sweep_workers, case, rounds, min_round_s, warmup_s, memory=False,
                                   log=log, wait_idle_s=a.wait_idle)
                    res = enrich(case, res, peaks)
                    sw["cases"].append({"case": case, "results": res})
                    for k in sweep_workers:
                        sw["curves"][cell][k].append(res[k]["fwdbwd"]["median_ms"])
                sw["fits"][cell] = {}
                for k, ys in sw["curves"][cell].items():
                    e, scale = fit_exponent(values, ys)
                    sw["fits"][cell][k] = {"exponent": e, "scale": scale}
            sweep_out[var] = sw
    finally:
        for w in workers.values():
            w.close()
        if autogroup_before is not None:
            _set_autogroup_nice(None, log, restore=autogroup_before)

    gpu = any(k in workers for k in ("scratch-cupy", "torch-cuda"))
    record = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": "python -m benchmarks " + " ".join(argv),
        "machine": dict(machine_info(), loadavg_before=[round(x, 2) for x in loadavg_before or []],
                        loadavg_after=[round(x, 2) for x in (os.getloadavg()
                                                             if hasattr(os, "getloadavg") else [])]),
        "versions": versions(), "threads": a.threads, "rounds": rounds, "niceness": niceness,
        "gemm_peak_gflops": {k: v for k, v in peaks.items() if k not in ("cpu", "gpu")},
        "peak_reference_gflops": {k: peaks[k] for k in ("cpu", "gpu") if k in peaks},
        "unavailable": unavailable, "grid": grid_results, "sweeps": sweep_out,
        "wall_s": round(time.time() - t_start, 1),
    }
    record["targets"] = evaluate_targets(grid_results)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    tag = a.tag or ("gpu" if gpu else "cpu")
    (out / f"{tag}.json").write_text(json.dumps(record, indent=1))
    md = markdown(record)
    (out / ("RESULTS.md" if tag in ("cpu", "gpu") else f"RESULTS-{tag}.md")).write_text(md)
    if sweep_out:
        plot_sweeps(record, out)
    print(md)
    log(f"done in {record['wall_s']} s; wrote {out / (tag + '.json')}")
    return record


if __name__ == "__main__":
    main()
