"""``scratchrnn eval CKPT``: loss, bits per char, perplexity and accuracy on held-out text."""
from __future__ import annotations

import json
import sys

from scratchrnn.book.train import evaluate
from scratchrnn.core.errors import DataError
from scratchrnn.core.validation import positive_int
from scratchrnn.lm.run import TrainConfig, prepare_data
from scratchrnn.lm.saved import load_model


def add_parser(sub):
    p = sub.add_parser("eval", help="score a checkpoint on its test/val split or a file")
    p.add_argument("checkpoint", metavar="CKPT")
    p.add_argument("--text", default=None, metavar="FILE", help="score this UTF-8 file instead")
    p.add_argument("--split", choices=("test", "val", "train"), default="test")
    p.add_argument("--max-tokens", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seq-length", dest="seq_len", type=int, default=128)
    p.add_argument("--json", action="store_true", help="print the scores as JSON")
    p.add_argument("--backend", choices=("numpy", "cupy", "auto"), default=None,
                   help="array backend (default: $SCRATCHRNN_BACKEND, else numpy)")
    p.set_defaults(func=run)
    return p


def run(args):
    for flag, value in (("batch-size", args.batch_size), ("seq-length", args.seq_len),
                        ("max-tokens", args.max_tokens)):
        if value is not None:
            positive_int(f"--{flag}", value)
    model, vocab, meta = load_model(args.checkpoint, backend=args.backend)
    if args.text is not None:
        from scratchrnn.lm.corpora import read_text_file
        wanted = args.max_tokens + 1 if args.max_tokens is not None and vocab.level == "char" else None
        ids = vocab.encode(read_text_file(args.text, wanted),        # only what will be scored
                           allow_unknown=vocab.level == "word")
        where = args.text
    else:
        cfg = TrainConfig.from_json(meta["train"])
        ids = getattr(prepare_data(cfg, vocab), args.split)
        where = f"the {args.split} split of {cfg.source!r}"
    if len(ids) < 2:
        raise DataError(f"{where} has fewer than 2 tokens to score.")
    scores = evaluate(model, ids, args.batch_size, args.seq_len, args.max_tokens, vocab.pad_id)
    available = len(ids) - 1 if args.max_tokens is None else min(len(ids) - 1, args.max_tokens)
    scores["tokens_available"] = available
    if scores["tokens"] < available and not args.json and vocab.pad_id is None:   # an unfilled tail
        print(f"note: scored {scores['tokens']:,} of the {available:,} tokens: the evaluation runs "
              f"{args.batch_size} streams in windows of {args.seq_len}, and the last "
              f"{available - scores['tokens']:,} fill no whole window; --batch-size 1 --seq-length 1 "
              f"scores every token (slowly).", file=sys.stderr)
    if args.json:
        print(json.dumps(scores))
    else:
        print(f"{where}: {scores['tokens']:,} tokens  loss {scores['loss']:.4f} nats  "
              f"{scores['bpc']:.4f} bits/token  perplexity {scores['perplexity']:.3f}  "
              f"accuracy {scores['accuracy']:.2%}")
    return 0
