"""Points that fail are recorded with their reason while the grid goes on; the findings and
the table are computed from the records as the paper's layout says."""
import math

from grid_cli import TINY, latest, run_grid
from scratchrnn.grid import report, worker
from scratchrnn.grid.points import Budget, GridSpec
from scratchrnn.grid.results import append_record, read_records


def test_a_point_whose_loss_diverges_fails_and_the_others_finish(tmp_path):
    # ReLU RNN, no clipping, lr 1: the RNN's activations blow up within a few steps (towards
    # inf and NaN; the runner stops it as diverged), while the LSTM's gates keep its state bounded
    folder = tmp_path / "grid"
    done = run_grid(*TINY, "--cells", "rnn,lstm", "--layers", "1", "--sizes", "16", "--budget-steps", 30,
                    "--nonlinearity", "relu", "--learning-rate", 1, "--grad-clip", 0, "--workers", 2,
                    "--out", folder, cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    records = latest(folder)
    failed, ok = records["rnn-1x16-seed0"], records["lstm-1x16-seed0"]
    assert failed["status"] == "failed" and "The training loss became" in failed["reason"]
    assert ok["status"] == "ok" and ok["steps"] == 30
    text = (folder / "results.md").read_text()
    assert "## Failed points" in text and "`rnn-1x16-seed0`: The training loss became" in text
    assert "| RNN | 1 | failed |" in text
    assert "1 of 2 points done, 1 failed" in done.stdout


def test_an_exception_in_a_point_is_its_result(tmp_path, monkeypatch):
    from scratchrnn.lm import run as runner

    def boom(self):
        raise RuntimeError("disk on fire")
    monkeypatch.setattr(runner.Trainer, "run", boom)
    spec = GridSpec.from_lists("python-docs", "gru", "1", "8", "0", Budget(steps=5), max_chars=20000,
                               seq_len=16, batch_size=4)
    point = spec.points(tmp_path)[0]
    record = worker.run_point({"name": point.name, "train": point.train, "log": str(tmp_path / "p.log")})
    assert record["status"] == "failed" and record["reason"] == "RuntimeError: disk on fire."
    assert record["name"] == "gru-1x8-seed0" and record["machine"]["cores"] >= 1


def test_records_append_as_whole_lines_and_the_latest_counts(tmp_path):
    append_record(tmp_path, {"name": "a", "status": "failed", "reason": "x"})
    append_record(tmp_path, {"name": "b", "status": "interrupted"})
    append_record(tmp_path, {"name": "a", "status": "failed", "reason": "z"})
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    assert len(lines) == 3
    assert read_records(tmp_path) == {"a": {"name": "a", "status": "failed", "reason": "z"},
                                      "b": {"name": "b", "status": "interrupted"}}


def _spec(cells=("rnn", "gru", "lstm"), layers=(1, 2), sizes=(64, 128)):
    return {"cells": list(cells), "layers": list(layers), "sizes": list(sizes), "seeds": [0, 1],
            "budget": {"steps": 100, "minutes": None}, "shared": {"source": "python-docs"}}


def _records(losses):
    """losses: {(cell, layers, size, seed): val loss} -> records as the workers write them."""
    out = {}
    for (cell, layers, size, seed), loss in losses.items():
        name = f"{cell}-{layers}x{size}-seed{seed}"
        split = {"loss": loss, "bpc": loss / math.log(2)}
        out[name] = {"name": name, "status": "ok", "cell": cell, "layers": layers, "size": size,
                     "seed": seed, "params": 1000 * layers * size, "train": split, "val": split,
                     "test": split, "steps": 100, "machine": {"host": "h", "cpu": "c", "cores": 2}}
    return out


def test_findings_count_each_comparison():
    base = {"rnn": 2.0, "gru": 1.8, "lstm": 1.9}
    losses = {}
    for cell, loss in base.items():
        for layers in (1, 2):
            for size in (64, 128):
                for seed in (0, 1):
                    losses[(cell, layers, size, seed)] = loss - 0.1 * (layers == 2) + 0.01 * seed
    losses[("lstm", 2, 128, 0)] = losses[("lstm", 2, 128, 1)] = 2.5       # worse than the RNN there
    found = {claim: (held, not_held) for claim, held, not_held in report.findings(_spec(), _records(losses))}
    held, not_held = found["LSTM beats RNN at equal size"]
    assert len(held) == 3 and not_held == ["2-layer H=128"]
    assert found["GRU beats RNN at equal size"] == (["1-layer H=64", "1-layer H=128", "2-layer H=64",
                                                     "2-layer H=128"], [])
    held, not_held = found["depth 2 beats depth 1"]
    assert len(held) == 5 and not_held == ["LSTM H=128"]
    assert report.verdict(*found["GRU beats RNN at equal size"]) == "**held** in all 4 comparisons"
    assert report.verdict([], []).startswith("could not be checked")


def test_table_marks_the_best_of_each_column_and_averages_seeds():
    losses = {("rnn", 1, 64, 0): 2.0, ("rnn", 1, 64, 1): 2.2, ("lstm", 1, 64, 0): 1.5,
              ("rnn", 1, 128, 0): 1.4, ("lstm", 1, 128, 0): 1.6}
    text = report.markdown(_spec(cells=("rnn", "lstm"), layers=(1,)), _records(losses), "t")
    val = text.split("## Validation loss")[1].split("##")[0]
    assert "| RNN | 1 | 2.100 | **1.400** |" in val
    assert "| LSTM | 1 | **1.500** | 1.600 |" in val
