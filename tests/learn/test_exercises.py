"""The exercises and their grader: the book passes, every catalogued mistake gets its diagnosis,
and the command survives whatever a learner's file does.

- ``tests/exercise_mistakes.py`` holds at least five plausible wrong implementations per
  exercise (learner-style source files) with the diagnosis each must get; graded here in
  this process (fast), a few of them also through the command and its sandbox.
- ``docs/exercises.md`` is generated from that catalogue; a test checks it is up to date.
- Bad input to ``scratchrnn exercise``: one sentence on stderr, exit 2, no traceback, and
  the learner's files are left as they were; a failing check exits 1, a passing one 0.
"""
import hashlib
import sys
import textwrap
from pathlib import Path

import pytest

from scratchrnn.cli import main
from scratchrnn.learn.exercises import COURSE, EXERCISES, base
from scratchrnn.learn.grader import grade_callable
from scratchrnn.learn.skeleton import skeleton

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))    # tests/, for exercise_mistakes
import exercise_mistakes as catalogue  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def book_function(ex):
    """The exercise's function written as a call into the book (``ex.reference``)."""
    names = [a for a, _ in ex.arguments]

    def fn(*args):
        out = ex.reference(base.Case("", "random", dict(zip(names, args))))
        if ex.name == "clipping":
            return {k: out[k] for k in ("W_x", "W_h", "b")}, out["norm"]
        return tuple(out[n] for n in ex.output_names)
    return fn


# ------------------------------------------------------------------ grading itself
def test_the_course_is_in_order():
    assert [ex.name for ex in COURSE] == ["softmax_ce", "rnn_step", "bptt", "lstm_gates",
                                          "gru_step", "clipping", "adam", "attention"]
    assert [ex.number for ex in COURSE] == list(range(1, 9))
    text = (ROOT / "docs" / "derivations.md").read_text()
    for ex in COURSE:     # every exercise points at a section that exists
        section = ex.section.split("§")[1].split()[0]
        assert f"## {section}. " in text, ex.section


@pytest.mark.parametrize("name", list(EXERCISES))
def test_the_books_own_function_passes(name):
    grade = grade_callable(EXERCISES[name], book_function(EXERCISES[name]))
    assert grade.exit_code == 0, grade.render()
    kinds = [c.kind for c in EXERCISES[name].cases()]
    assert "known" in kinds and kinds.count("random") >= 4


@pytest.mark.parametrize("name", list(catalogue.SOLUTIONS))
def test_a_learners_correct_solution_passes(name):
    grade = catalogue.grade(name, catalogue.SOLUTIONS[name])
    assert grade.exit_code == 0, grade.render()
    assert grade.diagnosis == []


def test_at_least_five_mistakes_per_exercise():
    for ex in COURSE:
        assert sum(w.exercise == ex.name for w in catalogue.CATALOGUE) >= 5, ex.name


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("wrong", catalogue.CATALOGUE,
                         ids=[f"{w.exercise}-{w.mistake}" for w in catalogue.CATALOGUE])
def test_every_mistake_gets_its_diagnosis(wrong):
    grade = catalogue.grade(wrong.exercise, wrong.source)
    assert grade.exit_code == 1
    expected = catalogue.expected_message(wrong)
    assert any(expected in line for line in grade.diagnosis), grade.render()
    assert len(grade.diagnosis) <= 2, grade.render()       # one clear diagnosis, not a list


def test_two_mistakes_at_once_name_the_outputs_to_rederive():
    source = catalogue.SOLUTIONS["rnn_step"].replace("x.T @ da", "2 * x.T @ da").replace(
        "h_prev.T @ da", "h.T @ da")
    grade = catalogue.grade("rnn_step", source)
    assert grade.exit_code == 1
    assert grade.diagnosis == ["dW_x, dW_h are wrong while dx, dh_prev, db are right: re-derive "
                               "dW_x line by line from docs/derivations.md §2 \"The vanilla RNN\"."]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")     # the catalogue's overflows, on purpose
def test_docs_table_is_generated_from_the_catalogue():
    committed = (ROOT / "docs" / "exercises.md").read_text(encoding="utf-8")
    assert committed == catalogue.markdown(), \
        "docs/exercises.md is stale: run python tests/exercise_mistakes.py --markdown " \
        "> docs/exercises.md"


