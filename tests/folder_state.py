"""What a folder holds, to compare before and after a command that must not touch it."""
from __future__ import annotations

import hashlib
import os


def snapshot(directory):
    """{path relative to ``directory``: sha256} of every file under ``directory``."""
    result = {}
    for root, _, files in os.walk(directory):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                result[os.path.relpath(path, directory)] = hashlib.sha256(f.read()).hexdigest()
    return result
