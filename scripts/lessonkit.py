"""What every lesson in ``scripts/`` shares: its parameters, where its outputs go, its
figures (shown inline in a notebook, saved as PNG), statistics over seeds, and how it ends
(the notebook's questions with the answers this run measured, printed and saved as JSON).

A lesson is a jupytext "percent" file. It runs the same two ways:

* ``python scripts/NAME.py [--quick] [--seeds 3] ...`` from any folder: the command line
  overrides the values of the lesson's ``parameters`` cell;
* opened as a notebook (jupytext) and run in a Jupyter kernel: the ``parameters`` cell is
  the place to change a value (papermill injects its values right after it); the kernel's
  own command line is never read.

Outputs go, by default, to a fresh numbered folder ``lessons-out/NAME/run-N/`` under the
current directory, so a re-run never replaces an earlier one. ``--out DIR`` writes into DIR
instead; if DIR already holds this lesson's outputs the run stops before any work unless
``--replace`` is given (that is how the committed ``docs/lessons/`` outputs are regenerated:
``python scripts/NAME.py --out docs/lessons --replace``).

Bad values get one sentence and exit status 2 on the command line, a ``ConfigError`` in a
notebook.
"""
from __future__ import annotations

import argparse
import builtins
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # small matrices and a shared machine:
os.environ.setdefault("OMP_NUM_THREADS", "1")       # one BLAS thread; CPU seconds = compute used

try:                                                # a checkout that is not installed
    import scratchrnn  # noqa: F401
except ImportError:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from scratchrnn.cli import UsageParser  # noqa: E402
from scratchrnn.core.backend import BACKEND_NAMES, get_backend  # noqa: E402
from scratchrnn.core.errors import ConfigError, ScratchRNNError  # noqa: E402
from scratchrnn.core.validation import finite_float, int_at_least  # noqa: E402

OUT_FOLDER = "lessons-out"


def in_kernel() -> bool:
    """True inside a Jupyter kernel (an ipykernel shell), where the command line is the
    kernel's own. A terminal IPython running ``%run NAME.py --quick`` is not one."""
    if not hasattr(builtins, "__IPYTHON__") or "IPython" not in sys.modules:
        return False
    shell = sys.modules["IPython"].get_ipython()
    return shell is not None and type(shell).__module__.startswith("ipykernel")


# ---------------------------------------------------------------- parameters
class Param:
    """One parameter of a lesson: its kind ("int", "float", "bool", "str"), its value in a
    full run and with ``quick`` (None in the parameters cell means "this default"), the
    lowest value it may take, and one line of help."""

    def __init__(self, kind, full=None, quick=None, low=1, help="", choices=None):
        self.kind, self.full, self.low, self.help, self.choices = kind, full, low, help, choices
        self.quick = full if quick is None else quick

    def check(self, flag, value):
        if self.kind == "int":
            return int_at_least(flag, value, self.low)
        if self.kind == "float":
            value = finite_float(flag, value)
            if not value >= self.low or (self.low == 0 and value == 0):
                raise ConfigError(f"{flag} must be a number > {self.low:g}, got {value!r}.")
            return value
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise ConfigError(f"{flag} must be True or False, got {value!r}.")
            return value
        if not isinstance(value, str):
            raise ConfigError(f"{flag} must be text, got {value!r}.")
        if self.choices and value not in self.choices:
            raise ConfigError(f"{flag} must be one of {', '.join(self.choices)}, got {value!r}.")
        return value


COMMON = {
    "quick": Param("bool", False, help="tiny sizes: the whole lesson in seconds"),
    "seeds": Param("int", 3, 2, help="seeds per compared setting (>= 3 in a full run)"),
    "seed": Param("int", 0, low=0, help="the first seed; seeds are seed, seed+1, ..."),
    "backend": Param("str", "numpy", choices=BACKEND_NAMES, help="array backend"),
    "out": Param("str", None, help=f"output folder (default: a new {OUT_FOLDER}/NAME/run-N "
                                   "under the current folder)"),
    "replace": Param("bool", False, help="allow --out to replace this lesson's earlier outputs"),
}


class Settings(dict):
    """The lesson's resolved parameters; read them as attributes (``P.hidden``)."""

    __getattr__ = dict.__getitem__


