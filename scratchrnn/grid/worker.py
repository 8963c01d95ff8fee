"""What a worker does with one grid point: train it (or resume it) and score it.

``run_point(task)`` takes and returns plain JSON-able dicts, so the same function runs in a
local process pool and on a Dask worker on another machine. The run is an ordinary
``Trainer`` run, the same code as ``scratchrnn train``: a run folder that already holds
``last.npz`` (a point interrupted earlier) is resumed from it; a fresh folder starts
from scratch. Afterwards the final model is scored on the train, val and test splits.

A point that fails (the loss became NaN, out of memory, any exception) comes back as
``{"status": "failed", "reason": ...}`` instead of raising, so the grid goes on. The
training log (evaluation lines) goes to the task's log file, not to the grid's terminal.
"""
from __future__ import annotations

import contextlib
import math
import os
import platform
import socket
import time

LN2 = math.log(2.0)
STOP_REQUESTED = None      # set (to the signal) by a local-pool worker told to stop between points
BUDGET_FIELDS = ("max_steps", "max_minutes", "max_epochs", "patience")


def run_point(task):
    """task: {"name", "train": TrainConfig JSON, "log": path}. Returns the point's result record."""
    started = time.time()
    record = {"name": task["name"], "machine": machine_info()}
    try:
        os.makedirs(os.path.dirname(task["log"]), exist_ok=True)
        with open(task["log"], "a", encoding="utf-8") as log, contextlib.redirect_stderr(log):
            _run_logged(task, log, record)
    except OSError as exc:                # the log itself could not be written (a full disk)
        if "status" not in record:
            record.update(status="failed", reason=f"its log {task['log']!r} could not be written "
                                                  f"({exc.strerror or exc})")
    if record["status"] != "ok":
        record["reason"] = record["reason"].rstrip(".") + "."
    record["wall_seconds"] = round(time.time() - started, 2)
    record["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    return record


def _run_logged(task, log, record):
    """Train and score the point into ``record`` (status ok, interrupted or failed)."""
    try:
        record.update(_train_and_score(task["train"], log))
        record["status"] = "ok"
    except KeyboardInterrupt as exc:  # the run saved its last.npz and stopped (SIGTERM/SIGINT)
        record.update(status="interrupted", reason=f"{(str(exc) or 'Interrupted').split(';')[0]}; "
                                                  f"saved in its last.npz, a re-run resumes it")
    except MemoryError:
        record.update(status="failed", reason="it ran out of memory")
    except Exception as exc:          # noqa: BLE001 -- any failure is the point's result
        reason = str(exc) or type(exc).__name__
        from scratchrnn.core.errors import ScratchRNNError
        if not isinstance(exc, ScratchRNNError):
            reason = f"{type(exc).__name__}: {reason}"
        record.update(status="failed", reason=reason)


def _train_and_score(train, log):
    from scratchrnn.book.train import evaluate
    from scratchrnn.lm.run import TrainConfig, Trainer
    from scratchrnn.lm.runfolder import latest_checkpoint

    cfg = TrainConfig.from_json(train)
    saved = latest_checkpoint(cfg.out_dir)
    if saved is not None:                 # resumed in place, in the point's own run folder
        overrides = {k: train[k] for k in BUDGET_FIELDS + ("progress",)}
        trainer = Trainer.resume(saved, overrides=overrides)
    else:
        _clear_run_folder(cfg.out_dir, log)
        trainer = Trainer(cfg)
    if STOP_REQUESTED is not None:        # told to stop before the run took over the signal:
        trainer._stop_signal = STOP_REQUESTED      # it stops (and saves) after one step
    resumed_at = trainer.progress.step
    print(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} "
          f"{'resuming at step ' + str(resumed_at) if resumed_at else 'starting'}", file=log, flush=True)
    result = trainer.run()
    if result.steps == 0:                 # nothing trained: not a result to tabulate
        from scratchrnn.core.errors import ConfigError
        raise ConfigError("its budget ended before its first training step, so there is no trained "
                          "model to score; give each point a larger budget")
    cfg, data, model = trainer.cfg, trainer.data, trainer.model
    scores = {}
    for split in ("train", "val", "test"):
        s = evaluate(model, getattr(data, split), cfg.batch_size, cfg.seq_len, cfg.eval_tokens,
                     data.vocab.pad_id)
        scores[split] = {"loss": s["loss"], "bpc": s["loss"] / LN2, "tokens": s["tokens"]}
    return {"cell": cfg.cell, "layers": cfg.num_layers, "size": cfg.hidden_size, "seed": cfg.seed,
            "params": model.num_params(), "vocab": len(data.vocab), "steps": result.steps,
            "stopped_because": result.stopped_because, "resumed_from_step": resumed_at,
            "train_seconds": round(trainer.progress.elapsed_s, 2), "best_val": result.best_val,
            **scores, "run_dir": cfg.out_dir}


def _clear_run_folder(run_dir, log):
    """A point's own run folder that holds no usable checkpoint (a run that failed before
    its first one, or on a full disk) is emptied so that the point starts afresh; a run
    folder some live process holds is left alone (the run refuses it)."""
    import shutil

    from scratchrnn.lm.runfolder import check_unlocked

    if not os.path.isdir(run_dir) or not os.listdir(run_dir):
        return
    check_unlocked(run_dir)
    print(f"--- no usable checkpoint in {run_dir}; starting the point afresh", file=log, flush=True)
    for name in os.listdir(run_dir):
        path = os.path.join(run_dir, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)


def machine_info():
    """Where a point ran: host, CPU model and cores, Python, NumPy, BLAS thread setting."""
    from scratchrnn.core.backend import CPU

    return {"host": socket.gethostname(), "cpu": _cpu_model(), "cores": os.cpu_count(),
            "python": platform.python_version(), "numpy": CPU.xp.__version__,
            "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS", "unset")}


def _cpu_model():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
