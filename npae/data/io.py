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
history, ...), ``sha256``, a digest of the rest of the header and of every array's bytes, and,
for a file saved with a key, ``hmac_sha256``.

This module is the file format only: :func:`write` and :func:`read` know arrays and a JSON header,
nothing about models or optimizers. What goes into the header is :mod:`npae.models.model`'s
business (``Model.save``), how a model is rebuilt from it :mod:`npae.models.files`'s
(:func:`npae.models.files.load`); the optimizer's part is :mod:`npae.training.optim`'s, the
training state's :mod:`npae.training.loop`'s.

**Reading a file nobody vouches for** (:func:`read`). Loading never unpickles and never imports a
module the file names. Before any array is decompressed, :func:`read` checks the things that cost
memory or time: it opens only a regular file (a FIFO or a device is refused, never waited on),
reads the zip directory (at most ``MODEL_FILE_MAX_MEMBERS`` members, each a ``.npy`` with a name of
this layout, stored or deflated, not encrypted), reads the JSON header with a size cap
(``MODEL_HEADER_MAX_BYTES``), a nesting cap (``MODEL_HEADER_MAX_DEPTH``), no NaN or infinity and no
repeated key, checks that the header's list of arrays names exactly the members, each with a
numeric dtype and a size the member's ``.npy`` header and the zip directory agree on, and that
their total stays under ``max_bytes`` (``MODEL_FILE_MAX_BYTES``); then it lets the caller check the
header (``check=``: :func:`npae.load` compares the declared architecture with the arrays there,
without building anything). Only then are the arrays streamed, each into an array of the declared
size, and refused if they hold a NaN or an inf. Every problem raises :class:`ModelFileError`
naming the file and the field; the constants live in :mod:`npae.constants` (docs/files.md).

**Integrity and authenticity.** ``sha256`` detects corruption (a truncated copy, a flipped bit, a
hand edit that forgot the digest). It is *not* a signature: anyone who can write the file can
recompute it. ``write(..., key=k)`` adds ``hmac_sha256``, an HMAC-SHA256 of the same bytes under the
secret key ``k`` (bytes or str; ``NPAE_MODEL_KEY`` when ``key`` is None): only a holder of the key
can produce it. ``read(..., key=k)`` refuses a file whose HMAC does not verify (another key, or
modified after signing) and a file that carries none (an unsigned file could come from anyone, so
asking for a key and getting an unsigned file is an error, not a warning); ``read`` without a key
refuses a signed file (its signature would go unchecked). The HMAC says who wrote the file; it does
not encrypt it.

