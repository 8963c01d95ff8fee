"""What a newcomer trips over: --version, the LICENSE, installing torch, dir(scratchrnn), the
help of --corpus and --max-minutes, and README numbers that come from a committed run."""
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import scratchrnn
from scratchrnn.cli import build_parser, main
from scratchrnn.lm.corpora import CORPORA

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _help(command):
    sub = build_parser()._subparsers._group_actions[0].choices[command]
    return " ".join(sub.format_help().split())


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == f"scratchrnn {scratchrnn.__version__}"
    setup = (ROOT / "setup.cfg").read_text()
    assert re.search(rf"^version = {re.escape(scratchrnn.__version__)}$", setup, re.M)


def test_license_is_mit_as_setup_says():
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License")
    assert "Copyright (c) 2026 the scratchrnn authors" in text
    setup = (ROOT / "setup.cfg").read_text()
    assert re.search(r"^license = MIT$", setup, re.M) and "license_files = LICENSE" in setup


def test_from_torch_without_torch_says_how_to_install_it():
    code = ("import sys; sys.modules['torch'] = None\n"
            "import scratchrnn.interop\n"
            "try:\n"
            "    scratchrnn.interop.from_torch(object())\n"
            "except ImportError as e:\n"
            "    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": ""})
    assert out.returncode == 0, out.stderr
    message = out.stdout.strip()
    assert "pip install 'scratchrnn[torch]'" in message
    assert message.endswith(".") and message.count(". ") == 0 and "\n" not in message


def test_dir_lists_what_all_lists():
    assert dir(scratchrnn) == sorted(scratchrnn.__all__)
    for name in scratchrnn.__all__:
        assert getattr(scratchrnn, name) is not None, name


@pytest.mark.parametrize("command", ["train", "analyze", "grid"])
def test_corpus_lists_its_choices(command):
    text = _help(command)
    for name in CORPORA:
        assert name in text, (command, name)


def test_max_minutes_says_what_it_counts():
    text = _help("train")
    assert re.search(r"--max-minutes M stop after M minutes of wall-clock training time", text)


# ------------------------------------------------------------------ README
def test_readme_numbers_come_from_the_committed_run():
    """The README's measured times for analyze and the one-page model, and its test count,
    are those of benchmarks/results/readme_numbers.json (written by
    ``python -m benchmarks.readme_numbers``); the stale ones are gone."""
    data = json.loads((ROOT / "benchmarks" / "results" / "readme_numbers.json").read_text())
    analyze = f"{data['summary']['analyze']['median_s']:.1f} s"
    onepage = f"{data['summary']['onepage']['median_s']:.0f} s"
    assert analyze in README and onepage in README
    assert f"{data['tests_collected']:,} tests" in README
    for stale in ("about 850 tests", "report in 7 s", "took 5.6 s", "trains it for a few seconds"):
        assert stale not in README, stale
    doc = (ROOT / "scratchrnn" / "book" / "onepage.py").read_text()
    assert "about 15 s" not in doc


def test_readme_says_the_torch_tests_need_torch():
    flat = " ".join(README.split())
    assert "pip install 'scratchrnn[torch]'" in flat
    assert "python -m pytest tests/test_torch_parity.py tests/blocks/test_bidirectional.py" in flat
