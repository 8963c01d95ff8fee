"""The budget on ``scratchrnn train --resume`` means what it says.

On --resume a budget flag (--max-steps, --max-epochs, --max-minutes) is MORE of the same,
counted from the checkpoint; with no budget flag the run finishes the budget it was started
with (its totals; tests/test_resume.py checks that a killed run so resumed ends bit-identical
to one never stopped). A resumed run with nothing left to train says so in one sentence,
with how to give it more, and leaves its checkpoint untouched.
"""
import hashlib
import json

import numpy as np
import pytest

from scratchrnn.cli import build_parser, main
from scratchrnn.cli.train import budget_spent_sentence
from scratchrnn.lm.checkpoint import load_checkpoint
from scratchrnn.lm.run import TrainConfig, Trainer

FLAGS = ["--corpus", "python-docs", "--max-chars", "3000", "--cell", "gru", "--rnn-size", "8",
         "--num-layers", "1", "--seq-length", "8", "--batch-size", "2", "--eval-every", "4",
         "--no-progress", "--sample-length", "0", "--seed", "1"]


def _train(capsys, *args):
    code = main(["train", *FLAGS, *args])
    out, err = capsys.readouterr()
    return code, out, err


def _meta(path):
    return load_checkpoint(str(path))[1]


def _step(path):
    return _meta(path)["progress"]["step"]


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_max_steps_on_resume_means_more_steps(tmp_path, capsys):
    run = tmp_path / "run"
    code, _, err = _train(capsys, "--out", str(run), "--max-steps", "6", "--max-minutes", "100")
    assert code == 0, err
    assert _step(run / "last.npz") == 6
    code, out, err = _train(capsys, "--resume", str(run / "last.npz"), "--max-steps", "5")
    assert code == 0, err
    assert _step(run / "last.npz") == 11                    # 6 + 5 more, not 5 in total
    assert "stopped: max_steps" in out
    # the checkpoint keeps the run's total, so a later flagless resume has nothing left
    assert json.loads(json.dumps(_meta(run / "last.npz")["train"]))["max_steps"] == 11


def test_max_minutes_on_resume_means_more_minutes(tmp_path, capsys):
    """The issue's case: a run that used its minutes, resumed with a small --max-minutes,
    trained zero steps; now it trains for that many more minutes."""
    run = tmp_path / "run"
    code, _, err = _train(capsys, "--out", str(run), "--max-minutes", "0.02")
    assert code == 0, err
    before = _meta(run / "last.npz")["progress"]
    assert before["elapsed_s"] > 0.3            # more than the budget the resume gives
    code, out, err = _train(capsys, "--resume", str(run / "last.npz"), "--max-minutes", "0.005")
    assert code == 0, err
    after = _meta(run / "last.npz")["progress"]
    assert after["step"] > before["step"]
    assert after["elapsed_s"] > before["elapsed_s"]
    assert "stopped: max_minutes" in out and "nothing was trained" not in out


def test_flagless_resume_of_a_finished_run_says_its_budget_is_spent(tmp_path, capsys):
    run = tmp_path / "run"
    code, _, err = _train(capsys, "--out", str(run), "--max-steps", "4", "--max-minutes", "100")
    assert code == 0, err
    last = run / "last.npz"
    digest, files = _digest(last), sorted(p.name for p in run.iterdir())
    code, out, err = _train(capsys, "--resume", str(last))
    assert code == 0, err
    lines = [ln for ln in out.splitlines() if "nothing was trained" in ln]
    assert len(lines) == 1, out
    sentence = lines[0]
    assert "already spent (it has trained 4 of its 4 steps)" in sentence
    assert "--max-steps N" in sentence and "count from the checkpoint" in sentence
    assert sentence.count(". ") == 0 and sentence.endswith(".")
    assert _digest(last) == digest                          # nothing saved is touched
    assert sorted(p.name for p in run.iterdir()) == files
    assert err == ""


def test_spent_minutes_are_named_in_minutes(tmp_path, capsys):
    run = tmp_path / "run"
    assert _train(capsys, "--out", str(run), "--max-steps", "3", "--max-minutes", "100")[0] == 0
    trainer = Trainer.resume(str(run / "last.npz"), overrides={"max_minutes": 1e-6, "max_steps": 100})
    assert trainer.budget_spent() == "max_minutes"
    sentence = budget_spent_sentence(trainer, "max_minutes")
    assert "already spent (it has trained" in sentence and "of its 1e-06 minutes" in sentence
    assert "--max-minutes M" in sentence and sentence.count(". ") == 0


def test_a_budget_flag_counts_the_saved_limits_from_here_too(tmp_path, capsys):
    """--max-steps on resume of a run whose saved --max-minutes is spent trains: the saved
    limit counts from the checkpoint as well, as a fresh run's default would."""
    run = tmp_path / "run"
    assert _train(capsys, "--out", str(run), "--max-minutes", "0.005")[0] == 0
    before = _step(run / "last.npz")
    code, out, err = _train(capsys, "--resume", str(run / "last.npz"), "--max-steps", "3")
    assert code == 0, err
    after = _step(run / "last.npz")
    assert before < after <= before + 3


def test_in_process_resume_reads_a_budget_as_the_total(tmp_path):
    """The library's Trainer.resume keeps totals (what an interrupted run needs to finish
    exactly); count_budget_from_here turns them into "more"."""
    cfg = TrainConfig(source="python-docs", max_chars=3000, cell="gru", hidden_size=8, num_layers=1,
                      seq_len=8, batch_size=2, eval_every=4, max_steps=5, max_minutes=None,
                      progress=False, out_dir=str(tmp_path / "r"))
    first = Trainer(cfg).run()
    assert first.steps == 5
    t = Trainer.resume(first.last_path, overrides={"max_steps": 7})
    assert t.budget_spent() is None
    assert t.run().steps == 7
    t = Trainer.resume(first.last_path, overrides={"max_steps": 7})
    assert t.budget_spent() == "max_steps"                  # 7 in total, already reached
    t.count_budget_from_here()
    assert t.cfg.max_steps == 14 and t.budget_spent() is None


@pytest.mark.parametrize("flag,words", [("--max-minutes", ["wall-clock", "MORE"]),
                                        ("--max-steps", ["training steps"]),
                                        ("--max-epochs", ["passes over the training split"])])
def test_help_says_what_the_budget_counts(flag, words):
    text = build_parser()._subparsers._group_actions[0].choices["train"].format_help()
    flat = " ".join(text.split())
    assert flag in flat
    for w in words:
        assert w in flat, w
    assert "count from the checkpoint" in flat or "counted from the checkpoint" in flat


def test_resume_result_model_continues_from_the_checkpoint(tmp_path, capsys):
    """The extra steps start from the saved weights, not from a fresh model."""
    run = tmp_path / "run"
    assert _train(capsys, "--out", str(run), "--max-steps", "4", "--max-minutes", "100")[0] == 0
    saved = load_checkpoint(str(run / "last.npz"))[0]
    assert _train(capsys, "--resume", str(run / "last.npz"), "--max-steps", "1")[0] == 0
    again = load_checkpoint(str(run / "last.npz"))[0]
    changed = [k for k in saved if k.startswith("param") and not np.array_equal(saved[k], again[k])]
    assert changed                                           # one more update happened
    assert _step(run / "last.npz") == 5
