"""Grade a learner's function: items ✔/✘ with their errors, and a DIAGNOSIS.

    grade = grade_file("rnn_step.py")          # the learner's file, run in the sandbox
    grade = grade_callable(EXERCISES["rnn_step"], my_function)   # in this process (tests)
    print(grade.render()); sys.exit(grade.exit_code)

The items, in order: the function runs on every case; it returns the outputs the exercise
asks for; their shapes and dtypes; the known-answer cases; each output against float64
central differences of the book's forward and against the book itself on the random and
edge cases; the exercise's properties. The diagnosis reads the *pattern* of the results:
an error or a hang first, then wrong shapes, then NaN, then a known mistake whose model
reproduces every output, then the exercise's rules (which outputs or gate blocks are
wrong while the others are right), then a constant factor, then which outputs to re-derive.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import NamedTuple

from scratchrnn.book.gradcheck import rel_error
from scratchrnn.core.backend import CPU
from scratchrnn.core.errors import ScratchRNNError
from scratchrnn.learn.exercises import EXERCISES, by_function
from scratchrnn.learn.sandbox import CaseResult, _flatten, error_line, run_in_sandbox

np = CPU.xp
TOL = 1e-6
MAX_BYTES = 1_000_000        # an exercise file is a few kB
HEADER = re.compile(r"^#\s*scratchrnn exercise:\s*([A-Za-z0-9_\-]+)\s*$", re.MULTILINE)


class UnusableInput(ScratchRNNError):
    """The file cannot be graded at all (exit status 2); the message is one sentence."""


class Item(NamedTuple):
    ok: bool
    text: str


class Grade(NamedTuple):
    exercise: object
    items: list
    diagnosis: list
    notes: list

    @property
    def passed(self):
        return all(i.ok for i in self.items)

    @property
    def exit_code(self):
        return 0 if self.passed else 1

    def render(self, source=""):
        ex = self.exercise
        lines = [f"exercise {ex.number} {ex.name}: {ex.function} ({ex.section})"
                 + (f"\nfile: {source}" if source else "")]
        lines += [f"  {'✔' if i.ok else '✘'} {i.text}" for i in self.items]
        lines += [f"  note: {n}" for n in self.notes]
        failed = sum(not i.ok for i in self.items)
        if failed:
            lines += [f"DIAGNOSIS: {d}" for d in self.diagnosis]
            lines.append(f"{failed} of {len(self.items)} checks failed.")
        else:
            lines.append(f"All {len(self.items)} checks pass.")
        return "\n".join(lines)


# ------------------------------------------------------------------------- running it
def run_in_process(fn, cases):
    """``fn`` on every case, here (tests and notebooks): CaseResults like the sandbox's."""
    results = []
    for case in cases:
        args = [{k: np.array(a) for k, a in v.items()} if isinstance(v, dict)
                else (np.array(v) if isinstance(v, np.ndarray) else v) for v in case.args.values()]
        try:
            out = fn(*args)
        except Exception as err:      # noqa: BLE001 - a wrong implementation may raise anything
            results.append(CaseResult("error", {}, f"it raised {error_line(err, '')}"))
            continue
        flat, problems = {}, []
        _flatten(out, "out", flat, problems)
        if problems:
            results.append(CaseResult("error", {}, "it returned something that is not an array: "
                                      + "; ".join(problems[:3])))
        else:
            results.append(CaseResult("ok", flat))
    return results


def grade_callable(exercise, fn):
    """Grade a Python function directly (no sandbox)."""
    cases = exercise.cases()
    return evaluate(exercise, cases, run_in_process(fn, cases))


