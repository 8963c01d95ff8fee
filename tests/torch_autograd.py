"""The comparison every PyTorch-parity test makes: one forward and backward of a scratchrnn layer
against autograd through the torch module that holds the same weights. Import it only where
torch is installed (after ``pytest.importorskip("torch")``)."""
from __future__ import annotations

import torch

from scratchrnn.book.gradcheck import rel_error
from scratchrnn.interop import to_torch_state_dict


def assert_matches_torch_autograd(layer, module, x, states0, dy, dstatesT, tol, engine_scope):
    """Run ``layer`` (inside the context manager ``engine_scope``) and ``module`` on the same
    host arrays and compare y, the final states, dx, the initial-state gradients and every
    weight gradient by relative error; fails naming each one not below ``tol``, or whose shape
    differs.

    x: (T, B, I), or (B, T, I) for a batch-first layer; dy: like the output y.
    states0, dstatesT: [h] or, for an LSTM, [h, c], each (L·D, B, H) (D = 2 when bidirectional).
    """
    lstm = len(states0) == 2
    pack = (lambda s: tuple(s)) if lstm else (lambda s: s[0])     # noqa: E731

    tx = torch.tensor(x, requires_grad=True)
    ts0 = [torch.tensor(s, requires_grad=True) for s in states0]
    ty, tsT = module(tx, pack(ts0))
    tsT = list(tsT) if lstm else [tsT]
    loss = (ty * torch.tensor(dy)).sum()
    for s, d in zip(tsT, dstatesT):
        loss = loss + (s * torch.tensor(d)).sum()
    loss.backward()

    be = layer.backend
    with engine_scope:
        y, sT = layer.forward(be.asarray(x), pack([be.asarray(s) for s in states0]))
        dx, ds0 = layer.backward(be.asarray(dy), pack([be.asarray(d) for d in dstatesT]))
    sT, ds0 = (list(sT), list(ds0)) if lstm else ([sT], [ds0])

    pairs = {"y": (y, ty), "dx": (dx, tx.grad)}
    for name, ours, theirs in zip("hc", sT, tsT):
        pairs[f"{name}T"] = (ours, theirs)
    for name, ours, theirs in zip("hc", ds0, ts0):
        pairs[f"d{name}0"] = (ours, theirs.grad)
    grads = to_torch_state_dict(layer, grads=True)
    assert set(grads) == {n for n, _ in module.named_parameters()}
    for name, p in module.named_parameters():
        pairs[name] = (grads[name], p.grad)
    errors = {k: rel_error(be.asnumpy(a), b.detach().numpy()) for k, (a, b) in pairs.items()}
    bad = {k: v for k, v in errors.items() if not v < tol}
    assert not bad, f"errors above {tol:g}: {bad}"
    for name, (a, b) in pairs.items():
        assert tuple(a.shape) == tuple(b.shape), name
