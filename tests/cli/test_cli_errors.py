"""Bad input to the ``scratchrnn`` command: one sentence on stderr, exit status 2,
no traceback, and no existing file overwritten or lost.

Most cases call ``scratchrnn.cli.main`` in process (fast); the ``subprocess`` ones run
the installed command for real, so the whole path -- entry point, imports, error
printing, exit status -- is what a user sees.
"""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from folder_state import snapshot
from scratchrnn import cli
from scratchrnn.core.backend import cupy_unavailable_reason
from scratchrnn.lm.checkpoint import load_checkpoint, save_checkpoint

SMALL = ["--rnn-size", "8", "--num-layers", "1", "--seq-length", "8", "--batch-size", "2",
         "--max-steps", "4", "--eval-every", "2", "--max-minutes", "100",
         "--no-progress", "--sample-length", "0"]


# ----------------------------------------------------------------- helpers
def _env():
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", SCRATCHRNN_BACKEND="numpy",
               MPLBACKEND="Agg")
    return env


def _command():
    """The installed console script when it is this interpreter's, else ``python -m``."""
    script = shutil.which("scratchrnn")
    if script and os.path.dirname(os.path.realpath(script)) == os.path.dirname(
            os.path.realpath(sys.executable)):
        return [script]
    return [sys.executable, "-m", "scratchrnn.cli"]


def run_subprocess(args, cwd):
    p = subprocess.run(_command() + list(args), cwd=cwd, env=_env(), capture_output=True,
                       text=True, timeout=300)
    return p.returncode, p.stdout, p.stderr


def run_in_process(args, capsys):
    try:
        code = cli.main([str(a) for a in args])
    except SystemExit as exc:          # argparse usage errors
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_sentence_error(code, err, command, *fragments):
    """Exit status 2 and exactly one stderr line 'scratchrnn CMD: error: ...', no traceback."""
    assert "Traceback" not in err, err
    assert "Warning" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got:\n{err}"
    prefix = f"scratchrnn {command}: error: "
    assert lines[0].startswith(prefix), lines[0]
    message = lines[0][len(prefix):]
    assert len(message) > 10 and "\n" not in message
    for fragment in fragments:
        assert fragment.lower() in message.lower(), f"{fragment!r} not in {message!r}"
    assert code == 2, f"exit status {code}, stderr: {err}"
    return message


def train_small_run(out, capsys, *extra):
    code, _, err = run_in_process(["train", "--corpus", "python-docs", "--max-chars", "3000",
                                   *SMALL, "--out", out, *extra], capsys)
    assert code == 0, err
    return out


@pytest.fixture(scope="module")
def good_run(tmp_path_factory):
    """A finished tiny run: its directory (read-only use; tests check it is unchanged)."""
    out = tmp_path_factory.mktemp("good") / "run"
    code = cli.main(["train", "--corpus", "python-docs", "--max-chars", "3000", *SMALL,
                     "--cell", "lstm", "--out", str(out)])
    assert code == 0
    return out


@pytest.fixture
def files(tmp_path):
    """Bad and good text files, and damaged checkpoints made from a real one later."""
    d = tmp_path / "files"
    d.mkdir()
    (d / "empty.txt").write_bytes(b"")
    (d / "latin1.txt").write_bytes("caf\u00e9 cr\u00e8me br\u00fbl\u00e9e\n".encode("latin-1") * 20)
    (d / "short.txt").write_text("hello world, a tiny text.\n")
    (d / "garbage.npz").write_bytes(np.random.default_rng(0).bytes(4000))
    return d


