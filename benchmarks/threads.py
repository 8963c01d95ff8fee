"""BLAS threads: where a second thread pays off, and what the thread policy does under load.

    python -m benchmarks.threads [--rounds 3] [--out benchmarks/results]

Two parts, each measured on the machine as it is ("quiet") and beside two competing
processes that run NumPy matrix products with NumPy's default threads ("loaded", as two
other trainings in two terminals would):

1. GEMMs of this package's shapes -- per step ``h @ W_h`` (B, H) @ (H, 4H), and the big
   hoisted ones (the input projection of a whole window, the weight gradient after the
   backward loop) -- with 1 and with 2 BLAS threads.
2. Three workloads, with the old policy (no limit: OpenBLAS's default, one thread per core;
   ``SCRATCHRNN_THREADS=0``) and the new one (``scratchrnn.core.threads.POLICY``):
   - train: the main command's model (2-layer LSTM, H=128, B=32, T=64, the stdlib corpus),
     fixed steps through ``Trainer.train_step``; chars/s;
   - eval: ``scratchrnn eval`` of that model on its test split; seconds;
   - onepage: ``python -m scratchrnn.book.onepage --steps N``; seconds.

Every measurement runs in its own process (the policy in force from its start), old and new
alternate, and each is repeated ``--rounds`` times; the table shows medians and the spread.
Beside each measurement the JSON records the load average and the CPU that *other*
processes used (all processes' busy time minus ours and minus the two competitors), in cores,
because on a shared machine "quiet" is only as quiet as the neighbours. The machine is
described in the JSON and in the markdown.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

T_TRAIN, B_TRAIN = 64, 32
GEMM_SHAPES = (
    # (what, m, k, n): an (m, k) @ (k, n) product in float32
    *[("step h W_h", B, H, 4 * H) for B in (1, 32, 128) for H in (128, 256, 512, 1024)],
    ("hoisted x W_x", T_TRAIN * B_TRAIN, 101, 4 * 128),          # one-hot V=101 input, H=128
    ("hoisted x W_x", T_TRAIN * B_TRAIN, 128, 4 * 128),          # layer 2, H=128
    ("hoisted x W_x", T_TRAIN * B_TRAIN, 512, 4 * 512),          # H=512
    ("hoisted dW_h", 128, T_TRAIN * B_TRAIN, 4 * 128),           # h_prevᵀ dA, H=128
    ("hoisted dW_h", 512, T_TRAIN * B_TRAIN, 4 * 512),           # H=512
)
LOAD_SIZE = 384          # the competitors' square matrices


# ------------------------------------------------------------------ children
def child_gemm():
    """Time every GEMM shape with the BLAS threads this process started with."""
    import numpy as np

    from scratchrnn.core.threads import blas_threads
    rng = np.random.default_rng(0)
    rows = []
    for what, m, k, n in GEMM_SHAPES:
        a = rng.standard_normal((m, k)).astype(np.float32)
        b = rng.standard_normal((k, n)).astype(np.float32)
        out = np.empty((m, n), np.float32)
        np.matmul(a, b, out=out)
        reps = max(3, int(3e7 / (2 * m * k * n)))          # ~ 30 MFLOP per timing
        times = []
        for _ in range(5):
            t = time.perf_counter()
            for _ in range(reps):
                np.matmul(a, b, out=out)
            times.append((time.perf_counter() - t) / reps)
        rows.append({"what": what, "m": m, "k": k, "n": n, "median_s": statistics.median(times),
                     "min_s": min(times)})
    return {"blas_threads": blas_threads(), "rows": rows}


def _config(out_dir):
    from scratchrnn.lm.run import TrainConfig
    return TrainConfig(max_chars=500_000, max_steps=10**9, max_minutes=None, progress=False, out_dir=out_dir,
                       seq_len=T_TRAIN, batch_size=B_TRAIN)


def child_train(steps):
    """chars/s of ``steps`` training steps of the main command's model, under the policy."""
    from scratchrnn.core import threads
    from scratchrnn.lm.run import Trainer
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(_config(os.path.join(tmp, "run")))
        with threads.limit("train") as n:
            inside = threads.blas_threads()
            for _ in range(3):                                 # warm-up
                trainer.train_step()
            t = time.perf_counter()
            for _ in range(steps):
                trainer.train_step()
            seconds = time.perf_counter() - t
    return {"policy_threads": n, "blas_threads": inside, "seconds": seconds,
            "chars_per_s": steps * T_TRAIN * B_TRAIN / seconds}


