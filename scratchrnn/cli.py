"""The ``scratchrnn`` command. Each subcommand lives in ``scratchrnn/commands/<name>.py``
with ``add_parser(subparsers)`` (which sets ``func``) and ``run(args) -> exit code``.

Errors a user can cause (``ScratchRNNError``: bad files, impossible settings, no GPU)
print one sentence to stderr and exit with status 2, with no traceback.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from .backend import BackendUnavailable
from .errors import ScratchRNNError

COMMANDS = ("train", "sample", "eval", "gradcheck", "analyze", "grid")


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="scratchrnn",
                     description="Recurrent networks from scratch: train, sample, evaluate, "
                                 "check gradients and look inside.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f".commands.{name}", __package__).add_parser(sub)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ScratchRNNError, BackendUnavailable) as err:
        print(f"scratchrnn {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"scratchrnn {args.command}: interrupted.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
