"""A run checkpoint is checked before anything large is read or allocated.

Hypothesis mutates a valid checkpoint -- its bytes (biased towards the zip and .npy
headers, where a flip is not simply caught by the CRC), its metadata values and types,
and its members' shapes and dtypes. Every mutation must either load to the identical
model or be refused with one CheckpointError sentence naming the file: never another
exception, never a hang (a timer interrupts one), never a large allocation (tracemalloc
watches the peak). Targeted cases cover what random mutation is unlikely to reach: a
member declaring a huge array, a zip bomb, a FIFO, an embedding shorter than the
vocabulary, integer and complex parameters.
"""
import io
import json
import math
import os
import signal
import struct
import tracemalloc
import zipfile
from contextlib import contextmanager

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from npz_bytes import meta_npy, npy, zip_of
from scratchrnn.blocks.model import CharLM
from scratchrnn.core.errors import CheckpointError
from scratchrnn.lm.checkpoint import META_KEY, inspect_checkpoint, load_checkpoint, save_checkpoint
from scratchrnn.lm.run import TrainConfig, Trainer
from scratchrnn.lm.saved import load_model, param_shapes, parameter_bytes

MEMORY_LIMIT = 32 << 20      # bytes any refused or accepted load of the tiny checkpoint may peak at
TIME_LIMIT = 10              # seconds before a load counts as a hang


@pytest.fixture(scope="module")
def valid(tmp_path_factory):
    """(path, bytes, model, arrays, meta) of a tiny trained 2-layer LSTM with an embedding."""
    out = tmp_path_factory.mktemp("valid") / "run"
    cfg = TrainConfig(source="python-docs", max_chars=3000, cell="lstm", hidden_size=6,
                      num_layers=2, embedding_size=5, seq_len=8, batch_size=2, max_steps=2,
                      eval_every=2, max_minutes=None, progress=False, out_dir=str(out))
    result = Trainer(cfg).run()
    path = result.last_path
    model, _, _ = load_model(path)
    arrays, meta = load_checkpoint(path)
    with open(path, "rb") as f:
        raw = f.read()
    return path, raw, model, arrays, meta


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    """Where each mutated checkpoint is written (one file, overwritten per example)."""
    return tmp_path_factory.mktemp("mutated") / "mutated.npz"


@contextmanager
def bounded(seconds=TIME_LIMIT, memory=MEMORY_LIMIT):
    """Fail if the block runs longer than ``seconds`` or its Python/NumPy allocations peak
    above ``memory`` bytes."""
    def hang(signum, frame):
        raise AssertionError(f"loading took more than {seconds} s")
    old = signal.signal(signal.SIGALRM, hang)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    tracemalloc.start()
    try:
        yield
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert peak < memory, f"loading allocated {peak:,} bytes"


def load_or_refusal(path):
    """The loaded model, or the CheckpointError message; any other exception propagates."""
    with bounded():
        try:
            model, _, _ = load_model(path)
        except CheckpointError as err:
            return str(err)
    return model


def assert_identical_or_refused(result, original, path):
    if isinstance(result, str):
        assert "\n" not in result and result.endswith("."), result
        assert repr(str(path)) in result, result
        assert "Traceback" not in result
        return "refused"
    assert result.config == original.config
    assert set(result.params) == set(original.params)
    for k, p in original.params.items():
        q = result.params[k]
        assert q.dtype == p.dtype and q.shape == p.shape and q.tobytes() == p.tobytes(), k
    return "identical"


# ------------------------------------------------------------------ byte mutations
def structural_regions(raw):
    """(start, stop) byte ranges of the zip's local headers with their .npy headers, the
    central directory and the end record: where a flip is not caught by the CRC alone."""
    regions = []
    with zipfile.ZipFile(io.BytesIO(raw)) as zf:
        for info in zf.infolist():
            regions.append((info.header_offset, info.header_offset + 30 + len(info.filename) + 20 + 128))
        end = max(i.header_offset + 30 + len(i.filename) + 20 + i.compress_size for i in zf.infolist())
    regions.append((end, len(raw)))
    return [(a, min(b, len(raw))) for a, b in regions]


