"""``scratchrnn analyze CKPT``: look inside a trained model; one self-contained HTML report.

    scratchrnn analyze runs/x/last.npz                      # its own held-out (test) split
    scratchrnn analyze runs/x/last.npz --text notes.py      # any UTF-8 file
    scratchrnn analyze runs/x/last.npz --corpus python-docs --out /tmp/inside

Writes DIR/report.html (open it in a browser; it loads nothing from anywhere), the PNG
figures beside it and DIR/summary.json with the numbers. DIR defaults to ``analysis``
next to the checkpoint. An existing folder is written into only if it is empty or holds
an earlier report (``--force`` allows any folder); nothing is ever deleted, and only the
report's own file names (report.html, summary.json, *.png) are written.

Text: by default the first ``--max-chars`` characters of the checkpoint's own test split
(val with ``--split val``); the text before it is handed to the lexer of the features, and
the n-gram baseline is fit on the training split. ``--corpus`` takes the same split of
another embedded corpus. ``--text`` takes a file from its start. A character the model's
vocabulary lacks is an error, unless ``--drop-unknown`` drops such characters.
"""
from __future__ import annotations

import os
import sys
import time

from scratchrnn.core.errors import ConfigError, DataError
from scratchrnn.core.validation import int_at_least, positive_int
from scratchrnn.lm.corpora import CORPORA

REPORT_FILES = ("report.html", "summary.json")


def add_parser(sub):
    p = sub.add_parser("analyze", help="visualise and analyse a trained model (HTML report)",
                       description="Activations, per-neuron heatmaps, gate saturation, saliency, gradient "
                                   "flow, PCA, interpretable neurons and an n-gram baseline, after Karpathy, "
                                   "Johnson & Fei-Fei (2015), in one self-contained HTML page.")
    p.add_argument("checkpoint", metavar="CKPT")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--text", default=None, metavar="FILE", help="analyse this UTF-8 file")
    src.add_argument("--corpus", default=None, metavar="{" + ",".join(CORPORA) + "}",
                     help=f"analyse the held-out split of this embedded corpus, {' or '.join(CORPORA)} "
                          f"(default: the checkpoint's own)")
    p.add_argument("--split", choices=("test", "val"), default="test",
                   help="which held-out split of the corpus (default test)")
    p.add_argument("--max-chars", type=int, default=20_000,
                   help="analyse at most this many characters (default 20000)")
    p.add_argument("--drop-unknown", action="store_true",
                   help="drop characters the model's vocabulary lacks instead of refusing the text")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="report folder (default: 'analysis' next to the checkpoint)")
    p.add_argument("--force", action="store_true",
                   help="write into a non-empty folder that holds no earlier report")
    p.add_argument("--ngram-order", type=int, default=9, help="n of the n-gram baseline (default 9)")
    p.add_argument("--ngram-chars", type=int, default=1_000_000,
                   help="fit the n-gram model on at most this many training characters, the ones "
                        "nearest the analysed text (default 1000000)")
    p.add_argument("--backend", choices=("numpy", "cupy", "auto"), default=None,
                   help="array backend (default: $SCRATCHRNN_BACKEND, else numpy)")
    p.add_argument("--seed", type=int, default=0, help="seed of the untrained models and the PCA sample")
    p.set_defaults(func=run)
    return p


LOCK_NAME = "analyze.lock"


def _report_file(name):
    """Whether ``name`` is one a report writes (a killed analyze leaves some of them, and its
    lock, behind: its folder is still a report's folder, taken over by the next run)."""
    return (name in ("report.html", "summary.json", LOCK_NAME) or name.endswith(".png")
            or (name.startswith(".") and name.endswith(".tmp")))


def report_lock(folder):
    """``with report_lock(folder):`` -- one analyze per folder; a lock whose process is gone
    (a killed analyze) is stale and taken over, as for a training run's folder."""
    from scratchrnn.lm.lockfile import FolderLock, describe_holder

    path = os.path.join(folder, LOCK_NAME)
    return FolderLock(path, lambda holder: (f"The report folder {folder!r} is in use by another "
                                            f"analyze ({describe_holder(holder)}); wait for it or "
                                            f"choose another --out."),
                      f"Cannot take the lock {path!r}; another analyze is starting there.")


def choose_out_dir(checkpoint, out, force):
    """The report folder: ``out`` or 'analysis' beside the checkpoint; ConfigError if it is a
    file, or a non-empty folder without an earlier report (unless ``force``)."""
    folder = out if out is not None else os.path.join(os.path.dirname(os.path.abspath(checkpoint)), "analysis")
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise ConfigError(f"The output path {folder!r} is a file, not a folder; choose another --out.")
    if os.path.isdir(folder) and os.listdir(folder) and not force \
            and not os.path.exists(os.path.join(folder, "report.html")) \
            and not all(_report_file(name) for name in os.listdir(folder)):
        raise ConfigError(f"The folder {folder!r} is not empty and holds no earlier report; choose "
                          f"another --out or pass --force (nothing in it is deleted).")
    existing = os.path.abspath(folder)
    while not os.path.exists(existing):            # the nearest part of the path that exists
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise ConfigError(f"The report folder {folder!r} cannot be made: {existing!r} is a file.")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"The report folder {folder!r} cannot be written: {existing!r} is not writable.")
    return folder


