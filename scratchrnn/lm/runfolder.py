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

import os
import re

from scratchrnn.core.errors import CheckpointError, ConfigError
from scratchrnn.lm.checkpoint import inspect_checkpoint, repair_sidecar
from scratchrnn.lm.lockfile import FolderLock, describe_holder, lock_is_stale, read_lock, refuse_if_held

LOCK_NAME = "train.lock"
LAST = "last.npz"
_TEMP = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp$")   # write_atomically's mkstemp names


def _in_use(directory):
    """The sentence refusing a second writer in ``directory``, given the lock's contents."""
    return lambda holder: (f"The run folder {directory!r} is in use by another training run "
                           f"({describe_holder(holder)}); wait for it to finish or choose another --out.")


def check_unlocked(directory):
    """ConfigError when a live process holds the folder's lock (changes nothing)."""
    refuse_if_held(os.path.join(directory, LOCK_NAME), _in_use(directory))


def _leftovers(directory):
    """Files of the folder that are not a stale lock or a killed write's temporary file."""
    names = []
    for name in sorted(os.listdir(directory)):
        if _TEMP.match(name):
            continue
        lock = os.path.join(directory, name)
        if name == LOCK_NAME and lock_is_stale(lock, read_lock(lock) or {}):
            continue
        names.append(name)
    return names


def _existing_unlocked(directory):
    """Whether ``directory`` exists; ConfigError when it is a file or a live run holds it."""
    if not os.path.exists(directory):
        return False
    if not os.path.isdir(directory):
        raise ConfigError(f"The output path {directory!r} is a file, not a directory; choose another --out.")
    check_unlocked(directory)
    return True


def check_fresh(directory):
    """A fresh run's folder must be new or empty; ConfigError otherwise."""
    if not _existing_unlocked(directory):
        return
    if os.path.exists(os.path.join(directory, LAST)):
        raise ConfigError(f"The output directory {directory!r} already holds a run; resume it with "
                          f"--resume {os.path.join(directory, LAST)} or choose another --out.")
    saved = latest_checkpoint(directory)
    if saved is not None:            # a best checkpoint whose last.npz was never written
        raise ConfigError(f"The output directory {directory!r} already holds a run's checkpoint but "
                          f"no {LAST} (a write failed?); resume it with --resume {saved} or choose "
                          f"another --out.")
    names = _leftovers(directory)
    if names:
        raise ConfigError(f"The output directory {directory!r} is not empty (it holds {names[0]!r}"
                          f"{f' and {len(names) - 1} more' if len(names) > 1 else ''}); a run writes "
                          f"only into a new or empty folder, so choose another --out.")


def latest_checkpoint(directory):
    """The checkpoint a run in ``directory`` continues from: its last.npz, or, when a write
    failed (a full disk) after the best checkpoint but before last.npz, the newest-step
    checkpoint that reads as one; None when there is none."""
    last = os.path.join(directory, LAST)
    if os.path.exists(last):
        return last
    try:
        names = sorted(n for n in os.listdir(directory) if n.endswith(".npz"))
    except OSError:
        return None
    found = []
    for name in names:
        path = os.path.join(directory, name)
        try:
            step = _saved_run(path)[1]
        except (CheckpointError, OSError):
            continue
        if isinstance(step, int) and not isinstance(step, bool):
            found.append((step, path))
    return max(found)[1] if found else None


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
    if not _existing_unlocked(directory):
        return
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


class RunLock(FolderLock):
    """``with RunLock(directory): ...`` holds ``DIR/train.lock`` for the block."""

    def __init__(self, directory):
        self.directory = directory
        path = os.path.join(directory, LOCK_NAME)
        super().__init__(path, _in_use(directory),
                         f"Cannot take the lock {path!r}; another run is starting there.")
