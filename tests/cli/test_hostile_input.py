"""Careless and hostile input to every command: one sentence on stderr, exit status 2, no
traceback, and every file already on disk byte-identical afterwards.

The table runs each case through ``scratchrnn.cli.main`` in process (fast); the cases that
need a real process (a full device or a closed pipe on stdout, signals) run the command.
``tests/test_cli_errors.py`` holds the older cases; this file covers damaged and hostile
checkpoints, numbers that are not finite or out of range, the environment, and output that
cannot be written.
"""
import hashlib
import io
import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from npz_bytes import meta_npy, npy, zip_of
from scratchrnn import cli
from scratchrnn.lm.checkpoint import META_KEY, load_checkpoint, save_checkpoint

SMALL = ["--rnn-size", "8", "--num-layers", "1", "--seq-length", "8", "--batch-size", "2",
         "--max-steps", "4", "--eval-every", "2", "--max-minutes", "100",
         "--no-progress", "--sample-length", "0"]


# ----------------------------------------------------------------- helpers
def env(**extra):
    e = dict(os.environ)
    e.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", SCRATCHRNN_BACKEND="numpy",
             MPLBACKEND="Agg")
    e.update(extra)
    return e


def run_in_process(args, capsys):
    try:
        code = cli.main([str(a) for a in args])
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_sentence(code, err, command, *fragments):
    """Exit status 2 and exactly one stderr line 'scratchrnn CMD: error: <sentence>.'"""
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got:\n{err}"
    prefix = f"scratchrnn {command}: error: "
    assert lines[0].startswith(prefix), lines[0]
    message = lines[0][len(prefix):]
    assert len(message) > 10 and message.endswith("."), message
    for fragment in fragments:
        assert fragment.lower() in message.lower(), f"{fragment!r} not in {message!r}"
    assert code == 2, f"exit status {code}, stderr: {err}"
    return message


def snapshot(*directories):
    """{path: sha256} of every regular file under ``directories``."""
    result = {}
    for directory in directories:
        for root, _, files in os.walk(directory):
            for name in files:
                path = os.path.join(root, name)
                if os.path.isfile(path):
                    with open(path, "rb") as f:
                        result[path] = hashlib.sha256(f.read()).hexdigest()
    return result


@pytest.fixture(scope="module")
def good_run(tmp_path_factory):
    """A finished tiny char-level LSTM run with an embedding (read-only use)."""
    out = tmp_path_factory.mktemp("good") / "run"
    code = cli.main(["train", "--corpus", "python-docs", "--max-chars", "3000", *SMALL,
                     "--embedding-size", "5", "--out", str(out)])
    assert code == 0
    return out


# ------------------------------------------------------- hostile checkpoints
def _with_meta(arrays, meta, edit):
    meta = json.loads(json.dumps(meta))
    edit(meta)
    meta.pop("format_version", None)
    return arrays, meta


def _with_array(arrays, meta, name, value):
    arrays = dict(arrays)
    if value is None:
        del arrays[name]
    else:
        arrays[name] = value
    return arrays, {k: v for k, v in meta.items() if k != "format_version"}


def _nan_head(arrays):
    b = arrays["param/head.b"].copy()
    b[0] = np.nan
    return b