def read_exercise_file(path, expected=None):
    """(exercise, source) for a learner's file, or UnusableInput with one sentence: missing,
    a directory, unreadable, no header, unknown exercise, another exercise's file, syntax
    error, no function of that name."""
    p = Path(path)
    if expected is not None and expected not in EXERCISES:
        raise UnusableInput(f"There is no exercise {expected!r}; `scratchrnn exercise list` "
                            f"shows them: {', '.join(EXERCISES)}.")
    if not p.exists():
        raise UnusableInput(f"{path} does not exist; `scratchrnn exercise start NAME` writes one.")
    if p.is_dir():
        raise UnusableInput(f"{path} is a directory; give the .py file of your exercise.")
    if not p.is_file():
        raise UnusableInput(f"{path} is not a regular file; give the .py file of your exercise.")
    if p.stat().st_size > MAX_BYTES:
        raise UnusableInput(f"{path} is {p.stat().st_size:,} bytes, too large for an exercise "
                            f"file (the limit is {MAX_BYTES:,}).")
    try:
        source = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UnusableInput(f"{path} is not a UTF-8 text file; give the .py file of your "
                            f"exercise.") from None
    except OSError as err:
        raise UnusableInput(f"Could not read {path}: {err.strerror or err}.") from None
    match = HEADER.search(source)
    if not match:
        raise UnusableInput(f"{path} names no exercise: it needs the line "
                            f"'# scratchrnn exercise: NAME' (see `scratchrnn exercise list`).")
    name = match.group(1)
    if name not in EXERCISES:
        raise UnusableInput(f"{path} names the exercise {name!r}, which does not exist; "
                            f"see `scratchrnn exercise list`.")
    exercise = EXERCISES[name]
    if expected is not None and expected != name:
        raise UnusableInput(f"{path} is the exercise {name!r}, not {expected!r}.")
    try:
        tree = ast.parse(source, filename=str(path))
    except SyntaxError as err:
        raise UnusableInput(f"{path} has a syntax error on line {err.lineno}: "
                            f"{err.msg}.") from None
    defined = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    defined |= {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets
                if isinstance(t, ast.Name)}
    defined |= {a.asname or a.name for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))
                for a in n.names}
    if exercise.function not in defined:
        others = [by_function(f) for f in sorted(defined) if by_function(f) is not None]
        if others:
            raise UnusableInput(f"{path} defines {others[0].function}, the function of the "
                                f"exercise {others[0].name!r}, but its header names {name!r}.")
        raise UnusableInput(f"{path} defines no function {exercise.function}; the exercise "
                            f"{name!r} asks for it.")
    return exercise, source


def grade_file(path, expected=None, timeout=10.0, memory_mb=2048):
    """Grade a learner's file in the sandbox; UnusableInput when it cannot be graded."""
    exercise, _ = read_exercise_file(path, expected)
    cases = exercise.cases()
    run = run_in_sandbox(path, exercise.function, cases, timeout=timeout, memory_mb=memory_mb)
    if run.load_error:
        raise UnusableInput(f"{path} could not be loaded: {run.load_error}.")
    grade = evaluate(exercise, cases, run.results, timeout=timeout)
    if run.printed:
        first = run.printed_head.strip().splitlines()[:1]
        grade.notes.append(f"your code printed {run.printed:,} characters (not shown)"
                           + (f"; the first line: {first[0][:80]!r}" if first else "") + ".")
    return grade


# -------------------------------------------------------------------------- evaluating
def unpack_tuple(exercise, flat):
    """{output: array} from a flattened tuple, or a sentence saying what came back instead."""
    names = exercise.output_names
    if len(names) == 1:
        value = flat.get("out", flat.get("out.0"))
        return ({names[0]: value}, None) if value is not None else (None, "it returned no array")
    if "out.n" not in flat:
        return None, f"it returned one value; return the tuple ({', '.join(names)})"
    n = int(flat["out.n"])
    if n != len(names):
        return None, f"it returned {n} values; return the {len(names)} of ({', '.join(names)})"
    got = {name: flat.get(f"out.{k}") for k, name in enumerate(names)}
    missing = [name for name, v in got.items() if v is None]
    if missing:
        return None, f"{', '.join(missing)} came back as a tuple or dict, not an array"
    return got, None


