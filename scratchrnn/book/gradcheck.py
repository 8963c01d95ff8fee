"""Gradient checks: hand-written backward passes against central differences.

    rows = check_layer(LSTM(3, 4, num_layers=2, dtype="float64"), T=5, B=2, seed=0)
    print(format_table(rows))      # one row per parameter, plus "x", "h0" (and "c0")

The recipe, for any scalar function L of an array x:

    dL/dx[i] ~ (L(x + eps e_i) - L(x - eps e_i)) / (2 eps)       (error O(eps^2))

computed one element at a time (so it is slow: two forward passes per element;
keep the sizes small) and compared with the analytic gradient by ``rel_error``.
Checks are meant for float64: with eps = 1e-5 the truncation error is ~1e-10 and
the rounding error ~1e-16 / 1e-5 = 1e-11, so a correct backward agrees to ~1e-9
and the default tolerance 1e-6 leaves room without hiding real mistakes (a wrong
term usually shows up as an error of 1e-3 or more).

Rounding noise. A difference quotient cannot be more accurate than the rounding
error of the two losses it subtracts, about u * S / eps where u is the unit
roundoff of the dtype and S the magnitude of the terms summed into the loss. When a
parameter's whole gradient is tiny (saturated tanh/sigmoid units make gradients of
1e-6 and less) that noise alone can exceed 1e-6 of the gradient's scale although
the backward is exact. ``check_function`` therefore passes ``rel_error`` a floor of
noise / tol with noise = 8 u S / eps: an absolute disagreement below the noise is
never a failure, anything above it is judged relative to the gradient's own scale.
With S ~ 1, u = 2.2e-16 and eps = 1e-5 the noise is ~2e-10, so a gradient of scale
1e-3 or larger is judged purely relatively.

Arrays may live on any backend: the perturbed arrays are changed in place where
they are (one element at a time, restored afterwards), losses are read back as
Python floats, and every numerical gradient and comparison is done on the host.

Piecewise-linear functions (relu) have kinks where the derivative jumps; a central
difference whose two points straddle a kink measures an average of the two slopes
and disagrees with either one-sided derivative. ``numerical_gradient`` can take a
``region`` callable that names the linear piece the last evaluation fell in (for a
relu network: the sign pattern of every pre-activation); elements whose +eps and
-eps evaluations land in a different piece than the unperturbed point are marked
NaN and left out of the comparison (and counted in ``Row.skipped``). With random
data this happens rarely (a pre-activation has to lie within ~eps of 0).
"""
from __future__ import annotations

import math
from typing import Callable, Mapping, NamedTuple

from scratchrnn.core.backend import CPU, backend_of

numpy = CPU.xp   # host NumPy, through the backend seam

DEFAULT_EPS = 1e-5
DEFAULT_TOL = 1e-6
NOISE_FACTOR = 8.0     # rounding noise of a difference quotient ~ NOISE_FACTOR * u * S / eps


class Row(NamedTuple):
    """One line of a gradient-check report."""
    name: str               # parameter name ("l0.W_x"), or "x", "h0", "c0"
    max_rel_error: float    # rel_error(analytic, numerical) over the checked elements
    passed: bool            # max_rel_error < tol
    skipped: int = 0        # elements left out because a +-eps step crossed a kink


def _host(a) -> numpy.ndarray:
    return backend_of(a).asnumpy(a)


def rel_error(a, b, floor=1e-12) -> float:
    """Normwise relative error: max|a - b| / max(max|a| + max|b|, floor).

    Normwise (one scale for the whole array), not elementwise: an elementwise ratio
    |a_i - b_i| / (|a_i| + |b_i|) is meaningless for entries that are near zero
    (a gradient entry of 1e-13 computed as 3e-13 is a 50% "error" that is really
    rounding noise), and such entries are common (saturated gates, dead relus,
    biases of unused units). Dividing by the largest magnitude measures the error
    against the scale the gradient actually has. ``floor`` avoids 0/0 when both
    arrays are zero. Accepts arrays of any backend (compared on the host).
    """
    a = numpy.asarray(_host(a), dtype=numpy.float64)
    b = numpy.asarray(_host(b), dtype=numpy.float64)
    if a.shape != b.shape:
        raise ValueError(f"rel_error needs arrays of one shape, got {a.shape} and {b.shape}.")
    if a.size == 0:
        return 0.0
    scale = max(float(numpy.abs(a).max()) + float(numpy.abs(b).max()), floor)
    return float(numpy.abs(a - b).max()) / scale


