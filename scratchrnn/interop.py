"""PyTorch layout <-> scratchrnn, weights and gradients (torch is optional).

    layer = from_torch(nn.LSTM(8, 16, num_layers=2))        # same weights, same outputs
    sd = to_torch_state_dict(layer)                          # {"weight_ih_l0": (4H, I), ...}
    module.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()})

The two layouts differ only by a transpose: PyTorch keeps ``weight_ih_l{k}`` as
(G*H, I) and computes ``x W^T``; scratchrnn keeps ``W_x`` (I, G*H) and computes
``x W_x``. Gate orders (LSTM i, f, g, o; GRU r, z, n) and the two biases are the
same, so biases copy as they are:

    weight_ih_l{k} = W_x.T    weight_hh_l{k} = W_h.T    bias_ih_l{k} = b_x    bias_hh_l{k} = b_h

A bidirectional layer's reverse direction has the same names with ``_reverse`` on both
sides: ``l{k}_reverse.W_x`` <-> ``weight_ih_l{k}_reverse``.

torch is imported inside ``from_torch`` only; this module (and the package) imports
without it, and ``from_torch`` without torch says how to install it.
"""
from __future__ import annotations

from scratchrnn.blocks.layers import DIRECTIONS, GRU, LSTM, RNN
from scratchrnn.core.backend import CPU
from scratchrnn.core.errors import ConfigError, ShapeError

INSTALL_TORCH = ("from_torch needs PyTorch, which is not installed; install it with "
                 "pip install 'scratchrnn[torch]'.")

numpy = CPU.xp   # host NumPy, through the backend seam

# scratchrnn name -> (PyTorch name pattern, transposed?)
_TORCH_NAMES = {
    "W_x": ("weight_ih_l{k}", True),
    "W_h": ("weight_hh_l{k}", True),
    "b_x": ("bias_ih_l{k}", False),
    "b_h": ("bias_hh_l{k}", False),
}


def _layer_class(module):
    """The scratchrnn class matching a torch recurrent module, or ConfigError."""
    from torch import nn
    for torch_cls, cls in ((nn.LSTM, LSTM), (nn.GRU, GRU), (nn.RNN, RNN)):
        if isinstance(module, torch_cls):
            return cls
    raise ConfigError("from_torch needs an nn.RNN, nn.GRU or nn.LSTM, "
                      f"got {type(module).__name__}.")


def from_torch(module, backend=None, dtype=None):
    """Build the scratchrnn layer equivalent to a PyTorch ``nn.RNN``/``nn.GRU``/``nn.LSTM``.

    Copies the weights (transposed, see the module doc), num_layers, batch_first,
    bidirectional, dropout, the RNN nonlinearity and the training/eval mode. ``dtype``
    defaults to the module's (float32 or float64). Raises ConfigError for what
    scratchrnn does not implement: bias=False, proj_size > 0, or a dtype that is not
    float32/float64; and ImportError saying how to install torch when it is missing.
    """
    try:
        import torch  # optional dependency, needed only here
    except ImportError:
        raise ImportError(INSTALL_TORCH) from None

    cls = _layer_class(module)
    if not module.bias:
        raise ConfigError("from_torch needs bias=True: scratchrnn layers always have both biases.")
    if getattr(module, "proj_size", 0):
        raise ConfigError("LSTM with proj_size > 0 is not supported by scratchrnn.")
    if dtype is None:
        torch_dtype = module.weight_ih_l0.dtype
        if torch_dtype not in (torch.float32, torch.float64):
            raise ConfigError("from_torch supports float32 and float64 modules, "
                              f"got {torch_dtype}; pass dtype= to convert.")
        dtype = "float64" if torch_dtype == torch.float64 else "float32"
    options = {"nonlinearity": module.nonlinearity} if cls is RNN else {}
    layer = cls(module.input_size, module.hidden_size, num_layers=module.num_layers,
                dropout=float(module.dropout), batch_first=module.batch_first,
                bidirectional=bool(module.bidirectional), backend=backend, dtype=dtype, **options)
    layer.train(module.training)
    with torch.no_grad():
        for ours, theirs, transposed in _name_pairs(layer):
            value = getattr(module, theirs).detach().cpu().double().numpy()
            target = layer.params[ours]
            want = tuple(target.shape[::-1]) if transposed else tuple(target.shape)
            if value.shape != want:
                raise ShapeError(f"from_torch: the module's {theirs} has shape "
                                 f"{tuple(value.shape)}, but a {type(module).__name__} of "
                                 f"input_size={module.input_size}, hidden_size={module.hidden_size} "
                                 f"needs {want}; its weights were replaced by ones of another size.")
            target[...] = layer.backend.asarray(value.T if transposed else value, dtype=layer.dtype)
    return layer


def to_torch_state_dict(layer, grads=False) -> dict:
    """The layer's weights (or, with ``grads=True``, its accumulated ``.grads``) under
    PyTorch's names and layouts, as host numpy arrays (contiguous copies).

    Load into torch with ``module.load_state_dict({k: torch.from_numpy(v) ...})``.
    """
    source = layer.grads if grads else layer.params
    out = {}
    for ours, theirs, transposed in _name_pairs(layer):
        a = layer.backend.asnumpy(source[ours])
        out[theirs] = numpy.ascontiguousarray(a.T if transposed else a).copy()
    return out


def _name_pairs(layer):
    """(our key, PyTorch's name, transposed?) for every parameter of ``layer``, in
    PyTorch's order: layer by layer, the forward direction then the reverse one."""
    for k in range(layer.num_layers):
        for suffix in DIRECTIONS[:getattr(layer, "num_directions", 1)]:
            for name, (pattern, transposed) in _TORCH_NAMES.items():
                yield f"l{k}{suffix}.{name}", pattern.format(k=k) + suffix, transposed