def child_eval(checkpoint):
    """Seconds of ``scratchrnn eval CHECKPOINT`` (its loading included), in this process."""
    from scratchrnn.cli import main
    t = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()) as out:
        code = main(["eval", checkpoint])
    return {"seconds": time.perf_counter() - t, "exit": code, "output": out.getvalue().strip()}


def child_onepage(steps):
    """Seconds of ``python -m scratchrnn.book.onepage --steps N`` (its text loading included)."""
    from scratchrnn.book import onepage
    t = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        onepage.main(["--steps", str(steps), "--sample-length", "0"])
    return {"seconds": time.perf_counter() - t}


def child_load():
    """A competitor: NumPy matrix products forever, with NumPy's default threads."""
    import numpy as np
    a = np.random.default_rng(1).standard_normal((LOAD_SIZE, LOAD_SIZE)).astype(np.float32)
    out = np.empty_like(a)
    while True:
        np.matmul(a, a, out=out)


def make_checkpoint(out_dir):
    """A checkpoint of the main command's model (5 steps: eval's time does not depend on
    the weights), for the eval measurement."""
    from scratchrnn.lm.run import Trainer
    cfg = _config(out_dir)
    cfg.max_steps, cfg.eval_every, cfg.eval_tokens = 5, 5, 1000
    return Trainer(cfg).run().last_path


# ------------------------------------------------------------------ the parent
def _env(policy=None, blas_threads=None):
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("SCRATCHRNN_THREADS", None)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env.pop(var, None)
        if blas_threads is not None:
            env[var] = str(blas_threads)
    if policy == "old":
        env["SCRATCHRNN_THREADS"] = "0"                # no limit: what scratchrnn did before
    env["MPLBACKEND"] = "Agg"
    return env


def run_child(args, env):
    """Run ``python -m benchmarks.threads --child ...`` and meter the machine meanwhile."""
    from benchmarks.running import _cpu_jiffies, _own_jiffies
    hz = os.sysconf("SC_CLK_TCK")
    busy0, load0, t0 = _cpu_jiffies(), os.getloadavg(), time.perf_counter()
    comp0 = _own_jiffies(COMPETITORS)
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.threads", "--child", *args],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    # the child's own CPU time, read from /proc while it runs (its last reading before exit)
    own = 0
    while proc.poll() is None:
        own = max(own, _own_jiffies([proc.pid]) + _children_jiffies(proc.pid))
        time.sleep(0.05)
    out = proc.stdout.read()
    wall = time.perf_counter() - t0
    busy1, load1 = _cpu_jiffies(), os.getloadavg()
    comp = _own_jiffies(COMPETITORS) - comp0
    if proc.returncode != 0:
        raise RuntimeError(f"child {args} failed with exit code {proc.returncode}")
    result = json.loads(out.strip().splitlines()[-1])
    others = None
    if busy0 and busy1:
        others = max(0.0, (busy1[0] - busy0[0] - own - comp) / hz / wall)
    result.update(wall_s=wall, loadavg_before=load0[0], loadavg_after=load1[0],
                  competitors_cores=comp / hz / wall, others_cores=others)
    return result


