"""``scratchrnn exercise``: learn by doing. Read a derivation, write the function, check it.

    scratchrnn exercise list                       the course, in order
    scratchrnn exercise start NAME [--dir DIR]     write DIR/NAME.py, a skeleton (never overwrites)
    scratchrnn exercise check FILE                 grade it: one line per item, a DIAGNOSIS

``check`` exits 0 when every item passes, 1 when one fails, 2 when the file cannot be used
(missing, a folder, no or an unknown exercise named, another exercise's file, a syntax error,
a file that does not load within the time limit). The learner's code runs in its own process
with a time and a memory limit (``scratchrnn.learn.sandbox``).
"""
from __future__ import annotations

import sys

from scratchrnn.core.validation import positive_float, positive_int
from scratchrnn.learn.exercises import COURSE


def add_parser(subparsers):
    p = subparsers.add_parser(
        "exercise", help="exercises: write a backward pass yourself and have it graded",
        description="Learn by doing: list the exercises, start one (a skeleton file), check "
                    "your file against the book and finite differences, with a diagnosis.")
    sub = p.add_subparsers(dest="action", metavar="ACTION", parser_class=type(p))
    sub.required = True
    sub.add_parser("list", help="the course, in order")
    s = sub.add_parser("start", help="write the skeleton of an exercise (never overwrites)")
    s.add_argument("name", metavar="NAME", help="the exercise, as `exercise list` names it")
    s.add_argument("--dir", default=".", help="folder to write NAME.py into (default: here)")
    c = sub.add_parser("check", help="grade your file")
    c.add_argument("file", metavar="FILE", help="the .py file that `exercise start` wrote")
    c.add_argument("--exercise", default=None, help="refuse a file for another exercise")
    c.add_argument("--timeout", type=float, default=20.0,
                   help="seconds your code may run in all (default 20)")
    c.add_argument("--memory-mb", type=int, default=2048,
                   help="memory limit of your code's process in MB (default 2048)")
    p.set_defaults(func=run)
    return p


def _utf8_stdout():
    try:
        sys.stdout.reconfigure(errors="replace")
    except (AttributeError, ValueError):
        pass


def run(args) -> int:
    _utf8_stdout()
    if args.action == "list":
        width = max(len(ex.name) for ex in COURSE)
        print("The course, in order (start one with: scratchrnn exercise start NAME):")
        for ex in COURSE:
            print(f"  {ex.number}. {ex.name.ljust(width)}  {ex.title}\n"
                  f"     {' ' * width}  read: {ex.section}")
        return 0
    if args.action == "start":
        from scratchrnn.learn.skeleton import start
        path = start(args.name, args.dir)
        print(f"Wrote {path}. Read its docstring, write the function, then run:\n"
              f"    scratchrnn exercise check {path}")
        return 0
    from scratchrnn.learn.grader import grade_file
    timeout = positive_float("--timeout", args.timeout)
    memory = positive_int("--memory-mb", args.memory_mb)
    grade = grade_file(args.file, expected=args.exercise, timeout=timeout, memory_mb=memory)
    print(grade.render(args.file))
    return grade.exit_code
