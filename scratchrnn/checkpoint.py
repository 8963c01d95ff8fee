"""Checkpoints: one ``.npz`` file holding every array and the JSON metadata, written atomically.

    save_checkpoint("cv/lm_epoch3.20_val1.2345.npz", arrays, meta)
    arrays, meta = load_checkpoint("cv/lm_epoch3.20_val1.2345.npz")

``arrays`` is ``dict[str, array]`` (any backend; saved from host copies, loaded as NumPy),
``meta`` a JSON-serialisable dict. The metadata travels inside the ``.npz`` as UTF-8 JSON
bytes in a uint8 array under ``META_KEY``, so one file is the whole checkpoint. A copy of
the metadata is written beside it as ``<path>.json`` for people to read; loading never
uses it. Nothing is ever pickled: object arrays are refused on save and on load.

Atomic write: the data go to a temporary file in the target's directory, are flushed and
fsync'ed, and only then ``os.replace`` puts them at the target, so a crash or an error
mid-write leaves the previous checkpoint as it was and no partial file behind.
"""
from __future__ import annotations

import json
import os
import tempfile
import zipfile
import zlib

from .backend import CPU, backend_of
from .errors import CheckpointError

_np = CPU.xp  # host-side file I/O (NumPy)

META_KEY = "__meta_json__"
FORMAT_VERSION = 1


def checkpoint_name(epoch: float, val_loss: float, prefix: str = "lm") -> str:
    """char-rnn-style file name, e.g. ``checkpoint_name(3.2, 1.23454) == "lm_epoch3.20_val1.2345.npz"``."""
    return f"{prefix}_epoch{float(epoch):.2f}_val{float(val_loss):.4f}.npz"


def sidecar_path(path) -> str:
    """Where the human-readable metadata of checkpoint ``path`` goes: ``<path>.json``."""
    return os.fspath(path) + ".json"


# --------------------------------------------------------------------------- writing
def write_atomically(path, write) -> None:
    """Call ``write(file)`` on a binary temporary file beside ``path``, fsync it, then move
    it onto ``path``; on any failure the temporary file is removed and ``path`` is untouched.
    The file gets the usual permissions (0666 less the umask), not mkstemp's private 0600.
    Every file the package writes (checkpoints, history, reports) goes through here."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".",
                               suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_current_umask())
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_directory(directory)


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_directory(directory: str) -> None:
    """Make the rename durable (best effort: not every OS lets a directory be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _host_arrays(arrays: dict) -> dict:
    """Host NumPy copies of ``arrays``, checked: string keys, no object dtypes, no META_KEY."""
    host = {}
    for key, a in arrays.items():
        if not isinstance(key, str) or not key or key == META_KEY:
            raise CheckpointError(f"The array name {key!r} cannot be used in a checkpoint.")
        h = _np.asarray(backend_of(a).asnumpy(a))
        if h.dtype.hasobject:
            raise CheckpointError(f"The array {key!r} holds Python objects, which checkpoints refuse to store.")
        host[key] = h
    return host


def _write_npz(f, host: dict) -> None:
    """The ``.npz`` layout (a zip of ``<name>.npy`` members) written with pickling disabled."""
    with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for key, a in host.items():
            with zf.open(key + ".npy", "w", force_zip64=True) as member:
                _np.lib.format.write_array(member, a, allow_pickle=False)


def save_checkpoint(path, arrays: dict, meta: dict) -> None:
    """Write ``arrays`` and ``meta`` (plus ``format_version``) to ``path`` atomically, then
    the ``<path>.json`` sidecar. The directory is created when missing.

    arrays: name -> array of any shape, dtype and backend.  meta: JSON-serialisable dict.
    Raises CheckpointError for bad names, object arrays, non-JSON metadata or an OS error.
    """
    path = os.fspath(path)
    host = _host_arrays(arrays)
    record = dict(meta, format_version=FORMAT_VERSION)
    try:
        meta_json = json.dumps(record, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"The checkpoint metadata is not JSON-serialisable ({exc}).") from None
    host[META_KEY] = _np.frombuffer(meta_json.encode("utf-8"), dtype=_np.uint8)
    readable = (json.dumps(record, sort_keys=True, indent=2) + "\n").encode("utf-8")
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        write_atomically(path, lambda f: _write_npz(f, host))
        write_atomically(sidecar_path(path), lambda f: f.write(readable))
    except OSError as exc:
        raise CheckpointError(f"Could not write the checkpoint {path!r} "
                              f"({exc.strerror or exc}).") from exc


# --------------------------------------------------------------------------- reading
_READ_ERRORS = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error)


def load_checkpoint(path):
    """(arrays, meta) from a file written by ``save_checkpoint``; arrays are host NumPy,
    bit-identical to what was saved. Raises CheckpointError for a missing, truncated,
    corrupt or foreign file, missing or unreadable metadata, or another format version."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"There is no checkpoint file at {path!r}.")
    try:
        npz = _np.load(path, allow_pickle=False)
        if not isinstance(npz, _np.lib.npyio.NpzFile):
            raise CheckpointError(f"The file {path!r} is a single .npy array, not an .npz checkpoint.")
        with npz:
            arrays = {key: npz[key] for key in npz.files}
    except _READ_ERRORS as exc:
        raise CheckpointError(f"The checkpoint {path!r} is corrupt or not a checkpoint "
                              f"({_reason(exc)}).") from None
    meta = _read_meta(path, arrays.pop(META_KEY, None))
    return arrays, meta


def _reason(exc: BaseException) -> str:
    """A short clause saying why NumPy or zipfile could not read a file."""
    text = str(exc)
    if "pickle" in text.lower():
        return "it is not an .npz archive, or it holds pickled objects, which are never loaded"
    first = text.strip().splitlines()[0] if text.strip() else ""
    return f"{type(exc).__name__}: {first.split('. ')[0].rstrip('.')}" if first else type(exc).__name__


def _read_meta(path: str, raw) -> dict:
    """The metadata dict decoded from its uint8 array (N,), with its format version checked."""
    if raw is None:
        raise CheckpointError(f"The file {path!r} has no scratchrnn metadata, so it is not a checkpoint.")
    try:
        meta = json.loads(raw.astype(_np.uint8).tobytes().decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise CheckpointError(f"The metadata of checkpoint {path!r} is not valid JSON.") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"The metadata of checkpoint {path!r} is not a JSON object.")
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(f"The checkpoint {path!r} has format version {version!r}, "
                              f"but this scratchrnn reads version {FORMAT_VERSION}.")
    return meta
