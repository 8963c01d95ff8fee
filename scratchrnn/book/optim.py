"""Optimizers, learning-rate decay and gradient clipping over flat dicts of arrays.

    opt = make_optimizer("adam", lr=2e-3)
    norm = clip_grad_norm(grads, max_norm=5.0)     # scales grads in place, returns the norm
    opt.step(params, grads)                        # updates params in place

``params`` and ``grads`` are ``dict[str, array]`` with the same keys and shapes; arrays may
live on any backend (the array module is found with ``backend_of``). Every update writes
into the parameter arrays themselves, so references held elsewhere (a model's layers) stay
valid. Optimizer state (momenta, running squares) is allocated lazily, one array per
parameter and slot, on the parameter's backend and with its dtype.
"""
from __future__ import annotations

import math

from scratchrnn.core.backend import CPU, backend_of, get_backend
from scratchrnn.core.errors import CheckpointError, ConfigError
from scratchrnn.core.validation import finite_float, positive_float

_np = CPU.xp  # host copies of the state (NumPy)


def _check_fraction(name: str, value) -> float:
    """``value`` as a float when 0 <= value < 1, else ConfigError."""
    return finite_float(name, value, 0.0, 1.0, high_open=True)


class Optimizer:
    """Shared machinery: lazily created per-parameter state slots, a step counter, save/load.

    Subclasses name their state slots in ``SLOTS`` (or override ``slots()``), their
    hyper-parameters in ``HYPER``, and implement ``_update(xp, p, g, state, t, lr)`` for one
    parameter at step ``t`` (1-based) with learning rate ``lr``, ``state`` mapping slot name
    -> that parameter's array. ``t`` and ``lr`` are arguments rather than read from ``self``
    so that they may also be 0-d arrays on the device (``engines.device_step``), where the
    same update then runs without reading anything back to the host.
    """

    NAME = ""
    SLOTS: tuple[str, ...] = ()
    HYPER: tuple[str, ...] = ()

    def __init__(self, lr):
        self.lr = positive_float("lr", lr)
        self.t = 0                       # number of steps taken
        self.state: dict[str, dict] = {}  # slot -> param name -> array

    def slots(self) -> tuple[str, ...]:
        """Names of the per-parameter state arrays this optimizer keeps."""
        return self.SLOTS

    def _slot(self, slot: str, key: str, p):
        """The state array ``slot`` of parameter ``key``, zeros like ``p`` at first use."""
        store = self.state.setdefault(slot, {})
        if key not in store:
            store[key] = backend_of(p).xp.zeros_like(p)
        return store[key]

    def step(self, params: dict, grads: dict) -> None:
        """One update of every parameter in ``params`` from ``grads`` (same keys), in place."""
        missing = params.keys() - grads.keys()
        if missing:
            raise KeyError(f"no gradient for parameter(s) {sorted(missing)}")
        self.t += 1
        self.update_all(params, grads, self.t, self.lr)

    def update_all(self, params: dict, grads: dict, t, lr) -> None:
        """The update of every parameter at step ``t`` with learning rate ``lr`` (Python
        numbers, or 0-d arrays on the parameters' device); does not advance ``self.t``."""
        for key, p in params.items():
            state = {slot: self._slot(slot, key, p) for slot in self.slots()}
            self._update(backend_of(p).xp, p, grads[key], state, t, lr)

    def _update(self, xp, p, g, state, t, lr) -> None:
        raise NotImplementedError

    # ---------------------------------------------------------- save / restore
    def state_dict(self):
        """(arrays, meta): arrays maps ``"<slot>/<param>"`` to host NumPy copies; meta is
        JSON (name, lr, hyper-parameters, step count)."""
        arrays = {f"{slot}/{key}": _np.array(backend_of(a).asnumpy(a))
                  for slot, store in self.state.items() for key, a in store.items()}
        meta = {"name": self.NAME, "lr": self.lr, "t": self.t}
        meta.update({h: getattr(self, h) for h in self.HYPER})
        return arrays, meta

    def load_state_dict(self, arrays: dict, meta: dict, backend=None) -> None:
        """Restore what ``state_dict`` returned, state arrays placed on ``backend``
        (a name, a Backend, or None for the default); the next step is bit-identical."""
        if meta.get("name") != self.NAME:
            raise CheckpointError(f"The saved optimizer is {meta.get('name')!r}, "
                                  f"not {self.NAME!r}.")
        missing = [k for k in ("lr", "t") + self.HYPER if k not in meta]
        if missing:
            raise CheckpointError(f"The saved {self.NAME} optimizer lacks {', '.join(missing)}.")
        for key in ("lr", "t") + self.HYPER:      # tampered numbers stop here, not mid-update
            value, default = meta[key], getattr(self, key, None)
            kind = bool if isinstance(default, bool) else int if key == "t" else float
            if kind is bool:
                ok = isinstance(value, bool)
            else:
                ok = (isinstance(value, (int, float)) and not isinstance(value, bool)
                      and abs(value) <= 2 ** 53 and math.isfinite(value) and value >= 0
                      and (kind is float or value == int(value)))
            if not ok:
                raise CheckpointError(f"The saved {self.NAME} optimizer's {key} is {value!r}, "
                                      f"not a usable {kind.__name__}.")
        for h in self.HYPER:
            setattr(self, h, meta[h])
        be = get_backend(backend)
        state = {}
        for name, a in arrays.items():
            slot, sep, key = name.partition("/")
            if not sep or slot not in self.slots():
                raise CheckpointError(f"The saved optimizer state has an unknown entry {name!r}.")
            state.setdefault(slot, {})[key] = be.asarray(a)
        self.lr, self.t, self.state = float(meta["lr"]), int(meta["t"]), state


