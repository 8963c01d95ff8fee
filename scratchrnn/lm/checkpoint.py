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

import contextlib
import json
import math
import os
import struct
import tempfile
import zipfile
import zlib
from typing import Any, NamedTuple

from scratchrnn.core.backend import CPU, backend_of
from scratchrnn.core.errors import CheckpointError

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
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".",
                                   suffix=".tmp")
    except OSError as exc:
        raise _naming(exc, path) from None
    try:
        os.fchmod(fd, 0o666 & ~_current_umask())
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError) and exc.filename is None:
            raise _naming(exc, path) from None       # a full disk says which file it stopped
        raise
    _fsync_directory(directory)


def _naming(exc: OSError, path: str) -> OSError:
    """The same OSError (errno, reason) with ``path`` as its file name."""
    if exc.filename is not None:
        return exc
    return OSError(exc.errno, exc.strerror or str(exc) or type(exc).__name__, path)


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
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        write_atomically(path, lambda f: _write_npz(f, host))
        _write_sidecar(path, _sidecar_bytes(record))
    except OSError as exc:
        raise CheckpointError(f"Could not write the checkpoint {path!r} "
                              f"({exc.strerror or exc}).") from exc


def _sidecar_bytes(record: dict) -> bytes:
    return (json.dumps(record, sort_keys=True, indent=2) + "\n").encode("utf-8")


def _write_sidecar(path, readable: bytes) -> None:
    write_atomically(sidecar_path(path), lambda f: f.write(readable))


def repair_sidecar(path) -> bool:
    """Make ``<path>.json`` say what the ``.npz`` at ``path`` holds (the ``.npz`` is the truth:
    a write killed between the two leaves the old sidecar). Returns True when it was rewritten;
    a checkpoint that does not load is left alone (its loader says why)."""
    try:
        _, meta = inspect_checkpoint(path)
    except CheckpointError:
        return False
    want = _sidecar_bytes(meta)
    try:
        with open(sidecar_path(path), "rb") as f:
            if f.read() == want:
                return False
    except OSError:
        pass
    _write_sidecar(path, want)
    return True


# --------------------------------------------------------------------------- reading
# What a checkpoint may declare before anything is inflated or allocated. Checkpoints are
# written uncompressed, so a member's data is at most the file's size; a compressed member
# (a user may re-zip a file) may inflate to MAX_INFLATION times its compressed size, plus
# INFLATE_ALLOWANCE bytes so that small arrays of zeros still load. Anything larger is a
# zip bomb or damage, and is refused before a byte of it is inflated.
MAX_INFLATION = 64
INFLATE_ALLOWANCE = 16 << 20
MAX_META_BYTES = 256 << 20
ALLOWED_KINDS = "biuf"          # bool, signed and unsigned integers, floats
_NPY_MAGIC = b"\x93NUMPY"


class Member(NamedTuple):
    """One array of a checkpoint as its ``.npy`` header declares it; nothing read yet."""
    name: str                   # the array's key (the zip member name without ".npy")
    shape: tuple                # declared shape
    dtype: Any                  # declared NumPy dtype (kind in ALLOWED_KINDS)
    info: zipfile.ZipInfo       # where it lies in the zip


class _Refused(Exception):
    """A reason (one clause) why a file is not a readable checkpoint; becomes CheckpointError."""


_READ_ERRORS = (OSError, ValueError, EOFError, KeyError, IndexError, TypeError, OverflowError,
                RecursionError, NotImplementedError, RuntimeError, struct.error,
                zipfile.BadZipFile, zlib.error)


@contextlib.contextmanager
def _reading(path):
    """Turn whatever reading the checkpoint at ``path`` raises into one CheckpointError
    sentence naming the file: refused by a check, or corrupt (a CheckpointError passes)."""
    try:
        yield
    except _Refused as why:
        raise CheckpointError(f"The checkpoint {path!r} is refused: {why}.") from None
    except CheckpointError:           # already one sentence naming the file (a single .npy)
        raise
    except _READ_ERRORS as exc:
        raise CheckpointError(f"The checkpoint {path!r} is corrupt or not a checkpoint "
                              f"({_reason(exc)}).") from None


def inspect_checkpoint(path):
    """(members, meta) of the checkpoint at ``path`` without reading any array data:
    ``members`` maps each array name to its Member (declared shape and dtype, checked
    against the member's size, the file's size and the inflation bound), ``meta`` is the
    decoded metadata dict. Raises CheckpointError with one sentence naming the file."""
    path = os.fspath(path)
    if not os.path.isfile(path):       # also refuses FIFOs, devices and directories: no hang
        raise CheckpointError(f"There is no checkpoint file at {path!r}.")
    with _reading(path), open(path, "rb") as f:
        file_size = os.fstat(f.fileno()).st_size
        if f.read(len(_NPY_MAGIC)) == _NPY_MAGIC:
            raise CheckpointError(f"The file {path!r} is a single .npy array, not an .npz checkpoint.")
        f.seek(0)
        with zipfile.ZipFile(f) as zf:
            members = _declared_members(zf, file_size)
            meta_member = members.pop(META_KEY, None)
            raw = None if meta_member is None else _read_meta_bytes(zf, meta_member)
    return members, _read_meta(path, raw)


