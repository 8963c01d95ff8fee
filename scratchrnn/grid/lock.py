"""One grid per folder: ``DIR/grid.lock`` names the process that runs it.

The lock is created with ``O_CREAT | O_EXCL`` (so two grids starting at once cannot both
get it) and holds ``{"pid", "host", "started"}``. A lock whose process is gone (on this
host) is stale, left by a grid that was killed, and is taken over. A lock held by a live
process, or by a process on another host (which cannot be checked from here), is refused
with one sentence.
"""
from __future__ import annotations

import json
import os
import socket
import time

from ..errors import ConfigError

LOCK_NAME = "grid.lock"


def pid_alive(pid):
    """Whether a process with this id exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:            # exists, owned by someone else
        return True
    return True


def read_lock(directory):
    """The lock's contents, or None when there is no lock (an unreadable lock reads as {})."""
    try:
        with open(os.path.join(directory, LOCK_NAME), encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}


def check_free(directory):
    """ConfigError unless the folder is free or its lock is stale (changes nothing)."""
    holder = read_lock(directory)
    if holder is None or _stale(holder):
        return
    where = f"process {holder.get('pid')} on {holder.get('host')}" if holder else "another process"
    since = f" since {holder['started']}" if holder.get("started") else ""
    raise ConfigError(f"Another grid ({where}{since}) is running in {directory!r}; wait for it to "
                      f"finish or stop it (if it is gone, delete {os.path.join(directory, LOCK_NAME)!r}).")


def _stale(holder):
    return holder.get("host") == socket.gethostname() and isinstance(holder.get("pid"), int) \
        and not pid_alive(holder["pid"])


class GridLock:
    """``with GridLock(directory): ...`` holds the folder's lock for the block."""

    def __init__(self, directory):
        self.path = os.path.join(directory, LOCK_NAME)
        self.directory = directory

    def __enter__(self):
        for _ in range(2):              # a second try after removing a stale lock
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            except FileExistsError:
                check_free(self.directory)                  # refuses a live holder
                try:
                    os.unlink(self.path)                    # stale: take it over
                except FileNotFoundError:
                    pass
                continue
            body = json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                               "started": time.strftime("%Y-%m-%d %H:%M:%S")})
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(body + "\n")
            return self
        check_free(self.directory)
        raise ConfigError(f"Cannot take the lock {self.path!r}; another grid is starting there.")

    def __exit__(self, *exc):
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        return False
