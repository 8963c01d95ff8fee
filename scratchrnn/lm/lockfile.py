"""A folder lock: one file that names the one process allowed to write in a folder.

The lock is created with ``O_CREAT | O_EXCL`` (so two processes starting at once cannot
both get it) and holds ``{"pid", "host", "started"}``. A lock whose process on this host is
gone, or is a zombie (killed, not yet reaped by its parent), is stale: it was left by a
killed run and is taken over. A lock held by a live process, or by a process on another
host (which cannot be checked from here), is refused with the caller's one sentence.

Used by the training run's folder (``runfolder.py``) and the grid's folder (``grid/lock.py``).
"""
from __future__ import annotations

import json
import os
import socket
import time

from scratchrnn.core.errors import ConfigError


def pid_alive(pid):
    """Whether a process with this id runs on this machine (a zombie, killed but not yet
    reaped by its parent, does not count)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:            # exists, owned by someone else
        pass
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
        return state not in (b"Z", b"X")
    except (OSError, IndexError):
        return True


def read_lock(path):
    """The lock file's contents: None without a lock, {} for an unreadable one."""
    try:
        with open(path, encoding="utf-8") as f:
            holder = json.load(f)
        return holder if isinstance(holder, dict) else {}
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}


def is_stale(holder):
    """Whether a lock's contents name a process of this host that is gone (never this one)."""
    return (holder.get("host") == socket.gethostname() and isinstance(holder.get("pid"), int)
            and holder["pid"] != os.getpid() and not pid_alive(holder["pid"]))


EMPTY_LOCK_STALE_S = 10.0   # an empty or unreadable lock older than this was left by a failed write


def lock_is_stale(path, holder):
    """Whether the lock at ``path`` (contents ``holder``, as read_lock gives them) is stale:
    its process is gone, or it is empty/unreadable and older than EMPTY_LOCK_STALE_S (a
    process that could not write its lock, say on a full disk; a live one writes it at once)."""
    if holder == {}:
        try:
            return time.time() - os.stat(path).st_mtime > EMPTY_LOCK_STALE_S
        except OSError:
            return True
    return is_stale(holder)


def describe_holder(holder):
    """'process PID on HOST' for a readable lock, 'another process' for an unreadable one."""
    return f"process {holder.get('pid')} on {holder.get('host')}" if holder else "another process"


def refuse_if_held(path, refusal):
    """ConfigError(refusal(holder)) when a live process holds the lock at ``path``; a missing
    or stale lock passes (changes nothing). ``refusal`` maps the lock's contents to one sentence."""
    holder = read_lock(path)
    if holder is None or lock_is_stale(path, holder):
        return
    raise ConfigError(refusal(holder))


class FolderLock:
    """``with FolderLock(path, refusal, busy): ...`` holds the lock file ``path`` for the block.

    refusal: lock contents -> the sentence refusing a live holder; busy: the sentence when the
    lock changed hands twice while this process was taking it."""

    def __init__(self, path, refusal, busy):
        self.path, self.refusal, self.busy = path, refusal, busy

    def __enter__(self):
        for _ in range(2):              # a second try after removing a stale lock
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            except FileExistsError:
                refuse_if_held(self.path, self.refusal)     # refuses a live holder
                try:
                    os.unlink(self.path)                    # stale: take it over
                except FileNotFoundError:
                    pass
                continue
            body = json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                               "started": time.strftime("%Y-%m-%d %H:%M:%S")})
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    f.write(body + "\n")
            except OSError as exc:            # a full disk: leave no empty lock behind
                try:
                    os.unlink(self.path)
                except OSError:
                    pass
                raise OSError(exc.errno, exc.strerror or str(exc), self.path) from None
            return self
        refuse_if_held(self.path, self.refusal)
        raise ConfigError(self.busy)

    def __exit__(self, *exc):
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        return False
