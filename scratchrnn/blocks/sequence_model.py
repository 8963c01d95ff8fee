"""A sequence model from parts: [embedding or one-hot] -> recurrent stack -> head -> loss.

    model = SequenceModel.for_tokens(vocab_size=V, cell="rnn", hidden_size=64,
                                     embedding_size=16, return_sequences=False, seed=0)
    loss, _ = model.loss(ids, targets)     # ids (T, B) int; targets (B,) many-to-one
    model.backward()                       # adds into model.grads
    optimizer.step(model.params, model.grads)

The road of one batch::

    ids (T, B) --embed--> x (T, B, E) --rnn--> hs (T, B, H) --head--> out (B, O) or (T, B, O)
        --loss (softmax cross-entropy or MSE) vs targets--> loss

Without an embedding the input is already a (T, B, I) array. ``stateful=True`` carries
the final state of one call into the next (as Keras's ``stateful=True``): the state is
taken as a constant (docs/derivations.md, section 5), so no gradient crosses calls;
``reset_state()`` starts again from zeros. Stateless (the default) starts every call
from zeros unless a state is passed.
"""
from __future__ import annotations

from scratchrnn.blocks.attention import AttentionLSTM
from scratchrnn.blocks.embedding import Embedding, OneHot
from scratchrnn.blocks.heads import LOSSES, Head
from scratchrnn.blocks.layers import layer_class
from scratchrnn.blocks.module import Module
from scratchrnn.core.backend import host_rng
from scratchrnn.core.errors import ConfigError
from scratchrnn.core.validation import int_at_least, positive_int


class SequenceModel(Module):
    """embed (optional) -> rnn -> head -> loss, with flat ``params``/``grads`` dicts.

    rnn: a ``scratchrnn.RNN``/``GRU``/``LSTM`` (time-major) or an ``attention.AttentionLSTM``.
    head: a ``heads.Head``.
    loss: "cross_entropy" (targets int class ids) or "mse" (targets real).
    embed: ``embedding.Embedding``/``OneHot`` for integer inputs, or None for vectors.
    stateful: carry the final state from one call to the next (see the module doc).
    Keys: "embed.W" (with an Embedding), "rnn.l0.W_x", ..., "head.W", "head.b".
    """

    def __init__(self, rnn, head, loss="cross_entropy", embed=None, stateful=False):
        if loss not in LOSSES:
            raise ConfigError(f"Unknown loss {loss!r}; choose one of {', '.join(LOSSES)}.")
        if head.hidden_size != rnn.hidden_size:
            raise ConfigError(f"the head reads {head.hidden_size} units but the layer has "
                              f"{rnn.hidden_size}.")
        if rnn.batch_first:
            raise ConfigError("SequenceModel needs a time-major layer (batch_first=False).")
        if getattr(rnn, "bidirectional", False):
            raise ConfigError("SequenceModel's heads and stateful carrying read one direction "
                              "of H units, so it does not take a bidirectional layer.")
        self.rnn, self.head, self.embed = rnn, head, embed
        self.loss_name, self.stateful = loss, bool(stateful)
        self.xp, self.dtype = rnn.xp, rnn.dtype
        parts = [("rnn", rnn), ("head", head)] + ([("embed", embed)] if embed is not None else [])
        self.gather(parts)
        self.state = None            # the carried state when stateful
        self._dout = None

    @classmethod
    def for_tokens(cls, vocab_size, cell="rnn", hidden_size=64, num_layers=1, embedding_size=0,
                   return_sequences=True, stateful=False, attn_length=None, backend=None,
                   dtype="float32", seed=None, **layer_options):
        """A next-token classifier over V token ids: one-hot (embedding_size=0) or a learned
        embedding of that size, the recurrent stack, a head onto V classes, cross-entropy.

        attn_length: K for an ``attention.AttentionLSTM`` (cell must be "lstm"): the top
            layer attends over its last K outputs; None for a plain stack.
        layer_options go to the layer class (e.g. nonlinearity="relu", identity_init=True
        for an IRNN, forget_bias=1.0 for an LSTM, attn_vec_size with attention).
        """
        layer = layer_class(cell)
        V = positive_int("vocab_size", vocab_size)
        E = int_at_least("embedding_size", embedding_size, 0)
        if attn_length is not None:
            if cell != "lstm":
                raise ConfigError(f"attention is built on the LSTM; got cell {cell!r}.")
            rnn = AttentionLSTM(E or V, hidden_size, num_layers, attn_length=attn_length,
                                backend=backend, dtype=dtype, seed=seed, **layer_options)
        else:
            rnn = layer(E or V, hidden_size, num_layers, backend=backend, dtype=dtype,
                               seed=seed, **layer_options)
        rng = host_rng(None if seed is None else seed + 1)
        embed = (Embedding(V, E, rng, rnn.backend, rnn.dtype) if E
                 else OneHot(V, rnn.backend, rnn.dtype))
        head = Head(hidden_size, V, return_sequences=return_sequences, backend=rnn.backend,
                    dtype=rnn.dtype, seed=None if seed is None else seed + 2)
        return cls(rnn, head, "cross_entropy", embed, stateful)

    # ---- modes, grads, state
    def train(self, mode=True):
        self.rnn.train(mode)
        return self

    def reset_state(self):
        """Forget the carried state (stateful models start the next call from zeros)."""
        self.state = None

    # ---- the passes
    def forward(self, x, state=None):
        """x: (T, B) int ids with an embedding/one-hot, else (T, B, I) floats.

        state: the layer's initial state, or None (zeros; the carried one when stateful).
        Returns the head's output ((B, O) or (T, B, O)) and the final state.
        """
        if state is None and self.stateful:
            state = self.state
        inputs = self.embed.forward(self.xp.asarray(x)) if self.embed is not None else x
        hs, stateT = self.rnn.forward(inputs, state)
        if self.stateful:
            self.state = stateT
        return self.head.forward(hs), stateT

    def loss(self, x, targets, state=None):
        """The mean loss of ``forward(x, state)`` against targets shaped like its output
        (int ids (B,) or (T, B) for cross-entropy; floats like the output for MSE).

        Returns (loss as a Python float, final state); keeps what backward needs.
        """
        out, stateT = self.forward(x, state)
        loss, self._dout = LOSSES[self.loss_name](out, targets)
        return loss, stateT

    def backward(self, dstate=None):
        """Backpropagate the last ``loss``; adds into ``grads``.

        dstate: gradient at the final state, or None (zeros).
        Returns dx (T, B, E or I) and dL/d(initial state).
        """
        if self._dout is None:
            raise RuntimeError("backward() needs loss() first.")
        dhs = self.head.backward(self._dout)                  # undo the head
        dx, dstate0 = self.rnn.backward(dhs, dstate)          # undo the stack (BPTT)
        if self.embed is not None:
            self.embed.backward(dx)                           # undo the lookup
        return dx, dstate0

    def predict(self, x, state=None):
        """Class ids (argmax of the output) for a cross-entropy model: (B,) or (T, B).
        A stateful model carries its state on from here, as from any forward."""
        out, _ = self.forward(x, state)
        return out.argmax(axis=-1)
