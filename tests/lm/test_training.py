"""Training really learns (scratchrnn.book.train, scratchrnn.lm.run): below the unigram entropy on real text,
to near-zero loss on a tiny repeated text, at char and word level; plus the loop's
bookkeeping (checkpoints, history, budgets, evaluation)."""
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from host import to_host
from scratchrnn import cli
from scratchrnn.blocks.model import CharLM
from scratchrnn.book.batching import BatchStream
from scratchrnn.book.optim import SGD, clip_grad_norm
from scratchrnn.book.train import evaluate, train_step
from scratchrnn.core.backend import get_backend
from scratchrnn.core.errors import ConfigError, DataError, TrainingDiverged
from scratchrnn.lm.checkpoint import load_checkpoint
from scratchrnn.lm.corpora import load_corpus
from scratchrnn.lm.run import TrainConfig, Trainer, prepare_data, step_seed
from scratchrnn.lm.saved import load_model


def unigram_entropy(ids):
    """Entropy in nats per token of the empirical unigram distribution of ids (N,) int: the
    loss of the best context-free predictor on the same ids."""
    counts = np.bincount(np.asarray(ids, dtype=np.int64).reshape(-1))
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def test_unigram_entropy():
    assert math.isclose(unigram_entropy(np.array([0, 1, 2, 3] * 5)), math.log(4))
    assert unigram_entropy(np.array([7, 7, 7])) == 0.0
    assert math.isclose(unigram_entropy([0, 0, 0, 1]),
                        -(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))


def config(tmp_path, name="run", **kw):
    base = dict(max_minutes=None, progress=False, out_dir=str(tmp_path / name))
    base.update(kw)
    return TrainConfig(**base)