class Evidence(NamedTuple):
    """What the diagnosis reads."""
    exercise: object
    usable: list            # [(case, got, ref)] for the cases that returned the right outputs
    wrong: list             # outputs wrong (values) on some case, in output order
    right: list             # outputs right on every case
    bad_shape: dict         # output -> (got shape, expected shape, case)
    nonfinite: dict         # output -> [case labels]

    def blocks(self, name, gates):
        """Per gate block of output ``name`` (columns cut in ``len(gates)``): True where the
        block agrees with the book on every usable case."""
        ok = [True] * len(gates)
        for _, got, ref in self.usable:
            g, r = got[name], ref[name]
            H = r.shape[-1] // len(gates)
            for k in range(len(gates)):
                ok[k] &= rel_error(g[..., k * H:(k + 1) * H], r[..., k * H:(k + 1) * H]) < TOL
        return ok

    def swapped_blocks(self, name, gates):
        """(a, b): gate names whose blocks of ``name`` are exchanged, else None."""
        for j in range(len(gates)):
            for k in range(j + 1, len(gates)):
                if all(_swapped(got[name], ref[name], j, k, len(gates))
                       for _, got, ref in self.usable):
                    return gates[j], gates[k]
        return None

    def equal(self, name, model):
        """True when output ``name`` equals ``model(case)[name]`` on every usable case."""
        return all(_same(got[name], model(case)[name], np.abs(ref[name]).max(initial=0.0))
                   for case, got, ref in self.usable)


def _same(got, want, scale=0.0):
    """Equal to the tolerance, with NaN and inf in the same places; differences below
    1e-13 of ``scale`` (the right answer's size) are rounding (a sum that is 0 in exact
    arithmetic comes out as 1e-17 in two different orders)."""
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        return False
    bad_g, bad_w = ~np.isfinite(got), ~np.isfinite(want)
    if not np.array_equal(bad_g, bad_w):
        return False
    return rel_error(got[~bad_g], want[~bad_w], floor=max(1e-12, 1e-7 * float(scale))) < TOL


def _swapped(g, r, j, k, G):
    H = r.shape[-1] // G
    b = lambda a, i: a[..., i * H:(i + 1) * H]    # noqa: E731
    return (rel_error(b(g, j), b(r, k)) < TOL and rel_error(b(g, k), b(r, j)) < TOL
            and rel_error(b(r, j), b(r, k)) > TOL)


