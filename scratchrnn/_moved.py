"""The flat module names of scratchrnn before its folders, kept importable.

``import scratchrnn.layers`` (or ``python -m scratchrnn.onepage``) finds the module at its new
place (``scratchrnn.blocks.layers``), the very same module object, and warns once with a
``DeprecationWarning`` that names the new place. Nothing here is used by the package itself.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

MOVED = {
    "backend": "core.backend", "errors": "core.errors", "validation": "core.validation",
    "ops": "book.ops", "scan": "book.scan", "cells": "book.cells", "batching": "book.batching",
    "optim": "book.optim", "train": "book.train", "gradcheck": "book.gradcheck",
    "onepage": "book.onepage",
    "module": "blocks.module", "layers": "blocks.layers", "embedding": "blocks.embedding",
    "linear": "blocks.linear", "model": "blocks.model", "heads": "blocks.heads",
    "attention": "blocks.attention", "regression": "blocks.regression",
    "sequence_model": "blocks.sequence_model", "gru_weights": "blocks.gru_weights",
    "stepping": "blocks.stepping",
    "blas_kernel": "engines.blas_kernel",
    "corpora": "lm.corpora", "vocab": "lm.vocab", "runner": "lm.run", "checkpoint": "lm.checkpoint",
    "saved": "lm.saved", "runfolder": "lm.runfolder", "lockfile": "lm.lockfile",
    "sample": "lm.sample", "plotting": "lm.plotting",
    "commands": "cli",
}


def new_name(fullname):
    """``scratchrnn.<old>[.<rest>]`` -> its name today, or None when it did not move."""
    parts = fullname.split(".")
    if len(parts) < 2 or parts[0] != "scratchrnn" or parts[1] not in MOVED:
        return None
    return ".".join(["scratchrnn", MOVED[parts[1]], *parts[2:]])


class MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds an old name and loads it as the module at the new name."""

    def __init__(self):
        self._own = {}    # old name -> (spec, loader) of the module at its new name

    def find_spec(self, fullname, path=None, target=None):
        new = new_name(fullname)
        if new is None or importlib.util.find_spec(new) is None:
            return None
        return importlib.util.spec_from_loader(fullname, self, is_package=False)

    def create_module(self, spec):
        new = new_name(spec.name)
        warnings.warn(f"{spec.name} has moved to {new}; import it from there.",
                      DeprecationWarning, stacklevel=2)
        module = importlib.import_module(new)
        self._own[spec.name] = (module.__spec__, module.__loader__)
        return module

    def exec_module(self, module):
        """The module ran at its new name already; give it back its own spec and loader, which
        the import system has just overwritten with the old name's."""
        module.__spec__, module.__loader__ = self._own.pop(module.__spec__.name)

    def get_code(self, fullname):
        """For ``python -m scratchrnn.<old>``: the code of the module at its new name."""
        new = new_name(fullname)
        warnings.warn(f"{fullname} has moved to {new}; run python -m {new}.",
                      DeprecationWarning, stacklevel=2)
        return importlib.util.find_spec(new).loader.get_code(new)


def install():
    """Put the finder on ``sys.meta_path`` once."""
    if not any(isinstance(f, MovedModuleFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, MovedModuleFinder())
