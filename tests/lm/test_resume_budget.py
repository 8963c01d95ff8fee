"""The budget on ``scratchrnn train --resume`` means what it says.

--max-steps, --max-epochs and --max-minutes are the run's totals, counted from its first step,
on --resume as everywhere (the checkpoint, the progress bar, ``Trainer.resume``); the
checkpoint's limits stand unless given again, so a resumed run with no budget flag ends where
it would have ended (tests/test_resume.py checks it bit for bit after a kill). A resume whose
budget is already spent trains nothing: one sentence says which limit, and the total that would
give more; exit status 2; every file of the run is left as it was.
"""
import hashlib

import pytest

from scratchrnn.cli import build_parser, main
from scratchrnn.cli.train import budget_spent_sentence
from scratchrnn.lm.checkpoint import load_checkpoint
from scratchrnn.lm.run import TrainConfig, Trainer

FLAGS = ["--corpus", "python-docs", "--max-chars", "3000", "--cell", "gru", "--rnn-size", "8",
         "--num-layers", "1", "--seq-length", "8", "--batch-size", "2", "--eval-every", "4",
         "--no-progress", "--sample-length", "0", "--seed", "1"]


def _train(capsys, *args):
    code = main(["train", *FLAGS, *[str(a) for a in args]])
    out, err = capsys.readouterr()
    return code, out, err


def _progress(path):
    return load_checkpoint(str(path))[1]["progress"]


def _snapshot(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def _one_sentence_error(code, err):
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    line = lines[0]
    assert line.startswith("scratchrnn train: error: ") and line.endswith(".")
    assert line.count(". ") == 0 and "Traceback" not in err
    return line


def test_max_steps_on_resume_is_the_total(tmp_path, capsys):
    run = tmp_path / "run"
    code, _, err = _train(capsys, "--out", run, "--max-steps", 6, "--max-minutes", 100)
    assert code == 0, err
    code, out, err = _train(capsys, "--resume", run / "last.npz", "--max-steps", 11)
    assert code == 0, err
    assert _progress(run / "last.npz")["step"] == 11                 # 11 in all: 5 more
    assert "stopped: max_steps" in out


def test_a_total_already_reached_says_so_and_how_to_give_more(tmp_path, capsys):
    run = tmp_path / "run"
    assert _train(capsys, "--out", run, "--max-steps", 6, "--max-minutes", 100)[0] == 0
    before = _snapshot(run)
    code, out, err = _train(capsys, "--resume", run / "last.npz", "--max-steps", 5)
    line = _one_sentence_error(code, err)
    assert "already spent, for it has trained 6 steps and --max-steps 5 counts the whole run" in line
    assert "for example --max-steps 11 for 5 more steps" in line
    assert _snapshot(run) == before
    assert out == ""                                                  # no sample, no training


def test_max_minutes_issue_case(tmp_path, capsys):
    """The issue's case: a run that used its minutes, resumed with a small --max-minutes,
    ended in a second with zero steps and "stopped: max_minutes". Now it says why, and the
    total it suggests trains."""
    run = tmp_path / "run"
    assert _train(capsys, "--out", run, "--max-minutes", 0.02)[0] == 0
    before = _progress(run / "last.npz")
    assert before["elapsed_s"] > 0.3                                   # more than 0.005 minutes
    snapshot = _snapshot(run)
    code, _, err = _train(capsys, "--resume", run / "last.npz", "--max-minutes", 0.005)
    line = _one_sentence_error(code, err)
    assert "--max-minutes 0.005 counts the whole run" in line and "for 0.005 more minutes" in line
    assert _snapshot(run) == snapshot
    suggested = float(line.split("for example --max-minutes ")[1].split()[0])
    code, out, err = _train(capsys, "--resume", run / "last.npz", "--max-minutes", suggested)
    assert code == 0, err
    after = _progress(run / "last.npz")
    assert after["step"] > before["step"] and after["elapsed_s"] > before["elapsed_s"]
    assert "stopped: max_minutes" in out


def test_flagless_resume_of_a_finished_run(tmp_path, capsys):
    run = tmp_path / "run"
    assert _train(capsys, "--out", run, "--max-steps", 4, "--max-minutes", 100)[0] == 0
    before = _snapshot(run)
    code, _, err = _train(capsys, "--resume", run / "last.npz")
    line = _one_sentence_error(code, err)
    assert "trained 4 steps and --max-steps 4 counts the whole run" in line
    assert "--max-steps 8 for 4 more steps" in line
    assert _snapshot(run) == before


def test_a_saved_limit_that_is_spent_is_named(tmp_path, capsys):
    """--max-minutes given on resume, but the checkpoint's --max-steps is reached: the sentence
    names the limit that stops it, not the one given."""
    run = tmp_path / "run"
    assert _train(capsys, "--out", run, "--max-steps", 4, "--max-minutes", 100)[0] == 0
    code, _, err = _train(capsys, "--resume", run / "last.npz", "--max-minutes", 200)
    line = _one_sentence_error(code, err)
    assert "--max-steps 4 counts the whole run" in line


def test_the_sentence_for_epochs_and_patience(tmp_path, capsys):
    run = tmp_path / "run"
    assert _train(capsys, "--out", run, "--max-steps", 4, "--max-minutes", 100)[0] == 0
    trainer = Trainer.resume(str(run / "last.npz"), overrides={"max_epochs": 0.001, "max_steps": 100})
    assert trainer.budget_spent() == "max_epochs"
    sentence = budget_spent_sentence(trainer, "max_epochs")
    assert "--max-epochs 0.001 counts the whole run" in sentence and "more epochs" in sentence
    trainer = Trainer.resume(str(run / "last.npz"), overrides={"patience": 1, "max_steps": 100})
    trainer.progress.evals_since_best = 2
    assert trainer.budget_spent() == "early_stopping"
    assert "give a larger --patience" in budget_spent_sentence(trainer, "early_stopping")


def test_in_process_resume_reads_a_budget_as_the_total(tmp_path):
    cfg = TrainConfig(source="python-docs", max_chars=3000, cell="gru", hidden_size=8, num_layers=1,
                      seq_len=8, batch_size=2, eval_every=4, max_steps=5, max_minutes=None,
                      progress=False, out_dir=str(tmp_path / "r"))
    assert Trainer(cfg).run().steps == 5
    t = Trainer.resume(str(tmp_path / "r" / "last.npz"), overrides={"max_steps": 7})
    assert t.budget_spent() is None and t.run().steps == 7
    t = Trainer.resume(str(tmp_path / "r" / "last.npz"))
    assert t.budget_spent() == "max_steps"                          # 7 in all, reached


@pytest.mark.parametrize("flag,words", [("--max-minutes", ["minutes of wall-clock training time"]),
                                        ("--max-steps", ["training steps"]),
                                        ("--max-epochs", ["passes over the training split"])])
def test_help_says_what_the_budget_counts(flag, words):
    sub = build_parser()._subparsers._group_actions[0].choices["train"]
    flat = " ".join(sub.format_help().split())
    assert flag in flat
    for w in words:
        assert w in flat, w
    assert "on --resume they are its totals" in flat and "give a larger total" in flat
