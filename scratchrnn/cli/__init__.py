"""The ``scratchrnn`` command. Each subcommand lives in ``scratchrnn/cli/<name>.py``
with ``add_parser(subparsers)`` (which sets ``func``) and ``run(args) -> exit code``.

Errors a user can cause print one sentence to stderr and exit with status 2, with no
traceback: every ``ScratchRNNError`` (bad files, impossible settings, no GPU), and every
``OSError`` (a full disk, an unwritable path, a closed pipe or a full device on stdout).
The output is flushed inside that net, so a failing stdout is reported like any other.

Every subcommand takes ``--threads N``: the BLAS threads it computes with (default: the
policy of ``scratchrnn.core.threads``, one thread; ``$SCRATCHRNN_THREADS`` overrides the
default; 0 = the BLAS library's own default). For ``grid`` it is the threads of each worker.
"""
from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import threading

from scratchrnn import __version__
from scratchrnn.core import threads
from scratchrnn.core.backend import BACKEND_NAMES, default_backend_name
from scratchrnn.core.errors import ConfigError, ScratchRNNError

COMMANDS = ("train", "sample", "eval", "gradcheck", "analyze", "grid", "exercise")


class UsageParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit status 2 (the lesson
    scripts' command line uses it too)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message.rstrip('.')}.\n")


def build_parser() -> argparse.ArgumentParser:
    parser = UsageParser(prog="scratchrnn",
                         description="Recurrent networks from scratch: train, sample, evaluate, "
                                     "check gradients and look inside.")
    parser.add_argument("--version", action="version", version=f"scratchrnn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=UsageParser)
    sub.required = True
    for name in COMMANDS:
        command = importlib.import_module(f"scratchrnn.cli.{name}").add_parser(sub)
        add_threads_flag(command, name)
    return parser


def add_threads_flag(parser, name):
    """``--threads N`` on one subcommand (see the module doc)."""
    what = ("BLAS threads of each grid worker (default 1)" if name == "grid" else
            f"BLAS threads to compute with (default {threads.POLICY.get(name, 1)}, the measured "
            f"policy; ${threads.ENV} sets another default; 0 = the BLAS library's own, one per core)")
    parser.add_argument("--threads", type=int, default=None, metavar="N", help=what)


def check_environment():
    """ConfigError for a ``SCRATCHRNN_BACKEND`` that names no backend, before any work."""
    name = default_backend_name()
    if name not in BACKEND_NAMES:
        raise ConfigError(f"SCRATCHRNN_BACKEND is {name!r}; set it to one of "
                          f"{', '.join(BACKEND_NAMES)}, or unset it.")


def os_error_sentence(err: OSError) -> str:
    """One sentence for an OSError: what failed, on which path when it has one."""
    reason = err.strerror or str(err) or type(err).__name__
    if err.filename is not None:
        return f"Could not use {os.fsdecode(err.filename)!r}: {reason}."
    return f"Could not write the output: {reason}."


def _silence_stdout():
    """Point stdout at /dev/null so the interpreter's last flush cannot fail a second time."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):     # no real file descriptor (captured)
        pass


class Terminated(KeyboardInterrupt):
    """SIGTERM outside a training loop (which saves first and raises its own Interrupted)."""

    def __init__(self, signum):
        super().__init__(f"stopped by {signal.Signals(signum).name}.")
        self.signum = signum


def _terminate(signum, frame):
    raise Terminated(signum)


def _closed_streams():
    """The sentence refusing to start when stdout was closed (``>&-``): Python then has no
    sys.stdout and the first print would be a traceback. The closed descriptors are filled
    with /dev/null first, so no file this process opens takes their number. A closed stderr
    alone is only silenced (it carries messages and progress, not results)."""
    closed_out = sys.stdout is None
    for fd, name in ((1, "stdout"), (2, "stderr")):
        if getattr(sys, name) is None:
            try:
                devnull = os.open(os.devnull, os.O_WRONLY)
                if devnull != fd:
                    os.dup2(devnull, fd)
                    os.close(devnull)
                setattr(sys, name, open(fd, "w", encoding="utf-8", closefd=False))
            except OSError:
                pass
    if closed_out:
        return ("standard output is closed (the command was started with >&-); give it "
                "somewhere to write, e.g. > out.txt or > /dev/null.")
    return None


def main(argv=None) -> int:
    closed = _closed_streams()
    args = build_parser().parse_args(argv)
    if closed is not None:
        print(f"scratchrnn {args.command}: error: {closed}", file=sys.stderr)
        return 2
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if in_main_thread else None
    try:
        return _run(args)
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)


def _run(args) -> int:
    prefix = f"scratchrnn {args.command}: error:"
    try:
        check_environment()
        with threads.limit(args.command, getattr(args, "threads", None)):
            code = int(args.func(args) or 0)
        sys.stdout.flush()
        return code
    except ScratchRNNError as err:
        message = str(err)
    except OSError as err:
        if err.filename is None:
            _silence_stdout()
        message = os_error_sentence(err)
    except MemoryError:
        message = "Ran out of memory; choose smaller sizes (--rnn-size, --batch-size, ...)."
    except KeyboardInterrupt as err:       # a run stopped by SIGINT/SIGTERM says where it saved
        print(f"scratchrnn {args.command}: {str(err) or 'interrupted.'}", file=sys.stderr)
        return 128 + getattr(err, "signum", signal.SIGINT)
    print(f"{prefix} {' '.join(message.split())}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
