"""Learning curves: does scratchrnn, trained as ``scratchrnn train`` trains, learn as well as PyTorch?

    python -m benchmarks.learning_curve                 # 3 seeds x 3 epochs on python-docs (42 min, 2 busy cores)
    python -m benchmarks.learning_curve --quick         # tiny sizes, a smoke run of the script
    python -m benchmarks.learning_curve --help

The model is the command line's language model: a 2-layer LSTM with 256 units on one-hot
characters, B=32 streams of T=64 steps, Adam 2e-3, gradients clipped to global norm 5,
the state carried from window to window and reset at each epoch start. Variants:

``torch``
    ``nn.LSTM`` + ``nn.Linear`` from PyTorch's default init (``torch.manual_seed(seed)``),
    autograd, ``torch.optim.Adam``, ``clip_grad_norm_``; the same windows in the same order.
``scratch-fb<b>``
    scratchrnn's ``Trainer`` (the very step the command line runs) from its own init with
    the LSTM forget-gate bias set to ``b`` at init; "none" leaves the gate biases uniform,
    PyTorch's distribution. The variant equal to ``TrainConfig``'s default is marked.
``scratch-torch-init``
    the same-init twin: scratchrnn's ``Trainer`` started from the very weights of the
    ``torch`` run with the same seed (copied with ``scratchrnn.interop.from_torch``).

After every epoch the whole validation split is scored (the stateful pass of
``scratchrnn.book.train.evaluate``, mirrored line by line for PyTorch); the table gives the
mean over seeds and the range (min-max). A curve is "inside or below PyTorch's band" when
its mean is at most PyTorch's max at every epoch.

The twin check runs both implementations in float64 from the same weights for a few
steps and records the largest difference between their training-loss traces: it shows
the algorithm (forward, BPTT, clipping, Adam) is the same, so any gap between the
curves comes from the initial weights.

Every (variant, seed) run is a process of its own (``ProcessPoolExecutor``, spawn), one
BLAS/torch thread each, ``--workers`` at a time. Results: a table on stdout,
``benchmarks/results/learning_curve.json`` (every epoch of every run) and ``learning_curve.md``.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
if __package__ in (None, ""):       # run as a script: make the benchmarks package importable
    sys.path.insert(0, os.path.dirname(HERE))
TWIN = "scratch-torch-init"


# ----------------------------------------------------------------- settings
def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.learning_curve",
                                description="Validation loss per epoch, scratchrnn against PyTorch, over seeds.")
    p.add_argument("--corpus", default="python-docs", help="embedded corpus name or a text file")
    p.add_argument("--max-chars", type=int, default=None, help="use the first N characters (default: all)")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (at least 3 for a full run)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--hidden-size", type=int, default=256)
    p.add_argument("--num-layers", type=int, default=2)
    p.add_argument("--seq-len", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--grad-clip", type=float, default=5.0)
    p.add_argument("--forget-biases", default="1,0,none",
                   help="scratchrnn variants by LSTM forget-gate bias at init; 'none' = uniform biases")
    p.add_argument("--no-twin", action="store_true", help="leave out the scratch-torch-init variant")
    p.add_argument("--twin-steps", type=int, default=100, help="steps of the float64 same-init check")
    p.add_argument("--workers", type=int, default=2, help="runs at a time (each single-threaded)")
    p.add_argument("--quick", action="store_true",
                   help="tiny model and text, 1 epoch, 2 seeds: checks the script works")
    p.add_argument("--out", default=os.path.join(HERE, "results"), help="directory for JSON and markdown")
    p.add_argument("--no-save", action="store_true", help="print the table only")
    p.add_argument("--tag", default="", help="appended to the file names, e.g. stdlib")
    a = p.parse_args(argv)
    a.seeds = [int(s) for s in a.seeds.split(",") if s.strip()]
    a.forget_biases = [None if b.strip().lower() == "none" else float(b)
                       for b in a.forget_biases.split(",") if b.strip()]
    if a.quick:
        a.max_chars, a.hidden_size, a.seq_len, a.batch_size = 20_000, 16, 16, 8
        a.epochs, a.seeds, a.twin_steps = 1, a.seeds[:2], 5
    elif len(a.seeds) < 3:
        p.error("give at least 3 seeds (a range over fewer says little); --quick for a smoke run")
    if a.epochs < 1 or a.twin_steps < 1 or a.workers < 1:
        p.error("--epochs, --twin-steps and --workers must be at least 1")
    return a


def run_settings(a):
    """The settings every run shares (a plain dict: it travels to the worker processes)."""
    return {"source": a.corpus, "max_chars": a.max_chars, "hidden_size": a.hidden_size,
            "num_layers": a.num_layers, "seq_len": a.seq_len, "batch_size": a.batch_size,
            "lr": a.lr, "grad_clip": a.grad_clip, "epochs": a.epochs}


def variant_name(forget_bias):
    return "scratch-fb" + ("none" if forget_bias is None else f"{forget_bias:g}")


# ----------------------------------------------------------------- shared pieces
def _config(s, seed, dtype="float32"):
    """scratchrnn's TrainConfig for these settings (forget bias: TrainConfig's default)."""
    from scratchrnn.lm.run import TrainConfig
    return TrainConfig(source=s["source"], max_chars=s["max_chars"], cell="lstm",
                      hidden_size=s["hidden_size"], num_layers=s["num_layers"], embedding_size=0,
                      seq_len=s["seq_len"], batch_size=s["batch_size"], optimizer="adam", lr=s["lr"],
                      grad_clip=s["grad_clip"], dtype=dtype, seed=seed, max_steps=None,
                      max_epochs=float(s["epochs"]), max_minutes=None, progress=False,
                      out_dir=tempfile.mkdtemp(prefix="scratchrnn-lc-"), backend="numpy")


def _single_thread():
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"


# ----------------------------------------------------------------- the scratchrnn runs
def _scratch_trainer(s, seed, dtype, forget_bias, torch_init):
    from scratchrnn.lm.run import Trainer
    cfg = _config(s, seed, dtype)
    if forget_bias != "default":
        cfg.forget_bias = forget_bias
    trainer = Trainer(cfg)
    if torch_init:                               # the same-init twin: PyTorch's weights
        import torch
        torch.set_num_threads(1)
        from benchmarks.torch_lm import torch_modules
        from scratchrnn import interop
        rnn, head = torch_modules("lstm", len(trainer.data.vocab), s["hidden_size"], s["num_layers"],
                                  seed, dtype)
        layer = interop.from_torch(rnn, dtype=dtype, backend="numpy")     # the trainer's backend (_config)
        arrays = {f"rnn.{k}": layer.backend.asnumpy(v) for k, v in layer.params.items()}
        arrays["head.W"] = head.weight.detach().numpy().T
        arrays["head.b"] = head.bias.detach().numpy()
        trainer.model.load_arrays(arrays)
    trainer.model.train()
    return trainer


def scratch_curve(s, seed, forget_bias="default", torch_init=False):
    """Validation loss after every epoch of a scratchrnn run (in a worker process)."""
    from scratchrnn.book.train import evaluate
    trainer = _scratch_trainer(s, seed, "float32", forget_bias, torch_init)
    model, data, cfg = trainer.model, trainer.data, trainer.cfg
    epochs = []
    for epoch in range(s["epochs"]):
        t0, losses = time.perf_counter(), []
        while trainer.stream.epoch == epoch:
            losses.append(trainer.train_step())
        train_s = time.perf_counter() - t0
        val = evaluate(model, data.val, cfg.batch_size, cfg.seq_len, None, data.vocab.pad_id)
        epochs.append({"epoch": epoch + 1, "val_loss": val["loss"], "train_loss": statistics.fmean(losses),
                       "steps": len(losses), "train_s": train_s})
    return {"vocab": len(data.vocab), "train_tokens": int(len(data.train)), "val_tokens": val["tokens"],
            "forget_bias": cfg.forget_bias, "params": model.num_params(), "epochs": epochs}


def scratch_trace(s, seed, steps):
    """Training losses of the first ``steps`` steps, float64, from PyTorch's init weights."""
    trainer = _scratch_trainer(s, seed, "float64", "default", torch_init=True)
    return [trainer.train_step() for _ in range(steps)]


