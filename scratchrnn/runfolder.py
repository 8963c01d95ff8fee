"""The run folder: where a training run may write, one writer at a time.

Rules a user can predict:
- a fresh run writes only into a folder that is new or empty;
- a resumed run continues in the folder its checkpoint lies in, or branches into a new or
  empty ``--out`` folder; a folder that holds another run is refused;
- resuming an older checkpoint in place (fewer steps than the folder's ``last.npz``) is
  refused: it would rewind ``last.npz`` and cut ``history.json``; branch into a new
  ``--out`` instead;
- ``DIR/train.lock`` names the live process writing there, and a second writer is refused
  with one sentence; a lock whose process is gone (a killed run) is stale and taken over;
- the hidden temporary files of writes that were killed midway (``.NAME.XXXXXXXX.tmp``,
  see ``checkpoint.write_atomically``) are removed when the next run takes the lock.
A folder that holds nothing but a stale lock and such temporary files counts as empty.
"""
from __future__ import annotations

import json
import os
import re
import socket
import time

from .checkpoint import inspect_checkpoint, repair_sidecar
from .errors import CheckpointError, ConfigError

LOCK_NAME = "train.lock"
LAST = "last.npz"
_TEMP = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp$")   # write_atomically's mkstemp names


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


def _lock_holder(directory):
    """The lock's contents, None without a lock, {} for an unreadable one."""
    try:
        with open(os.path.join(directory, LOCK_NAME), encoding="utf-8") as f:
            holder = json.load(f)
        return holder if isinstance(holder, dict) else {}
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}


def _stale(holder):
    return (holder.get("host") == socket.gethostname() and isinstance(holder.get("pid"), int)
            and holder["pid"] != os.getpid() and not pid_alive(holder["pid"]))


def check_unlocked(directory):
    """ConfigError when a live process holds the folder's lock (changes nothing)."""
    holder = _lock_holder(directory)
    if holder is None or _stale(holder):
        return
    who = f"process {holder.get('pid')} on {holder.get('host')}" if holder else "another process"
    raise ConfigError(f"The run folder {directory!r} is in use by another training run ({who}); "
                      f"wait for it to finish or choose another --out.")


def _leftovers(directory):
    """Files of the folder that are not a stale lock or a killed write's temporary file."""
    names = []
    for name in sorted(os.listdir(directory)):
        if _TEMP.match(name):
            continue
        if name == LOCK_NAME and _stale(_lock_holder(directory) or {}):
            continue
        names.append(name)
    return names


def check_fresh(directory):
    """A fresh run's folder must be new or empty; ConfigError otherwise."""
    if not os.path.exists(directory):
        return
    if not os.path.isdir(directory):
        raise ConfigError(f"The output path {directory!r} is a file, not a directory; choose another --out.")
    check_unlocked(directory)
    if os.path.exists(os.path.join(directory, LAST)):
        raise ConfigError(f"The output directory {directory!r} already holds a run; resume it with "
                          f"--resume {os.path.join(directory, LAST)} or choose another --out.")
    names = _leftovers(directory)
    if names:
        raise ConfigError(f"The output directory {directory!r} is not empty (it holds {names[0]!r}"
                          f"{f' and {len(names) - 1} more' if len(names) > 1 else ''}); a run writes "
                          f"only into a new or empty folder, so choose another --out.")


def _saved_run(path):
    """(run id, step) recorded in the checkpoint at ``path``, reading only its metadata."""
    _, meta = inspect_checkpoint(path)
    progress = meta.get("progress") if isinstance(meta.get("progress"), dict) else {}
    return progress.get("run_id"), progress.get("step")


def check_resume(directory, checkpoint, run_id, step, branch):
    """Where a run resumed from ``checkpoint`` (its ``run_id`` at ``step``) may write.

    directory: the target folder (the checkpoint's own, or the --out given: ``branch``).
    ConfigError or CheckpointError (one sentence) when the folder holds another run or when
    writing there would rewind its ``last.npz``."""
    if not os.path.exists(directory):
        return
    if not os.path.isdir(directory):
        raise ConfigError(f"The output path {directory!r} is a file, not a directory; choose another --out.")
    check_unlocked(directory)
    last = os.path.join(directory, LAST)
    if not os.path.exists(last):
        if branch and _leftovers(directory):
            raise ConfigError(f"The output directory {directory!r} is not empty and holds no run; "
                              f"branch into a new or empty --out folder.")
        return
    if os.path.abspath(last) == os.path.abspath(checkpoint):
        return
    try:
        other_id, other_step = _saved_run(last)
    except CheckpointError:
        raise ConfigError(f"The output directory {directory!r} holds a damaged {LAST}; "
                          f"branch into a new --out folder.") from None
    if other_id != run_id:
        raise ConfigError(f"The output directory {directory!r} holds another run; branch into a "
                          f"new or empty --out folder.")
    if isinstance(other_step, int) and other_step > step:
        raise ConfigError(f"Resuming {checkpoint!r} (step {step}) in {directory!r} would rewind its "
                          f"{LAST} (step {other_step}) and cut its history; pass --out NEW_FOLDER to "
                          f"branch the run there.")


def remove_stale_temps(directory):
    """Delete the hidden temporary files of killed writes and bring every checkpoint's JSON
    sidecar back in line with its ``.npz``; returns the names removed or rewritten."""
    touched = []
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        if _TEMP.match(name):
            try:
                os.unlink(path)
                touched.append(name)
            except FileNotFoundError:
                pass
        elif name.endswith(".npz") and os.path.isfile(path) and repair_sidecar(path):
            touched.append(name + ".json")
    return touched


class RunLock:
    """``with RunLock(directory): ...`` holds ``DIR/train.lock`` for the block."""

    def __init__(self, directory):
        self.directory = directory
        self.path = os.path.join(directory, LOCK_NAME)

    def __enter__(self):
        for _ in range(2):              # a second try after removing a stale lock
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            except FileExistsError:
                check_unlocked(self.directory)          # refuses a live holder
                try:
                    os.unlink(self.path)                # stale: take it over
                except FileNotFoundError:
                    pass
                continue
            body = json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                               "started": time.strftime("%Y-%m-%d %H:%M:%S")})
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(body + "\n")
            return self
        raise ConfigError(f"Cannot take the lock {self.path!r}; another run is starting there.")

    def __exit__(self, *exc):
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        return False