# one edit: (in a structural region?, which region, offset, action, value, inserted bytes)
byte_edits = st.lists(st.tuples(st.booleans(), st.integers(0, 100), st.integers(0, 1 << 20),
                                st.sampled_from(["set", "xor", "truncate", "insert", "delete"]),
                                st.integers(0, 255), st.binary(min_size=1, max_size=8)),
                      min_size=1, max_size=4)


def apply_byte_edits(raw, edits):
    """``raw`` with ``edits`` applied in turn; offsets wrap into the region or the file."""
    regions = structural_regions(raw)
    data = bytearray(raw)
    for in_region, which, offset, action, value, inserted in edits:
        if not data:
            break
        start, stop = regions[which % len(regions)] if in_region else (0, len(data))
        start, stop = min(start, len(data) - 1), min(stop, len(data))
        pos = start + offset % max(1, stop - start)
        if action == "set":
            data[pos] = value
        elif action == "xor":
            data[pos] ^= 1 << (value % 8)
        elif action == "truncate":
            del data[pos:]
        elif action == "insert":
            data[pos:pos] = inserted
        else:
            del data[pos:pos + 1 + value % 8]
    return bytes(data)


@given(byte_edits)
def test_byte_mutations_load_identically_or_are_refused(valid, scratch, edits):
    path, raw, model, _, _ = valid
    scratch.write_bytes(apply_byte_edits(raw, edits))
    assert_identical_or_refused(load_or_refusal(scratch), model, scratch)


# -------------------------------------------------------------- metadata mutations
def json_paths(value, prefix=()):
    """Every path (tuple of keys/indices) into a JSON value, the value's own included."""
    paths = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            paths += json_paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value[:3]):
            paths += json_paths(v, prefix + (i,))
    return paths