# ----------------------------------------------------------------- the PyTorch runs
def torch_curve(s, seed):
    """Validation loss after every epoch of the PyTorch run (in a worker process)."""
    from benchmarks.torch_lm import TorchLMRun
    run = TorchLMRun(_config(s, seed, "float32"), threads=1)
    epochs = []
    for epoch in range(s["epochs"]):
        t0, losses = time.perf_counter(), []
        while run.stream.epoch == epoch:
            losses.append(run.train_step())
        train_s = time.perf_counter() - t0
        val, tokens = run.evaluate(run.data.val)
        epochs.append({"epoch": epoch + 1, "val_loss": val, "train_loss": statistics.fmean(losses),
                       "steps": len(losses), "train_s": train_s})
    return {"vocab": run.V, "train_tokens": int(len(run.data.train)), "val_tokens": tokens,
            "params": run.num_params(), "epochs": epochs}


def torch_trace(s, seed, steps):
    from benchmarks.torch_lm import TorchLMRun
    run = TorchLMRun(_config(s, seed, "float64"), threads=1)
    return [run.train_step() for _ in range(steps)]


# ----------------------------------------------------------------- running and summing up
def run_all(a, log):
    s = run_settings(a)
    jobs = {}                         # (variant, seed) -> future
    ctx = multiprocessing.get_context("spawn")
    started = time.perf_counter()
    _single_thread()                  # inherited by the workers before they import NumPy or torch
    twin_steps = a.twin_steps
    with ProcessPoolExecutor(max_workers=a.workers, mp_context=ctx, initializer=_single_thread) as pool:
        trace = {"torch": pool.submit(torch_trace, s, a.seeds[0], twin_steps),
                 TWIN: pool.submit(scratch_trace, s, a.seeds[0], twin_steps)}
        for seed in a.seeds:
            jobs[("torch", seed)] = pool.submit(torch_curve, s, seed)
            for fb in a.forget_biases:
                jobs[(variant_name(fb), seed)] = pool.submit(scratch_curve, s, seed, fb)
            if not a.no_twin:
                jobs[(TWIN, seed)] = pool.submit(scratch_curve, s, seed, "default", True)
        runs = {}
        for (variant, seed), fut in jobs.items():
            runs.setdefault(variant, {})[seed] = r = fut.result()
            log(f"{variant} seed {seed}: val " + ", ".join(f"{e['val_loss']:.4f}" for e in r["epochs"])
                + f"  ({sum(e['train_s'] for e in r['epochs']):.0f} s training)")
        traces = {k: f.result() for k, f in trace.items()}
    diffs = [abs(x - y) for x, y in zip(traces["torch"], traces[TWIN])]
    twin = {"steps": twin_steps, "dtype": "float64", "seed": a.seeds[0], "max_abs_diff": max(diffs),
            "first_loss": traces["torch"][0], "last_loss": traces["torch"][-1], "traces": traces}
    log(f"twin check (float64, {twin_steps} steps): max |loss_torch - loss_scratch| = {max(diffs):.2e}")
    return s, runs, twin, time.perf_counter() - started


