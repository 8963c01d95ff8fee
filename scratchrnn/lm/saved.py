"""A trained language model on disk: which arrays and metadata a run checkpoint holds,
written by ``write_run`` and checked by ``read_run`` against one schema before any array is read.

Array keys: ``param/<name>`` (the model), ``optim/<slot>/<name>`` (optimizer state),
``state/h`` and ``state/c`` (the hidden state carried into the next window).
Metadata: ``kind``, ``model`` (CharLM config), ``train`` (TrainConfig as a dict),
``vocab``, ``stream``, ``optim``, ``history``, ``progress``, ``epoch``.

``read_run`` refuses, with one sentence naming the file, before a single array is read:
- metadata whose sections are missing or hold values of the wrong type or range;
- a model section that disagrees with the training section (another architecture) or
  with the vocabulary (its length is the V of the embedding and the head);
- a member whose declared shape or dtype is not what the model section needs:
  parameters and optimizer slots in the model's float dtype and shape, the carried state
  ``(L, B, H)``; an unexpected or missing member.
Then, after reading, parameters holding NaN or infinity.
"""
from __future__ import annotations

import math

from scratchrnn.blocks.layers import LAYERS
from scratchrnn.blocks.model import CONFIG_KEYS, CharLM
from scratchrnn.book.optim import OPTIMIZERS
from scratchrnn.core.backend import CPU
from scratchrnn.core.errors import CheckpointError, ConfigError, ScratchRNNError
from scratchrnn.core.validation import finite_float, int_at_least, positive_float, positive_int
from scratchrnn.lm.checkpoint import load_checkpoint, save_checkpoint
from scratchrnn.lm.vocab import Vocab

KIND = "scratchrnn-lm"
MODEL_DTYPES = ("float16", "float32", "float64")
NONLINEARITIES = ("tanh", "relu")
# the model-section keys the training section repeats; both must agree
SHARED_WITH_TRAIN = ("cell", "hidden_size", "num_layers", "embedding_size", "dropout",
                     "nonlinearity", "forget_bias", "dtype")


def split_arrays(arrays, prefix):
    """The arrays whose key starts with ``prefix + "/"``, with the prefix removed."""
    n = len(prefix) + 1
    return {k[n:]: v for k, v in arrays.items() if k.startswith(prefix + "/")}


# ----------------------------------------------------------------- shapes and sizes
def param_shapes(config):
    """{parameter name: shape} of the CharLM that ``config`` (a model section) describes,
    computed without allocating it: embed.W (V, E) when E > 0; per layer k
    W_x (I_k, G·H), W_h (H, G·H), b_x and b_h (G·H,) with I_0 = E or V and I_k = H after;
    head.W (H, V), head.b (V,). G is the cell's number of gates."""
    V, H, L, E = (config[k] for k in ("vocab_size", "hidden_size", "num_layers", "embedding_size"))
    G = LAYERS[config["cell"]].cell.GATES
    shapes = {"embed.W": (V, E)} if E else {}
    for k in range(L):
        inputs = (E or V) if k == 0 else H
        shapes.update({f"rnn.l{k}.W_x": (inputs, G * H), f"rnn.l{k}.W_h": (H, G * H),
                       f"rnn.l{k}.b_x": (G * H,), f"rnn.l{k}.b_h": (G * H,)})
    shapes.update({"head.W": (H, V), "head.b": (V,)})
    return shapes


def parameter_bytes(config):
    """Bytes the parameters of the model ``config`` describes take (one copy)."""
    itemsize = CPU.xp.dtype(config["dtype"]).itemsize
    return sum(math.prod(s) for s in param_shapes(config).values()) * itemsize


# ----------------------------------------------------------------- the schema
class _Bad(Exception):
    """One clause saying what is wrong with a checkpoint; read_run names the file."""


def _section(meta, name):
    value = meta.get(name)
    if not isinstance(value, dict):
        raise _Bad(f"its {name!r} section is missing or not a JSON object")
    return value


def _field(section, where, key):
    if key not in section:
        raise _Bad(f"its {where!r} section lacks {key!r}")
    return section[key]


def _checked(check, where, key, value, *args):
    """``check(name, value, *args)`` from validation.py, its ConfigError turned into a clause."""
    try:
        return check(f"{where}.{key}", value, *args)
    except ConfigError as err:
        raise _Bad(str(err).rstrip(".")) from None


def _choice(where, key, value, options):
    if not isinstance(value, str) or value not in options:
        raise _Bad(f"{where}.{key} is {value!r}, not one of {', '.join(options)}")
    return value


def _same(a, b):
    """Equal as JSON values, where True is not 1."""
    return a == b and isinstance(a, bool) == isinstance(b, bool)


