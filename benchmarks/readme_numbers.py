"""The measured numbers the README quotes, measured here and committed with the machine.

    python -m benchmarks.readme_numbers [--rounds 3] [--out benchmarks/results]

- ``scratchrnn analyze CKPT``: seconds for the report of the first command's model (2-layer
  LSTM, H 128, on the stdlib corpus; the analysis reads the held-out text, so its time does not
  depend on how long the model trained: the checkpoint here trained 20 steps);
- ``python -m scratchrnn.book.onepage`` with its defaults (300 steps): seconds;
- the number of tests ``python -m pytest --collect-only`` collects.

Each command runs in its own process, ``--rounds`` times (median and range); beside each
the JSON records the load average and the CPU that other processes used, in cores.
Writes ``readme_numbers.json`` and prints a table.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["MPLBACKEND"] = "Agg"
    return env


def timed(cmd):
    """Run ``cmd`` (a list) from the repository root; its wall time and the machine's other load."""
    from benchmarks.running import _cpu_jiffies
    hz = os.sysconf("SC_CLK_TCK")
    busy0, load0, t0 = _cpu_jiffies(), os.getloadavg()[0], time.perf_counter()
    before = os.times()
    proc = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = os.times()
    busy1 = _cpu_jiffies()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    own = (after.children_user + after.children_system) - (before.children_user + before.children_system)
    others = max(0.0, ((busy1[0] - busy0[0]) / hz - own) / wall) if busy0 and busy1 else None
    return {"seconds": wall, "cpu_s": own, "loadavg_before": load0, "others_cores": others,
            "stdout_tail": proc.stdout[-400:]}


def make_checkpoint(out_dir):
    from scratchrnn.lm.run import TrainConfig, Trainer
    cfg = TrainConfig(max_steps=20, max_minutes=None, eval_every=20, eval_tokens=5000,
                      progress=False, out_dir=out_dir)
    return Trainer(cfg).run().last_path


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.readme_numbers",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default=str(HERE / "results"))
    args = parser.parse_args(argv)
    from benchmarks.threads import describe_machine
    machine = describe_machine()
    py = sys.executable
    results = {"analyze": [], "onepage": []}
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = make_checkpoint(os.path.join(tmp, "run"))
        for r in range(args.rounds):
            results["analyze"].append(timed([py, "-m", "scratchrnn.cli", "analyze", ckpt,
                                             "--out", os.path.join(tmp, f"report{r}")]))
            results["onepage"].append(timed([py, "-m", "scratchrnn.book.onepage"]))
            for k in results:
                print(f"round {r} {k}: {results[k][-1]['seconds']:.1f} s "
                      f"(others {results[k][-1]['others_cores'] or 0:.2f} cores)", file=sys.stderr)
    collect = subprocess.run([py, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
                             cwd=ROOT, env=_env(), capture_output=True, text=True)
    found = re.search(r"(\d+) tests? collected", collect.stdout)
    tests = int(found.group(1)) if found else None
    summary = {k: {"median_s": statistics.median(v["seconds"] for v in runs),
                   "min_s": min(v["seconds"] for v in runs), "max_s": max(v["seconds"] for v in runs),
                   "others_cores_median": statistics.median((v["others_cores"] or 0) for v in runs)}
               for k, runs in results.items()}
    data = {"machine": machine, "rounds": args.rounds, "runs": results, "summary": summary,
            "tests_collected": tests}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "readme_numbers.json").write_text(json.dumps(data, indent=1))
    for k, s in summary.items():
        print(f"{k}: median {s['median_s']:.1f} s ({s['min_s']:.1f}–{s['max_s']:.1f}), other "
              f"processes using {s['others_cores_median']:.2f} cores")
    print(f"tests collected: {tests}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