def evaluate(exercise, cases, results, timeout=None):
    """The items and the diagnosis for the results of every case."""
    items, notes, diagnosis = [], [], []
    n = len(cases)
    timeouts = [c for c, r in zip(cases, results) if r.status == "timeout"]
    errors = [(c, r) for c, r in zip(cases, results) if r.status == "error"]
    if timeouts:
        limit = f" ({timeout:g} s for all cases)" if timeout else ""
        items.append(Item(False, f"runs: the time limit{limit} ran out while it ran the case "
                                 f"'{_short(timeouts[0].label)}' (an endless loop?)"))
        diagnosis.append("the function never returned: look for a loop whose condition never "
                         "changes, or a loop over something much larger than T.")
    elif errors:
        c, r = errors[0]
        more = f" (and on {len(errors) - 1} more)" if len(errors) > 1 else ""
        items.append(Item(False, f"runs: {r.message} on the case '{_short(c.label)}'{more}"))
        diagnosis.append(_error_diagnosis(r.message))
    else:
        items.append(Item(True, f"runs on all {n} cases"))

    usable, structure = [], None
    for case, r in zip(cases, results):
        if r.status != "ok":
            continue
        got, problem = (exercise.unpack or (lambda f: unpack_tuple(exercise, f)))(r.outputs)
        if problem:
            structure = structure or problem
            continue
        usable.append((case, got, exercise.reference(case)))
    names = exercise.output_names
    if structure or usable:
        items.append(Item(structure is None, f"returns ({', '.join(names)})"
                          + (f": {structure}" if structure else "")))
        if structure:
            diagnosis.append(f"return exactly ({', '.join(names)}), in that order.")
    if not usable:
        return Grade(exercise, items, diagnosis or ["fix the item above first."], notes)

    # shapes and dtypes
    bad_shape, bad_dtype = {}, {}
    for case, got, ref in usable:
        for name in names:
            g, want = np.asarray(got[name]), np.asarray(ref[name])
            if g.shape != want.shape and name not in bad_shape:
                bad_shape[name] = (g.shape, want.shape, case)
            elif g.dtype != np.float64 and name not in bad_dtype:
                bad_dtype[name] = g.dtype
    shapes_doc = dict(exercise.outputs)
    if bad_shape or bad_dtype:
        parts = [f"{k} has shape {v[0]}, expected {v[1]} = {_symbolic(shapes_doc[k])}"
                 for k, v in bad_shape.items()]
        parts += [f"{k} is {v}, expected float64" for k, v in bad_dtype.items()]
        items.append(Item(False, "shapes and dtypes: " + "; ".join(parts)))
    else:
        items.append(Item(True, "shapes and dtypes: " + ", ".join(
            f"{k} {_symbolic(shapes_doc[k])}" for k in names) + ", float64"))

    comparable = [n_ for n_ in names if n_ not in bad_shape]
    nonfinite = {}
    for case, got, _ in usable:
        for name in comparable:
            if not np.isfinite(np.asarray(got[name], dtype=np.float64)).all():
                nonfinite.setdefault(name, []).append(case.label)

    # the known answers
    for case, got, _ in usable:
        if case.kind != "known":
            continue
        errs = {k: _err(got[k], case.expected[k]) for k in comparable if k in case.expected}
        worst = max(errs, key=errs.get) if errs else None
        problems = [] if worst is None or errs[worst] < TOL else [
            f"{worst} off by {_fmt(errs[worst])}"]
        if bad_shape:
            problems.append(f"{', '.join(bad_shape)} not compared (wrong shape)")
        items.append(Item(not problems, case.label + (": " + "; ".join(problems) if problems
                                                      else "")))

    # each output against finite differences and against the book
    randoms = [(c, g, r) for c, g, r in usable if c.kind in ("random", "edge")]
    fd_case = next((c for c, g, r in randoms if c.kind == "random"), None)
    numeric = exercise.numeric(fd_case) if (exercise.numeric and fd_case) else {}
    fd_got = next((g for c, g, r in randoms if c is fd_case), None)
    wrong, right = [], []
    for name in names:
        if name in bad_shape:
            wrong.append(name)
            continue
        errs = [(_err(g[name], r[name]), c.label) for c, g, r in randoms]
        if not errs:
            continue
        worst, where = max(errs)
        parts, ok = [], worst < TOL
        if name in numeric and fd_got is not None:
            e_fd = _err(fd_got[name], numeric[name])
            ok &= e_fd < TOL
            parts.append(f"finite differences {_fmt(e_fd)}")
        parts.append(f"the book {_fmt(worst)} on {len(errs)} cases"
                     + ("" if worst < TOL else f" (worst: {where})"))
        items.append(Item(ok, f"{name}: " + ", ".join(parts)))
        (right if ok else wrong).append(name)
    if exercise.properties and not bad_shape:
        for case, got, _ in randoms[:1]:
            for label, ok, detail in exercise.properties(case, got):
                items.append(Item(ok, label + (f": {detail}" if detail and not ok else "")))

    if timeouts or errors:         # the values of some cases are missing: diagnose the run only
        return Grade(exercise, items, diagnosis, notes)
    evidence = Evidence(exercise, [(c, g, r) for c, g, r in usable
                                   if all(k not in bad_shape for k in names)],
                        wrong, right, bad_shape, nonfinite)
    if not all(i.ok for i in items):
        diagnosis += diagnose(evidence)
    return Grade(exercise, items, diagnosis, notes)


def _symbolic(doc):
    """'(B, 4H)' from '(B, 4H) dL/da, blocks ...'; 'S' from 'S, after the update'."""
    match = re.match(r"\s*(\([^)]*\)|[A-Z]\b)", doc)
    return match.group(1) if match else doc


def _short(label):
    """A case's name without its explanation: 'known answer', 'random 3 (B=2, ...)'."""
    return label.split(":")[0]


def _err(got, want):
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        return float("inf")
    if not np.isfinite(got).all():
        return float("inf")
    return rel_error(got, want, floor=1e-9)     # an answer of 0 computed as 1e-17 is right


def _fmt(e):
    return "NaN/inf" if e != e or e == float("inf") else f"{e:.1e}"


