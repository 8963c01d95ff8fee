"""A layer stack (``RNN``/``GRU``/``LSTM``) run one time step at a time, its state carried.

The layer classes run a whole given input sequence as one scan. Some loops cannot:
when the input of step t+1 is the model's own output at step t (free running), or
when something between the layers changes every step (attention). They step the
cells here, through the same weights and gradient buffers as the layer object::

    states = split_state(layer, layer.zero_state(B))        # one cell state per layer
    h, states, caches = stack_step_forward(layer, x_t, states)     # x_t (B, I) -> h (B, H)
    ...
    dx_t, dstates = stack_step_backward(layer, dh, dstates, caches)  # adds into layer.grads

A cell state is ``h`` (B, H), or the pair ``(h, c)`` for LSTM. ``split_state`` and
``join_state`` convert between the layer's stacked form, ``h`` (L, B, H) or
``(h, c)``, and a list of per-layer cell states. Dropout between layers is not
applied here: ``check_steppable`` refuses a layer that would need it.
"""
from __future__ import annotations

from scratchrnn.core.errors import ConfigError


def check_steppable(layer):
    """Raise ConfigError for what step-by-step running does not support."""
    if layer.training and layer.dropout > 0.0:
        raise ConfigError("stepping a layer one step at a time does not apply dropout; "
                          "build it with dropout=0 or call .eval() first.")
    if layer.batch_first:
        raise ConfigError("stepping needs a time-major layer; build it with batch_first=False.")
    if getattr(layer, "bidirectional", False):
        raise ConfigError("a bidirectional layer needs the whole sequence before its first "
                          "output, so it cannot be run one step at a time.")


def has_cell_state(layer):
    """True for LSTM, whose state is the pair (h, c)."""
    return bool(layer.cell.HAS_CELL_STATE)


def split_state(layer, state):
    """Stacked state h (L, B, H) or (h, c) -> list of L cell states, h (B, H) or (h, c)."""
    return [layer.state_of_layer(state, k) for k in range(layer.num_layers)]


def join_state(layer, states):
    """List of L cell states -> stacked h (L, B, H), or (h, c) for LSTM."""
    return layer.stack_layers(states)


def initial_cell_states(layer, state, batch_size, what="initial state"):
    """A user state (stacked, or None for zeros) -> validated list of per-layer states.

    Validation is the layer's own (ShapeError naming ``what``)."""
    return split_state(layer, layer.as_state(state, batch_size, what))


def stack_step_forward(layer, x, states):
    """One time step through every layer of ``layer``.

    x: (B, I).  states: list of L cell states (h (B, H), or (h, c) for LSTM).
    Returns h of the top layer (B, H), the new list of states, and the list of the
    L cells' StepCaches (what ``stack_step_backward`` needs).
    """
    options = layer.cell_options
    new_states, caches = [], []
    for k in range(layer.num_layers):
        x, state, cache = layer.cell.step_forward(layer.layer_params(k), x, states[k], **options)
        new_states.append(state)
        caches.append(cache)
    return x, new_states, caches


def stack_step_backward(layer, dh, dstates, caches):
    """Undo one ``stack_step_forward``, top layer first; adds into ``layer.grads``.

    dh: (B, H) dL/d(top layer's output h) at this step, from above (a head, attention).
    dstates: list of L gradients at the states this step produced (from step t+1),
        dh (B, H) or (dh, dc) for LSTM; None means zeros (the last step).
    caches: the list ``stack_step_forward`` returned.
    Returns dx (B, I) and the list of L gradients at the states that entered the step.
    """
    options = layer.cell_options
    if dstates is None:
        dstates = zero_like_states(layer, caches)
    dstates_prev = [None] * layer.num_layers
    for k in reversed(range(layer.num_layers)):
        dh, dstates_prev[k], grads = layer.cell.step_backward(     # undo layer k's cell step
            layer.layer_params(k), dh, dstates[k], caches[k], **options)
        for name, g in grads.items():
            layer.grads[f"l{k}.{name}"] += g
    return dh, dstates_prev


def zero_like_states(layer, caches):
    """Zero state gradients shaped like the states of the step that made ``caches``."""
    xp = layer.xp
    zeros = [xp.zeros_like(c.h_prev) for c in caches]
    if has_cell_state(layer):
        return [(z, xp.zeros_like(z)) for z in zeros]
    return zeros