def damaged_copies(run, d):
    """garbage bytes, the first half of a real checkpoint, and a foreign .npz."""
    data = (run / "last.npz").read_bytes()
    (d / "truncated.npz").write_bytes(data[:len(data) // 2])
    save_checkpoint(d / "foreign.npz", {"w": np.zeros(3)}, {"kind": "something-else"})
    return {"garbage": d / "garbage.npz", "truncated": d / "truncated.npz",
            "foreign": d / "foreign.npz", "missing": d / "no-such-checkpoint.npz"}


# ------------------------------------------------------------ bad text input
def test_missing_text_file_subprocess(tmp_path):
    out = tmp_path / "out"
    code, _, err = run_subprocess(["train", "--text", "nope.txt", *SMALL, "--out", out], tmp_path)
    assert_one_sentence_error(code, err, "train", "nope.txt", "does not exist")
    assert not out.exists()


def test_non_utf8_text_file_subprocess(tmp_path, files):
    out = tmp_path / "out"
    code, _, err = run_subprocess(["train", "--text", files / "latin1.txt", *SMALL, "--out", out],
                                  tmp_path)
    assert_one_sentence_error(code, err, "train", "UTF-8")
    assert not out.exists()


@pytest.mark.parametrize("name,args,fragments", [
    ("empty", ["--text", "{files}/empty.txt"], ["empty"]),
    ("directory", ["--text", "{files}"], ["directory"]),
    ("shorter than one window", ["--text", "{files}/short.txt", "--seq-length", "64",
                                 "--batch-size", "4"], ["tokens", "needs at least"]),
    ("text and corpus", ["--text", "{files}/short.txt", "--corpus", "python-docs"], ["either"]),
])
def test_bad_training_text(tmp_path, files, capsys, name, args, fragments):
    out = tmp_path / "out"
    args = [a.format(files=files) for a in args]
    code, _, err = run_in_process(["train", *SMALL, *args, "--out", out], capsys)
    assert_one_sentence_error(code, err, "train", *fragments)
    assert not out.exists()


# ------------------------------------------------------- impossible settings
@pytest.mark.parametrize("flags,fragments", [
    (["--rnn-size", "0"], ["hidden-size", "positive"]),
    (["--batch-size", "-1"], ["batch-size", "positive"]),
    (["--seq-length", "0"], ["seq-length", "positive"]),
    (["--num-layers", "0"], ["num-layers", "positive"]),
    (["--lr", "-1"], ["lr", "positive"]),
    (["--lr", "0"], ["lr", "positive"]),
    (["--dropout", "1.5"], ["dropout"]),
    (["--dropout", "-0.1"], ["dropout"]),
    (["--embedding-size", "-1"], ["embedding-size"]),
    (["--max-steps", "0"], ["max-steps"]),
    (["--eval-every", "0"], ["eval-every"]),
    (["--grad-clip", "-1"], ["grad-clip"]),
    (["--max-chars", "0"], ["max-chars"]),
    (["--split", "0.5,0.5"], ["split"]),
    (["--split", "0.9,0.2,0.1"], ["sum to 1"]),
    (["--split", "1,0,0"], ["val split"]),
    (["--cell", "transformer"], ["unknown cell", "transformer"]),
    (["--optimizer", "lbfgs"], ["lbfgs"]),
], ids=lambda v: " ".join(v) if isinstance(v, list) and v and v[0].startswith("--") else None)
def test_impossible_training_settings(tmp_path, capsys, flags, fragments):
    out = tmp_path / "out"
    code, _, err = run_in_process(["train", "--corpus", "python-docs", "--max-chars", "2000",
                                   *SMALL, *flags, "--out", out], capsys)
    assert_one_sentence_error(code, err, "train", *fragments)
    assert not out.exists()


def test_unknown_corpus(tmp_path, capsys):
    code, _, err = run_in_process(["train", "--corpus", "linux-kernel", *SMALL,
                                   "--out", tmp_path / "o"], capsys)
    assert_one_sentence_error(code, err, "train", "unknown corpus", "python-docs")


def test_argparse_errors_are_one_line_too(tmp_path, capsys):
    code, _, err = run_in_process(["train", "--rnn-size", "many"], capsys)
    assert_one_sentence_error(code, err, "train", "--rnn-size")
    code, _, err = run_in_process(["sample", "x.npz", "--strategy", "beam"], capsys)
    assert_one_sentence_error(code, err, "sample", "beam")


def test_out_path_that_is_a_file_subprocess(tmp_path, files):
    target = files / "short.txt"
    before = target.read_bytes()
    code, _, err = run_subprocess(["train", "--corpus", "python-docs", "--max-chars", "2000",
                                   *SMALL, "--out", target], tmp_path)
    assert_one_sentence_error(code, err, "train", "is a file")
    assert target.read_bytes() == before


# ---------------------------------------------------- existing runs are safe
def test_training_into_an_existing_run_is_refused(good_run, capsys):
    before = snapshot(good_run)
    code, _, err = run_in_process(["train", "--corpus", "python-docs", "--max-chars", "3000",
                                   *SMALL, "--out", good_run], capsys)
    assert_one_sentence_error(code, err, "train", "already holds a run", "--resume")
    assert snapshot(good_run) == before


@pytest.mark.parametrize("flags,fragments", [
    (["--cell", "gru"], ["cell", "another architecture"]),
    (["--rnn-size", "64"], ["hidden_size", "another architecture"]),
    (["--num-layers", "3"], ["num_layers"]),
    (["--embedding-size", "8"], ["embedding_size"]),
    (["--max-chars", "4000"], ["max_chars"]),
    (["--corpus", "python-stdlib"], ["source"]),
    (["--level", "word"], ["level"]),
    (["--optimizer", "sgd"], ["adam", "sgd"]),
])
def test_resume_with_another_architecture(good_run, capsys, flags, fragments):
    before = snapshot(good_run)
    code, _, err = run_in_process(["train", "--resume", good_run / "last.npz", *flags], capsys)
    assert_one_sentence_error(code, err, "train", *fragments)
    assert snapshot(good_run) == before


def test_resume_with_another_architecture_subprocess(good_run, tmp_path):
    before = snapshot(good_run)
    code, _, err = run_subprocess(["train", "--resume", good_run / "last.npz", "--cell", "gru"],
                                  tmp_path)
    assert_one_sentence_error(code, err, "train", "cell", "another architecture")
    assert snapshot(good_run) == before


# ------------------------------------------------------- damaged checkpoints
@pytest.mark.parametrize("kind", ["garbage", "truncated", "foreign", "missing"])
@pytest.mark.parametrize("command", ["sample", "eval", "train --resume"])
def test_damaged_checkpoints(good_run, files, capsys, kind, command):
    path = damaged_copies(good_run, files)[kind]
    before = snapshot(files)
    args = {"sample": ["sample", path, "--length", "5"], "eval": ["eval", path],
            "train --resume": ["train", "--resume", path]}[command]
    code, _, err = run_in_process(args, capsys)
    fragment = {"garbage": "corrupt", "truncated": "corrupt", "foreign": "not a scratchrnn",
                "missing": "no checkpoint"}[kind]
    assert_one_sentence_error(code, err, command.split()[0], fragment)
    assert snapshot(files) == before


def test_garbage_checkpoint_to_sample_subprocess(good_run, files, tmp_path):
    path = damaged_copies(good_run, files)["garbage"]
    code, out, err = run_subprocess(["sample", path, "--length", "5"], tmp_path)
    assert_one_sentence_error(code, err, "sample", "corrupt")
    assert out == ""


def test_truncated_checkpoint_to_eval_and_resume_subprocess(good_run, files, tmp_path):
    path = damaged_copies(good_run, files)["truncated"]
    code, _, err = run_subprocess(["eval", path], tmp_path)
    assert_one_sentence_error(code, err, "eval", "corrupt")
    before = snapshot(files)
    code, _, err = run_subprocess(["train", "--resume", path], tmp_path)
    assert_one_sentence_error(code, err, "train", "corrupt")
    assert snapshot(files) == before


def test_checkpoint_whose_arrays_disagree_with_its_metadata(good_run, tmp_path, capsys):
    """A valid file whose parameters have the wrong shapes for the model it describes."""
    arrays, meta = load_checkpoint(good_run / "last.npz")
    arrays["param/head.W"] = arrays["param/head.W"][:, :-1]
    bad = tmp_path / "inconsistent.npz"
    save_checkpoint(bad, arrays, meta)
    for args, command in ((["sample", bad, "--length", "3"], "sample"), (["eval", bad], "eval"),
                          (["train", "--resume", bad], "train")):
        code, _, err = run_in_process(args, capsys)
        assert_one_sentence_error(code, err, command, "head.W")


# ---------------------------------------------------------- sample and eval
@pytest.mark.parametrize("flags,fragments", [
    (["--length", "-5"], ["length"]),
    (["--prime", "\u2603 snow"], ["'\u2603'", "vocabulary"]),
    (["--temperature", "0"], ["temperature"]),
    (["--temperature", "-1"], ["temperature"]),
    (["--strategy", "topk"], ["top-k"]),
    (["--strategy", "topk", "--top-k", "0"], ["top-k"]),
])
def test_bad_sample_options(good_run, capsys, flags, fragments):
    code, out, err = run_in_process(["sample", good_run / "last.npz", *flags], capsys)
    assert_one_sentence_error(code, err, "sample", *fragments)
    assert out == ""


def test_unknown_prime_characters_subprocess(good_run, tmp_path):
    code, out, err = run_subprocess(["sample", good_run / "last.npz", "--prime", "def \u00fe()"],
                                    tmp_path)
    assert_one_sentence_error(code, err, "sample", "vocabulary")


@pytest.mark.parametrize("flags,fragments", [
    (["--seq-length", "0"], ["seq-length"]),
    (["--batch-size", "0"], ["batch-size"]),
    (["--batch-size", "-3"], ["batch-size"]),
    (["--max-tokens", "0"], ["max-tokens"]),
    (["--text", "{files}/nope.txt"], ["does not exist"]),
    (["--text", "{files}/empty.txt"], ["empty"]),
    (["--text", "{files}/latin1.txt"], ["UTF-8"]),
])
def test_bad_eval_options(good_run, files, capsys, flags, fragments):
    flags = [f.format(files=files) for f in flags]
    code, out, err = run_in_process(["eval", good_run / "last.npz", *flags], capsys)
    assert_one_sentence_error(code, err, "eval", *fragments)
    assert out == ""


def test_eval_seq_length_zero_subprocess(good_run, tmp_path):
    # was a ZeroDivisionError traceback
    code, _, err = run_subprocess(["eval", good_run / "last.npz", "--seq-length", "0"], tmp_path)
    assert_one_sentence_error(code, err, "eval", "seq-length")


# ------------------------------------------------------------ no GPU here
@pytest.mark.skipif(cupy_unavailable_reason() is None, reason="a GPU is available here")
def test_cupy_backend_without_gpu_subprocess(tmp_path):
    out = tmp_path / "out"
    code, _, err = run_subprocess(["train", "--corpus", "python-docs", "--max-chars", "2000",
                                   *SMALL, "--backend", "cupy", "--out", out], tmp_path)
    assert_one_sentence_error(code, err, "train", "cupy")
    assert not out.exists()


@pytest.mark.skipif(cupy_unavailable_reason() is None, reason="a GPU is available here")
@pytest.mark.parametrize("command", ["sample", "eval"])
def test_cupy_backend_without_gpu(good_run, capsys, command):
    code, _, err = run_in_process([command, good_run / "last.npz", "--backend", "cupy"], capsys)
    assert_one_sentence_error(code, err, command, "cupy")


# --------------------------------------------------------------- divergence
def test_diverging_resume_stops_and_keeps_the_last_good_checkpoint_subprocess(tmp_path, capsys):
    """Resume a healthy run with an absurd learning rate: the loss overflows to NaN, the run
    stops with one sentence, and every file of the run -- last.npz above all -- is
    byte-identical afterwards."""
    run = train_small_run(tmp_path / "run", capsys)
    before = snapshot(run)
    last = (run / "last.npz").read_bytes()
    code, _, err = run_subprocess(["train", "--resume", run / "last.npz", "--lr", "1e38",
                                   "--max-steps", "60", "--eval-every", "1000"], tmp_path)
    message = assert_one_sentence_error(code, err, "train", "loss became", "last.npz", "kept")
    assert "nan" in message or "inf" in message
    assert (run / "last.npz").read_bytes() == last
    assert snapshot(run) == before


def test_divergence_caught_at_evaluation_saves_nothing(tmp_path, capsys):
    """With an evaluation after every step the NaN shows up in the val loss first; no
    checkpoint may be written from the broken model."""
    run = train_small_run(tmp_path / "run", capsys)
    before = snapshot(run)
    code, _, err = run_in_process(["train", "--resume", run / "last.npz", "--lr", "1e38",
                                   "--max-steps", "60", "--eval-every", "1"], capsys)
    # the evaluation of a healthy step may print its one progress line first
    err = "\n".join(line for line in err.splitlines() if not line.startswith("step "))
    assert_one_sentence_error(code, err, "train", "loss became", "kept")
    assert snapshot(run) == before
    _, meta = load_checkpoint(run / "last.npz")
    assert all(np.isfinite(v["loss"]) for v in meta["history"]["val"])


def test_divergence_in_a_fresh_run(tmp_path, capsys):
    out = tmp_path / "fresh"
    code, _, err = run_in_process(["train", "--corpus", "python-docs", "--max-chars", "2000",
                                   *SMALL, "--lr", "1e38", "--max-steps", "30",
                                   "--eval-every", "1000", "--out", out], capsys)
    assert_one_sentence_error(code, err, "train", "loss became", "no checkpoint was written")
    assert not (out / "last.npz").exists()


def test_sigterm_outside_a_training_loop_is_one_sentence_and_exit_143(monkeypatch, capsys):
    """SIGTERM while a command loads data or builds a model (no training loop to save
    yet) ends it with one sentence and 128 + 15, not silently."""
    import os
    import signal
    import time

    from scratchrnn import cli
    from scratchrnn.cli import gradcheck

    def terminated_midway(args):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)                      # the handler interrupts this
        raise AssertionError("SIGTERM was not delivered")

    monkeypatch.setattr(gradcheck, "run", terminated_midway)
    before = signal.getsignal(signal.SIGTERM)
    assert cli.main(["gradcheck"]) == 128 + signal.SIGTERM
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["scratchrnn gradcheck: stopped by SIGTERM."]
    assert signal.getsignal(signal.SIGTERM) is before          # the handler is put back
