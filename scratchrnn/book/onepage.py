"""A whole character-level LSTM language model on one page, to read top to bottom.

    python -m scratchrnn.book.onepage --steps 300         (about 5 s on two quiet CPU cores)
text -> ids -> one-hot -> LSTM -> linear head -> softmax -> cross-entropy, then BPTT, gradient
clipping, Adam and sampling: the library's ``scratchrnn.blocks.model.CharLM`` (one-hot input, one LSTM
layer) written out in place, with the library's names and weight layout, so the weights load into
``scratchrnn.LSTM`` unchanged: W_x (V, 4H), W_h (H, 4H), b_x, b_h (4H,), columns in PyTorch's gate
order i, f, g, o; the head W (H, V), b (V,). tests/book/test_onepage.py checks both give the same loss
and gradients. Each backward line names its section of docs/derivations.md ("§3"); the library's
LSTM backward is ``scratchrnn/book/cells/lstm.py: step_backward``.
Shapes: T steps in a window, B text streams side by side, V characters, H hidden units.
"""
import argparse

from scratchrnn.core.backend import CPU
from scratchrnn.core.errors import ConfigError
from scratchrnn.core.threads import limit as blas_threads
from scratchrnn.core.validation import int_at_least, positive_float, positive_int

np = CPU.xp   # NumPy (the package reaches NumPy through its backend module only)


# ---- 1. the text and its characters -----------------------------------------------------
def load_text():
    """The prose of Python's own reference manual: it ships with every Python ('python-docs')."""
    from pydoc_data.topics import topics
    return "\n".join(topics[key] for key in sorted(topics))


def init_params(V, H, rng, forget_bias=1.0):
    """Every weight ~ U(±1/sqrt(H)) (PyTorch's init); the forget gate starts open (§3)."""
    k = 1.0 / np.sqrt(H)
    shapes = dict(W_x=(V, 4 * H), W_h=(H, 4 * H), b_x=(4 * H,), b_h=(4 * H,), W=(H, V), b=(V,))
    p = {name: rng.uniform(-k, k, shape) for name, shape in shapes.items()}
    p["b_x"][H:2 * H], p["b_h"][H:2 * H] = forget_bias, 0.0
    return p


def sigmoid(a):
    return 0.5 * (np.tanh(0.5 * a) + 1.0)        # = 1 / (1 + exp(-a)), without overflow


# ---- 2. forward: one LSTM step, then a window of T steps with the loss ------------------
def lstm_step(p, x, h, c):
    """x: (B, V) one-hot.  h, c: (B, H).  Returns h', c', gates [i, f, g, o] (B, 4H), tanh(c')."""
    H = h.shape[1]
    a = x @ p["W_x"] + p["b_x"] + h @ p["W_h"] + p["b_h"]      # (B, 4H) pre-activations
    i, f, o = sigmoid(a[:, :H]), sigmoid(a[:, H:2 * H]), sigmoid(a[:, 3 * H:])
    g = np.tanh(a[:, 2 * H:3 * H])
    c = f * c + i * g                          # keep part of the old cell, write part of g
    tanh_c = np.tanh(c)
    return o * tanh_c, c, np.concatenate([i, f, g, o], axis=1), tanh_c


def forward(p, ids, targets, h0, c0):
    """ids, targets: (T, B) int.  h0, c0: (B, H), the state entering the window.

    Returns the mean cross-entropy in nats per character, the final (h, c), and the cache.
    """
    (T, B), (V, H) = ids.shape, (p["W_x"].shape[0], h0.shape[1])
    xs = np.eye(V)[ids]                                        # one-hot: (T, B, V)
    hs, cs = np.zeros((T + 1, B, H)), np.zeros((T + 1, B, H))  # hs[t + 1] = h after step t
    hs[0], cs[0] = h0, c0
    gates, tanh_cs, probs = np.zeros((T, B, 4 * H)), np.zeros((T, B, H)), np.zeros((T, B, V))
    loss = 0.0
    for t in range(T):
        hs[t + 1], cs[t + 1], gates[t], tanh_cs[t] = lstm_step(p, xs[t], hs[t], cs[t])
        z = hs[t + 1] @ p["W"] + p["b"]                        # logits (B, V)
        z = z - z.max(axis=1, keepdims=True)                   # shift: exp never overflows (§1)
        log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))   # log softmax
        probs[t] = np.exp(log_p)
        loss -= log_p[np.arange(B), targets[t]].sum()          # -log p(next character)
    return loss / (T * B), (hs[T], cs[T]), (xs, hs, cs, gates, tanh_cs, probs, targets)


