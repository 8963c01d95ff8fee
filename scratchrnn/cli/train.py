"""``scratchrnn train``: train a language model, printing samples before and after.

Flags follow char-rnn where they fit (--rnn-size, --num-layers, --seq-length,
--batch-size, --learning-rate, --grad-clip, --eval-val-every). With ``--resume CKPT``
every flag left out is taken from the checkpoint; a flag that changes the architecture
or the data must agree with it.

The budget on ``--resume`` is the run's total: --max-steps, --max-epochs and --max-minutes
count the whole run, from its first step (as the checkpoint, the progress bar and
``Trainer.resume`` do), and the saved limits stand unless given again. So a resumed run with
no budget flag ends where it would have ended had it never stopped. A resume whose budget is
already spent trains nothing: it says so in one sentence, with the total that would give more,
exits with status 2 and touches nothing.
"""
from __future__ import annotations

import dataclasses
import os
import shlex
import sys
import time

from scratchrnn.core.errors import ConfigError
from scratchrnn.engines.blas_kernel import blas_advice
from scratchrnn.lm.corpora import CORPORA
from scratchrnn.lm.run import TrainConfig, Trainer

# flag -> TrainConfig field, for the flags whose default is "what the config says"
_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}


def add_parser(sub):
    p = sub.add_parser("train", help="train a character-level language model",
                       description="Train an RNN/GRU/LSTM language model with hand-written BPTT.")
    d = TrainConfig()
    data = p.add_argument_group("data")
    data.add_argument("--corpus", default=None, metavar="{" + ",".join(CORPORA) + "}",
                      help=f"embedded corpus: {' or '.join(CORPORA)}, built from this Python's own "
                           f"standard library source or its documentation (default {d.source})")
    data.add_argument("--text", default=None, metavar="FILE", help="train on this UTF-8 text file instead")
    data.add_argument("--max-chars", type=int, default=None, help=f"use the first N characters (default {d.max_chars})")
    data.add_argument("--level", choices=("char", "word"), default=None, help="token level (default char)")
    data.add_argument("--max-vocab", type=int, default=None, help="word level: vocabulary size limit")
    data.add_argument("--split", default=None, help="train,val,test fractions (default 0.9,0.05,0.05)")
    data.add_argument("--shuffle", action="store_true", default=None, help="shuffled windows (state reset each window)")
    m = p.add_argument_group("model")
    m.add_argument("--cell", default=None, help=f"rnn, gru or lstm (default {d.cell})")
    m.add_argument("--rnn-size", "--hidden-size", dest="hidden_size", type=int, default=None,
                   help=f"hidden units per layer (default {d.hidden_size})")
    m.add_argument("--num-layers", type=int, default=None, help=f"default {d.num_layers}")
    m.add_argument("--embedding-size", type=int, default=None, help="0 = one-hot input (default)")
    m.add_argument("--dropout", type=float, default=None, help="dropout between layers (default 0)")
    m.add_argument("--nonlinearity", choices=("tanh", "relu"), default=None, help="RNN only")
    m.add_argument("--forget-bias", type=float, default=None,
                   help=f"LSTM forget-gate bias at init (default {d.forget_bias:g})")
    m.add_argument("--dtype", choices=("float32", "float64"), default=None)
    o = p.add_argument_group("optimisation")
    o.add_argument("--seq-length", dest="seq_len", type=int, default=None, help=f"BPTT window T (default {d.seq_len})")
    o.add_argument("--batch-size", type=int, default=None, help=f"parallel streams B (default {d.batch_size})")
    o.add_argument("--optimizer", default=None, help="sgd, adagrad, rmsprop or adam (default adam)")
    o.add_argument("--learning-rate", "--lr", dest="lr", type=float, default=None, help=f"default {d.lr}")
    o.add_argument("--lr-decay", type=float, default=None, help="multiply lr by this each epoch ...")
    o.add_argument("--lr-decay-after", type=int, default=None, help="... after this many epochs")
    o.add_argument("--grad-clip", type=float, default=None,
                   help=f"clip by global norm (default {d.grad_clip}; 0 = off)")
    o.add_argument("--clip-value", type=float, default=None, help="clip each element (0 = off)")
    b = p.add_argument_group(
        "budget and output",
        "Training stops at the first limit reached. The limits count the whole run: on --resume "
        "they are its totals, counted from its first step (the checkpoint's limits stand unless "
        "given again), so to train on, give a larger total: --max-minutes 10 after a run of "
        "3 minutes trains 7 more.")
    b.add_argument("--max-steps", type=int, default=None, metavar="N",
                   help="stop after N training steps (windows of --seq-length x --batch-size tokens)")
    b.add_argument("--max-epochs", type=float, default=None, metavar="E",
                   help="stop after E passes over the training split (fractions allowed)")
    b.add_argument("--max-minutes", type=float, default=None, metavar="M",
                   help=f"stop after M minutes of wall-clock training time, evaluations and "
                        f"checkpoints included, data loading and samples not (default {d.max_minutes:g})")
    b.add_argument("--eval-val-every", "--eval-every", dest="eval_every", type=int, default=None,
                   help=f"evaluate and checkpoint every N steps (default {d.eval_every})")
    b.add_argument("--eval-tokens", type=int, default=None, help="val tokens scored per evaluation")
    b.add_argument("--patience", type=int, default=None, help="early stopping: evaluations without improvement")
    b.add_argument("--seed", type=int, default=None)
    b.add_argument("--backend", choices=("numpy", "cupy", "auto"), default=None,
                   help="array backend (default: $SCRATCHRNN_BACKEND, else numpy)")
    b.add_argument("--out", dest="out_dir", default=None, help="run directory (default runs/<corpus>-<cell>-<time>)")
    b.add_argument("--resume", default=None, metavar="CKPT", help="continue the run saved in CKPT")
    b.add_argument("--sample-length", type=int, default=300, help="characters sampled before/after (0 = none)")
    b.add_argument("--no-progress", dest="progress", action="store_false", default=None)
    p.set_defaults(func=run)
    return p


