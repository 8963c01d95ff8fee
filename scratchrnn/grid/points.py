"""The grid's settings, checked before anything runs, and the points they span.

A ``GridSpec`` holds the lists (cells, layers, sizes, seeds), the budget every point gets,
and the training settings every point shares (data, window, batch, learning rate...).
``spec.points(out_dir)`` lists one ``GridPoint`` per combination, each with the
``TrainConfig`` (as JSON) of its own run folder ``out_dir/runs/<name>``.
"""
from __future__ import annotations

import itertools
import math
import os
from dataclasses import dataclass, field

from scratchrnn.book.cells import CELLS
from scratchrnn.core.errors import ConfigError
from scratchrnn.core.validation import int_at_least, positive_float, positive_int

# the TrainConfig fields a grid lets the user set for every point alike
SHARED_FIELDS = ("source", "max_chars", "seq_len", "batch_size", "lr", "dropout", "dtype",
                 "eval_every", "eval_tokens", "backend", "grad_clip", "nonlinearity")


@dataclass(frozen=True)
class Budget:
    """What every point gets: ``steps`` optimizer steps or ``minutes`` of training (one of them)."""
    steps: int | None = None
    minutes: float | None = None

    def __post_init__(self):
        if (self.steps is None) == (self.minutes is None):
            raise ConfigError("give exactly one budget: --budget-steps N or --budget-minutes M.")
        if self.steps is not None:
            positive_int("--budget-steps", self.steps)
        else:
            positive_float("--budget-minutes", self.minutes)

    def train_fields(self):
        """The TrainConfig budget fields: only this budget, no other stop."""
        return {"max_steps": self.steps, "max_minutes": self.minutes, "max_epochs": None,
                "patience": None}

    def describe(self):
        return f"{self.steps:,} steps" if self.steps is not None else f"{self.minutes:g} minutes"

    def to_json(self):
        return {"steps": self.steps, "minutes": self.minutes}


@dataclass(frozen=True)
class GridPoint:
    """One training run of the grid."""
    cell: str
    layers: int
    size: int
    seed: int
    train: dict          # TrainConfig.to_json() of this point's run

    @property
    def name(self):
        return point_name(self.cell, self.layers, self.size, self.seed)

    @property
    def run_dir(self):
        return self.train["out_dir"]


def point_name(cell, layers, size, seed):
    """The folder and results name of a point, e.g. ``lstm-2x128-seed0``."""
    return f"{cell}-{layers}x{size}-seed{seed}"


def count_params(cell, layers, size, vocab_size, embedding_size=0):
    """Parameters of the language model: per layer G*(I*H + H*H + 2H), then the head H*V + V,
    and V*E for an embedding (the shapes are ``saved.param_shapes``'; nothing is allocated).

    The first layer's input I is the embedding size, or V for one-hot input."""
    from scratchrnn.lm.saved import param_shapes  # loaded on use, as the grid's other model parts
    config = {"cell": cell, "num_layers": layers, "hidden_size": size, "vocab_size": vocab_size,
              "embedding_size": embedding_size}
    return sum(math.prod(shape) for shape in param_shapes(config).values())


def step_cost(cell, layers, size, vocab_size=100):
    """A point's estimated time per step, in parameter units: its parameter count plus a fixed
    per-step overhead (Python, the softmax, the optimizer's calls) worth about 70,000
    parameters on a CPU (a 1-layer RNN of 64 took a quarter of the time of a 263,000-parameter
    2-layer LSTM of 128). Used to start the longest points first and for the ETA."""
    return count_params(cell, layers, size, vocab_size) + 70_000