Writing is atomic: the file is written to a temporary file in the same directory, flushed to disk,
then renamed over ``path`` (:func:`os.replace`), so an interrupted or failed save leaves the previous
file intact. ``path`` is used exactly as given (no ``.npz`` is appended); ``.npz`` is the convention.
A file stores finite numbers only: :func:`write` refuses an array holding a NaN or an inf.
"""
import contextlib
import hashlib
import hmac
import io as _io
import json
import math
import os
import re
import stat
import struct
import tempfile
import zipfile
import zlib

import numpy as np

from npae import constants
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


def write(path, header, arrays, *, key=None):
    """Write ``arrays`` and the JSON-able ``header`` to ``path`` atomically; return the path.

    ``header`` gets ``format``, ``format_version``, ``arrays`` (the list of names, shapes and
    dtypes), ``sha256`` and, when there is a key (``key``, else ``NPAE_MODEL_KEY``),
    ``hmac_sha256`` added; ``arrays`` maps names (``param/...``, ``optim/...``, ``train/...``) to
    finite numeric arrays (a NaN or an inf raises :class:`ModelFileError` naming the array, before
    anything is written). ``path`` is used as given (``.npz`` is not appended); its directory must
    exist.
    """
    path = _check_path(path)
    key = resolve_key(key)
    if os.path.isdir(path):
        raise IsADirectoryError(f"cannot save to {path!r}: it is a directory")
    out = {}
    for name, a in arrays.items():
        if not name.startswith(("param/", "optim/", "train/")):
            raise ValueError(f"array names must start with 'param/', 'optim/' or 'train/', got {name!r}")
        a = np.ascontiguousarray(a)
        if a.dtype.kind not in _ARRAY_KINDS:
            raise TypeError(f"cannot save array {name!r} of dtype {a.dtype}: only numbers are stored")
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            bad = int(a.size - np.count_nonzero(np.isfinite(a)))
            raise ModelFileError(f"{path}: cannot save: array {name!r} holds {bad} NaN/inf entries of "
                                 f"{a.size}; a model file stores finite numbers only (did training "
                                 f"diverge?)")
        out[name] = a
    header = {**header, "format": FORMAT_NAME, "format_version": FORMAT_VERSION,
              "arrays": _describe(out)}
    for field in _SIGNATURE_FIELDS:
        header.pop(field, None)
    if key is not None:
        header["hmac_sha256"] = _hmac(key, header, out)
    header["sha256"] = _digest(header, out)  # covers the HMAC too: readers without a key check it
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
    """The content of a model file: ``header`` (dict), ``arrays`` (dict of the arrays other than the
    header; empty while the ``check`` of :func:`read` runs), ``listing`` (name -> ``(shape,
    dtype)`` of every array, from the verified header) and ``path``. Built by :func:`read`."""

    def __init__(self, path, header, arrays, listing):
        self.path, self.header, self.arrays, self.listing = path, header, arrays, listing

    @property
    def is_checkpoint(self):
        return self.header.get("training") is not None

    @property
    def params(self):
        return {k[len("param/"):]: a for k, a in self.arrays.items() if k.startswith("param/")}


def read(path, *, key=None, max_bytes=None, check=None):
    """Open ``path`` without unpickling, check it step by step and return a :class:`ModelFile`.

    Parameters
    ----------
    path : str or os.PathLike
    key : bytes or str, optional
        Verify the file's HMAC-SHA256 with this key (default: ``NPAE_MODEL_KEY`` when set). With a
        key, an unsigned file is refused; without one, a signed file is refused.
    max_bytes : int, optional
        Largest total size of the arrays (default ``npae.constants.MODEL_FILE_MAX_BYTES``).
    check : callable, optional
        ``check(model_file)`` runs after the header and the list of arrays are verified and before
        any array is decompressed (``model_file.arrays`` is still empty); it raises
        :class:`ModelFileError` to refuse the file.

    Every refusal is a :class:`ModelFileError` naming the file and what is wrong (see the module
    docstring for the order of the checks); a missing file is a FileNotFoundError.
    """
    path = _check_path(path)
    key = resolve_key(key)
    limit = constants.MODEL_FILE_MAX_BYTES if max_bytes is None else max_bytes
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise InputError(f"max_bytes must be a positive integer, got {limit!r}")
    with _open_regular(path) as fh, _corrupt_as_model_file_error(path):
        magic = fh.read(6)
        if magic.startswith(b"\x93NUMPY"):
            raise ModelFileError(f"{path}: not an npae model file (a single .npy array, not a .npz)")
        if not magic.startswith(b"PK"):
            raise ModelFileError(f"{path}: truncated or corrupt file: not a .npz (zip) archive "
                                 f"({len(magic)} leading bytes {magic!r})")
        _check_directory(path, fh, os.fstat(fh.fileno()).st_size)
        with zipfile.ZipFile(fh) as zf:
            members = _members(path, zf)
            header = _read_header(path, zf, members.pop(HEADER_KEY, None))
            listing = _check_listing(path, header, members, limit)
            if key is None and "hmac_sha256" in header:
                raise ModelFileError(f"{path}: is signed (hmac_sha256): pass key= (or set {KEY_ENV}) "
                                     f"to verify it")
            if key is not None and "hmac_sha256" not in header:
                raise ModelFileError(f"{path}: is not signed, so where it came from cannot be "
                                     f"verified; a key was given (key= or {KEY_ENV}), so unsigned "
                                     f"files are refused. Load it without a key only if you trust "
                                     f"its source")
            mf = ModelFile(path, header, {}, listing)
            if check is not None:
                with _as_is():
                    check(mf)
            mf.arrays = _read_arrays(path, zf, members, header, listing, key)
    return mf


class _CheckError(Exception):
    """Carries an exception raised by the caller's ``check`` past the corrupt-file handler."""


