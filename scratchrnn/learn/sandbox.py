"""Run a learner's function in a separate process: ``python -m scratchrnn.learn.sandbox JOBDIR``.

The parent (``run_in_sandbox``) writes JOBDIR/job.json (the file, the function, the cases:
their argument names, which are scalars and which are dicts) and JOBDIR/inputs.npz; the child
limits its own address space and CPU time (``resource.setrlimit``), points stdout and stderr
at a counting sink (a learner's prints are counted, the first lines kept, never shown in
bulk), imports the file, calls the function once per case and writes, after each case,
JOBDIR/case<k>.json (ok or the error, in one line) and JOBDIR/case<k>.npz (what it returned,
flattened to named arrays: "out.0", "out.1.W_x", ...). The parent waits at most ``timeout``
seconds, kills the whole process group after that, and reads back whatever was written:
a case without a file did not finish. Nothing is pickled in either direction.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path
from typing import NamedTuple

KEEP_PRINTED = 2000          # characters of the learner's output kept for the report


class CaseResult(NamedTuple):
    """What one call of the learner's function gave."""
    status: str              # "ok", "error", "timeout" (did not finish), "skipped" (after a crash)
    outputs: dict            # flattened name -> NumPy array ("out.0", "out.1.W_x", ...)
    message: str = ""        # the error in one line, for "error"
    printed: int = 0         # characters the call printed


class SandboxRun(NamedTuple):
    """Everything a run gave: per-case results, or why the file could not be used at all."""
    results: list
    load_error: str = ""     # set when the file could not even be imported
    printed: int = 0
    printed_head: str = ""


# --------------------------------------------------------------------------- parent side
def _package_root():
    return str(Path(__file__).resolve().parents[2])