json_values = st.recursive(
    st.none() | st.booleans() | st.sampled_from([0, 1, -1, 2, 7, 10**18, -(10**18)])
    | st.integers(-1000, 1000) | st.floats(allow_subnormal=False)
    | st.sampled_from(["", "lstm", "gru", "rnn", "relu", "float64", "int32", "complex64", "adam",
                       "sgd", "char", "word", "x", "/dev/zero"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=4)


def mutate_meta(meta, path, value, delete):
    """A deep copy of ``meta`` with the value at ``path`` replaced by ``value`` (or deleted)."""
    meta = json.loads(json.dumps(meta))
    parent = meta
    for key in path[:-1]:
        parent = parent[key]
    if delete and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    meta.pop("format_version", None)
    return meta


@given(st.data())
def test_metadata_mutations_load_identically_or_are_refused(valid, scratch, data):
    _, _, model, arrays, meta = valid
    paths = [p for p in json_paths(meta) if p and p != ("format_version",)]
    path = data.draw(st.sampled_from(paths), label="path")
    value = data.draw(json_values, label="value")
    delete = data.draw(st.integers(0, 4), label="delete when 0") == 0
    save_checkpoint(scratch, arrays, mutate_meta(meta, path, value, delete))
    assert_identical_or_refused(load_or_refusal(scratch), model, scratch)


# ---------------------------------------------------------------- member mutations
DTYPES = ["float16", "float64", "int32", "int64", "uint8", "bool", "complex64", "complex128"]


def mutate_members(arrays, name, action, dtype, extra):
    """A copy of ``arrays`` with member ``name`` changed by ``action``."""
    arrays = dict(arrays)
    a = arrays[name]
    if action == "dtype":
        arrays[name] = a.astype(dtype)
    elif action == "drop":
        del arrays[name]
    elif action == "shrink" and a.ndim and a.shape[-1] > 1:
        arrays[name] = a[..., :-1]
    elif action == "grow":
        arrays[name] = np.concatenate([a, a[..., :1]], axis=-1) if a.ndim else a[None]
    elif action == "reshape":
        arrays[name] = a.reshape(-1) if a.ndim > 1 else a.reshape(1, -1)
    elif action == "add-axis":
        arrays[name] = a[None]
    else:
        arrays[extra] = a
    return arrays


@given(st.data())
def test_member_mutations_load_identically_or_are_refused(valid, scratch, data):
    _, _, model, arrays, meta = valid
    mutated = mutate_members(
        arrays, data.draw(st.sampled_from(sorted(arrays)), label="member"),
        data.draw(st.sampled_from(["dtype", "drop", "shrink", "grow", "reshape", "add-axis",
                                   "copy"]), label="action"),
        data.draw(st.sampled_from(DTYPES), label="dtype"),
        data.draw(st.sampled_from(["param/extra", "optim/m/head.W2", "state/x", "junk"]),
                  label="copy to"))
    save_checkpoint(scratch, mutated, {k: v for k, v in meta.items() if k != "format_version"})
    assert_identical_or_refused(load_or_refusal(scratch), model, scratch)


# ------------------------------------------------------------------ targeted cases
def _resave(path, arrays, meta, **changes):
    arrays = dict(arrays, **changes)
    save_checkpoint(path, arrays, {k: v for k, v in meta.items() if k != "format_version"})


@pytest.mark.parametrize("dtype", ["int64", "int32", "complex64", "float64", "float16"])
def test_parameters_of_another_dtype_are_refused(valid, tmp_path, dtype):
    _, _, _, arrays, meta = valid
    bad = tmp_path / "bad.npz"
    _resave(bad, arrays, meta, **{"param/head.W": arrays["param/head.W"].astype(dtype)})
    with pytest.raises(CheckpointError, match=r"'param/head\.W'.*(is|dtype) "):
        load_model(bad)


def test_vocabulary_longer_than_the_embedding_is_refused(valid, tmp_path):
    _, _, _, arrays, meta = valid
    meta = json.loads(json.dumps(meta))
    meta["vocab"]["tokens"].append("\uffff")           # sorted order kept, one token too many
    bad = tmp_path / "bad.npz"
    _resave(bad, arrays, meta)
    with pytest.raises(CheckpointError, match="vocabulary has .* tokens but its model"):
        load_model(bad)


@pytest.mark.parametrize("section,key,value,match", [
    ("model", "hidden_size", -6, "model.hidden_size must be a positive integer"),
    ("model", "hidden_size", "6", "model.hidden_size must be an integer"),
    ("model", "cell", "gru", "training section says cell='lstm'"),
    ("model", "dtype", "int32", "model.dtype is 'int32'"),
    ("progress", "step", -3, "progress.step must be an integer >= 0"),
    ("optim", "t", "2", "optim.t must be an integer"),
    ("optim", "beta1", 1.5, "optimizer section is invalid"),
    ("stream", "index", 10**6, "stream.index"),
])
def test_bad_metadata_values_are_named(valid, tmp_path, section, key, value, match):
    _, _, _, arrays, meta = valid
    meta = json.loads(json.dumps(meta))
    meta[section][key] = value
    bad = tmp_path / "bad.npz"
    _resave(bad, arrays, meta)
    with pytest.raises(CheckpointError, match=match):
        load_model(bad)


def test_missing_sections_and_keys_are_named(valid, tmp_path):
    _, _, _, arrays, meta = valid
    bad = tmp_path / "bad.npz"
    for drop, match in ((("optim",), "'optim' section is missing"),
                        (("progress", "best_val"), "'progress' section lacks 'best_val'"),
                        (("model", "vocab_size"), "'model' section lacks 'vocab_size'")):
        m = json.loads(json.dumps(meta))
        (m[drop[0]].pop(drop[1]) if len(drop) == 2 else m.pop(drop[0]))
        _resave(bad, arrays, m)
        with pytest.raises(CheckpointError, match=match):
            load_model(bad)


def test_optimizer_slot_of_the_wrong_shape_is_refused(valid, tmp_path):
    _, _, _, arrays, meta = valid
    bad = tmp_path / "bad.npz"
    _resave(bad, arrays, meta, **{"optim/m/head.W": arrays["optim/m/head.W"][:, :-1]})
    with pytest.raises(CheckpointError, match=r"'optim/m/head\.W' has shape"):
        load_model(bad)


def test_non_finite_parameters_are_refused(valid, tmp_path):
    _, _, _, arrays, meta = valid
    w = arrays["param/head.b"].copy()
    w[0] = np.nan
    bad = tmp_path / "bad.npz"
    _resave(bad, arrays, meta, **{"param/head.b": w})
    with pytest.raises(CheckpointError, match="holds NaN or infinity"):
        load_model(bad)


def test_a_member_declaring_a_huge_array_is_refused_without_allocating(tmp_path):
    buf = io.BytesIO()                                 # header: 10**10 float64 (80 GB); data: 24 bytes
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False,
                                               "shape": (10**10,)})
    huge = buf.getvalue() + np.zeros(3).tobytes()
    path = tmp_path / "huge.npz"
    path.write_bytes(zip_of({"w.npy": huge, META_KEY + ".npy": meta_npy()}))
    with bounded(memory=4 << 20), pytest.raises(CheckpointError, match="declares shape"):
        load_checkpoint(path)