# ----------------------------------------------------------------- it learns
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_val_loss_falls_well_below_unigram_entropy(tmp_path, cell):
    """On the first 30k characters of python-docs a small model trained by the real
    ``scratchrnn train`` command must beat the best context-free predictor *of the val
    split itself* by at least 20%.

    It runs in a subprocess with one BLAS thread: at these sizes a multithreaded BLAS
    gains little on 2 cores and, when other processes compete for them, loses 10x."""
    out = tmp_path / "run"
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1",
               SCRATCHRNN_BACKEND="numpy", MPLBACKEND="Agg")
    args = ["train", "--corpus", "python-docs", "--max-chars", "30000", "--cell", cell,
            "--rnn-size", "64", "--num-layers", "1", "--seq-length", "32", "--batch-size", "16",
            "--lr", "0.02", "--max-steps", "200", "--eval-every", "100", "--max-minutes", "100",
            "--sample-length", "0", "--no-progress", "--out", str(out)]
    proc = subprocess.run([sys.executable, "-m", "scratchrnn.cli", *args], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    cfg = TrainConfig(source="python-docs", max_chars=30_000)
    data = prepare_data(cfg)
    entropy = unigram_entropy(data.val)
    assert 2.5 < entropy < 4.0                      # English prose: ~3.2 nats per char
    model, vocab, meta = load_model(out / "last.npz")
    assert vocab == data.vocab and meta["progress"]["step"] == 200
    history = meta["history"]
    vals = [v["loss"] for v in history["val"]]
    assert [v["step"] for v in history["val"]] == [100, 200]
    assert history["train"][0]["loss"] > 0.9 * entropy      # it started out knowing nothing
    assert vals[-1] <= 0.8 * entropy, (
        f"{cell}: val loss {vals[-1]:.3f} nats is not 20% below the unigram entropy {entropy:.3f}")
    # the recorded val loss is what evaluate() gives for the saved model
    again = evaluate(model, data.val, 16, 32, cfg.eval_tokens)
    assert again["loss"] == pytest.approx(vals[-1], rel=1e-6)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_overfits_a_tiny_text(tmp_path, cell):
    """A repeated sentence is memorised: the training loss goes below 0.05 nats."""
    path = tmp_path / "tiny.txt"
    path.write_text("the cat sat on the mat. " * 10)        # 240 chars, needs 12+ chars of memory
    cfg = config(tmp_path, source=str(path), max_chars=None, cell=cell, hidden_size=32, num_layers=1,
                 seq_len=24, batch_size=2, lr=1e-2, max_steps=300, eval_every=1000,
                 split=(0.9, 0.1, 0.0))
    trainer = Trainer(cfg)
    result = trainer.run()
    assert result.history["train"][0]["loss"] > 0.5
    assert result.history["train"][-1]["loss"] < 0.05
    # the whole training text as one stream, state carried: near-perfect prediction
    scores = evaluate(result.model, trainer.data.train, 1, 64)
    assert scores["loss"] < 0.05
    assert scores["accuracy"] > 0.98


def test_word_level_trains_and_evaluates(tmp_path):
    cfg = config(tmp_path, source="python-docs", max_chars=20_000, level="word", max_vocab=150,
                 cell="gru", hidden_size=24, num_layers=1, seq_len=8, batch_size=8, lr=1e-2,
                 max_steps=40, eval_every=20, embedding_size=16)
    trainer = Trainer(cfg)
    vocab = trainer.data.vocab
    assert vocab.level == "word" and len(vocab) == 152 and vocab.pad_id == 0
    assert trainer.data.train.max() < len(vocab)
    assert (trainer.data.train == vocab.unk_id).any()          # rare words became <unk>
    result = trainer.run()
    vals = [v["loss"] for v in result.history["val"]]
    assert len(vals) == 2 and all(math.isfinite(v) for v in vals)
    assert vals[-1] < math.log(len(vocab))                     # better than uniform
    assert vals[-1] < vals[0]
    model, vocab2, meta = load_model(result.last_path)
    assert vocab2 == vocab and meta["train"]["level"] == "word"
    scores = evaluate(model, trainer.data.test, 4, 8, pad_id=vocab.pad_id)
    assert math.isfinite(scores["loss"]) and scores["tokens"] > 0


def test_word_level_cli_train_then_eval(tmp_path, capsys):
    out = tmp_path / "w"
    code = cli.main(["train", "--corpus", "python-docs", "--max-chars", "8000", "--level", "word",
                     "--max-vocab", "80", "--rnn-size", "8", "--seq-length", "6", "--batch-size", "4",
                     "--max-steps", "6", "--eval-every", "3", "--max-minutes", "100",
                     "--sample-length", "5", "--no-progress", "--out", str(out)])
    assert code == 0
    header = capsys.readouterr().out.splitlines()[0]
    engine = CharLM(10, "lstm", hidden_size=8, num_layers=2).rnn.engine   # the engine auto picks
    backend = get_backend().name                          # SCRATCHRNN_BACKEND's: numpy, or cupy on a GPU run
    assert f"; backend {backend}; engine {engine}; run dir " in header
    assert cli.main(["eval", str(out / "last.npz"), "--json", "--batch-size", "4",
                     "--seq-length", "6"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert scores["tokens"] > 0 and 0 < scores["loss"] < 20


# ------------------------------------------------------------ bookkeeping
def test_run_writes_checkpoints_history_and_stops_on_budget(tmp_path):
    cfg = config(tmp_path, source="python-docs", max_chars=5000, hidden_size=8, num_layers=2,
                 seq_len=8, batch_size=4, max_steps=7, eval_every=3)
    result = Trainer(cfg).run()
    run = tmp_path / "run"
    assert result.steps == 7 and result.stopped_because == "max_steps"
    assert [v["step"] for v in result.history["val"]] == [3, 6, 7]     # + the tail
    assert json.loads((run / "history.json").read_text()) == result.history
    _, meta = load_checkpoint(run / "last.npz")
    assert meta["progress"]["step"] == 7
    best = min(result.history["val"], key=lambda v: v["loss"])
    assert result.best_val == best["loss"]
    assert os.path.exists(result.best_path) and os.path.basename(result.best_path).startswith("lm_epoch")
    _, best_meta = load_checkpoint(result.best_path)
    assert best_meta["progress"]["step"] == best["step"]


def test_patience_stops_early(tmp_path):
    # a learning rate this small cannot improve val loss measurably: patience runs out
    cfg = config(tmp_path, source="python-docs", max_chars=5000, hidden_size=8, num_layers=1,
                 seq_len=8, batch_size=4, max_steps=1000, eval_every=2, patience=2,
                 optimizer="sgd", lr=1e-12)
    result = Trainer(cfg).run()
    assert result.stopped_because == "early_stopping"
    assert result.steps < 1000


def test_max_epochs_budget(tmp_path):
    cfg = config(tmp_path, source="python-docs", max_chars=3000, hidden_size=8, num_layers=1,
                 seq_len=16, batch_size=4, max_steps=None, max_epochs=1.0, eval_every=100)
    trainer = Trainer(cfg)
    result = trainer.run()
    assert result.stopped_because == "max_epochs"
    assert result.steps == len(trainer.stream)


def test_training_into_an_existing_run_is_refused(tmp_path):
    cfg = config(tmp_path, source="python-docs", max_chars=3000, hidden_size=8, num_layers=1,
                 seq_len=8, batch_size=2, max_steps=2, eval_every=2)
    Trainer(cfg).run()
    before = (tmp_path / "run" / "last.npz").read_bytes()
    with pytest.raises(ConfigError, match="already holds a run"):
        Trainer(cfg)
    assert (tmp_path / "run" / "last.npz").read_bytes() == before


def test_step_seed_is_a_pure_function_of_seed_and_step():
    assert step_seed(0, 5) == step_seed(0, 5)
    seeds = {step_seed(s, k) for s in range(3) for k in range(50)}
    assert len(seeds) == 150


def test_training_is_deterministic(tmp_path):
    kw = dict(source="python-docs", max_chars=4000, hidden_size=8, num_layers=2, dropout=0.3,
              seq_len=8, batch_size=4, max_steps=6, eval_every=6, shuffle=True)
    a = Trainer(config(tmp_path, "a", **kw)).run().model
    b = Trainer(config(tmp_path, "b", **kw)).run().model
    c = Trainer(config(tmp_path, "c", seed=1, **kw)).run().model
    for k in a.params:
        np.testing.assert_array_equal(to_host(a.params[k]), to_host(b.params[k]))
    assert any(not np.array_equal(to_host(a.params[k]), to_host(c.params[k])) for k in a.params)


def test_train_step_is_loss_backward_clip_update():
    """train_step equals its four steps done by hand: loss, backward, clip by global norm,
    SGD update; it returns the loss before the update and the final state."""
    batch = BatchStream(np.random.default_rng(1).integers(0, 7, size=200), 3, 5).next_batch()
    a = CharLM(7, "gru", hidden_size=4, num_layers=2, dtype="float64", seed=3)
    b = CharLM(7, "gru", hidden_size=4, num_layers=2, dtype="float64", seed=3)
    loss, state = train_step(a, SGD(0.1), batch, a.initial_state(3), grad_clip=0.05)
    want_loss, want_state = b.loss(batch.x, batch.y, b.initial_state(3))
    b.backward()
    assert clip_grad_norm(b.grads, 0.05) > 0.05                  # the clip really acted
    assert loss == want_loss
    np.testing.assert_array_equal(to_host(state), to_host(want_state))
    for k in b.params:
        np.testing.assert_allclose(to_host(a.params[k]), to_host(b.params[k] - 0.1 * b.grads[k]),
                                   rtol=1e-12, atol=1e-15)


def test_train_step_stops_before_the_update_when_the_loss_is_not_finite():
    model = CharLM(5, "lstm", hidden_size=3, num_layers=1, dtype="float64", seed=0)
    model.params["head.b"][0] = np.inf
    before = {k: v.copy() for k, v in model.params.items()}
    batch = BatchStream(np.arange(40) % 5, 2, 4).next_batch()
    with pytest.raises(TrainingDiverged, match="training loss became"), np.errstate(invalid="ignore"):
        train_step(model, SGD(0.1), batch, model.initial_state(2), grad_clip=1.0)
    for k, v in before.items():
        np.testing.assert_array_equal(to_host(model.params[k]), to_host(v))


def test_evaluate_is_stateful_and_leaves_mode_alone():
    """evaluate() over B streams with the state carried equals the same computation by hand,
    and it uses eval mode (no dropout) without changing the model's own mode."""
    rng = np.random.default_rng(0)
    model = CharLM(6, "lstm", hidden_size=5, num_layers=2, dropout=0.5, dtype="float64", seed=0)
    ids = rng.integers(0, 6, size=101)
    model.train()
    scores = evaluate(model, ids, batch_size=2, seq_len=10)
    assert model.rnn.training
    # by hand: 2 streams of 50 tokens, windows of 10, state carried, no dropout
    model.eval()
    x = ids[:100].reshape(2, 50).T
    y = ids[1:101].reshape(2, 50).T
    state, total, correct = None, 0.0, 0
    for w in range(5):
        rows = slice(10 * w, 10 * w + 10)
        logits, state = model.forward(x[rows], state)
        loss, _ = model.loss_from_logits(logits, y[rows])
        total += float(loss) * 20
        correct += int((to_host(logits).argmax(-1) == y[rows]).sum())
    assert scores["tokens"] == 100
    assert scores["loss"] == pytest.approx(total / 100, rel=1e-12)
    assert scores["accuracy"] == correct / 100
    assert scores["bpc"] == pytest.approx(scores["loss"] / math.log(2))
    assert scores["perplexity"] == pytest.approx(math.exp(scores["loss"]))
    with pytest.raises(DataError):
        evaluate(model, ids[:1], 2, 10)


def test_prepare_data_is_deterministic_and_positional():
    cfg = TrainConfig(source="python-docs", max_chars=10_000)
    a, b = prepare_data(cfg), prepare_data(cfg)
    assert a.vocab == b.vocab
    np.testing.assert_array_equal(a.train, b.train)
    assert (len(a.train), len(a.val), len(a.test)) == (9000, 500, 500)
    whole = np.concatenate([a.train, a.val, a.test])
    assert a.vocab.decode(whole) == load_corpus("python-docs", 10_000)