def _children_jiffies(pid):
    """CPU time of ``pid``'s exited children (cutime + cstime)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[13]) + int(fields[14])
    except (OSError, ValueError, IndexError):
        return 0


COMPETITORS = []


@contextlib.contextmanager
def competitors(count):
    """``count`` competing NumPy processes (default threads) for the block's duration."""
    # each in a session of its own, as a program started in another terminal is: Linux's
    # scheduler shares the CPU between sessions (autogroups) first, then inside each
    procs = [subprocess.Popen([sys.executable, "-m", "benchmarks.threads", "--child", "load"],
                              cwd=ROOT, env=_env(), start_new_session=True) for _ in range(count)]
    COMPETITORS[:] = [p.pid for p in procs]
    time.sleep(2.0)                               # let them start and load their BLAS
    try:
        yield
    finally:
        for p in procs:
            p.kill()                              # our own children, by their pid
            p.wait()
        COMPETITORS.clear()


def describe_machine():
    import numpy
    import threadpoolctl

    from scratchrnn.core.threads import cores
    from scratchrnn.engines.blas_kernel import describe
    model = "?"
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as f:
            model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "?")
    top = ""
    with contextlib.suppress(Exception):
        top = subprocess.run(["ps", "-eo", "pcpu,comm", "--sort=-pcpu"], capture_output=True,
                             text=True, timeout=10).stdout.splitlines()[:8]
    autogroup = None
    with contextlib.suppress(OSError):
        autogroup = Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip() == "1"
    return {"cpu": model, "cores": cores(), "os_cpu_count": os.cpu_count(), "sched_autogroup": autogroup,
            "python": platform.python_version(), "numpy": numpy.__version__,
            "blas": describe(), "threadpoolctl": threadpoolctl.__version__,
            "platform": platform.platform(), "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
            "loadavg_at_start": os.getloadavg(), "top_processes_at_start": top}


def measure(rounds, train_steps, onepage_steps, checkpoint, log):
    records = []
    for condition, count in (("quiet", 0), ("loaded", 2)):
        with competitors(count):
            for r in range(rounds):
                order = (1, 2) if r % 2 == 0 else (2, 1)
                for n in order:
                    res = run_child(["gemm"], _env(blas_threads=n))
                    records.append({"part": "gemm", "condition": condition, "round": r,
                                    "threads": n, **res})
                    log(f"{condition} round {r} gemm threads={n} ({res['wall_s']:.1f} s, "
                        f"others {res['others_cores'] or 0:.2f} cores)")
                policies = ("old", "new") if r % 2 == 0 else ("new", "old")
                for workload, args in (("train", ["train", str(train_steps)]),
                                       ("eval", ["eval", checkpoint]),
                                       ("onepage", ["onepage", str(onepage_steps)])):
                    for policy in policies:
                        res = run_child(args, _env(policy))
                        records.append({"part": "workload", "workload": workload,
                                        "condition": condition, "policy": policy, "round": r, **res})
                        value = (f"{res['chars_per_s']:,.0f} chars/s" if workload == "train"
                                 else f"{res['seconds']:.2f} s")
                        log(f"{condition} round {r} {workload:7s} {policy}: {value}  (load "
                            f"{res['loadavg_before']:.2f}, others {res['others_cores'] or 0:.2f} cores)")
    return records


# ------------------------------------------------------------------ tables
def _spread(values, fmt):
    med = statistics.median(values)
    return f"{fmt(med)} ({fmt(min(values))}–{fmt(max(values))})"