def _error_diagnosis(message):
    if "ended the Python process" in message:
        return "your code ended the Python process (sys.exit, os._exit, or a crash in a " \
               "library): return the results from the function instead."
    if "NotImplementedError" in message:
        return "the body is still the skeleton's: replace `raise NotImplementedError` with " \
               "your code."
    if "out of memory" in message:
        return "it allocated more memory than the limit: an array far larger than the " \
               "inputs (a (B·H) × (B·H) matrix?)."
    if re.search(r"matmul|aligned|broadcast|shapes? ", message):
        return "a product or a sum has mismatched shapes: write each array's shape beside " \
               "it ((B, H), (I, H), ...) and check which matrix needs a transpose (.T)."
    if "NameError" in message:
        return "a name is used before it is defined: check the spelling against the arguments."
    return "fix the error above first; the line number is in your file."


def diagnose(ev):
    """The diagnosis lines for the evidence (see the module doc for the order)."""
    ex = ev.exercise
    out = []
    for name, (got_shape, want_shape, _) in ev.bad_shape.items():
        hint = ex.shape_hints.get(name, {})
        if tuple(got_shape) == tuple(reversed(want_shape)) and len(want_shape) == 2:
            out.append(hint.get("transposed", f"{name} is transposed: it has shape {got_shape}, "
                                              f"it should be {want_shape} (e.g. x.T @ da, not "
                                              f"da.T @ x)."))
        elif len(got_shape) == len(want_shape) + 1 and tuple(got_shape[1:]) == tuple(want_shape):
            out.append(hint.get("batch", f"{name} keeps the batch axis: sum over axis 0 (every "
                                         f"row of the batch adds to the same parameter)."))
        else:
            out.append(hint.get("other", f"{name} has shape {got_shape} but should have "
                                         f"{want_shape}; check which arrays it is made of."))
    if ev.bad_shape and not ev.usable:
        return out
    for m in ex.mistakes:
        try:
            if ev.usable and all(ev.equal(name, m.model) for name in ex.output_names
                                 if name not in ev.bad_shape):
                return out + [m.message]
        except (ValueError, IndexError, FloatingPointError, ZeroDivisionError, KeyError):
            continue
    if ev.nonfinite and ex.nan_rules:
        message = ex.nan_rules(ev)
        if message:
            return out + [message]
    if ex.rules and not ev.nonfinite:
        message = ex.rules(ev)
        if message:
            return out + [message]
    for name, labels in ev.nonfinite.items():
        out.append(f"{name} contains NaN or inf on the case '{_short(labels[0])}': look for an "
                   f"exp, a log or a division that overflows or divides by zero.")
    if ev.nonfinite:
        return out
    for name in ev.wrong:
        if name in ev.bad_shape:
            continue
        alpha = _factor(ev, name)
        if alpha is not None:
            what = "its sign is flipped" if abs(alpha + 1) < 1e-6 else f"it is {alpha:.4g} " \
                   f"times the right value: a missing or extra constant factor"
            out.append(f"{name} has the right direction but {what}.")
    if not out and ev.wrong:
        wrong = [w for w in ev.wrong if w not in ev.bad_shape]
        rights = f" while {', '.join(ev.right)} {'is' if len(ev.right) == 1 else 'are'} right" \
            if ev.right else ""
        out.append(f"{', '.join(wrong)} {'is' if len(wrong) == 1 else 'are'} wrong{rights}: "
                   f"re-derive {wrong[0]} line by line from {ex.section}.")
    return out


def _factor(ev, name):
    """The constant alpha with got = alpha * right on every case, else None."""
    alphas = []
    for _, got, ref in ev.usable:
        g, r = np.asarray(got[name], dtype=np.float64), np.asarray(ref[name], dtype=np.float64)
        denom = float((r * r).sum())
        if denom == 0:
            return None
        alpha = float((g * r).sum()) / denom
        if rel_error(g, alpha * r) > TOL:
            return None
        alphas.append(alpha)
    if alphas and max(alphas) - min(alphas) <= 1e-6 * max(1.0, abs(alphas[0])):
        return alphas[0]
    return None
