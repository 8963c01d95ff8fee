"""``DIR/results.jsonl``: one JSON line per finished (or failed) point, appended atomically.

Each record is written as one whole line by a single ``os.write`` on a file opened with
``O_APPEND`` and then fsync'ed, so a grid killed at any moment leaves only whole lines.
A point run again later (``--retry-failed``) gets another line; the latest line for a
name is the one that counts.
"""
from __future__ import annotations

import errno
import json
import os

from scratchrnn.core.errors import ConfigError
from scratchrnn.grid.files import record_line, record_problem

RESULTS_NAME = "results.jsonl"


def append_record(directory, record):
    """Append ``record`` (a JSON-able dict) as one line to ``directory/results.jsonl``.

    A last line left without its newline (a hand edit) gets one first, so the record is never
    glued onto it; a write that fails (a full disk) is undone by cutting the file back to its
    old length, and the OSError names the file."""
    path = os.path.join(directory, RESULTS_NAME)
    line = record_line(record)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            line = b"\n" + line
        try:
            written = os.write(fd, line)
            if written != len(line):         # only a full disk does this to a regular file
                raise OSError(errno.ENOSPC, f"wrote {written} of {len(line)} bytes")
            os.fsync(fd)
        except OSError as exc:
            try:
                os.ftruncate(fd, size)       # whole lines only: take the part back
            except OSError:
                pass
            raise OSError(exc.errno, exc.strerror or str(exc), path) from None
    finally:
        os.close(fd)


def read_records(directory):
    """The latest record per point name, in the order the names first appear. A line that is
    not a well-formed record (``files.record_problem``) is refused with its number."""
    path = os.path.join(directory, RESULTS_NAME)
    latest = {}
    try:
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line, parse_constant=_no_constant)
                except (ValueError, RecursionError):
                    problem = "it is not JSON"
                else:
                    problem = record_problem(record)
                if problem:
                    raise ConfigError(f"Line {number} of {path!r} is not a grid result ({problem}); "
                                      f"the file was edited or damaged: remove that line, or choose "
                                      f"another --out.")
                latest[record["name"]] = record
    except FileNotFoundError:
        pass
    except UnicodeDecodeError:
        raise ConfigError(f"{path!r} is not UTF-8 text; the file was damaged.") from None
    return latest


def _no_constant(name):
    raise ValueError(f"{name} is not a number JSON allows")
