"""What every exercise module defines: an ``Exercise`` (see the fields) and its cases.

An exercise knows
- what the learner writes: the function's name, its arguments and outputs with their shapes,
  the forward equations, the section of docs/derivations.md, the task;
- its cases: fixed known-answer cases (``expected`` given in closed form), random cases and
  edge cases, each an ordered dict of arguments;
- the book's answer (``reference``, a call into scratchrnn.book.cells / ops / optim) and, for
  gradients, the float64 central differences of the book's forward (``numeric``);
- the mistakes it recognises: ``Mistake(key, message, model)`` where ``model(case)`` computes
  what that wrong derivation returns; the grader says ``message`` when the learner's outputs
  equal a model's on every case. ``rules(evidence)`` turn the pattern of right and wrong
  outputs (and of gate blocks) into a message when no model matches exactly.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, NamedTuple

from scratchrnn.core.backend import CPU

np = CPU.xp


class Case(NamedTuple):
    """One call of the learner's function."""
    label: str               # "known answer: h = 0", "random 3", "logits ±1000"
    kind: str                # "known", "random" or "edge"
    args: dict               # argument name -> value, in the signature's order
    extra: dict = {}         # what the book's forward needs beyond the arguments (b, ...)
    expected: dict | None = None   # for "known": the answer in closed form


class Mistake(NamedTuple):
    """A typical wrong derivation and the diagnosis it earns."""
    key: str
    message: str
    model: Callable          # model(case) -> {output name: array}, what the mistake returns


@dataclass
class Exercise:
    number: int
    name: str
    title: str
    section: str                       # 'docs/derivations.md §2 "The vanilla RNN"'
    function: str
    arguments: tuple                   # (name, shape/meaning) in the signature's order
    outputs: tuple                     # (name, shape/meaning) in the order returned
    equations: str                     # the forward pass, for the skeleton
    task: str                          # what to write, for the skeleton
    cases: Callable                    # cases() -> [Case]
    reference: Callable                # reference(case) -> {output: array}, the book
    numeric: Callable | None = None    # numeric(case) -> {output: array}, central differences
    mistakes: tuple = ()
    rules: Callable | None = None      # rules(evidence) -> message or None
    nan_rules: Callable | None = None  # the same, asked first when an output has NaN or inf
    properties: Callable | None = None  # properties(case, got) -> [(label, ok, detail)]
    unpack: Callable | None = None     # flat outputs -> {output: array} (default: a tuple)
    shape_hints: dict = field(default_factory=dict)   # output -> {wrong shape kind: message}
    imports: str = ""                  # extra import lines for the skeleton
    returns: str = ""                  # the skeleton's "Returns" block, when not the outputs
    equations_title: str = "The forward pass"

    @property
    def output_names(self):
        return tuple(name for name, _ in self.outputs)


def rng_for(name, k):
    """The generator of case ``k`` of exercise ``name``: the same cases on every run."""
    return np.random.default_rng([sum(map(ord, name)), k])


def adjoint_property(name_w, w, name_x, x, dW, dx):
    """(label, ok, detail) for ⟨dW, W⟩ = ⟨dx, x⟩: both are ⟨da, x W⟩ when dW = xᵀ da and
    dx = da Wᵀ, an identity a right answer satisfies without giving it away."""
    left, right = float((np.asarray(dW) * w).sum()), float((np.asarray(dx) * x).sum())
    ok = abs(left - right) <= 1e-9 * max(1.0, abs(left), abs(right))
    return (f"⟨d{name_w}, {name_w}⟩ = ⟨d{name_x}, {name_x}⟩ (both are ⟨da, {name_x} {name_w}⟩)",
            ok, f"{left:.6g} and {right:.6g}")
