"""What every check returns: a ``Report`` of ``Row``s, printable as a table.

A row is one thing compared: an output ("h"), a gradient ("W_x"), one gate block of a
gradient ("W_x[f]"), or a property ("norm after clipping <= max_norm"). Each row holds the
normwise relative error against the book (``vs_book``) and, for gradients, against float64
central differences (``vs_numeric``); a row passes when every error it has is below its
tolerance. ``Report.table()`` is what ``assert_*`` puts in the AssertionError.
"""
from __future__ import annotations

import math
from typing import NamedTuple


class Row(NamedTuple):
    """One compared item of a check."""
    name: str                      # "h", "W_x", "W_x[f]", "loss", ...
    vs_book: float | None          # max normwise relative error against the book
    vs_numeric: float | None       # ... against float64 central differences (gradients)
    passed: bool
    note: str = ""                 # why it failed when no number says it (shape, NaN, ...)


class Report(NamedTuple):
    """The result of one check: its name, the rows, and the tolerance used."""
    check: str
    rows: tuple
    tol: float

    @property
    def passed(self) -> bool:
        """True when every row passed."""
        return all(r.passed for r in self.rows)

    @property
    def failed(self) -> list:
        """The names of the rows that failed."""
        return [r.name for r in self.rows if not r.passed]

    def row(self, name):
        """The row called ``name`` (KeyError when there is none)."""
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(name)

    def table(self) -> str:
        """A plain-text table: item, error vs the book, vs finite differences, result."""
        head = ("item", "vs book", "vs finite diff", "result")
        lines = [(r.name, _num(r.vs_book), _num(r.vs_numeric),
                  ("pass" if r.passed else "FAIL") + (f"  {r.note}" if r.note else ""))
                 for r in self.rows]
        widths = [max(len(head[k]), *(len(line[k]) for line in lines)) for k in range(3)]
        fmt = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)) + "  " + cells[3]  # noqa: E731
        verdict = "passed" if self.passed else f"FAILED: {', '.join(self.failed)}"
        return "\n".join([f"{self.check} (tolerance {self.tol:.0e}): {verdict}", fmt(head),
                          fmt(tuple("-" * len(h) for h in head))] + [fmt(line) for line in lines])

    def __str__(self):
        return self.table()


def _num(x):
    if x is None:
        return "-"
    return "nan" if isinstance(x, float) and math.isnan(x) else f"{x:.2e}"