@contextlib.contextmanager
def _as_is():
    try:
        yield
    except Exception as err:
        raise _CheckError() from err


@contextlib.contextmanager
def _corrupt_as_model_file_error(path):
    """What the zip and .npy readers raise on a damaged file, as one ModelFileError naming it; the
    ``check`` callback's own exceptions pass unchanged."""
    try:
        yield
    except ModelFileError:
        raise
    except _CheckError as err:
        raise err.__cause__ from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError,
            struct.error, ValueError, NotImplementedError) as err:
        raise ModelFileError(f"{path}: truncated or corrupt file ({type(err).__name__}: "
                             f"{str(err)[:200]}); not a complete npae model file") from None


def _open_regular(path):
    """``path`` opened for reading if it is a regular file; never blocks on a FIFO."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise FileNotFoundError(f"no model file at {path!r}") from None
    except OSError as err:
        raise ModelFileError(f"{path}: cannot be opened as a model file ({err.strerror})") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = ("a directory" if stat.S_ISDIR(mode) else "a FIFO (named pipe)" if stat.S_ISFIFO(mode)
                    else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a socket"
                    if stat.S_ISSOCK(mode) else "not a regular file")
            raise ModelFileError(f"{path}: is {kind}, not a model file; only regular files are read")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _check_directory(path, fh, size):
    """Refuse a zip whose end record announces more members, or a larger directory, than a model
    file can have, before :mod:`zipfile` reads that directory into memory."""
    tail_len = min(size, 22 + 65535)
    fh.seek(size - tail_len)
    tail = fh.read(tail_len)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < 22:
        raise ModelFileError(f"{path}: truncated or corrupt file: no zip directory at its end; not a "
                             f"complete .npz")
    _, disk, cd_disk, n_disk, n_total, cd_size, _, _ = struct.unpack("<4s4H2LH", tail[at:at + 22])
    if at >= 20 and tail[at - 20:at - 16] == b"PK\x06\x07":  # zip64: the counts are there
        _, _, offset, _ = struct.unpack("<4sLQL", tail[at - 20:at])
        if offset + 56 > size:
            raise ModelFileError(f"{path}: truncated or corrupt file: bad zip64 directory record")
        fh.seek(offset)
        record = fh.read(56)
        if record[:4] != b"PK\x06\x06":
            raise ModelFileError(f"{path}: truncated or corrupt file: bad zip64 directory record")
        _, _, _, _, disk, cd_disk, n_disk, n_total, cd_size, _ = struct.unpack("<4sQ2H2L4Q", record)
    cap = constants.MODEL_FILE_MAX_MEMBERS
    if disk or cd_disk or n_disk != n_total:
        raise ModelFileError(f"{path}: a multi-part zip archive; a model file is one .npz")
    if n_total > cap or cd_size > cap * 1024:
        raise ModelFileError(f"{path}: its zip directory lists {n_total} members ({cd_size} bytes); "
                             f"a model file has at most {cap} (npae.constants.MODEL_FILE_MAX_MEMBERS)")


def _members(path, zf):
    """``{array name: ZipInfo}`` after checking every member's name, compression and encryption."""
    members = {}
    for info in zf.infolist():
        name = info.filename
        if not _MEMBER_NAME.fullmatch(name) or "//" in name or name.endswith("/.npy"):
            raise ModelFileError(f"{path}: unexpected member {name[:80]!r}: an npae model file holds "
                                 f"only {HEADER_KEY}.npy and param/, optim/, train/ .npy arrays")
        key = name[:-len(".npy")]
        if key in members:
            raise ModelFileError(f"{path}: member {name!r} appears twice in the zip directory")
        if info.flag_bits & 0x1:
            raise ModelFileError(f"{path}: member {name!r} is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise ModelFileError(f"{path}: member {name!r} uses zip compression method "
                                 f"{info.compress_type}; only stored or deflated members are read")
        members[key] = info
    return members