# name -> (make(arrays, meta) -> (arrays, meta), fragment of the message)
SCHEMA_CASES = {
    "vocab longer than embedding": (lambda a, m: _with_meta(a, m, lambda d: d["vocab"]["tokens"].append("\uffff")),
                                    "vocabulary has"),
    "integer parameters": (lambda a, m: _with_array(a, m, "param/head.W", a["param/head.W"].astype(np.int64)),
                           "'param/head.W' is int64"),
    "complex parameters": (lambda a, m: _with_array(a, m, "param/embed.W", a["param/embed.W"].astype(np.complex64)),
                           "only booleans, integers and real floats"),
    "float64 parameters": (lambda a, m: _with_array(a, m, "param/head.b", a["param/head.b"].astype(np.float64)),
                           "'param/head.b' is float64"),
    "NaN parameters": (lambda a, m: _with_array(a, m, "param/head.b", _nan_head(a)), "NaN"),
    "missing parameter": (lambda a, m: _with_array(a, m, "param/rnn.l0.W_h", None), "lacks the array"),
    "optimizer slot of the wrong shape": (
        lambda a, m: _with_array(a, m, "optim/v/head.W", a["optim/v/head.W"][:, :-1]), "'optim/v/head.W' has shape"),
    "missing model key": (lambda a, m: _with_meta(a, m, lambda d: d["model"].pop("hidden_size")),
                          "lacks 'hidden_size'"),
    "string hidden size": (lambda a, m: _with_meta(a, m, lambda d: d["model"].update(hidden_size="8")),
                           "model.hidden_size must be an integer"),
    "negative step": (lambda a, m: _with_meta(a, m, lambda d: d["progress"].update(step=-1)),
                      "progress.step"),
    "training section disagrees with the model": (
        lambda a, m: _with_meta(a, m, lambda d: d["train"].update(cell="gru")), "training section says cell"),
    "unknown optimizer": (lambda a, m: _with_meta(a, m, lambda d: d["optim"].update(name="lbfgs")), "optim.name"),
    "infinite learning rate": (lambda a, m: _with_meta(a, m, lambda d: d["optim"].update(lr=float("inf"))),
                               "optim.lr"),
}


def _hostile_files(directory, good_run):
    """{case: path} of every hostile checkpoint, written into ``directory``."""
    arrays, meta = load_checkpoint(good_run / "last.npz")
    paths = {}
    for name, (make, _) in SCHEMA_CASES.items():
        path = directory / (name.replace(" ", "-") + ".npz")
        save_checkpoint(path, *make(arrays, meta))
        paths[name] = path
    meta_member = meta_npy()
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                  "shape": (10**6, 10**6)})
    paths["member declaring 4 TB"] = directory / "huge.npz"
    paths["member declaring 4 TB"].write_bytes(
        zip_of({"param/head.W.npy": header.getvalue() + b"\0" * 64, META_KEY + ".npy": meta_member}))
    paths["zip bomb"] = directory / "bomb.npz"
    paths["zip bomb"].write_bytes(zip_of({"param/head.W.npy": npy(np.zeros(24 << 20, np.uint8)),
                                          META_KEY + ".npy": meta_member}, zipfile.ZIP_DEFLATED))
    paths["FIFO"] = directory / "pipe.npz"
    os.mkfifo(paths["FIFO"])
    paths["directory"] = directory / "folder.npz"
    paths["directory"].mkdir()
    paths["/dev/zero"] = "/dev/zero"
    return paths


CHECKPOINT_FRAGMENTS = dict({k: v[1] for k, v in SCHEMA_CASES.items()},
                            **{"member declaring 4 TB": "declares shape", "zip bomb": "inflate",
                               "FIFO": "no checkpoint file", "directory": "no checkpoint file",
                               "/dev/zero": "no checkpoint file"})


@pytest.fixture(scope="module")
def hostile(tmp_path_factory, good_run):
    directory = tmp_path_factory.mktemp("hostile")
    return directory, _hostile_files(directory, good_run)


COMMANDS = {"sample": ["sample", "{ckpt}", "--length", "5"],
            "eval": ["eval", "{ckpt}"],
            "analyze": ["analyze", "{ckpt}", "--out", "{tmp}/report"],
            "train --resume": ["train", "--resume", "{ckpt}"]}


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("case", list(CHECKPOINT_FRAGMENTS))
def test_hostile_checkpoints_are_refused(good_run, hostile, tmp_path, capsys, case, command):
    directory, paths = hostile
    before = snapshot(directory, good_run)
    args = [a.format(ckpt=paths[case], tmp=tmp_path) for a in COMMANDS[command]]
    code, out, err = run_in_process(args, capsys)
    message = assert_one_sentence(code, err, command.split()[0], CHECKPOINT_FRAGMENTS[case])
    assert str(paths[case]) in message
    assert out == ""
    assert snapshot(directory, good_run) == before
    assert not (tmp_path / "report").exists()


# ------------------------------------------------ numbers out of range or not finite
@pytest.mark.parametrize("flags,fragments", [
    (["--seed=-1"], ["seed", ">= 0"]),
    (["--temperature", "inf"], ["temperature", "finite"]),
    (["--temperature", "nan"], ["temperature", "finite"]),
    (["--temperature", "-0.5"], ["temperature"]),
    (["--top-k", "-2"], ["top-k", "positive"]),
    (["--length", "-1"], ["length"]),
])
def test_sample_numbers(good_run, capsys, flags, fragments):
    before = snapshot(good_run)
    code, out, err = run_in_process(["sample", good_run / "last.npz", *flags], capsys)
    assert_one_sentence(code, err, "sample", *fragments)
    assert out == "" and snapshot(good_run) == before