def _parser(name, doc, spec):
    p = UsageParser(prog=f"{name}.py", description=(doc or "").strip(),
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    for key, par in spec.items():
        flag = "--" + key.replace("_", "-")
        if par.kind == "bool":
            p.add_argument(flag, dest=key, action="store_true", default=None, help=par.help)
            continue
        typ = {"int": int, "float": float, "str": str}[par.kind]
        default = "" if par.full is None else f" (default {par.full}"
        default += "" if par.full is None or par.quick == par.full else f"; {par.quick} with --quick"
        default += ")" if par.full is not None else ""
        p.add_argument(flag, dest=key, type=typ, default=None, choices=par.choices,
                       metavar=key.upper(), help=par.help + default)
    return p


def _fail(name, err):
    """Script: one sentence on stderr, exit 2. Kernel: the error itself."""
    if in_kernel():
        raise err
    print(f"{name}.py: error: {err}", file=sys.stderr)
    raise SystemExit(2)


def start(name, namespace, spec, argv=None):
    """Resolve the lesson's parameters and open its output folder; returns a ``Lesson``.

    namespace: the notebook's globals (the parameters cell's variables live there).
    spec: name -> Param for the lesson's own parameters (the common ones are added).
    argv: the command line (default ``sys.argv[1:]``), read only when the lesson runs as
    a script, never inside a kernel.
    """
    spec = {**COMMON, **spec}
    values = {k: namespace.get(k) for k in spec}
    as_script = namespace.get("__name__") == "__main__" and not in_kernel()
    if as_script:
        given = vars(_parser(name, namespace.get("__doc__"), spec).parse_args(argv))
        values.update({k: v for k, v in given.items() if v is not None})
    flags = {k: ("--" + k.replace("_", "-")) if as_script else k for k in spec}
    try:
        quick = spec["quick"].check(flags["quick"], bool(values["quick"]))
        resolved = Settings(quick=quick)
        for key, par in spec.items():
            v = values[key]
            if v is None:
                v = par.quick if quick else par.full
            resolved[key] = v if v is None and key == "out" else par.check(flags[key], v)
        if not quick and resolved.seeds < 3:
            raise ConfigError(f"{flags['seeds']} must be at least 3 in a full run (a finding "
                              "needs a spread), got {resolved.seeds}.")
        backend = get_backend(resolved.backend)
        out = output_folder(name, resolved.out, resolved.replace, flags["out"])
    except (ScratchRNNError, OSError) as err:
        _fail(name, err)
    return Lesson(name, resolved, backend, out, as_script)


def output_folder(name, out, replace, flag="--out"):
    """The folder this run writes to (created). None: a new ``lessons-out/NAME/run-N`` under
    the current folder. A folder holding this lesson's outputs is refused unless replace."""
    if out is None:
        base = Path.cwd() / OUT_FOLDER / name
        base.mkdir(parents=True, exist_ok=True)
        n = 1 + max((int(p.name[4:]) for p in base.glob("run-*") if p.name[4:].isdigit()),
                    default=0)
        while True:
            folder = base / f"run-{n}"
            try:
                folder.mkdir()
                return folder
            except FileExistsError:                  # a run started at the same moment
                n += 1
    if not out.strip():
        raise ConfigError(f"{flag} must name a folder, got an empty string.")
    folder = Path(out).expanduser()
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{flag} {out!r} is a file, not a folder; name a folder for the "
                          "lesson's figures.")
    earlier = sorted(p.name for p in folder.glob(f"{name}*")) if folder.is_dir() else []
    if earlier and not replace:
        raise ConfigError(f"{out!r} already holds this lesson's outputs ({earlier[0]}"
                          f"{' ...' if len(earlier) > 1 else ''}); add --replace to overwrite "
                          "them, or choose another folder.")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"cannot create the folder {out!r}: "
                          f"{err.strerror or err}.") from None
    return folder


# ---------------------------------------------------------------- statistics over seeds
def mean_sd(values):
    """(mean, sample standard deviation) of the finite values; sd 0 for one value."""
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=float)
    if v.size == 0:
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0


def pm(values, digits=3):
    """'mean ± sd' of the values over seeds, e.g. '1.712 ± 0.013'."""
    m, s = mean_sd(values)
    n_bad = sum(1 for x in values if x is None or not math.isfinite(x))
    extra = f" ({n_bad} of {len(values)} seeds without a finite value)" if n_bad else ""
    if math.isfinite(m) and (abs(m) >= 1e4 or 0 < abs(m) < 10 ** -digits):
        return f"{m:.3g} ± {s:.2g}{extra}"
    return f"{m:.{digits}f} ± {s:.{digits}f}{extra}"


def compare(better, worse, lower_is_better=True):
    """Did ``better`` beat ``worse``, seed by seed (paired: the same seeds)?

    Returns (held, sentence): held when the mean difference favours ``better`` and every
    seed agrees; the sentence gives the mean paired difference ± its sd and the seed count.
    """
    a, b = np.asarray(better, dtype=float), np.asarray(worse, dtype=float)
    diff = (b - a) if lower_is_better else (a - b)          # > 0: "better" is better
    diff = np.where(np.isnan(diff), -np.inf, diff)
    wins = int(np.sum(diff > 0))
    finite = diff[np.isfinite(diff)]
    m, s = mean_sd(finite) if finite.size else (float("nan"), float("nan"))
    held = bool(wins == diff.size and diff.size > 0)
    sentence = (f"ahead in {wins} of {diff.size} seeds, by {m:.3g} ± {s:.3g} on average"
                if finite.size else f"ahead in {wins} of {diff.size} seeds")
    return held, sentence