@dataclass
class GridSpec:
    """Everything that defines a grid; two runs on one folder must agree on all but the lists."""
    cells: tuple
    layers: tuple
    sizes: tuple
    seeds: tuple
    budget: Budget
    shared: dict = field(default_factory=dict)    # SHARED_FIELDS given by the user

    @classmethod
    def from_lists(cls, source, cells, layers, sizes, seeds, budget, **shared):
        """Parse comma-separated lists (``"rnn,gru"``, ``"1,2"``) and check every value."""
        unknown = set(shared) - set(SHARED_FIELDS)
        if unknown:
            raise ConfigError(f"A grid cannot set {', '.join(sorted(unknown))} per point.")
        shared = {k: v for k, v in shared.items() if v is not None}
        shared["source"] = source
        spec = cls(cells=parse_cells(cells),
                   layers=parse_ints("--layers", layers, positive_int),
                   sizes=parse_ints("--sizes", sizes, positive_int),
                   seeds=parse_ints("--seeds", seeds, lambda name, v: int_at_least(name, v, 0)),
                   budget=budget, shared=shared)
        for point in spec.points("."):          # every point's settings must be trainable
            _train_config(point.train).validate()
        return spec

    def points(self, out_dir):
        """Every (cell, layers, size, seed), the table's order: cells, then layers, sizes, seeds."""
        out_dir = os.path.abspath(out_dir)
        result = []
        for cell, layers, size, seed in itertools.product(self.cells, self.layers, self.sizes, self.seeds):
            name = point_name(cell, layers, size, seed)
            train = dict(self.shared, cell=cell, num_layers=layers, hidden_size=size, seed=seed,
                         out_dir=os.path.join(out_dir, "runs", name), progress=False,
                         **self.budget.train_fields())
            result.append(GridPoint(cell, layers, size, seed, _train_config(train).to_json()))
        return result

    def settings(self):
        """What two runs on one folder must share (JSON): the budget and the shared fields."""
        return {"budget": self.budget.to_json(), "shared": dict(sorted(self.shared.items()))}

    def to_json(self):
        return {"cells": list(self.cells), "layers": list(self.layers), "sizes": list(self.sizes),
                "seeds": list(self.seeds), **self.settings()}


def _train_config(train_json):
    from scratchrnn.lm.run import TrainConfig
    try:
        return TrainConfig.from_json(train_json)
    except TypeError as exc:          # a field of the wrong kind
        raise ConfigError(f"The grid's training settings are not valid ({exc}).") from None


def parse_cells(text):
    """``"rnn, GRU,lstm"`` -> ("rnn", "gru", "lstm"); unknown names and empty lists refused."""
    names = _items("--cells", text)
    for name in names:
        if name.lower() not in CELLS:
            raise ConfigError(f"Unknown cell {name!r} in --cells; choose from {', '.join(CELLS)}.")
    return tuple(dict.fromkeys(name.lower() for name in names))


def parse_ints(flag, text, check):
    """``"64,128"`` -> (64, 128), each passed through ``check(flag, value)``; duplicates dropped."""
    values = []
    for item in _items(flag, text):
        try:
            value = int(item)
        except ValueError:
            raise ConfigError(f"{flag} takes comma-separated integers, got {item!r}.") from None
        values.append(check(flag, value))
    return tuple(dict.fromkeys(values))


def _items(flag, text):
    items = [item.strip() for item in str(text).split(",")]
    if not any(items):
        raise ConfigError(f"{flag} is empty; give at least one value.")
    if not all(items):
        raise ConfigError(f"{flag} has an empty item in {text!r}.")
    return items



def check_memory(spec, vocab_size, memory_bytes):
    """ConfigError if a point's weights, gradients and Adam moments alone exceed ``memory_bytes``."""
    itemsize = 8 if spec.shared.get("dtype") == "float64" else 4
    for cell in spec.cells:
        for layers in spec.layers:
            for size in spec.sizes:
                need = 4 * itemsize * count_params(cell, layers, size, vocab_size,
                                                   spec.shared.get("embedding_size", 0))
                if need > memory_bytes:
                    raise ConfigError(f"A {layers}-layer {cell.upper()} of size {size} needs "
                                      f"{need / 2**30:,.1f} GiB for its weights, gradients and "
                                      f"optimizer state alone, more than this machine's "
                                      f"{memory_bytes / 2**30:,.1f} GiB; choose smaller --sizes.")


def physical_memory():
    """Bytes of RAM on this machine, or None where the OS does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None