def test_a_tiny_temperature_is_the_argmax_or_refused(good_run, capsys):
    """1e-300 divides the logits past the float range; the shifted softmax makes it the
    argmax instead of NaN. 1e-320 is subnormal: where subnormals flush to zero it is
    refused as not positive, else it samples like the argmax."""
    argmax = run_in_process(["sample", good_run / "last.npz", "--prime", "def",
                             "--strategy", "argmax", "--length", "20"], capsys)
    assert argmax[0] == 0
    tiny = run_in_process(["sample", good_run / "last.npz", "--prime", "def", "--temperature",
                           "1e-300", "--length", "20", "--seed", "3"], capsys)
    assert tiny[0] == 0 and tiny[1] == argmax[1], tiny
    code, out, err = run_in_process(["sample", good_run / "last.npz", "--prime", "def",
                                     "--temperature", "1e-320", "--length", "20"], capsys)
    if code == 0:
        assert out == argmax[1] and err == ""
    else:
        assert_one_sentence(code, err, "sample", "temperature")


@pytest.mark.parametrize("flags,fragments", [
    (["--seed=-1"], ["--seed", ">= 0"]),
    (["--tol", "nan"], ["--tol", "finite"]),
    (["--tol", "inf"], ["--tol", "finite"]),
    (["--tol", "0"], ["--tol"]),
    (["--tol=-1e-6"], ["--tol"]),
])
def test_gradcheck_numbers(capsys, flags, fragments):
    code, out, err = run_in_process(["gradcheck", "--cells", "rnn-tanh", "--layers", "1", *flags],
                                    capsys)
    assert_one_sentence(code, err, "gradcheck", *fragments)
    assert out == ""


@pytest.mark.parametrize("flags,fragments", [
    (["--seed=-1"], ["--seed", ">= 0"]),
    (["--max-chars", "0"], ["max-chars"]),
    (["--ngram-order", "0"], ["ngram-order"]),
    (["--ngram-order", "400", "--ngram-chars", "300"], ["ngram-order", "400", "300"]),
])
def test_analyze_numbers(good_run, tmp_path, capsys, flags, fragments):
    before = snapshot(good_run)
    code, out, err = run_in_process(["analyze", good_run / "last.npz", "--max-chars", "300",
                                     "--out", tmp_path / "report", *flags], capsys)
    assert_one_sentence(code, err, "analyze", *fragments)
    assert snapshot(good_run) == before
    assert not (tmp_path / "report").exists() or not os.listdir(tmp_path / "report")


# ------------------------------------------------------------ unwritable output
@pytest.mark.parametrize("where", ["under a file", "in /proc", "read-only folder"])
def test_analyze_out_unwritable(good_run, tmp_path, capsys, where):
    blocker = tmp_path / "a-file"
    blocker.write_text("keep me\n")
    locked = tmp_path / "locked"
    locked.mkdir()
    out = {"under a file": blocker / "report", "in /proc": "/proc/scratchrnn-report",
           "read-only folder": locked / "report"}[where]
    os.chmod(locked, 0o555)
    try:
        if where == "read-only folder" and os.access(locked, os.W_OK):
            pytest.skip("running as a user who can write into a read-only folder (root)")
        before = snapshot(good_run, tmp_path)
        code, _, err = run_in_process(["analyze", good_run / "last.npz", "--max-chars", "300",
                                       "--out", out], capsys)
        assert_one_sentence(code, err, "analyze", str(out))
        assert snapshot(good_run, tmp_path) == before
    finally:
        os.chmod(locked, 0o755)


def test_analyze_out_unwritable_as_root_too(good_run, tmp_path, capsys):
    """A folder below a regular file cannot be made, whoever runs the command."""
    blocker = tmp_path / "plain.txt"
    blocker.write_text("x")
    code, _, err = run_in_process(["analyze", good_run / "last.npz", "--max-chars", "300",
                                   "--out", blocker / "sub" / "report"], capsys)
    assert_one_sentence(code, err, "analyze", "plain.txt")
    assert blocker.read_text() == "x"


