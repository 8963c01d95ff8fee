"""The lessons in scripts/: each runs as a script and, unchanged, as a notebook in a Jupyter
kernel (quick mode); writes under the current folder, never into the repository, and never
over an earlier run; refuses bad settings with one sentence and exit status 2; and the
committed full runs in docs/lessons/ are what the README's table says."""
from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "scripts"
LESSONS = sorted(p for p in SCRIPTS.glob("*.py") if "\n# %%" in p.read_text(encoding="utf-8"))
ENV = dict(os.environ, OPENBLAS_NUM_THREADS="1", MPLBACKEND="Agg",
           PYTHONPATH=os.pathsep.join([str(ROOT), str(SCRIPTS), os.environ.get("PYTHONPATH", "")]))

sys.path.insert(0, str(SCRIPTS))
import lessonkit  # noqa: E402
import lessons_table  # noqa: E402


def _run(script, *args, cwd, timeout=300):
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True,
                          timeout=timeout, env=ENV, cwd=str(cwd))


def _cells_before_run(script):
    """The lesson's code cells up to (not including) ``L.run(main)``, as one source."""
    jupytext = pytest.importorskip("jupytext")
    nb = jupytext.read(str(script))
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    assert code[-1].strip() == "L.run(main)", "a lesson ends with the cell L.run(main)"
    return code[:-1]


def _start_cells(script):
    """The lesson's code up to and including its ``lessonkit.start`` cell."""
    code = _cells_before_run(script)
    k = next(i for i, c in enumerate(code) if "lessonkit.start(" in c)
    return "\n".join(code[:k + 1])


def _start(script, argv, monkeypatch, cwd):
    """Run the lesson's cells up to its start as a script would, with ``argv``; returns
    (exit status or None, stderr, namespace)."""
    monkeypatch.setattr(sys, "argv", [str(script), *argv])
    monkeypatch.chdir(cwd)
    ns = {"__name__": "__main__"}
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            exec(compile(_start_cells(script), str(script), "exec"), ns)
            code = None
        except SystemExit as exit_:
            code = exit_.code
    return code, err.getvalue(), ns


def test_there_are_lessons():
    names = {p.stem for p in LESSONS}
    assert {"char_lm_cells", "explorer", "fastai_lesson6", "sine_teacher_forcing",
            "vanishing_gradients", "word_lm_attention", "long_memory"} <= names


@pytest.mark.parametrize("script", LESSONS, ids=lambda p: p.stem)
def test_lesson_has_one_parameters_cell(script):
    jupytext = pytest.importorskip("jupytext")
    nb = jupytext.read(str(script))
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "one cell tagged 'parameters' (papermill's convention)"
    assert "quick = False" in tagged[0].source and "out = None" in tagged[0].source
    assert sum(c.cell_type == "markdown" for c in nb.cells) >= 3


@pytest.mark.parametrize("script", LESSONS, ids=lambda p: p.stem)
def test_lesson_runs_quick_as_script(script, tmp_path):
    """From another folder: outputs land in ./lessons-out/NAME/run-1, with the answers."""
    res = _run(script, "--quick", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "Traceback" not in res.stderr
    assert "Questions and what this run measured" in res.stdout
    folder = tmp_path / "lessons-out" / script.stem / "run-1"
    assert folder.is_dir()
    record = json.loads((folder / f"{script.stem}.json").read_text(encoding="utf-8"))
    assert record["settings"]["quick"] is True and record["answers"]
    assert all(row["answer"] and row["held"] in (True, False, None) for row in record["answers"])
    pngs = sorted(folder.glob("*.png"))
    assert pngs and all(p.name.startswith(script.stem) for p in pngs)
    assert {p.name for p in pngs} <= set(record["files"])


@pytest.mark.parametrize("script", LESSONS, ids=lambda p: p.stem)
def test_lesson_runs_as_notebook(script, tmp_path, monkeypatch):
    """jupytext + nbclient + ipykernel, quick values injected after the parameters cell as
    papermill does; any cell error fails; figures are shown inline."""
    jupytext = pytest.importorskip("jupytext")
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    if importlib.util.find_spec("ipykernel") is None:     # not imported here: this process
        pytest.skip("ipykernel is not installed")         # must not look like a kernel
    nb = jupytext.read(str(script))
    k = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    nb.cells.insert(k + 1, nbformat.v4.new_code_cell("quick = True\nseeds = 2",
                                                     metadata={"tags": ["injected-parameters"]}))
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()                                   # raises CellExecutionError on any error
    folder = tmp_path / "lessons-out" / script.stem / "run-1"
    assert (folder / f"{script.stem}.json").is_file()
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if "image/png" in o.get("data", {})]
    assert len(images) == len(list(folder.glob("*.png"))), "every figure is shown inline"


def test_rerun_keeps_the_earlier_run(tmp_path):
    script = SCRIPTS / "vanishing_gradients.py"
    for _ in range(2):
        assert _run(script, "--quick", cwd=tmp_path).returncode == 0
    runs = sorted(p.name for p in (tmp_path / "lessons-out" / "vanishing_gradients").iterdir())
    assert runs == ["run-1", "run-2"]
    assert all((tmp_path / "lessons-out" / "vanishing_gradients" / r /
                "vanishing_gradients.json").is_file() for r in runs)


def test_quick_run_from_the_repository_leaves_git_status_clean():
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    status = lambda: subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"],
                                    cwd=ROOT, capture_output=True, text=True).stdout
    before = status()
    res = _run(SCRIPTS / "vanishing_gradients.py", "--quick", cwd=ROOT)
    try:
        assert res.returncode == 0, res.stderr[-2000:]
        assert status() == before, "a quick run changed the repository's git status"
    finally:
        line = next(ln for ln in res.stdout.splitlines() if "outputs go to" in ln)
        folder = Path(line.split("outputs go to ", 1)[1].split(" (quick")[0])
        assert folder.parent.parent.name == "lessons-out"
        shutil.rmtree(folder)


