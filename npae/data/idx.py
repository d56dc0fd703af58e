"""The IDX format of LeCun's MNIST files: :func:`read_idx` (a file, gzip or raw),
:func:`parse_idx` (bytes), :func:`write_idx` (used by the tests), and the names IDX files go by
(``_IDX_NAME``). The declared size is checked against ``max_bytes`` before the body is read, and a
body shorter or longer than its header says is refused (:class:`~npae.data.bounded.DatasetError`).
"""
import contextlib
import gzip
import hashlib
import io
import re

import numpy as np

from npae.data.bounded import MAX_BYTES, DatasetError, _check_size, _open_regular, _read_upto
from npae.validation import InputTypeError

#: IDX type byte -> big-endian NumPy dtype (the format of LeCun's MNIST files).
IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

#: Most dimensions an IDX header may declare (its byte allows 255; NumPy arrays have at most 64).
IDX_MAX_DIMS = 32


@contextlib.contextmanager
def _idx_stream(path):
    """The decompressed bytes of a file as a stream, gzip detected by its magic bytes (not its
    name); yields ``(stream, size)`` with ``size`` None for gzip (unknown until read)."""
    with _open_regular(path) as (fh, size):
        gz = fh.read(2) == b"\x1f\x8b"
        fh.seek(0)
        if gz:
            with gzip.GzipFile(fileobj=fh, mode="rb") as stream:
                yield stream, None
        else:
            yield fh, size


def _read_idx_header(stream, path):
    """``(dtype, shape, header bytes)`` of an IDX stream; shape entries are Python ints."""
    head = _read_upto(stream, 4, path)
    if len(head) < 4:
        raise DatasetError(f"{path} is not an IDX file: only {len(head)} bytes")
    if head[0] != 0 or head[1] != 0 or head[2] not in IDX_DTYPES or head[3] == 0:
        raise DatasetError(f"{path} is not an IDX file: its magic number is {bytes(head).hex()}, "
                           "expected 00 00, a type byte 08..0e, the number of dimensions (>= 1)")
    dtype, ndim = np.dtype(IDX_DTYPES[head[2]]), head[3]
    if ndim > IDX_MAX_DIMS:
        raise DatasetError(f"{path}: its IDX header declares {ndim} dimensions, more than "
                           f"{IDX_MAX_DIMS} (MNIST's files have 1 or 3); not an array npae can read")
    dims = _read_upto(stream, 4 * ndim, path)
    if len(dims) < 4 * ndim:
        raise DatasetError(f"{path} is truncated inside its header ({4 + len(dims)} bytes, the "
                           f"{ndim} dimension sizes need {4 + 4 * ndim})")
    shape = tuple(int.from_bytes(dims[4 * k:4 * k + 4], "big") for k in range(ndim))
    return dtype, shape, bytes(head + dims)


def _read_idx_body(stream, size, path, dtype, shape, head, max_bytes, checksum=False):
    """The array of an IDX file whose header was just read (and the MD5 of the whole decompressed
    file when ``checksum``). The declared size is checked against ``max_bytes`` before reading;
    exactly that many bytes are read, plus one to prove nothing follows."""
    nbytes = _check_size(path, "the IDX data", shape, dtype.itemsize, max_bytes)
    expected = len(head) + nbytes
    if size is not None and size < expected:  # a raw file: its size is known before reading
        raise DatasetError(f"{path} is truncated: its header says shape {shape} ({expected} bytes) "
                           f"but the file holds {size} bytes")
    if size is not None and size > expected:
        raise DatasetError(f"{path} is corrupt: {size - expected} bytes after the data of shape {shape}")
    body = _read_upto(stream, nbytes, path)
    if len(body) < nbytes:
        raise DatasetError(f"{path} is truncated: its header says shape {shape} ({expected} bytes) "
                           f"but the data hold {len(head) + len(body)} bytes")
    if _read_upto(stream, 1, path):
        raise DatasetError(f"{path} is corrupt: more bytes after the data of shape {shape} "
                           f"({expected} bytes)")
    md5 = None
    if checksum:
        h = hashlib.md5(head, usedforsecurity=False)
        h.update(body)
        md5 = h.hexdigest()
    array = np.frombuffer(body, dtype).reshape(shape).astype(dtype.newbyteorder("="), copy=False)
    return array, md5


def read_idx(path, *, max_bytes=MAX_BYTES):
    """Read one IDX file (gzip or raw) into an array.

    Layout: two zero bytes, a type byte (0x08 uint8 ... 0x0E float64), the number of dimensions
    ``ndim``, then ``ndim`` big-endian uint32 sizes, then the values (big-endian, C order). The
    declared size may not exceed ``max_bytes``; a body shorter or longer than declared, a bad header,
    a corrupt gzip stream or a path that is not a regular file raise :class:`DatasetError`.
    """
    with _idx_stream(path) as (stream, size):
        dtype, shape, head = _read_idx_header(stream, path)
        return _finite(_read_idx_body(stream, size, path, dtype, shape, head, max_bytes)[0], path)


def parse_idx(data, name="IDX data", *, max_bytes=MAX_BYTES):
    """Parse the (decompressed) bytes of an IDX file; the checks of :func:`read_idx`, errors naming
    ``name``."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InputTypeError(f"parse_idx needs the file's bytes (bytes, bytearray or memoryview), got "
                             f"{type(data).__name__}; to read a file by name use read_idx(path)")
    stream = io.BytesIO(data)
    dtype, shape, head = _read_idx_header(stream, name)
    return _finite(_read_idx_body(stream, len(data), name, dtype, shape, head, max_bytes)[0], name)


def _finite(array, name):
    """``array``, unless a float IDX body holds NaN or inf: a DatasetError naming ``name``."""
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        bad = ~np.isfinite(array)
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise DatasetError(f"{name}: {int(bad.sum())} NaN or inf value(s) in the data, first at index "
                           f"{first}")
    return array


def write_idx(path, array):
    """Write ``array`` as an IDX file (gzip when ``path`` ends in ``.gz``). Used by the tests."""
    array = np.asarray(array)
    codes = {np.dtype(v).newbyteorder("="): k for k, v in IDX_DTYPES.items()}
    if array.dtype not in codes:
        raise TypeError(f"IDX cannot store dtype {array.dtype}")
    header = bytes([0, 0, codes[array.dtype], array.ndim])
    header += np.asarray(array.shape, ">u4").tobytes()
    body = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as fh:
        fh.write(body)


_IDX_NAME = re.compile(r"^(?P<prefix>.+?)-(?P<kind>images|labels)[-.]idx[13]-ubyte(?:\.gz)?$")
