"""Reading a model file nobody vouches for: :func:`read` (public as ``npae.data.io.read``) returns a
:class:`ModelFile`.

Loading never unpickles and never imports a module the file names. Before any array is decompressed,
:func:`read` checks the things that cost memory or time: it opens only a regular file (a FIFO or a
device is refused, never waited on), reads the zip directory (at most ``MODEL_FILE_MAX_MEMBERS``
members, each a ``.npy`` with a name of the layout of :mod:`npae.data.io`, stored or deflated, not
encrypted), reads the JSON header with a size cap (``MODEL_HEADER_MAX_BYTES``), a nesting cap
(``MODEL_HEADER_MAX_DEPTH``), no NaN or infinity and no repeated key, checks that the header's list
of arrays names exactly the members, each with a numeric dtype and a size the member's ``.npy``
header and the zip directory agree on, and that their total stays under ``max_bytes``
(``MODEL_FILE_MAX_BYTES``); then it lets the caller check the header (``check=``: :func:`npae.load`
compares the declared architecture with the arrays there, without building anything). Only then are
the arrays streamed, each into an array of the declared size, and refused if they hold a NaN or an
inf. Every problem raises :class:`ModelFileError` naming the file and the field; the constants live
in :mod:`npae.constants` (docs/files.md).
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
import zipfile
import zlib

import numpy as np

from npae import constants
from npae.data.io_format import (_CHUNK, _DTYPES, _HEX64, _MEMBER_NAME, _NPY_HEADER_MAX, _SIGNATURE_FIELDS,
                                 FORMAT_NAME, FORMAT_VERSION, HEADER_KEY, KEY_ENV, ModelFileError,
                                 _canonical, _check_path, _frame, resolve_key)
from npae.validation import InputError
from npae.version import __version__


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


_VERSION = re.compile(r"(\d{1,6})\.(\d{1,6})(?:\.(\d{1,6}))?")


def _version_tuple(text):
    """``(major, minor, patch)`` of a version string such as ``0.2.0`` or ``1.3.0.dev2``, or None."""
    match = _VERSION.match(text) if isinstance(text, str) else None
    return None if match is None else tuple(int(g or 0) for g in match.groups())


def _check_npae_version(path, claimed):
    """Refuse a file that says a newer npae wrote it (its fields may mean what this npae does not
    know), naming the file and both versions; a file without the field (an older writer) passes."""
    if claimed is None:
        return
    theirs, ours = _version_tuple(claimed), _version_tuple(__version__)
    if theirs is None:
        raise ModelFileError(f"{path}: header field 'npae_version' is not a version number "
                             f"({claimed!r:.40})")
    if theirs > ours:
        raise ModelFileError(f"{path} was written by npae {claimed[:40]}, newer than this npae "
                             f"{__version__}: upgrade npae to load it")


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
    _check_npae_version(path, header.get("npae_version"))
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