# ---- 3. backward: the same road in reverse (backpropagation through time) ---------------
def backward(p, cache):
    """The gradient of the mean loss w.r.t. every parameter, and at the initial (h0, c0).

    Nothing flows in from beyond the window (truncated BPTT, §5), so dh, dc start at zero.
    """
    xs, hs, cs, gates, tanh_cs, probs, targets = cache
    (T, B, _), H = probs.shape, hs.shape[2]
    grads = {name: np.zeros_like(value) for name, value in p.items()}
    dh_next, dc_next = np.zeros((B, H)), np.zeros((B, H))
    for t in reversed(range(T)):
        dz = probs[t].copy()                                   # undo softmax + cross-entropy:
        dz[np.arange(B), targets[t]] -= 1.0                    #   dz = p - onehot(y) (§1)
        dz /= T * B                                            #   undo the mean over T·B
        grads["W"] += hs[t + 1].T @ dz                         # undo z = h W + b (the head)
        grads["b"] += dz.sum(axis=0)                           # undo + b, summed over B
        dh = dz @ p["W"].T + dh_next                           # h went to the head and to t+1 (§2)
        i, f, g, o = (gates[t][:, k * H:(k + 1) * H] for k in range(4))
        dc = dc_next + dh * o * (1 - tanh_cs[t] ** 2)          # undo h = o⊙tanh(c), c path (§3)
        do = dh * tanh_cs[t]                                   # undo h = o⊙tanh(c), o path (§3)
        di, dg, df = dc * g, dc * i, dc * cs[t]                # undo c = f⊙c_prev + i⊙g (§3)
        dc_next = dc * f                                       # c_prev's share: the carousel (§3)
        da = np.concatenate([di * i * (1 - i), df * f * (1 - f),     # undo i = σ, f = σ,
                             dg * (1 - g ** 2), do * o * (1 - o)], axis=1)  # g = tanh, o = σ (§3)
        grads["W_x"] += xs[t].T @ da                           # undo x W_x (§2, §3)
        grads["W_h"] += hs[t].T @ da                           # undo h_prev W_h (§2, §3)
        grads["b_x"] += da.sum(axis=0)                         # undo + b_x, summed over B
        grads["b_h"] += da.sum(axis=0)                         # undo + b_h
        dh_next = da @ p["W_h"].T                              # undo h_prev W_h: to step t-1 (§2)
    return grads, (dh_next, dc_next)


# ---- 4. the update: clip the global norm, then one Adam step ----------------------------
def clip(grads, max_norm):
    """Scale all gradients down together when their joint norm is above max_norm."""
    norm = np.sqrt(sum((g * g).sum() for g in grads.values()))
    if norm > max_norm:
        for g in grads.values():
            g *= max_norm / norm
    return norm


def adam(p, grads, m, v, t, lr, beta1=0.9, beta2=0.999, eps=1e-8):
    """Step t (from 1): a running mean m and mean square v of each gradient, bias-corrected."""
    for name in p:
        m[name] = beta1 * m[name] + (1 - beta1) * grads[name]
        v[name] = beta2 * v[name] + (1 - beta2) * grads[name] ** 2
        m_hat, v_hat = m[name] / (1 - beta1 ** t), v[name] / (1 - beta2 ** t)
        p[name] -= lr * m_hat / (np.sqrt(v_hat) + eps)