def gemm_table(records):
    lines = ["| GEMM | shape (m, k) @ (k, n) | quiet 1 thread µs | quiet 2 threads µs "
             "| 2-thread speed-up quiet | loaded 1 thread µs | loaded 2 threads µs "
             "| 2-thread speed-up loaded |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    gemm = [r for r in records if r["part"] == "gemm"]
    for i, (what, m, k, n) in enumerate(GEMM_SHAPES):
        cells = []
        for condition in ("quiet", "loaded"):
            med = {}
            for th in (1, 2):
                vals = [r["rows"][i]["median_s"] for r in gemm if r["condition"] == condition and r["threads"] == th]
                med[th] = statistics.median(vals) if vals else float("nan")
            cells += [f"{med[1] * 1e6:,.0f}", f"{med[2] * 1e6:,.0f}", f"{med[1] / med[2]:.2f}×"]
        lines.append(f"| {what} | ({m}, {k}) @ ({k}, {n}) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def workload_table(records):
    rows = [r for r in records if r["part"] == "workload"]
    lines = ["| workload | policy | quiet | loaded | loaded / quiet | others' CPU quiet / loaded (cores) |",
             "|---|---|---:|---:|---:|---:|"]
    summary = {}
    for workload in ("train", "eval", "onepage"):
        key = "chars_per_s" if workload == "train" else "seconds"
        fmt = (lambda v: f"{v:,.0f} chars/s") if workload == "train" else (lambda v: f"{v:.2f} s")
        for policy in ("old", "new"):
            got = {c: [r[key] for r in rows if r["workload"] == workload and r["policy"] == policy
                       and r["condition"] == c] for c in ("quiet", "loaded")}
            others = {c: statistics.median([r["others_cores"] or 0 for r in rows if r["workload"] == workload
                                            and r["policy"] == policy and r["condition"] == c] or [0])
                      for c in ("quiet", "loaded")}
            if not got["quiet"] or not got["loaded"]:
                continue
            q, ld = statistics.median(got["quiet"]), statistics.median(got["loaded"])
            summary[(workload, policy)] = (q, ld)
            name = "old (no limit)" if policy == "old" else "new (policy)"
            lines.append(f"| {workload} | {name} | {_spread(got['quiet'], fmt)} | {_spread(got['loaded'], fmt)} "
                         f"| {ld / q:.2f}× | {others['quiet']:.2f} / {others['loaded']:.2f} |")
    return "\n".join(lines), summary


def targets(summary):
    """The issue's targets, each with whether it held."""
    out = []
    if ("train", "new") in summary:
        q, ld = summary[("train", "new")]
        out.append(("training under load >= 0.4x its quiet speed (new policy)", ld / q, ld / q >= 0.4))
    if ("eval", "new") in summary:
        q, ld = summary[("eval", "new")]
        out.append(("eval under load <= 3x its quiet time (new policy)", ld / q, ld / q <= 3.0))
    for workload, better in (("train", "higher"), ("eval", "lower"), ("onepage", "lower")):
        if (workload, "new") in summary and (workload, "old") in summary:
            new, old = summary[(workload, "new")][0], summary[(workload, "old")][0]
            ratio = new / old
            ok = ratio >= 0.95 if better == "higher" else ratio <= 1.05
            out.append((f"{workload} quiet, new vs old ({'speed' if better == 'higher' else 'time'}; "
                        f"no slower = {'>= 0.95' if better == 'higher' else '<= 1.05'})", ratio, ok))
    return out


def render_markdown(data, note=""):
    """threads.md from the JSON: the machine, both tables, the targets, and the note."""
    m = data["machine"]
    records = data["records"]
    gemms = gemm_table(records)
    work, summary = workload_table(records)
    checks = targets(summary)
    others = [r["others_cores"] or 0 for r in records]
    loads = [r["loadavg_before"] for r in records]
    head = (f"# BLAS threads: measured\n\n`python -m benchmarks.threads --rounds {data['rounds']} "
            f"--train-steps {data['train_steps']} --onepage-steps {data['onepage_steps']}` on "
            f"{m['date_utc']} UTC. Machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}, "
            f"NumPy {m['numpy']} ({m['blas']}), threadpoolctl {m['threadpoolctl']}, {m['platform']}.\n\n"
            f"**What the machine was doing.** It was shared: other processes (not this benchmark, not "
            f"its two competitors) kept {statistics.median(others):.2f} cores busy in the median "
            f"measurement ({min(others):.2f}–{max(others):.2f}), with a load average of "
            f"{min(loads):.1f}–{max(loads):.1f} on {m['cores']} cores. So \"quiet\" below means "
            f"*without the two competitors*, not idle. \"loaded\" adds two processes running "
            f"{data['competitors']['matrix']}×{data['competitors']['matrix']} float32 NumPy matrix "
            f"products with NumPy's default threads, each in a session of its own (as in another "
            f"terminal; the scheduler's autogroups were "
            f"{'on' if m.get('sched_autogroup') else 'off'}). Each measurement ran in its own process, "
            f"old and new alternating, {data['rounds']} rounds; medians with (min–max). The "
            f"per-measurement load is in `threads.json`.\n")
    parts = [head]
    if note:
        parts.append(note.strip() + "\n")
    parts += ["## GEMMs of this package's shapes, float32, 1 vs 2 BLAS threads\n\nMedian of the "
              "per-process medians (5 timings each).\n\n" + gemms + "\n",
              "## Workloads, old policy (no limit) vs new (`scratchrnn.core.threads.POLICY`)\n\n"
              "train: chars/s of the first command's model (2-layer LSTM, H 128, B 32, T 64) over "
              f"{data['train_steps']} steps; eval: seconds of `scratchrnn eval` (loading included) on "
              "its 25,000-character test split; onepage: seconds of `python -m scratchrnn.book.onepage "
              f"--steps {data['onepage_steps']}`.\n\n" + work + "\n",
              "## Targets\n\n" + "\n".join(f"- {t}: **{v:.2f}** — {'held' if ok else 'NOT held'}"
                                             for t, v, ok in checks) + "\n"]
    return "\n".join(parts)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.threads", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="repeats of every measurement (median shown)")
    parser.add_argument("--train-steps", type=int, default=30)
    parser.add_argument("--onepage-steps", type=int, default=60)
    parser.add_argument("--out", default=str(HERE / "results"), help="folder for threads.json and threads.md")
    parser.add_argument("--note", default="", help="what the machine was doing, for the markdown")
    parser.add_argument("--render", metavar="JSON", help="only write threads.md from a threads.json")
    parser.add_argument("--note-file", metavar="MD", help="markdown added after the machine's paragraph")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    note = Path(args.note_file).read_text() if args.note_file else ""
    if args.render:
        data = json.loads(Path(args.render).read_text())
        target = Path(args.render).with_name("threads.md")
        target.write_text(render_markdown(data, note))
        print(target.read_text())
        return 0
    if args.child:
        what, *rest = args.child
        if what == "load":
            child_load()
        result = {"gemm": lambda: child_gemm(), "train": lambda: child_train(int(rest[0])),
                  "eval": lambda: child_eval(rest[0]), "onepage": lambda: child_onepage(int(rest[0]))}[what]()
        print(json.dumps(result), flush=True)
        return 0

    log = lambda msg: print(msg, file=sys.stderr, flush=True)     # noqa: E731
    machine = describe_machine()
    log(f"machine: {machine['cpu']}, {machine['cores']} cores, {machine['blas']}, "
        f"load average {machine['loadavg_at_start'][0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = make_checkpoint(os.path.join(tmp, "run"))
        records = measure(args.rounds, args.train_steps, args.onepage_steps, checkpoint, log)
    gemms = gemm_table(records)
    work, summary = workload_table(records)
    checks = targets(summary)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = {"machine": machine, "rounds": args.rounds, "train_steps": args.train_steps,
            "onepage_steps": args.onepage_steps, "competitors": {"count": 2, "matrix": LOAD_SIZE},
            "note": args.note, "records": records,
            "targets": [{"target": t, "value": v, "held": ok} for t, v, ok in checks]}
    (out / "threads.json").write_text(json.dumps(data, indent=1))
    (out / "threads.md").write_text(render_markdown(data, note))
    text = "\n\n".join([gemms, work, "\n".join(f"- {t}: {v:.2f} — {'held' if ok else 'NOT held'}"
                                                for t, v, ok in checks)])
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
