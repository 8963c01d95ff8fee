"""``scratchrnn analyze`` end to end on a tiny checkpoint trained in seconds: the report has
every section and its figures, renders in headless Chromium without errors or requests,
and bad input (missing or corrupt checkpoint, unknown corpus, characters outside the
vocabulary, a folder that is not a report's) gives one sentence and exit status 2."""
import json
import os
import re

import pytest

from chromium import chromium, page_problems, page_requests, run_chromium  # noqa: F401
from scratchrnn.analysis.report import SECTION_IDS
from scratchrnn.cli import main
from scratchrnn.lm.corpora import load_corpus
from scratchrnn.lm.run import TrainConfig, Trainer

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A 2-layer LSTM (H=16) trained for 20 steps on 30k characters of the stdlib corpus."""
    folder = tmp_path_factory.mktemp("tiny")
    source = folder / "code.py"
    source.write_text(load_corpus("python-stdlib", 30_000), encoding="utf-8")
    cfg = TrainConfig(source=str(source), max_chars=None, hidden_size=16, num_layers=2, seq_len=32,
                      batch_size=8, max_steps=20, max_minutes=None, eval_every=20, eval_tokens=2000,
                      progress=False, out_dir=str(folder / "run"))
    result = Trainer(cfg).run()
    return result.last_path


@pytest.fixture(scope="module")
def report(checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("analysis") / "out"
    code = main(["analyze", checkpoint, "--out", str(out), "--max-chars", "1200"])
    assert code == 0
    return out


def test_report_has_every_section_and_figure(report):
    doc = (report / "report.html").read_text(encoding="utf-8")
    for sid in SECTION_IDS:
        assert f'<section id="{sid}">' in doc, sid
    pngs = sorted(p.name for p in report.glob("*.png"))
    for name in ("gate_saturation.png", "gradient_flow.png", "gradient_flow_c.png", "saliency.png",
                 "saliency_matrix.png", "pca_layer1.png", "pca_layer2.png", "ngram_vs_rnn.png",
                 "heatmap_1.png", "neuron_in_string.png", "neuron_column.png"):
        assert name in pngs
    for p in report.glob("*.png"):
        assert p.read_bytes()[:8] == PNG
    assert doc.count('src="data:image/png;base64,') == len(pngs)   # every figure is embedded
    summary = json.loads((report / "summary.json").read_text())
    assert summary["chars"] == 1200 and summary["ngram"]["order"] == 9
    assert {r["feature"] for r in summary["neurons"]} == {"in_string", "bracket_depth", "column",
                                                          "indentation", "in_comment"}
    assert summary["total_s"] < 60


def test_report_renders_in_chromium(chromium, report, tmp_path):  # noqa: F811
    netlog = tmp_path / "netlog.json"
    done = run_chromium(chromium, tmp_path, f"--log-net-log={netlog}", "--dump-dom",
                        f"file://{report / 'report.html'}")
    assert done.returncode == 0, done.stderr[-2000:]
    titles = re.findall(r"<h2>(.*?)</h2>", (report / "report.html").read_text(encoding="utf-8"))
    assert len(titles) == len(SECTION_IDS)
    for title in titles:
        assert f"<h2>{title}</h2>" in done.stdout
    assert page_problems(done.stderr) == []
    assert page_requests(netlog) == []


def test_a_second_run_overwrites_its_own_report_only(checkpoint, report, tmp_path, capsys):
    keep = report / "notes.txt"
    keep.write_text("mine")
    text = tmp_path / "snippet.py"
    text.write_text("def f(x):\n    return {'a': [x, (1, 2)]}  # \u2603 snowman\n" * 8, encoding="utf-8")
    assert main(["analyze", checkpoint, "--out", str(report), "--text", str(text)]) == 2
    err = capsys.readouterr().err
    assert "vocabulary lacks" in err and "--drop-unknown" in err and err.count("\n") == 1
    assert main(["analyze", checkpoint, "--out", str(report), "--text", str(text), "--drop-unknown"]) == 0
    assert keep.read_text() == "mine"                           # nothing else touched
    summary = json.loads((report / "summary.json").read_text())
    assert summary["chars"] == len(text.read_text()) - 8          # the 8 snowmen are dropped
    assert "unknown character" in summary["source"]


def _fails(capsys, *argv):
    code = main(["analyze", *argv])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("scratchrnn analyze: error: ") and err.count("\n") == 1, err
    return err


def test_bad_input_gives_one_sentence(checkpoint, tmp_path, capsys):
    out = str(tmp_path / "x")
    assert "no checkpoint" in _fails(capsys, str(tmp_path / "missing.npz"), "--out", out)
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 this is not a zip")
    assert "corrupt" in _fails(capsys, str(bad), "--out", out)
    assert "Unknown corpus" in _fails(capsys, checkpoint, "--corpus", "klingon", "--out", out)
    assert "max-chars" in _fails(capsys, checkpoint, "--max-chars", "0", "--out", out)
    assert "does not exist" in _fails(capsys, checkpoint, "--text", str(tmp_path / "none.txt"), "--out", out)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "data.txt").write_text("keep")
    assert "--force" in _fails(capsys, checkpoint, "--out", str(busy))
    assert "is a file" in _fails(capsys, checkpoint, "--out", checkpoint)
    assert (busy / "data.txt").read_text() == "keep" and os.path.getsize(checkpoint) > 0
    short = tmp_path / "short.py"
    short.write_text("x = 1\n")
    assert "at least" in _fails(capsys, checkpoint, "--text", str(short), "--out", out)


def test_default_folder_is_beside_the_checkpoint(checkpoint):
    from scratchrnn.cli.analyze import choose_out_dir

    run_dir = os.path.dirname(os.path.abspath(checkpoint))
    assert choose_out_dir(checkpoint, None, False) == os.path.join(run_dir, "analysis")
    assert choose_out_dir(checkpoint, run_dir, True) == run_dir     # --force: any folder
