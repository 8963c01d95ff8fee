"""``run_grid``: check the folder, take its lock, run the points that are not done, and keep
``results.jsonl``, ``results.md`` and ``results.png`` up to date as each one finishes.

``DIR`` holds:

    grid.json        the grid's settings (budget, shared training settings, the lists)
    grid.lock        while a grid runs in it (see lock.py)
    results.jsonl    one line per finished or failed point (see results.py)
    results.md/png   the table, the findings and the figure (see report.py)
    runs/<point>/    each point's ordinary run folder: last.npz, the best checkpoint, history
    logs/<point>.log each point's training log

Running the same command again skips the points already done (and, unless asked to retry
them, the failed ones) and resumes the others from their ``last.npz``. A command with
other lists (say, one more size) adds its points to the same folder, as long as the
budget and the shared training settings agree with ``grid.json``; a command whose
settings differ is refused before anything in the folder is touched.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import threading

from scratchrnn.core.errors import ConfigError
from scratchrnn.grid.files import check_out_dir, check_spec
from scratchrnn.grid.lock import GridLock, check_free
from scratchrnn.grid.points import step_cost
from scratchrnn.grid.progress import GridProgress
from scratchrnn.grid.report import findings, verdict, write_report
from scratchrnn.grid.results import append_record, read_records
from scratchrnn.lm.checkpoint import write_atomically

SPEC_NAME = "grid.json"


def run_grid(spec, out_dir, executor, progress=True, retry_failed=False, say=print):
    """Run ``spec`` (a GridSpec) into ``out_dir`` on ``executor`` (LocalPool or DaskCluster,
    not yet entered). Returns the latest record per point of this grid."""
    out_dir = check_out_dir(out_dir)
    saved = _read_spec(out_dir)
    merged = _merge(saved, spec.to_json(), out_dir)
    records = read_records(out_dir)
    check_free(out_dir)
    points = spec.points(out_dir)
    skip = {"ok", "failed"} if not retry_failed else {"ok"}
    todo = [p for p in points if records.get(p.name, {}).get("status") not in skip]
    cost = {p.name: step_cost(p.cell, p.layers, p.size) for p in todo}
    todo.sort(key=lambda p: -cost[p.name])                          # the longest points first
    with executor:
        try:
            os.makedirs(out_dir, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"Cannot create the grid folder {out_dir!r} ({exc.strerror or exc}).") from None
        with GridLock(out_dir):
            spec_bytes = (json.dumps(merged, indent=1) + "\n").encode("utf-8")
            write_atomically(os.path.join(out_dir, SPEC_NAME), lambda f: f.write(spec_bytes))
            done = len(points) - len(todo)
            say(f"scratchrnn grid: {len(points)} points ({_shape(spec)}), {spec.budget.describe()} each, "
                f"on {executor.describe()}; {done} already done, {len(todo)} to run; folder {out_dir}")
            dashboard = getattr(executor, "dashboard", None)
            if dashboard:
                say(f"Dask dashboard: {dashboard}")
            with _StopOnSignal(executor, out_dir) as stop:
                try:
                    _run_points(out_dir, merged, records, todo, executor,
                                GridProgress(len(points), done, cost, progress))
                except GridStopped:
                    pass                    # an executor that cannot stop gently was left at once
                write_report(out_dir, merged, records)
                stop.raise_if_stopped(records, points)
    mine = {p.name: records[p.name] for p in points if p.name in records}
    failed = [r for r in mine.values() if r.get("status") != "ok"]
    say(f"{len(mine) - len(failed)} of {len(points)} points done, {len(failed)} failed; "
        f"table {os.path.join(out_dir, 'results.md')}, figure {os.path.join(out_dir, 'results.png')}")
    for claim, held, not_held in findings(merged, records):
        say(f"  {claim}: {verdict(held, not_held).replace('**', '')}")
    return mine


class GridStopped(KeyboardInterrupt):
    """SIGINT/SIGTERM stopped the grid; what finished is recorded, the rest resumes on a re-run."""

    def __init__(self, message, signum):
        super().__init__(message)
        self.signum = signum


class _StopOnSignal:
    """``with _StopOnSignal(executor, out_dir) as stop:`` -- the first SIGINT/SIGTERM asks the
    executor to stop (``request_stop``: no new points, the running ones save and return), or,
    for an executor that cannot, leaves the loop at once (GridStopped); a second one kills the
    workers, removes the grid's lock and exits at once (status 128 + signal)."""

    def __init__(self, executor, out_dir):
        self.executor, self.out_dir, self.signum, self.previous = executor, out_dir, None, {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        return False

    def _handle(self, signum, frame):
        if self.signum is not None:                      # the second signal: stop now
            kill = getattr(self.executor, "kill", None)
            if kill is not None:
                kill()
            try:
                os.unlink(os.path.join(self.out_dir, "grid.lock"))
            except OSError:
                pass
            try:
                sys.stderr.write(f"scratchrnn grid: stopped at once by a second "
                                 f"{signal.Signals(signum).name}; the points in flight resume from "
                                 f"their last checkpoints on a re-run.\n")
                sys.stderr.flush()
            finally:
                os._exit(128 + signum)
        self.signum = signum
        request = getattr(self.executor, "request_stop", None)
        if request is None:
            raise GridStopped("", signum)
        request()

    def raise_if_stopped(self, records, points):
        if self.signum is None:
            return
        done = sum(1 for p in points if records.get(p.name, {}).get("status") in ("ok", "failed"))
        raise GridStopped(f"stopped by {signal.Signals(self.signum).name}; {done} of {len(points)} points "
                          f"done, the results so far are in {os.path.join(self.out_dir, 'results.md')}; "
                          f"run the same command again to resume the others from their last "
                          f"checkpoints.", self.signum)


def _run_points(out_dir, spec_json, records, todo, executor, progress):
    tasks = [{"name": p.name, "train": p.train, "log": os.path.join(out_dir, "logs", f"{p.name}.log")}
             for p in todo]
    try:
        progress.update(running=0)
        by_name = {p.name: p for p in todo}
        for _task, record in executor.run(tasks):
            point = by_name[record["name"]]        # every record, failed ones too, says what it was
            record = {"cell": point.cell, "layers": point.layers, "size": point.size, "seed": point.seed,
                      "budget": spec_json["budget"], "config": point.train, **record}
            append_record(out_dir, record)
            records[record["name"]] = record
            write_report(out_dir, spec_json, records)
            progress.update(executor.running, record)
    finally:
        progress.close()


def _shape(spec):
    parts = [f"{len(spec.cells)} cells", f"{len(spec.layers)} depths", f"{len(spec.sizes)} sizes",
             f"{len(spec.seeds)} seeds"]
    return " x ".join(p[:-1] if p.startswith("1 ") else p for p in parts)


def _read_spec(out_dir):
    path = os.path.join(out_dir, SPEC_NAME)
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, RecursionError):
        raise ConfigError(f"{path!r} is not a grid's settings file; choose another --out.") from None
    return check_spec(data, path)


def _merge(saved, new, out_dir):
    """The folder's grid after this command: the union of the lists, the settings unchanged."""
    if saved is None:
        return new
    for key in ("budget", "shared"):
        if saved.get(key) != new[key]:
            was, now = saved.get(key) or {}, new[key]
            diff = sorted(k for k in set(was) | set(now) if was.get(k) != now.get(k))
            what = ", ".join(f"{k}={was.get(k)!r} there but {now.get(k)!r} here" for k in diff)
            raise ConfigError(f"The grid in {out_dir!r} was started with other settings ({key}: {what}); "
                              f"use the same settings to resume it or choose another --out.")
    merged = dict(saved)
    for key in ("cells", "layers", "sizes", "seeds"):
        merged[key] = list(dict.fromkeys(saved[key] + new[key]))
    return merged
