"""How much memory a run needs, checked before anything is allocated."""
from __future__ import annotations

import os

from scratchrnn.core.backend import CPU
from scratchrnn.core.errors import ConfigError
from scratchrnn.lm.saved import parameter_bytes


def memory_estimate(config, optimizer, batch_size, seq_len):
    """Bytes a run of the model ``config`` needs, roughly: parameters, gradients and the
    optimizer's state (2 slots for Adam, 1 for the others, none for plain SGD), plus the
    activations of one window (T, B, G·H per layer, and the (T·B, V) logits)."""
    params = parameter_bytes(config)
    slots = {"adam": 2, "sgd": 1}.get(optimizer, 1)
    itemsize = CPU.xp.dtype(config["dtype"]).itemsize
    H, L, V = config["hidden_size"], config["num_layers"], config["vocab_size"]
    activations = seq_len * batch_size * (6 * H * L + 3 * V) * itemsize
    return params * (2 + slots) + activations


def _available_memory():
    """Bytes of memory this machine has free (or in all), or None where it cannot tell."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _gib(n):
    return f"{n / 2**30:,.1f} GiB"


def check_memory(config, optimizer, batch_size, seq_len):
    """ConfigError (one sentence) when ``memory_estimate`` exceeds what the machine has.

    config: the model's config (vocab_size, cell, hidden_size, num_layers, embedding_size, dtype).
    """
    need, have = memory_estimate(config, optimizer, batch_size, seq_len), _available_memory()
    if have is not None and need > have:
        raise ConfigError(f"This model would need about {_gib(need)} of memory (parameters, "
                          f"gradients, optimizer state and one window's activations) but "
                          f"{_gib(have)} is available; choose smaller sizes (--rnn-size, "
                          f"--embedding-size, --num-layers, --batch-size, --seq-length).")