def summarize(runs, epochs):
    """Per variant and epoch: mean, min and max of the val loss over seeds."""
    out = {}
    for variant, by_seed in runs.items():
        out[variant] = []
        for e in range(epochs):
            vals = [r["epochs"][e]["val_loss"] for r in by_seed.values()]
            out[variant].append({"epoch": e + 1, "mean": statistics.fmean(vals), "min": min(vals),
                                 "max": max(vals), "n": len(vals)})
    torch_band = out["torch"]
    for rows in out.values():
        for row, ref in zip(rows, torch_band):
            row["inside_or_below_torch"] = row["mean"] <= ref["max"]
    return out


def default_forget_bias():
    from scratchrnn.lm.run import TrainConfig
    return TrainConfig().forget_bias


def markdown(record):
    s, summary = record["settings"], record["summary"]
    default = variant_name(record["train_config_default_forget_bias"])
    epochs = range(1, s["epochs"] + 1)
    lines = [f"Learning curves, {record['date']}: {s['num_layers']}-layer LSTM {s['hidden_size']}, one-hot "
             f"input, B={s['batch_size']} T={s['seq_len']}, Adam {s['lr']:g}, clip {s['grad_clip']:g} "
             f"(global norm), {s['source']!r}"
             + ("" if s["max_chars"] is None else f" first {s['max_chars']:,} chars")
             + f" (vocab {record['vocab']}, {record['train_tokens']:,} training / "
               f"{record['val_tokens']:,} scored validation characters), seeds {record['seeds']}.",
             "",
             "Validation loss (nats/char) after each epoch: mean over seeds [min – max].",
             "",
             "| variant | " + " | ".join(f"epoch {e}" for e in epochs) + " | inside or below torch's band |",
             "|---|" + "---:|" * len(epochs) + "---|"]
    for variant, rows in summary.items():
        label = variant + (" (TrainConfig default)" if variant == default else "")
        cells = [f"{r['mean']:.4f} [{r['min']:.4f} – {r['max']:.4f}]" for r in rows]
        inside = "—" if variant == "torch" else (
            "yes" if all(r["inside_or_below_torch"] for r in rows) else
            "no (epochs " + ", ".join(str(r["epoch"]) for r in rows if not r["inside_or_below_torch"]) + ")")
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {inside} |")
    t = record["twin_check"]
    lines += ["", f"Same-init twin check: scratchrnn started from PyTorch's weights (seed {t['seed']}), both "
                  f"in float64 on the same windows for {t['steps']} steps: largest difference between the "
                  f"training-loss traces {t['max_abs_diff']:.1e} nats (loss {t['first_loss']:.4f} → "
                  f"{t['last_loss']:.4f}).",
              "",
              "Variants: torch = nn.LSTM + nn.Linear from PyTorch's default init; scratch-fb<b> = "
              "scratchrnn's Trainer from its own init (PyTorch's U(±1/√H) weights) with the LSTM forget-gate "
              "bias set to b at init; scratch-torch-init = scratchrnn's Trainer from the torch run's own "
              "weights (same seed). 'Inside or below' = the mean is at most torch's max at every epoch. "
              f"Each run in its own single-threaded process; {record['wall_s']:.0f} s in all."]
    return "\n".join(lines)


