"""The benchmark driver: ``python -m benchmarks [--quick] [...]`` (``--help`` lists options).

For every case (cell x size) it alternates the implementations round by round,
each in its own worker process (``worker.py``), and reports medians with min-max:
forward, backward, fwd+bwd and a full training step (fwd + bwd + SGD update),
tokens/s, achieved GFLOP/s against a GEMM peak measured on the same device, peak
memory against the cells' documented cache formula, and ratios to PyTorch.

Writes a markdown table on stdout and to ``<out>/RESULTS.md``, the JSON record
``<out>/<tag>.json`` (machine, versions, date, every round) and the log-log
scaling plots ``<out>/scaling_<T|B|H>.png`` with the fitted exponent per curve.

This file reads the options and puts the parts together: ``running.py`` (workers, rounds,
other load), ``measuring.py`` (cases, FLOPs, derived numbers, targets) and ``rendering.py``
(tables, plots, ``--from-json``).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from pathlib import Path

from .impls import IMPLS
from .measuring import (
    CELLS,
    GRID,
    QUICK_GRID,
    QUICK_SWEEPS,
    SWEEP_BASE,
    SWEEPS,
    enrich,
    evaluate_targets,
    fit_exponent,
    size_name,
)
from .rendering import rerender, write_tables_and_plots
from .running import HERE, Worker, gpu_info, machine_info, run_case, set_autogroup_nice, versions

DEFAULT_IMPLS = ("scratch-numpy", "scratch-plain", "scratch-cupy", "torch-cpu", "torch-cuda", "naive")
SWEEP_IMPLS = ("scratch-numpy", "torch-cpu", "scratch-cupy", "torch-cuda")


def parse_args(argv):
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes, no waiting: a smoke run in seconds")
    ap.add_argument("--cells", default=",".join(CELLS), help="comma list of rnn,gru,lstm")
    ap.add_argument("--impls", default=",".join(DEFAULT_IMPLS),
                    help=f"comma list from {','.join(IMPLS)} (unavailable ones are reported and skipped)")
    ap.add_argument("--sizes", default=None,
                    help="grid sizes 'T,B,I,H;T,B,I,H;...' (default: the five of docs/performance.md)")
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
    ap.add_argument("--tf32", choices=("off", "on"), default="off",
                    help="float32 GEMMs on a GPU's tensor cores in TF32, on both sides alike "
                         "(CUPY_TF32 for scratch-cupy; torch's matmul and cuDNN allow_tf32 for "
                         "torch-cuda); default off: strict float32 on both")
    ap.add_argument("--no-breakdown", action="store_true", help="skip the per-phase breakdown")
    ap.add_argument("--out", default=str(HERE / "results"), help="output folder")
    ap.add_argument("--from-json", default=None, metavar="PATH",
                    help="run nothing: recompute targets and rewrite the tables/plots of a saved JSON")
    ap.add_argument("--tag", default=None, help="JSON file name (default: cpu, or gpu when one ran)")
    return ap.parse_args(argv)


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
        autogroup_before = set_autogroup_nice(a.nice, log)
    loadavg_before = os.getloadavg() if hasattr(os, "getloadavg") else None
    log(f"starting workers: {', '.join(impl_names)} ({a.threads} threads each)")
    workers, unavailable = {}, {}
    try:
        for name in impl_names:
            w = Worker(name, a.threads, tf32=a.tf32 == "on")
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
            set_autogroup_nice(None, log, restore=autogroup_before)

    gpu = any(k in workers for k in ("scratch-cupy", "torch-cuda"))
    record = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": "python -m benchmarks " + " ".join(argv),
        "machine": dict(machine_info(), loadavg_before=[round(x, 2) for x in loadavg_before or []],
                        loadavg_after=[round(x, 2) for x in (os.getloadavg()
                                                             if hasattr(os, "getloadavg") else [])]),
        "versions": versions(), "gpu": gpu_info(), "tf32": a.tf32 == "on",
        "threads": a.threads, "rounds": rounds, "niceness": niceness,
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
    md = write_tables_and_plots(record, out, tag)
    print(md)
    log(f"done in {record['wall_s']} s; wrote {out / (tag + '.json')}")
    return record


if __name__ == "__main__":
    main()