# ---- 5. sampling: feed each drawn character back in -------------------------------------
def sample(p, h, c, first_id, n, rng, temperature=1.0):
    """n character ids drawn one at a time, starting after first_id from state h, c (1, H)."""
    V, ids = p["W_x"].shape[0], [first_id]
    for _ in range(n):
        h, c, _, _ = lstm_step(p, np.eye(V)[[ids[-1]]], h, c)
        z = (h[0] @ p["W"] + p["b"]) / temperature
        q = np.exp(z - z.max())
        ids.append(int(rng.choice(V, p=q / q.sum())))
    return ids[1:]


# ---- 6. training: B streams through the text, T characters at a time --------------------
def train(args, text):
    chars = sorted(set(text))                                  # the vocabulary, in a fixed order
    index = {ch: k for k, ch in enumerate(chars)}
    data = np.array([index[ch] for ch in text])
    L = len(data) // args.batch_size                           # characters per stream
    if L < args.seq_length + 1:
        raise ConfigError("The text is too short for this --batch-size and --seq-length.")
    streams = data[:L * args.batch_size].reshape(args.batch_size, L).T   # (L, B)
    rng = np.random.default_rng(args.seed)
    V, H, B, T = len(chars), args.hidden, args.batch_size, args.seq_length
    p = init_params(V, H, rng)
    m, v = ({name: np.zeros_like(value) for name, value in p.items()} for _ in range(2))
    print(f"onepage: LSTM H={H}, vocab {V}, {len(data):,} characters, {B} streams of {T}")
    pos, h, c = 0, np.zeros((B, H)), np.zeros((B, H))
    for step in range(1, args.steps + 1):
        if pos + T + 1 > L:                                    # end of the text: start again
            pos, h, c = 0, np.zeros((B, H)), np.zeros((B, H))
        ids, targets = streams[pos:pos + T], streams[pos + 1:pos + T + 1]
        loss, (h, c), cache = forward(p, ids, targets, h, c)   # the state carries on, its
        grads, _ = backward(p, cache)                          # gradient is cut (§5)
        norm = clip(grads, args.clip)
        adam(p, grads, m, v, step, args.lr)
        pos += T
        if step % max(1, args.steps // 10) == 0 or step == args.steps:   # ten loss lines
            print(f"step {step}: loss {loss:.4f} nats/char, gradient norm {norm:.3f}")
    if args.sample_length:
        drawn = sample(p, h[:1], c[:1], int(streams[pos, 0]), args.sample_length, rng,
                       temperature=0.8)   # below 1: safer, likelier characters
        print("----- sample -----\n" + "".join(chars[k] for k in drawn))


class Parser(argparse.ArgumentParser):
    def error(self, message):                  # a usage mistake: one line, exit status 2
        self.exit(2, f"{self.prog}: error: {message}\n")


def main(argv=None):
    parser = Parser(prog="python -m scratchrnn.book.onepage", description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="training steps (default 300)")
    parser.add_argument("--hidden", type=int, default=128, help="hidden units H")
    parser.add_argument("--seq-length", type=int, default=32, help="window length T")
    parser.add_argument("--batch-size", type=int, default=16, help="streams B")
    parser.add_argument("--lr", type=float, default=1e-2, help="Adam's learning rate")
    parser.add_argument("--clip", type=float, default=5.0, help="largest gradient norm")
    parser.add_argument("--sample-length", type=int, default=300, help="0: no sample")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None,
                        help="BLAS threads (default 1: these GEMMs are too small to share; "
                             "$SCRATCHRNN_THREADS sets another default, 0 = one per core)")
    args = parser.parse_args(argv)
    try:
        for flag in ("--steps", "--hidden", "--seq-length", "--batch-size"):
            positive_int(flag, getattr(args, flag[2:].replace("-", "_")))
        int_at_least("--sample-length", args.sample_length, 0)
        int_at_least("--seed", args.seed, 0)
        for flag in ("--lr", "--clip"):
            positive_float(flag, getattr(args, flag[2:]))
        with blas_threads("onepage", args.threads):    # the machine's other work keeps its cores
            train(args, load_text())
    except ConfigError as err:
        parser.error(str(err))
    return 0


if __name__ == "__main__":
    main()
