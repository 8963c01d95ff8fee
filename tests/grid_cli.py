"""Helpers for the grid tests: run ``scratchrnn grid`` in a subprocess and read its folder."""
import json
import os
import subprocess
import sys

# a grid point that trains in about a second: 20,000 characters, T=16, B=4
TINY = ["--corpus", "python-docs", "--max-chars", "20000", "--seq-length", "16", "--batch-size", "4",
        "--eval-every", "10", "--no-progress"]


def env():
    e = dict(os.environ)
    e.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1",
             SCRATCHRNN_BACKEND="numpy", MPLBACKEND="Agg")
    return e


def grid_command(*args):
    return [sys.executable, "-m", "scratchrnn.cli", "grid", *map(str, args)]


def run_grid(*args, cwd, timeout=240):
    return subprocess.run(grid_command(*args), cwd=cwd, env=env(), capture_output=True, text=True,
                          timeout=timeout)


def start_grid(*args, cwd):
    return subprocess.Popen(grid_command(*args), cwd=cwd, env=env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


def results(folder):
    """Every line of results.jsonl, in order."""
    with open(os.path.join(folder, "results.jsonl"), encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def latest(folder):
    return {r["name"]: r for r in results(folder)}


def last_eval_step(run_dir):
    """Step of the newest checkpoint of a point's run (history.json follows last.npz), or -1."""
    try:
        with open(os.path.join(run_dir, "history.json"), encoding="utf-8") as f:
            val = json.load(f)["val"]
    except (OSError, ValueError, KeyError):
        return -1
    return val[-1]["step"] if val else -1


def children(pid):
    """Process ids of the live children of ``pid`` (Linux /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="utf-8") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                found.append(int(entry))
    return found


def is_pool_worker(pid):
    """Whether ``pid`` is a multiprocessing spawn worker (not its resource tracker)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"spawn_main" in f.read()
    except OSError:
        return False