# ------------------------------------------------------------------------ skeletons
@pytest.mark.parametrize("name", list(EXERCISES))
def test_the_skeleton_has_everything_but_the_answer(name, tmp_path):
    ex = EXERCISES[name]
    text = skeleton(ex)
    assert text.startswith(f"# scratchrnn exercise: {name}\n")
    assert f"def {ex.function}({', '.join(a for a, _ in ex.arguments)}):" in text
    assert ex.section in text and ex.equations.splitlines()[0] in text
    for _, shape in ex.arguments + (() if ex.returns else ex.outputs):
        assert shape in text
    assert all(line.strip() in text for line in ex.returns.splitlines())
    grade = catalogue.grade(name, text.split("\n", 1)[1])    # the body as written: not an answer
    assert grade.exit_code == 1
    assert grade.diagnosis == ["the body is still the skeleton's: replace `raise "
                               "NotImplementedError` with your code."]


# ------------------------------------------------------------------------ the command
def run_cli(capsys, *argv):
    code = main(["exercise", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def digest(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_list(capsys):
    code, out, err = run_cli(capsys, "list")
    assert code == 0 and err == ""
    positions = [out.index(f"{ex.number}. {ex.name}") for ex in COURSE]
    assert positions == sorted(positions)
    assert all(ex.section in out for ex in COURSE)


def test_start_writes_and_never_overwrites(capsys, tmp_path):
    code, out, _ = run_cli(capsys, "start", "lstm_gates", "--dir", str(tmp_path / "new"))
    path = tmp_path / "new" / "lstm_gates.py"
    assert code == 0 and path.exists() and str(path) in out
    path.write_text(path.read_text() + "\n# my work\n")
    before = digest(path)
    code, out, err = run_cli(capsys, "start", "lstm_gates", "--dir", str(tmp_path / "new"))
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "already exists" in err and "Traceback" not in err
    assert digest(path) == before


@pytest.mark.parametrize("argv, words", [
    (["start", "lstm"], "There is no exercise 'lstm'"),
    (["start", "adam", "--dir", "FILE"], "is a file, not a folder"),
])
def test_start_refuses_in_one_sentence(capsys, tmp_path, argv, words):
    (tmp_path / "FILE").write_text("mine")
    argv = [str(tmp_path / a) if a == "FILE" else a for a in argv]
    code, out, err = run_cli(capsys, *argv)
    assert code == 2 and out == "" and words in err and len(err.strip().splitlines()) == 1
    assert (tmp_path / "FILE").read_text() == "mine"


def write(tmp_path, name, exercise, body):
    path = tmp_path / name
    path.write_text(catalogue.file_text(exercise, body))
    return path


def test_check_a_passing_file(capsys, tmp_path):
    path = write(tmp_path, "lstm.py", "lstm_gates", catalogue.SOLUTIONS["lstm_gates"])
    code, out, err = run_cli(capsys, "check", str(path))
    assert code == 0, out + err
    assert "✘" not in out and out.strip().endswith("checks pass.") and "DIAGNOSIS" not in out


def test_check_a_failing_file_through_the_sandbox(capsys, tmp_path):
    wrong = next(w for w in catalogue.CATALOGUE if w.expect == "swap_if")
    path = write(tmp_path, "lstm.py", "lstm_gates", wrong.source)
    before = digest(path)
    code, out, err = run_cli(capsys, "check", str(path))
    assert code == 1 and err == ""
    assert "✘ da:" in out and "✔ dc_prev:" in out
    assert "DIAGNOSIS: the f and i blocks of da are swapped" in out
    assert digest(path) == before


SLOW_LOOP = "import numpy as np\n\ndef adam_update(param, grad, m, v, t, lr, b1, b2, eps):\n" \
            "    while True:\n        pass\n"


@pytest.mark.parametrize("case, body, words", [
    ("missing", None, "does not exist"),
    ("directory", None, "is a directory"),
    ("no header", "def adam_update(): pass\n", "names no exercise"),
    ("unknown exercise", "# scratchrnn exercise: lstm_step\ndef f(): pass\n",
     "names the exercise 'lstm_step', which does not exist"),
    ("another exercise's file", catalogue.file_text("adam", catalogue.SOLUTIONS["rnn_step"]),
     "defines rnn_step_backward, the function of the exercise 'rnn_step', but its header names "
     "'adam'"),
    ("syntax error", "# scratchrnn exercise: adam\ndef adam_update(p):\n    return p +\n",
     "has a syntax error on line 3"),
    ("endless loop at the top level", "# scratchrnn exercise: adam\n"
     "def adam_update(*a):\n    return a\nwhile True:\n    pass\n", "did not finish loading"),
    ("raises while loading", "# scratchrnn exercise: adam\nimport no_such_module\n"
     "def adam_update(*a):\n    return a\n", "importing it raised ModuleNotFoundError"),
    ("not UTF-8", b"# scratchrnn exercise: adam\n\xff\xfe", "is not a UTF-8 text file"),
    ("a device", "/dev/zero", "is not a regular file"),
    ("too large", "# scratchrnn exercise: adam\n" + "#" * 1_000_001, "too large for an exercise"),
])
def test_unusable_files_get_one_sentence_and_exit_2(capsys, tmp_path, case, body, words):
    path = tmp_path / "mine.py"
    if body == "/dev/zero":
        path = Path(body)
    elif case == "directory":
        path.mkdir()
    elif isinstance(body, bytes):
        path.write_bytes(body)
    elif body is not None:
        path.write_text(body)
    before = digest(path) if path.is_file() else None
    code, out, err = run_cli(capsys, "check", str(path), "--timeout", "2")
    assert code == 2 and out == ""
    assert words in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    if before:
        assert digest(path) == before


def test_check_refuses_a_file_for_another_exercise_when_named(capsys, tmp_path):
    path = write(tmp_path, "a.py", "adam", catalogue.SOLUTIONS["adam"])
    code, out, err = run_cli(capsys, "check", str(path), "--exercise", "clipping")
    assert code == 2 and "is the exercise 'adam', not 'clipping'" in err
    code, out, err = run_cli(capsys, "check", str(path), "--exercise", "clip")
    assert code == 2 and "There is no exercise 'clip'" in err and out == ""


@pytest.mark.parametrize("case, body, line, diagnosis", [
    ("endless loop", SLOW_LOOP, "the time limit (2 s for all cases) ran out while it ran the case "
     "'known answer'", "never returned"),
    ("raises", "def adam_update(*a):\n    raise KeyError('m')\n",
     "it raised KeyError: 'm' (line 3)", "fix the error above"),
    ("wrong shape", "import numpy as np\ndef adam_update(p, g, m, v, t, lr, b1, b2, eps):\n"
     "    return p.ravel(), m, v\n", "param has shape (6,), expected (2, 3)",
     "param has shape (6,) but should have (2, 3)"),
    ("NaN", "import numpy as np\ndef adam_update(p, g, m, v, t, lr, b1, b2, eps):\n"
     "    return p * np.nan, b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g\n",
     "param: the book NaN/inf", "param contains NaN or inf"),
    ("too much memory", "import numpy as np\ndef adam_update(*a):\n"
     "    return np.ones(1 << 31)\n", "ran out of memory (limit 512 MB)", "more memory"),
    ("exits", "import os\ndef adam_update(*a):\n    os._exit(3)\n",
     "it ended the Python process (exit status 3)", "ended the Python process"),
    ("returns a string", "def adam_update(*a):\n    return 'done'\n",
     "not an array", "fix the error above"),
])
def test_misbehaving_code_gets_one_line_and_exit_1(capsys, tmp_path, case, body, line, diagnosis):
    path = write(tmp_path, "a.py", "adam", body)
    code, out, err = run_cli(capsys, "check", str(path), "--timeout", "2", "--memory-mb", "512")
    assert code == 1 and err == "", err
    assert line in out and "Traceback" not in out
    assert any(diagnosis in d for d in out.splitlines() if d.startswith("DIAGNOSIS")), out


def test_megabytes_of_prints_are_counted_not_shown(capsys, tmp_path):
    body = textwrap.dedent(catalogue.SOLUTIONS["adam"]).replace(
        "    m = beta1", "    print('x' * 200_000)\n    m = beta1", 1)
    path = write(tmp_path, "a.py", "adam", body)
    code, out, err = run_cli(capsys, "check", str(path))
    assert code == 0, out
    assert "note: your code printed 1,200,006 characters (not shown)" in out
    assert len(out) < 3000 and err == ""


def test_check_in_a_notebook_cell(capsys):
    from scratchrnn.learn import check
    fn = catalogue.load(catalogue.SOLUTIONS["clipping"], "clip_by_global_norm")
    grade = check("clipping", fn)
    assert grade.passed and "All 9 checks pass." in capsys.readouterr().out
    with pytest.raises(ValueError, match="no exercise 'clip'"):
        check("clip", fn)