def main(argv=None):
    a = parse_args(argv)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)   # noqa: E731
    s, runs, twin, wall = run_all(a, log)
    first = next(iter(runs["torch"].values()))
    summary = summarize(runs, a.epochs)
    now = _dt.datetime.now()
    from benchmarks.train_throughput import machine_info, versions
    record = {"benchmark": "learning_curve", "date": now.strftime("%Y-%m-%d"),
              "time": now.isoformat(timespec="seconds"),
              "command": "python -m benchmarks.learning_curve " + " ".join(argv or sys.argv[1:]),
              "quick": a.quick, "settings": s, "seeds": a.seeds, "vocab": first["vocab"],
              "train_tokens": first["train_tokens"], "val_tokens": first["val_tokens"],
              "train_config_default_forget_bias": default_forget_bias(),
              "summary": summary, "runs": {v: {str(k): r for k, r in by.items()} for v, by in runs.items()},
              "twin_check": twin, "machine": machine_info(), "versions": versions(), "wall_s": round(wall, 1)}
    text = markdown(record)
    print(text)
    if not a.no_save:
        os.makedirs(a.out, exist_ok=True)
        stem = "learning_curve" + ("-quick" if a.quick else "") + (f"-{a.tag}" if a.tag else "")
        with open(os.path.join(a.out, stem + ".json"), "w") as f:
            json.dump(record, f, indent=1)
        with open(os.path.join(a.out, stem + ".md"), "w") as f:
            f.write(text + "\n")
        log(f"wrote {os.path.join(a.out, stem)}.json and .md")
    bad = [v for v, rows in summary.items() for r in rows if not math.isfinite(r["mean"])]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
