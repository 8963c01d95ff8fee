"""What every lesson script in ``scripts/`` shares: its command line, where its figures go,
and how it ends (the notebook's questions with the answers this run measured).

A lesson is a jupytext "percent" file (``# %%`` cells), so it runs as
``python scripts/NAME.py`` and opens as a notebook in Jupyter with jupytext. Each one
calls ``run_lesson(main, __doc__)``; ``main(args, backend, answers)`` does the work.

    --quick            a few seconds (the test suite runs every lesson this way)
    --backend NAME     numpy | cupy | auto   (default: $SCRATCHRNN_BACKEND, else numpy)
    --out DIR          where figures go (default: docs/lessons beside the scripts)
    --seed N           the first seed

Bad arguments get one sentence and exit status 2, as with the ``scratchrnn`` command.
"""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from scratchrnn.core.backend import get_backend
from scratchrnn.cli import UsageParser
from scratchrnn.core.errors import ScratchRNNError
from scratchrnn.core.validation import int_at_least

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "docs" / "lessons"


def lesson_parser(prog, description):
    """The options every lesson takes; a lesson may add its own before ``run_lesson`` parses."""
    p = UsageParser(prog=prog, description=description,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny sizes: runs in seconds")
    p.add_argument("--backend", choices=("numpy", "cupy", "auto"), default=None,
                   help="array backend (default $SCRATCHRNN_BACKEND, else numpy)")
    p.add_argument("--out", default=str(DEFAULT_OUT), metavar="DIR",
                   help="folder for the figures (default docs/lessons)")
    p.add_argument("--seed", type=int, default=0, help="first random seed (default 0)")
    return p


@dataclass
class Answers:
    """The notebook's questions and what this run measured, printed at the end."""
    rows: list = field(default_factory=list)

    def add(self, question, answer, held=None):
        """question: the notebook's question.  answer: the measured answer, with its numbers.
        held: whether the expected finding held on this run (True/False), or None if none was expected."""
        self.rows.append((question, answer, held))

    def render(self):
        lines = ["", "Questions and what this run measured", "-" * 36]
        for k, (question, answer, held) in enumerate(self.rows, 1):
            mark = "" if held is None else ("  [expected finding held]" if held
                                            else "  [expected finding did NOT hold]")
            lines.append(f"{k}. {question}\n   {answer}{mark}")
        return "\n".join(lines)


def run_lesson(main, description, argv=None, prog=None, parser=None):
    """Parse the lesson's command line, pick the backend, run ``main(args, backend, answers)``,
    print the answers; one sentence and exit 2 for any error a user can cause."""
    prog = prog or os.path.basename(sys.argv[0])
    parser = parser or lesson_parser(prog, description)
    args = parser.parse_args(argv)
    try:
        int_at_least("--seed", args.seed, 0)
        backend = get_backend(args.backend)
        Path(args.out).mkdir(parents=True, exist_ok=True)
        answers = Answers()
        main(args, backend, answers)
    except (ScratchRNNError, OSError) as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted.", file=sys.stderr)
        return 130
    print(answers.render())
    return 0