def verdict(held):
    """The words an answer uses for a finding that held or did not."""
    return "the expected finding held" if held else "the expected finding did NOT hold"


# ---------------------------------------------------------------- the run
class Lesson:
    """One run of a lesson: its settings ``P``, backend, output folder, answers, figures."""

    def __init__(self, name, P, backend, out, as_script):
        self.name, self.P, self.backend, self.out, self.as_script = name, P, backend, out, as_script
        self.rows, self.files = [], []
        self.extra = {}
        self.t0, self.c0 = time.perf_counter(), time.process_time()
        print(f"{name}: outputs go to {out}" + (" (quick mode)" if P.quick else ""))

    @property
    def seeds(self):
        """The seeds of this run: seed, seed + 1, ..., seed + seeds - 1."""
        return list(range(self.P.seed, self.P.seed + self.P.seeds))

    def path(self, suffix):
        """The path of an output file: ``OUT/NAME_suffix`` (suffix with its extension)."""
        return self.out / f"{self.name}_{suffix}"

    def figure(self, fig, suffix):
        """Save a matplotlib Figure as ``NAME_suffix.png``; show it inline in a notebook."""
        path = self.path(suffix if suffix.endswith(".png") else suffix + ".png")
        fig.savefig(path, format="png", dpi=100)
        self.files.append(path.name)
        if in_kernel():
            from IPython.display import Image, display
            display(Image(filename=str(path)))
        print(f"figure: {path}")
        return path

    def written(self, path):
        """Record a PNG a library function wrote (at ``self.path(...)``); show it inline."""
        path = Path(path)
        self.files.append(path.name)
        if in_kernel():
            from IPython.display import Image, display
            display(Image(filename=str(path)))
        print(f"figure: {path}")
        return path

    def text_file(self, suffix, text):
        """Write ``NAME_suffix`` (e.g. a markdown table) beside the figures."""
        path = self.path(suffix)
        path.write_text(text, encoding="utf-8")
        self.files.append(path.name)
        return path

    def answer(self, question, answer, held=None):
        """question: the notebook's question. answer: what this run measured, computed from
        the results. held: whether the expected finding held (True/False), None if none."""
        self.rows.append({"question": question, "answer": answer,
                          "held": None if held is None else bool(held)})

    def render(self):
        lines = ["", "Questions and what this run measured", "-" * 36]
        for k, row in enumerate(self.rows, 1):
            mark = {None: "", True: "  [expected finding held]",
                    False: "  [expected finding did NOT hold]"}[row["held"]]
            lines.append(f"{k}. {row['question']}\n   {row['answer']}{mark}")
        return "\n".join(lines)

    def finish(self):
        """Print the answers and write ``NAME.json``: settings, answers, files, times."""
        record = {
            "lesson": self.name,
            "settings": {k: v for k, v in self.P.items() if k not in ("out", "replace")},
            "answers": self.rows,
            "files": list(dict.fromkeys(self.files)),
            "wall_seconds": round(time.perf_counter() - self.t0, 1),
            "cpu_seconds": round(time.process_time() - self.c0, 1),
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                        "numpy": np.__version__, "backend": self.backend.name,
                        "load_average": [round(x, 2) for x in os.getloadavg()]
                        if hasattr(os, "getloadavg") else None},
            "finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            **self.extra,
        }
        path = self.out / f"{self.name}.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(tmp, path)
        print(self.render())
        print(f"\n{self.name}: {record['wall_seconds']:.0f} s wall, "
              f"{record['cpu_seconds']:.0f} CPU s; answers in {path}")
        return record

    def run(self, main):
        """Run ``main(lesson)`` and finish; a user-caused error is one sentence and exit 2 on
        the command line (a normal exception in a notebook)."""
        try:
            main(self)
        except (ScratchRNNError, OSError) as err:
            _fail(self.name, err)
        except KeyboardInterrupt:
            if in_kernel():
                raise
            print(f"{self.name}.py: interrupted.", file=sys.stderr)
            raise SystemExit(130) from None
        return self.finish()


def new_figure(width, height):
    """A matplotlib Figure with its own Agg canvas (no pyplot state, no display needed)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def band(ax, x, runs, label, color=None, **kw):
    """Mean over seeds as a line and ± one sd as a shaded band; runs (seeds, len(x))."""
    runs = np.asarray(runs, dtype=float)
    m = np.nanmean(runs, axis=0)
    s = np.nanstd(runs, axis=0, ddof=1) if runs.shape[0] > 1 else np.zeros_like(m)
    line, = ax.plot(x, m, label=f"{label} (mean ± sd, {runs.shape[0]} seeds)", color=color, **kw)
    ax.fill_between(x, m - s, m + s, color=line.get_color(), alpha=0.2, lw=0)
    return line