def run_in_sandbox(path, function, cases, timeout=10.0, memory_mb=2048) -> SandboxRun:
    """Call ``function`` of the file ``path`` on every case's ``args`` (an ordered dict of
    NumPy arrays, Python numbers, or dicts of arrays) in a child process."""
    import numpy as np
    job = Path(tempfile.mkdtemp(prefix="scratchrnn-exercise-"))
    try:
        arrays, spec = {}, []
        for k, case in enumerate(cases):
            kinds = {}
            for name, value in case.args.items():
                if isinstance(value, dict):
                    kinds[name] = ["dict", list(value)]
                    for key, a in value.items():
                        arrays[f"{k}.{name}.{key}"] = np.asarray(a)
                else:
                    kinds[name] = ["scalar" if np.ndim(value) == 0 and not isinstance(
                        value, np.ndarray) else "array", type(value).__name__]
                    arrays[f"{k}.{name}"] = np.asarray(value)
            spec.append({"args": list(case.args), "kinds": kinds})
        np.savez(job / "inputs.npz", **arrays)
        (job / "job.json").write_text(json.dumps({
            "file": str(Path(path).resolve()), "function": function, "cases": spec,
            "memory_mb": int(memory_mb), "cpu_s": int(timeout) + 2}))
        paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([_package_root()] + paths),
                   OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
                   PYTHONDONTWRITEBYTECODE="1", PYTHONIOENCODING="utf-8")
        with open(job / "child.log", "wb") as log:
            proc = subprocess.Popen([sys.executable, "-m", "scratchrnn.learn.sandbox", str(job)],
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                                    cwd=str(Path(path).resolve().parent), start_new_session=True)
            killed = False
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                killed = True
            finally:
                if proc.poll() is None:
                    try:
                        os.killpg(proc.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    proc.wait()
        return _collect(job, len(cases), None if killed else proc.returncode, timeout)
    finally:
        shutil.rmtree(job, ignore_errors=True)


def _collect(job, n, returncode, timeout):
    import numpy as np
    status = _read_json(job / "status.json") or {}
    if status.get("load_error"):
        return SandboxRun([], load_error=status["load_error"])
    if not status.get("loaded"):
        if returncode is not None and returncode < 0 and returncode != -signal.SIGKILL:
            why = f"the Python process running it was killed by {signal.Signals(-returncode).name}"
        elif returncode not in (None, -signal.SIGKILL) and returncode != 0:
            why = "the Python process running it stopped before the file was loaded"
        else:
            why = (f"it did not finish loading within {timeout:g} s (is there a loop or a long "
                   f"computation outside the function?)")
        return SandboxRun([], load_error=why)
    results, ended = [], False
    for k in range(n):
        meta = _read_json(job / f"case{k}.json")
        if meta is None and returncode is not None and returncode != 0 and not ended:
            how = (f"killed by {signal.Signals(-returncode).name}" if returncode < 0
                   else f"exit status {returncode}")
            results.append(CaseResult("error", {}, f"it ended the Python process ({how})"))
            ended = True
            continue
        if meta is None:
            results.append(CaseResult("skipped" if ended else "timeout", {}))
            continue
        outputs = {}
        if meta.get("ok") and (job / f"case{k}.npz").exists():
            with np.load(job / f"case{k}.npz", allow_pickle=False) as z:
                outputs = {name: z[name] for name in z.files}
        results.append(CaseResult("ok" if meta.get("ok") else "error", outputs,
                                  meta.get("error", ""), int(meta.get("printed", 0))))
    return SandboxRun(results, printed=int(status.get("printed", 0)),
                      printed_head=str(status.get("printed_head", "")))


def _read_json(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


# ---------------------------------------------------------------------------- child side
class _Sink:
    """A text stream that counts what is written and keeps only the first characters."""

    def __init__(self):
        self.count, self.head = 0, []

    def write(self, s):
        s = str(s)
        kept = sum(len(h) for h in self.head)
        if kept < KEEP_PRINTED:
            self.head.append(s[:KEEP_PRINTED - kept])
        self.count += len(s)
        return len(s)

    def flush(self):
        pass

    def isatty(self):
        return False


def error_line(err, path):
    """'ValueError: shapes (2,3) and (4,4) not aligned (line 12)': the error in one line,
    with the line of the learner's file where it happened."""
    line = None
    for frame in traceback.extract_tb(err.__traceback__):
        if os.path.abspath(frame.filename) == path:
            line = frame.lineno
    if isinstance(err, SyntaxError) and err.lineno:
        line = err.lineno
    text = " ".join(str(err).split())
    text = text if len(text) <= 200 else text[:197] + "..."
    where = f" (line {line})" if line else ""
    return f"{type(err).__name__}{': ' + text if text else ''}{where}"


def _flatten(value, prefix, out, problems):
    import numpy as np
    if isinstance(value, (tuple, list)):
        out[prefix + ".n"] = np.asarray(len(value))
        for i, v in enumerate(value):
            _flatten(v, f"{prefix}.{i}", out, problems)
    elif isinstance(value, dict):
        out[prefix + ".keys"] = np.asarray([str(k) for k in value])
        for k, v in value.items():
            _flatten(v, f"{prefix}.{k}", out, problems)
    elif value is None:
        problems.append(f"{prefix} is None")
    else:
        try:
            from scratchrnn.testing.arrays import to_numpy
            a = np.asarray(to_numpy(value))
        except Exception as err:      # noqa: BLE001 - anything the learner returned
            problems.append(f"{prefix} is a {type(value).__name__}, not an array ({err})")
            return
        if a.dtype.kind not in "biuf":
            problems.append(f"{prefix} is a {type(value).__name__} of {a.dtype}, not numbers")
            return
        out[prefix] = a


def _limit_resources(memory_bytes, cpu_s):
    """Address space, CPU seconds, no core file. Where the platform has no such limit
    (Windows has no ``resource``; macOS refuses RLIMIT_AS), the wall-clock timeout of the
    parent still holds."""
    try:
        import resource
    except ImportError:
        return
    for name, value in (("RLIMIT_AS", (memory_bytes, memory_bytes)),
                        ("RLIMIT_CPU", (cpu_s, cpu_s + 1)), ("RLIMIT_CORE", (0, 0))):
        try:
            resource.setrlimit(getattr(resource, name), value)
        except (AttributeError, ValueError, OSError):
            pass


def _child(jobdir):
    job = json.loads((Path(jobdir) / "job.json").read_text())
    _limit_resources(int(job["memory_mb"]) * 2**20, int(job["cpu_s"]))
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)                 # C-level writes of the learner vanish
    os.dup2(devnull, 2)
    sink = _Sink()
    sys.stdout = sys.stderr = sink
    status_path = Path(jobdir) / "status.json"

    def status(**kw):
        kw.update(printed=sink.count, printed_head="".join(sink.head))
        status_path.write_text(json.dumps(kw))

    import importlib.util

    import numpy as np
    path = job["file"]
    sys.path.insert(0, os.path.dirname(path))
    try:
        spec = importlib.util.spec_from_file_location("learner_exercise", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        fn = getattr(module, job["function"])
        if not callable(fn):
            raise TypeError(f"{job['function']} is not a function")
    except MemoryError:
        status(load_error=f"loading it ran out of memory (limit {job['memory_mb']} MB)")
        return
    except BaseException as err:     # noqa: BLE001 - whatever the file does, one line
        status(load_error=f"importing it raised {error_line(err, path)}")
        return
    status(loaded=True)
    with np.load(Path(jobdir) / "inputs.npz", allow_pickle=False) as z:
        inputs = {name: z[name] for name in z.files}
    for k, case in enumerate(job["cases"]):
        args = []
        for name in case["args"]:
            kind = case["kinds"][name]
            if kind[0] == "dict":
                args.append({key: inputs[f"{k}.{name}.{key}"].copy() for key in kind[1]})
            elif kind[0] == "scalar":
                args.append(int(inputs[f"{k}.{name}"]) if kind[1] == "int"
                            else float(inputs[f"{k}.{name}"]))
            else:
                args.append(inputs[f"{k}.{name}"].copy())
        before = sink.count
        meta, flat = {"ok": True}, {}
        try:
            result = fn(*args)
            problems = []
            _flatten(result, "out", flat, problems)
            if problems:
                meta = {"ok": False, "error": "it returned something that is not an array: "
                        + "; ".join(problems[:3])}
        except MemoryError:
            meta = {"ok": False, "error": f"it ran out of memory (limit {job['memory_mb']} MB)"}
        except RecursionError:
            meta = {"ok": False, "error": "it recursed without end (RecursionError)"}
        except BaseException as err:     # noqa: BLE001 - the learner's code, any error
            meta = {"ok": False, "error": f"it raised {error_line(err, path)}"}
        meta["printed"] = sink.count - before
        if meta["ok"]:
            np.savez(Path(jobdir) / f"case{k}.npz", **flat)
        (Path(jobdir) / f"case{k}.json").write_text(json.dumps(meta))
        status(loaded=True)


if __name__ == "__main__":
    if len(sys.argv) != 2 or not (Path(sys.argv[1]) / "job.json").is_file():
        sys.exit("usage: python -m scratchrnn.learn.sandbox JOBDIR (run by the grader, which "
                 "writes JOBDIR/job.json)")
    _child(sys.argv[1])
