"""``scratchrnn grid``: train every cell x depth x size x seed with the same budget and
tabulate the losses, as in Karpathy, Johnson & Fei-Fei (2015).

    scratchrnn grid --corpus python-docs --cells rnn,gru,lstm --layers 1,2 --sizes 64,128 \\
                    --budget-steps 1000 --out grids/docs                  # a local process pool
    scratchrnn grid ... --local-cluster 2                                 # a Dask LocalCluster
    scratchrnn grid ... --scheduler tcp://HOST:8786                       # an existing Dask cluster

Exit status: 0 when every point finished, 1 when some failed (each with its reason in
results.jsonl and results.md), 2 for bad input (nothing in the folder is changed).
"""
from __future__ import annotations

import os

from scratchrnn.lm.corpora import CORPORA


def add_parser(sub):
    p = sub.add_parser("grid", help="train the paper's grid of models and tabulate their losses",
                       description="Train every cell x depth x size x seed with the same budget, on a "
                                   "local process pool or a Dask cluster, and tabulate the losses.")
    data = p.add_argument_group("data")
    source = data.add_mutually_exclusive_group()
    source.add_argument("--corpus", default=None, metavar="{" + ",".join(CORPORA) + "}",
                        help=f"embedded corpus: {' or '.join(CORPORA)} (default python-docs)")
    source.add_argument("--text", default=None, metavar="FILE",
                        help="a UTF-8 text file (at the same path on every Dask worker)")
    data.add_argument("--max-chars", type=int, default=None, help="use the first N characters")
    g = p.add_argument_group("the grid")
    g.add_argument("--cells", default="rnn,gru,lstm", help="comma-separated (default rnn,gru,lstm)")
    g.add_argument("--layers", default="1,2,3", help="comma-separated depths (default 1,2,3)")
    g.add_argument("--sizes", default="64,128,256,512", help="comma-separated hidden sizes (default 64,128,256,512)")
    g.add_argument("--seeds", default="0", help="comma-separated seeds (default 0)")
    budget = g.add_mutually_exclusive_group(required=True)
    budget.add_argument("--budget-steps", type=int, default=None, help="training steps per point")
    budget.add_argument("--budget-minutes", type=float, default=None, help="training minutes per point")
    t = p.add_argument_group("training settings shared by every point (defaults: scratchrnn train's)")
    t.add_argument("--seq-length", dest="seq_len", type=int, default=None)
    t.add_argument("--batch-size", type=int, default=None)
    t.add_argument("--learning-rate", "--lr", dest="lr", type=float, default=None)
    t.add_argument("--grad-clip", type=float, default=None)
    t.add_argument("--dropout", type=float, default=None)
    t.add_argument("--nonlinearity", choices=("tanh", "relu"), default=None, help="RNN only")
    t.add_argument("--dtype", choices=("float32", "float64"), default=None)
    t.add_argument("--eval-every", type=int, default=None, help="evaluate and checkpoint every N steps")
    t.add_argument("--eval-tokens", type=int, default=None, help="tokens scored per evaluation and per split")
    t.add_argument("--backend", choices=("numpy", "cupy", "auto"), default=None)
    w = p.add_argument_group("where it runs")
    w.add_argument("--out", required=True, metavar="DIR", help="the grid's folder (resumable)")
    where = w.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, default=None,
                       help="local process pool size (default: the number of cores)")
    where.add_argument("--local-cluster", type=int, default=None, metavar="K",
                       help="start a Dask LocalCluster of K workers on this machine")
    where.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="an existing Dask scheduler, e.g. tcp://10.0.0.5:8786")
    w.add_argument("--connect-timeout", type=float, default=10.0, help="seconds to reach --scheduler (default 10)")
    w.add_argument("--retry-failed", action="store_true", help="run the points that failed before again")
    w.add_argument("--no-progress", dest="progress", action="store_false")
    p.set_defaults(func=run)
    return p


def _source(args):
    from scratchrnn.lm.corpora import check_corpus, load_source

    if args.text is not None:
        source = os.path.abspath(args.text)
    else:
        source = check_corpus(args.corpus or "python-docs")
    from scratchrnn.lm.run import TrainConfig
    return source, load_source(source, args.max_chars if args.max_chars is not None else TrainConfig.max_chars)


def _executor(args):
    from scratchrnn.core.validation import positive_float, positive_int
    from scratchrnn.grid.local_pool import LocalPool

    threads = 1 if args.threads is None else positive_int("--threads", args.threads)
    if args.scheduler is not None or args.local_cluster is not None:
        from scratchrnn.core.errors import ConfigError
        from scratchrnn.grid.dask_cluster import DaskCluster
        if threads != 1:
            raise ConfigError("--threads sets the local pool's workers; Dask workers run one BLAS "
                              "thread each, set where they start (OPENBLAS_NUM_THREADS).")
        if args.local_cluster is not None:
            return DaskCluster(local_workers=positive_int("--local-cluster", args.local_cluster))
        return DaskCluster(scheduler=args.scheduler,
                           connect_timeout=positive_float("--connect-timeout", args.connect_timeout))
    return LocalPool(positive_int("--workers", args.workers) if args.workers is not None else None,
                     threads=threads)


def run(args):
    from scratchrnn.grid.driver import run_grid
    from scratchrnn.grid.points import Budget, GridSpec, check_memory, physical_memory

    source, text = _source(args)
    shared = {k: getattr(args, k) for k in ("max_chars", "seq_len", "batch_size", "lr", "grad_clip",
                                            "dropout", "nonlinearity", "dtype", "eval_every",
                                            "eval_tokens", "backend")}
    spec = GridSpec.from_lists(source, args.cells, args.layers, args.sizes, args.seeds,
                               Budget(steps=args.budget_steps, minutes=args.budget_minutes), **shared)
    memory = physical_memory()
    if args.scheduler is None and memory:
        check_memory(spec, len(set(text)), memory)
    executor = _executor(args)
    if args.workers is None and args.scheduler is None and args.local_cluster is None:
        executor.workers = min(executor.workers, len(spec.points(args.out)))
    records = run_grid(spec, args.out, executor, progress=args.progress, retry_failed=args.retry_failed)
    return 1 if any(r.get("status") != "ok" for r in records.values()) else 0