def _declared_members(zf, file_size):
    """{name: Member} for every member of ``zf``, each checked before anything is inflated."""
    members, inflated = {}, 0
    for info in zf.infolist():
        name = info.filename
        if not name.endswith(".npy") or name[:-4] in members:
            raise _Refused(f"its zip member {name!r} is not a single .npy array")
        if info.flag_bits & 0x1:
            raise _Refused(f"its member {name!r} is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise _Refused(f"its member {name!r} uses a compression scratchrnn does not read")
        if info.header_offset + info.compress_size > file_size:
            raise _Refused(f"its member {name!r} claims {info.compress_size:,} bytes beyond the "
                           f"end of the {file_size:,}-byte file")
        stored = info.compress_type == zipfile.ZIP_STORED
        if stored and info.file_size != info.compress_size:
            raise _Refused(f"its stored member {name!r} has two different sizes")
        inflated += info.file_size
        if info.file_size > MAX_INFLATION * info.compress_size + INFLATE_ALLOWANCE \
                or inflated > MAX_INFLATION * file_size + INFLATE_ALLOWANCE:
            raise _Refused(f"its member {name!r} would inflate to {info.file_size:,} bytes from "
                           f"{info.compress_size:,} compressed, more than scratchrnn inflates")
        members[name[:-4]] = _declared_member(zf, info)
    return members


def _declared_member(zf, info):
    """The Member of one zip entry: its .npy header read, its data size checked, no data read."""
    name = info.filename[:-4]
    with zf.open(info) as f:
        version = _np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = _np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = _np.lib.format.read_array_header_2_0(f)
        else:
            raise _Refused(f"its array {name!r} is in .npy format {version}, which is not read")
        header_bytes = f.tell()
    if dtype.hasobject:
        raise _Refused(f"its array {name!r} holds pickled objects, which are never loaded")
    if dtype.kind not in ALLOWED_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise _Refused(f"its array {name!r} has dtype {dtype.str!r}; only booleans, integers "
                       f"and real floats are read")
    if not all(isinstance(n, int) and n >= 0 for n in shape):
        raise _Refused(f"its array {name!r} declares the shape {shape!r}")
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes != info.file_size - header_bytes:
        raise _Refused(f"its array {name!r} declares shape {shape} of {dtype.name} "
                       f"({nbytes:,} bytes) but holds {info.file_size - header_bytes:,} bytes")
    return Member(name, tuple(shape), dtype, info)


def _read_meta_bytes(zf, member):
    """The raw metadata bytes (N,) uint8, after checking their declared size."""
    if member.dtype != _np.uint8 or len(member.shape) != 1:
        raise _Refused("its metadata is not a one-dimensional uint8 array")
    if member.shape[0] > MAX_META_BYTES:
        raise _Refused(f"its metadata declares {member.shape[0]:,} bytes")
    return _read_member(zf, member)


def _read_member(zf, member):
    """The array of one checked member, read with pickling off (the zip checks its CRC)."""
    with zf.open(member.info) as f:
        a = _np.lib.format.read_array(f, allow_pickle=False)
        if f.read(1):
            raise _Refused(f"its array {member.name!r} has bytes after its data")
    if a.shape != member.shape or a.dtype != member.dtype:
        raise _Refused(f"its array {member.name!r} changed while it was read")
    return a


def read_arrays(path, members):
    """{name: host NumPy array} of the given Members of the checkpoint at ``path``
    (as returned by ``inspect_checkpoint``); CheckpointError if the data are damaged."""
    path = os.fspath(path)
    with _reading(path), zipfile.ZipFile(path) as zf:
        return {name: _read_member(zf, m) for name, m in members.items()}


def load_checkpoint(path, check=None):
    """(arrays, meta) from a file written by ``save_checkpoint``; arrays are host NumPy,
    bit-identical to what was saved.

    Every member's declared shape and dtype are checked against its size and the file's
    size before anything is inflated; then ``check(members, meta)`` (optional: a caller's
    schema, raising CheckpointError) sees the declarations before any array is read.
    Raises CheckpointError for a missing, truncated, corrupt or foreign file, missing or
    unreadable metadata, another format version, or a refused declaration."""
    members, meta = inspect_checkpoint(path)
    if check is not None:
        check(members, meta)
    return read_arrays(path, members), meta


def _reason(exc: BaseException) -> str:
    """A short clause saying why NumPy or zipfile could not read a file."""
    text = str(exc)
    if "pickle" in text.lower():
        return "it is not an .npz archive, or it holds pickled objects, which are never loaded"
    first = text.strip().splitlines()[0] if text.strip() else ""
    first = first.split(". ")[0].rstrip(".")[:200]
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def _read_meta(path: str, raw) -> dict:
    """The metadata dict decoded from its uint8 array (N,), with its format version checked."""
    if raw is None:
        raise CheckpointError(f"The file {path!r} has no scratchrnn metadata, so it is not a checkpoint.")
    try:
        meta = json.loads(raw.tobytes().decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise CheckpointError(f"The metadata of checkpoint {path!r} is not valid JSON.") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"The metadata of checkpoint {path!r} is not a JSON object.")
    version = meta.get("format_version")
    if version != FORMAT_VERSION or isinstance(version, bool):
        raise CheckpointError(f"The checkpoint {path!r} has format version {version!r}, "
                              f"but this scratchrnn reads version {FORMAT_VERSION}.")
    return meta
