"""One grid per folder: ``DIR/grid.lock`` names the process that runs it.

The lock itself (created with ``O_CREAT | O_EXCL``, holding ``{"pid", "host", "started"}``,
stale when its process on this host is gone) is ``scratchrnn/lm/lockfile.py``; this file says
only which file it is and the sentence that refuses a second grid.
"""
from __future__ import annotations

import os

from scratchrnn.lm.lockfile import FolderLock, describe_holder, refuse_if_held

LOCK_NAME = "grid.lock"


def _another_grid(directory):
    """The sentence refusing a second grid in ``directory``, given the lock's contents."""
    path = os.path.join(directory, LOCK_NAME)

    def sentence(holder):
        since = f" since {holder['started']}" if holder.get("started") else ""
        return (f"Another grid ({describe_holder(holder)}{since}) is running in {directory!r}; wait for "
                f"it to finish or stop it (if it is gone, delete {path!r}).")
    return sentence


def check_free(directory):
    """ConfigError unless the folder is free or its lock is stale (changes nothing)."""
    refuse_if_held(os.path.join(directory, LOCK_NAME), _another_grid(directory))


class GridLock(FolderLock):
    """``with GridLock(directory): ...`` holds the folder's lock for the block."""

    def __init__(self, directory):
        self.directory = directory
        path = os.path.join(directory, LOCK_NAME)
        super().__init__(path, _another_grid(directory),
                         f"Cannot take the lock {path!r}; another grid is starting there.")
