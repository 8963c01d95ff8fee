"""The file ``scratchrnn exercise start NAME`` writes: everything but the answer.

It carries the header the grader reads (``# scratchrnn exercise: NAME``), the section of
docs/derivations.md to read, the forward equations, the task, and the function with its
signature and every shape in its docstring; the body raises NotImplementedError.
"""
from __future__ import annotations

import os
import textwrap
from pathlib import Path

from scratchrnn.core.errors import ConfigError
from scratchrnn.learn.exercises import EXERCISES


def skeleton(exercise) -> str:
    """The skeleton's text."""
    ex = exercise
    args = ", ".join(name for name, _ in ex.arguments)
    width = max(len(name) for name, _ in ex.arguments + ex.outputs)
    arg_doc = "\n".join(f"    {name.ljust(width)}  {doc}" for name, doc in ex.arguments)
    out_doc = ex.returns or "\n".join(f"    {name.ljust(width)}  {doc}" for name, doc in ex.outputs)
    returns = ", ".join(ex.output_names) if ex.name != "clipping" else "clipped, norm"
    imports = "import numpy as np\n" + (ex.imports + "\n" if ex.imports else "")
    return f'''# scratchrnn exercise: {ex.name}
"""Exercise {ex.number} of the scratchrnn course: {ex.title}.

Read first: {ex.section}.

{ex.equations_title}:

{textwrap.indent(ex.equations, "    ")}

Your task:
{textwrap.indent(ex.task, "    ")}

Check your work (as often as you like):

    scratchrnn exercise check {ex.name}.py
"""
{imports}

def {ex.function}({args}):
    """{ex.title[0].upper() + ex.title[1:]}.

    Arguments (float64 NumPy arrays unless said otherwise):
{textwrap.indent(arg_doc, "    ")}

    Returns ({returns}):
{textwrap.indent(out_doc, "    ")}
    """
    # write your code here, then return ({returns})
    raise NotImplementedError("{ex.function} is not written yet")
'''


def start(name, directory=".") -> Path:
    """Write the skeleton of ``name`` into ``directory`` as NAME.py; never overwrite.

    ConfigError (one sentence) for an unknown exercise, a --dir that is a file, or an
    existing file."""
    if name not in EXERCISES:
        raise ConfigError(f"There is no exercise {name!r}; `scratchrnn exercise list` shows "
                          f"them: {', '.join(EXERCISES)}.")
    folder = Path(directory)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"--dir {directory} is a file, not a folder.")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.py"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)   # never overwrite
    except FileExistsError:
        raise ConfigError(f"{path} already exists and is left as it is; check it with "
                          f"`scratchrnn exercise check {path}`, or start in another "
                          f"--dir.") from None
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(skeleton(EXERCISES[name]))
    return path
