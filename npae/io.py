"""Model files and checkpoints: one ``.npz`` of plain arrays plus a JSON header. Nothing is pickled.

Layout of a file (every entry is a plain numeric array)::

    __header__            uint8, the UTF-8 bytes of a JSON object (below)
    param/<name>          every entry of ``model.params``, in forward order
    optim/<slot>/<name>   optimizer state (checkpoints only), e.g. ``optim/m/encoder.0.W``
    train/<name>          other training state (checkpoints only): the epoch's permutation when
                          saved mid-epoch, the best parameters of early stopping

The header holds ``format`` ("npae-model"), ``format_version``, ``npae_version``, the model's
``class`` and ``module``, its constructor ``config`` (enough to rebuild it), the generator state
``rng_state``, ``arrays`` (name -> shape and dtype of every other entry), ``training`` (``None`` for
a plain model file; for a checkpoint: epoch, optimizer class, hyperparameters and step count,
history, ...) and ``sha256``, a digest of the rest of the header and of every array's bytes.

This module is the file format only: :func:`write` and :func:`read` know arrays and a JSON header,
nothing about models or optimizers. What goes into the header and how a model is rebuilt from it
is :mod:`npae.model`'s business (``Model.save``, :func:`npae.model.load`); the optimizer's part is
:mod:`npae.optim`'s.

Reading (:func:`read`) opens the file with ``allow_pickle=False`` and refuses, with a
:class:`ModelFileError` naming the file and the problem: a truncated or non-zip file, object arrays,
an unreadable or tampered header (the digest does not match), a newer format version, and arrays
that differ from the header's list. The digest detects corruption; it is not a signature (anyone
who can write the file can recompute it).

Writing is atomic: the file is written to a temporary file in the same directory, flushed to disk,
then renamed over ``path`` (:func:`os.replace`), so an interrupted or failed save leaves the previous
file intact. ``path`` is used exactly as given (no ``.npz`` is appended); ``.npz`` is the convention.
"""
import contextlib
import hashlib
import json
import os
import tempfile
import zipfile

import numpy as np

FORMAT_NAME = "npae-model"
#: Version of the layout above. A reader refuses files with a larger number.
FORMAT_VERSION = 1
HEADER_KEY = "__header__"

_ARRAY_KINDS = "biuf"  # bool, signed, unsigned, float: all a model file ever needs


class ModelFileError(ValueError):
    """A model file or checkpoint that cannot be loaded safely; the message names the file."""


# --------------------------------------------------------------------------------------------------
# JSON header
# --------------------------------------------------------------------------------------------------
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


def _canonical(header):
    """Bytes the digest covers: the header without its digest, keys sorted, no spaces."""
    body = {k: v for k, v in header.items() if k != "sha256"}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8")


def _digest(header, arrays):
    h = hashlib.sha256(_canonical(header))
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"\0{name}\0{a.dtype.str}\0{a.shape}\0".encode("utf-8"))
        h.update(a.data)
    return h.hexdigest()


def _describe(arrays):
    return {name: {"shape": list(a.shape), "dtype": a.dtype.str} for name, a in arrays.items()}


# --------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------
def _check_path(path, what="path"):
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{what} must be a file name (str or os.PathLike), got {type(path).__name__}")
    path = os.fspath(path)
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not path:
        raise ValueError(f"{what} must be a non-empty file name")
    return path


def write(path, header, arrays):
    """Write ``arrays`` and the JSON-able ``header`` to ``path`` atomically; return the path.

    ``header`` gets ``format``, ``format_version``, ``arrays`` (the list of names, shapes and
    dtypes) and ``sha256`` added; ``arrays`` maps names (``param/...``, ``optim/...``,
    ``train/...``) to numeric arrays. ``path`` is used as given (``.npz`` is not appended); its
    directory must exist.
    """
    path = _check_path(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"cannot save to {path!r}: it is a directory")
    out = {}
    for name, a in arrays.items():
        if not name.startswith(("param/", "optim/", "train/")):
            raise ValueError(f"array names must start with 'param/', 'optim/' or 'train/', got {name!r}")
        a = np.ascontiguousarray(a)
        if a.dtype.kind not in _ARRAY_KINDS:
            raise TypeError(f"cannot save array {name!r} of dtype {a.dtype}: only numbers are stored")
        out[name] = a
    header = {**header, "format": FORMAT_NAME, "format_version": FORMAT_VERSION,
              "arrays": _describe(out)}
    header.pop("sha256", None)
    header["sha256"] = _digest(header, out)
    text = json.dumps(header, sort_keys=True)
    out[HEADER_KEY] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    _write_atomic(path, out)
    return path