def check_model_section(meta):
    """The model section, checked: every key of CharLM's config with its type and range."""
    model = _section(meta, "model")
    unknown = sorted(set(model) - set(CONFIG_KEYS), key=str)
    if unknown:
        raise _Bad(f"its 'model' section has the unknown key {unknown[0]!r}")
    for key in CONFIG_KEYS:
        _field(model, "model", key)
    for key in ("vocab_size", "hidden_size", "num_layers"):
        _checked(positive_int, "model", key, model[key])
    _checked(int_at_least, "model", "embedding_size", model["embedding_size"], 0)
    _choice("model", "cell", model["cell"], tuple(LAYERS))
    _choice("model", "nonlinearity", model["nonlinearity"], NONLINEARITIES)
    _choice("model", "dtype", model["dtype"], MODEL_DTYPES)
    _checked(finite_float, "model", "dropout", model["dropout"], 0.0, 1.0, False, True)
    _checked(finite_float, "model", "forget_bias", model["forget_bias"])
    return model


def _check_train_section(meta, model):
    train = _section(meta, "train")
    for key in SHARED_WITH_TRAIN:
        value = _field(train, "train", key)
        if not _same(value, model[key]):
            raise _Bad(f"its training section says {key}={value!r} but its model section says "
                       f"{model[key]!r}")


def _check_vocab(meta, model):
    try:
        vocab = Vocab.from_json(meta.get("vocab"))
    except ScratchRNNError as err:
        raise _Bad(str(err).rstrip(".")) from None
    if len(vocab) != model["vocab_size"]:
        raise _Bad(f"its vocabulary has {len(vocab)} tokens but its model's embedding and head "
                   f"have {model['vocab_size']}")
    return vocab


def _check_stream(meta):
    stream = _section(meta, "stream")
    for key in ("batch_size", "seq_len", "num_windows"):
        _checked(positive_int, "stream", key, _field(stream, "stream", key))
    for key in ("epoch", "index", "seed"):
        _checked(int_at_least, "stream", key, _field(stream, "stream", key), 0)
    if not isinstance(_field(stream, "stream", "shuffle"), bool):
        raise _Bad("stream.shuffle is not true or false")
    if stream["index"] >= stream["num_windows"]:
        raise _Bad(f"stream.index {stream['index']} is not below stream.num_windows "
                   f"{stream['num_windows']}")
    return stream


def _check_optim(meta):
    """The optimizer section; returns the names of its state slots."""
    optim = _section(meta, "optim")
    name = _choice("optim", "name", _field(optim, "optim", "name"), tuple(OPTIMIZERS))
    cls = OPTIMIZERS[name]
    _checked(int_at_least, "optim", "t", _field(optim, "optim", "t"), 0)
    _checked(positive_float, "optim", "lr", _field(optim, "optim", "lr"))
    hyper = {h: _field(optim, "optim", h) for h in cls.HYPER}
    for h, value in hyper.items():
        if h == "nesterov":
            if not isinstance(value, bool):
                raise _Bad(f"optim.nesterov is {value!r}, not true or false")
        else:
            _checked(finite_float, "optim", h, value)
    try:
        return cls(_field(optim, "optim", "lr"), **hyper).slots()
    except (ConfigError, TypeError) as err:
        raise _Bad(f"its optimizer section is invalid ({str(err).rstrip('.')})") from None


def _check_progress(meta):
    progress = _section(meta, "progress")
    for key in ("step", "evals_since_best"):
        _checked(int_at_least, "progress", key, _field(progress, "progress", key), 0)
    _checked(finite_float, "progress", "elapsed_s", _field(progress, "progress", "elapsed_s"), 0.0)
    best = _field(progress, "progress", "best_val")
    if isinstance(best, bool) or not isinstance(best, (int, float)) or (
            isinstance(best, int) and abs(best) > 2 ** 53) or math.isnan(best):
        raise _Bad(f"progress.best_val is {best!r}, not a number")
    if not isinstance(_field(progress, "progress", "best_path"), (str, type(None))):
        raise _Bad("progress.best_path is neither a path nor null")
    _checked(finite_float, "meta", "epoch", _field(meta, "metadata", "epoch"), 0.0)
    history = _section(meta, "history")
    for part in ("train", "val"):
        entries = _field(history, "history", part)
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise _Bad(f"history.{part} is not a list of records")
    for entry in history["val"]:
        _checked(int_at_least, "history.val", "step", entry.get("step"), 0)
        _checked(finite_float, "history.val", "loss", entry.get("loss"))


