"""Checks of a user's function against the book and against float64 central differences.

Every ``check_*`` calls the user's function on random inputs (or a ``case`` you pass, e.g.
drawn by ``scratchrnn.testing.strategies``), converts what it returns to NumPy
(``arrays.to_numpy``: NumPy, PyTorch CPU tensors, CuPy, DLPack) and returns a ``Report``:
one row per output, per parameter gate block, per input, with the normwise relative error
against the book (``scratchrnn.book.cells``, ``scratchrnn.book.ops``, ``scratchrnn.book.optim``) and, for
gradients, against central differences of the book's forward pass in float64. Every
``assert_*`` runs the same check and raises ``AssertionError`` with the report's table.

The user's functions, with the signatures these checks call (state is ``h``, or ``(h, c)``
for an LSTM; ``params`` a dict in the chosen layout, see ``layouts``):

    step forward     fn(params, x, state) -> new_state                 x (B, I), h, c (B, H)
    step backward    fn(params, x, state, dstate) -> grads             dstate = dL/d new_state
                     grads: a dict with every parameter name and "x", "h" (and "c"): dL/d inputs
    sequence fwd     fn(params, xs, state0) -> (ys, stateT)            xs (T, B, I), h (L, B, H)
    sequence bwd     fn(params, xs, state0, dys, dstateT) -> grads
                     grads: every parameter name and "xs", "h0" (and "c0")
    softmax + CE     fn(logits, targets) -> (loss, dlogits)     logits (N, V), targets (N,) int;
                     loss = mean over the N rows of -log softmax(logits)[target]
    clipping         fn(grads, max_norm) -> norm  (grads scaled in place)  or  -> (clipped, norm)
    Adam             fn(params, grads, m, v, t, lr, beta1, beta2, eps)   updates params, m, v in
                     place (returns None) or returns (params, m, v); t counts from 1
    any gradient     check_gradients(loss, gradients, arrays): your backward against central
                     differences of your own forward (a whole model, say)

``to_user`` converts each NumPy input before the call (``arrays.converter("torch")``). The
tolerance defaults to 1e-6 for float64 inputs and 1e-3 for float32 ones (the truth is always
computed in float64). Only the tanh RNN is checked (relu has kinks, see ``scratchrnn.book.gradcheck``).
"""
from __future__ import annotations

from scratchrnn.book import ops, optim
from scratchrnn.book.gradcheck import DEFAULT_EPS, numerical_gradient, rel_error
from scratchrnn.core.backend import CPU
from scratchrnn.testing.arrays import as_user, to_numpy
from scratchrnn.testing.cases import (
    SequenceCase,
    StepCase,
    _f64,
    _parts,
    book_sequence,
    book_sequence_loss,
    book_step,
    book_step_loss,
    sequence_case,
    step_case,
)
from scratchrnn.testing.layouts import gate_blocks, to_book_layout, to_user_layout
from scratchrnn.testing.report import Report, Row

numpy = CPU.xp
NOISE_FACTOR = 8.0


def default_tol(dtype) -> float:
    """1e-6 for float64 inputs, 1e-3 for anything narrower."""
    return 1e-6 if numpy.dtype(dtype) == numpy.float64 else 1e-3


def _identity(a):
    return numpy.array(a, copy=True)


def _copy(value):
    if isinstance(value, numpy.ndarray):
        return value.copy()
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return type(value)(_copy(v) for v in value)
    return value


def _call(fn, to_user, *args):
    return fn(*(as_user(_copy(a), to_user or _identity) for a in args))


def compare(name, got, book, numeric=None, tol=1e-6, floor=1e-12):
    """One ``Row``: ``got`` (any array type, or None) against the book's value and the
    numerical gradient. Wrong shapes and non-finite values fail with a note."""
    if got is None:
        return Row(name, None, None, False, "missing")
    got = numpy.asarray(to_numpy(got))
    book = numpy.asarray(book)
    if got.shape != book.shape:
        return Row(name, None, None, False, f"shape {got.shape}, expected {book.shape}")
    if got.dtype.kind not in "fiu":
        return Row(name, None, None, False, f"dtype {got.dtype}, expected a float array")
    got = got.astype(numpy.float64)
    if not numpy.isfinite(got).all():
        return Row(name, None, None, False, "contains NaN or inf")
    e_book = rel_error(got, book)
    e_num = None if numeric is None else rel_error(got, numeric, floor=floor)
    ok = e_book < tol and (e_num is None or e_num < tol)
    return Row(name, e_book, e_num, bool(ok))


