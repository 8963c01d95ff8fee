"""The import rule of docs/architecture.md, enforced.

Every module of the package is read with ``ast`` (imports inside functions included) and each
import of scratchrnn is checked against the folder it comes from: a module imports its own folder
and the folders below it, never one above; the book imports no engine and nothing of the tool;
the one-page model imports only core. The deprecated flat names (scratchrnn/_moved.py) still
import, as the same module objects, with a DeprecationWarning.
"""
from __future__ import annotations

import ast
import importlib
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from scratchrnn._moved import MOVED

PACKAGE = Path(__file__).resolve().parent.parent / "scratchrnn"

BELOW_LM = {"core", "book", "engines", "blocks", "lm"}
# folder (or top-level module) -> the folders of scratchrnn it may import besides its own
ALLOWED = {
    "core": set(),
    "book": {"core"},
    "engines": {"core", "book"},
    "blocks": {"core", "book", "engines"},
    "lm": {"core", "book", "engines", "blocks"},
    "analysis": BELOW_LM,
    "grid": BELOW_LM,
    "testing": {"core", "book", "blocks"},
    "learn": {"core", "book", "blocks", "testing"},   # the grader converts arrays with the kit
    "cli": BELOW_LM | {"analysis", "grid", "testing", "learn", "__init__"},   # __version__
    "interop": {"core", "book", "blocks"},
    "_moved": set(),                     # finds the old names by importlib, at import time
    "__init__": {"core", "blocks", "_moved"},   # the package's front door: LSTM, get_backend
}
TOOL = {"engines", "blocks", "lm", "cli", "analysis", "grid"}


def module_name(path):
    """scratchrnn/book/cells/lstm.py -> "scratchrnn.book.cells.lstm" (a package's __init__ -> the package)."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module):
    """The folder (or top-level module) a module of scratchrnn belongs to: "book" for
    scratchrnn.book.cells.lstm, "interop" for scratchrnn.interop, "__init__" for scratchrnn."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def package_modules():
    return sorted(PACKAGE.rglob("*.py"))


def imports_of(path):
    """(line, imported module) for every import of scratchrnn in the file ``path``."""
    return imports_in(path.read_text(encoding="utf-8"), module_name(path), path.name == "__init__.py")