def _expected_members(meta, model, slots, stream):
    """{array name: shape} the metadata asks for; every one in the model's dtype."""
    shapes = param_shapes(model)
    expected = {f"param/{k}": s for k, s in shapes.items()}
    if meta["optim"]["t"] > 0:
        expected.update({f"optim/{slot}/{k}": s for slot in slots for k, s in shapes.items()})
    state = (model["num_layers"], stream["batch_size"], model["hidden_size"])
    expected["state/h"] = state
    if model["cell"] == "lstm":
        expected["state/c"] = state
    return expected


def _check_members(members, expected, dtype):
    """Every member is one the metadata asks for, with its shape and the model's dtype;
    every parameter and optimizer slot is present; the state is whole or absent."""
    for name, m in members.items():
        if name not in expected:
            raise _Bad(f"it holds the unexpected array {name!r}")
        if m.shape != tuple(expected[name]):
            raise _Bad(f"its array {name!r} has shape {m.shape} but its model section needs "
                       f"{tuple(expected[name])}")
        if m.dtype != CPU.xp.dtype(dtype):
            raise _Bad(f"its array {name!r} is {m.dtype.name} but its model is {dtype}")
    state = [k for k in expected if k.startswith("state/")]
    required = [k for k in expected if not k.startswith("state/")]
    if any(k in members for k in state):
        required += state
    missing = [k for k in required if k not in members]
    if missing:
        raise _Bad(f"it lacks the array {missing[0]!r}")


def validate_run(meta, members):
    """Check the metadata and the declared members of a run checkpoint (raises _Bad)."""
    if meta.get("kind") != KIND:
        raise _Bad("it is not a scratchrnn language-model checkpoint")
    model = check_model_section(meta)
    _check_train_section(meta, model)
    _check_vocab(meta, model)
    stream = _check_stream(meta)
    slots = _check_optim(meta)
    _check_progress(meta)
    _check_members(members, _expected_members(meta, model, slots, stream), model["dtype"])


def write_run(path, *, model, optimizer, state, train, vocab, stream, progress, text):
    """Write one run checkpoint (atomically) in the layout ``read_run`` checks.

    model: the CharLM; optimizer: its Optimizer; state: the hidden state carried into the
    next window, h (L, B, H) or the LSTM pair (h, c), or None; train: the TrainConfig as a
    dict; vocab: the Vocab; stream: the BatchStream; progress: the run's progress record
    (step, elapsed_s, best_val, best_path, evals_since_best, run_id, first_loss, history);
    text: the fingerprint of the training text.
    """
    arrays = {f"param/{k}": v for k, v in model.state_arrays().items()}   # read back by load_arrays
    opt_arrays, opt_meta = optimizer.state_dict()
    arrays.update({f"optim/{k}": v for k, v in opt_arrays.items()})
    if state is not None:
        h, c = state if isinstance(state, tuple) else (state, None)
        arrays["state/h"] = h
        if c is not None:
            arrays["state/c"] = c
    p = progress
    meta = {"kind": KIND, "model": model.config, "train": train,
            "vocab": vocab.to_json(), "stream": stream.state_dict(),
            "optim": opt_meta, "history": p.history,
            "progress": {"step": p.step, "elapsed_s": p.elapsed_s, "best_val": p.best_val,
                         "best_path": p.best_path, "evals_since_best": p.evals_since_best,
                         "run_id": p.run_id, "first_loss": p.first_loss},
            "text": text, "epoch": stream.epoch_progress}
    save_checkpoint(path, arrays, meta)


def _refused(path, clause):
    if clause.startswith("it is not a scratchrnn"):
        return CheckpointError(f"The file {str(path)!r} is not a scratchrnn language-model checkpoint.")
    return CheckpointError(f"The checkpoint {str(path)!r} is refused: {clause}.")


# ----------------------------------------------------------------- reading
def read_run(path):
    """(arrays, meta) of a scratchrnn language-model checkpoint, checked against the
    schema before any array is read; CheckpointError (one sentence) otherwise."""
    def check(members, meta):
        try:
            validate_run(meta, members)
        except _Bad as why:
            raise _refused(path, str(why)) from None

    arrays, meta = load_checkpoint(path, check=check)
    xp = CPU.xp
    for name, a in arrays.items():
        if not xp.isfinite(a).all():
            raise _refused(path, f"its array {name!r} holds NaN or infinity")
    return arrays, meta


def load_model(path, backend=None):
    """Rebuild the model saved at ``path`` on ``backend``. Returns (model, vocab, meta)."""
    arrays, meta = read_run(path)
    try:
        vocab = Vocab.from_json(meta["vocab"])
        model = CharLM.from_config(meta["model"], backend=backend)
        model.load_arrays(split_arrays(arrays, "param"))
    except (KeyError, TypeError, ValueError) as exc:   # the schema should make this unreachable
        raise CheckpointError(f"The checkpoint {str(path)!r} is damaged or inconsistent ({exc}).") from None
    return model, vocab, meta