def _gradient_rows(cell, layout, names, got, book, numeric, tol, floor):
    """Rows for a gradient dict: gate blocks for weights and biases, whole arrays otherwise."""
    rows = []
    for name in names:
        g = got.get(name) if isinstance(got, dict) else None
        b, n = book[name], numeric.get(name)
        if g is None or numpy.asarray(to_numpy(g)).shape != b.shape or name in (
                "x", "h", "c", "xs", "h0", "c0"):
            rows.append(compare(name, g, b, n, tol, floor))
            continue
        g = numpy.asarray(to_numpy(g))
        blocks = zip(gate_blocks(name, g, cell, layout), gate_blocks(name, b, cell, layout),
                     gate_blocks(name, n, cell, layout))
        rows += [compare(label, gb, bb, nb, tol, floor) for (label, gb), (_, bb), (_, nb) in blocks]
    return rows


def _noise_floor(loss_scale, tol):
    return max(NOISE_FACTOR * float(numpy.finfo(numpy.float64).eps) * loss_scale
               / DEFAULT_EPS / tol, 1e-12)


def _make_step_case(cell, layout, case, seed):
    return case if case is not None else step_case(cell, layout, seed=seed)


# ------------------------------------------------------------------------- one step
def check_step_forward(fn, cell="lstm", *, layout="scratchrnn", case: StepCase | None = None,
                       seed=0, to_user=None, tol=None) -> Report:
    """``fn(params, x, state) -> new_state`` against the book's ``step_forward``."""
    case = _make_step_case(cell, layout, case, seed)
    tol = tol or default_tol(case.x.dtype)
    got = _parts(_call(fn, to_user, case.params, case.x, case.state))
    book, _ = book_step(case, with_grads=False)
    rows = [compare(name, got[k] if k < len(got) else None, value, tol=tol)
            for k, (name, value) in enumerate(book.items())]
    return Report(f"{case.cell} step forward ({case.layout} layout)", tuple(rows), tol)


def check_step_backward(fn, cell="lstm", *, layout="scratchrnn", case: StepCase | None = None,
                        seed=0, to_user=None, tol=None) -> Report:
    """``fn(params, x, state, dstate) -> grads`` against the book's ``step_backward`` and
    against central differences of the book's forward (float64)."""
    case = _make_step_case(cell, layout, case, seed)
    tol = tol or default_tol(case.x.dtype)
    got = _call(fn, to_user, case.params, case.x, case.state, case.dstate)
    _, book = book_step(case)
    (params,) = to_book_layout({k: _f64(v) for k, v in case.params.items()}, 1, case.layout, False)
    x, state = _f64(case.x), tuple(_f64(s) for s in _parts(case.state))
    loss = lambda: book_step_loss(case, params, x, state)   # noqa: E731
    numeric_book = {k: numerical_gradient(loss, a) for k, a in params.items()}
    numeric = to_user_layout([numeric_book], case.layout, False)
    numeric["x"] = numerical_gradient(loss, x)
    for name, s in zip(("h", "c"), state):
        numeric[name] = numerical_gradient(loss, s)
    floor = _noise_floor(abs(loss()) + 1.0, tol)
    rows = _gradient_rows(case.cell, case.layout, list(book), got, book, numeric, tol, floor)
    return Report(f"{case.cell} step backward ({case.layout} layout)", tuple(rows), tol)


# ------------------------------------------------------------------- a whole sequence
def _make_sequence_case(cell, layout, case, seed, num_layers):
    return case if case is not None else sequence_case(cell, layout, num_layers=num_layers,
                                                       seed=seed)


def check_sequence_forward(fn, cell="lstm", *, layout="scratchrnn", num_layers=1,
                           case: SequenceCase | None = None, seed=0, to_user=None,
                           tol=None) -> Report:
    """``fn(params, xs, state0) -> (ys, stateT)`` against the book's layers stacked."""
    case = _make_sequence_case(cell, layout, case, seed, num_layers)
    tol = tol or default_tol(case.xs.dtype)
    result = _call(fn, to_user, case.params, case.xs, case.state0)
    pair = isinstance(result, (tuple, list)) and len(result) == 2
    ys, stateT = result if pair else (result, None)
    got = [ys, *(_parts(stateT) if stateT is not None else ())]
    book, _ = book_sequence(case, with_grads=False)
    rows = [compare(name, got[k] if k < len(got) else None, value, tol=tol)
            for k, (name, value) in enumerate(book.items())]
    return Report(f"{case.cell} x{case.num_layers} sequence forward ({case.layout} layout)",
                  tuple(rows), tol)


