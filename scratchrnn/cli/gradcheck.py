"""``scratchrnn gradcheck``: every cell's hand-written BPTT against finite differences.

For each cell (RNN with tanh and with relu, GRU, LSTM), each engine (the cells'
"textbook" scans, their hoisted "reference" form and the "fast" engine of the
backend, see ``scratchrnn.engines``) and each depth (1-3 layers) it builds a small
float64 layer with random sizes, checks the gradient of every parameter, the input
and the initial state(s) with ``scratchrnn.book.gradcheck.check_layer`` and prints one
table. A cell with no fast engine on the backend (RNN on CuPy) is named below the
table. Exit status 0 when every row passes, 1 otherwise.
"""
from __future__ import annotations

import argparse

from scratchrnn import engines
from scratchrnn.blocks.layers import LAYERS
from scratchrnn.book.cells import CELLS
from scratchrnn.book.gradcheck import DEFAULT_TOL, check_layer, format_table
from scratchrnn.core.backend import CPU, get_backend
from scratchrnn.core.errors import ConfigError
from scratchrnn.core.validation import int_at_least, positive_float

numpy = CPU.xp   # host NumPy, through the backend seam

# what --cells accepts -> the variants checked (display name, layer kind, options)
VARIANTS = {
    "rnn-tanh": ("rnn", {"nonlinearity": "tanh"}),
    "rnn-relu": ("rnn", {"nonlinearity": "relu"}),
    "gru": ("gru", {}),
    "lstm": ("lstm", {}),
}
_ALIASES = {"rnn": ("rnn-tanh", "rnn-relu")}


def _cells(text):
    """'rnn,gru' -> ('rnn-tanh', 'rnn-relu', 'gru'); argparse type for --cells."""
    names = []
    for part in str(text).split(","):
        part = part.strip().lower()
        if not part:
            continue
        expanded = _ALIASES.get(part, (part,))
        for name in expanded:
            if name not in VARIANTS:
                raise argparse.ArgumentTypeError(
                    f"unknown cell {part!r}; choose from rnn, rnn-tanh, rnn-relu, gru, lstm.")
            if name not in names:
                names.append(name)
    if not names:
        raise argparse.ArgumentTypeError("no cell given.")
    return tuple(names)


def _layers(text):
    """'1,3' -> (1, 3); argparse type for --layers."""
    try:
        counts = tuple(int(p) for p in str(text).split(",") if p.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--layers wants integers like 1,2,3, got {text!r}.") from None
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"--layers wants positive integers, got {text!r}.")
    return counts


ENGINES = ("textbook", "reference", "fast")


def _engines(text):
    """'textbook,fast' -> ('textbook', 'fast'); argparse type for --engine."""
    names = tuple(dict.fromkeys(p.strip().lower() for p in str(text).split(",") if p.strip()))
    bad = [n for n in names if n not in engines.ENGINE_NAMES]
    if bad or not names:
        raise argparse.ArgumentTypeError(
            f"--engine wants a comma list of {', '.join(engines.ENGINE_NAMES)}, got {text!r}.")
    return names


def add_parser(subparsers):
    p = subparsers.add_parser(
        "gradcheck", help="check every cell's backward pass against finite differences",
        description="Compare the hand-written backpropagation through time of every cell "
                    "with central differences in float64, for 1-3 stacked layers.")
    p.add_argument("--cells", type=_cells, default=_cells("rnn,gru,lstm"),
                   help="comma list of rnn (= rnn-tanh and rnn-relu), rnn-tanh, rnn-relu, "
                        "gru, lstm (default: all)")
    p.add_argument("--layers", type=_layers, default=(1, 2, 3),
                   help="comma list of layer counts (default 1,2,3)")
    p.add_argument("--engine", type=_engines, default=ENGINES,
                   help="engines to check: textbook, reference, fast, auto "
                        "(default textbook,reference,fast)")
    p.add_argument("--backend", choices=("numpy", "cupy", "auto"), default=None,
                   help="array backend (default $SCRATCHRNN_BACKEND or numpy)")
    p.add_argument("--seed", type=int, default=0, help="seed for sizes, weights and data")
    p.add_argument("--tol", type=float, default=DEFAULT_TOL,
                   help=f"largest passing relative error (default {DEFAULT_TOL:g})")
    p.set_defaults(func=run)
    return p


def _sizes(seed, name, layers):
    """(T, B, I, H) for one check: small, random, fixed by (seed, cell, layers)."""
    key = [seed, layers] + [ord(c) for c in name]
    return numpy.random.default_rng(key).integers((2, 1, 1, 2), (6, 4, 5, 6))


def run(args) -> int:
    """Check every requested cell x engine x depth; print the table; 0 if all pass."""
    int_at_least("--seed", args.seed, 0)
    positive_float("--tol", args.tol)
    cells = args.cells if isinstance(args.cells, tuple) else _cells(args.cells)
    depths = args.layers if isinstance(args.layers, tuple) else _layers(args.layers)
    engine_arg = getattr(args, "engine", ENGINES)
    names = engine_arg if isinstance(engine_arg, tuple) else _engines(engine_arg)
    backend = get_backend(args.backend)
    columns = {"cell": [], "engine": [], "layers": [], "T,B,I,H": []}
    rows, missing = [], []
    for name in cells:
        kind, options = VARIANTS[name]
        for engine in names:
            try:
                engines.resolve(engine, CELLS[kind], backend)
            except ConfigError as err:          # no such engine here: say so, check the rest
                missing.append(f"{name}: {err}")
                continue
            for L in depths:
                # small random sizes: the check costs two forward passes per element;
                # the same sizes, weights and data for every engine
                T, B, I, H = (int(v) for v in _sizes(args.seed, name, L))
                layer_seed, data_seed = args.seed + 1000 * L, args.seed + 1000 * L + 1
                layer = LAYERS[kind](I, H, num_layers=L, backend=backend, dtype="float64",
                                     seed=layer_seed, engine=engine, **options)
                result = check_layer(layer, T, B, seed=data_seed, tol=args.tol)
                rows += result
                for column, value in (("cell", name), ("engine", engine), ("layers", L),
                                      ("T,B,I,H", f"{T},{B},{I},{H}")):
                    columns[column] += [value] * len(result)
    print(format_table(rows, columns))
    for line in missing:
        print(f"not checked, {line}")
    failed = sum(not r.passed for r in rows)
    worst = max((r.max_rel_error for r in rows), default=0.0)
    if failed:
        print(f"gradcheck: {failed} of {len(rows)} FAILED (tolerance {args.tol:g}, "
              f"largest error {worst:.2e}).")
        return 1
    print(f"gradcheck: all {len(rows)} passed (tolerance {args.tol:g}, largest error {worst:.2e}).")
    return 0