COMMON_BAD = [["--backend", "tpu"], ["--seed", "-3"], ["--no-such-flag"], ["--seed", "x"],
              ["--seeds", "0"], ["--seeds", "2"], ["--out", ""]]


@pytest.mark.parametrize("script", LESSONS, ids=lambda p: p.stem)
def test_lesson_bad_arguments_one_sentence(script, tmp_path, monkeypatch):
    """Every common flag and every zero of the lesson's own numbers: one sentence, exit 2."""
    _, _, ns = _start(script, ["--quick", "--out", str(tmp_path / "ok")], monkeypatch, tmp_path)
    zeros = [["--" + k.replace("_", "-"), "0"] for k, p in ns["SPEC"].items()
             if p.kind in ("int", "float")]
    assert zeros, "a lesson has numeric settings"
    for bad in COMMON_BAD + zeros:
        code, err, _ = _start(script, [*bad] if bad == ["--seeds", "2"] else ["--quick", *bad],
                              monkeypatch, tmp_path)
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert code == 2, (bad, err)
        assert len(lines) == 1 and "error" in lines[0] and "Traceback" not in err, (bad, err)


@pytest.mark.parametrize("script", LESSONS, ids=lambda p: p.stem)
def test_lesson_out_that_is_a_file_or_holds_outputs(script, tmp_path, monkeypatch):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine", encoding="utf-8")
    code, err, _ = _start(script, ["--quick", "--out", str(a_file)], monkeypatch, tmp_path)
    assert code == 2 and "is a file, not a folder" in err and "Errno" not in err
    assert a_file.read_text(encoding="utf-8") == "mine"
    held = tmp_path / "held"
    held.mkdir()
    (held / f"{script.stem}.json").write_text("{}", encoding="utf-8")
    code, err, _ = _start(script, ["--quick", "--out", str(held)], monkeypatch, tmp_path)
    assert code == 2 and "--replace" in err
    assert (held / f"{script.stem}.json").read_text(encoding="utf-8") == "{}"
    code, _, ns = _start(script, ["--quick", "--out", str(held), "--replace"], monkeypatch,
                         tmp_path)
    assert code is None and ns["L"].out == held


def test_kit_in_a_kernel_ignores_the_command_line(monkeypatch, tmp_path):
    """Inside a kernel sys.argv is the kernel's own; the parameters cell decides."""
    monkeypatch.setattr(lessonkit, "in_kernel", lambda: True)
    monkeypatch.setattr(sys, "argv", ["ipykernel_launcher.py", "-f", "/tmp/kernel.json"])
    monkeypatch.chdir(tmp_path)
    ns = {"__name__": "__main__", "quick": True, "seeds": None, "hidden": 7}
    L = lessonkit.start("kit_check", ns, {"hidden": lessonkit.Param("int", 64, 16)})
    assert L.P.hidden == 7 and L.P.seeds == 2 and L.out.parent == tmp_path / "lessons-out" / "kit_check"
    ns["hidden"] = 0
    with pytest.raises(lessonkit.ConfigError, match="hidden must be a positive integer"):
        lessonkit.start("kit_check", ns, {"hidden": lessonkit.Param("int", 64, 16)})


def test_compare_counts_seeds_and_direction():
    held, sentence = lessonkit.compare([1.0, 2.0, 3.0], [1.5, 2.5, 3.5])
    assert held and "3 of 3" in sentence
    held, sentence = lessonkit.compare([1.0, 2.0, 3.0], [1.5, 1.5, 3.5])
    assert not held and "2 of 3" in sentence
    held, _ = lessonkit.compare([5.0, 6.0, 7.0], [1.0, 2.0, 3.0], lower_is_better=False)
    assert held
    assert lessonkit.pm([1.0, 2.0, 3.0]) == "2.000 ± 1.000"


def test_word_lm_counts_distinct_words_by_token_id(monkeypatch, tmp_path):
    """A greedy loop of one token that decodes to a single glued word is 1 distinct of 4."""
    script = SCRIPTS / "word_lm_attention.py"
    monkeypatch.chdir(tmp_path)
    ns = {"__name__": "lesson_check", "quick": True}
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile("\n".join(_cells_before_run(script)), str(script), "exec"), ns)
    is_word = [False, True, True]
    assert ns["distinct_word_share"]([1, 1, 1, 1], is_word) == 0.25
    assert ns["distinct_word_share"]([1, 0, 2, 0], is_word) == 1.0
    assert ns["distinct_word_share"]([0, 0, 0, 0], is_word) == 0.25      # no word: all tokens


def test_committed_runs_are_full_runs_of_every_lesson():
    for script in LESSONS:
        path = ROOT / "docs" / "lessons" / f"{script.stem}.json"
        assert path.is_file(), f"no committed full run of {script.name} in docs/lessons/"
        run = json.loads(path.read_text(encoding="utf-8"))
        assert run["settings"]["quick"] is False and run["settings"]["seeds"] >= 3
        for name in run["files"]:
            assert (ROOT / "docs" / "lessons" / name).is_file(), name


def test_readme_lessons_table_is_the_generated_one():
    readme = lessons_table.readme_table(ROOT / "README.md")
    assert readme is not None, "README.md lost the lessons table's marker lines"
    assert readme == lessons_table.table(), "run: python scripts/lessons_table.py"
    total = sum(len(json.loads(p.read_text(encoding="utf-8"))["answers"])
                for p in (ROOT / "docs" / "lessons").glob("*.json"))
    assert readme.count("\n| ") - 1 == total            # one row per question, held or not
