"""Helpers for the hostile-checkpoint tests: the raw bytes of hand-made ``.npz`` files."""
import io
import json
import zipfile

import numpy as np


def npy(array):
    """The bytes of ``array`` as a ``.npy`` member (no pickle)."""
    buf = io.BytesIO()
    np.lib.format.write_array(buf, array, allow_pickle=False)
    return buf.getvalue()


def zip_of(members, compression=zipfile.ZIP_STORED):
    """Bytes of a zip whose members are given as {name: bytes}."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as zf:
        for name, payload in members.items():
            zf.writestr(name, payload)
    return buf.getvalue()


def meta_npy():
    """A metadata member that says only ``{"format_version": 1}``."""
    return npy(np.frombuffer(json.dumps({"format_version": 1}).encode(), dtype=np.uint8))
