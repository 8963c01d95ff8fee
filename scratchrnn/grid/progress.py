"""The grid's progress display: points done / running / left, with an ETA (tqdm, on stderr).

The bar counts points; tqdm's ETA is the mean time per finished point so far times the
points left. Points finished by an earlier run of the same grid count as done from the
start but not towards the rate. One line per finished point is printed above the bar.
"""
from __future__ import annotations

import sys


class GridProgress:
    def __init__(self, total, already_done, enabled=True):
        from tqdm import tqdm

        self.failed = 0
        self.bar = tqdm(total=total, initial=already_done, unit="point", file=sys.stderr,
                        disable=not enabled, dynamic_ncols=True,
                        bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} points [{elapsed}<{remaining}{postfix}]")
        self.enabled = enabled

    def update(self, running, finished_record=None):
        """Refresh the counts; with ``finished_record``, one more point is done (and said so)."""
        if finished_record is not None:
            if finished_record.get("status") != "ok":
                self.failed += 1
            self.say(describe(finished_record))
            self.bar.update(1)
        left = max(0, self.bar.total - self.bar.n - running)
        self.bar.set_postfix_str(f"running {running}, left {left}, failed {self.failed}")

    def say(self, line):
        self.bar.write(line, file=sys.stderr)

    def close(self):
        self.bar.close()


def describe(record):
    """One line about a finished point."""
    if record.get("status") != "ok":
        return f"failed {record['name']}: {record.get('reason')}"
    resumed = f", resumed at step {record['resumed_from_step']}" if record.get("resumed_from_step") else ""
    return (f"done   {record['name']}: val {record['val']['loss']:.4f} nats "
            f"({record['val']['bpc']:.3f} bits)/char, {record['steps']:,} steps in "
            f"{record['train_seconds']:.0f} s{resumed}")
