"""The training run around the step: budget, evaluation, checkpoints, resume, signals, progress.

    cfg = TrainConfig(source="python-docs", cell="gru", max_steps=500)
    result = Trainer(cfg).run()            # or Trainer.resume("runs/x/last.npz").run()

Each step takes the next window (T, B), starts from zeros at an epoch start, else carries
the state of the previous window, and runs the training step that ``engines.training_step``
chooses: the book's ``train.train_step`` (loss -> backward -> clip -> update), or on a GPU the
same step with nothing read back mid-step, whose loss is read once after it. Every
``eval_every`` steps the val split is scored and ``last.npz`` is written (atomically, by
``saved.write_run``); when val improves, a char-rnn style ``lm_epoch{e}_val{v}.npz`` too.
A run resumed from ``last.npz`` continues bit-identically on the CPU: the checkpoint holds
the weights, the optimizer state, the stream position and the carried hidden state, and
every random draw (dropout masks) is seeded from (seed, step) rather than from a running
generator. The settings are ``config.TrainConfig``; the data ``data.prepare_data``.
"""
from __future__ import annotations

import json
import math
import os
import signal
import sys
import time
import uuid
from dataclasses import dataclass, field

from scratchrnn import engines
from scratchrnn.blocks.model import CharLM
from scratchrnn.book.batching import BatchStream
from scratchrnn.book.optim import LRSchedule, make_optimizer
from scratchrnn.book.train import LN2, evaluate
from scratchrnn.core import threads
from scratchrnn.core.backend import CPU, get_backend
from scratchrnn.core.errors import CheckpointError, ConfigError, DataError, ScratchRNNError, TrainingDiverged
from scratchrnn.core.validation import finite_float
from scratchrnn.lm.checkpoint import checkpoint_name, write_atomically
from scratchrnn.lm.config import ARCHITECTURE, TrainConfig
from scratchrnn.lm.data import prepare_data
from scratchrnn.lm.memory import check_memory
from scratchrnn.lm.runfolder import LAST, RunLock, check_fresh, check_resume, remove_stale_temps
from scratchrnn.lm.saved import read_run, split_arrays, write_run
from scratchrnn.lm.vocab import Vocab

__all__ = ["TrainConfig", "Trainer", "TrainResult", "Interrupted", "prepare_data", "step_seed"]

