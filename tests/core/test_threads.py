"""The BLAS thread policy is applied: threadpoolctl reports the chosen count inside training,
eval and sample (and the one-page model), and the count is restored afterwards.

The policy itself (``scratchrnn.core.threads``): ``--threads N``, else ``$SCRATCHRNN_THREADS``,
else per workload a number or AUTO (the cores other processes leave free). AUTO's probe of the
machine is replaced here by a stand-in saying "idle" or "busy", so the tests do not depend on
what else the machine runs; ``free_cores`` and ``other_load`` are tested on their own.
"""
import os

import pytest

import scratchrnn.cli.eval as cli_eval
import scratchrnn.cli.sample as cli_sample
from scratchrnn.book import onepage
from scratchrnn.cli import build_parser, main
from scratchrnn.core import threads
from scratchrnn.core.errors import ConfigError
from scratchrnn.grid.local_pool import BLAS_THREAD_VARIABLES, LocalPool
from scratchrnn.lm.run import TrainConfig, Trainer

SMALL = ["--corpus", "python-docs", "--max-chars", "3000", "--cell", "gru", "--rnn-size", "8",
         "--num-layers", "1", "--seq-length", "8", "--batch-size", "2", "--max-steps", "3",
         "--eval-every", "3", "--no-progress", "--sample-length", "0"]
CORES = threads.cores()
needs_two_cores = pytest.mark.skipif(CORES < 2, reason="one core: every choice is 1 thread")


@pytest.fixture
def machine(monkeypatch):
    """``machine("idle")`` / ``machine("busy")``: what AUTO's probe of the machine reports."""
    monkeypatch.delenv(threads.ENV, raising=False)

    def set_to(state):
        others = {"idle": 0.0, "busy": CORES + 1.0}[state]
        monkeypatch.setattr(threads, "probe_other_load", lambda *a, **k: others)
    return set_to


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("ckpt") / "run"
    cfg = TrainConfig(source="python-docs", max_chars=3000, cell="gru", hidden_size=8, num_layers=1,
                      seq_len=8, batch_size=2, max_steps=2, eval_every=2, max_minutes=None,
                      progress=False, out_dir=str(out))
    return Trainer(cfg).run().last_path


def _spy(monkeypatch, owner, name):
    """Wrap ``owner.name`` so every call records the BLAS threads in force at that moment."""
    seen = []
    original = getattr(owner, name)

    def wrapper(*args, **kwargs):
        seen.append(threads.blas_threads())
        return original(*args, **kwargs)
    monkeypatch.setattr(owner, name, wrapper)
    return seen


# --------------------------------------------------------------------- the choice
def test_choice_order_flag_then_environment_then_policy(machine, monkeypatch):
    machine("busy")
    assert threads.choose("train") == 1
    assert threads.choose("sample") == 1
    monkeypatch.setenv(threads.ENV, "3")
    assert threads.choose("train") == 3 and threads.choose("sample") == 3
    assert threads.choose("train", requested=2) == 2
    assert threads.choose("train", requested=0) == 0          # 0: the library's default
    monkeypatch.setenv(threads.ENV, "")
    assert threads.choose("train") == 1


@needs_two_cores
def test_auto_takes_the_free_cores(machine):
    machine("idle")
    assert threads.choose("train") == CORES
    assert threads.choose("eval") == CORES
    assert threads.choose("sample") == CORES
    assert threads.choose("gradcheck") == 1                   # tiny float64 layers
    machine("busy")
    assert threads.choose("train") == 1


def test_free_cores_leaves_the_busy_ones():
    assert threads.free_cores(0.0, 2) == 2
    assert threads.free_cores(0.2, 2) == 2                     # daemons, the shell: idle
    assert threads.free_cores(0.6, 2) == 1
    assert threads.free_cores(1.9, 2) == 1
    assert threads.free_cores(5.0, 2) == 1                     # never below one
    assert threads.free_cores(1.0, 8) == 7


def test_other_load_subtracts_this_process():
    hz = os.sysconf("SC_CLK_TCK")
    # 1 s: all CPUs were busy for 1.5 core-seconds, of which this process used 0.5
    before, after = ((1000, 200), 10.0), ((1000 + int(1.5 * hz), 200 + int(0.5 * hz)), 11.0)
    assert threads.other_load(before, after) == pytest.approx(1.0)
    assert threads.other_load((None, 0.0), after) == 0.0