def numerical_gradient(f: Callable[[], float], x, eps: float = DEFAULT_EPS,
                       region: Callable[[], object] | None = None) -> numpy.ndarray:
    """Central-difference gradient of the scalar ``f()`` with respect to the array ``x``.

    f: takes no arguments and reads ``x`` (and whatever else it closes over); returns a
       scalar (a float or a 0-d array of any backend).
    x: a floating array of any backend, changed in place one element at a time and
       restored exactly afterwards (also when ``f`` raises).
    region: optional; called right after each ``f()``, returns an array naming the
       smooth piece of a piecewise function that evaluation fell in (see the module
       doc). Elements whose perturbed evaluations leave the piece come back as NaN.
    Returns a host float64 array shaped like ``x``.

    The step actually taken is read back from ``x`` (x_plus - x_minus after rounding
    to x's dtype), so float32 arrays are differenced correctly too.
    """
    grad = numpy.zeros(x.shape, dtype=numpy.float64)
    base = None
    if region is not None:
        f()
        base = numpy.asarray(_host(region())).copy()
    for idx in numpy.ndindex(*x.shape):
        old = x[idx].item()
        try:
            x[idx] = old + eps
            x_plus = x[idx].item()
            f_plus = float(f())
            left = region is not None and not numpy.array_equal(_host(region()), base)
            x[idx] = old - eps
            x_minus = x[idx].item()
            f_minus = float(f())
            left = left or (region is not None and not numpy.array_equal(_host(region()), base))
        finally:
            x[idx] = old
        grad[idx] = math.nan if left else (f_plus - f_minus) / (x_plus - x_minus)
    return grad


def check_function(loss: Callable[[], float], wrt: Mapping[str, object],
                   grads: Mapping[str, object], eps: float = DEFAULT_EPS,
                   tol: float = DEFAULT_TOL,
                   region: Callable[[], object] | None = None,
                   loss_scale: float | None = None) -> list[Row]:
    """Check the analytic gradients of any scalar function, one ``Row`` per array.

    loss: ``loss() -> scalar``, the forward pass only; it must read the *current*
       contents of the arrays in ``wrt`` (parameters, inputs, states...).
    wrt: {name: array} the arrays to differentiate by; perturbed in place, restored.
    grads: {name: analytic dL/d array} for every name in ``wrt``, computed beforehand
       by the backward pass at the unperturbed point (any backend).
    region: see ``numerical_gradient`` (for functions with kinks).
    loss_scale: S, the magnitude of the terms summed into the loss (for the rounding
       noise 8 u S / eps, see the module doc); default |loss()| at the start point.
    Returns rows in the order of ``wrt``; a row passes when max_rel_error < tol, where
    max_rel_error = rel_error(analytic, numerical, floor=noise / tol).

    For a model: run forward and backward once, copy its grads, then
    ``check_function(lambda: model.loss(x, y), model.params, grads)``.
    """
    if loss_scale is None:
        loss_scale = abs(float(loss()))
    roundoff = max((float(numpy.finfo(numpy.dtype(a.dtype)).eps) for a in wrt.values()),
                   default=float(numpy.finfo(numpy.float64).eps))
    floor = max(NOISE_FACTOR * roundoff * float(loss_scale) / eps / tol, 1e-12)
    rows = []
    for name, array in wrt.items():
        if name not in grads:
            raise ValueError(f"no analytic gradient given for {name!r}.")
        analytic = numpy.asarray(_host(grads[name]), dtype=numpy.float64)
        if analytic.shape != tuple(array.shape):
            raise ValueError(f"the gradient of {name!r} has shape {analytic.shape}, "
                             f"the array has {tuple(array.shape)}.")
        numeric = numerical_gradient(loss, array, eps=eps, region=region)
        keep = ~numpy.isnan(numeric)
        err = rel_error(analytic[keep], numeric[keep], floor=floor)
        rows.append(Row(name, err, bool(err < tol), int(numeric.size - keep.sum())))
    return rows


