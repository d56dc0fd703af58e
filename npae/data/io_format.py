"""The model-file format's shared pieces, used by the writer (:mod:`npae.data.io`) and the reader
(:mod:`npae.data.io_read`): the format's name and version, the member names and dtypes a file may
hold, :class:`ModelFileError`, the JSON encoding of a header (:func:`encode_json`), the bytes the
``sha256`` digest and the ``hmac_sha256`` signature cover, and the signing key
(:func:`resolve_key`). The layout itself is described in :mod:`npae.data.io` and docs/files.md.
"""
import hashlib
import hmac
import json
import os
import re

import numpy as np

from npae.validation import InputError, InputTypeError

FORMAT_NAME = "npae-model"
#: Version of the layout above. A reader refuses files with a larger number.
FORMAT_VERSION = 1
HEADER_KEY = "__header__"
#: Environment variable holding the key of :func:`write` and :func:`read` when ``key`` is None.
KEY_ENV = "NPAE_MODEL_KEY"

_ARRAY_KINDS = "biuf"  # bool, signed, unsigned, float: all a model file ever needs
#: The dtypes an array of a model file may have (native byte order, at most 8 bytes per number).
_DTYPES = frozenset(np.dtype(c).str for c in "?bBhHiIlLqQefd")
#: Member names: the header, or param/, optim/ or train/ and a name of printable ASCII.
_MEMBER_NAME = re.compile(r"(?:__header__|(?:param|optim|train)/[A-Za-z0-9_.\-/]{1,200})\.npy")
_NPY_HEADER_MAX = 65535  # bytes of one member's .npy header (numpy writes about 128)
_SIGNATURE_FIELDS = ("sha256", "hmac_sha256")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_CHUNK = 1 << 20  # bytes streamed at a time


class ModelFileError(ValueError):
    """A model file or checkpoint that cannot be loaded safely; the message names the file."""


def encode_json(value, where="config"):
    """A JSON-able copy of ``value``: dicts, lists (tuples become lists), numbers, strings, None;
    NumPy scalars become Python numbers and a ``np.random.Generator`` becomes None (a generator's
    state is saved on its own). Anything else raises a TypeError naming ``where``."""
    if isinstance(value, dict):
        return {str(k): encode_json(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode_json(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.dtype):
        return value.name
    if isinstance(value, np.random.Generator):
        return None
    raise TypeError(f"cannot save: {where} holds a {type(value).__name__} ({value!r:.60}), which a "
                    f"model file cannot store; it must hold numbers, strings, lists or dicts")


def _canonical(header, leave_out=("sha256",)):
    """Bytes a digest covers: the header without the fields ``leave_out``, keys sorted, no spaces."""
    body = {k: v for k, v in header.items() if k not in leave_out}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8")


def _frame(name, dtype, shape):
    """What a digest reads before an array's bytes: its name, dtype and shape."""
    return f"\0{name}\0{dtype.str}\0{tuple(shape)}\0".encode("utf-8")


def _digest(header, arrays):
    h = hashlib.sha256(_canonical(header))
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(_frame(name, a.dtype, a.shape))
        h.update(a.data)
    return h.hexdigest()


def _hmac(key, header, arrays):
    """HMAC-SHA256 under ``key`` of the header without its two signature fields and the arrays."""
    h = hmac.new(key, _canonical(header, _SIGNATURE_FIELDS), hashlib.sha256)
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(_frame(name, a.dtype, a.shape))
        h.update(a.data)
    return h.hexdigest()


def _describe(arrays):
    return {name: {"shape": list(a.shape), "dtype": a.dtype.str} for name, a in arrays.items()}


def resolve_key(key):
    """The HMAC key as bytes: ``key`` itself (bytes, or str encoded as UTF-8), else the environment
    variable ``NPAE_MODEL_KEY`` when set and not empty, else None (no signature)."""
    if key is None:
        key = os.environ.get(KEY_ENV) or None
        if key is None:
            return None
    if isinstance(key, str):
        key = key.encode("utf-8")
    if not isinstance(key, (bytes, bytearray, memoryview)):
        raise InputTypeError(f"key must be bytes or a str (the secret that signs model files), got "
                             f"{type(key).__name__}")
    key = bytes(key)
    if not key:
        raise InputError("key must not be empty")
    return key


def _check_path(path, what="path"):
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{what} must be a file name (str or os.PathLike), got {type(path).__name__}")
    path = os.fspath(path)
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not path:
        raise ValueError(f"{what} must be a non-empty file name")
    return path
