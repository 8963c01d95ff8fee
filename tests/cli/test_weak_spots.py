"""The smaller weak spots of issue 23: a single .npy named once; a killed analyze does not
block its own re-run; sample refuses absurd lengths and prints as it goes; eval says when it
scores fewer tokens than it was given, and reads only what --max-tokens needs."""
import os
import subprocess
import sys

import numpy as np
import pytest

from scratchrnn.cli import main
from scratchrnn.cli.analyze import choose_out_dir, report_lock
from scratchrnn.core.errors import ConfigError
from scratchrnn.lm.config import TrainConfig
from scratchrnn.lm.run import Trainer

pytestmark = pytest.mark.bad_input("commands")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "run"
    cfg = TrainConfig(source="python-docs", max_chars=5000, cell="gru", hidden_size=8, seq_len=8,
                      batch_size=2, max_steps=2, eval_every=2, max_minutes=None, progress=False,
                      out_dir=str(out))
    return Trainer(cfg).run().last_path


def test_a_single_npy_is_named_once(tmp_path, capsys):
    path = tmp_path / "a.npy"
    np.save(path, np.zeros(3))
    assert main(["sample", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count(str(path)) == 1 and "single .npy" in err


def _dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_killed_analyze_does_not_block_its_rerun(tmp_path):
    folder = tmp_path / "analysis"
    folder.mkdir()
    (folder / "activations.png").write_bytes(b"half a report")        # no report.html yet
    (folder / "analyze.lock").write_text(f'{{"pid": {_dead_pid()}, "host": "{os.uname().nodename}"}}')
    assert choose_out_dir("x.npz", str(folder), force=False) == str(folder)
    with report_lock(str(folder)):                                     # stale: taken over
        assert (folder / "analyze.lock").read_text().count(str(os.getpid())) == 1
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty"):
        choose_out_dir("x.npz", str(folder), force=False)


def test_a_live_analyze_refuses_a_second_in_its_folder(tmp_path):
    folder = tmp_path / "analysis"
    folder.mkdir()
    (folder / "analyze.lock").write_text(f'{{"pid": 1, "host": "{os.uname().nodename}"}}')
    with pytest.raises(ConfigError, match="in use by another analyze"):
        with report_lock(str(folder)):
            pass


def test_sample_refuses_an_absurd_length(ckpt, capsys):
    assert main(["sample", ckpt, "--length", str(10 ** 23)]) == 2
    assert "length must be at most" in capsys.readouterr().err


def test_sample_prints_as_it_goes(ckpt):
    env = dict(os.environ, PYTHONPATH=ROOT, SCRATCHRNN_BACKEND="numpy")
    proc = subprocess.Popen([sys.executable, "-m", "scratchrnn.cli", "sample", ckpt, "--length",
                             "10000000", "--seed", "0"], stdout=subprocess.PIPE, env=env)
    try:
        first = proc.stdout.read(64)                # arrives long before the 10 million tokens
        assert len(first) == 64
    finally:
        proc.kill()
        proc.wait()


def test_eval_says_when_it_scores_fewer_tokens_than_given(ckpt, tmp_path, capsys):
    text = tmp_path / "t.txt"
    text.write_text("def f(x):\n    return x\n" * 40)
    assert main(["eval", ckpt, "--text", str(text), "--batch-size", "4", "--seq-length", "16"]) == 0
    out, err = capsys.readouterr()
    assert "note: scored" in err and "fill no whole window" in err
    assert main(["eval", ckpt, "--text", str(text), "--batch-size", "1", "--seq-length", "1"]) == 0
    out, err = capsys.readouterr()
    assert "note:" not in err and f"{len(text.read_text()) - 1:,} tokens" in out


def test_eval_reads_only_what_max_tokens_needs(ckpt, tmp_path, capsys, monkeypatch):
    import scratchrnn.lm.corpora as corpora
    asked = []
    real = corpora.read_text_file
    monkeypatch.setattr(corpora, "read_text_file", lambda path, max_chars=None: (
        asked.append(max_chars), real(path, max_chars))[1])
    text = tmp_path / "t.txt"
    text.write_text("def f(x):\n    return x\n" * 400)
    assert main(["eval", ckpt, "--text", str(text), "--max-tokens", "100"]) == 0
    assert asked == [101]


def test_encoding_a_large_text_allocates_little_beyond_its_ids():
    """Memory follows what is used: encoding N characters peaks near the N int64 ids it
    returns (8 bytes each), not at the ~33 bytes per character of whole-text temporaries."""
    import tracemalloc

    from scratchrnn.lm.data import text_fingerprint
    from scratchrnn.lm.vocab import Vocab

    text = "def f(x):\n    return x * 2  # é\n" * 120_000          # ~4 million characters
    vocab = Vocab.build(text[:1000], level="char")
    tracemalloc.start()
    try:
        ids = vocab.encode(text)
        text_fingerprint(text)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(ids) == len(text) and ids.dtype == np.int64
    assert vocab.decode(ids[:40]) == text[:40]
    assert peak < 12 * len(text), f"{peak / len(text):.1f} bytes per character"