def imports_in(source, module, is_package):
    """(line, imported module) for every import of scratchrnn in ``source``, the text of
    ``module``, wherever it stands (inside functions too). ``from scratchrnn import x`` names
    scratchrnn.x when x is a module or folder of the package (or a deprecated flat name), and the
    package's front door, scratchrnn, when x is a name such as LSTM."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:                                   # relative: resolve against the package
                base = ".".join(package[:len(package) - node.level + 1] + ([base] if base else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                as_path = PACKAGE.parent.joinpath(*sub.split("."))
                is_module = (as_path.is_dir() or as_path.with_suffix(".py").exists()
                             or (base == "scratchrnn" and alias.name in MOVED))
                found.append((node.lineno, sub if is_module else base))
    return [(line, name) for line, name in found if name.split(".")[0] == "scratchrnn"]


def test_the_rule_reads_every_module_and_knows_every_folder():
    """Every module sits in a folder the rule names, and the reader finds the imports it should
    (including one inside a function), so the tests below cannot pass by reading nothing."""
    modules = package_modules()
    assert len(modules) > 80
    unknown = sorted({layer_of(module_name(p)) for p in modules} - set(ALLOWED))
    assert not unknown, f"folders the import rule does not place: {unknown} (add them to " \
                        f"docs/architecture.md and ALLOWED)"
    layers = [name for _, name in imports_of(PACKAGE / "blocks" / "layers.py")]
    assert "scratchrnn.engines" in layers and "scratchrnn.book.cells.lstm" in layers
    inside_a_function = [name for _, name in imports_of(PACKAGE / "engines" / "__init__.py")]
    assert "scratchrnn.engines.numpy_fast" in inside_a_function


def test_the_reader_resolves_relative_and_front_door_imports():
    """A relative import is placed by its package; ``from scratchrnn import LSTM`` is the front
    door; an old flat name stays itself (so the deprecation test below sees it)."""
    source = ("from . import common\nfrom .. import scan\nfrom scratchrnn import LSTM\n"
              "def f():\n    from scratchrnn import engines, layers\n")
    got = [name for _, name in imports_in(source, "scratchrnn.book.cells.probe", False)]
    assert got == ["scratchrnn.book.cells.common", "scratchrnn.book.scan", "scratchrnn",
                   "scratchrnn.engines", "scratchrnn.layers"]


def test_no_module_imports_from_a_layer_above_it():
    bad = []
    for path in package_modules():
        here = layer_of(module_name(path))
        for line, name in imports_of(path):
            there = layer_of(name)
            if there != here and there not in ALLOWED[here]:
                bad.append(f"{path.relative_to(PACKAGE.parent)}:{line} ({here}) imports {name} ({there})")
    assert not bad, "imports against docs/architecture.md's rule:\n" + "\n".join(bad)


def test_the_book_imports_no_engine_and_nothing_of_the_tool():
    bad = [f"{path.relative_to(PACKAGE.parent)}:{line} imports {name}"
           for path in sorted((PACKAGE / "book").rglob("*.py"))
           for line, name in imports_of(path)
           if layer_of(name) in TOOL or name == "scratchrnn"]
    assert not bad, "\n".join(bad)


def test_the_one_page_model_imports_only_core():
    names = [name for _, name in imports_of(PACKAGE / "book" / "onepage.py")]
    assert names, "onepage.py should use core's backend and errors"
    assert all(layer_of(name) == "core" for name in names), names


def test_no_module_of_the_package_uses_a_deprecated_name():
    bad = [f"{path.relative_to(PACKAGE.parent)}:{line} imports {name}"
           for path in package_modules() for line, name in imports_of(path)
           if len(name.split(".")) > 1 and name.split(".")[1] in MOVED]
    assert not bad, "use the new place (scratchrnn/_moved.py):\n" + "\n".join(bad)


@pytest.mark.parametrize("start, allowed", [
    ("scratchrnn.book.onepage", ("core", "book")),
    ("scratchrnn.book.cells.lstm", ("core", "book")),
    ("scratchrnn.book.cells.gru", ("core", "book")),
    ("scratchrnn.book.cells.rnn", ("core", "book")),
])
def test_the_learners_path_never_leaves_the_book(start, allowed):
    """Imported in a fresh interpreter, the one-page model and each cell load nothing of the
    package outside book/ and core/ (besides the package's own __init__ and its alias finder)."""
    code = (f"import sys, {start}\n"
            "print(' '.join(sorted(m for m in sys.modules if m.startswith('scratchrnn.'))))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    loaded = out.stdout.split()
    assert start in loaded
    outside = [m for m in loaded if layer_of(m) not in (*allowed, "_moved")]
    assert not outside, f"{start} loads {outside}"


@pytest.mark.parametrize("old", sorted(MOVED))
def test_every_old_flat_name_still_imports_as_the_same_module_with_a_warning(old):
    new = importlib.import_module(f"scratchrnn.{MOVED[old]}")
    sys.modules.pop(f"scratchrnn.{old}", None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        moved = importlib.import_module(f"scratchrnn.{old}")
    assert moved is new
    messages = [str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)]
    assert any(f"scratchrnn.{MOVED[old]}" in m for m in messages), messages


def test_the_old_one_page_command_still_runs():
    """``python -m scratchrnn.onepage --help`` (the old name) prints the usage of the new module."""
    out = subprocess.run([sys.executable, "-W", "always::DeprecationWarning", "-m",
                          "scratchrnn.onepage", "--help"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "usage" in out.stdout.lower()
    assert "scratchrnn.book.onepage" in out.stderr        # the deprecation names the new place


def test_every_folder_is_a_package_that_setuptools_finds():
    """setup.cfg's ``packages = find:`` only finds folders with an __init__.py; one without it
    would be missing from an installed (not editable) scratchrnn."""
    folders = sorted(p.parent for p in PACKAGE.rglob("*.py") if p.parent != PACKAGE)
    missing = sorted({str(f.relative_to(PACKAGE.parent)) for f in folders
                      if not (f / "__init__.py").exists()})
    assert not missing, f"folders without __init__.py: {missing}"


def test_the_tests_named_in_architecture_md_exist():
    """The table of where the gate math lives names the tests that pin each copy: each one
    named there (``tests/x.py::test_y`` or a bare ``test_y``) is a test that exists."""
    tests = PACKAGE.parent / "tests"
    text = (PACKAGE.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    everywhere = "\n".join(p.read_text(encoding="utf-8") for p in tests.rglob("test_*.py"))
    named = re.findall(r"`(?:(tests/[\w/]+\.py)::)?(test_\w+)`", text)
    assert len(named) >= 10
    for path, test in named:
        source = (PACKAGE.parent / path).read_text(encoding="utf-8") if path else everywhere
        assert re.search(rf"^def {test}\(", source, re.M), f"{path or 'tests/'} has no {test}"