def _encode(vocab, text, drop, where):
    """Keep only characters of the vocabulary (with ``drop``) or refuse the text."""
    known = set(vocab.tokens)
    unknown = sorted({ch for ch in text if ch not in known})
    if unknown and not drop:
        shown = "".join(unknown[:10])
        raise DataError(f"{where} has {len(unknown)} character(s) the model's vocabulary lacks "
                        f"(e.g. {shown!r}); pass --drop-unknown to drop them.")
    if unknown:
        text = "".join(ch for ch in text if ch in known)
    return text, len(unknown)


def select_text(args, vocab, meta):
    """(text, prefix, train_text or None, description) for the analysis."""
    from scratchrnn.book.batching import split_ids
    from scratchrnn.lm.corpora import check_corpus, load_source, read_text_file
    from scratchrnn.lm.run import TrainConfig

    cfg = TrainConfig.from_json(meta["train"])
    if args.text is not None:
        text, dropped = _encode(vocab, read_text_file(args.text), args.drop_unknown,
                                f"The file {args.text!r}")
        text = text[:args.max_chars]
        where = f"{os.path.basename(args.text)}"
        train_text = None
        try:                                   # the n-gram baseline: the model's own training split
            own, _ = _encode(vocab, load_source(cfg.source, cfg.max_chars), True, "")
            train_text = own[:int(cfg.split[0] * len(own))]
        except (DataError, ConfigError, OSError):
            pass
        prefix = ""
    else:
        name = check_corpus(args.corpus) if args.corpus is not None else cfg.source
        full, dropped = _encode(vocab, load_source(name, cfg.max_chars), args.drop_unknown,
                                f"The corpus {name!r}")
        train, val, test = split_ids(range(len(full)), cfg.split)
        held = test if args.split == "test" else val
        if len(held) < 2:
            raise DataError(f"The {args.split} split of {name!r} is empty; try --split "
                            f"{'val' if args.split == 'test' else 'test'} or --text.")
        start = held[0]
        text = full[start:start + min(len(held), args.max_chars)]
        prefix = full[:start]
        train_text = full[train[0]:train[-1] + 1] if len(train) else None
        where = f"the {args.split} split of {name!r}"
    if train_text is not None and args.ngram_chars < len(train_text):
        train_text = train_text[-args.ngram_chars:]          # the part nearest the held-out text
    if dropped:
        where += f", {dropped} unknown character(s) dropped"
    return text, prefix, train_text, where


def run(args):
    from scratchrnn.analysis.report import ReportOptions, analyze
    from scratchrnn.lm.saved import load_model

    for name in ("max_chars", "ngram_order", "ngram_chars"):
        positive_int(name.replace("_", "-"), getattr(args, name))
    int_at_least("--seed", args.seed, 0)
    started = time.perf_counter()
    model, vocab, meta = load_model(args.checkpoint, backend=args.backend)
    if vocab.level != "char":
        raise ConfigError("analyze works on character-level checkpoints only; this one is word level.")
    out_dir = choose_out_dir(args.checkpoint, args.out, args.force)
    text, prefix, train_text, where = select_text(args, vocab, meta)
    if train_text is not None and args.ngram_order > len(train_text):
        raise ConfigError(f"--ngram-order {args.ngram_order} is longer than the n-gram model's "
                          f"{len(train_text):,} training characters; choose a smaller order or a "
                          f"larger --ngram-chars.")
    options = ReportOptions(ngram_order=args.ngram_order, seed=args.seed)
    os.makedirs(out_dir, exist_ok=True)
    with report_lock(out_dir):
        result = analyze(model, vocab, text, out_dir, prefix=prefix, train_text=train_text,
                         source=where, options=options, title=f"Inside {os.path.basename(args.checkpoint)}")
    s = result.summary
    print(f"analysed {len(text):,} characters of {where}: RNN loss {s['rnn_loss']:.4f} nats/char"
          + (f", {s['ngram']['order']}-gram {s['ngram']['ngram_loss']:.4f}" if "ngram" in s else ""),
          file=sys.stderr)
    for row in s.get("neurons", []):
        if row.get("rank") == 1:
            print(f"  {row['feature']:<14} best unit {row['unit']}  r = {row['r']:+.3f}", file=sys.stderr)
    print(f"report: {result.report_path}  ({len(result.images)} figures, "
          f"{time.perf_counter() - started:.1f} s)")
    return 0