def _command():
    return [sys.executable, "-m", "scratchrnn.cli"]


def test_stdout_on_a_full_device(good_run, tmp_path):
    with open("/dev/full", "w") as full:
        p = subprocess.run(_command() + ["sample", str(good_run / "last.npz"), "--length", "50"],
                           stdout=full, stderr=subprocess.PIPE, text=True, env=env(), timeout=120,
                           cwd=tmp_path)
    assert_one_sentence(p.returncode, p.stderr, "sample", "no space left")


def test_stdout_closed_early(good_run, tmp_path):
    """A reader that has gone away (``| head -c 0``): one sentence, exit 2, no BrokenPipe noise."""
    p = subprocess.Popen(_command() + ["sample", str(good_run / "last.npz"), "--length", "5"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env(), cwd=tmp_path)
    p.stdout.close()
    err = p.stderr.read().decode()
    p.wait(timeout=120)
    p.stderr.close()
    assert_one_sentence(p.returncode, err, "sample", "broken pipe")


# ----------------------------------------------------------------- environment
@pytest.mark.parametrize("args", [["sample", "{ckpt}"], ["eval", "{ckpt}"],
                                  ["gradcheck", "--cells", "gru", "--layers", "1"],
                                  ["analyze", "{ckpt}", "--out", "{tmp}/r"],
                                  ["train", "--corpus", "python-docs", "--max-chars", "2000",
                                   *SMALL, "--out", "{tmp}/run"]],
                         ids=["sample", "eval", "gradcheck", "analyze", "train"])
def test_unknown_backend_in_the_environment(good_run, tmp_path, capsys, monkeypatch, args):
    monkeypatch.setenv("SCRATCHRNN_BACKEND", "tpu")
    before = snapshot(good_run)
    args = [a.format(ckpt=good_run / "last.npz", tmp=tmp_path) for a in args]
    code, out, err = run_in_process(args, capsys)
    assert_one_sentence(code, err, args[0], "SCRATCHRNN_BACKEND", "'tpu'")
    assert out == "" and snapshot(good_run) == before
    assert os.listdir(tmp_path) == []


def test_unknown_backend_in_the_environment_subprocess(good_run, tmp_path):
    p = subprocess.run(_command() + ["sample", str(good_run / "last.npz")], capture_output=True,
                       text=True, env=env(SCRATCHRNN_BACKEND="gpu0"), timeout=120, cwd=tmp_path)
    assert_one_sentence(p.returncode, p.stderr, "sample", "SCRATCHRNN_BACKEND")


# ====================================================================== training
def train_args(out, *extra, text=None):
    source = ["--text", str(text)] if text else ["--corpus", "python-docs", "--max-chars", "3000"]
    return ["train", *source, *SMALL, "--out", str(out), *extra]


@pytest.mark.parametrize("flags,fragments", [
    (["--forget-bias", "inf"], ["forget-bias", "finite"]),
    (["--forget-bias", "nan"], ["forget-bias", "finite"]),
    (["--lr", "nan"], ["lr", "finite"]),
    (["--lr", "inf"], ["lr", "finite"]),
    (["--dropout", "nan"], ["dropout"]),
    (["--grad-clip", "inf"], ["grad-clip"]),
    (["--clip-value", "nan"], ["clip-value"]),
    (["--lr-decay", "0"], ["lr-decay"]),
    (["--lr-decay", "nan"], ["lr-decay"]),
    (["--lr-decay-after", "-1"], ["lr-decay-after"]),
    (["--max-minutes", "nan"], ["max-minutes"]),
    (["--max-minutes", "inf"], ["max-minutes"]),
    (["--max-epochs", "-1"], ["max-epochs"]),
    (["--seed=-1"], ["seed", ">= 0"]),
    (["--split", "0.9,nan,0.1"], ["split"]),
    (["--embedding-size", "1000000000"], ["GiB", "memory"]),
    (["--rnn-size", "300000"], ["GiB", "memory"]),
    (["--resume", ""], ["--resume", "empty"]),
], ids=lambda v: " ".join(v) if isinstance(v, list) and v and v[0].startswith("--") else None)
def test_training_numbers_are_checked_before_any_folder_is_made(tmp_path, capsys, flags, fragments):
    out = tmp_path / "out"
    code, _, err = run_in_process(train_args(out, *flags), capsys)
    assert_one_sentence(code, err, "train", *fragments)
    assert not out.exists()


@pytest.mark.parametrize("kind", ["FIFO", "/dev/zero", "directory"])
def test_only_regular_files_are_read_as_text(tmp_path, capsys, kind):
    path = {"FIFO": tmp_path / "fifo.txt", "/dev/zero": "/dev/zero", "directory": tmp_path}[kind]
    if kind == "FIFO":
        os.mkfifo(path)
    out = tmp_path / "out"
    code, _, err = run_in_process(train_args(out, text=path), capsys)
    assert_one_sentence(code, err, "train", "directory" if kind == "directory" else "not a regular file")
    assert not out.exists()


def test_a_huge_text_is_read_only_up_to_max_chars(tmp_path):
    from scratchrnn.lm.corpora import read_text_file
    path = tmp_path / "big.txt"
    with open(path, "wb") as f:
        f.write("\u00e9a".encode() * (8 << 20))                   # 24 MiB
    import tracemalloc
    tracemalloc.start()
    text = read_text_file(path, 1000)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert text == "\u00e9a" * 500 and peak < 1 << 20


def test_a_folder_with_the_users_files_is_not_written_into(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "history.json").write_text("[my notes]")
    (out / "loss.png").write_bytes(b"\x89PNG my picture")
    before = snapshot(out)
    code, _, err = run_in_process(train_args(out), capsys)
    assert_one_sentence(code, err, "train", "not empty", "history.json")
    assert snapshot(out) == before


def test_resuming_a_copied_run_leaves_the_original_alone(good_run, tmp_path, capsys):
    import shutil
    copy = tmp_path / "copy"
    shutil.copytree(good_run, copy)
    before = snapshot(good_run)
    code, _, err = run_in_process(["train", "--resume", copy / "last.npz", "--max-steps", "6"], capsys)
    assert code == 0, err
    assert snapshot(good_run) == before
    _, meta = load_checkpoint(copy / "last.npz")
    assert meta["progress"]["step"] == 6 and meta["train"]["out_dir"] == str(copy)


def test_resume_into_a_folder_of_another_run_is_refused(good_run, tmp_path, capsys):
    other = tmp_path / "other"
    assert run_in_process(train_args(other, "--seed", "5"), capsys)[0] == 0
    before = snapshot(good_run, other)
    code, _, err = run_in_process(["train", "--resume", good_run / "last.npz", "--out", other,
                                   "--max-steps", "6"], capsys)
    assert_one_sentence(code, err, "train", "another run")
    assert snapshot(good_run, other) == before


def test_resuming_an_older_checkpoint_in_place_is_refused_but_may_branch(tmp_path, capsys):
    run = tmp_path / "run"
    assert run_in_process(train_args(run), capsys)[0] == 0          # evaluations at steps 2, 4
    first = [p for p in run.glob("lm_epoch*.npz") if load_checkpoint(p)[1]["progress"]["step"] == 2]
    assert first, "no checkpoint of step 2"
    before = snapshot(run)
    code, _, err = run_in_process(["train", "--resume", first[0], "--max-steps", "8"], capsys)
    assert_one_sentence(code, err, "train", "rewind", "--out")
    assert snapshot(run) == before
    branch = tmp_path / "branch"
    code, _, err = run_in_process(["train", "--resume", first[0], "--max-steps", "8",
                                   "--out", branch], capsys)
    assert code == 0, err
    assert snapshot(run) == before and (branch / "last.npz").exists()


def test_a_live_lock_refuses_a_second_writer_and_a_dead_one_is_taken_over(good_run, tmp_path, capsys):
    import shutil
    import socket
    copy = tmp_path / "copy"
    shutil.copytree(good_run, copy)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (copy / "train.lock").write_text(json.dumps({"pid": sleeper.pid, "host": socket.gethostname()}))
        before = snapshot(copy)
        code, _, err = run_in_process(["train", "--resume", copy / "last.npz", "--max-steps", "6"], capsys)
        assert_one_sentence(code, err, "train", "in use", str(sleeper.pid))
        assert snapshot(copy) == before
    finally:
        sleeper.kill()
        sleeper.wait()
    code, _, err = run_in_process(["train", "--resume", copy / "last.npz", "--max-steps", "6"], capsys)
    assert code == 0, err                                   # the dead process's lock is stale
    assert not (copy / "train.lock").exists()


def test_stale_temporary_files_are_removed_by_the_next_run(good_run, tmp_path, capsys):
    import shutil
    copy = tmp_path / "copy"
    shutil.copytree(good_run, copy)
    (copy / ".last.npz.k3j_x9q2.tmp").write_bytes(b"half a checkpoint")
    (copy / ".history.json.ab12cd34.tmp").write_bytes(b"[")
    code, _, err = run_in_process(["train", "--resume", copy / "last.npz", "--max-steps", "6"], capsys)
    assert code == 0, err
    assert not [n for n in os.listdir(copy) if n.endswith(".tmp")]


def test_resume_on_a_changed_text_is_refused(tmp_path, capsys):
    text = tmp_path / "notes.txt"
    text.write_text("The quick brown fox jumps over the lazy dog.\n" * 80)
    run = tmp_path / "run"
    assert run_in_process(train_args(run, text=text), capsys)[0] == 0
    text.write_text("The quick brown fox jumps over the lazy cat.\n" * 80)
    before = snapshot(run)
    code, _, err = run_in_process(["train", "--resume", run / "last.npz", "--max-steps", "6"], capsys)
    assert_one_sentence(code, err, "train", "has changed")
    assert snapshot(run) == before


def test_a_huge_but_finite_loss_stops_the_run_and_keeps_the_last_checkpoint(good_run, tmp_path,
                                                                            capsys, monkeypatch):
    """A model blowing up (loss 10x its start, still finite) is stopped by the 3x rule."""
    import shutil

    from scratchrnn import engines
    copy = tmp_path / "copy"
    shutil.copytree(good_run, copy)
    before = snapshot(copy)
    real = engines.training_step           # the step the run takes: the book's, or on a GPU the device step

    def blowing_up(*factory_args):
        step = real(*factory_args)

        def blown(*args, **kwargs):
            loss, state = step(*args, **kwargs)
            return loss * 10.0, state
        return blown
    monkeypatch.setattr(engines, "training_step", blowing_up)
    code, _, err = run_in_process(["train", "--resume", copy / "last.npz", "--max-steps", "9",
                                   "--eval-every", "100"], capsys)
    assert_one_sentence(code, err, "train", "3 x the first loss", "kept")
    assert snapshot(copy) == before


def test_the_next_line_suggests_a_prime_from_the_training_text(tmp_path, capsys):
    text = tmp_path / "play.txt"
    text.write_text("HAMLET. To be, or not to be, that is the question.\n" * 60)
    code, out, err = run_in_process(train_args(tmp_path / "run", text=text), capsys)
    assert code == 0, err
    nxt = out.strip().splitlines()[-1]
    assert nxt.startswith("next: scratchrnn sample ") and "--prime 'HAMLET. '" in nxt
    assert "def " not in nxt


def test_word_level_runs_report_per_word(tmp_path, capsys):
    text = tmp_path / "words.txt"
    text.write_text("the cat sat on the mat and the dog sat on the log\n" * 60)
    code, out, err = run_in_process(train_args(tmp_path / "run", "--level", "word", text=text), capsys)
    assert code == 0, err
    assert "nats/word" in out and "bits/word" in out and "nats/char" not in out


def test_a_time_budget_is_the_progress_bars_total():
    import tempfile

    from scratchrnn.lm.run import TrainConfig, Trainer
    with tempfile.TemporaryDirectory() as d:
        t = Trainer(TrainConfig(source="python-docs", max_chars=3000, hidden_size=4, num_layers=1,
                                seq_len=8, batch_size=2, max_minutes=0.5, max_steps=None,
                                progress=True, out_dir=os.path.join(d, "r")))
        bar, position = t._progress_bar()
        try:
            assert bar.total == 30.0 and bar.unit == "s"
        finally:
            bar.close()


def test_the_time_bar_counts_each_second_once(tmp_path):
    """The loop restarts its clock at every evaluation after adding the time so far to
    progress.elapsed_s; the bar must then count from the new start (it once counted from
    the first one, and ran ahead: 104 of 180 s after 53 s)."""
    import time

    from scratchrnn.lm.run import TrainConfig, Trainer
    t = Trainer(TrainConfig(source="python-docs", max_chars=3000, hidden_size=4, num_layers=1,
                            seq_len=8, batch_size=2, max_minutes=10, max_steps=None,
                            progress=False, out_dir=str(tmp_path / "r")))
    bar, position = t._progress_bar()
    bar.close()
    restarted = time.perf_counter()
    t.progress.elapsed_s = 40.0                   # 40 s trained before the clock restarted
    assert 40.0 <= position(restarted) < 45.0
    assert position(restarted - 5.0) >= 45.0      # and 5 s since: 45


# ----------------------------------------------------------- signals (subprocess)
SIGNAL_FLAGS = ["--corpus", "python-docs", "--max-chars", "3000", "--rnn-size", "8", "--num-layers",
                "1", "--seq-length", "8", "--batch-size", "2", "--eval-every", "1000000",
                "--max-minutes", "100", "--no-progress", "--sample-length", "0", "--seed", "4",
                "--dropout", "0.0"]


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_a_signal_saves_the_run_and_it_resumes_exactly(tmp_path, sig):
    import signal
    import time
    signum = getattr(signal, sig)
    killed = tmp_path / "killed"
    p = subprocess.Popen(_command() + ["train", *SIGNAL_FLAGS, "--max-steps", "100000000",
                                       "--out", str(killed)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env(), cwd=tmp_path)
    assert p.stdout.readline().startswith(b"scratchrnn train:")      # training has begun
    time.sleep(1.0)
    p.send_signal(signum)
    _, err = p.communicate(timeout=120)
    err = err.decode()
    assert p.returncode == 128 + signum, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert f"Stopped by {sig}" in lines[0] and str(killed / "last.npz") in lines[0]
    assert not [n for n in os.listdir(killed) if n.endswith(".tmp") or n == "train.lock"]
    _, meta = load_checkpoint(killed / "last.npz")
    stopped = meta["progress"]["step"]
    assert stopped >= 1
    total = stopped + 7
    straight = tmp_path / "straight"
    done = subprocess.run(_command() + ["train", *SIGNAL_FLAGS, "--max-steps", str(total),
                                        "--out", str(straight)],
                          capture_output=True, text=True, env=env(), cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    resumed = subprocess.run(_command() + ["train", "--resume", str(killed / "last.npz"),
                                           "--max-steps", str(total)],
                             capture_output=True, text=True, env=env(), cwd=tmp_path, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    a, meta_a = load_checkpoint(straight / "last.npz")
    b, meta_b = load_checkpoint(killed / "last.npz")
    assert meta_a["progress"]["step"] == meta_b["progress"]["step"] == total
    assert set(a) == set(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].tobytes() == b[k].tobytes(), k


@pytest.mark.parametrize("victim", ["history.json", "loss.png"])
def test_a_full_disk_while_writing_history_or_plot_is_one_sentence(victim, tmp_path, monkeypatch,
                                                                   capsys):
    """ENOSPC while writing history.json or loss.png: exit 2, one sentence naming the file,
    and the checkpoint written just before still loads and resumes."""
    import errno

    from matplotlib.figure import Figure

    from scratchrnn.lm import run as runner
    from scratchrnn.lm.saved import load_model

    def full(path):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    if victim == "history.json":
        real = runner.write_atomically
        monkeypatch.setattr(runner, "write_atomically", lambda path, write: full(path)
                            if str(path).endswith(victim) else real(path, write))
    else:
        monkeypatch.setattr(Figure, "savefig", lambda self, path, *a, **k: full(path))
    out = tmp_path / "run"
    code, _, err = run_in_process(["train", "--corpus", "python-docs", "--max-chars", "3000",
                                   *SMALL, "--out", out], capsys)
    assert_one_sentence(code, err, "train", victim, "No space left on device")
    load_model(out / "last.npz")                      # the checkpoint before it is intact
    monkeypatch.undo()
    code, _, err = run_in_process(["train", "--resume", out / "last.npz", "--max-steps", "6",
                                   "--no-progress", "--sample-length", "0"], capsys)
    assert code == 0, err
    assert not [n for n in os.listdir(out) if n.startswith(".") or ".tmp" in n]