def _overrides(args):
    """The TrainConfig fields the user actually gave on the command line."""
    given = {k: v for k, v in vars(args).items() if k in _FIELDS and v is not None}
    if args.text is not None and args.corpus is not None:
        from scratchrnn.core.errors import ConfigError
        raise ConfigError("give either --corpus or --text, not both.")
    if args.text is not None:
        given["source"] = os.path.abspath(args.text)    # a resumed run may start elsewhere
    elif args.corpus is not None:
        from scratchrnn.lm.corpora import check_corpus
        given["source"] = check_corpus(args.corpus)
    if "out_dir" in given:
        given["out_dir"] = os.path.abspath(given["out_dir"])
    if args.split is not None:
        given["split"] = _parse_split(args.split)
    return given


def _parse_split(text):
    from scratchrnn.core.errors import ConfigError
    try:
        parts = tuple(float(x) for x in text.split(","))
    except ValueError:
        parts = ()
    if len(parts) != 3:
        raise ConfigError(f"--split needs three comma-separated fractions like 0.9,0.05,0.05, got {text!r}.")
    return parts


def _default_out_dir(cfg):
    name = os.path.basename(cfg.source).replace(".", "-")
    return os.path.abspath(os.path.join("runs", f"{name}-{cfg.cell}-{time.strftime('%Y%m%d-%H%M%S')}"))


def _show_sample(trainer, title, length, seed):
    from scratchrnn.lm.sample import generate
    if length <= 0:
        return
    text = generate(trainer.model, trainer.data.vocab, length, prime="", temperature=0.8, seed=seed)
    print(f"----- {title} " + "-" * max(0, 60 - len(title)))
    print(text)
    print("-" * 67, flush=True)


def suggested_prime(vocab, train_ids, limit=2000):
    """A prime taken from the training text: the start of its first non-blank line (8
    characters, or 2 words at word level), so the suggestion fits the text trained on."""
    head = vocab.decode(train_ids[:limit])
    line = next((ln for ln in head.splitlines() if ln.strip()), head)
    if vocab.level == "word":
        return " ".join(line.split()[:2])
    return line.lstrip()[:8] or line[:8]


