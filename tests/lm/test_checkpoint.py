"""Single-file atomic checkpoints (scratchrnn.lm.checkpoint)."""
import json
import os

import numpy as np
import pytest

from scratchrnn.core.errors import CheckpointError
from scratchrnn.lm import checkpoint
from scratchrnn.lm.checkpoint import (
    FORMAT_VERSION,
    META_KEY,
    checkpoint_name,
    load_checkpoint,
    save_checkpoint,
    sidecar_path,
)


def sample_arrays():
    rng = np.random.default_rng(0)
    return {
        "W_x": rng.standard_normal((5, 12)).astype(np.float32),
        "b": rng.standard_normal(12),                                  # float64
        "ids": rng.integers(-2**62, 2**62, size=7, dtype=np.int64),
        "step": np.array(17, dtype=np.int64),                         # 0-d
        "loss": np.array(1.2345678901234567),                         # 0-d float64
        "specials": np.array([np.nan, -0.0, np.inf, 1e-45], dtype=np.float32),
        "empty": np.zeros((0, 3), dtype=np.float32),
        "adam/m/W_x": np.ones((2, 2), dtype=np.float32),              # slashes in names
    }


def assert_same(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape
    assert a.tobytes() == b.tobytes()                                  # bit-exact, NaN included


def test_round_trip_is_bit_exact(tmp_path):
    path = tmp_path / "lm.npz"
    arrays, meta = sample_arrays(), {"cell": "lstm", "hidden": 128, "vocab": ["a", "\u00e9"]}
    save_checkpoint(path, arrays, meta)
    loaded, loaded_meta = load_checkpoint(path)
    assert set(loaded) == set(arrays)
    for key in arrays:
        assert_same(arrays[key], loaded[key])
    assert loaded_meta == dict(meta, format_version=FORMAT_VERSION)
    assert "format_version" not in meta                               # caller's dict untouched


def test_one_file_plus_readable_sidecar_and_no_leftovers(tmp_path):
    path = tmp_path / "cv" / "lm.npz"                                  # directory is created
    save_checkpoint(path, {"w": np.zeros(3)}, {"epoch": 2.5})
    assert sorted(os.listdir(tmp_path / "cv")) == ["lm.npz", "lm.npz.json"]
    with open(sidecar_path(path)) as f:
        assert json.load(f) == {"epoch": 2.5, "format_version": FORMAT_VERSION}
    with np.load(path, allow_pickle=False) as z:
        assert META_KEY in z.files


def test_overwrite_replaces_the_previous_checkpoint(tmp_path):
    path = tmp_path / "lm.npz"
    save_checkpoint(path, {"w": np.zeros(3)}, {"v": 1})
    save_checkpoint(path, {"w": np.ones(4)}, {"v": 2})
    arrays, meta = load_checkpoint(path)
    assert meta["v"] == 2 and np.array_equal(arrays["w"], np.ones(4))


class DiskFull(OSError):
    pass


@pytest.mark.parametrize("error", [DiskFull(28, "No space left on device"), KeyboardInterrupt()])
def test_failed_write_keeps_old_checkpoint_and_leaves_no_partial_file(tmp_path, monkeypatch, error):
    path = tmp_path / "lm.npz"
    save_checkpoint(path, {"w": np.arange(5.0)}, {"v": 1})
    old_bytes = path.read_bytes()
    real_write_array = np.lib.format.write_array
    calls = []

    def write_then_fail(fp, array, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:                                            # die on the second array
            fp.write(b"\0" * 100)
            raise error
        return real_write_array(fp, array, *args, **kwargs)

    monkeypatch.setattr(np.lib.format, "write_array", write_then_fail)
    expected = CheckpointError if isinstance(error, OSError) else KeyboardInterrupt
    with pytest.raises(expected):
        save_checkpoint(path, {"w": np.arange(9.0), "b": np.ones(2)}, {"v": 2})
    monkeypatch.undo()
    assert len(calls) == 2
    assert path.read_bytes() == old_bytes
    assert sorted(os.listdir(tmp_path)) == ["lm.npz", "lm.npz.json"]
    arrays, meta = load_checkpoint(path)
    assert meta["v"] == 1 and np.array_equal(arrays["w"], np.arange(5.0))


def test_failed_write_message_is_one_sentence(tmp_path, monkeypatch):
    def no_fsync(fd):
        raise OSError(5, "Input/output error")
    monkeypatch.setattr(os, "fsync", no_fsync)
    with pytest.raises(CheckpointError, match=r"^Could not write the checkpoint .*Input/output error\)\.$"):
        save_checkpoint(tmp_path / "lm.npz", {"w": np.zeros(2)}, {})
    monkeypatch.undo()
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------------ refused inputs
def test_save_refuses_object_arrays_bad_names_and_non_json_meta(tmp_path):
    path = tmp_path / "lm.npz"
    with pytest.raises(CheckpointError, match="Python objects"):
        save_checkpoint(path, {"o": np.array([{"a": 1}], dtype=object)}, {})
    with pytest.raises(CheckpointError, match="array name"):
        save_checkpoint(path, {META_KEY: np.zeros(1)}, {})
    with pytest.raises(CheckpointError, match="JSON"):
        save_checkpoint(path, {"w": np.zeros(1)}, {"bad": object()})
    assert os.listdir(tmp_path) == []


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint file"):
        load_checkpoint(tmp_path / "nope.npz")
    with pytest.raises(CheckpointError, match="no checkpoint file"):
        load_checkpoint(tmp_path)


def test_truncated_file(tmp_path):
    path = tmp_path / "lm.npz"
    save_checkpoint(path, sample_arrays(), {"v": 1})
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(path)


def test_corrupted_bytes_inside_an_array(tmp_path):
    path = tmp_path / "lm.npz"
    save_checkpoint(path, {"w": np.zeros(1000)}, {"v": 1})
    raw = bytearray(path.read_bytes())
    raw[500:520] = b"\xff" * 20                     # inside the stored array data: CRC fails
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(path)


def test_garbage_file(tmp_path):
    path = tmp_path / "lm.npz"
    path.write_bytes(b"this is not a checkpoint at all\n" * 10)
    with pytest.raises(CheckpointError, match="corrupt or not a checkpoint"):
        load_checkpoint(path)


def test_plain_npy_file(tmp_path):
    path = tmp_path / "w.npy"
    np.save(path, np.zeros(3))
    with pytest.raises(CheckpointError, match="not an .npz checkpoint"):
        load_checkpoint(path)


def test_pickled_object_array_is_refused(tmp_path):
    path = tmp_path / "evil.npz"
    meta = np.frombuffer(json.dumps({"format_version": FORMAT_VERSION}).encode(), dtype=np.uint8)
    np.savez(path, w=np.array([{"payload": 1}], dtype=object), **{META_KEY: meta})
    with pytest.raises(CheckpointError, match="pickled objects, which are never loaded"):
        load_checkpoint(path)


def test_npz_without_metadata(tmp_path):
    path = tmp_path / "plain.npz"
    np.savez(path, w=np.zeros(3))
    with pytest.raises(CheckpointError, match="no scratchrnn metadata"):
        load_checkpoint(path)


@pytest.mark.parametrize("meta_bytes,match", [
    (b"{not json", "not valid JSON"),
    (b"\xff\xfe", "not valid JSON"),
    (b"[1, 2]", "not a JSON object"),
    (json.dumps({"format_version": 99}).encode(), "format version 99"),
    (json.dumps({"cell": "gru"}).encode(), "format version None"),
])
def test_bad_metadata(tmp_path, meta_bytes, match):
    path = tmp_path / "lm.npz"
    np.savez(path, w=np.zeros(3), **{META_KEY: np.frombuffer(meta_bytes, dtype=np.uint8)})
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(path)


def test_load_ignores_the_sidecar(tmp_path):
    path = tmp_path / "lm.npz"
    save_checkpoint(path, {"w": np.zeros(2)}, {"v": 1})
    os.remove(sidecar_path(path))
    assert load_checkpoint(path)[1]["v"] == 1


def test_checkpoint_name():
    assert checkpoint_name(3.2, 1.23454) == "lm_epoch3.20_val1.2345.npz"
    assert checkpoint_name(10, 0.5, prefix="gru") == "gru_epoch10.00_val0.5000.npz"


@pytest.mark.needs_cupy        # tests/conftest.py: fails without a GPU where SCRATCHRNN_BACKEND=cupy
def test_cupy_arrays_are_saved_from_the_host(tmp_path):
    from scratchrnn.core.backend import get_backend
    xp = get_backend("cupy").xp
    path = tmp_path / "gpu.npz"
    save_checkpoint(path, {"w": xp.arange(6, dtype=xp.float32).reshape(2, 3)}, {})
    arrays, _ = load_checkpoint(path)
    assert isinstance(arrays["w"], np.ndarray)
    assert np.array_equal(arrays["w"], np.arange(6, dtype=np.float32).reshape(2, 3))
    assert checkpoint.FORMAT_VERSION == 1


def test_written_files_get_the_usual_permissions(tmp_path):
    """Checkpoints and their sidecar are readable by others (0666 less the umask), not 0600."""
    import stat
    old = os.umask(0o022)
    try:
        path = tmp_path / "perm.npz"
        save_checkpoint(path, {"a": np.zeros(2)}, {"k": 1})
        for p in (path, tmp_path / "perm.npz.json"):
            assert stat.S_IMODE(os.stat(p).st_mode) == 0o644
    finally:
        os.umask(old)


def test_a_stale_sidecar_is_brought_back_in_line_with_its_npz(tmp_path):
    """A write killed between the .npz and its .json copy leaves the old sidecar; the next
    run that takes the folder rewrites it from the .npz (the source of truth)."""
    from scratchrnn.lm.runfolder import remove_stale_temps
    path = str(tmp_path / "last.npz")
    save_checkpoint(path, sample_arrays(), {"step": 1})
    old_sidecar = open(path + ".json", "rb").read()
    save_checkpoint(path, sample_arrays(), {"step": 2})
    fresh_sidecar = open(path + ".json", "rb").read()
    open(path + ".json", "wb").write(old_sidecar)           # as if killed before the sidecar
    assert remove_stale_temps(str(tmp_path)) == ["last.npz.json"]
    assert open(path + ".json", "rb").read() == fresh_sidecar
    assert remove_stale_temps(str(tmp_path)) == []           # already in line: untouched