def check_layer(layer, T: int, B: int, seed=0, eps: float = DEFAULT_EPS,
                tol: float = DEFAULT_TOL) -> list[Row]:
    """Gradient check of a recurrent layer (``layers.RNN``/``GRU``/``LSTM``), any backend.

    Draws (from ``seed``) an input x (T, B, I) (or (B, T, I) when batch_first), an
    initial state h0 (L, B, H) (and c0 for LSTM) and the weights of a random linear
    functional loss

        L = sum(y * Wy) + sum(hT * Wh)  (+ sum(cT * Wc))

    whose gradient with respect to the outputs is exactly (Wy, Wh, Wc): every output
    element gets its own random weight, so no mistake can cancel out. Compares
    ``layer.backward`` with central differences for every key of ``layer.params``,
    then "x", "h0" (and "c0").

    The layer must be float64 (finite differences in float32 measure rounding
    noise). In training mode with dropout the mask is held fixed by re-seeding the
    layer's dropout generator before every forward pass. A relu RNN's kinks are
    handled as described in the module doc. ``layer.params`` and ``layer.grads`` are
    left as they were; the layer's forward cache is that of the last evaluation.
    """
    if layer.dtype != numpy.float64:
        raise ValueError(f"check_layer needs a float64 layer (finite differences in "
                         f"{layer.dtype.name} measure rounding noise), got {layer.dtype.name}.")
    be, H = layer.backend, layer.hidden_size
    L = layer.num_layers * getattr(layer, "num_directions", 1)     # state rows: 2L when bidirectional
    H_out = getattr(layer, "output_size", H)                     # y's width: 2H when bidirectional
    rng = numpy.random.default_rng(seed)
    x_shape = (B, T, layer.input_size) if layer.batch_first else (T, B, layer.input_size)
    n_states = 2 if layer.cell.HAS_CELL_STATE else 1
    on_device = lambda a: be.asarray(a, dtype=layer.dtype)   # noqa: E731
    x = on_device(rng.standard_normal(x_shape))
    states0 = [on_device(rng.standard_normal((L, B, H))) for _ in range(n_states)]
    w_y = on_device(rng.standard_normal(x_shape[:2] + (H_out,)))
    w_states = [on_device(rng.standard_normal((L, B, H))) for _ in range(n_states)]
    as_state = (lambda s: tuple(s)) if n_states == 2 else (lambda s: s[0])
    dropout_seed = int(rng.integers(2**31))

    fix_mask = layer.training and layer.dropout > 0.0
    saved_rng = layer.dropout_rng if fix_mask else None
    saved_grads = {k: g.copy() for k, g in layer.grads.items()}

    def forward():
        if fix_mask:       # the same mask for every evaluation
            layer.seed_dropout(dropout_seed)
        y, stateT = layer.forward(x, as_state(states0))
        return y, (stateT if n_states == 2 else (stateT,))

    def loss(scale=False):
        y, statesT = forward()
        mag = abs if scale else (lambda a: a)   # scale=True: the sum of |terms|, S
        total = mag(y * w_y).sum()
        for s, w in zip(statesT, w_states):
            total = total + mag(s * w).sum()
        return float(total)

    region = None
    if getattr(layer, "nonlinearity", None) == "relu":
        # the relu piece: which units of every layer and step are active
        region = lambda: numpy.concatenate(          # noqa: E731
            [_host(c.hs > 0).ravel() for c in layer.caches])

    try:
        layer.zero_grad()
        forward()
        dx, dstate0 = layer.backward(w_y, as_state(w_states))
        dstates0 = dstate0 if n_states == 2 else (dstate0,)
        grads = {k: g.copy() for k, g in layer.grads.items()}
        wrt = dict(layer.params)
        wrt["x"], grads["x"] = x, dx
        for name, s, ds in zip(("h0", "c0"), states0, dstates0):
            wrt[name], grads[name] = s, ds
        return check_function(loss, wrt, grads, eps=eps, tol=tol, region=region,
                              loss_scale=loss(scale=True))
    finally:
        for k, g in saved_grads.items():
            layer.grads[k][...] = g
        if fix_mask:       # the layer's own mask stream goes on where it was
            layer.dropout_rng = saved_rng


def format_table(rows, extra_columns: Mapping[str, list] | None = None) -> str:
    """A plain-text table of ``Row``s: [extra columns...] parameter, max rel error, result.

    extra_columns: optional {header: [one value per row]} shown before the parameter
    (the command line adds "cell" and "layers"). A "skipped" column appears when any
    row skipped elements at kinks.
    """
    rows = list(rows)
    extra = dict(extra_columns or {})
    for header, values in extra.items():
        if len(values) != len(rows):
            raise ValueError(f"column {header!r} has {len(values)} values for {len(rows)} rows.")
    headers = list(extra) + ["parameter", "max rel error", "result"]
    show_skipped = any(r.skipped for r in rows)
    if show_skipped:
        headers.append("skipped")
    table = []
    for i, r in enumerate(rows):
        line = [str(v[i]) for v in extra.values()]
        line += [r.name, f"{r.max_rel_error:.2e}", "pass" if r.passed else "FAIL"]
        if show_skipped:
            line.append(str(r.skipped))
        table.append(line)
    widths = [max(len(h), *(len(t[j]) for t in table)) if table else len(h)
              for j, h in enumerate(headers)]
    fmt = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    out = [fmt(headers), fmt(["-" * w for w in widths])]
    out += [fmt(t) for t in table]
    return "\n".join(out)
