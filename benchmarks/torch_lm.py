"""PyTorch's version of scratchrnn's language-model run, for the benchmarks that compare them.

    run = TorchLMRun(cfg)            # cfg: scratchrnn's TrainConfig (cell, sizes, data, lr, clip, seed)
    loss = run.train_step()          # the next window: forward, autograd backward, clip, Adam
    val_loss, tokens = run.evaluate(run.data.val)

The data, the windows and their order come from scratchrnn's own runner (``prepare_data``
and ``BatchStream``), so both implementations see the same batches; the model is PyTorch's:
``nn.RNN``/``nn.GRU``/``nn.LSTM`` (``num_layers`` deep, default init after
``torch.manual_seed(cfg.seed)``) on one-hot inputs, an ``nn.Linear`` head, mean
cross-entropy, ``clip_grad_norm_`` and ``torch.optim.Adam``. The state is carried from
window to window (detached) and reset at each epoch start, as scratchrnn's runner does.
torch is imported here only; call this in a process of its own.
"""
from __future__ import annotations


def torch_modules(cell, vocab_size, hidden_size, num_layers, seed, dtype="float32", device="cpu"):
    """The recurrent stack and the head from PyTorch's default init, drawn after ``manual_seed(seed)``."""
    import torch
    from torch import nn
    torch.manual_seed(seed)
    layer = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}[cell]
    rnn = layer(vocab_size, hidden_size, num_layers=num_layers)
    head = nn.Linear(hidden_size, vocab_size)
    torch_dtype = torch.float64 if dtype == "float64" else torch.float32
    return rnn.to(device, torch_dtype), head.to(device, torch_dtype)


class TorchLMRun:
    """One training run of the language model in PyTorch (see the module doc)."""

    def __init__(self, cfg, device="cpu", threads=None):
        import torch

        from scratchrnn.book.batching import BatchStream
        from scratchrnn.core.errors import ConfigError
        from scratchrnn.lm.run import prepare_data
        if cfg.embedding_size or cfg.dropout or cfg.optimizer != "adam" or cfg.clip_value or cfg.shuffle:
            raise ConfigError("the PyTorch comparison covers one-hot input, no dropout, Adam, "
                              "global-norm clipping and unshuffled windows only.")
        if threads:
            torch.set_num_threads(threads)
        self.torch, self.cfg, self.device = torch, cfg, device
        self.data = prepare_data(cfg)
        self.V = len(self.data.vocab)
        # host batches whatever SCRATCHRNN_BACKEND says: torch.from_numpy takes them to its device
        self.stream = BatchStream(self.data.train, cfg.batch_size, cfg.seq_len, shuffle=False,
                                  seed=cfg.seed, pad_id=self.data.vocab.pad_id, backend="numpy")
        self.rnn, self.head = torch_modules(cfg.cell, self.V, cfg.hidden_size, cfg.num_layers,
                                            cfg.seed, cfg.dtype, device)
        self.dtype = self.head.weight.dtype
        self.params = list(self.rnn.parameters()) + list(self.head.parameters())
        self.opt = torch.optim.Adam(self.params, lr=cfg.lr)
        self.state = None

    def num_params(self):
        return sum(p.numel() for p in self.params)

    def _ids(self, a):
        """(T, B) host ids -> a long tensor on the device."""
        return self.torch.from_numpy(a).to(self.device)

    def logits(self, x, state):
        """x: (T, B) host int ids -> logits (T*B, V) and the final state."""
        one_hot = self.torch.nn.functional.one_hot(self._ids(x), self.V).to(self.dtype)
        hs, state = self.rnn(one_hot, state)
        return self.head(hs.reshape(-1, hs.shape[-1])), state

    def train_step(self):
        """The next window; returns the loss (nats/token) before the update."""
        torch = self.torch
        batch = self.stream.next_batch()
        if batch.reset:
            self.state = None                              # zeros at an epoch start
        self.opt.zero_grad()
        logits, state = self.logits(batch.x, self.state)
        loss = torch.nn.functional.cross_entropy(logits, self._ids(batch.y).reshape(-1))
        loss.backward()
        if self.cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.params, self.cfg.grad_clip)
        self.opt.step()
        self.state = (tuple(s.detach() for s in state) if isinstance(state, tuple)
                      else state.detach())                 # carried, no gradient back
        return loss.item()

    def evaluate(self, ids):
        """Mean loss over ``ids`` (N,) scored as ``scratchrnn.book.train.evaluate`` scores it:
        B streams, state carried, the same B and T. Returns (loss, tokens scored)."""
        torch = self.torch
        from scratchrnn.book.batching import BatchStream
        B = max(1, min(self.cfg.batch_size, (len(ids) - 1) // self.cfg.seq_len))
        T = min(self.cfg.seq_len, (len(ids) - 1) // B)
        total, count, state = 0.0, 0, None
        with torch.no_grad():
            for batch in BatchStream(ids, B, T, pad_id=self.data.vocab.pad_id, backend="numpy"):   # host ids
                logits, state = self.logits(batch.x, state)
                y = self._ids(batch.y).reshape(-1)
                total += float(torch.nn.functional.cross_entropy(logits, y, reduction="sum"))
                count += y.numel()
        return total / count, count

    def synchronize(self):
        if self.device != "cpu":
            self.torch.cuda.synchronize()