def _read_exact(fp, n, path, what):
    data = fp.read(n)
    if len(data) != n:
        raise ModelFileError(f"{path}: truncated or corrupt file: {what} ends early")
    return data


def _read_npy_header(path, fp, name):
    """``(shape, dtype, header length)`` of the ``.npy`` stream ``fp``; reads only its header."""
    magic = _read_exact(fp, 8, path, f"member {name!r}")
    if magic[:6] != b"\x93NUMPY":
        raise ModelFileError(f"{path}: member {name!r} is not a .npy array")
    version = (magic[6], magic[7])
    if version not in ((1, 0), (2, 0)):
        raise ModelFileError(f"{path}: member {name!r} has .npy format version {version}; npae reads "
                             f"1.0 and 2.0")
    size_format = "<H" if version == (1, 0) else "<I"
    raw = _read_exact(fp, struct.calcsize(size_format), path, f"member {name!r}")
    length = struct.unpack(size_format, raw)[0]
    if length > _NPY_HEADER_MAX:
        raise ModelFileError(f"{path}: member {name!r} has a {length}-byte .npy header; npae writes "
                             f"about 128")
    text = _read_exact(fp, length, path, f"member {name!r}")
    reader = (np.lib.format.read_array_header_1_0 if version == (1, 0)
              else np.lib.format.read_array_header_2_0)
    try:
        shape, fortran, dtype = reader(_io.BytesIO(raw + text), max_header_size=_NPY_HEADER_MAX)
    except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError) as err:
        raise ModelFileError(f"{path}: member {name!r} has an unreadable .npy header "
                             f"({str(err)[:120]})") from None
    if fortran:
        raise ModelFileError(f"{path}: member {name!r} is stored in Fortran order; npae writes C order")
    if dtype.hasobject:
        raise ModelFileError(f"{path}: member {name!r} holds an object (pickled) array; npae model "
                             f"files hold plain numeric arrays only, and loading never unpickles")
    return tuple(shape), dtype, 8 + len(raw) + length


def _read_header(path, zf, info):
    """The JSON header, read with a size cap, parsed with a nesting cap and no NaN, inf or
    repeated key, and checked for the fields this module owns."""
    if info is None:
        raise ModelFileError(f"{path}: no {HEADER_KEY!r} entry; not an npae model file")
    cap = constants.MODEL_HEADER_MAX_BYTES
    if info.file_size > cap + _NPY_HEADER_MAX + 10:
        raise ModelFileError(f"{path}: its header member declares {info.file_size} bytes; the limit is "
                             f"{cap} (npae.constants.MODEL_HEADER_MAX_BYTES)")
    with zf.open(info) as fp:
        shape, dtype, start = _read_npy_header(path, fp, HEADER_KEY)
        if dtype != np.uint8 or len(shape) != 1:
            raise ModelFileError(f"{path}: header must be a 1-D uint8 array, got {dtype} {shape}")
        if shape[0] > cap or info.file_size != start + shape[0]:
            raise ModelFileError(f"{path}: header of {shape[0]} bytes in a member of {info.file_size} "
                                 f"bytes; the limit is {cap} (npae.constants.MODEL_HEADER_MAX_BYTES)")
        blob = _read_exact(fp, shape[0], path, "the header")
    header = _parse_json(path, blob)
    _check_header(path, header)
    return header


def _refuse_constant(name):
    raise ValueError(f"{name} is not a number a model file may hold")


def _finite_float(text):
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:30]} overflows")
    return value


def _unique_keys(pairs):
    out = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"key {k[:40]!r} appears twice in one object")
        out[k] = v
    return out


