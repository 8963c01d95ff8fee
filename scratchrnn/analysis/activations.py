"""Every internal value of a trained model over a long text, from one stateful forward pass.

    acts = collect(model, ids)                 # ids (N,) int, the analysed text
    acts[0]["h"]          # (N, H) hidden state of layer 0 after reading each character
    acts[1]["f"]          # (N, H) forget gate of layer 1 (LSTM)
    acts.next_logp        # (N-1,) ln P(ids[t] | ids[:t]) for t = 1..N-1
    sat = gate_saturation(acts)                # for plots.gate_saturation_scatter

The pass is the model's own hand-written forward, run with batch 1 over windows of
``chunk`` steps with the state carried from one window to the next, so the result is the
same as one forward over the whole text (tested) while no window's cache grows with N.
After each window the per-layer caches the cells keep for backward (``model.rnn.caches``:
``hs``, ``cs``, ``gates`` ...) are copied out to host arrays; the next window overwrites
them.

What each layer's dict holds, every array (N, H) on the host in the model's dtype:

    RNN   h
    GRU   h, r, z, n                 (gates in PyTorch's order, ``cells/gru.py``)
    LSTM  h, c, i, f, g, o           (``cells/lstm.py``)
"""
from __future__ import annotations

from dataclasses import dataclass

from scratchrnn.book import ops
from scratchrnn.core.backend import CPU, backend_of
from scratchrnn.core.errors import DataError
from scratchrnn.core.validation import positive_int

np = CPU.xp

GATE_NAMES = {"rnn": (), "gru": ("r", "z", "n"), "lstm": ("i", "f", "g", "o")}
"""The gates of each cell, in the order they sit in the fused (T, B, G*H) gate buffer."""

SIGMOID_GATES = {"rnn": (), "gru": ("r", "z"), "lstm": ("i", "f", "o")}
"""The gates that are sigmoids (values in (0, 1)), whose saturation the paper measures."""

LEFT, RIGHT = 0.1, 0.9
"""A sigmoid gate is left-saturated below LEFT and right-saturated above RIGHT (the paper's 0.1/0.9)."""


@dataclass
class Activations:
    """What ``collect`` returns.

    cell:      "rnn", "gru" or "lstm".
    layers:    one dict per layer (index = layer, 0 at the bottom): name -> (N, H) host array.
    next_logp: (N-1,) float64, ln P(ids[t] | ids[:t]) for t = 1..N-1 (the model's log-probability
               of each next character, for the n-gram comparison).
    state:     the recurrent state after the last character (backend arrays, as ``model.forward``).
    """

    cell: str
    layers: list
    next_logp: object
    state: object

    def __getitem__(self, layer):
        return self.layers[layer]

    def __len__(self):
        return len(self.layers)

    @property
    def num_steps(self):
        return int(self.layers[0]["h"].shape[0])

    def names(self):
        """The names each layer holds, e.g. ("h", "c", "i", "f", "g", "o")."""
        return tuple(self.layers[0])


def _names(cell):
    return ("h", "c") + GATE_NAMES[cell] if cell == "lstm" else ("h",) + GATE_NAMES[cell]


def collect(model, ids, chunk=256, state=None, gates=True):
    """Run ``model`` (a CharLM) over ids (N,) int in windows of ``chunk`` steps, batch 1.

    state: the state to start from (None: zeros). gates: keep the gates too (False keeps
    h, and c for LSTM, only). The model runs in evaluation mode (no dropout); its mode is
    restored afterwards. Returns ``Activations``.
    """
    backend = model.backend
    ids = np.asarray(backend_of(ids).asnumpy(ids)).reshape(-1)
    if ids.size < 1:
        raise DataError("There is no text to analyse.")
    if ids.dtype.kind not in "iu":
        raise DataError("The ids to analyse must be integers.")
    if int(ids.min()) < 0 or int(ids.max()) >= model.vocab_size:
        raise DataError(f"The ids must lie in 0..{model.vocab_size - 1} (the model's vocabulary).")
    chunk = positive_int("chunk", chunk)
    cell = model.config["cell"]
    names = _names(cell) if gates else _names(cell)[:2 if cell == "lstm" else 1]
    N, H, L = ids.size, model.config["hidden_size"], model.config["num_layers"]
    dtype = np.dtype(model.rnn.dtype.name)
    layers = [{name: np.empty((N, H), dtype) for name in names} for _ in range(L)]
    next_logp = np.empty(N - 1, np.float64)
    was_training = model.rnn.training
    model.eval()
    try:
        if state is None:
            state = model.initial_state(1)
        for start in range(0, N, chunk):
            stop = min(start + chunk, N)
            window = backend.asarray(ids[start:stop].reshape(-1, 1))
            logits, state = model.forward(window, state)                  # (T, 1, V)
            for k, cache in enumerate(model.rnn.caches):
                _copy_cache(cell, cache, layers[k], start, stop, H, backend)
            logp = backend.asnumpy(ops.log_softmax(logits[:, 0, :]))      # (T, V)
            # position s of this window predicts ids[start + s + 1]
            t = np.arange(start, min(stop, N - 1))
            next_logp[t] = logp[t - start, ids[t + 1]]
    finally:
        model.train(was_training)
    return Activations(cell, layers, next_logp, state)


def _copy_cache(cell, cache, out, start, stop, H, backend):
    """Copy one window's cache (batch column 0) into the host arrays of ``out``."""
    out["h"][start:stop] = backend.asnumpy(cache.hs[:, 0, :])
    if cell == "lstm" and "c" in out:
        out["c"][start:stop] = backend.asnumpy(cache.cs[:, 0, :])
    gate_names = [g for g in GATE_NAMES[cell] if g in out]
    if gate_names:
        gates = backend.asnumpy(cache.gates[:, 0, :])                    # (T, G*H)
        for g, name in enumerate(GATE_NAMES[cell]):
            if name in out:
                out[name][start:stop] = gates[:, g * H:(g + 1) * H]


def gate_saturation(acts, left=LEFT, right=RIGHT):
    """The paper's gate statistics over every step of the analysed text.

    Returns gate name -> (left_frac (U,), right_frac (U,), layer_ids (U,)), U = H units per
    layer times the layers, for every sigmoid gate of the cell (LSTM i, f, o; GRU r, z):
    left_frac is the fraction of steps at which the unit's gate is < ``left``, right_frac
    the fraction > ``right``. This is the input of ``plots.gate_saturation_scatter``.
    An RNN has no gates: the dict is empty.
    """
    out = {}
    for gate in SIGMOID_GATES[acts.cell]:
        lefts, rights, layer_ids = [], [], []
        for k, layer in enumerate(acts.layers):
            if gate not in layer:
                continue
            g = layer[gate]
            lefts.append((g < left).mean(axis=0))
            rights.append((g > right).mean(axis=0))
            layer_ids.append(np.full(g.shape[1], k, dtype=np.int64))
        if lefts:
            out[gate] = (np.concatenate(lefts), np.concatenate(rights), np.concatenate(layer_ids))
    return out


def saturation_summary(sat):
    """Rows for a table: per gate and layer, the mean left/right fractions and how many units
    are saturated more than half the time on either side."""
    rows = []
    for gate, (left, right, layer) in sat.items():
        for k in np.unique(layer):
            sel = layer == k
            rows.append({"gate": gate, "layer": int(k) + 1, "units": int(sel.sum()),
                         "mean left (<0.1)": float(left[sel].mean()),
                         "mean right (>0.9)": float(right[sel].mean()),
                         "units mostly left": int((left[sel] > 0.5).sum()),
                         "units mostly right": int((right[sel] > 0.5).sum())})
    return rows