def _write_atomic(path, arrays):
    """``np.savez`` into a temporary file next to ``path``, fsync, then rename over ``path``."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"cannot save to {path!r}: directory {directory!r} does not exist")
    mode = 0o644
    with contextlib.suppress(OSError):
        mode = os.stat(path).st_mode & 0o777  # keep the permissions of the file replaced
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)  # a file object: savez appends no suffix
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError, AttributeError):  # make the rename itself durable (POSIX)
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


# --------------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------------
class ModelFile:
    """The verified content of a model file: ``header`` (dict), ``arrays`` (dict of the arrays other
    than the header) and ``path``. Built by :func:`read`."""

    def __init__(self, path, header, arrays):
        self.path, self.header, self.arrays = path, header, arrays

    @property
    def is_checkpoint(self):
        return self.header.get("training") is not None

    @property
    def params(self):
        return {k[len("param/"):]: a for k, a in self.arrays.items() if k.startswith("param/")}


def read(path):
    """Open ``path`` without unpickling and check its integrity; return a :class:`ModelFile`.

    Checks: a readable zip of ``.npy`` arrays, no object arrays, a JSON header of this format with a
    version this npae reads, a digest matching the header and arrays, and exactly the arrays the
    header lists with the shapes and dtypes it lists.
    """
    path = _check_path(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no model file at {path!r}")
    with open(path, "rb") as fh:
        magic = fh.read(6)
    if magic.startswith(b"\x93NUMPY"):
        raise ModelFileError(f"{path}: not an npae model file (a single .npy array, not a .npz)")
    if not magic.startswith(b"PK"):
        raise ModelFileError(f"{path}: truncated or corrupt file: not a .npz (zip) archive "
                             f"({len(magic)} leading bytes {magic!r})")
    raw = {}
    try:
        with np.load(path, allow_pickle=False) as z:
            for key in z.files:
                raw[key] = z[key]
    except ValueError as err:
        if "allow_pickle" in str(err) or "Object arrays" in str(err):
            raise ModelFileError(f"{path}: holds an object (pickled) array; npae model files hold "
                                 f"plain numeric arrays only, and loading never unpickles") from None
        raise ModelFileError(f"{path}: not a readable npae model file ({err})") from None
    except (zipfile.BadZipFile, OSError, EOFError, KeyError) as err:
        raise ModelFileError(f"{path}: truncated or corrupt file ({type(err).__name__}: {err}); "
                             f"not a complete .npz") from None
    if HEADER_KEY not in raw:
        raise ModelFileError(f"{path}: no {HEADER_KEY!r} entry; not an npae model file")
    header = _parse_header(path, raw.pop(HEADER_KEY))
    for name, a in raw.items():
        if a.dtype.kind not in _ARRAY_KINDS:
            raise ModelFileError(f"{path}: array {name!r} has dtype {a.dtype}; only numbers are allowed")
    listed = header.get("arrays")
    if not isinstance(listed, dict):
        raise ModelFileError(f"{path}: header has no array list")
    missing = [k for k in listed if k not in raw]
    extra = [k for k in raw if k not in listed]
    if missing or extra:
        raise ModelFileError(f"{path}: arrays do not match the header: missing {missing}, "
                             f"unexpected {extra}")
    for name, a in raw.items():
        want = listed[name]
        if list(a.shape) != want.get("shape") or a.dtype.str != want.get("dtype"):
            raise ModelFileError(f"{path}: array {name!r} has shape {a.shape} dtype {a.dtype.str}; "
                                 f"the header says {tuple(want.get('shape', ()))} {want.get('dtype')}")
    if header.get("sha256") != _digest(header, raw):
        raise ModelFileError(f"{path}: digest mismatch: the header or the arrays were modified "
                             f"after saving (tampered or corrupt file)")
    return ModelFile(path, header, raw)


def _parse_header(path, blob):
    if blob.dtype != np.uint8 or blob.ndim != 1:
        raise ModelFileError(f"{path}: header must be a 1-D uint8 array, got {blob.dtype} {blob.shape}")
    try:
        header = json.loads(blob.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelFileError(f"{path}: header is not valid JSON ({err}); tampered or corrupt") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
        raise ModelFileError(f"{path}: header does not describe an {FORMAT_NAME!r} file")
    version = header.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ModelFileError(f"{path}: bad format_version {version!r}")
    if version > FORMAT_VERSION:
        raise ModelFileError(f"{path}: written with file format version {version} (npae "
                             f"{header.get('npae_version')}); this npae reads versions up to "
                             f"{FORMAT_VERSION}: upgrade npae to load it")
    for key in ("class", "module"):
        if not isinstance(header.get(key), str):
            raise ModelFileError(f"{path}: header field {key!r} is missing or not a string")
    if not isinstance(header.get("config"), dict):
        raise ModelFileError(f"{path}: header field 'config' is missing or not an object")
    return header