def test_a_zip_bomb_is_refused_before_inflating(tmp_path):
    zeros = np.zeros(40 << 20, dtype=np.uint8)         # 40 MiB of zeros deflate to ~40 KiB
    payload = npy(zeros)
    del zeros
    path = tmp_path / "bomb.npz"
    path.write_bytes(zip_of({"w.npy": payload, META_KEY + ".npy": meta_npy()},
                            zipfile.ZIP_DEFLATED))
    del payload
    assert os.path.getsize(path) < 1 << 20
    with bounded(memory=4 << 20), pytest.raises(CheckpointError, match="inflate"):
        load_checkpoint(path)


def test_a_member_claiming_bytes_past_the_end_of_the_file_is_refused(tmp_path):
    raw = bytearray(zip_of({"w.npy": npy(np.zeros(3)), META_KEY + ".npy": meta_npy()}))
    # the central directory's compressed and uncompressed sizes of the first member: 2 GB
    cd = raw.rfind(b"PK\x01\x02", 0, raw.rfind(b"PK\x01\x02"))
    raw[cd + 20:cd + 28] = struct.pack("<II", 2**31, 2**31)
    path = tmp_path / "long.npz"
    path.write_bytes(bytes(raw))
    with bounded(memory=4 << 20), pytest.raises(CheckpointError):
        load_checkpoint(path)


def test_a_small_compressed_checkpoint_still_loads(tmp_path):
    """Re-zipping with deflate is allowed within the inflation bound (zeros compress well)."""
    path = tmp_path / "small.npz"
    path.write_bytes(zip_of({"w.npy": npy(np.zeros((64, 64))), META_KEY + ".npy": meta_npy()},
                            zipfile.ZIP_DEFLATED))
    arrays, _ = load_checkpoint(path)
    assert arrays["w"].shape == (64, 64) and not arrays["w"].any()


@pytest.mark.parametrize("descr", ["|O", "<c16", "<U3", "|V8"])
def test_members_of_refused_dtypes(tmp_path, descr):
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": (1,)})
    payload = buf.getvalue() + b"\0" * np.dtype(descr).itemsize
    path = tmp_path / "odd.npz"
    path.write_bytes(zip_of({"w.npy": payload, META_KEY + ".npy": meta_npy()}))
    with pytest.raises(CheckpointError, match="pickled objects|only booleans, integers and real floats"):
        inspect_checkpoint(path)


def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.npz"
    os.mkfifo(fifo)
    with bounded(seconds=5), pytest.raises(CheckpointError, match="no checkpoint file"):
        load_model(fifo)


# ----------------------------------------------------------- shapes without allocating
@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("embedding_size", [0, 5])
def test_param_shapes_match_the_model(cell, embedding_size):
    model = CharLM(11, cell, hidden_size=7, num_layers=3, embedding_size=embedding_size, seed=0)
    shapes = param_shapes(model.config)
    assert shapes == {k: tuple(p.shape) for k, p in model.params.items()}
    assert parameter_bytes(model.config) == sum(p.nbytes for p in model.params.values())


def test_parameter_bytes_of_a_huge_model_costs_nothing():
    config = dict(vocab_size=100, cell="lstm", hidden_size=128, num_layers=2,
                  embedding_size=10**9, dropout=0.0, nonlinearity="tanh", forget_bias=1.0,
                  dtype="float32")
    assert parameter_bytes(config) > 100 * 10**9 * 4
    assert math.isfinite(parameter_bytes(config))