def budget_spent_sentence(trainer, reason):
    """One sentence: which of a resumed run's limits is already spent, and the total that
    would give it as much again."""
    cfg, p = trainer.cfg, trainer.progress
    if reason == "early_stopping":
        return (f"Nothing to train: early stopping already ended this run ({p.evals_since_best} "
                f"evaluations without improvement, --patience {cfg.patience}); give a larger "
                f"--patience to go on.")
    if reason == "max_steps":
        done, limit, flag, unit = p.step, cfg.max_steps, "--max-steps", "steps"
        spent, more = f"{done} steps", f"{done + limit}"
    elif reason == "max_epochs":
        done, limit, flag, unit = trainer.stream.epoch_progress, cfg.max_epochs, "--max-epochs", "epochs"
        spent, more = f"{done:.3g} epochs", f"{done + limit:.3g}"
    else:
        done, limit, flag, unit = p.elapsed_s / 60, cfg.max_minutes, "--max-minutes", "minutes"
        spent, more = f"{done:.3g} minutes", f"{done + limit:.3g}"
    return (f"Nothing to train: this run's budget is already spent, for it has trained {spent} "
            f"and {flag} {limit:g} counts the whole run; give a larger total to go on, for "
            f"example {flag} {more} for {limit:g} more {unit}.")


def run(args):
    given = _overrides(args)
    if args.resume is not None:
        trainer = Trainer.resume(args.resume, overrides=given)
        reason = trainer.budget_spent()              # the limits are the run's totals
        if reason is not None:
            raise ConfigError(budget_spent_sentence(trainer, reason))
    else:
        cfg = TrainConfig(**given)
        if "out_dir" not in given:
            cfg.out_dir = _default_out_dir(cfg)
        trainer = Trainer(cfg)
    cfg = trainer.cfg
    m = trainer.model
    print(f"scratchrnn train: {cfg.num_layers}-layer {cfg.cell.upper()} (H={cfg.hidden_size}, "
          f"{m.num_params():,} parameters) on {cfg.source!r}: vocab {len(trainer.data.vocab)}, "
          f"{len(trainer.data.train):,} train / {len(trainer.data.val):,} val tokens; "
          f"backend {m.backend.name}; engine {m.rnn.engine}; run dir {cfg.out_dir}", flush=True)
    advice = blas_advice() if m.backend.name == "numpy" else None
    if advice:
        print(f"note: {advice}", flush=True)
    _show_sample(trainer, "sample before training", args.sample_length, cfg.seed)
    result = trainer.run()
    if result.steps == 0 or not os.path.exists(result.last_path):   # report only what is there
        print(f"scratchrnn train: error: the budget ended before the first training step "
              f"(stopped: {result.stopped_because}); nothing was trained and no checkpoint was "
              f"written in {cfg.out_dir!r}.", file=sys.stderr)
        return 2
    _show_sample(trainer, f"sample after {result.steps} steps", args.sample_length, cfg.seed)
    last = result.history["val"][-1] if result.history["val"] else None
    unit = trainer.data.vocab.level                    # char or word: the loss is per token
    if last:
        print(f"val loss {last['loss']:.4f} nats/{unit} = {last['bpc']:.3f} bits/{unit} "
              f"(perplexity {last['perplexity']:.2f}, accuracy {last['accuracy']:.1%}); "
              f"best val {result.best_val:.4f}; stopped: {result.stopped_because}")
    best = result.best_path if result.best_path and os.path.exists(result.best_path) else None
    print(f"checkpoints: {result.last_path}" + (f", best {best}" if best else ""))
    prime = suggested_prime(trainer.data.vocab, trainer.data.train)
    print(f"next: scratchrnn sample {shlex.quote(best or result.last_path)} "
          f"--prime {shlex.quote(prime)}")
    return 0