class SGD(Optimizer):
    """p -= lr * v with v = momentum * v + g (PyTorch's form; plain SGD when momentum = 0).
    Nesterov: p -= lr * (g + momentum * v)."""

    NAME, SLOTS, HYPER = "sgd", ("velocity",), ("momentum", "nesterov")

    def __init__(self, lr, momentum=0.0, nesterov=False):
        super().__init__(lr)
        self.momentum = _check_fraction("momentum", momentum)
        self.nesterov = bool(nesterov)
        if self.nesterov and self.momentum == 0.0:
            raise ConfigError("Nesterov momentum needs a momentum greater than 0.")

    def slots(self):
        """Plain SGD keeps no state; with momentum, one velocity per parameter."""
        return self.SLOTS if self.momentum else ()

    def _update(self, xp, p, g, state, t, lr):
        if self.momentum == 0.0:
            p -= lr * g
            return
        v = state["velocity"]
        v *= self.momentum
        v += g                                           # v = mu v + g
        if self.nesterov:
            p -= lr * (g + self.momentum * v)
        else:
            p -= lr * v


class Adagrad(Optimizer):
    """min-char-rnn's: mem += g*g; p -= lr * g / sqrt(mem + eps)."""

    NAME, SLOTS, HYPER = "adagrad", ("mem",), ("eps",)

    def __init__(self, lr, eps=1e-8):
        super().__init__(lr)
        self.eps = positive_float("eps", eps)

    def _update(self, xp, p, g, state, t, lr):
        mem = state["mem"]
        mem += g * g
        p -= lr * g / xp.sqrt(mem + self.eps)


class RMSProp(Optimizer):
    """char-rnn's: ms = decay * ms + (1 - decay) * g*g; p -= lr * g / (sqrt(ms) + eps)."""

    NAME, SLOTS, HYPER = "rmsprop", ("ms",), ("decay", "eps")

    def __init__(self, lr, decay=0.95, eps=1e-8):
        super().__init__(lr)
        self.decay = _check_fraction("decay", decay)
        self.eps = positive_float("eps", eps)

    def _update(self, xp, p, g, state, t, lr):
        ms = state["ms"]
        ms *= self.decay
        ms += (1.0 - self.decay) * (g * g)
        p -= lr * g / (xp.sqrt(ms) + self.eps)


class Adam(Optimizer):
    """m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g*g;
    p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)."""

    NAME, SLOTS, HYPER = "adam", ("m", "v"), ("beta1", "beta2", "eps")

    def __init__(self, lr, beta1=0.9, beta2=0.999, eps=1e-8):
        super().__init__(lr)
        self.beta1 = _check_fraction("beta1", beta1)
        self.beta2 = _check_fraction("beta2", beta2)
        self.eps = positive_float("eps", eps)

    def _update(self, xp, p, g, state, t, lr):
        m, v = state["m"], state["v"]
        m *= self.beta1
        m += (1.0 - self.beta1) * g
        v *= self.beta2
        v += (1.0 - self.beta2) * (g * g)
        m_hat = m / (1.0 - self.beta1 ** t)
        v_hat = v / (1.0 - self.beta2 ** t)
        p -= lr * m_hat / (xp.sqrt(v_hat) + self.eps)


