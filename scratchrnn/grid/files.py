"""What the grid accepts in its folder before it writes anything there.

    check_out_dir(out_dir)         # a usable --out: new, empty, or a grid's own folder
    saved = check_spec(data, path) # grid.json as read: the shape a grid writes, or ConfigError
    problem = record_problem(r)    # None for a well-formed results.jsonl record, else why not
    line = record_line(r)          # one JSON line, non-finite numbers written as null

A folder that is not the grid's own is refused rather than written into: ``results.md`` and
``results.png`` are the grid's names, and a folder of the user's that happens to hold files
of those names (or any other file) is not a grid's folder. Hand-edited files are checked
whole (every line of results.jsonl, every field of grid.json) before anything is merged or
written back, so a refusal leaves the folder exactly as it was.
"""
from __future__ import annotations

import json
import math
import numbers
import os

from scratchrnn.core.errors import ConfigError

# what a grid may have created in its folder before grid.json; a folder holding only these (one
# whose grid was killed that early) is still the grid's own. results.* are not among them: a
# folder of the user's own results.md is refused, not overwritten
BEFORE_GRID_JSON = ("grid.lock", "runs", "logs")
STATUSES = ("ok", "failed", "interrupted")


def check_out_dir(out_dir):
    """ConfigError unless ``out_dir`` can be the grid's folder: a non-empty path whose nearest
    existing ancestor is a directory, and which is new, empty, or a grid's own folder
    (it has grid.json, or only the names a grid writes before it)."""
    if not str(out_dir).strip():
        raise ConfigError("--out is empty; give the grid's folder, e.g. --out grids/docs.")
    path = os.path.abspath(out_dir)
    ancestor = path
    while not os.path.lexists(ancestor):
        ancestor = os.path.dirname(ancestor)
    if ancestor != path and not os.path.isdir(ancestor):
        raise ConfigError(f"Cannot create the grid folder {path!r}: {ancestor!r} is a file, not a "
                          f"directory; choose another --out.")
    if ancestor == path and not os.path.isdir(path):
        raise ConfigError(f"The output path {path!r} is a file, not a directory; choose another --out.")
    if ancestor != path:
        return path
    try:
        entries = os.listdir(path)
    except OSError as exc:
        raise ConfigError(f"Cannot read the grid folder {path!r} ({exc.strerror or exc}).") from None
    if "grid.json" in entries:
        return path
    foreign = sorted(e for e in entries if e not in BEFORE_GRID_JSON
                     and not (e.startswith(".grid.json.") and e.endswith(".tmp")))
    if foreign:
        shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        raise ConfigError(f"The folder {path!r} is not a grid's folder (it holds {shown} and no "
                          f"grid.json); a grid writes results.md, results.png, runs/ and logs/ there, "
                          f"so give it a new or empty folder with --out.")
    return path


def _is_int(value, low):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= low


def _is_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def check_spec(data, path):
    """``data`` (grid.json, parsed) if it has the shape a grid writes, else ConfigError."""
    from scratchrnn.grid.points import CELLS, SHARED_FIELDS

    def bad(what):
        return ConfigError(f"{path!r} is not a grid's settings file ({what}); it was edited or "
                           f"damaged: restore it, or choose another --out.")

    if not isinstance(data, dict):
        raise bad(f"a JSON {type(data).__name__} instead of an object")
    checks = {"cells": lambda v: isinstance(v, str) and v in CELLS,
              "layers": lambda v: _is_int(v, 1), "sizes": lambda v: _is_int(v, 1),
              "seeds": lambda v: _is_int(v, 0)}
    for key, ok in checks.items():
        values = data.get(key)
        if not isinstance(values, list) or not values:
            raise bad(f"{key!r} is not a non-empty list")
        wrong = [v for v in values if not ok(v)]
        if wrong:
            raise bad(f"{key!r} holds {wrong[0]!r}")
    budget = data.get("budget")
    if not isinstance(budget, dict) or set(budget) != {"steps", "minutes"}:
        raise bad("'budget' is not {\"steps\": ..., \"minutes\": ...}")
    steps, minutes = budget["steps"], budget["minutes"]
    if not ((_is_int(steps, 1) and minutes is None) or
            (steps is None and _is_number(minutes) and minutes > 0)):
        raise bad(f"'budget' is {budget!r}, not one positive number of steps or minutes")
    shared = data.get("shared")
    if not isinstance(shared, dict) or not isinstance(shared.get("source"), str):
        raise bad("'shared' is not an object naming the source text")
    unknown = sorted(set(shared) - set(SHARED_FIELDS))
    if unknown:
        raise bad(f"'shared' sets {', '.join(map(repr, unknown))}")
    extra = sorted(set(data) - {"cells", "layers", "sizes", "seeds", "budget", "shared"})
    if extra:
        raise bad(f"unknown key {extra[0]!r}")
    return data


def _split_problem(value):
    if not isinstance(value, dict):
        return "is not an object"
    if not (_is_number(value.get("loss")) and value["loss"] >= 0):
        return "has no finite loss"
    if not _is_number(value.get("bpc")):
        return "has no finite bpc"
    return None


def record_problem(record):
    """None when ``record`` is a well-formed line of results.jsonl, else what is wrong with it
    (a clause). The report and the progress lines read only records that pass."""
    from scratchrnn.grid.points import CELLS, point_name

    if not isinstance(record, dict):
        return f"it is a JSON {type(record).__name__}, not an object"
    name, status = record.get("name"), record.get("status")
    if not isinstance(name, str) or not name:
        return "it has no point name"
    if status not in STATUSES:
        return f"its status is {status!r}, not one of {', '.join(STATUSES)}"
    if "machine" in record and not isinstance(record["machine"], dict):
        return "its 'machine' is not an object"
    if status == "failed":
        return None if isinstance(record.get("reason"), str) else "a failed point without a reason"
    if status == "interrupted":
        return None
    cell, layers, size, seed = (record.get(k) for k in ("cell", "layers", "size", "seed"))
    if not (isinstance(cell, str) and cell in CELLS and _is_int(layers, 1) and _is_int(size, 1)
            and _is_int(seed, 0)):
        return "its cell, layers, size or seed is missing or not valid"
    if name != point_name(cell, layers, size, seed):
        return f"its name {name!r} does not match its cell, layers, size and seed"
    if not _is_int(record.get("params"), 1):
        return "its 'params' is not a positive integer"
    if not _is_int(record.get("steps"), 1):
        return "its 'steps' is not a positive integer"
    for split in ("train", "val", "test"):
        problem = _split_problem(record.get(split))
        if problem:
            return f"its {split!r} {problem}"
    for key in ("train_seconds", "wall_seconds"):
        if key in record and not _is_number(record[key]):
            return f"its {key!r} is not a finite number"
    if "resumed_from_step" in record and not _is_int(record["resumed_from_step"], 0):
        return "its 'resumed_from_step' is not an integer >= 0"
    return None


def _finite(value):
    """``value`` with every NaN/inf float replaced by None (JSON has no such numbers)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def record_line(record):
    """One line of strict JSON (no NaN/Infinity: those become null) ending in a newline, as bytes."""
    return (json.dumps(_finite(record), sort_keys=True, allow_nan=False) + "\n").encode("utf-8")
