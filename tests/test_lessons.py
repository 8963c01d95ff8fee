"""Every lesson in scripts/ runs with --quick, ends with its measured answers, writes its
figures, opens as a notebook (jupytext, when installed), and refuses bad arguments with
one sentence and exit status 2."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LESSONS = sorted(p for p in (ROOT / "scripts").glob("*.py")
                 if p.read_text(encoding="utf-8").lstrip().startswith("# %%")
                 or "\n# %%" in p.read_text(encoding="utf-8"))


def _run(script, *args, timeout=600):
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", MPLBACKEND="Agg")
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=str(ROOT))


def test_there_are_lessons():
    assert LESSONS, "no lesson scripts (files with '# %%' cells) in scripts/"


@pytest.mark.parametrize("script", LESSONS, ids=lambda p: p.stem)
def test_lesson_runs_quick(script, tmp_path):
    out = tmp_path / "figs"
    res = _run(script, "--quick", "--out", str(out))
    assert res.returncode == 0, res.stderr[-3000:]
    assert "Questions and what this run measured" in res.stdout
    assert "Traceback" not in res.stderr
    assert any(out.glob("*.png")), "the lesson wrote no figure"


@pytest.mark.parametrize("script", LESSONS, ids=lambda p: p.stem)
@pytest.mark.parametrize("bad", [["--backend", "tpu"], ["--seed", "-3"], ["--no-such-flag"],
                                 ["--seed", "x"]])
def test_lesson_bad_arguments_one_sentence(script, bad, tmp_path):
    res = _run(script, "--quick", "--out", str(tmp_path), *bad, timeout=120)
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert lines and "error" in lines[-1]


@pytest.mark.parametrize("script", LESSONS, ids=lambda p: p.stem)
def test_lesson_opens_as_notebook(script):
    jupytext = pytest.importorskip("jupytext", reason="jupytext is not installed")
    nb = jupytext.read(str(script))
    code = [c for c in nb.cells if c.cell_type == "code"]
    text = [c for c in nb.cells if c.cell_type == "markdown"]
    assert len(code) >= 3 and text, "a lesson should be several code cells with prose between them"