def check_sequence_backward(fn, cell="lstm", *, layout="scratchrnn", num_layers=1,
                            case: SequenceCase | None = None, seed=0, to_user=None,
                            tol=None) -> Report:
    """``fn(params, xs, state0, dys, dstateT) -> grads`` (BPTT) against the book's
    ``backward`` and central differences of the book's forward (float64)."""
    case = _make_sequence_case(cell, layout, case, seed, num_layers)
    tol = tol or default_tol(case.xs.dtype)
    got = _call(fn, to_user, case.params, case.xs, case.state0, case.dys, case.dstateT)
    _, book = book_sequence(case)
    layers = to_book_layout({k: _f64(v) for k, v in case.params.items()}, case.num_layers,
                            case.layout, True)
    xs, states0 = _f64(case.xs), tuple(_f64(s) for s in _parts(case.state0))
    loss = lambda: book_sequence_loss(case, layers, xs, states0)   # noqa: E731
    numeric = to_user_layout([{k: numerical_gradient(loss, a) for k, a in p.items()}
                              for p in layers], case.layout, True)
    numeric["xs"] = numerical_gradient(loss, xs)
    for name, s in zip(("h0", "c0"), states0):
        numeric[name] = numerical_gradient(loss, s)
    floor = _noise_floor(abs(loss()) + 1.0, tol)
    rows = _gradient_rows(case.cell, case.layout, list(book), got, book, numeric, tol, floor)
    return Report(f"{case.cell} x{case.num_layers} sequence backward ({case.layout} layout)",
                  tuple(rows), tol)


# ------------------------------------------------------------- softmax + cross-entropy
def check_softmax_cross_entropy(fn, *, N=5, V=7, seed=0, to_user=None, tol=1e-6) -> Report:
    """``fn(logits, targets) -> (loss, dlogits)`` against ``ops.cross_entropy`` and its
    backward, and dlogits against central differences; once on N(0, 3) logits and once on
    logits of +-1000 (a softmax without the max shift overflows there)."""
    rng = numpy.random.default_rng(seed)
    targets = rng.integers(0, V, size=N)
    rows = []
    for label, logits in (("", 3.0 * rng.standard_normal((N, V))),
                          (" (logits ±1000)", 1000.0 * rng.choice([-1.0, 1.0], size=(N, V))
                           + rng.standard_normal((N, V)))):
        result = _call(fn, to_user, logits, targets)
        loss, dlogits = result if isinstance(result, (tuple, list)) and len(result) == 2 else (
            result, None)
        book_loss, p = ops.cross_entropy(logits, targets)
        book_d = ops.cross_entropy_backward(p, targets)
        z = logits.copy()
        f = lambda z=z: float(ops.cross_entropy(z, targets)[0])   # noqa: E731
        numeric = numerical_gradient(f, z, eps=1e-5 if not label else 1e-3)
        rows.append(compare("loss" + label, loss, book_loss, tol=tol))
        rows.append(compare("dlogits" + label, dlogits, book_d, numeric, tol=tol,
                            floor=_noise_floor(abs(f()) * (1e3 if label else 1), tol)))
        if dlogits is not None and rows[-1].note == "":
            sums = numpy.abs(numpy.asarray(to_numpy(dlogits), dtype=numpy.float64).sum(axis=1))
            rows.append(Row("rows of dlogits sum to 0" + label, float(sums.max()), None,
                            bool(sums.max() < tol)))
    return Report("softmax + cross-entropy", tuple(rows), tol)


# -------------------------------------------------------------------------- clipping
def _gradient_dict(rng, scale):
    return {"W_x": scale * rng.standard_normal((3, 8)), "W_h": scale * rng.standard_normal((2, 8)),
            "b": scale * rng.standard_normal(8)}


def check_clip_grad_norm(fn, *, max_norm=1.0, seed=0, to_user=None, tol=1e-9) -> Report:
    """``fn(grads, max_norm)`` (clipping by the global norm) against ``optim.clip_grad_norm``:
    gradients far above the limit, below it, and all zero."""
    rng = numpy.random.default_rng(seed)
    rows = []
    for label, scale in (("above", 3.0), ("below", 0.02), ("zero", 0.0)):
        grads = _gradient_dict(rng, scale)
        user_grads = as_user(_copy(grads), to_user or _identity)
        result = fn(user_grads, max_norm)
        if isinstance(result, (tuple, list)) and len(result) == 2:
            clipped, norm = result
        else:
            clipped, norm = user_grads, result
        book = _copy(grads)
        book_norm = optim.clip_grad_norm(book, max_norm)
        rows.append(compare(f"norm ({label} the limit)" if label != "zero" else "norm (zero)",
                            norm, numpy.float64(book_norm), tol=tol))
        for name in grads:
            got = clipped.get(name) if isinstance(clipped, dict) else None
            rows.append(compare(f"{name} ({label})", got, book[name], tol=tol))
    return Report(f"gradient clipping by global norm (max_norm={max_norm})", tuple(rows), tol)


