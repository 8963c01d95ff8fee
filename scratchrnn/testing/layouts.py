"""Parameter layouts: the project's and PyTorch's, and the gate blocks of each.

scratchrnn (the book):   W_x (I, G*H)   W_h (H, G*H)   b_x (G*H,)   b_h (G*H,)
PyTorch (``nn.LSTM``):   weight_ih_l0 (G*H, I)   weight_hh_l0 (G*H, H)   bias_ih_l0, bias_hh_l0

The gate order is the same in both (PyTorch's): LSTM i, f, g, o; GRU r, z, n; RNN one block.
A stack of L layers names its arrays ``l0.W_x`` ... ``l{L-1}.b_h`` (the layer classes) or
``weight_ih_l0`` ... ``bias_hh_l{L-1}`` (PyTorch). One step of one layer uses the plain
names ``W_x`` ... (scratchrnn) or the layer-0 names ``weight_ih_l0`` ... (PyTorch).
"""
from __future__ import annotations

LAYOUTS = ("scratchrnn", "torch")
CELL_KINDS = ("rnn", "gru", "lstm")
GATES = {"rnn": (), "gru": ("r", "z", "n"), "lstm": ("i", "f", "g", "o")}
N_GATES = {"rnn": 1, "gru": 3, "lstm": 4}
BOOK_NAMES = ("W_x", "W_h", "b_x", "b_h")
TORCH_NAMES = {"W_x": "weight_ih", "W_h": "weight_hh", "b_x": "bias_ih", "b_h": "bias_hh"}


def check_names(cell, layout):
    """ValueError for an unknown cell kind or layout."""
    if cell not in CELL_KINDS:
        raise ValueError(f"cell must be one of {', '.join(CELL_KINDS)}, not {cell!r}.")
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, not {layout!r}.")


def user_name(book_name, layer, layout, stacked):
    """The user's name of the book's array ``book_name`` of layer ``layer``."""
    if layout == "torch":
        return f"{TORCH_NAMES[book_name]}_l{layer}"
    return f"l{layer}.{book_name}" if stacked else book_name


def to_user_layout(layers, layout, stacked):
    """Book-layout dicts, one per layer -> one dict in ``layout`` (torch transposes weights)."""
    out = {}
    for k, params in enumerate(layers):
        for name in BOOK_NAMES:
            a = params[name]
            out[user_name(name, k, layout, stacked)] = a.T.copy() if layout == "torch" else a
    return out


def to_book_layout(params, num_layers, layout, stacked):
    """The inverse of ``to_user_layout``: one book-layout dict per layer."""
    layers = []
    for k in range(num_layers):
        d = {}
        for name in BOOK_NAMES:
            a = params[user_name(name, k, layout, stacked)]
            d[name] = a.T.copy() if layout == "torch" else a
        layers.append(d)
    return layers


def gate_blocks(name, array, cell, layout):
    """[(label, block)]: ``array`` cut along its gate axis into the cell's gate blocks
    ("W_x[f]" ...); one ``(name, array)`` for the RNN or for arrays without gates."""
    gates = GATES[cell]
    axis = 0 if (layout == "torch" or array.ndim == 1) else array.ndim - 1
    if not gates or array.ndim == 0 or array.shape[axis] % len(gates):
        return [(name, array)]
    H = array.shape[axis] // len(gates)
    index = lambda k: (slice(None),) * axis + (slice(k * H, (k + 1) * H),)  # noqa: E731
    return [(f"{name}[{g}]", array[index(k)]) for k, g in enumerate(gates)]
