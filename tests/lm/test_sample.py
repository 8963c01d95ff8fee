"""Generation (scratchrnn.lm.sample): strategies, seeds, temperature, top-k, priming,
save/load, and the ``sample`` / ``eval`` commands on a real checkpoint."""
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from host import to_host
from scratchrnn.book import ops
from scratchrnn.core.backend import host_rng
from scratchrnn.lm.run import TrainConfig, Trainer
from scratchrnn.lm.sample import choose_next, generate
from scratchrnn.lm.saved import load_model


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small LSTM trained briefly on python-docs (so its predictions are not uniform),
    with dropout so that sampling must switch it to eval mode. Returns the Trainer."""
    out = tmp_path_factory.mktemp("sample") / "run"
    cfg = TrainConfig(source="python-docs", max_chars=20_000, cell="lstm", hidden_size=32,
                      num_layers=2, dropout=0.2, seq_len=32, batch_size=8, lr=1e-2, max_steps=40,
                      eval_every=20, max_minutes=None, progress=False, out_dir=str(out))
    trainer = Trainer(cfg)
    trainer.run()
    return trainer


def next_distribution(model, vocab, prime):
    """softmax of the logits after feeding ``prime`` from the zero state, computed by one
    full-sequence forward pass (not the step-by-step path generate uses)."""
    model.eval()
    ids = vocab.encode(prime).reshape(-1, 1)
    logits, _ = model.forward(ids, model.initial_state(1))
    return ops.softmax(np.asarray(to_host(logits[-1, 0]), dtype=np.float64))


# -------------------------------------------------------------- strategies
def test_argmax_is_deterministic_and_greedy(trained):
    model, vocab = trained.model, trained.data.vocab
    prime, n = "The ", 40
    a = generate(model, vocab, n, prime=prime, strategy="argmax", seed=1)
    b = generate(model, vocab, n, prime=prime, strategy="argmax", seed=2)
    assert a == b and len(a) == n
    # greedy decoding recomputed from scratch: each next char is the argmax after the
    # whole text so far, fed in one forward pass
    text = prime
    for _ in range(n):
        text += vocab.decode([int(np.argmax(next_distribution(model, vocab, text)))])
    assert text[len(prime):] == a


def test_same_seed_same_text_other_seed_other_text(trained):
    model, vocab = trained.model, trained.data.vocab
    a = generate(model, vocab, 80, prime="def ", seed=7)
    b = generate(model, vocab, 80, prime="def ", seed=7)
    c = generate(model, vocab, 80, prime="def ", seed=8)
    assert a == b
    assert a != c
    # and without a prime (random first token) too
    assert generate(model, vocab, 30, seed=3) == generate(model, vocab, 30, seed=3)


def test_very_low_temperature_equals_argmax(trained):
    model, vocab = trained.model, trained.data.vocab
    greedy = generate(model, vocab, 40, prime="the ", strategy="argmax")
    cold = generate(model, vocab, 40, prime="the ", strategy="sample", temperature=1e-4, seed=5)
    assert cold == greedy


def test_topk_with_k_1_equals_argmax(trained):
    model, vocab = trained.model, trained.data.vocab
    greedy = generate(model, vocab, 40, prime="a ", strategy="argmax")
    for seed in (0, 1):
        assert generate(model, vocab, 40, prime="a ", strategy="topk", top_k=1, seed=seed) == greedy


def test_high_temperature_flattens(trained):
    """Sampling hot draws more distinct characters than sampling cold."""
    model, vocab = trained.model, trained.data.vocab
    hot = generate(model, vocab, 300, prime="a", temperature=5.0, seed=0)
    cold = generate(model, vocab, 300, prime="a", temperature=0.3, seed=0)
    assert len(set(hot)) > len(set(cold))


def test_sample_strategy_matches_softmax_frequencies():
    logits = np.array([2.0, 1.0, 0.0, -1.0, 0.5])
    for temperature in (1.0, 0.5):
        p = ops.softmax(logits / temperature)
        rng = host_rng(0)
        n = 20_000
        counts = np.bincount([choose_next(logits, "sample", rng, temperature) for _ in range(n)],
                             minlength=5)
        sigma = np.sqrt(n * p * (1 - p))
        assert np.all(np.abs(counts - n * p) < 5 * sigma + 1), (counts, n * p)


def test_topk_draws_only_the_k_best_in_proportion():
    logits = np.array([0.3, 2.0, -1.0, 1.5, 1.0, -3.0])
    rng = host_rng(1)
    n = 20_000
    draws = np.array([choose_next(logits, "topk", rng, 1.0, top_k=3) for _ in range(n)])
    assert set(draws.tolist()) == {1, 3, 4}
    p = ops.softmax(logits[[1, 3, 4]])
    counts = np.array([(draws == i).sum() for i in (1, 3, 4)])
    assert np.all(np.abs(counts - n * p) < 5 * np.sqrt(n * p * (1 - p)))


def test_rand_strategy_is_uniform_and_ignores_the_model():
    logits = np.array([50.0] + [0.0] * 9)           # the model is certain of token 0
    rng = host_rng(2)
    n = 20_000
    counts = np.bincount([choose_next(logits, "rand", rng) for _ in range(n)], minlength=10)
    expected, sigma = n / 10, math.sqrt(n * 0.1 * 0.9)
    assert np.all(np.abs(counts - expected) < 5 * sigma), counts
    # chi-square with 9 degrees of freedom: 40 is far beyond its 99.99th percentile
    assert ((counts - expected) ** 2 / expected).sum() < 40


def test_rand_strategy_through_generate(trained):
    model, vocab = trained.model, trained.data.vocab
    text = generate(model, vocab, 3000, prime="x", strategy="rand", seed=0)
    counts = np.bincount(vocab.encode(text), minlength=len(vocab))
    # every token of the vocabulary shows up, none dominates
    assert (counts > 0).mean() > 0.95
    assert counts.max() < 4 * len(text) / len(vocab)


# ------------------------------------------------------------------ priming
def test_prime_warms_the_state(trained):
    model, vocab = trained.model, trained.data.vocab
    # the same last character, different histories: different predictions
    after_prime = next_distribution(model, vocab, "import os\nimport sys\n\nclass Foo")
    from_zero = next_distribution(model, vocab, "o")
    assert np.abs(after_prime - from_zero).sum() > 0.05
    # generate continues from exactly that warmed state
    first = generate(model, vocab, 1, prime="The keyword", strategy="argmax")
    assert first == vocab.decode([int(np.argmax(next_distribution(model, vocab, "The keyword")))])


def test_incremental_steps_equal_the_full_forward(trained):
    model, vocab = trained.model, trained.data.vocab
    model.eval()
    ids = vocab.encode("for x in range(10):\n    pass")
    full, _ = model.forward(ids.reshape(-1, 1), model.initial_state(1))
    state = model.initial_state(1)
    for t, i in enumerate(ids):
        logits, state = model.step_logits([i], state)
        np.testing.assert_allclose(to_host(logits[0]), to_host(full[t, 0]), rtol=1e-5, atol=1e-6)


def test_generate_leaves_training_mode_and_ignores_dropout(trained):
    model, vocab = trained.model, trained.data.vocab
    model.train()
    a = generate(model, vocab, 50, prime="in ", strategy="argmax")
    model.rnn.seed_dropout(123)
    b = generate(model, vocab, 50, prime="in ", strategy="argmax")
    assert a == b
    assert model.rnn.training


def test_length_zero_and_decoding(trained):
    model, vocab = trained.model, trained.data.vocab
    assert generate(model, vocab, 0, prime="abc") == ""
    text = generate(model, vocab, 25, seed=0)
    assert len(text) == 25 and set(text) <= set(vocab.tokens)


# ---------------------------------------------------------------- save/load
def test_checkpoint_loads_and_samples_identically(trained):
    model, vocab = trained.model, trained.data.vocab
    path = os.path.join(trained.cfg.out_dir, "last.npz")
    loaded, loaded_vocab, meta = load_model(path)
    assert loaded_vocab == vocab and meta["model"] == model.config
    for k, p in model.params.items():
        assert np.array_equal(loaded.params[k], p) and loaded.params[k].dtype == p.dtype
    for kw in (dict(seed=11), dict(strategy="argmax"), dict(strategy="topk", top_k=5, seed=2),
               dict(temperature=0.7, seed=4)):
        assert generate(loaded, loaded_vocab, 60, prime="the ", **kw) == \
            generate(model, vocab, 60, prime="the ", **kw)


# ----------------------------------------------------------- the commands
def _run(args, cwd):
    env = dict(os.environ, OMP_NUM_THREADS="1", SCRATCHRNN_BACKEND="numpy", MPLBACKEND="Agg")
    return subprocess.run([sys.executable, "-m", "scratchrnn.cli", *map(str, args)], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=300)


def test_sample_command_on_a_trained_checkpoint(trained, tmp_path):
    path = os.path.join(trained.cfg.out_dir, "last.npz")
    p = _run(["sample", path, "--prime", "The ", "--length", "50", "--seed", "3"], tmp_path)
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr
    want = generate(trained.model, trained.data.vocab, 50, prime="The ", seed=3)
    assert p.stdout == "The " + want + "\n"
    p = _run(["sample", path, "--strategy", "argmax", "--length", "20", "--prime", "a"], tmp_path)
    assert p.returncode == 0 and len(p.stdout) == 1 + 20 + 1


def test_eval_command_on_a_trained_checkpoint(trained, tmp_path):
    path = os.path.join(trained.cfg.out_dir, "last.npz")
    p = _run(["eval", path, "--json", "--split", "val", "--batch-size", "8", "--seq-length", "32"],
             tmp_path)
    assert p.returncode == 0, p.stderr
    scores = json.loads(p.stdout)
    # the same number the training loop recorded for its last evaluation
    last = trained.progress.history["val"][-1]
    assert scores["loss"] == pytest.approx(last["loss"], rel=1e-6)
    assert scores["tokens"] == last["tokens"]
    text = tmp_path / "t.txt"
    text.write_text("The object is returned by the function.\n" * 5)
    p = _run(["eval", path, "--text", text], tmp_path)
    assert p.returncode == 0, p.stderr
    assert "loss" in p.stdout and "bits/token" in p.stdout


@pytest.mark.parametrize("strategy", ["argmax", "sample", "topk", "rand"])
def test_word_level_never_generates_padding(strategy):
    """The padding token is masked out of generation even when the model favours it."""
    from scratchrnn.blocks.model import CharLM
    from scratchrnn.lm.sample import generate
    from scratchrnn.lm.vocab import Vocab

    vocab = Vocab.build("the cat sat on the mat . the dog sat", level="word")
    model = CharLM(len(vocab), cell="gru", hidden_size=4, num_layers=1, seed=0)
    model.params["head.b"][vocab.pad_id] = 50.0          # the pad logit dominates
    out = generate(model, vocab, 40, prime="the", strategy=strategy, top_k=2, seed=3)
    assert out and "<pad>" not in out