# ------------------------------------------------------------------------------ Adam
def check_adam_update(fn, *, lr=1e-2, beta1=0.9, beta2=0.999, eps=1e-8, steps=3, seed=0,
                      to_user=None, tol=1e-9) -> Report:
    """``fn(params, grads, m, v, t, lr, beta1, beta2, eps)`` for t = 1..steps against
    ``optim.Adam`` (params, m and v after every step)."""
    rng = numpy.random.default_rng(seed)
    params = _gradient_dict(rng, 1.0)
    book_params = _copy(params)
    opt = optim.Adam(lr, beta1=beta1, beta2=beta2, eps=eps)
    to_user = to_user or _identity
    user = [as_user(_copy(params), to_user)] + [
        as_user({k: numpy.zeros_like(a) for k, a in params.items()}, to_user) for _ in range(2)]
    rows = []
    for t in range(1, steps + 1):
        grads = _gradient_dict(rng, 10.0 ** rng.uniform(-3, 1))
        result = fn(user[0], as_user(_copy(grads), to_user), user[1], user[2], t, lr, beta1,
                    beta2, eps)
        if isinstance(result, (tuple, list)) and len(result) == 3:
            user = list(result)
        opt.step(book_params, _copy(grads))
        for slot, got, want in (("params", user[0], book_params), ("m", user[1], opt.state["m"]),
                                ("v", user[2], opt.state["v"])):
            for name in params:
                rows.append(compare(f"t={t} {slot}[{name}]",
                                    got.get(name) if isinstance(got, dict) else None,
                                    want[name], tol=tol))
    return Report(f"Adam update (lr={lr}, betas=({beta1}, {beta2}), eps={eps})", tuple(rows), tol)


# ------------------------------------------------------- any scalar function's gradient
def check_gradients(loss, gradients, arrays, *, cell=None, layout="scratchrnn", to_user=None,
                    tol=1e-6) -> Report:
    """Your whole backward pass against central differences of your own forward.

    loss: ``loss(arrays) -> float``, the forward pass (a model with its loss, say).
    gradients: ``gradients(arrays) -> {name: dL/d array}`` for every name in ``arrays``.
    arrays: {name: NumPy array} the point to check at (copied; converted with ``to_user``).
    cell: "lstm", "gru" or "rnn" to cut the fused weights (``W_x``, ``weight_ih_l0`` ...) into
    their gate blocks in the rows. There is no book to compare with, so ``vs_book`` is empty;
    the differences are taken in float64 (arrays of another dtype are promoted for them).
    """
    to_user = to_user or _identity
    point = {k: numpy.array(v, dtype=numpy.float64) for k, v in arrays.items()}
    got = gradients(as_user(_copy(point), to_user))
    work = _copy(point)
    f = lambda: float(to_numpy(loss(as_user(_copy(work), to_user))))   # noqa: E731
    numeric = {k: numerical_gradient(f, work[k]) for k in work}
    floor = _noise_floor(abs(f()) + 1.0, tol)
    rows = []
    for name in point:
        g = got.get(name) if isinstance(got, dict) else None
        gn = None if g is None else numpy.asarray(to_numpy(g))
        pieces = [(name, gn, numeric[name])]
        fused = name.rsplit(".", 1)[-1] in ("W_x", "W_h", "b_x", "b_h") or name.startswith(
            ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
        if cell and fused and gn is not None and gn.shape == numeric[name].shape:
            pieces = [(label, a, n) for (label, a), (_, n) in
                      zip(gate_blocks(name, gn, cell, layout),
                          gate_blocks(name, numeric[name], cell, layout))]
        for label, a, n in pieces:
            row = compare(label, a, n, n, tol, floor)
            rows.append(row._replace(vs_book=None))
    return Report("gradients against central differences", tuple(rows), tol)


# ------------------------------------------------------------------- the assert forms
def _asserting(check):
    def assert_(*args, **kwargs):
        report = check(*args, **kwargs)
        if not report.passed:
            raise AssertionError("\n" + report.table())
        return report
    assert_.__name__ = check.__name__.replace("check_", "assert_")
    assert_.__doc__ = (f"``{check.__name__}``, raising AssertionError with the report's table "
                       f"when a row fails; returns the report when all pass.")
    return assert_


assert_step_forward = _asserting(check_step_forward)
assert_step_backward = _asserting(check_step_backward)
assert_sequence_forward = _asserting(check_sequence_forward)
assert_sequence_backward = _asserting(check_sequence_backward)
assert_softmax_cross_entropy = _asserting(check_softmax_cross_entropy)
assert_clip_grad_norm = _asserting(check_clip_grad_norm)
assert_adam_update = _asserting(check_adam_update)
assert_gradients = _asserting(check_gradients)