OPTIMIZERS = {cls.NAME: cls for cls in (SGD, Adagrad, RMSProp, Adam)}


def make_optimizer(name: str, lr, **hyper) -> Optimizer:
    """The optimizer called ``name`` (sgd, adagrad, rmsprop, adam) with learning rate ``lr``."""
    key = str(name).strip().lower()
    if key not in OPTIMIZERS:
        raise ConfigError(f"Unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}.")
    try:
        return OPTIMIZERS[key](lr, **hyper)
    except TypeError as exc:
        if isinstance(exc, ConfigError):         # a value of the wrong kind, named by its check
            raise
        raise ConfigError(f"The {key} optimizer does not take the option(s) "
                          f"{', '.join(sorted(hyper))}.") from None


# --------------------------------------------------------------- learning-rate decay
class LRSchedule:
    """char-rnn's decay: after ``decay_after`` whole epochs, multiply the learning rate
    by ``decay_rate`` at the end of every further epoch.

    ``lr_at(epochs_done) = base_lr * decay_rate ** max(0, epochs_done - decay_after)``; it
    depends only on the count of finished epochs, so a resumed run needs no extra state.
    """

    def __init__(self, base_lr, decay_rate=1.0, decay_after=0):
        self.base_lr = positive_float("lr", base_lr)
        self.decay_rate = positive_float("decay_rate", decay_rate)
        if self.decay_rate > 1.0:
            raise ConfigError(f"decay_rate must be in (0, 1], got {decay_rate!r}.")
        if isinstance(decay_after, bool) or not isinstance(decay_after, int) or decay_after < 0:
            raise ConfigError(f"decay_after must be a non-negative integer, got {decay_after!r}.")
        self.decay_after = decay_after

    def lr_at(self, epochs_done: int) -> float:
        """The learning rate once ``epochs_done`` epochs have finished."""
        return self.base_lr * self.decay_rate ** max(0, int(epochs_done) - self.decay_after)

    def apply(self, optimizer: Optimizer, epochs_done: int) -> float:
        """Set ``optimizer.lr`` for the epoch after ``epochs_done`` finished ones; returns it."""
        optimizer.lr = self.lr_at(epochs_done)
        return optimizer.lr


# ----------------------------------------------------------------------- clipping
def global_grad_norm_array(grads: dict):
    """sqrt(sum over every array of sum(g*g)), accumulated in float64, as a 0-d float64
    array on the gradients' device (nothing is read back to the host)."""
    total = 0.0
    for g in grads.values():
        # squares in g's dtype, summed in float64 (no float64 copy of every gradient)
        total = total + (g * g).sum(dtype=backend_of(g).xp.float64)
    return backend_of(total).xp.sqrt(total)


def global_grad_norm(grads: dict) -> float:
    """The global gradient norm (``global_grad_norm_array``) as a Python float."""
    return float(global_grad_norm_array(grads))


def clip_grad_norm(grads: dict, max_norm) -> float:
    """Scale every gradient in place by max_norm / norm when the global norm exceeds
    ``max_norm``; returns the norm before clipping (inf or nan are returned as they are,
    without scaling, so the caller can see the step diverged)."""
    max_norm = positive_float("max_norm", max_norm)
    norm = global_grad_norm(grads)
    if math.isfinite(norm) and norm > max_norm:
        scale = max_norm / norm
        for g in grads.values():
            g *= scale
    return norm


def clip_grad_norm_on_device(grads: dict, max_norm):
    """``clip_grad_norm`` without reading the norm back: the same scale, max_norm / norm
    when the norm is finite and above ``max_norm`` and 1 otherwise, is chosen on the
    device and multiplies every gradient (by exactly 1 when there is nothing to clip).
    Returns the norm before clipping as a 0-d float64 device array."""
    max_norm = positive_float("max_norm", max_norm)
    norm = global_grad_norm_array(grads)
    xp = backend_of(norm).xp
    # max_norm / max(norm, max_norm) is max_norm / norm above the limit and exactly 1 at or
    # below it (no division by a zero norm); a non-finite norm leaves the gradients as they are
    scale = xp.where(xp.isfinite(norm), max_norm / xp.maximum(norm, max_norm), 1.0)
    for g in grads.values():
        g *= scale.astype(g.dtype)
    return norm


def clip_grad_value(grads: dict, clip) -> None:
    """Clamp every gradient element into [-clip, clip], in place."""
    clip = positive_float("clip", clip)
    for g in grads.values():
        backend_of(g).xp.clip(g, -clip, clip, out=g)
