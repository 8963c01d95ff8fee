"""What every part with parameters shares, as in PyTorch: a training/evaluation mode and
zeroing its gradients. A subclass holds ``grads`` ({name: array}, one per parameter) and
overrides ``train`` where the mode must reach the parts it holds."""
from __future__ import annotations


class Module:
    def train(self, mode=True):
        """Training mode (dropout on) or, with ``mode=False``, evaluation mode; returns self."""
        self.training = bool(mode)
        return self

    def eval(self):
        return self.train(False)

    def zero_grad(self):
        """Set every gradient array to zero in place (the next backward pass accumulates)."""
        for g in self.grads.values():
            g[...] = 0

    def gather(self, parts):
        """Flat ``params``/``grads`` dicts over ``parts``, a list of (prefix, part): the
        part's own arrays (not copies) under "prefix.name"."""
        self.params, self.grads = {}, {}
        for prefix, part in parts:
            self.params.update({f"{prefix}.{k}": v for k, v in part.params.items()})
            self.grads.update({f"{prefix}.{k}": v for k, v in part.grads.items()})
