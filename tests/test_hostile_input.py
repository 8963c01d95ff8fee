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

from scratchrnn import cli
from scratchrnn.checkpoint import META_KEY, load_checkpoint, save_checkpoint

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
def _npy(array):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, array, allow_pickle=False)
    return buf.getvalue()


def _zip(members, compression=zipfile.ZIP_STORED):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as zf:
        for name, payload in members.items():
            zf.writestr(name, payload)
    return buf.getvalue()


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
    meta_npy = _npy(np.frombuffer(json.dumps({"format_version": 1}).encode(), dtype=np.uint8))
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                  "shape": (10**6, 10**6)})
    paths["member declaring 4 TB"] = directory / "huge.npz"
    paths["member declaring 4 TB"].write_bytes(
        _zip({"param/head.W.npy": header.getvalue() + b"\0" * 64, META_KEY + ".npy": meta_npy}))
    paths["zip bomb"] = directory / "bomb.npz"
    paths["zip bomb"].write_bytes(_zip({"param/head.W.npy": _npy(np.zeros(24 << 20, np.uint8)),
                                        META_KEY + ".npy": meta_npy}, zipfile.ZIP_DEFLATED))
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
