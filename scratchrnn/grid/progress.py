"""The grid's progress display: points done / running / left, with an ETA (tqdm, on stderr).

The bar counts points. The ETA weighs them: the grid starts the biggest points first, so
"mean time per point so far" would overestimate what is left. Each point's weight is its
estimated cost per step (``points.step_cost``); the ETA is the time spent so far per unit
of finished weight, times the weight not yet finished. Points finished by an earlier run of
the same grid count as done from the start but not towards the rate. One line per finished
point is printed above the bar.
"""
from __future__ import annotations

import sys
import time


class GridProgress:
    def __init__(self, total, already_done, weights, enabled=True):
        """weights: {point name: estimated cost} of the points this run will train."""
        from tqdm import tqdm

        self.failed = 0
        self.weights, self.left_weight = weights, sum(weights.values())
        self.done_weight, self.started = 0.0, time.monotonic()
        self.bar = tqdm(total=total, initial=already_done, unit="point", file=sys.stderr,
                        disable=not enabled, dynamic_ncols=True,
                        bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} points [{elapsed}{postfix}]")

    def eta(self):
        """Seconds left, estimated from the weight finished so far (None before the first point)."""
        if self.done_weight <= 0:
            return None
        return (time.monotonic() - self.started) / self.done_weight * self.left_weight

    def update(self, running, finished_record=None):
        """Refresh the counts; with ``finished_record``, one more point is done (and said so)."""
        if finished_record is not None:
            if finished_record.get("status") == "failed":
                self.failed += 1
            weight = self.weights.get(finished_record["name"], 0.0)
            self.done_weight += weight
            self.left_weight -= weight
            self.say(describe(finished_record))
            self.bar.update(1)
        left = max(0, self.bar.total - self.bar.n - running)
        eta = self.eta()
        eta_text = "?" if eta is None else time.strftime("%H:%M:%S", time.gmtime(eta))
        self.bar.set_postfix_str(f"running {running}, left {left}, failed {self.failed}, ETA {eta_text}")

    def say(self, line):
        self.bar.write(line, file=sys.stderr)

    def close(self):
        self.bar.close()


def describe(record):
    """One line about a finished point."""
    if record.get("status") == "interrupted":
        return f"stopped {record['name']}: {record.get('reason')}"
    if record.get("status") != "ok":
        return f"failed {record['name']}: {record.get('reason')}"
    resumed = f", resumed at step {record['resumed_from_step']}" if record.get("resumed_from_step") else ""
    return (f"done   {record['name']}: val {record['val']['loss']:.4f} nats "
            f"({record['val']['bpc']:.3f} bits)/char, {record['steps']:,} steps in "
            f"{record['train_seconds']:.0f} s{resumed}")
