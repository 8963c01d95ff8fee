"""The grid and what is not its own: an --out that is empty, a file, or a folder of the
user's; hand-edited results.jsonl and grid.json; a budget too small to train anything.
Every refusal is one sentence, exit 2, and leaves every byte of the folder as it was."""
import json
import os
import shutil

import pytest

from folder_state import snapshot
from grid_cli import TINY, results, run_grid
from scratchrnn.cli import main

pytestmark = pytest.mark.bad_input("grid folder")

ONE_POINT = [*TINY, "--cells", "rnn", "--layers", "1", "--sizes", "8", "--budget-steps", "10",
             "--workers", "1"]


def refused(capsys, argv, *words):
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and err.startswith("scratchrnn grid: error: ")
    assert len(err.strip().splitlines()) == 1
    for word in words:
        assert word in err, err
    return err


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A finished one-point grid, built once; tests copy it."""
    folder = tmp_path_factory.mktemp("grid") / "g"
    proc = run_grid(*ONE_POINT, "--out", folder, cwd=os.path.dirname(__file__))
    assert proc.returncode == 0, proc.stderr
    return folder


@pytest.fixture
def grid(built, tmp_path):
    copy = tmp_path / "g"
    shutil.copytree(built, copy)
    return copy


def test_an_empty_out_is_refused_and_nothing_lands_in_the_current_directory(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    refused(capsys, ["grid", *ONE_POINT, "--out", ""], "--out is empty")
    assert os.listdir(tmp_path) == []


def test_a_folder_of_the_users_own_files_is_refused_and_kept(tmp_path, capsys):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "results.md").write_text("my own notes\n")
    (folder / "results.png").write_bytes(b"\x89PNG my figure")
    before = snapshot(folder)
    refused(capsys, ["grid", *ONE_POINT, "--out", str(folder)], "not a grid's folder", "results.md")
    assert snapshot(folder) == before and sorted(os.listdir(folder)) == ["results.md", "results.png"]


def test_an_out_below_a_file_names_the_file(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    err = refused(capsys, ["grid", *ONE_POINT, "--out", str(tmp_path / "file" / "sub")], "is a file")
    assert "grid.json" not in err and str(tmp_path / "file") in err


BAD_LINES = {
    "lacks every field": {"name": "rnn-1x8-seed0"},
    "ok without losses": {"name": "rnn-1x8-seed0", "status": "ok"},
    "ok with a string loss": None,             # built from the real record below
    "ok with another point's name": None,
    "unknown status": {"name": "rnn-1x8-seed0", "status": "done"},
    "failed without a reason": {"name": "rnn-1x8-seed0", "status": "failed"},
    "a list": [1, 2, 3],
    "a number name": {"name": 3, "status": "failed", "reason": "x"},
    "machine not an object": {"name": "x", "status": "failed", "reason": "x", "machine": "h"},
    "nested a million deep": "[" * 100000 + "]" * 100000,
    "Infinity": {"name": "rnn-1x8-seed0", "status": "ok", "val": {"loss": float("inf")}},
}


@pytest.mark.parametrize("case", sorted(BAD_LINES))
def test_a_hand_edited_results_line_is_refused_before_anything_is_written(grid, capsys, case):
    real = results(grid)[0]
    line = BAD_LINES[case]
    if case == "ok with a string loss":
        line = dict(real, val={"loss": "1.0", "bpc": 1.0})
    elif case == "ok with another point's name":
        line = dict(real, name="gru-1x8-seed0")
    text = line if isinstance(line, str) else json.dumps(line)
    with open(grid / "results.jsonl", "a") as f:
        f.write(text + "\n")
    before = snapshot(grid)
    refused(capsys, ["grid", *ONE_POINT, "--seeds", "0,1", "--out", str(grid)], "Line 2", "results.jsonl")
    assert snapshot(grid) == before


BAD_SPECS = {
    "a list": [1],
    "cells a string": {"cells": "rnn"},
    "an unknown cell": {"cells": ["rnn", "transformer"]},
    "a size of zero": {"sizes": [0]},
    "a bool layer": {"layers": [True]},
    "budget missing": {"budget": None},
    "budget both": {"budget": {"steps": 10, "minutes": 1.0}},
    "shared a list": {"shared": []},
    "shared sets the cell": {"shared": {"source": "python-docs", "cell": "gru"}},
    "an extra key": {"extra": 1},
}


@pytest.mark.parametrize("case", sorted(BAD_SPECS))
def test_a_wrong_shaped_grid_json_is_refused_and_never_merged_back(grid, capsys, case):
    spec = json.loads((grid / "grid.json").read_text())
    change = BAD_SPECS[case]
    spec = change if isinstance(change, list) else {**spec, **change}
    (grid / "grid.json").write_text(json.dumps(spec))
    before = snapshot(grid)
    refused(capsys, ["grid", *ONE_POINT, "--seeds", "0,1", "--out", str(grid)], "grid.json")
    assert snapshot(grid) == before


def test_a_last_line_without_its_newline_is_not_glued_to_the_next(grid):
    path = grid / "results.jsonl"
    path.write_bytes(path.read_bytes().rstrip(b"\n"))
    proc = run_grid(*ONE_POINT, "--seeds", "0,1", "--out", grid, cwd=os.path.dirname(__file__))
    assert proc.returncode == 0, proc.stderr
    lines = path.read_text().splitlines()
    assert [json.loads(line)["name"] for line in lines] == ["rnn-1x8-seed0", "rnn-1x8-seed1"]


def test_a_budget_too_small_to_train_is_failed_not_ok_and_the_file_is_strict_json(tmp_path):
    argv = [*TINY, "--cells", "rnn,gru", "--layers", "1", "--sizes", "8", "--budget-minutes", "1e-9",
            "--workers", "2", "--out", tmp_path / "g"]
    proc = run_grid(*argv, cwd=os.path.dirname(__file__))
    assert proc.returncode == 1, proc.stderr
    text = (tmp_path / "g" / "results.jsonl").read_text()
    assert "Infinity" not in text and "NaN" not in text
    records = [json.loads(line, parse_constant=lambda c: pytest.fail(c)) for line in text.splitlines()]
    assert {r["status"] for r in records} == {"failed"}
    assert all("before its first training step" in r["reason"] for r in records)
    assert "held" not in proc.stdout.replace("could not be checked", "")


def test_train_with_a_budget_too_small_to_train_reports_no_checkpoint(tmp_path, capsys):
    code = main(["train", "--corpus", "python-docs", "--max-chars", "20000", "--seq-length", "8",
                 "--batch-size", "2", "--max-minutes", "1e-9", "--no-progress", "--sample-length", "0",
                 "--out", str(tmp_path / "run")])
    out, err = capsys.readouterr()
    assert code == 2
    assert "checkpoints:" not in out and "next:" not in out
    assert "nothing was trained and no checkpoint was written" in err
    assert not os.path.exists(tmp_path / "run" / "last.npz")
