"""``DIR/results.jsonl``: one JSON line per finished (or failed) point, appended atomically.

Each record is written as one whole line by a single ``os.write`` on a file opened with
``O_APPEND`` and then fsync'ed, so a grid killed at any moment leaves only whole lines.
A point run again later (``--retry-failed``) gets another line; the latest line for a
name is the one that counts.
"""
from __future__ import annotations

import json
import os

from scratchrnn.core.errors import ConfigError

RESULTS_NAME = "results.jsonl"


def append_record(directory, record):
    """Append ``record`` (a JSON-able dict) as one line to ``directory/results.jsonl``."""
    line = (json.dumps(record, sort_keys=True, allow_nan=True) + "\n").encode("utf-8")
    fd = os.open(os.path.join(directory, RESULTS_NAME), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        written = os.write(fd, line)
        if written != len(line):         # only a full disk does this to a regular file
            raise OSError(f"wrote {written} of {len(line)} bytes")
        os.fsync(fd)
    finally:
        os.close(fd)


def read_records(directory):
    """The latest record per point name, in the order the names first appear."""
    path = os.path.join(directory, RESULTS_NAME)
    latest = {}
    try:
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    latest[record["name"]] = record
                except (ValueError, KeyError, TypeError):
                    raise ConfigError(f"Line {number} of {path!r} is not a grid result; the file "
                                      f"was edited or damaged.") from None
    except FileNotFoundError:
        pass
    except UnicodeDecodeError:
        raise ConfigError(f"{path!r} is not UTF-8 text; the file was damaged.") from None
    return latest
