"""Running the benchmark: one worker process per implementation, timed rounds that
alternate between them, and the machine's other load (measured, waited out, or kept
from the next round).
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


# ------------------------------------------------------------------ workers
class Worker:
    """One implementation in its own process, spoken to in JSON lines."""

    def __init__(self, impl, threads, tf32=False):
        env = dict(os.environ)
        env["CUPY_TF32"] = env["SCRATCHRNN_BENCH_TF32"] = "1" if tf32 else "0"   # both sides alike
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


# ------------------------------------------------------------------ the machine
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


def gpu_info():
    """The GPU's name, driver and CUDA runtime as CuPy sees them, plus torch's CUDA and
    cuDNN builds; None where CuPy has no usable GPU."""
    from scratchrnn.core.backend import cupy_unavailable_reason
    if cupy_unavailable_reason() is not None:
        return None
    import cupy
    rt = cupy.cuda.runtime

    def dotted(v):          # CUDA's 12040 -> "12.4"
        return f"{v // 1000}.{v % 1000 // 10}"
    name = rt.getDeviceProperties(0)["name"]
    info = {"device": name.decode(errors="replace") if isinstance(name, bytes) else str(name),
            "cuda_driver_api": dotted(rt.driverGetVersion()),
            "cuda_runtime": dotted(rt.runtimeGetVersion()), "cupy": cupy.__version__}
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30).stdout.strip()
        info["driver"] = out.splitlines()[0] if out else None
    except (OSError, subprocess.SubprocessError):
        info["driver"] = None
    try:
        import torch
        info["torch_cuda"] = torch.version.cuda
        info["cudnn"] = torch.backends.cudnn.version()
    except Exception:
        pass
    return info


def versions():
    import numpy

    from scratchrnn.engines import blas_kernel
    v = {"numpy": numpy.__version__}
    v["blas"] = blas_kernel.describe()
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


def set_autogroup_nice(delta, log, restore=None):
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