def _parse_json(path, blob):
    # A list or an object costs some 60 bytes of memory for 2 bytes of text: cap their number first
    # (npae writes two per array and a few dozen more; brackets inside strings only count extra).
    containers, cap = blob.count(b"[") + blob.count(b"{"), 4 * constants.MODEL_FILE_MAX_MEMBERS + 1000
    if containers > cap:
        raise ModelFileError(f"{path}: header holds {containers} lists and objects; a model file's has "
                             f"at most {cap} (4 per member of npae.constants.MODEL_FILE_MAX_MEMBERS)")
    try:
        header = json.loads(blob.decode("utf-8"), parse_constant=_refuse_constant,
                            parse_float=_finite_float, object_pairs_hook=_unique_keys)
    except RecursionError:
        raise ModelFileError(f"{path}: header nests lists or objects too deeply (limit "
                             f"{constants.MODEL_HEADER_MAX_DEPTH}); tampered or corrupt") from None
    except (UnicodeDecodeError, ValueError) as err:  # JSONDecodeError is a ValueError
        raise ModelFileError(f"{path}: header is not valid JSON ({str(err)[:160]}); tampered or "
                             f"corrupt") from None
    depth, todo = 0, [(header, 1)]
    while todo:
        value, level = todo.pop()
        if isinstance(value, (dict, list)):
            depth = max(depth, level)
            if depth > constants.MODEL_HEADER_MAX_DEPTH:
                raise ModelFileError(f"{path}: header nests lists or objects more than "
                                     f"{constants.MODEL_HEADER_MAX_DEPTH} deep "
                                     f"(npae.constants.MODEL_HEADER_MAX_DEPTH); tampered or corrupt")
            todo.extend((v, level + 1) for v in (value.values() if isinstance(value, dict) else value)
                        if isinstance(v, (dict, list)))
    return header


_DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")


def _check_header(path, header):
    """The fields of the format itself: kind, version, names, signatures, the array list."""
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
        raise ModelFileError(f"{path}: header does not describe an {FORMAT_NAME!r} file")
    version = header.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ModelFileError(f"{path}: bad format_version {version!r:.40}")
    if version > FORMAT_VERSION:
        raise ModelFileError(f"{path}: written with file format version {version} (npae "
                             f"{str(header.get('npae_version'))[:40]}); this npae reads versions up "
                             f"to {FORMAT_VERSION}: upgrade npae to load it")
    for field in ("class", "module"):
        value = header.get(field)
        if not isinstance(value, str) or len(value) > 200 or not _DOTTED.fullmatch(value):
            raise ModelFileError(f"{path}: header field {field!r} is missing or not a dotted Python "
                                 f"name ({value!r:.60})")
    if not isinstance(header.get("npae_version", ""), str):
        raise ModelFileError(f"{path}: header field 'npae_version' is not a string")
    if not isinstance(header.get("config"), dict):
        raise ModelFileError(f"{path}: header field 'config' is missing or not an object")
    for field in ("rng_state", "training"):
        if not isinstance(header.get(field), (dict, type(None))):
            raise ModelFileError(f"{path}: header field {field!r} must be an object or null")
    for field in _SIGNATURE_FIELDS:
        value = header.get(field)
        if (field == "sha256" or value is not None) and not (
                isinstance(value, str) and _HEX64.fullmatch(value)):
            raise ModelFileError(f"{path}: header field {field!r} is missing or not a SHA-256 hex "
                                 f"digest; tampered or corrupt")
    listed = header.get("arrays")
    if not isinstance(listed, dict):
        raise ModelFileError(f"{path}: header has no array list")


