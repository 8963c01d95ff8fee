"""``scratchrnn sample CKPT``: generate text from a trained model."""
from __future__ import annotations

import sys

from scratchrnn.lm.sample import STRATEGIES, generate_pieces, validate_options
from scratchrnn.lm.saved import load_model


def add_parser(sub):
    p = sub.add_parser("sample", help="generate text from a checkpoint",
                       description="Warm the model up on --prime, then generate --length tokens.")
    p.add_argument("checkpoint", metavar="CKPT")
    p.add_argument("--prime", default="", help="text fed to the model first (printed before the sample)")
    p.add_argument("--length", type=int, default=500)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--strategy", choices=STRATEGIES, default="sample",
                   help="sample (softmax/T), argmax, topk, or rand (uniform baseline)")
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--backend", choices=("numpy", "cupy", "auto"), default=None,
                   help="array backend (default: $SCRATCHRNN_BACKEND, else numpy)")
    p.set_defaults(func=run)
    return p


def run(args):
    validate_options(args.strategy, args.temperature, args.top_k, args.length, args.seed)
    model, vocab, _ = load_model(args.checkpoint, backend=args.backend)
    pieces = generate_pieces(model, vocab, args.length, prime=args.prime, strategy=args.strategy,
                             temperature=args.temperature, top_k=args.top_k, seed=args.seed)
    sys.stdout.write(args.prime)
    for i, piece in enumerate(pieces, 1):       # printed as it is drawn, not at the end
        sys.stdout.write(piece)
        if i % 64 == 0 or "\n" in piece:
            sys.stdout.flush()
    sys.stdout.write("\n")
    return 0
