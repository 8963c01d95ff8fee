"""The training step for a GPU: ``train.train_step`` with nothing read back to the host.

``train.train_step`` is the book's step. It reads the loss to the host, to refuse a NaN
before the update, and ``clip_grad_norm`` reads the gradient norm, to decide whether to
clip. On a GPU each read waits until every queued kernel has run, so the CPU stops
queueing work while the GPU drains. And a step with a read cannot be captured as a CUDA
graph, the way to launch a whole step at once. This engine runs the same four lines
with each decision moved onto the device:

    loss  = model.loss_array(x, y)                # a 0-d array on the device
    grads = model.backward()
    grads = clip_grad_norm_on_device(grads)       # scale chosen on the device (1: no clip)
    optimizer.update_all(params, grads, t, lr)    # t, lr: 0-d device arrays

The step count ``t`` and the learning rate ``lr`` live on the device too, in the
parameters' dtype. A replayed graph then reads their current values, not the ones
from when it was captured. The caller reads the loss once, after the step.

One difference from the book's step: a non-finite loss is seen only after the update.
The runner then stops the run with TrainingDiverged and saves nothing more, so the
checkpoints on disk are untouched, as with the book's step; the weights in memory are not.

Tested equal to ``train.train_step`` and free of host reads on the CPU, against the
NumPy stand-in for CuPy (tests/engines/test_device_step.py).
"""
from __future__ import annotations

from scratchrnn.book.optim import clip_grad_norm_on_device, clip_grad_value


class DeviceStep:
    """``step(batch, state, grad_clip, clip_value)`` for ``model`` and ``optimizer``,
    with the signature and result of ``train.train_step`` except that the loss is a 0-d
    array on the device. ``optimizer.t`` is advanced as by ``optimizer.step``."""

    def __init__(self, model, optimizer):
        self.model, self.optimizer = model, optimizer
        dtype = next(iter(model.params.values())).dtype
        self._t = model.xp.zeros((), dtype)        # the step count, on the device
        self._lr = model.xp.zeros((), dtype)       # the learning rate, on the device
        self._t_host, self._lr_host = None, None   # what was last written into them

    def _sync_counters(self):
        """Write t and lr to the device when the host's values changed (a resume, a
        learning-rate decay): a host-to-device fill, never a read."""
        opt = self.optimizer
        if opt.t != self._t_host:
            self._t.fill(opt.t)
            self._t_host = opt.t
        if opt.lr != self._lr_host:
            self._lr.fill(opt.lr)
            self._lr_host = opt.lr

    def __call__(self, batch, state, grad_clip=0.0, clip_value=0.0):
        """batch: ``x``, ``y`` (T, B) int and ``mask`` (T, B) or None.  state: as
        ``model.initial_state``.  Returns (loss as a 0-d device array, the next state)."""
        model, opt = self.model, self.optimizer
        self._sync_counters()
        model.zero_grad()
        loss, state = model.loss_array(batch.x, batch.y, state, batch.mask)
        model.backward()
        if clip_value:
            clip_grad_value(model.grads, clip_value)
        if grad_clip:
            clip_grad_norm_on_device(model.grads, grad_clip)
        self._t += 1                                       # t on the device ...
        opt.t += 1                                         # ... and its host copy
        self._t_host = opt.t
        opt.update_all(model.params, model.grads, self._t, self._lr)
        return loss, state