def _check_listing(path, header, members, limit):
    """``{name: (shape, dtype)}`` from the header's array list, after checking it names exactly
    the members, that every shape and dtype is one a model file may hold, and that the total fits
    ``limit``. Reads nothing."""
    listed = header["arrays"]
    missing = sorted(k for k in listed if k not in members)
    extra = sorted(k for k in members if k not in listed)
    if missing or extra:
        raise ModelFileError(f"{path}: arrays do not match the header: missing {missing[:10]}, "
                             f"unexpected {extra[:10]}")
    listing, total = {}, 0
    for name, spec in listed.items():
        if not isinstance(spec, dict) or set(spec) != {"shape", "dtype"}:
            raise ModelFileError(f"{path}: header entry of array {name!r} must be an object with "
                                 f"'shape' and 'dtype'")
        shape, dtype = spec["shape"], spec["dtype"]
        if (not isinstance(shape, list) or len(shape) > 32
                or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape)):
            raise ModelFileError(f"{path}: header gives array {name!r} the shape {shape!r:.80}; a shape "
                                 f"is a list of at most 32 non-negative integers")
        if not isinstance(dtype, str) or dtype not in _DTYPES:
            raise ModelFileError(f"{path}: array {name!r} has dtype {dtype!r:.40}; only numbers are "
                                 f"allowed (bool, integers, float16/32/64 in native byte order)")
        dtype = np.dtype(dtype)
        nbytes = math.prod(shape) * dtype.itemsize  # Python integers: no overflow
        total += nbytes
        if total > limit:
            raise ModelFileError(f"{path}: its arrays declare more than {limit} bytes (npae.constants."
                                 f"MODEL_FILE_MAX_BYTES, or max_bytes=); refused before reading them")
        size = members[name].file_size
        if not nbytes <= size <= nbytes + _NPY_HEADER_MAX + 10:
            raise ModelFileError(f"{path}: member {name!r} holds {size} bytes; the header's shape "
                                 f"{tuple(shape)} {dtype.str} needs {nbytes} plus a .npy header")
        listing[name] = (tuple(shape), dtype)
    return listing


def _read_arrays(path, zf, members, header, listing, key):
    """Stream every array (in name order) into an array of its declared shape and dtype, checking
    each member's ``.npy`` header against the listing, the bytes against the digest (and the HMAC
    under ``key``), and floats for NaN and inf."""
    sha = hashlib.sha256(_canonical(header))
    mac = hmac.new(key, _canonical(header, _SIGNATURE_FIELDS), hashlib.sha256) if key else None
    arrays = {}
    for name in sorted(listing):
        shape, dtype = listing[name]
        info = members[name]
        with zf.open(info) as fp:
            got_shape, got_dtype, start = _read_npy_header(path, fp, name)
            if got_shape != shape or got_dtype != dtype:
                raise ModelFileError(f"{path}: array {name!r} has shape {got_shape} dtype "
                                     f"{got_dtype.str}; the header says {shape} {dtype.str}")
            if info.file_size != start + math.prod(shape) * dtype.itemsize:
                raise ModelFileError(f"{path}: member {name!r} holds {info.file_size} bytes; its "
                                     f".npy header and shape say {start} + "
                                     f"{math.prod(shape) * dtype.itemsize}")
            a = np.empty(shape, dtype=dtype)
            view = memoryview(a.reshape(-1).view(np.uint8))
            for pos in range(0, a.nbytes, _CHUNK):
                chunk = _read_exact(fp, min(_CHUNK, a.nbytes - pos), path, f"array {name!r}")
                view[pos:pos + len(chunk)] = chunk
            if fp.read(1):
                raise ModelFileError(f"{path}: member {name!r} holds more bytes than its shape")
        for h in (sha, mac):
            if h is not None:
                h.update(_frame(name, dtype, shape))
                h.update(view)
        if dtype.kind == "f" and not np.isfinite(a).all():
            bad = int(a.size - np.count_nonzero(np.isfinite(a)))
            raise ModelFileError(f"{path}: array {name!r} holds {bad} NaN/inf entries; npae writes "
                                 f"finite numbers only (tampered or corrupt)")
        arrays[name] = a
    if not hmac.compare_digest(sha.hexdigest(), header["sha256"]):
        raise ModelFileError(f"{path}: digest mismatch: the header or the arrays were modified "
                             f"after saving (tampered or corrupt file)")
    if mac is not None and not hmac.compare_digest(mac.hexdigest(), header["hmac_sha256"]):
        raise ModelFileError(f"{path}: signature (hmac_sha256) does not match this key: signed with "
                             f"another key, or modified after signing")
    return arrays