DIVERGENCE_FACTOR = 3.0     # a training loss above 3x the run's first loss stops it (char-rnn's rule)


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM stopped the run after its final checkpoint was written."""

    def __init__(self, message, signum):
        super().__init__(message)
        self.signum = signum


def step_seed(seed, step):
    """The seed for the random draws of one training step: a pure function of (seed, step)."""
    return int(CPU.xp.random.SeedSequence([seed, step]).generate_state(1)[0])


@dataclass
class TrainResult:
    model: CharLM
    vocab: Vocab
    history: dict
    last_path: str | None
    best_path: str | None
    best_val: float
    stopped_because: str
    steps: int


@dataclass
class _Progress:
    """What changes as the run goes, saved in checkpoints."""
    step: int = 0
    elapsed_s: float = 0.0
    best_val: float = math.inf
    best_path: str | None = None
    evals_since_best: int = 0
    history: dict = field(default_factory=lambda: {"train": [], "val": []})
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    first_loss: float | None = None      # the run's first training loss (divergence rule)


class Trainer:
    """One training run; ``Trainer(cfg).run()`` or ``Trainer.resume(path, overrides).run()``."""

    def __init__(self, cfg, _resume=None):
        self.cfg = cfg.validate()
        self.backend = get_backend(cfg.backend)
        vocab = None if _resume is None else _resume["vocab"]
        self.data = prepare_data(cfg, vocab)
        self.stream = BatchStream(self.data.train, cfg.batch_size, cfg.seq_len, shuffle=cfg.shuffle,
                                  seed=cfg.seed, pad_id=self.data.vocab.pad_id, backend=self.backend)
        if len(self.data.val) < 2:      # refuse now, not at the first evaluation, steps later
            raise DataError(f"The val split has {len(self.data.val)} tokens but at least 2 are "
                            f"needed to evaluate; use a longer text or a larger val fraction in --split.")
        self._check_memory()
        self.model = CharLM(len(self.data.vocab), cfg.cell, cfg.hidden_size, cfg.num_layers,
                            cfg.embedding_size, cfg.dropout, cfg.nonlinearity, cfg.forget_bias,
                            backend=self.backend, dtype=cfg.dtype, seed=cfg.seed)
        self.opt = make_optimizer(cfg.optimizer, cfg.lr)
        self._step = engines.training_step(self.model, self.opt, self.backend)
        self.schedule = LRSchedule(cfg.lr, cfg.lr_decay, cfg.lr_decay_after)
        self.progress = _Progress()
        self.state = None
        self._stop_signal = None
        if _resume is not None:
            self._restore(_resume)
            check_resume(cfg.out_dir, _resume["path"], self.progress.run_id, self.progress.step,
                         branch=_resume["branch"])
        else:
            check_fresh(cfg.out_dir)

    def _check_memory(self):
        """Refuse sizes whose memory estimate exceeds what the machine has, before allocating."""
        cfg = self.cfg
        config = {"vocab_size": len(self.data.vocab), "cell": cfg.cell, "hidden_size": cfg.hidden_size,
                  "num_layers": cfg.num_layers, "embedding_size": cfg.embedding_size, "dtype": cfg.dtype}
        check_memory(config, cfg.optimizer, cfg.batch_size, cfg.seq_len)

    # ------------------------------------------------------------- resuming
    @classmethod
    def resume(cls, path, overrides=None):
        """Continue the run saved at ``path``. ``overrides`` (dict) may change the budget
        (max_steps, max_minutes, ...) but not the architecture or the data."""
        path = os.fspath(path)
        if not path:
            raise ConfigError("--resume needs the path of a checkpoint, got an empty string.")
        arrays, meta = read_run(path)
        try:
            saved = TrainConfig.from_json(meta["train"]).validate()
        except (ScratchRNNError, TypeError) as err:
            raise CheckpointError(f"The checkpoint {path!r} has an unusable training section "
                                  f"({str(err).rstrip('.')}).") from None
        overrides = dict(overrides or {})
        branch = "out_dir" in overrides
        overrides.setdefault("out_dir", os.path.dirname(os.path.abspath(path)))
        for key, value in overrides.items():
            if key in ARCHITECTURE and value != getattr(saved, key):
                raise CheckpointError(f"The checkpoint {path!r} was trained with "
                                      f"{key}={getattr(saved, key)!r}, but this run asks for "
                                      f"{key}={value!r}; it belongs to another architecture.")
            setattr(saved, key, value)
        resume = {"vocab": Vocab.from_json(meta["vocab"]), "arrays": arrays, "meta": meta,
                  "path": path, "branch": branch}
        return cls(saved, _resume=resume)

    def _restore(self, resume):
        arrays, meta = resume["arrays"], resume["meta"]
        try:
            self.model.load_arrays(split_arrays(arrays, "param"))
            self.opt.load_state_dict(split_arrays(arrays, "optim"), meta["optim"], self.backend)
            self.stream.load_state_dict(meta["stream"])
            p = meta["progress"]
            if p.get("first_loss") is not None:
                finite_float("progress.first_loss", p["first_loss"], 0.0)
            self.progress = _Progress(p["step"], p["elapsed_s"], p["best_val"], p["best_path"],
                                      p["evals_since_best"], meta["history"],
                                      p.get("run_id") or _Progress().run_id, p.get("first_loss"))
            _check_magnitudes(meta, resume["path"])
            self.schedule.apply(self.opt, self.stream.epoch)          # the first step's rate, now
        except (KeyError, TypeError, ValueError, ArithmeticError, ConfigError) as exc:
            raise CheckpointError(f"The checkpoint {resume['path']!r} cannot be resumed "
                                  f"({str(exc).rstrip('.')}).") from None
        saved_text = meta.get("text")
        if isinstance(saved_text, dict) and saved_text != self.data.text:
            raise CheckpointError(f"The training text of {resume['path']!r} has changed since it was "
                                  f"saved ({saved_text.get('chars')} characters then, "
                                  f"{self.data.text['chars']} now, and another SHA-256); resuming "
                                  f"would continue on a different text.")
        state = split_arrays(arrays, "state")
        if state:
            h = self.backend.asarray(state["h"])
            self.state = (h, self.backend.asarray(state["c"])) if "c" in state else h

    def budget_spent(self):
        """The limit that would stop the run before its next step ("max_steps", "max_epochs",
        "max_minutes", "early_stopping"), or None. The limits are the run's totals."""
        return self._budget_left(time.perf_counter())

    # ------------------------------------------------------------- checkpoints
    @property
    def last_path(self):
        """The run folder's ``last.npz``: the checkpoint every evaluation and stop rewrites."""
        return os.path.join(self.cfg.out_dir, LAST)

    def _save(self, path):
        write_run(path, model=self.model, optimizer=self.opt, state=self.state,
                  train=self.cfg.to_json(), vocab=self.data.vocab, stream=self.stream,
                  progress=self.progress, text=self.data.text)

    def _kept(self):
        """How a stop for divergence leaves the run directory, as a clause."""
        last = self.last_path
        return f"the last good checkpoint {last!r} is kept" if os.path.exists(last) else "no checkpoint was written"

    def _write_history(self):
        history = json.dumps(self.progress.history, indent=1).encode("utf-8")
        write_atomically(os.path.join(self.cfg.out_dir, "history.json"), lambda f: f.write(history))
        from scratchrnn.lm.plotting import plot_loss_curve
        plot_loss_curve(self.progress.history, os.path.join(self.cfg.out_dir, "loss.png"))

    def _evaluate_and_save(self, train_loss):
        cfg, p = self.cfg, self.progress
        with CPU.xp.errstate(over="ignore", invalid="ignore", divide="ignore"):
            scores = evaluate(self.model, self.data.val, cfg.batch_size, cfg.seq_len,
                              cfg.eval_tokens, self.data.vocab.pad_id)
        if not math.isfinite(scores["loss"]):      # never save a model that scores NaN/inf
            raise TrainingDiverged(f"The val loss became {scores['loss']} at step {p.step}; "
                                   f"training stopped and {self._kept()} (try a smaller --lr "
                                   f"or --grad-clip).")
        p.history["val"].append({"step": p.step, "epoch": self.stream.epoch_progress,
                                 "train_loss": train_loss, **scores})
        if scores["loss"] < p.best_val:
            p.best_val, p.evals_since_best = scores["loss"], 0
            p.best_path = os.path.join(cfg.out_dir, checkpoint_name(self.stream.epoch_progress, scores["loss"]))
            self._save(p.best_path)
        else:
            p.evals_since_best += 1
        self._save(self.last_path)
        self._write_history()
        return scores

    # ------------------------------------------------------------- the loop
    def _budget_left(self, started):
        cfg, p = self.cfg, self.progress
        if cfg.max_steps is not None and p.step >= cfg.max_steps:
            return "max_steps"
        if cfg.max_epochs is not None and self.stream.epoch_progress >= cfg.max_epochs:
            return "max_epochs"
        if cfg.max_minutes is not None and p.elapsed_s + time.perf_counter() - started >= 60 * cfg.max_minutes:
            return "max_minutes"
        if cfg.patience is not None and p.evals_since_best >= cfg.patience:
            return "early_stopping"
        return None

    def train_step(self):
        """The next window through ``train.train_step`` (on a GPU, its device engine); returns
        the loss (nats/token) before the update."""
        cfg, model = self.cfg, self.model
        batch = self.stream.next_batch()
        if batch.reset or self.state is None:
            self.state = model.initial_state(cfg.batch_size)          # epoch start: from zeros
        model.rnn.seed_dropout(step_seed(cfg.seed, self.progress.step))
        self.schedule.apply(self.opt, self.stream.epoch)
        # overflow shows up as a non-finite loss, reported below in one sentence;
        # NumPy's RuntimeWarnings on the way there would only clutter stderr
        try:
            with CPU.xp.errstate(over="ignore", invalid="ignore", divide="ignore"):
                loss, self.state = self._step(batch, self.state, cfg.grad_clip, cfg.clip_value)
                loss = float(loss)                 # on a GPU: the step's one read, after it
                if not math.isfinite(loss):        # (the book's step has refused it already)
                    raise TrainingDiverged(f"The training loss became {loss}.")
        except TrainingDiverged as exc:
            raise TrainingDiverged(f"{str(exc).rstrip('.')} at step {self.progress.step + 1}; training "
                                   f"stopped and {self._kept()} (try a smaller --lr or --grad-clip).") from None
        self.progress.step += 1
        return loss

    def _check_divergence(self, loss):
        """Stop (TrainingDiverged) when the training loss exceeds DIVERGENCE_FACTOR times the
        run's first loss: the model is blowing up, though its loss may still be finite."""
        p = self.progress
        if p.first_loss is None:
            p.first_loss = loss
        elif loss > DIVERGENCE_FACTOR * p.first_loss:
            raise TrainingDiverged(f"The training loss became {loss:.4g} at step {p.step}, more than "
                                   f"{DIVERGENCE_FACTOR:g} x the first loss {p.first_loss:.4g}; training "
                                   f"stopped and {self._kept()} (try a smaller --lr or --grad-clip).")

    def _on_signal(self, signum, frame):
        """SIGINT/SIGTERM: finish the current step, then save and stop (a second one stops now)."""
        if self._stop_signal is not None:
            raise KeyboardInterrupt
        self._stop_signal = signum

    def _stop_for_signal(self):
        """Write the final checkpoint (atomically) and raise Interrupted saying where it is."""
        p, last = self.progress, self.last_path
        self._save(last)
        self._write_history()
        name = signal.Signals(self._stop_signal).name
        raise Interrupted(f"Stopped by {name} at step {p.step}; the run is saved in {last!r} "
                          f"(continue it with: scratchrnn train --resume {last}).", self._stop_signal)

    def _progress_bar(self):
        """tqdm over steps (max_steps as the total) or, under a time budget alone, over
        seconds with the budget as the total, so the bar has an end and an ETA. Returns the
        bar and ``position(started)``: where it stands, given when the clock last restarted
        (the time before that is already in ``progress.elapsed_s``)."""
        from tqdm import tqdm
        cfg, p = self.cfg, self.progress
        common = dict(disable=not cfg.progress, file=sys.stderr, dynamic_ncols=True, leave=True)
        if cfg.max_steps is None and cfg.max_minutes is not None:
            budget = 60.0 * cfg.max_minutes
            bar = tqdm(total=round(budget, 1), initial=round(min(p.elapsed_s, budget), 1), unit="s",
                       bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s [{elapsed}<{remaining}{postfix}]",
                       **common)
            return bar, lambda started: min(budget, p.elapsed_s + time.perf_counter() - started)
        return (tqdm(total=cfg.max_steps, initial=p.step, unit="step", **common),
                lambda started: p.step)

    def run(self):
        """Train until the budget is spent; returns a TrainResult."""
        cfg = self.cfg
        try:
            os.makedirs(cfg.out_dir, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"Cannot create the run directory {cfg.out_dir!r} "
                              f"({exc.strerror or exc}).") from None
        with RunLock(cfg.out_dir):
            remove_stale_temps(cfg.out_dir)
            handlers = {}
            if threading_main():
                for sig in (signal.SIGINT, signal.SIGTERM):
                    handlers[sig] = signal.signal(sig, self._on_signal)
            try:
                return self._run_locked()
            finally:
                for sig, handler in handlers.items():
                    signal.signal(sig, handler)

    def _run_locked(self):
        cfg, p = self.cfg, self.progress
        self.model.train()
        started = time.perf_counter()
        tokens_per_step = cfg.batch_size * cfg.seq_len
        unit = self.data.vocab.level
        bar, position = self._progress_bar()
        window_losses, window_start = [], time.perf_counter()
        reason = self._budget_left(started)
        try:
            while reason is None:
                loss = self.train_step()
                self._check_divergence(loss)
                window_losses.append(loss)
                if p.step % 10 == 0:
                    p.history["train"].append({"step": p.step, "loss": loss})
                now = time.perf_counter()
                rate = len(window_losses) * tokens_per_step / max(now - window_start, 1e-9)
                bar.update(position(started) - bar.n)
                bar.set_postfix({"loss": f"{loss:.3f}", f"bits/{unit}": f"{loss / LN2:.3f}",
                                 f"{unit}s/s": f"{rate:,.0f}"}, refresh=False)
                if self._stop_signal is not None:
                    p.elapsed_s += now - started
                    self._stop_for_signal()
                if p.step % cfg.eval_every == 0:
                    p.elapsed_s += now - started
                    started = now
                    scores = self._evaluate_and_save(sum(window_losses) / len(window_losses))
                    threads.recheck()         # the BLAS threads follow the machine's other load
                    bar.write(f"step {p.step}  epoch {self.stream.epoch_progress:.2f}  "
                              f"train {window_losses[-1]:.3f}  val {scores['loss']:.4f} nats/{unit} "
                              f"({scores['bpc']:.3f} bits/{unit})  {rate:,.0f} {unit}s/s", file=sys.stderr)
                    window_losses, window_start = [], time.perf_counter()
                reason = self._budget_left(started)
            if window_losses:                 # the tail since the last evaluation
                p.elapsed_s += time.perf_counter() - started
                self._evaluate_and_save(sum(window_losses) / len(window_losses))
            if self._stop_signal is not None:
                self._stop_for_signal()
        finally:
            bar.close()
        return TrainResult(self.model, self.data.vocab, p.history,
                           self.last_path, p.best_path, p.best_val, reason, p.step)


def _check_magnitudes(meta, path):
    """CheckpointError for a number in the saved run's state (progress, stream, optimizer) that
    passed the schema but no run could have written: an integer beyond 2**53 (say, a step
    count of 10**400, which overflows the first float it meets) or a NaN."""
    def walk(value, where):
        if isinstance(value, bool):
            return
        if isinstance(value, int) and abs(value) > 2 ** 53:
            raise CheckpointError(f"The checkpoint {path!r} cannot be resumed ({where} is an integer of "
                                  f"{len(str(abs(value)))} digits, beyond what a run writes).")
        if isinstance(value, float) and math.isnan(value):
            raise CheckpointError(f"The checkpoint {path!r} cannot be resumed ({where} is NaN).")
        if isinstance(value, dict):
            for key, item in value.items():
                walk(item, f"{where}.{key}")
        elif isinstance(value, list):
            for i, item in enumerate(value):
                walk(item, f"{where}[{i}]")
    for section in ("progress", "stream", "optim"):
        walk(meta.get(section), section)


def threading_main():
    """Whether this is the main thread (the only one that may set signal handlers)."""
    import threading
    return threading.current_thread() is threading.main_thread()