@pytest.mark.parametrize("value", ["two", "-1", "1.5"])
def test_a_bad_environment_value_is_one_sentence(monkeypatch, value, capsys, checkpoint):
    monkeypatch.setenv(threads.ENV, value)
    with pytest.raises(ConfigError, match="SCRATCHRNN_THREADS must be a whole number"):
        threads.choose("train")
    assert main(["sample", checkpoint, "--length", "3"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "SCRATCHRNN_THREADS must be a whole number" in err


def test_every_subcommand_has_threads():
    parser = build_parser()
    choices = parser._subparsers._group_actions[0].choices
    for name, sub in choices.items():
        assert "--threads N" in sub.format_help(), name


# -------------------------------------------------- inside the work, then restored
@needs_two_cores
@pytest.mark.parametrize("state,flag,want", [("busy", None, 1), ("idle", None, CORES),
                                             ("idle", "1", 1), ("busy", "2", 2)])
def test_training_runs_with_the_chosen_count(machine, monkeypatch, tmp_path, state, flag, want):
    machine(state)
    before = threads.blas_threads()
    seen = _spy(monkeypatch, Trainer, "train_step")
    argv = ["train", *SMALL, "--out", str(tmp_path / "run")] + (["--threads", flag] if flag else [])
    assert main(argv) == 0
    assert seen and set(seen) == {want}
    assert threads.blas_threads() == before                    # restored afterwards


def test_environment_sets_training_threads(monkeypatch, tmp_path):
    monkeypatch.setenv(threads.ENV, "1")
    seen = _spy(monkeypatch, Trainer, "train_step")
    assert main(["train", *SMALL, "--out", str(tmp_path / "run")]) == 0
    assert set(seen) == {1}


@needs_two_cores
@pytest.mark.parametrize("state,flag,want", [("busy", None, 1), ("idle", None, CORES), ("idle", "1", 1)])
def test_eval_runs_with_the_chosen_count(machine, monkeypatch, checkpoint, capsys, state, flag, want):
    machine(state)
    seen = _spy(monkeypatch, cli_eval, "evaluate")
    assert main(["eval", checkpoint] + (["--threads", flag] if flag else [])) == 0
    assert seen == [want]


@needs_two_cores
@pytest.mark.parametrize("state,flag,want", [("idle", None, CORES), ("busy", None, 1),
                                             ("busy", "2", 2)])
def test_sample_runs_with_the_chosen_count(machine, monkeypatch, checkpoint, capsys, state, flag, want):
    machine(state)
    seen = _spy(monkeypatch, cli_sample, "generate_pieces")
    assert main(["sample", checkpoint, "--length", "5"] + (["--threads", flag] if flag else [])) == 0
    assert seen == [want]


@needs_two_cores
def test_onepage_runs_with_the_chosen_count(machine, monkeypatch, capsys):
    machine("busy")
    seen = _spy(monkeypatch, onepage, "train")
    assert onepage.main(["--steps", "1", "--hidden", "4", "--sample-length", "0"]) == 0
    assert onepage.main(["--steps", "1", "--hidden", "4", "--sample-length", "0", "--threads", "2"]) == 0
    assert seen == [1, 2]


@needs_two_cores
def test_a_running_training_follows_the_load(machine, monkeypatch):
    """recheck: load that starts after the start takes the second thread away, and gives it
    back when it leaves; outside an AUTO limit it does nothing."""
    machine("idle")
    monkeypatch.setattr(threads, "RECHECK_S", 0.0)
    load = {"others": 0.0}
    monkeypatch.setattr(threads, "other_load", lambda since, until: load["others"])
    before = threads.blas_threads()
    with threads.limit("train") as n:
        assert n == CORES and threads.blas_threads() == CORES
        load["others"] = 1.5
        assert threads.recheck() == 1 and threads.blas_threads() == 1
        load["others"] = 0.0
        assert threads.recheck() == CORES and threads.blas_threads() == CORES
    assert threads.blas_threads() == before and threads.recheck() is None
    with threads.limit("train", requested=1):
        load["others"] = 0.0
        assert threads.recheck() is None and threads.blas_threads() == 1   # a fixed choice stays


def test_the_grid_keeps_one_thread_per_worker(monkeypatch):
    for var in BLAS_THREAD_VARIABLES:
        monkeypatch.delenv(var, raising=False)
    with LocalPool(2):
        assert all(os.environ[v] == "1" for v in BLAS_THREAD_VARIABLES)
    with LocalPool(2, threads=2):
        assert all(os.environ[v] == "2" for v in BLAS_THREAD_VARIABLES)
    assert not any(v in os.environ for v in BLAS_THREAD_VARIABLES)
